/**
 * The executor: the Execution Layer's enforcement path (SPEC §2 step 7, §3 verification order).
 * It reads as a checklist: verify the envelope (signature, claims, time, call binding, policy
 * bundle) → the ledger decision it points at matches (`ERR_ENVELOPE_LEDGER_UNCONFIRMED`,
 * `ERR_ENVELOPE_DECISION_MISMATCH`) → its issuance was recorded (`ERR_ENVELOPE_NOT_ISSUED`) →
 * the adapter exists → consume the nonce (`ERR_NONCE_REPLAYED`, `ERR_ENVELOPE_VOIDED`) → run the
 * adapter with the envelope's constraints → bound the result (`max_output_bytes` of canonical JSON,
 * never above `MAX_OUTPUT_BYTES`, before and after redaction, and `MAX_RESULT_DEPTH` levels:
 * `ERR_TOOL_OUTPUT_LIMIT`, so no answer carrying it outgrows what its readers take) → redact →
 * append the receipt, which carries the consumed JWS and its digest → return. Every failure, timeout or malformed answer is a deny,
 * ledgered as a `denial` entry (best effort), and the adapter is never called unless every check
 * before it passed (FC-INV-4, OE-INV-003, L7 Boundary B, SPEC §7 scenarios 3, 6, 8, 9).
 *
 * It also voids envelopes: when a call fails after issuance, the Gate asks the executor (never
 * the other way round: the Gate cannot consume or run) to record the jti as voided in the nonce
 * store and to ledger `envelope.voided`, so the envelope can never run later (SPEC §3).
 */
import { performance } from 'node:perf_hooks';
import {
  NO_OBSERVER,
  canonicalize,
  createDurableWrites,
  deny,
  envelopeSha256,
  hexDigestEquals,
  MAX_OUTPUT_BYTES,
  MAX_RESULT_DEPTH,
  sha256Hex,
  verifyEnvelope,
  verifyEnvelopeAsync,
} from '../kernel/index.js';
import type {
  Clock,
  Deny,
  DurableWrites,
  EnvelopeClaims,
  JsonValue,
  KeyRing,
  Observer,
  VerifyEnvelopeContext,
} from '../kernel/index.js';
import type { ToolAdapter, ToolExecutionSpec, ToolOutput } from './adapters/types.js';
import { checkEnvelopeLedger, parseEnvelopeContext, standingDecisionOf } from './ledger-checks.js';
import type { EnvelopeLedgerContext, ExecutionLedger, LedgerRef } from './ledger.js';
import type { NonceStore } from './nonce-store.js';
import {
  countRedactions,
  deepFreeze,
  hasEvidenceReason,
  nestedDeeperThan,
  parseAdapterOutput,
  parseLedgerRef,
} from './outcome-checks.js';
import type { Redactor } from './redaction.js';
import { guardRelay } from './relay.js';
import type { CallRelay, RelayCounts } from './relay.js';
import type { SecretResolver } from './secrets.js';
import { callWithCancellableTimeout, callWithTimeout } from './timeout.js';
import { createVoider, type VoidInput, type VoidOutcome } from './void-envelope.js';

export type { VoidInput, VoidOutcome } from './void-envelope.js';

