/**
 * The Control Plane (SPEC §1, §2 steps 3–5, GEI Issuer): decides each governed request, records
 * the decision in the ledger and waits for confirmation, and only then signs an approval
 * envelope. Every failure is a deny with a code and, where the ledger still answers, a ledger
 * record (FC-INV-4, FC-INV-5, OE-INV-003, OE-INV-014). `decide` never throws.
 */
import { performance } from 'node:perf_hooks';
import {
  NO_OBSERVER,
  computeParamsSha256,
  deny,
  envelopeSha256,
  isDeny,
  issuedPayload,
} from '../kernel/index.js';
import type { Clock, Deny, DurableWrites, JsonValue, Observer } from '../kernel/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import {
  createCircuitBreakers,
  declaredCostCents,
  DEFAULT_BREAKERS,
  type BreakerConfig,
} from './breakers.js';
import type { ActivationResult, BundleStore } from './bundle-store.js';
import { withDeadline } from './deadline.js';
import {
  approvalsRequired,
  decisionPayload,
  type constraintsFor,
  type DecisionFacts,
} from './decision-record.js';
import { evaluatedFields } from './evaluate-call.js';
import { deriveDecisionId, deriveJti, MIN_DERIVATION_KEY_BYTES } from './derive.js';
import { createGovernanceAdmin, type GovernanceAdmin } from './governance-admin.js';
import type { GovernanceState } from './governance-state.js';
import type { BreakerStore } from './breaker-store.js';
import { createIssuer, type IssuedEnvelope, type IssuerConfig, type KeyChangeResult } from './issuer.js';
import {
  appendConfirmed,
  appendThenConfirmed,
  CONTROL_PLANE_ACTOR,
  type Actor,
  type LedgerAppend,
  type LedgerAppender,
  type LedgerRef,
} from './ledger-port.js';
import type { PolicyRuntime } from './ports.js';
import type {
  ControlPlane,
  ControlPlaneResult,
  DecideOptions,
  GovernedRequest,
  ScheduledRun,
} from './types.js';
import type { ApprovalService, PendingRecord, PreviewProvider } from './approvals/index.js';
import { describePreview } from './approvals/index.js';
import { activateWithApprovals, issueApproved, openApproval } from './approval-step.js';
import {
  approvalsCover,
  checkRun,
  creationApproval,
  creationSpec,
  evaluateGoverned,
  runFacts,
} from './schedule-step.js';
import { CLIENT_PRINCIPAL_PREFIX, resetBreaker } from './breaker-admin.js';
import type { BreakerResetResult, BreakerResetScope } from './breaker-admin.js';
import type { ActivationApproval } from './bundle-store.js';

/** Deadlines, in milliseconds, for each dependency on the decision path (SPEC §7 scenario 5). */
export interface ControlPlaneDeadlines {
  readonly ledgerMs: number;
  readonly policyMs: number;
  readonly stateMs: number;
}

/** Default deadlines. */
export const DEFAULT_DEADLINES: ControlPlaneDeadlines = Object.freeze({
  ledgerMs: 2_000,
  policyMs: 500,
  stateMs: 500,
});

/** Dependencies of {@link createControlPlane}. */
export interface ControlPlaneDeps {
  readonly ledger: LedgerAppender;
  readonly now: Clock;
  readonly issuer: IssuerConfig;
  readonly bundles: BundleStore;
  readonly state: GovernanceState;
  /** Breaker limits over {@link DEFAULT_BREAKERS}. */
  readonly breakers?: Partial<BreakerConfig>;
  /**
   * Where breaker counts, open breakers and spend live (default: in memory, this process only).
   * Replicas of one deployment share their backend's store, so limits hold across them.
   */
  readonly breakerStore?: BreakerStore;
  /** Secret of at least 32 bytes for `decision_id` and `jti` (GEI Determinism). */
  readonly derivationKey: Uint8Array;
  readonly deadlines?: Partial<ControlPlaneDeadlines>;
  /** Human approvals (OE-INV-019/020); without it every escalation is refused `ERR_APPROVAL_REQUIRED`. */
  readonly approvals?: ApprovalService;
  /** Preview provider for decisions that oblige one (OE-INV-018). Default: `describePreview`. */
  readonly preview?: PreviewProvider;
  /** Told the stages' durations and breaker trips (docs/deployment.md "Observability"). Default: none. */
  readonly observer?: Observer;
  /**
   * Whether a scheduled run's schedule still stands (`src/schedules/standing.ts`): its creation
   * confirmed to its creator, not paused or removed, by the ledger and the store. Without it every
   * scheduled run is refused `ERR_SCHEDULE_UNAVAILABLE`.
   */
  readonly scheduleStanding?: (run: ScheduledRun) => Promise<Deny | undefined>;
}

