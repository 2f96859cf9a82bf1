/**
 * A separate Gate's ports to the Control Plane process (`failclosed serve gate`, docs/deployment.md
 * "Separate Gate"; SPEC §1 separation of powers, FC-INV-6, L7 mutual TLS between roles).
 *
 * The Gate process holds no signing key: the Control Plane process (`failclosed up` with
 * `internal_port`) decides, signs envelopes and holds the one ledger writer. This module is the
 * Gate's side of that link, over mutual TLS to the Control Plane process's internal listener:
 * - {@link createRemoteControlPlane}: `decide`, `ready`, `isRetry` and the issuer's public keys;
 * - {@link createRemoteGateLedger}: evidence, the Gate's own entries, the evidence view's reads.
 *
 * Every answer is untrusted input: bounded in size and time, parsed strictly, closed in shape.
 * Anything else is a deny (`ERR_CONTROL_PLANE_UNAVAILABLE` for a decision, a rejection that the
 * Gate maps to `ERR_LEDGER_UNAVAILABLE` for the ledger): a Gate that cannot read its Control
 * Plane's answer never calls the Execution Layer (FC-INV-4, GEI).
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  FailclosedError,
  canonicalize,
  deny,
  isDenialCode,
  isLedgerRef,
  parseJson,
  uriTemplatePattern,
  withDeadline,
} from '../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../kernel/index.js';
import type { ControlPlaneResult, LedgerRef } from '../control-plane/index.js';
import type {
  CatalogListing,
  CheckpointView,
  GateControlPlane,
  McpEntryInfo,
  GateLedger,
  GatewayEvent,
  LedgerEntryView,
} from '../gate/index.js';
import { settlesView } from '../gate/index.js';
import { gateRequest } from './executor-node.js';
import type { GateLink } from './executor-node.js';

/** Largest answer read from the Control Plane process (an evidence view's entries, a blob). */
const MAX_ANSWER = 8 * 1024 * 1024;
/** Largest envelope (compact JWS) accepted from the Control Plane. */
const MAX_ENVELOPE = 64 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const onlyKeys = (o: JsonObject, keys: readonly string[]): boolean =>
  Object.keys(o).every((k) => keys.includes(k));

/** POSTs (or GETs) `path` and parses a 200 answer strictly; rejects on anything else. */
async function ask(
  link: GateLink,
  method: 'GET' | 'POST',
  path: string,
  body: JsonValue | undefined,
): Promise<{ readonly status: number; readonly value: JsonValue }> {
  const a = await gateRequest(link, method, path, body, MAX_ANSWER);
  return { status: a.status, value: parseJson(a.body, { maxBytes: MAX_ANSWER, maxDepth: 64 }) };
}

/**
 * A decision as the wire carries it, or undefined when it is not exactly one of the two shapes
 * the Control Plane answers (an allow with its envelope and confirmed decision record; a deny
 * with a known code).
 */
export function decisionOf(v: JsonValue): ControlPlaneResult | undefined {
  if (!isObject(v)) return undefined;
  if (v['outcome'] === 'allow') {
    if (!onlyKeys(v, ['outcome', 'decision_id', 'envelope', 'decision_ref', 'policy_bundle']))
      return undefined;
    const { decision_id, envelope, decision_ref, policy_bundle } = v;
    if (typeof decision_id !== 'string' || decision_id.length === 0 || decision_id.length > 256)
      return undefined;
    if (typeof envelope !== 'string' || envelope.length > MAX_ENVELOPE || !JWS.test(envelope))
      return undefined;
    if (typeof policy_bundle !== 'string' || !HEX64.test(policy_bundle)) return undefined;
    if (
      !isObject(decision_ref) ||
      !onlyKeys(decision_ref, ['index', 'entry_hash']) ||
      !isLedgerRef(decision_ref)
    )
      return undefined;
    return Object.freeze({
      outcome: 'allow',
      decision_id,
      envelope,
      decision_ref: Object.freeze({ index: decision_ref.index, entry_hash: decision_ref.entry_hash }),
      policy_bundle,
    });
  }
  if (v['outcome'] === 'deny') {
    if (!onlyKeys(v, ['outcome', 'code', 'reason', 'decision_id'])) return undefined;
    const { code, reason, decision_id } = v;
    if (!isDenialCode(code) || typeof reason !== 'string' || reason.length > 1024) return undefined;
    if (decision_id !== null && (typeof decision_id !== 'string' || decision_id.length > 256))
      return undefined;
    return Object.freeze({ outcome: 'deny', code, reason, decision_id });
  }
  return undefined;
}