/** Everything the executor depends on; injected at composition. Public keys only (SPEC §1). */
export interface ExecutorDeps {
  /** Told the stages' durations and the nonce store's (docs/deployment.md "Observability"). Default: none. */
  readonly observer?: Observer;
  /** This executor's identity: the envelopes' `aud`, and the actor of its ledger entries. */
  readonly audience: string;
  /** Pinned issuer public keys with revocations. */
  readonly keys: KeyRing;
  readonly now: Clock;
  readonly clockToleranceSec: number;
  readonly maxLifetimeSec: number;
  readonly isKnownPolicyBundle: (hash: string) => boolean;
  readonly ledger: ExecutionLedger;
  readonly nonces: NonceStore;
  /** How the tool named by an envelope runs, as pinned by the approving policy bundle. */
  readonly resolveTool: (policyBundleHash: string, toolName: string) => ToolExecutionSpec | undefined;
  /** Adapters by spec `type` (`builtin`, `command`, ...). */
  readonly adapters: Readonly<Record<string, ToolAdapter>>;
  readonly redactor: Redactor;
  readonly secrets?: SecretResolver;
  /** Deadlines (ms) for every dependency call; the adapter gets `timeout_ms + adapterGraceMs`. */
  readonly timeouts: {
    readonly ledgerMs: number;
    readonly nonceMs: number;
    readonly adapterGraceMs?: number;
  };
}

/** One call presented to the Execution Layer (from the Gate, or anyone trying to bypass it). */
export interface ExecutionInput {
  readonly envelope: unknown;
  readonly tool: string;
  readonly tenant: string;
  readonly params: JsonValue;
  readonly trace_id?: string;
  readonly request_id?: string;
}

/** A completed execution: the redacted result and the receipt's ledger reference. */
export interface Executed {
  readonly outcome: 'executed';
  readonly result: JsonValue;
  readonly receipt: LedgerRef;
  readonly decision_id: string;
  readonly jti: string;
  readonly trace_id: string;
  readonly request_id: string;
  readonly adapter: string;
  readonly duration_ms: number;
  readonly redactions: number;
}

/** What {@link Executor.execute} answers: an execution or a deny. */
export type ExecutionOutcome = Executed | Deny;

/** The Execution Layer's entry point. */
export interface Executor {
  /**
   * Runs one call if and only if every check passes; never throws. Denies with the envelope
   * codes of `verifyEnvelope`, then `ERR_LEDGER_UNAVAILABLE` (no ledger answer),
   * `ERR_ENVELOPE_LEDGER_UNCONFIRMED`, `ERR_ENVELOPE_DECISION_MISMATCH`,
   * `ERR_ENVELOPE_NOT_ISSUED` (L7 Boundary B), `ERR_ADAPTER_UNAVAILABLE`, `ERR_NONCE_REPLAYED` /
   * `ERR_ENVELOPE_VOIDED` / `ERR_NONCE_STORE_UNAVAILABLE`, the
   * adapter's `ERR_TOOL_*` / `ERR_SANDBOX_UNAVAILABLE` / `ERR_PARAMS_INVALID`, and
   * `ERR_LEDGER_UNAVAILABLE` when the receipt cannot be appended (the result is withheld).
   *
   * With `writes` (an in-process caller whose stores share commits, `durability.ts`): the nonce
   * consumption joins the caller's pending writes and the adapter runs only once they are all
   * durable (`writes.sync()`); the success receipt is written and registered there, and the
   * caller lets the result out of the process only after its own `writes.sync()`.
   *
   * With `relay` (an in-process caller, relay.ts): an MCP upstream's progress and log messages
   * about the call are relayed to it, guarded (parsed, redacted, bounded; counted in the
   * receipt's `notices`), and its `cancelled` signal ends the upstream call, which is then
   * denied `ERR_CALL_CANCELLED` (a receipt is written: the tool may have started). Cancelled
   * before the nonce is consumed, the call is denied with nothing used; after it and before the
   * tool starts, the tool never starts (a failed receipt).
   *
   * With `signal`: aborted when the caller gave up on the call (the Gate's execution deadline
   * passed, or its connection to a separate Execution Layer closed), having answered it denied.
   * Before the nonce is consumed the call is denied `ERR_CALL_CANCELLED` with nothing recorded
   * as consumed; after it and before the tool starts, the tool never starts (a failed receipt
   * `ERR_CALL_CANCELLED`); while the tool runs, it is ended as by its own time limit (a failed
   * receipt `ERR_CALL_CANCELLED`: it may have done something already).
   */
  execute(
    input: ExecutionInput,
    writes?: DurableWrites,
    relay?: CallRelay,
    signal?: AbortSignal,
  ): Promise<ExecutionOutcome>;
  /**
   * Voids the envelope of `input` for ever (SPEC §3): it must verify as for `execute` (signature,
   * claims, time, call binding; else its deny), then its jti is recorded as voided in the nonce
   * store in one atomic statement (a racing consumption or void has exactly one winner) and an
   * `envelope.voided` entry is appended. Denies `ERR_NONCE_STORE_UNAVAILABLE` when the store
   * cannot confirm. Never throws. The only way anyone outside the Execution Layer touches the
   * nonce store, and it can only take an envelope out of use.
   */
  void(input: VoidInput): Promise<VoidOutcome>;
}