/** The Control Plane with its operator functions (SPEC §6, OE-INV-025). */
export interface ControlPlaneService extends ControlPlane {
  /** Kill switch, tenant lockdown, session quarantine: ledgered, then applied. */
  readonly admin: GovernanceAdmin;
  /** New issuer key; ledgers `admin.key_rotated` first. */
  rotateIssuerKey(actor: Actor, reason: string, newKey?: SigningKey): Promise<KeyChangeResult>;
  /** The kid of the issuer key that signs now (a replica compares it with the ledger's last rotation). */
  issuerKid(): string;
  /** Revokes an earlier issuer key; ledgers `admin.key_revoked` first. */
  revokeIssuerKey(kid: string, actor: Actor, reason: string): Promise<KeyChangeResult>;
  /** Closes breakers of a session, a sessionless client or a tenant; ledgers `admin.breaker_reset` first. */
  resetBreaker(target: BreakerResetScope, actor: Actor, reason: string): Promise<BreakerResetResult>;
  /** Activates a stored bundle; ledgers `admin.policy_activated` first. */
  activateBundle(
    hash: string,
    actor: Actor,
    reason: string,
  ): Promise<ActivationResult | (Deny & { readonly decision_id: string })>;
  /** The approval service, when configured. */
  readonly approvals?: ApprovalService;
  /**
   * True when `req` is a retry of an escalated call: a decision for the same client, request id,
   * tenant, tool, session and parameters is pending or finalised but not yet issued. The Gate
   * lets a reused request id through only then (docs/approvals.md "Retries").
   */
  isRetry(
    req: Pick<GovernedRequest, 'request_id' | 'identity' | 'tenant' | 'tool' | 'params' | 'session'>,
  ): Promise<boolean>;
}

/** The per-request context of the pipeline (shared with `approval-step.ts`). */
export interface Ctx {
  readonly req: GovernedRequest;
  readonly at: number;
  readonly decisionId: string;
  readonly paramsSha256: string;
  runtime?: PolicyRuntime;
  /** The session (or, without one, the client) has received untrusted tool output (OE-INV-013). */
  tainted?: boolean;
  /** The call's pending durable writes, when the Gate shares its commits (`DecideOptions.writes`). */
  readonly writes?: DurableWrites;
  /** A scheduled run's slot end (ms): its envelope expires then at the latest (docs/schedules.md). */
  notAfterMs?: number;
}

/** What an allowed call's envelope is issued under: its bundle, approvals, constraints and spend. */
interface Grant {
  readonly bundleHash: string;
  readonly approvals: readonly string[];
  readonly constraints: Exclude<ReturnType<typeof constraintsFor>, Deny>;
  /** Gives back the spend reserved for the call when no envelope leaves. */
  readonly release: () => void;
}

/**
 * The principal a call's breakers, quarantine and taint apply to: its session, or `client:NAME`
 * when it names none (sessions may not use that prefix, so the two forms never collide).
 */
const taintKey = (req: GovernedRequest): string => req.session ?? `${CLIENT_PRINCIPAL_PREFIX}${req.identity}`;

const withId = (d: Deny, decision_id: string | null): ControlPlaneResult =>
  Object.freeze({ outcome: 'deny', code: d.code, reason: d.reason, decision_id });

const isRequestString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;

/**
 * The `denial` record of an exception caught at the Control Plane's edge: written only when the
 * request names its ids, best effort, and never throws (the deny stands whatever happens).
 */
async function recordCaught(
  ledger: LedgerAppender,
  req: GovernedRequest,
  d: Deny,
  ms: number,
): Promise<void> {
  try {
    const { request_id, trace_id, tenant, tool, identity, session, request_sha256 } = req;
    if (![request_id, trace_id, tenant].every(isRequestString)) return;
    const payload: Record<string, JsonValue> = { code: d.code, stage: 'control-plane', reason: d.reason };
    if (isRequestString(tool)) payload['tool'] = tool;
    if (isRequestString(identity)) payload['client'] = identity;
    if (session === null || isRequestString(session)) payload['session'] = session;
    if (typeof request_sha256 === 'string' && /^[0-9a-f]{64}$/.test(request_sha256))
      payload['request_sha256'] = request_sha256;
    await appendConfirmed(
      ledger,
      { type: 'denial', trace_id, request_id, tenant, actor: CONTROL_PLANE_ACTOR, payload },
      ms,
    );
  } catch {
    // Best effort: the deny stands whether or not this record lands.
  }
}

/**
 * Creates the Control Plane. Throws `TypeError` for a malformed configuration (short derivation
 * key, bad issuer settings or breaker limits). (SPEC §2 steps 3–5, GEI)
 */