/** Options of {@link createRemoteControlPlane}. */
export interface RemoteControlPlaneOptions {
  readonly link: GateLink;
  /** Most a decision may wait for approvals (`waitMs`, long-poll) beyond the link's deadline. */
  readonly maxWaitMs?: number;
  /** True when the Gate has a queue for background calls: only then is one asked to be decided. */
  readonly background?: boolean;
}

/**
 * The Gate's Control Plane port over the Control Plane process's internal listener. `decide`
 * never rejects: no answer, a non-200 answer without a well-formed deny, or garbage is
 * `ERR_CONTROL_PLANE_UNAVAILABLE`. The link gives up before the Gate does (`gate-node.ts`) and
 * closes its connection, and the Control Plane voids an allow it could not write in full
 * (`gate-routes.ts`): an envelope whose answer was lost is taken out of use, and the request is
 * never issued another.
 */
export function createRemoteControlPlane(options: RemoteControlPlaneOptions): GateControlPlane {
  const { link } = options;
  const maxWaitMs = options.maxWaitMs ?? 60_000;
  const unavailable = (reason: string): Deny & { readonly decision_id: null } =>
    Object.freeze({ ...deny('ERR_CONTROL_PLANE_UNAVAILABLE', reason), decision_id: null });
  return {
    async decide(req, decideOptions) {
      const waitMs = Math.min(Math.max(0, Math.trunc(decideOptions?.waitMs ?? 0)), maxWaitMs);
      const body: JsonObject = {
        request_id: req.request_id,
        trace_id: req.trace_id,
        identity: req.identity,
        tenant: req.tenant,
        roles: [...(req.roles ?? [])],
        tool: req.tool,
        params: req.params,
        timestamp: req.timestamp,
        session: req.session,
        request_sha256: req.request_sha256,
        wait_ms: waitMs,
        ...(req.background === true ? { background: true } : {}),
        // An MCP call goes with the token it was authenticated with (and a bound token with its
        // message): the Control Plane authenticates it again and takes the owner from that
        // token, never from the Gate.
        ...(decideOptions?.credential === undefined ? {} : { credential: decideOptions.credential }),
        ...(decideOptions?.credential === undefined || decideOptions.message === undefined
          ? {}
          : { message: decideOptions.message }),
      };
      // A schedule's run never comes through a separate Gate, nor an owner without its token.
      if (req.schedule !== undefined || (req.owner !== undefined && decideOptions?.credential === undefined))
        return unavailable('a separate Gate submits signed calls and authenticated MCP calls only');
      // Nor a background call of a Gate without a queue: nothing is decided for one.
      if (req.background === true && options.background !== true)
        return Object.freeze({
          ...deny('ERR_QUEUE_UNAVAILABLE', 'a separate Gate takes no background calls'),
          decision_id: null,
        });
      try {
        const a = await ask(
          { ...link, timeoutMs: link.timeoutMs + waitMs },
          'POST',
          '/v1/internal/cp/decide',
          body,
        );
        const d = decisionOf(a.value);
        if (d === undefined) return unavailable('the Control Plane answered garbage');
        // An allow only ever comes with 200; a deny keeps its code whatever the status.
        if (d.outcome === 'allow' && a.status !== 200)
          return unavailable('the Control Plane answered garbage');
        return d;
      } catch {
        return unavailable('the Control Plane did not answer');
      }
    },
    async ready() {
      try {
        const a = await ask(link, 'GET', '/v1/internal/cp/ready', undefined);
        const v = a.value;
        if (a.status === 200 && isObject(v) && v['ready'] === true) return { ready: true };
        const reason =
          isObject(v) && typeof v['reason'] === 'string' ? v['reason'].slice(0, 256) : 'not ready';
        return { ready: false, reason: `control plane: ${reason}` };
      } catch {
        return { ready: false, reason: 'control plane: no answer' };
      }
    },
    async issuerJwks() {
      const a = await ask(link, 'GET', '/v1/internal/issuer-jwks', undefined);
      if (a.status !== 200 || !isObject(a.value) || !isObject(a.value['jwks']))
        throw new Error('the Control Plane answered garbage');
      return a.value['jwks'];
    },
    async isRetry(r) {
      // The owner an MCP retry's token named: a question only. The decision that follows takes
      // the owner from the token itself (`gate-routes.ts`).
      const a = await ask(link, 'POST', '/v1/internal/cp/is-retry', {
        request_id: r.request_id,
        identity: r.identity,
        tenant: r.tenant,
        tool: r.tool,
        params: r.params,
        session: r.session,
        ...(r.owner === undefined ? {} : { owner: r.owner }),
      });
      if (a.status !== 200 || !isObject(a.value) || typeof a.value['retry'] !== 'boolean')
        throw new Error('the Control Plane answered garbage');
      return a.value['retry'];
    },
    async callableTools(principal) {
      const a = await ask(link, 'POST', '/v1/internal/cp/tools', {
        identity: principal.identity,
        tenant: principal.tenant,
        roles: [...principal.roles],
      });
      return listingsOf(a, 'tools');
    },
    async mcpEntries() {
      return listingsOf(await ask(link, 'GET', '/v1/internal/cp/mcp-entries', undefined), 'entries');
    },
  };
}