/**
 * The caller cancelled the call (its relay's `cancelled`) or gave up on it (`Executor.execute`'s
 * `signal`), before the tool started or while it ran. The reason goes into the receipt, so the
 * evidence says whether the tool may have done anything.
 */
const stoppedBy = (cancelled: boolean, started: boolean): Deny =>
  deny(
    'ERR_CALL_CANCELLED',
    `the caller ${cancelled ? 'cancelled' : 'gave up on'} the call ${started ? 'while the tool ran' : 'before the tool started'}`,
  );

/** What is known about a call when it is denied, for its `denial` ledger entry. */
interface Trail {
  tenant: string;
  tool: string;
  trace_id: string;
  request_id: string;
  claims?: EnvelopeClaims;
}

/** A bounded string, or ''. A declaration, not a module-level arrow, so its mutants are tested per call. */
function str(v: unknown): string {
  return typeof v === 'string' ? v.slice(0, 256) : '';
}

/** One field of an untrusted input, as a bounded string; '' when absent, not a string or unreadable. */
function field(input: unknown, key: 'tenant' | 'tool' | 'trace_id' | 'request_id'): string {
  try {
    return typeof input === 'object' && input !== null ? str((input as Record<string, unknown>)[key]) : '';
  } catch {
    return '';
  }
}