export function createControlPlane(deps: ControlPlaneDeps): ControlPlaneService {
  const { ledger, now, bundles, state, derivationKey } = deps;
  if (!(derivationKey instanceof Uint8Array) || derivationKey.length < MIN_DERIVATION_KEY_BYTES) {
    throw new TypeError('derivationKey must be at least 32 bytes');
  }
  const deadlines = { ...DEFAULT_DEADLINES, ...deps.deadlines };
  const obs = deps.observer ?? NO_OBSERVER;
  const breakerConfig: BreakerConfig = { ...DEFAULT_BREAKERS, ...deps.breakers };
  const breakers = createCircuitBreakers(breakerConfig, deps.breakerStore);
  const issuer = createIssuer({ config: deps.issuer, ledger, now, ledgerTimeoutMs: deadlines.ledgerMs });
  const admin = createGovernanceAdmin({
    ledger,
    state,
    now,
    ledgerTimeoutMs: deadlines.ledgerMs,
    stateTimeoutMs: deadlines.stateMs,
  });

  function facts(
    ctx: Ctx,
    over: Partial<DecisionFacts> & Pick<DecisionFacts, 'outcome' | 'code' | 'rationale'>,
  ): DecisionFacts {
    return {
      decision_id: ctx.decisionId,
      policy_bundle: ctx.runtime?.hash ?? null,
      constitution_version: ctx.runtime?.constitutionVersion ?? null,
      rules_fired: [],
      risk: null,
      obligations: null,
      params_sha256: ctx.paramsSha256,
      tool: ctx.req.tool,
      client: ctx.req.identity,
      session: ctx.req.session,
      request_sha256: ctx.req.request_sha256,
      ...(ctx.req.schedule === undefined ? {} : runFacts(ctx.req.schedule)),
      ...over,
    };
  }

  /**
   * Appends one of the request's entries. `deferred`: the entry may join the commit of the call's
   * pending writes (`ctx.writes`); whatever depends on it waits for `ctx.writes.sync()` in
   * {@link issue}. A deny's records are always waited for here.
   */
  function append(
    ctx: Ctx,
    type: 'decision' | 'denial' | 'envelope.issued',
    payload: DecisionFacts | Record<string, JsonValue>,
    deferred = false,
    ifOpen?: number,
  ) {
    return appendConfirmed(
      ledger,
      entryOf(ctx, type, payload),
      deadlines.ledgerMs,
      deferred ? ctx.writes : undefined,
      ifOpen,
    );
  }

  /** One of the request's entries, as the Control Plane records it. */
  function entryOf(
    ctx: Ctx,
    type: 'decision' | 'denial' | 'envelope.issued',
    payload: DecisionFacts | Record<string, JsonValue>,
  ): LedgerAppend {
    const body =
      // Stryker disable next-line ConditionalExpression: equivalent, DecisionFacts has exactly the decision payload's members and values
      type === 'decision'
        ? decisionPayload(payload as DecisionFacts)
        : (payload as Record<string, JsonValue>);
    const { trace_id, request_id, tenant } = ctx.req;
    return { type, trace_id, request_id, tenant, actor: CONTROL_PLANE_ACTOR, payload: body };
  }

  /** Records a deny as the request's decision (FC-INV-5); a ledger failure still denies. */
  async function refuse(ctx: Ctx, d: Deny, over: Partial<DecisionFacts> = {}): Promise<ControlPlaneResult> {
    const ref = await append(
      ctx,
      'decision',
      facts(ctx, { outcome: 'deny', code: d.code, rationale: d.reason, ...over }),
    );
    return withId(isDeny(ref) ? ref : d, ctx.decisionId);
  }

  /** Records a deny after the decision was recorded (signing failed, say); best effort. */
  async function abandon(ctx: Ctx, stage: string, d: Deny): Promise<ControlPlaneResult> {
    const { tool, identity, session, request_sha256 } = ctx.req;
    await append(ctx, 'denial', {
      code: d.code,
      stage,
      reason: d.reason,
      tool,
      client: identity,
      session,
      params_sha256: ctx.paramsSha256,
      decision_id: ctx.decisionId,
      request_sha256,
    });
    return withId(d, ctx.decisionId);
  }

  /** A breaker tripped: quarantine the session (ledgered first), then deny (OE-INV-021). */
  async function trip(ctx: Ctx, breaker: string): Promise<ControlPlaneResult> {
    const { req } = ctx;
    obs.breakerTrip(breaker);
    if (req.session !== null && breaker !== 'tenant_rate') {
      await admin.setSessionQuarantine(
        req.session,
        true,
        CONTROL_PLANE_ACTOR,
        // Stryker disable next-line StringLiteral: message text (the reason a person reads; the breaker is its own member)
        `circuit breaker ${breaker} tripped`,
        {
          trace_id: req.trace_id,
          request_id: req.request_id,
          tenant: req.tenant,
          client: req.identity,
          breaker,
        },
      );
    }
    return refuse(ctx, deny('ERR_CIRCUIT_OPEN', `circuit breaker ${breaker} is open`));
  }

  /** Reads the incident-response state for the call: a deny, or whether its session is tainted. */
  async function readGovernance(ctx: Ctx): Promise<Deny | { readonly tainted: boolean }> {
    const g = await withDeadline(
      () => state.check(ctx.req.tenant, taintKey(ctx.req), taintKey(ctx.req)),
      deadlines.stateMs,
    );
    if (g.status !== 'ok')
      return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the governance state did not answer');
    // Only an explicit `false` clears each check: a missing or malformed answer denies.
    const v = g.value as unknown as Partial<Record<string, unknown>> | null;
    if (typeof v !== 'object' || v === null)
      return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the governance state answer is malformed');
    if (v.kill_switch !== false) return deny('ERR_KILL_SWITCH', 'the kill switch is engaged');
    if (v.tenant_locked !== false) return deny('ERR_TENANT_LOCKDOWN', 'the tenant is locked down');
    if (v.session_quarantined !== false)
      return deny('ERR_SESSION_QUARANTINED', 'the agent session is quarantined');
    // Anything but an explicit false counts as tainted: more scrutiny, never less.
    return { tainted: v.session_tainted !== false };
  }

  /** The incident-response checks of step 1 (OE-INV-025): a deny, or none with `ctx.tainted` set. */
  function applyGovernance(ctx: Ctx, g: Deny | { readonly tainted: boolean }): Deny | undefined {
    if (isDeny(g)) return g;
    ctx.tainted = g.tainted;
    return undefined;
  }

  async function governance(ctx: Ctx): Promise<Deny | undefined> {
    return applyGovernance(ctx, await readGovernance(ctx));
  }

  async function pipeline(
    req: GovernedRequest,
    waitMs: number,
    writes: DurableWrites | undefined,
    signal?: AbortSignal,
  ): Promise<ControlPlaneResult> {
    const at = now();
    if (
      ![req.request_id, req.trace_id, req.identity, req.tenant, req.tool].every(isRequestString) ||
      !Number.isSafeInteger(req.timestamp) ||
      typeof req.request_sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(req.request_sha256) ||
      (req.session !== null &&
        (!isRequestString(req.session) || req.session.startsWith(CLIENT_PRINCIPAL_PREFIX)))
    ) {
      return withId(deny('ERR_REQUEST_MALFORMED', 'the governed request is malformed'), null);
    }
    if (req.schedule !== undefined && !isScheduledRun(req.schedule))
      return withId(deny('ERR_REQUEST_MALFORMED', 'the scheduled run is malformed'), null);
    let paramsSha256: string;
    try {
      paramsSha256 = computeParamsSha256(req.params);
    } catch {
      return withId(deny('ERR_PARAMS_INVALID', 'the parameters cannot be canonically encoded'), null);
    }
    const ctx: Ctx = {
      req,
      at,
      paramsSha256,
      decisionId: deriveDecisionId(derivationKey, req, paramsSha256),
      ...(writes === undefined ? {} : { writes }),
    };
    // The retry lookup and the governance read are independent reads: asked together, they cost
    // a shared database one round trip instead of two. A retry does not use this read: its
    // resumption reads the state again, after the lookup (approval-step.ts). The lookup has the
    // state deadline too, so the read it waits beside is at most that old when applied.
    const reading = readGovernance(ctx);
    // Stryker disable next-line ArrowFunction: equivalent, readGovernance settles every failure as a deny
    reading.catch(() => undefined);
    // A retry of an escalated call resumes its decision instead of deciding again.
    const approvals = deps.approvals;
    if (approvals !== undefined) {
      const found = await withDeadline(() => approvals.get(ctx.decisionId), deadlines.stateMs);
      if (found.status !== 'ok') {
        // Not knowing whether this is a retry, nothing is decided: recorded as at the role's edge.
        const d = deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the approval state did not answer');
        await recordCaught(ledger, req, d, deadlines.ledgerMs);
        return withId(d, null);
      }
      if (found.value !== undefined) return resume(ctx, found.value, waitMs, signal);
    }

    // 1. Incident response: kill switch → tenant lockdown → session quarantine (OE-INV-025).
    const halted = applyGovernance(ctx, await reading);
    if (halted !== undefined) return refuse(ctx, halted);

    // 1b. A scheduled run: the call its schedule names, decided within its slot (docs/schedules.md).
    if (req.schedule !== undefined) {
      const run = checkRun(req, req.schedule, paramsSha256, at);
      if (isDeny(run)) return refuse(ctx, run);
      const standing =
        deps.scheduleStanding === undefined
          ? deny('ERR_SCHEDULE_UNAVAILABLE', 'this Control Plane cannot read schedules')
          : await deps.scheduleStanding(req.schedule);
      if (standing !== undefined) return refuse(ctx, standing);
      ctx.notAfterMs = run.slot.end;
    }

    // 2. Circuit breakers: rate, loop, lifetime (OE-INV-021).
    const call = {
      sessionKey: taintKey(req),
      tenant: req.tenant,
      tool: req.tool,
      paramsSha256,
      now: at,
    };
    // The admission may share the call's commit: it is counted now, durable before any envelope.
    const admitted = await withDeadline(() => breakers.admit(call, ctx.writes), deadlines.stateMs);
    if (admitted.status !== 'ok')
      return refuse(ctx, deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the breaker state did not answer'));
    if (admitted.value.tripped) return trip(ctx, admitted.value.breaker);

    // 3. The verified active bundle; never a fallback (SPEC §6, scenario 13).
    const active = bundles.active();
    if (isDeny(active))
      return refuse(ctx, deny('ERR_POLICY_UNAVAILABLE', 'no verified active policy bundle'));
    const runtime = active;
    ctx.runtime = runtime;
    // A schedule's creation: the scheduled call is what policy decides (a malformed spec is
    // refused as malformed parameters are, under the bundle that would have decided).
    const spec = creationSpec(req);
    if (spec !== undefined && isDeny(spec)) return refuse(ctx, spec);

    // 4. Known tool (OE-INV-005), 5. parameters match its schema (OE-INV-004), 6. policy
    // evaluation, bounded and checked (SPEC §2 step 3), 7. constraints: shared with the dry run.
    let t = performance.now();
    const toEvaluate = {
      identity: req.identity,
      tenant: req.tenant,
      roles: req.roles ?? [],
      tool: req.tool,
      params: req.params,
      tainted: ctx.tainted !== false,
      ...(req.background === true ? { background: true } : {}),
    };
    // Shared with the forensic replay: a creation is evaluated as the call it schedules.
    const evaluation = await evaluateGoverned(runtime, toEvaluate, deadlines.policyMs);
    obs.stage('policy', req.trace_id, t, performance.now());
    if (evaluation.outcome === 'deny') return refuse(ctx, evaluation.denial, evaluatedFields(evaluation));
    const { decision, tool, constraints } = evaluation;
    const policyFacts = evaluation.facts;

    // 7a. A scheduled run stands on its creation's approvals: never a fresh wait for people.
    let escalate = decision.outcome === 'escalate';
    let standing: readonly string[] = [];
    if (req.schedule !== undefined) {
      const approvals = deps.approvals;
      const p = creationApproval(req, req.schedule, await approvals?.get(req.schedule.decision_id));
      const covered =
        p !== undefined &&
        (!escalate ||
          approvalsCover(p, approvalsRequired(decision.obligations), decision.obligations.approver_roles)) &&
        (await approvals?.stillApproved(p)) === true;
      if (!covered || p === undefined)
        return refuse(
          ctx,
          deny('ERR_SCHEDULE_NOT_APPROVED', 'no approved schedule creation covers this run'),
          policyFacts,
        );
      escalate = false;
      standing = p.approvals;
    }

    // 7b. Spend (allow only; an approved escalation re-checks at issuance).
    let release = (): void => undefined;
    if (!escalate) {
      const cost = declaredCostCents(req.params, breakerConfig.costParam);
      if (Number.isNaN(cost))
        return refuse(ctx, deny('ERR_PARAMS_INVALID', 'the declared cost is not an amount'), policyFacts);
      const spend = await withDeadline(
        () => breakers.reserveSpend(call, cost, constraints.max_cost_cents),
        deadlines.stateMs,
      );
      if (spend.status !== 'ok')
        return refuse(
          ctx,
          deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the spend state did not answer'),
          policyFacts,
        );
      if (spend.value.tripped) return trip(ctx, spend.value.breaker);
      release = spend.value.release;
    }

    // 7c. A preview the policy requires, computed before the decision is recorded (OE-INV-018).
    let preview = null;
    if (escalate && decision.obligations.preview) {
      const made = await withDeadline(
        () =>
          (deps.preview ?? describePreview)({
            tool,
            tenant: req.tenant,
            // A schedule's approvers preview the call it schedules.
            params: spec?.params ?? req.params,
            params_sha256: paramsSha256,
          }),
        deadlines.policyMs,
      );
      if (made.status !== 'ok' || isDeny(made.value))
        return refuse(
          ctx,
          deny('ERR_PREVIEW_UNAVAILABLE', 'the required preview cannot be produced'),
          policyFacts,
        );
      preview = made.value;
    }

    // 8. The decision record, confirmed before anything else happens (GEI, SPEC §2 step 4). An
    // allow may share its commit with the issuance: the envelope is signed over the decision's
    // sealed index and hash, and leaves only once both are durable (`issue`).
    // Stryker disable next-line OptionalChaining: equivalent, the decided tool is in its decision's bundle (checked at evaluation)
    const tainting = runtime.getTool(req.tool)?.untrusted_output === true;
    if (!escalate && !tainting && ledger.appendThen !== undefined)
      // 8, 10 and 11 in one commit (`decideAndIssue`).
      return decideAndIssue(ctx, facts(ctx, evaluatedFields(evaluation)), {
        bundleHash: runtime.hash,
        approvals: standing,
        constraints,
        release,
      });
    t = performance.now();
    const recorded = await append(ctx, 'decision', facts(ctx, evaluatedFields(evaluation)), !escalate);
    obs.stage('ledger_decision', req.trace_id, t, performance.now());
    if (isDeny(recorded)) {
      release();
      return withId(recorded, ctx.decisionId);
    }

    // 9. Approvals: an escalation waits for humans (OE-INV-019/020); see approval-step.ts.
    if (escalate) {
      if (deps.approvals === undefined)
        return withId(deny('ERR_APPROVAL_REQUIRED', 'the decision requires human approval'), ctx.decisionId);
      const opened = await openApproval(deps.approvals, ctx, {
        decision,
        preview,
        constraints,
        decisionRef: recorded,
        ttlSec: runtime.bundle.document.settings?.approval_ttl_seconds,
      });
      if (isDeny(opened)) return withId(opened, ctx.decisionId);
      t = performance.now();
      const resumed = await resume(ctx, opened, waitMs, signal);
      obs.stage('approval_wait', req.trace_id, t, performance.now());
      return resumed;
    }

    // 10. Sign, 11. record the issuance and wait, 12. allow (SPEC §2 step 5).
    return issue(ctx, recorded, { bundleHash: runtime.hash, approvals: standing, constraints, release });
  }

  /** Resumes an escalated decision: break-glass, long-poll, then issuance once approved. */
  async function resume(
    ctx: Ctx,
    pending: PendingRecord,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<ControlPlaneResult> {
    const approvals = deps.approvals;
    // Stryker disable next-line ConditionalExpression: equivalent, resume is only reached with a record the approval service returned
    if (approvals === undefined)
      return withId(deny('ERR_APPROVAL_REQUIRED', 'the decision requires human approval'), ctx.decisionId);
    const halted = await governance(ctx);
    if (halted !== undefined) return abandon(ctx, 'approval', halted);
    return issueApproved(
      approvals,
      ctx,
      pending,
      waitMs,
      {
        now,
        abandon: (d) => abandon(ctx, 'approval', d),
        active: () => bundles.active(),
        halted: () => governance(ctx),
        reserve: async (cost, cap) => {
          const spend = await withDeadline(
            () =>
              breakers.reserveSpend(
                {
                  sessionKey: taintKey(ctx.req),
                  tenant: ctx.req.tenant,
                  tool: ctx.req.tool,
                  paramsSha256: ctx.paramsSha256,
                  now: now(),
                },
                cost,
                cap,
              ),
            deadlines.stateMs,
          );
          if (spend.status !== 'ok') throw new Error('the spend state did not answer');
          return spend.value;
        },
        costOf: (params) => declaredCostCents(params, breakerConfig.costParam),
        issue: (bundleHash, ref, refs, constraints, release) =>
          issue(ctx, ref, { bundleHash, approvals: refs, constraints, release }),
      },
      signal,
    );
  }

  /** Signs the call's envelope over its decision's sealed index and hash; throws when it cannot. */
  function sign(ctx: Ctx, decisionRef: LedgerRef, grant: Grant): IssuedEnvelope {
    const { req } = ctx;
    return issuer.issue(
      {
        sub: req.identity,
        tenant: req.tenant,
        tool: req.tool,
        params_sha256: ctx.paramsSha256,
        jti: deriveJti(derivationKey, req, ctx.paramsSha256),
        decision_id: ctx.decisionId,
        request_id: req.request_id,
        trace_id: req.trace_id,
        policy_bundle: grant.bundleHash,
        ledger: { index: decisionRef.index, entry_hash: decisionRef.entry_hash },
        approvals: [...grant.approvals],
        constraints: grant.constraints,
      },
      ctx.at,
      ctx.notAfterMs,
    );
  }

  /** The `envelope.issued` entry: claims and digest only, the JWS itself is never at rest until it is consumed (SPEC §3). */
  function issuedEntry(ctx: Ctx, issued: IssuedEnvelope): LedgerAppend {
    return entryOf(
      ctx,
      'envelope.issued',
      issuedPayload(issued.claims, issued.kid, envelopeSha256(issued.envelope)),
    );
  }

  async function issue(ctx: Ctx, decisionRef: LedgerRef, grant: Grant): Promise<ControlPlaneResult> {
    const { req } = ctx;
    const { release } = grant;
    const t = performance.now();
    // Untrusted output is about to reach this session: taint it first, confirmed, or issue nothing.
    const runtime = ctx.runtime ?? bundles.get(grant.bundleHash);
    if (isDeny(runtime)) {
      release();
      return withId(
        deny('ERR_POLICY_UNAVAILABLE', 'the decision’s policy bundle is not available'),
        ctx.decisionId,
      );
    }
    // Stryker disable next-line OptionalChaining: equivalent, the decided tool is in its decision's bundle (checked at evaluation)
    if (runtime.getTool(req.tool)?.untrusted_output === true) {
      const tainted = await admin.taintSession(taintKey(req), CONTROL_PLANE_ACTOR, {
        trace_id: req.trace_id,
        request_id: req.request_id,
        tenant: req.tenant,
        client: req.identity,
        tool: req.tool,
        decision_id: ctx.decisionId,
      });
      if (isDeny(tainted)) {
        release();
        return withId(tainted, ctx.decisionId);
      }
    }
    let issued;
    try {
      issued = sign(ctx, decisionRef, grant);
    } catch {
      release();
      return abandon(ctx, 'issue', deny('ERR_INTERNAL', 'the envelope could not be signed'));
    }
    // Only while the attempt is open, when another process may close it (`GovernedRequest.attempt`).
    const confirmed = await appendConfirmed(
      ledger,
      issuedEntry(ctx, issued),
      deadlines.ledgerMs,
      ctx.writes,
      req.attempt,
    );
    return deliver(ctx, decisionRef, grant, issued, confirmed, t);
  }

  /**
   * Steps 8, 10 and 11 of an allow in one commit: the decision, and the `envelope.issued` of the
   * envelope signed over its sealed index and hash, appended together (`LedgerAppender.appendThen`):
   * both durable or neither, one round trip to a shared ledger instead of two. Only for a tool
   * without untrusted output: that session taint must be confirmed between the two (`issue`).
   */
  async function decideAndIssue(ctx: Ctx, decided: DecisionFacts, grant: Grant): Promise<ControlPlaneResult> {
    const { req } = ctx;
    const t = performance.now();
    // The envelope of the last sealing, and the decision it names: the ones the ledger stores.
    let issued: IssuedEnvelope | undefined;
    let signedOver: LedgerRef | undefined;
    const both = await appendThenConfirmed(
      ledger,
      entryOf(ctx, 'decision', decided),
      {
        type: 'envelope.issued',
        ...(req.attempt === undefined ? {} : { ifOpen: req.attempt }),
        build: (ref) => {
          issued = undefined;
          signedOver = ref;
          try {
            issued = sign(ctx, ref, grant);
          } catch {
            return undefined;
          }
          return issuedEntry(ctx, issued);
        },
      },
      deadlines.ledgerMs,
      ctx.writes,
    );
    obs.stage('ledger_decision', req.trace_id, t, performance.now());
    if (isDeny(both)) {
      grant.release();
      return withId(both, ctx.decisionId);
    }
    // A ledger that confirms another decision than the one the envelope names: nothing leaves.
    if (
      signedOver === undefined ||
      signedOver.index !== both.first.index ||
      signedOver.entry_hash !== both.first.entry_hash
    ) {
      grant.release();
      return withId(deny('ERR_LEDGER_UNAVAILABLE', 'the decision was not confirmed'), ctx.decisionId);
    }
    if (issued === undefined || both.next === undefined) {
      grant.release();
      return abandon(ctx, 'issue', deny('ERR_INTERNAL', 'the envelope could not be signed'));
    }
    return deliver(ctx, both.first, grant, issued, both.next, performance.now());
  }

  /** 12. Allow, once the issuance is confirmed and the call's writes are durable (SPEC §2 step 5). */
  async function deliver(
    ctx: Ctx,
    decisionRef: LedgerRef,
    grant: Grant,
    issued: IssuedEnvelope,
    confirmed: LedgerRef | Deny,
    t: number,
  ): Promise<ControlPlaneResult> {
    if (isDeny(confirmed)) {
      grant.release();
      return withId(confirmed, ctx.decisionId);
    }
    // The envelope leaves only once the call's writes are durable: the request nonce, the
    // admission, the decision and this issuance (GEI, SPEC §2 step 4, L7 Boundary B). A failed
    // commit rolled them back: the envelope, never seen outside this process, is dropped.
    if (ctx.writes !== undefined) {
      try {
        await ctx.writes.sync();
      } catch {
        grant.release();
        return withId(deny('ERR_LEDGER_UNAVAILABLE', 'the decision was not confirmed'), ctx.decisionId);
      }
    }
    obs.stage('envelope_issue', ctx.req.trace_id, t, performance.now());
    return Object.freeze({
      outcome: 'allow',
      decision_id: ctx.decisionId,
      envelope: issued.envelope,
      decision_ref: Object.freeze({ index: decisionRef.index, entry_hash: decisionRef.entry_hash }),
      policy_bundle: grant.bundleHash,
    });
  }

  return Object.freeze({
    async decide(req: GovernedRequest, options?: DecideOptions): Promise<ControlPlaneResult> {
      try {
        const wait = Math.max(0, Math.min(options?.waitMs ?? 0, deps.approvals?.settings.maxWaitMs ?? 0));
        // Stryker disable next-line ConditionalExpression: equivalent, a NaN wait never waits (issueApproved waits only when waitMs > 0)
        return await pipeline(req, Number.isFinite(wait) ? wait : 0, options?.writes, options?.signal);
      } catch {
        // The role's edge: any exception is a deny (FC-INV-4, STYLE "Errors and denials"), and
        // still a ledger record carrying the request id (FC-INV-5), best effort.
        const d = deny('ERR_INTERNAL', 'the decision failed');
        await recordCaught(ledger, req, d, deadlines.ledgerMs);
        return withId(d, null);
      }
    },
    async ready(): Promise<{ ready: boolean; reason?: string }> {
      const active = bundles.active();
      if (isDeny(active)) return { ready: false, reason: active.code };
      const g = await withDeadline(() => state.check('*', null), deadlines.stateMs);
      return g.status === 'ok' ? { ready: true } : { ready: false, reason: 'ERR_CONTROL_PLANE_UNAVAILABLE' };
    },
    // Frozen, and the same object until a rotation or revocation: followers compare by reference.
    issuerJwks: (): JsonValue => issuer.jwks() as unknown as JsonValue,
    issuerKid: () => issuer.currentKid(),
    activeBundle() {
      const active = bundles.active();
      return isDeny(active) ? undefined : { hash: active.hash, bundle: active.bundle };
    },
    admin,
    rotateIssuerKey: (actor: Actor, reason: string, newKey?: SigningKey) =>
      issuer.rotate(actor, reason, newKey),
    revokeIssuerKey: (kid: string, actor: Actor, reason: string) => issuer.revoke(kid, actor, reason),
    resetBreaker: (target: BreakerResetScope, actor: Actor, reason: string) =>
      resetBreaker({ ledger, breakers, now, ledgerTimeoutMs: deadlines.ledgerMs }, target, actor, reason),
    activateBundle: (hash: string, actor: Actor, reason: string) =>
      activateWithApprovals(
        { approvals: deps.approvals, bundles, derivationKey, now },
        hash,
        actor,
        (a?: ActivationApproval) => bundles.activate(hash, actor, reason, a),
      ),
    ...(deps.approvals === undefined ? {} : { approvals: deps.approvals }),
    async isRetry(
      r: Pick<GovernedRequest, 'request_id' | 'identity' | 'tenant' | 'tool' | 'params' | 'session'> & {
        readonly owner?: string | null;
      },
    ): Promise<boolean> {
      if (deps.approvals === undefined) return false;
      try {
        const id = deriveDecisionId(derivationKey, r, computeParamsSha256(r.params));
        const p = await deps.approvals.get(id);
        // A retry under another owner than the held call's is not that call's retry.
        if (p !== undefined && r.owner !== undefined && p.owner !== r.owner) return false;
        return p !== undefined && p.status !== 'issued';
      } catch {
        return false;
      }
    },
  });
}

/** The shape of a scheduled run as the Gate hands it in; its meaning is checked by `checkRun`. */
function isScheduledRun(r: unknown): boolean {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  return (
    isRequestString(o['id']) &&
    isRequestString(o['decision_id']) &&
    typeof o['spec'] === 'object' &&
    o['spec'] !== null &&
    !Array.isArray(o['spec']) &&
    Number.isSafeInteger(o['slot_start'])
  );
}