/** Most bundle entries one listing answer may hold. */
const MAX_LISTINGS = 10_000;
const ENTRY_KINDS: readonly McpEntryInfo['kind'][] = ['prompt', 'resource', 'template', 'completion'];

/** One listed bundle entry as the wire carries it, or undefined when it is not exactly one. */
export function listingOf(v: JsonValue): CatalogListing | undefined {
  if (!isObject(v) || !onlyKeys(v, ['name', 'description', 'inputSchema', 'mcp'])) return undefined;
  const { name, description, inputSchema, mcp } = v;
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) return undefined;
  if (typeof description !== 'string' || description.length > 64 * 1024) return undefined;
  if (!isObject(inputSchema)) return undefined;
  if (mcp === undefined) return Object.freeze({ name, description, inputSchema });
  if (!isObject(mcp) || !onlyKeys(mcp, ['kind', 'upstream', 'definition'])) return undefined;
  const { kind, upstream, definition } = mcp;
  if (typeof kind !== 'string' || !(ENTRY_KINDS as readonly string[]).includes(kind)) return undefined;
  if (typeof upstream !== 'string' || upstream.length > 8192 || !isObject(definition)) return undefined;
  // A template's URIs are matched by the pattern its template gives, derived here again: a
  // pattern is never taken from the wire.
  const pattern = kind === 'template' ? uriTemplatePattern(upstream) : undefined;
  if (kind === 'template' && pattern === undefined) return undefined;
  return Object.freeze({
    name,
    description,
    inputSchema,
    mcp: Object.freeze({
      kind: kind as McpEntryInfo['kind'],
      upstream,
      definition,
      ...(pattern === undefined ? {} : { pattern: new RegExp(pattern) }),
    }),
  });
}

/** A listing answer (`{[field]: CatalogListing[]}`), or a rejection when it is not exactly one. */
function listingsOf(
  a: { readonly status: number; readonly value: JsonValue },
  field: 'tools' | 'entries',
): readonly CatalogListing[] {
  const list = isObject(a.value) && onlyKeys(a.value, [field]) ? a.value[field] : undefined;
  if (a.status !== 200 || !Array.isArray(list) || list.length > MAX_LISTINGS)
    throw new Error('the Control Plane answered garbage');
  const out: CatalogListing[] = [];
  for (const item of list as readonly JsonValue[]) {
    const l = listingOf(item);
    if (l === undefined) throw new Error('the Control Plane answered garbage');
    out.push(l);
  }
  return Object.freeze(out);
}