/** Creates the {@link Executor} (SPEC §2 step 7, OE-INV-015, OE-INV-017). */
export function createExecutor(deps: ExecutorDeps): Executor {
  const actor = Object.freeze({ id: deps.audience, role: 'executor' });
  const graceMs = deps.timeouts.adapterGraceMs ?? 1000;

  const append = async (
    trail: Trail,
    type: 'execution.receipt' | 'denial' | 'envelope.voided',
    payload: Record<string, JsonValue>,
    writes?: DurableWrites,
  ) => {
    const entry = {
      type,
      trace_id: trail.trace_id,
      request_id: trail.request_id,
      tenant: trail.tenant,
      actor,
      payload,
    };
    const r = await callWithTimeout(() => deps.ledger.append(entry, writes), deps.timeouts.ledgerMs);
    return r.status === 'ok' ? parseLedgerRef(r.value) : undefined;
  };

  const recordDenial = async (denied: Deny, trail: Trail): Promise<void> => {
    const c = trail.claims;
    // Best effort: the deny stands whether or not this write lands.
    await append(trail, 'denial', {
      code: denied.code,
      stage: 'execution',
      reason: denied.reason,
      tool: trail.tool,
      ...(c === undefined ? {} : { decision_id: c.decision_id, params_sha256: c.params_sha256 }),
    });
  };

  const appendReceipt = async (
    trail: Trail,
    c: EnvelopeClaims,
    jws: { readonly envelope: string; readonly digest: string },
    fields: { status: 'succeeded' | 'failed'; adapter: string; started: number } & Record<string, JsonValue>,
    writes?: DurableWrites,
  ): Promise<LedgerRef | undefined> => {
    const { started, ...rest } = fields;
    return append(
      trail,
      'execution.receipt',
      {
        decision_id: c.decision_id,
        jti: c.jti,
        params_sha256: c.params_sha256,
        tool: c.tool,
        decision_ref: { index: c.ledger.index, entry_hash: c.ledger.entry_hash },
        // The consumed JWS enters the ledger only here, so `verify` checks the signature of every
        // envelope that ran; it can no longer be used by anyone (SPEC §3, docs/ledger.md).
        envelope: jws.envelope,
        envelope_sha256: jws.digest,
        duration_ms: Math.max(0, deps.now() - started),
        ...rest,
      },
      writes,
    );
  };

  const contextFor = (input: ExecutionInput): VerifyEnvelopeContext => ({
    keys: deps.keys,
    audience: deps.audience,
    now: deps.now,
    clockToleranceSec: deps.clockToleranceSec,
    maxLifetimeSec: deps.maxLifetimeSec,
    call: { tool: input.tool, tenant: input.tenant, params: input.params },
    isKnownPolicyBundle: deps.isKnownPolicyBundle,
  });
  const verifyFor = (input: ExecutionInput) => verifyEnvelope(input.envelope, contextFor(input));

  const pipeline = async (
    input: ExecutionInput,
    trail: Trail,
    writes: DurableWrites | undefined,
    relay: CallRelay | undefined,
    gone: AbortSignal | undefined,
  ): Promise<ExecutionOutcome> => {
    const started = deps.now();
    const obs = deps.observer ?? NO_OBSERVER;
    const traceId = trail.trace_id;

    // 1. The envelope, in SPEC §3 order up to the policy bundle (public keys only).
    let t = performance.now();
    // The signature is checked off the event loop, which serves every other call meanwhile.
    const verified = await verifyEnvelopeAsync(input.envelope, contextFor(input));
    obs.stage('envelope_verify', traceId, t, performance.now());
    if (verified.outcome !== 'allow') return verified;
    const c = verified.claims;
    Object.assign(trail, {
      claims: c,
      tenant: c.tenant,
      tool: c.tool,
      trace_id: c.trace_id,
      request_id: c.request_id,
    });

    // Re-hash exactly the parameters that will run: a private frozen copy, so nothing can change
    // them between the check and the adapter (SPEC §2 step 7).
    // One canonical text serves both: the copy is parsed from exactly the bytes that are hashed.
    const text = canonicalize(input.params);
    const params = deepFreeze(JSON.parse(text) as JsonValue);
    if (!hexDigestEquals(sha256Hex(text), c.params_sha256)) {
      return deny('ERR_ENVELOPE_PARAMS_MISMATCH', 'parameters differ from the approved ones');
    }

    // 2-3. The ledger decision matches, then the issuance of exactly this JWS was recorded
    // (L7 Boundary B): indexed lookups in one snapshot.
    const jws = { envelope: input.envelope as string, digest: envelopeSha256(input.envelope as string) };
    const read = await callWithTimeout(
      () =>
        deps.ledger.readEnvelopeContext({ index: c.ledger.index, jti: c.jti, decision_id: c.decision_id }),
      deps.timeouts.ledgerMs,
    );
    const context = read.status === 'ok' ? parseEnvelopeContext(read.value) : undefined;
    if (context === undefined)
      return deny('ERR_LEDGER_UNAVAILABLE', 'ledger confirmation could not be obtained');
    // A scheduled run's escalated decision: the approvals of its schedule's creation are read too.
    const standingId = standingDecisionOf(context);
    let standing: EnvelopeLedgerContext['finalized'] = [];
    if (standingId !== undefined) {
      const more = await callWithTimeout(
        () => deps.ledger.readEnvelopeContext({ index: c.ledger.index, jti: c.jti, decision_id: standingId }),
        deps.timeouts.ledgerMs,
      );
      const parsed = more.status === 'ok' ? parseEnvelopeContext(more.value) : undefined;
      if (parsed === undefined)
        return deny('ERR_LEDGER_UNAVAILABLE', 'ledger confirmation could not be obtained');
      standing = parsed.finalized;
    }
    const unconfirmed = checkEnvelopeLedger(context, c, jws.digest, standing);
    if (unconfirmed !== undefined) return unconfirmed;

    // 4. The adapter exists (checked before the nonce is burnt; no side effect).
    let spec: ToolExecutionSpec | undefined;
    try {
      spec = deps.resolveTool(c.policy_bundle, c.tool);
    } catch {
      spec = undefined;
    }
    const adapterType =
      typeof spec === 'object' && spec !== null && typeof spec.type === 'string' ? spec.type : undefined;
    const adapter =
      adapterType !== undefined && Object.prototype.hasOwnProperty.call(deps.adapters, adapterType)
        ? deps.adapters[adapterType]
        : undefined;
    if (spec === undefined || adapterType === undefined || adapter === undefined) {
      return deny('ERR_ADAPTER_UNAVAILABLE', 'no adapter for this tool');
    }

    // The caller gave up meanwhile (it was answered deny), or cancelled the call: the envelope is
    // not used. Read through a function: the signals change across the awaits below.
    const stopped = (): Deny | undefined =>
      relay?.cancelled?.aborted === true || gone?.aborted === true
        ? stoppedBy(relay?.cancelled?.aborted === true, false)
        : undefined;
    const before = stopped();
    if (before !== undefined) return before;
    // Still valid as its nonce is taken: the ledger reads since step 1 may have taken seconds, and
    // a tool never starts under an envelope past `exp` and the tolerance (a run past its slot).
    if (deps.now() >= c.exp * 1000 + deps.clockToleranceSec * 1000)
      return deny('ERR_ENVELOPE_EXPIRED', 'the envelope expired before its nonce was taken');
    // 5. Single use: one atomic consumption (SPEC §8); a voided envelope never runs.
    t = performance.now();
    const consumed = await callWithTimeout(
      () =>
        deps.nonces.consume({ jti: c.jti, tenant: c.tenant, exp: c.exp, decision_id: c.decision_id }, writes),
      deps.timeouts.nonceMs,
    );
    let now = performance.now();
    obs.nonceStore((now - t) / 1000);
    obs.stage('nonce', traceId, t, now);
    if (consumed.status === 'ok' && consumed.value === 'replayed') {
      return deny('ERR_NONCE_REPLAYED', 'envelope already used');
    }
    if (consumed.status === 'ok' && consumed.value === 'voided') {
      return deny('ERR_ENVELOPE_VOIDED', 'the envelope was voided after its call failed');
    }
    if (consumed.status !== 'ok' || consumed.value !== 'fresh') {
      return deny('ERR_NONCE_STORE_UNAVAILABLE', 'single use could not be confirmed');
    }
    // The consumption (and every write of the call before it) is durable before anything runs.
    if (writes !== undefined) {
      const synced = await callWithTimeout(() => writes.sync(), deps.timeouts.nonceMs);
      if (synced.status !== 'ok')
        return deny('ERR_NONCE_STORE_UNAVAILABLE', 'single use could not be confirmed');
    }

    // 6-7. Run with the envelope's constraints, then redact. From here on a receipt is owed.
    // A caller that gave up or cancelled while the consumption became durable: the tool never starts.
    t = performance.now();
    const ran = stopped() ?? (await runAdapter(adapter, spec, c, params, relay, gone));
    const notices = 'notices' in ran && ran.notices !== undefined ? { notices: { ...ran.notices } } : {};
    now = performance.now();
    obs.stage('tool', traceId, t, now);
    t = now;
    if ('outcome' in ran) {
      // The adapter's words pass the redactor like a result does: an egress refusal names the
      // destination the tool asked for, which the tool chose and may have spelled a secret into
      // (scenario 16). A redactor that fails leaves the adapter's words out.
      let said: string;
      try {
        said = deps.redactor.redactText(ran.reason);
      } catch {
        said = 'the tool adapter denied';
      }
      const ref = await appendReceipt(trail, c, jws, {
        status: 'failed',
        code: ran.code,
        adapter: adapterType,
        started,
        ...notices,
        // The egress proxy's refusal names the destination or limit, an upstream's TLS or token
        // failure which check failed (characters failclosed vetted); a cancellation whether the
        // tool had started (the executor's own words: no adapter answers that code).
        ...(hasEvidenceReason(ran.code) || ran.code === 'ERR_CALL_CANCELLED' ? { reason: said } : {}),
      });
      return ref === undefined
        ? deny('ERR_LEDGER_UNAVAILABLE', 'execution receipt not confirmed')
        : deny(ran.code, said);
    }

    // 8. The receipt is durable before the result leaves (OE-INV-015).
    const resultSha256 = sha256Hex(ran.canonical);
    const redactions = countRedactions(ran.canonical);
    // With `writes`, written now and durable before the caller lets the result out. The tool
    // ran: a receipt is owed whatever happens to that shared commit, so when it fails the
    // receipt is written again on its own (and the caller still hears the failure).
    const fields = {
      status: 'succeeded' as const,
      result_sha256: resultSha256,
      redactions,
      adapter: adapterType,
      started,
      ...notices,
    };
    const own = writes === undefined ? undefined : createDurableWrites();
    const receipt = await appendReceipt(trail, c, jws, fields, own);
    obs.stage('ledger_receipt', traceId, t, performance.now());
    if (writes !== undefined && own !== undefined && receipt !== undefined)
      writes.add(
        own.sync().catch(async (err: unknown) => {
          await appendReceipt(trail, c, jws, fields);
          throw err;
        }),
      );
    if (receipt === undefined)
      return deny('ERR_LEDGER_UNAVAILABLE', 'execution receipt not confirmed; result withheld');
    return Object.freeze({
      outcome: 'executed',
      result: ran.result,
      receipt,
      decision_id: c.decision_id,
      jti: c.jti,
      trace_id: c.trace_id,
      request_id: c.request_id,
      adapter: adapterType,
      duration_ms: Math.max(0, deps.now() - started),
      redactions,
    });
  };

  const runAdapter = async (
    adapter: ToolAdapter,
    spec: ToolExecutionSpec,
    c: EnvelopeClaims,
    params: JsonValue,
    relay: CallRelay | undefined,
    gone: AbortSignal | undefined,
  ): Promise<
    | { readonly result: JsonValue; readonly canonical: string; readonly notices?: RelayCounts }
    | (Deny & { readonly notices?: RelayCounts })
  > => {
    const k = c.constraints;
    if (k.timeout_ms <= 0) return deny('ERR_TOOL_TIMEOUT', 'no time granted');
    const guard =
      relay === undefined ? undefined : guardRelay(relay, deps.redactor, k.max_output_bytes, c.tool);
    const cancelled = relay?.cancelled;
    const ran = await callWithCancellableTimeout(
      (signal) =>
        adapter.run({
          tool: c.tool,
          spec,
          params,
          constraints: k,
          signal,
          ...(deps.secrets === undefined ? {} : { secrets: deps.secrets }),
          ...(guard === undefined ? {} : { notices: guard.notices }),
        }),
      k.timeout_ms + graceMs,
      // The caller's cancellation, or its giving up, ends the call as the time limit does.
      [cancelled, gone],
    );
    // A notice arriving after the call ended is not relayed.
    guard?.close();
    const counted = guard === undefined ? {} : { notices: guard.counts() };
    const output = checkOutput(ran, k);
    // Cancelled and not answered: the cancellation is the reason for what the abort itself made
    // (a time-out or a failed exchange); a refusal of its own (a changed definition, an egress or
    // TLS refusal) keeps its code and evidence.
    if (
      'outcome' in output &&
      (cancelled?.aborted === true || gone?.aborted === true) &&
      (output.code === 'ERR_TOOL_TIMEOUT' || output.code === 'ERR_TOOL_FAILED')
    )
      return { ...stoppedBy(cancelled?.aborted === true, true), ...counted };
    return { ...output, ...counted };
  };

  const checkOutput = (
    ran: Awaited<ReturnType<typeof callWithCancellableTimeout<ToolOutput>>>,
    k: EnvelopeClaims['constraints'],
  ): { readonly result: JsonValue; readonly canonical: string } | Deny => {
    if (ran.status === 'timeout') return deny('ERR_TOOL_TIMEOUT', 'the tool exceeded its time limit');
    if (ran.status === 'error') return deny('ERR_TOOL_FAILED', 'the tool adapter failed');
    const output = parseAdapterOutput(ran.value);
    if ('outcome' in output) return output;
    let raw: string;
    try {
      raw = canonicalize(output.result);
    } catch {
      return deny('ERR_TOOL_FAILED', 'the tool returned a value that is not strict JSON');
    }
    // Never more than any answer carries, whatever the envelope grants (`kernel/answer-limits.ts`).
    const limit = Math.min(k.max_output_bytes, MAX_OUTPUT_BYTES);
    // Stryker disable next-line StringLiteral: equivalent, Buffer.byteLength reads an unknown encoding as UTF-8
    if (Buffer.byteLength(raw, 'utf8') > limit) return deny('ERR_TOOL_OUTPUT_LIMIT', 'output limit exceeded');
    // Nesting past the bound takes two brackets a level: a shorter text cannot (no walk per call).
    if (raw.length > 2 * MAX_RESULT_DEPTH && nestedDeeperThan(output.result, MAX_RESULT_DEPTH))
      return deny('ERR_TOOL_OUTPUT_LIMIT', 'output nested too deeply');
    // Redaction happens here, before anything (receipt hash included) sees the result (OE-INV-010).
    let redacted: { result: JsonValue; canonical: string };
    try {
      const result = deps.redactor.redact(JSON.parse(raw) as JsonValue);
      redacted = { result, canonical: canonicalize(result) };
    } catch {
      return deny('ERR_INTERNAL', 'redaction failed; result withheld');
    }
    // A redaction marker may be longer than what it replaced: the limit holds for what leaves.
    // Stryker disable next-line StringLiteral: equivalent, as above
    if (Buffer.byteLength(redacted.canonical, 'utf8') > limit)
      return deny('ERR_TOOL_OUTPUT_LIMIT', 'output limit exceeded once redacted');
    return redacted;
  };

  const voidEnvelope = createVoider({
    verify: verifyFor,
    nonces: deps.nonces,
    nonceMs: deps.timeouts.nonceMs,
    record: async (c, payload) =>
      (await append(
        { claims: c, tenant: c.tenant, tool: c.tool, trace_id: c.trace_id, request_id: c.request_id },
        'envelope.voided',
        payload,
      )) !== undefined,
  });

  return {
    async void(input) {
      try {
        return await voidEnvelope(input);
      } catch {
        return deny('ERR_INTERNAL', 'voiding failed unexpectedly');
      }
    },
    async execute(input, writes, relay, signal) {
      // Each field read on its own: a field that throws on read leaves the others for the record.
      const trail: Trail = {
        tenant: field(input, 'tenant'),
        tool: field(input, 'tool'),
        trace_id: field(input, 'trace_id'),
        request_id: field(input, 'request_id'),
      };
      let outcome: ExecutionOutcome;
      try {
        outcome = await pipeline(input, trail, writes, relay, signal);
      } catch {
        outcome = deny('ERR_INTERNAL', 'execution failed unexpectedly');
      }
      if (outcome.outcome === 'deny') {
        try {
          await recordDenial(outcome, trail);
        } catch {
          // Best effort; the deny stands.
        }
      }
      return outcome;
    },
  };
}