/** A listed bundle entry as it goes on the wire (a template's pattern is derived again there). */
export function wireListing(l: CatalogListing): JsonObject {
  return {
    name: l.name,
    description: l.description,
    inputSchema: l.inputSchema,
    ...(l.mcp === undefined
      ? {}
      : { mcp: { kind: l.mcp.kind, upstream: l.mcp.upstream, definition: l.mcp.definition } }),
  };
}

/**
 * Whether a value (what the Gate would store of a request: its parameters, session and request
 * id) holds a secret value the Control Plane process knows (a keyless Gate knows none): its
 * `/v1/internal/cp/secret-values` answer, exactly `{ found: boolean }`; anything else rejects,
 * and the Gate denies `ERR_CONTROL_PLANE_UNAVAILABLE` (scenario 16, OE-INV-009).
 */
export function createRemoteSecretValues(link: GateLink): (params: JsonValue) => Promise<boolean> {
  return async (params) => {
    const a = await ask(link, 'POST', '/v1/internal/cp/secret-values', { params });
    const v = a.value;
    if (a.status !== 200 || !isObject(v) || !onlyKeys(v, ['found']) || typeof v['found'] !== 'boolean')
      throw new Error('the Control Plane answered garbage');
    return v['found'];
  };
}

/** A ledger entry read back over the wire, or undefined. */
function entryViewOf(v: JsonValue): LedgerEntryView | undefined {
  if (!isObject(v) || typeof v['type'] !== 'string' || !isLedgerRef(v)) return undefined;
  return v as unknown as LedgerEntryView;
}

/** Whether `entry` records exactly `e` (its type, request, trace, tenant, Gate actor and payload `want`, canonical). */
function sameEntry(entry: LedgerEntryView, e: GatewayEvent, want: string): boolean {
  const actor = entry['actor'];
  const payload = entry['payload'];
  return (
    entry.type === e.type &&
    entry['request_id'] === e.request_id &&
    entry['trace_id'] === e.trace_id &&
    entry['tenant'] === e.tenant &&
    isObject(actor) &&
    actor['id'] === e.identity &&
    actor['role'] === 'gate' &&
    isObject(payload) &&
    canonicalize(payload) === want
  );
}

/** Exactly a refusal of the writer with `code`. */
function isRefusal(v: JsonValue, code: string): boolean {
  return (
    isObject(v) && onlyKeys(v, ['outcome', 'code', 'reason']) && v['outcome'] === 'deny' && v['code'] === code
  );
}

/** Exactly the writer's refusal of evidence that holds a secret value. */
function isSecretRefusal(v: JsonValue): boolean {
  return isRefusal(v, 'ERR_PARAMS_SECRET');
}

/** The pause between two tries of an outcome whose answer was lost. */
const OUTCOME_RETRY_MS = 100;

/** The pause between two background rounds over outcomes not confirmed within their call. */
const UNSETTLED_RETRY_MS = 1000;

/** When a `gateway.accepted` whose answer was lost is read back (ms after, then after that). */
const ACCEPTED_CHECKS_MS: readonly number[] = [3000, 30_000];

/** The most outcomes a Gate keeps trying in the background (beyond, swept when it stops). */
const MAX_UNSETTLED = 10_000;

/**
 * The Gate's ledger port over the Control Plane process's internal listener (the one ledger
 * writer). Rejects on anything but a well-formed confirmation; the Gate then denies
 * `ERR_LEDGER_UNAVAILABLE` (GEI "If the ledger write fails, the tool does not run").
 */
export function createRemoteGateLedger(
  link: GateLink,
  ledgerMs: number,
  options: {
    /**
     * This Gate's instance id while it holds its lease, else undefined: named as the owner
     * (`gate_instance`) of every request it accepts, so that its requests are recorded abandoned
     * once it is gone (FC-INV-5). While it holds none, it accepts no request
     * (`ERR_LEDGER_UNAVAILABLE`).
     */
    readonly owner?: () => string | undefined;
  } = {},
): GateLedger & {
  /** Outcomes still being tried in the background (see `later`). */
  unsettled(): number;
  /** Stops trying them: the Gate is stopping. */
  close(): void;
} {
  const post = async (path: string, body: JsonValue, withinMs = ledgerMs): Promise<JsonValue> => {
    const r = await withDeadline(() => ask(link, 'POST', path, body), withinMs);
    if (r.status !== 'ok') throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'no answer');
    if (r.value.status !== 200) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'refused');
    return r.value.value;
  };
  const ref = (v: JsonValue): LedgerRef => {
    if (!isObject(v) || !onlyKeys(v, ['index', 'entry_hash']) || !isLedgerRef(v))
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger writer answered garbage');
    return Object.freeze({ index: v.index, entry_hash: v.entry_hash });
  };

  /**
   * An outcome closing one attempt (`GatewayEvent.closes`), tried until confirmed within
   * `ledgerMs`. An outcome is appended only while its attempt is open, so a try whose answer was
   * lost (the Control Plane process killed mid-append, a reset, its deadline while the append was
   * queued) can be made again on the same process or a standby without ever recording a second
   * outcome (FC-INV-5). When a later try finds the request closed, the request's entries say
   * whether the outcome recorded is exactly this one (the lost try's): then it is confirmed;
   * otherwise another closed it first (`ERR_LEDGER_REQUEST_CLOSED`). A definite refusal (a
   * malformed entry, a secret value) is not tried again.
   */
  const closeOnce = async (e: GatewayEvent, body: JsonObject): Promise<LedgerRef> => {
    const end = performance.now() + ledgerMs;
    // Tries stop this much before the end: a try found closed still has the time to read.
    const tries = end - Math.min(1000, ledgerMs / 4);
    let unsure = false;
    let pause = OUTCOME_RETRY_MS;
    for (;;) {
      const r = await withDeadline(
        () => ask(link, 'POST', '/v1/internal/gate/event', body),
        Math.max(1, tries - performance.now()),
      );
      if (r.status === 'ok' && r.value.status === 200) return ref(r.value.value);
      if (
        r.status === 'ok' &&
        r.value.status === 409 &&
        isRefusal(r.value.value, 'ERR_LEDGER_REQUEST_CLOSED')
      ) {
        const own = unsure ? await recorded(e, Math.max(1, end - performance.now())) : undefined;
        if (own !== undefined) return own;
        throw new FailclosedError('ERR_LEDGER_REQUEST_CLOSED', 'the request already has an outcome record');
      }
      if (r.status === 'ok' && r.value.status < 500)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'refused');
      // No answer, or the writer did not confirm in time: the append may still have happened.
      unsure = true;
      if (tries - performance.now() <= pause) {
        later(body);
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'no answer');
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      // Backing off: a Control Plane process failing fast is not asked fifty times per call.
      pause = Math.min(pause * 2, UNSETTLED_RETRY_MS);
    }
  };

  /**
   * Outcomes not confirmed within their call's deadline (every Control Plane process gone or
   * failing for that long), tried again in the background every second until one answers: else
   * their requests would stay open for as long as this Gate lives, since they are its own. Their
   * calls were denied (`ERR_LEDGER_UNAVAILABLE`) and their envelopes voided, or reported consumed
   * when the tool had run; an outcome recorded later says what happened, once. A Gate that stops
   * with some left releases its lease, and a Control Plane process records those requests
   * abandoned. Keyed by the attempt each closes; at most {@link MAX_UNSETTLED}.
   */
  const unsettled = new Map<number, JsonObject>();
  let retrying: NodeJS.Timeout | undefined;
  let stopped = false;
  const later = (body: JsonObject): void => {
    const at = body['closes'];
    if (stopped || typeof at !== 'number' || unsettled.size >= MAX_UNSETTLED) return;
    unsettled.set(at, body);
    retrying ??= setTimeout(() => void settleLater(), UNSETTLED_RETRY_MS);
    retrying.unref();
  };
  const settleLater = async (): Promise<void> => {
    for (const [at, body] of [...unsettled]) {
      if (stopped) return;
      const r = await withDeadline(() => ask(link, 'POST', '/v1/internal/gate/event', body), ledgerMs);
      // No answer: no Control Plane process is there; the next round tries again.
      if (r.status !== 'ok') break;
      // Recorded, or closed by now (by this very outcome, or by another), or refused for good;
      // one its writer keeps failing does not hold up the others.
      if (r.value.status < 500) unsettled.delete(at);
    }
    retrying = undefined;
    if (!stopped && unsettled.size > 0) {
      retrying = setTimeout(() => void settleLater(), UNSETTLED_RETRY_MS);
      retrying.unref();
    }
  };

  /** The entry recording exactly `e` after the attempt it closes, if the ledger holds one. */
  const recorded = async (e: GatewayEvent, withinMs: number): Promise<LedgerRef | undefined> => {
    const after = e.closes;
    if (e.request_id === null || after === undefined) return undefined;
    const want = canonicalize(e.payload);
    const entry = (await entriesOf(e.request_id, withinMs)).find(
      (x) => x.index > after && sameEntry(x, e, want),
    );
    return entry === undefined
      ? undefined
      : Object.freeze({ index: entry.index, entry_hash: entry.entry_hash });
  };

  /** The entries of one request as the writer holds them (the read is recorded as the Gate's). */
  const entriesOf = async (requestId: string, withinMs: number): Promise<LedgerEntryView[]> => {
    const v = await post('/v1/internal/gate/entries', { request_id: requestId }, withinMs);
    const list = isObject(v) ? v['entries'] : undefined;
    if (!Array.isArray(list)) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'garbage');
    return (list as readonly JsonValue[]).map((x) => {
      const entry = entryViewOf(x);
      if (entry === undefined || entry['request_id'] !== requestId)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'garbage');
      return entry;
    });
  };
  /**
   * A `gateway.accepted` whose answer was lost: it may be in the ledger, or be appended later by a
   * writer past its deadline, while the Gate denied the call. Read back a few seconds later and
   * again later still: an attempt found with no outcome after it gets the Gate's denial, closing
   * exactly it (tried like any unconfirmed outcome). Each read is recorded as the Gate's read.
   */
  const watches = new Set<NodeJS.Timeout>();
  const watchAccepted = (e: GatewayEvent, payload: JsonObject): void => {
    const check = async (rest: readonly number[]): Promise<void> => {
      if (stopped || e.request_id === null) return;
      try {
        const list = await entriesOf(e.request_id, ledgerMs);
        const want = canonicalize(payload);
        const mine = list.find((x) => sameEntry(x, e, want));
        if (mine !== undefined) {
          if (!list.some((x) => x.index > mine.index && x['trace_id'] === e.trace_id && settlesView(x)))
            later({
              type: 'gateway.failed',
              trace_id: e.trace_id,
              request_id: e.request_id,
              tenant: e.tenant,
              identity: e.identity,
              payload: {
                code: 'ERR_LEDGER_UNAVAILABLE',
                status: 'ledger',
                outcome: 'deny',
                ...(typeof payload['tool'] === 'string' ? { tool: payload['tool'] } : {}),
                ...(typeof payload['client'] === 'string' ? { client: payload['client'] } : {}),
              },
              closes: mine.index,
            });
          return;
        }
      } catch {
        // Not readable now: the next check reads again.
      }
      schedule(rest);
    };
    const schedule = (rest: readonly number[]): void => {
      const [next, ...after] = rest;
      if (next === undefined || stopped) return;
      const t = setTimeout(() => {
        watches.delete(t);
        void check(after);
      }, next);
      t.unref();
      watches.add(t);
    };
    schedule(ACCEPTED_CHECKS_MS);
  };

  return {
    unsettled: () => unsettled.size,
    close() {
      stopped = true;
      clearTimeout(retrying);
      for (const t of watches) clearTimeout(t);
      watches.clear();
    },
    async putEvidence(bytes, mediaType) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      const r = await withDeadline(
        () =>
          ask(link, 'POST', '/v1/internal/gate/evidence', {
            media_type: mediaType,
            body: Buffer.from(bytes).toString('base64'),
          }),
        ledgerMs,
      );
      if (r.status !== 'ok') throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'no answer');
      // The one refusal with a code of its own: the writer found a secret value it knows in the
      // request (scenario 16), and stored nothing. Anything else is the ledger being unavailable.
      if (r.value.status === 400 && isSecretRefusal(r.value.value))
        throw new FailclosedError('ERR_PARAMS_SECRET', 'the request carries a secret value');
      if (r.value.status !== 200) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'refused');
      const v = r.value.value;
      // The writer stores what was sent: any other hash is not this blob.
      if (!isObject(v) || v['sha256'] !== sha)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger writer answered garbage');
      return sha;
    },
    async appendGatewayEvent(e) {
      let payload = e.payload;
      if (e.type === 'gateway.accepted' && options.owner !== undefined) {
        const owner = options.owner();
        if (owner === undefined)
          throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'this Gate holds no instance lease');
        payload = { ...payload, gate_instance: owner };
      }
      const body: JsonObject = {
        type: e.type,
        trace_id: e.trace_id,
        request_id: e.request_id,
        tenant: e.tenant,
        identity: e.identity,
        payload,
      };
      if (e.closes !== undefined) return closeOnce(e, { ...body, closes: e.closes });
      if (e.type !== 'gateway.accepted') return ref(await post('/v1/internal/gate/event', body));
      const r = await withDeadline(() => ask(link, 'POST', '/v1/internal/gate/event', body), ledgerMs);
      if (r.status === 'ok' && r.value.status === 200) return ref(r.value.value);
      // Unsure whether it is, or will be, in the ledger: the Gate denies the call; if it turns
      // out to be there, nothing else would ever close it while this Gate lives.
      if (r.status !== 'ok' || r.value.status >= 500) watchAccepted(e, payload);
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', r.status === 'ok' ? 'refused' : 'no answer');
    },
    // Raw evidence is never served to a separate Gate (it reads only through the evidence view).
    getEvidence: () =>
      Promise.reject(new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'raw evidence is not served to a Gate')),
    async jobResult(requestId, token) {
      const v = await post('/v1/internal/gate/job-result', { request_id: requestId, token });
      const body = isObject(v) && onlyKeys(v, ['body']) ? v['body'] : undefined;
      if (body === null) return undefined;
      if (typeof body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body))
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger writer answered garbage');
      return new Uint8Array(Buffer.from(body, 'base64'));
    },
    entriesForRequest: (requestId) => entriesOf(requestId, ledgerMs),
    async latestCheckpoint() {
      const v = await post('/v1/internal/gate/checkpoint', {});
      const c = isObject(v) ? v['checkpoint'] : undefined;
      if (c === null) return null;
      if (
        !isObject(c) ||
        !Number.isSafeInteger(c['size']) ||
        typeof c['root_hash'] !== 'string' ||
        !HEX64.test(c['root_hash']) ||
        typeof c['note'] !== 'string'
      )
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'garbage');
      return {
        size: c['size'] as number,
        root_hash: c['root_hash'],
        note: c['note'],
      } satisfies CheckpointView;
    },
    async proveInclusion(index, treeSize) {
      const v = await post('/v1/internal/gate/prove', { index, size: treeSize });
      const proof = isObject(v) ? v['proof'] : undefined;
      if (
        !Array.isArray(proof) ||
        proof.length > 64 ||
        !proof.every((h) => typeof h === 'string' && HEX64.test(h))
      )
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'garbage');
      return proof as string[];
    },
    async recordRead(read) {
      return ref(
        await post('/v1/internal/gate/read', {
          reader: { id: read.reader.id, role: read.reader.role },
          request_id: read.request_id,
          scope: read.scope,
        }),
      );
    },
  };
}
