/**
 * The Control Plane process's routes for separate Gate processes (`failclosed serve gate`,
 * docs/deployment.md "Separate Gate"; SPEC §1 separation of powers, FC-INV-6, L7 mutual TLS
 * between roles), served on its internal listener to peers whose certificate names the `gate`
 * role, and only to them:
 *
 * - `POST /v1/internal/cp/decide`: one decision (SPEC §2 steps 3–5) of a signed call;
 * - `POST /v1/internal/cp/is-retry`, `GET /v1/internal/cp/ready`;
 * - `POST /v1/internal/cp/tools`, `GET /v1/internal/cp/mcp-entries`: what MCP lists (a listing
 *   decides nothing);
 * - `POST /v1/internal/gate/{evidence, event, entries, checkpoint, prove, read}`: the Gate's
 *   evidence, its own entries (`gateway.*`, `audit.read`, actor role pinned to `gate`), and the
 *   reads of the evidence view. Raw evidence is never served back to a Gate (but a background
 *   call's result, to the holder of its job token: `POST /v1/internal/gate/job-result`), and every
 *   read of a request's entries is itself recorded (`audit.read` by the `gate` role), whoever
 *   asked for it.
 *
 * **The Control Plane takes no Gate's word for who asked** (FC-INV-3, FC-INV-6). A decision names
 * the SHA-256 of the raw signed request, which the Gate stored as evidence first; the Control
 * Plane reads those bytes back from its own ledger, parses them, checks the client's signature
 * against its own client registry, and decides on what the client signed, with the roles and
 * tenant of the registry. A claim that differs from the signed request in any field, or names
 * bytes that are not a validly signed request of an active client, is denied
 * `ERR_REQUEST_SIGNATURE`. An MCP call a Gate minted comes with the bearer token it was
 * authenticated by, and is authenticated again from it here (`mintedRequestOf`). A request
 * signed outside the timestamp tolerance is denied `ERR_REQUEST_TIMESTAMP` here too, and a
 * request whose envelope was already issued is never issued another (`ERR_REQUEST_REPLAYED`): the Gates' shared replay table is their own check,
 * this one is the Control Plane's, made by construction: the request is claimed in the shared
 * store by one atomic insert before it is decided (`decision-claims.ts`), so of any number of
 * asks in any number of Control Plane processes on that store one decides and the others are
 * refused. So a Gate, even compromised, can refuse or briefly delay calls (within the
 * tolerance), but cannot have an envelope issued for a call no registered client signed, nor a
 * second one for a call that had its own. (The registry is the Control Plane's: a Gate's
 * database role can only read it, `deploy/postgres/gate-role.sql`; neither it nor the Execution
 * Layer's role has any privilege on the claims.)
 *
 * An allow that cannot be handed to the Gate (the connection closed before the answer was
 * written in full) has its envelope voided at once through the Execution Layer, as the Gate
 * itself voids an envelope it cannot use (docs/envelope.md "Voiding").
 *
 * Bodies are untrusted input (strict JSON, size bounds, closed shapes).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  FailclosedError,
  MAX_OUTPUT_BYTES,
  MAX_TEMPLATE_URI_LENGTH,
  canonicalize,
  deny,
  parseJson,
  requestSigningInput,
  sha256Hex,
  hexDigestEquals,
  verifyEd25519,
  withDeadline,
} from '../kernel/index.js';
import type { DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import { parseSignedRequest } from '../gate/index.js';
import { boundCallOf, CLIENT_ROLE_RE, MAX_CLIENT_ROLES } from '../gate/index.js';
import type { BoundCall, McpAuthenticator } from '../gate/index.js';
import { parseMintedEvidence } from '../verify/index.js';
import type { MintedEvidence } from '../verify/index.js';
import { wireListing } from './control-plane-link.js';
import type {
  ControlPlaneResult,
  DecisionClaimKey,
  DecisionClaimStore,
  GovernedRequest,
} from '../control-plane/index.js';
import type {
  ClientRegistry,
  GateControlPlane,
  GateExecutor,
  GateLedger,
  GatewayEvent,
} from '../gate/index.js';
import { readCapped } from '../transport/index.js';
import type { PeerIdentity } from '../transport/index.js';
import type { LedgerPort } from './ports.js';

/**
 * Largest evidence a Gate stores, base64: a signed request (at most 256 KiB) or a background
 * call's result, which the executor bounds by `MAX_OUTPUT_BYTES` (kernel/answer-limits.ts).
 */
const MAX_EVIDENCE_BASE64 = Math.ceil(Math.max(256 * 1024, MAX_OUTPUT_BYTES) / 3) * 4;
/**
 * Largest body a Gate sends: evidence with its media type; an MCP call's decision carries its
 * parameters and, base64, the message its token is bound to.
 */
const MAX_BODY = Math.max(1024 * 1024, MAX_EVIDENCE_BASE64 + 64 * 1024);
/** Longest message, base64, a decision may carry (an MCP request is at most 256 KiB). */
const MAX_MESSAGE = Math.ceil((256 * 1024) / 3) * 4;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const GATEWAY_TYPES: readonly GatewayEvent['type'][] = [
  'gateway.accepted',
  'gateway.completed',
  'gateway.failed',
  'gateway.queued',
];

/** What the Control Plane process serves separate Gates. */
export interface GateRoutes {
  /** The Control Plane as the in-process Gate calls it. */
  readonly controlPlane: GateControlPlane;
  /** The ledger as the in-process Gate reads and writes it. */
  readonly ledger: GateLedger;
  /** The ledger writer (evidence blobs). */
  readonly ledgerPort: Pick<LedgerPort, 'putEvidence'>;
  /** The client registry the signatures are checked against. */
  readonly clients: ClientRegistry;
  /**
   * The claims of requests decided for Gates, shared by every Control Plane process on the
   * storage: only the asker that claims a request decides it.
   */
  readonly claims: Pick<DecisionClaimStore, 'claim'>;
  /** Voids an envelope that could not be handed to its Gate. */
  readonly executor: Pick<GateExecutor, 'void'>;
  /**
   * True when a text holds the value of a secret this process knows (see `Core.secretValueIn`).
   * A Gate's request evidence that holds one is refused `ERR_PARAMS_SECRET` and not stored.
   */
  readonly secretValueIn: (text: string) => boolean;
  /** The Control Plane's clock (ms) and its accepted skew of request timestamps either way. */
  readonly now: () => number;
  readonly timestampToleranceMs: number;
  /** Deadline (ms) of one ledger or registry call; default 2000. */
  readonly ledgerMs?: number;
  /** Most a decision may wait for approvals (ms); default 60000. */
  readonly maxWaitMs?: number;
  /**
   * True on a ledger whose open requests have owners (PostgreSQL): a Gate's `gateway.accepted`
   * may then name the Gate instance that owns the request (`gate_instance`). Elsewhere that
   * field is refused.
   */
  readonly gateOwners?: boolean;
  /**
   * Authenticates the bearer token a keyless Gate forwards with an MCP call (the same
   * authenticator as an MCP endpoint's, over this process's client registry and `mcp` issuer,
   * for the resource the Gates serve; docs/mcp.md "Through keyless Gates"). Absent: no MCP call
   * of a Gate is decided (`ERR_REQUEST_SIGNATURE`).
   */
  readonly bearer?: McpAuthenticator;
}

/** A keyless Gate's instance id as its `gateway.accepted` may name it: `gate/` and printable ASCII. */
const GATE_INSTANCE = /^gate\/[\x21-\x7e]{1,190}$/;

/** An answer of one route. */
export interface RouteAnswer {
  readonly status: number;
  readonly body: JsonValue;
  /** Called when the answer could not be written in full (the Gate went away first). */
  readonly undelivered?: () => void;
}

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const str = (v: JsonValue | undefined, max = 256): string | undefined =>
  typeof v === 'string' && v.length <= max ? v : undefined;

/**
 * Whether `value`, in canonical form (an escape such as `\u0073` in the bytes it came from hides
 * nothing there), holds a known secret value; a scanner that throws counts as a find.
 */
function secretValueHeld(secretValueIn: (text: string) => boolean, value: JsonValue): boolean {
  try {
    return secretValueIn(canonicalize(value));
  } catch {
    return true;
  }
}

/**
 * Whether request evidence `bytes` hold a known secret value in their parameters, session or
 * request id ({@link secretValueHeld}); bytes that are not a JSON object with `parameters` are
 * searched as text. The Gate asked first (`/v1/internal/cp/secret-values`); this holds against
 * one that did not.
 */
function holdsSecretValue(bytes: Uint8Array, secretValueIn: (text: string) => boolean): boolean {
  let parsed: JsonValue | undefined;
  try {
    parsed = parseJson(bytes, { maxBytes: MAX_BODY, maxDepth: 64 });
  } catch {
    parsed = undefined;
  }
  if (isObject(parsed) && 'parameters' in parsed)
    return secretValueHeld(secretValueIn, {
      parameters: parsed['parameters'] ?? null,
      session: parsed['session'] ?? null,
      request_id: parsed['request_id'] ?? null,
    });
  try {
    return secretValueIn(Buffer.from(bytes).toString('utf8'));
  } catch {
    return true;
  }
}

const refuse = (code: DenialCode, reason: string, status = 400): RouteAnswer => ({
  status,
  body: { outcome: 'deny', code, reason },
});

/** The decision's answer on the wire: exactly the {@link ControlPlaneResult} fields. */
function wireOf(r: ControlPlaneResult): RouteAnswer {
  if (r.outcome === 'allow')
    return {
      status: 200,
      body: {
        outcome: 'allow',
        decision_id: r.decision_id,
        envelope: r.envelope,
        decision_ref: { index: r.decision_ref.index, entry_hash: r.decision_ref.entry_hash },
        policy_bundle: r.policy_bundle,
      },
    };
  return {
    status: 200,
    body: { outcome: 'deny', code: r.code, reason: r.reason, decision_id: r.decision_id },
  };
}

/** Longest bearer token a Gate may forward (as the MCP endpoint accepts, `mcp/auth.ts`). */
const MAX_CREDENTIAL = 8192;

/**
 * What a Gate asks a decision for: the call as it claims it, how long it may wait for approvals,
 * and for an MCP call the bearer token it was authenticated with.
 */
type Claim = GovernedRequest & {
  readonly wait_ms: number;
  readonly credential?: string;
  /** The message a client-key `credential` is bound to, base64. */
  readonly message?: string;
};

/** The claim a Gate sends with `decide`, shape-checked; undefined when malformed. */
function claimOf(v: JsonValue): Claim | undefined {
  if (!isObject(v)) return undefined;
  const allowed = [
    'request_id',
    'trace_id',
    'identity',
    'tenant',
    'roles',
    'tool',
    'params',
    'timestamp',
    'session',
    'request_sha256',
    'wait_ms',
    'credential',
    'message',
    'background',
  ];
  if (!Object.keys(v).every((k) => allowed.includes(k))) return undefined;
  const request_id = str(v['request_id']);
  const trace_id = str(v['trace_id']);
  const identity = str(v['identity']);
  const tenant = str(v['tenant']);
  const tool = str(v['tool']);
  const sha = str(v['request_sha256']);
  const session = v['session'];
  const timestamp = v['timestamp'];
  const waitMs = v['wait_ms'];
  const credential = v['credential'];
  const message = v['message'];
  const background = v['background'];
  if (
    (background !== undefined && background !== true) ||
    (credential !== undefined && str(credential, MAX_CREDENTIAL) === undefined) ||
    (message !== undefined &&
      (credential === undefined ||
        str(message, MAX_MESSAGE) === undefined ||
        !BASE64.test(message as string))) ||
    request_id === undefined ||
    trace_id === undefined ||
    identity === undefined ||
    tenant === undefined ||
    tool === undefined ||
    sha === undefined ||
    !HEX64.test(sha) ||
    (session !== null && str(session) === undefined) ||
    !Number.isSafeInteger(timestamp) ||
    !Number.isSafeInteger(waitMs) ||
    (waitMs as number) < 0 ||
    !('params' in v)
  )
    return undefined;
  return {
    request_id,
    trace_id,
    identity,
    tenant,
    tool,
    params: v['params'],
    timestamp: timestamp as number,
    session: session as string | null,
    request_sha256: sha,
    wait_ms: waitMs as number,
    ...(credential === undefined ? {} : { credential: credential as string }),
    ...(message === undefined ? {} : { message: message as string }),
    // Unsigned, as the `Prefer` header it comes from: it only chooses which of the tool's
    // policy-set time limits the envelope grants (docs/jobs.md), and must be what the attempt's
    // `gateway.accepted` recorded.
    ...(background === true ? { background: true } : {}),
  };
}

/**
 * The request the client signed, as the Control Plane decides it: read back by its hash from the
 * ledger's evidence, its signature checked against the registry, every field of the Gate's
 * claim compared. A deny when anything differs or cannot be read.
 */
async function signedRequestOf(
  routes: GateRoutes,
  claim: Claim,
  ledgerMs: number,
): Promise<Decidable | { readonly deny: DenialCode; readonly reason: string }> {
  const bytes = await withDeadline(() => routes.ledger.getEvidence(claim.request_sha256), ledgerMs);
  if (bytes.status !== 'ok') return { deny: 'ERR_LEDGER_UNAVAILABLE', reason: 'evidence unreadable' };
  if (bytes.value === undefined)
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'no signed request has that hash' };
  const parsed = parseSignedRequest(bytes.value);
  if ('outcome' in parsed) {
    const minted = parseMintedEvidence(Buffer.from(bytes.value));
    if (minted === undefined || typeof minted === 'string')
      return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'not a signed request' };
    return mintedRequestOf(routes, claim, minted, ledgerMs);
  }
  // A signed call is its own proof: a token sent with one is not what it was authenticated by.
  if (claim.credential !== undefined)
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'a signed call comes without a bearer token' };
  const r = parsed.request;
  const found = await withDeadline(() => routes.clients.lookup(r.identity), ledgerMs);
  if (found.status !== 'ok')
    return { deny: 'ERR_CLIENT_REGISTRY_UNAVAILABLE', reason: 'client registry unavailable' };
  const client = found.value;
  if (
    client === undefined ||
    client.status !== 'active' ||
    client.tenant !== r.tenant ||
    !verifyEd25519(client.publicKey, requestSigningInput(r), parsed.signatureBytes)
  )
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'not signed by an active registered client' };
  const same =
    r.request_id === claim.request_id &&
    parsed.trace_id === claim.trace_id &&
    r.identity === claim.identity &&
    r.tenant === claim.tenant &&
    r.action === claim.tool &&
    r.session === claim.session &&
    parsed.timestampMs === claim.timestamp &&
    canonicalize(r.parameters) === canonicalize(claim.params);
  if (!same) return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'the call is not what the client signed' };
  return {
    ...claim,
    params: r.parameters,
    // From the registry, never from the Gate: what Cedar sees as principal.roles.
    roles: [...(client.roles ?? [])],
  };
}

/**
 * An MCP call a keyless Gate minted, as the Control Plane decides it (docs/mcp.md "Through
 * keyless Gates"; FC-INV-3, FC-INV-6): the bearer token the Gate forwards is authenticated here
 * again, as the MCP endpoint does (issuer, audience, expiry and signature of an OAuth token; a
 * client-key token against this registry, and its `jti` claimed once more among the decision
 * claims, which no Gate can write, so one such token has at most one call decided; one bound to
 * its message (`body_sha256`) only the call that message asks for, `asksFor`), and the principal
 * it gives must be exactly the
 * one the minted evidence names (identity, tenant, roles, how and by whom authenticated, owner),
 * as must every field of the Gate's claim. Tenant, roles and owner are then the token's (or the
 * registration's), never the Gate's. A deny when anything differs or cannot be checked.
 */
async function mintedRequestOf(
  routes: GateRoutes,
  claim: Claim,
  minted: MintedEvidence,
  ledgerMs: number,
): Promise<Decidable | { readonly deny: DenialCode; readonly reason: string }> {
  const bearer = routes.bearer;
  if (bearer === undefined)
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'this Control Plane decides no MCP call of a Gate' };
  if (claim.credential === undefined)
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'an MCP call comes with its bearer token' };
  const credential = claim.credential;
  // A client-key token is spent here before the comparisons below: a Gate that sends it with
  // another call than its own loses it, and the client's call is then refused too (fail closed).
  const authenticated = await withDeadline(() => bearer(`Bearer ${credential}`), ledgerMs);
  if (authenticated.status !== 'ok')
    return { deny: 'ERR_CONTROL_PLANE_UNAVAILABLE', reason: 'the bearer token could not be checked in time' };
  const principal = authenticated.value;
  if ('outcome' in principal) return { deny: principal.code, reason: principal.reason };
  const r = minted.request;
  const sameRoles = canonicalize([...minted.roles].sort()) === canonicalize([...principal.roles].sort());
  const same =
    minted.auth_method === principal.auth_method &&
    minted.issuer === principal.issuer &&
    minted.owner === principal.owner &&
    r.identity === principal.identity &&
    r.tenant === principal.tenant &&
    sameRoles &&
    r.request_id === claim.request_id &&
    minted.trace_id === claim.trace_id &&
    r.identity === claim.identity &&
    r.tenant === claim.tenant &&
    r.action === claim.tool &&
    r.session === claim.session &&
    Date.parse(r.timestamp) === claim.timestamp &&
    canonicalize(r.parameters) === canonicalize(claim.params);
  if (!same)
    return { deny: 'ERR_REQUEST_SIGNATURE', reason: 'the call is not what its bearer token authenticated' };
  // A token bound to one message (`body_sha256`): the call must be exactly what that message asks.
  let fresh = false;
  if (principal.body_sha256 !== undefined) {
    const bytes = claim.message === undefined ? undefined : Buffer.from(claim.message, 'base64');
    const bound =
      bytes === undefined || sha256Hex(bytes) !== principal.body_sha256 ? undefined : boundCallOf(bytes);
    if (bound === undefined || !(await asksFor(routes, bound, minted, ledgerMs)))
      return {
        deny: 'ERR_REQUEST_SIGNATURE',
        reason: 'the call is not the message its token was signed for',
      };
    // A message that names no retry asks for a new call: never a retry of an earlier one.
    fresh = bound.retry === null;
  }
  const { credential: _c, wait_ms: _w, message: _m, ...governed } = claim;
  return {
    ...governed,
    ...(fresh ? { fresh_only: true as const } : {}),
    params: r.parameters,
    // The token's (or the client's registration's), never the Gate's.
    roles: [...principal.roles],
    // An OAuth principal's owner is its token's, or nobody (docs/mcp.md "Approvals").
    ...(principal.auth_method === 'oauth' ? { owner: principal.owner ?? null } : {}),
  };
}

/**
 * Whether the minted call is exactly what the bound message asks for, as the ingress would mint
 * it (`tools.ts`, `entries.ts`): the session; the retried request id, if it names one; for
 * `tools/call` the tool and its arguments; for `prompts/get` the prompt's entry and its
 * arguments; for `resources/read` the URI and the entry that pins it (the resource, or the one
 * template it is an expansion of); for `completion/complete` the completion entry of the prompt
 * or template its `ref` names, with its argument, value and context.
 */
async function asksFor(
  routes: GateRoutes,
  bound: BoundCall,
  minted: MintedEvidence,
  ledgerMs: number,
): Promise<boolean> {
  const r = minted.request;
  if (r.session !== bound.session) return false;
  if (bound.retry !== null && r.request_id !== bound.retry) return false;
  const params = canonicalize(r.parameters);
  const list = routes.controlPlane.mcpEntries?.bind(routes.controlPlane);
  const got = await withDeadline(async () => (list === undefined ? [] : await list()), ledgerMs);
  if (got.status !== 'ok') return false;
  const entries = got.value;
  const entry = entries.find((e) => e.name === r.action);
  switch (bound.method) {
    case 'tools/call':
      // A prompt's, resource's or completion's entry is never reached by tools/call (tools.ts).
      return entry === undefined && r.action === bound.tool && params === bound.params;
    case 'prompts/get':
      return entry?.mcp?.kind === 'prompt' && r.action === bound.target && params === bound.params;
    case 'resources/read': {
      const uri = bound.uri;
      if (params !== canonicalize({ uri }) || entry?.mcp === undefined) return false;
      // As the ingress chooses: the resource pinned by that URI, else the one template it is an
      // expansion of (matched only within the ingress's bound).
      const exact = entries.find((e) => e.mcp?.kind === 'resource' && e.mcp.upstream === uri);
      if (exact !== undefined) return exact === entry;
      const templates =
        uri.length > MAX_TEMPLATE_URI_LENGTH
          ? []
          : entries.filter((e) => e.mcp?.kind === 'template' && e.mcp.pattern?.test(uri) === true);
      return templates.length === 1 && templates[0] === entry;
    }
    case 'completion/complete': {
      // As the ingress chooses: the prompt by its bundle name or the template by its URI
      // template, then its completion entry, `NAME.complete`.
      const ref = bound.ref;
      const target =
        ref.type === 'ref/prompt'
          ? entries.find((e) => e.mcp?.kind === 'prompt' && e.name === ref.name)
          : entries.find((e) => e.mcp?.kind === 'template' && e.mcp.upstream === ref.uri);
      return (
        target !== undefined &&
        entry?.mcp?.kind === 'completion' &&
        entry.name === `${target.name}.complete` &&
        entry.mcp.upstream === target.mcp?.upstream &&
        params === bound.params
      );
    }
  }
}

/**
 * A request as the Control Plane decides it for a Gate. `fresh_only`: its client's bound message
 * names no retry, so it is decided only when its claim is fresh, never as the retry of an earlier
 * call of the same id (the Gate mints the id).
 */
type Decidable = GovernedRequest & { readonly fresh_only?: true };

/**
 * The recorded result of the background call `requestId` for the holder of `token`, or undefined
 * (docs/jobs.md; `/v1/internal/gate/job-result`). Gates append `gateway.*` entries themselves, so
 * none of theirs alone names what is served: the blob is the one the Execution Layer's own
 * `execution.receipt` (actor role `executor`) names as its result, for the decision of the one
 * `gateway.queued` of that trace recorded before the receipt, whose token digest must be the
 * token's, and the trace's `gateway.completed` after the receipt must name the same result. A
 * Gate can thus read only what an execution of that very job produced, with that job's token; a
 * second `gateway.queued` slipped in before the receipt (another Gate's word) serves nothing.
 */
async function jobResultFor(
  routes: GateRoutes,
  requestId: string,
  token: string,
): Promise<Uint8Array | undefined> {
  const entries = await routes.ledger.entriesForRequest(requestId);
  const digest = sha256Hex(token);
  const payloadOf = (e: (typeof entries)[number]): JsonObject => {
    const p = e['payload'];
    return isObject(p) ? p : {};
  };
  const roleOf = (e: (typeof entries)[number]): unknown => {
    const a = e['actor'];
    return isObject(a) ? a['role'] : undefined;
  };
  for (const receipt of entries) {
    if (receipt.type !== 'execution.receipt' || roleOf(receipt) !== 'executor') continue;
    const r = payloadOf(receipt);
    const sha = r['result_sha256'];
    if (r['status'] !== 'succeeded' || typeof sha !== 'string' || !HEX64.test(sha)) continue;
    const trace = receipt['trace_id'];
    const queued = entries.filter(
      (e) => e.type === 'gateway.queued' && e['trace_id'] === trace && e.index < receipt.index,
    );
    const q = queued.length === 1 ? payloadOf(queued[0]!) : undefined;
    const qDigest = q?.['job_token_sha256'];
    if (q === undefined || typeof qDigest !== 'string' || !hexDigestEquals(digest, qDigest)) continue;
    if (q['decision_id'] !== r['decision_id']) continue;
    const completed = entries.find(
      (e) => e.type === 'gateway.completed' && e['trace_id'] === trace && e.index > receipt.index,
    );
    if (completed === undefined || payloadOf(completed)['result_sha256'] !== sha) continue;
    return await routes.ledger.getEvidence(sha);
  }
  return undefined;
}

/** How a Gate's own reads are recorded: the reading role, no person. */
const GATE_READER = Object.freeze({ id: 'gate', role: 'gate' });

/**
 * Requests being decided in this process: a second ask of one waits for the first to end before
 * it reads the ledger and tries to claim the request, so it sees what the first one recorded.
 * The claim, not this map, is what keeps two decisions apart (across processes too).
 */
const deciding = new Map<string, Promise<unknown>>();

/**
 * One decision for a Gate: fresh, signed as claimed, not issued before (the ledger's
 * `envelope.issued`, which also covers requests issued before claims were recorded), claimed in
 * the shared store (one atomic insert: only the claimant decides, every other asker in any
 * process is refused `ERR_REQUEST_REPLAYED`), then decided. The timestamp is checked first, so a
 * claim is taken only within the tolerance of the request's timestamp: that is what lets the
 * claims be pruned once their requests could no longer be decided (`decision-claims.ts`);
 * before that, a claim is never given back. The one
 * request asked again legitimately, a client's retry of an escalated call that has an approval
 * record not yet issued (docs/approvals.md "Retries"), finds the claim taken and is decided all
 * the same: the decision resumes that record, and its single issuance is the approval's
 * (`markIssued`, a status-guarded update under the decision's lock, on every replica), so an
 * approved call denied at issuance (a lockdown, a spend limit) runs on a later retry, as through
 * an embedded Gate. A Gate seen gone before the claim has nothing claimed; a claim the store
 * cannot take in time is a deny (`ERR_LEDGER_UNAVAILABLE`). `gone` aborts when the Gate goes
 * away, before or during a long-poll.
 */
async function decideFor(
  routes: GateRoutes,
  claim: Claim,
  gone: AbortSignal,
  ledgerMs: number,
): Promise<RouteAnswer> {
  const key = `${claim.tenant}\u0000${claim.identity}\u0000${claim.request_id}`;
  const before = deciding.get(key) ?? Promise.resolve();
  const run = before.then(async (): Promise<RouteAnswer> => {
    if (Math.abs(routes.now() - claim.timestamp) > routes.timestampToleranceMs)
      return wireOf({
        ...deny('ERR_REQUEST_TIMESTAMP', 'request timestamp outside tolerance'),
        decision_id: null,
      });
    // Both reads at once (one round trip less on the call's path); neither decides alone.
    const [signed, entries] = await Promise.all([
      signedRequestOf(routes, claim, ledgerMs),
      withDeadline(() => routes.ledger.entriesForRequest(claim.request_id), ledgerMs),
    ]);
    if ('deny' in signed) return wireOf({ ...deny(signed.deny, signed.reason), decision_id: null });
    if (entries.status !== 'ok')
      return wireOf({ ...deny('ERR_LEDGER_UNAVAILABLE', 'the ledger could not answer'), decision_id: null });
    // Request ids are the client's own: another client's request of the same id is not this one.
    const issuedBefore = entries.value.some((e) => {
      const payload = e['payload'];
      return (
        e.type === 'envelope.issued' &&
        e['tenant'] === claim.tenant &&
        isObject(payload) &&
        payload['sub'] === claim.identity
      );
    });
    const replayed = wireOf({
      ...deny('ERR_REQUEST_REPLAYED', 'this request already had its envelope'),
      decision_id: null,
    });
    if (issuedBefore) return replayed;
    // The attempt this decision is for: the request's last `gateway.accepted` of this trace, as
    // the Gate recorded it before asking. Its envelope is issued only while that attempt is open,
    // so one a sweep recorded abandoned (its Gate gone, or stalled past its lease) never gets one.
    const accepted = entries.value.reduce<(typeof entries.value)[number] | undefined>(
      (last, e) =>
        e.type === 'gateway.accepted' &&
        e['trace_id'] === claim.trace_id &&
        e['tenant'] === claim.tenant &&
        typeof e['index'] === 'number' &&
        (last === undefined || e['index'] > last['index'])
          ? e
          : last,
      undefined,
    );
    if (accepted === undefined)
      return wireOf({
        ...deny('ERR_LEDGER_UNAVAILABLE', 'the ledger holds no accepted attempt of this request'),
        decision_id: null,
      });
    const attempt = accepted['index'];
    // The time limit asked for is the one the attempt recorded before asking (docs/jobs.md): a
    // Gate cannot have an attempt it accepted as synchronous granted the background limit, or
    // the reverse, and the ledger always says which was granted.
    const acceptedPayload = accepted['payload'];
    const recordedBackground = isObject(acceptedPayload) && acceptedPayload['background'] === true;
    if (recordedBackground !== (claim.background === true))
      return wireOf({
        ...deny('ERR_REQUEST_MALFORMED', 'the ask is not the mode its acceptance recorded'),
        decision_id: null,
      });
    if (gone.aborted)
      return wireOf({ ...deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the Gate went away'), decision_id: null });
    const request: DecisionClaimKey = {
      tenant: claim.tenant,
      identity: claim.identity,
      request_id: claim.request_id,
    };
    const holder = randomUUID();
    // A claim past its deadline may still commit later: the request is then refused from then on.
    const claimed = await withDeadline(() => routes.claims.claim(request, holder, routes.now()), ledgerMs);
    if (claimed.status !== 'ok')
      return wireOf({
        ...deny('ERR_LEDGER_UNAVAILABLE', 'the request could not be claimed'),
        decision_id: null,
      });
    if (!claimed.value) {
      // Taken: decided, or being decided, for another ask, unless this is a retry of an escalated
      // call (its approval record exists and is not issued; a record that cannot be read is not).
      const retry =
        signed.fresh_only === true
          ? undefined
          : await withDeadline(async () => (await routes.controlPlane.isRetry?.(signed)) === true, ledgerMs);
      if (retry === undefined || retry.status !== 'ok' || !retry.value)
        return wireOf({
          ...deny('ERR_REQUEST_REPLAYED', 'this request is decided, or being decided, for another ask'),
          decision_id: null,
        });
    }
    const waitMs = Math.min(claim.wait_ms, routes.maxWaitMs ?? 60_000);
    const {
      wait_ms: _w,
      credential: _c,
      message: _m,
      fresh_only: _f,
      ...governed
    } = signed as Partial<Claim> & Decidable;
    // A Gate that goes away ends a long-poll: the call is then not issued (approval-step.ts).
    return wireOf(await routes.controlPlane.decide({ ...governed, attempt }, { waitMs, signal: gone }));
  });
  const settled = run.catch(() => undefined);
  deciding.set(key, settled);
  try {
    return await run;
  } finally {
    if (deciding.get(key) === settled) deciding.delete(key);
  }
}

/** One gate route; `peer` is an authorized `gate`. */
export async function handleGateRoute(
  routes: GateRoutes,
  req: IncomingMessage,
  _peer: PeerIdentity,
  gone: AbortSignal = new AbortController().signal,
): Promise<RouteAnswer> {
  const ledgerMs = routes.ledgerMs ?? 2000;
  const url = req.url ?? '';
  if (req.method === 'GET') {
    req.resume();
    if (url === '/v1/internal/issuer-jwks') {
      const r = await withDeadline(() => routes.controlPlane.issuerJwks(), ledgerMs);
      return r.status === 'ok'
        ? { status: 200, body: { jwks: r.value } }
        : refuse('ERR_CONTROL_PLANE_UNAVAILABLE', 'no keys', 503);
    }
    if (url === '/v1/internal/cp/mcp-entries') {
      const entries = routes.controlPlane.mcpEntries?.bind(routes.controlPlane);
      const r = await withDeadline(async () => (entries === undefined ? [] : await entries()), ledgerMs);
      return r.status === 'ok'
        ? { status: 200, body: { entries: r.value.map(wireListing) } }
        : refuse('ERR_CONTROL_PLANE_UNAVAILABLE', 'no answer', 503);
    }
    if (url === '/v1/internal/cp/ready') {
      const r = await withDeadline(() => routes.controlPlane.ready(), ledgerMs);
      if (r.status !== 'ok') return { status: 503, body: { ready: false, reason: 'no answer' } };
      return {
        status: r.value.ready ? 200 : 503,
        body: r.value.ready ? { ready: true } : { ready: false, reason: r.value.reason ?? 'not ready' },
      };
    }
    return { status: 404, body: { error: 'not_found' } };
  }
  if (req.method !== 'POST' || !url.startsWith('/v1/internal/')) {
    req.resume();
    return { status: 404, body: { error: 'not_found' } };
  }
  const raw = await readCapped(req, MAX_BODY);
  if (raw === null) return refuse('ERR_REQUEST_TOO_LARGE', 'too large', 413);
  let v: JsonValue;
  try {
    v = parseJson(raw, { maxBytes: MAX_BODY, maxDepth: 40 });
  } catch (err) {
    return refuse(err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED', 'malformed JSON');
  }
  const o = isObject(v) ? v : undefined;
  if (o === undefined) return refuse('ERR_REQUEST_MALFORMED', 'not an object');
  const unavailable = refuse('ERR_LEDGER_UNAVAILABLE', 'the ledger could not answer', 503);
  const write = async (fn: () => Promise<JsonValue>): Promise<RouteAnswer> => {
    const r = await withDeadline(fn, ledgerMs);
    if (r.status === 'ok') return { status: 200, body: r.value };
    if (
      r.status === 'error' &&
      r.error instanceof FailclosedError &&
      r.error.code === 'ERR_LEDGER_PAYLOAD_FIELD'
    )
      return refuse('ERR_LEDGER_PAYLOAD_FIELD', 'a payload field is not on its allowlist');
    // Nothing was written: the request already has an outcome (a retried one's first try, or a sweep's).
    if (
      r.status === 'error' &&
      r.error instanceof FailclosedError &&
      r.error.code === 'ERR_LEDGER_REQUEST_CLOSED'
    )
      return refuse('ERR_LEDGER_REQUEST_CLOSED', 'the request already has an outcome record', 409);
    return unavailable;
  };
  const refOf = (ref: { index: number; entry_hash: string }): JsonValue => ({
    index: ref.index,
    entry_hash: ref.entry_hash,
  });
  switch (url) {
    case '/v1/internal/cp/decide': {
      const claim = claimOf(o);
      if (claim === undefined) return refuse('ERR_REQUEST_MALFORMED', 'not a call to decide');
      const answer = await decideFor(routes, claim, gone, ledgerMs);
      const body = answer.body;
      if (!isObject(body) || body['outcome'] !== 'allow' || typeof body['envelope'] !== 'string')
        return answer;
      const envelope = body['envelope'];
      // An envelope its Gate never got is taken out of use at once (the Gate told its client "deny").
      return {
        ...answer,
        undelivered: () =>
          void routes.executor
            .void({
              envelope,
              tool: claim.tool,
              tenant: claim.tenant,
              params: claim.params as JsonObject,
              trace_id: claim.trace_id,
              request_id: claim.request_id,
              code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
              stage: 'decision',
            })
            .catch(() => undefined),
      };
    }
    case '/v1/internal/cp/secret-values': {
      // Scenario 16, OE-INV-009: a keyless Gate knows no secret value; it asks here, before it
      // claims or stores anything of the request, whether what it would store (the parameters,
      // the session and the request id, as the Gate sends them) holds one this process knows.
      if (!('params' in o)) return refuse('ERR_REQUEST_MALFORMED', 'params');
      const params = o['params'];
      return write(() => Promise.resolve({ found: secretValueHeld(routes.secretValueIn, params) }));
    }
    case '/v1/internal/cp/is-retry': {
      const request_id = str(o['request_id']);
      const identity = str(o['identity']);
      const tenant = str(o['tenant']);
      const tool = str(o['tool']);
      const session = o['session'];
      const owner = o['owner'];
      if (
        !Object.keys(o).every((k) =>
          ['request_id', 'identity', 'tenant', 'tool', 'params', 'session', 'owner'].includes(k),
        ) ||
        request_id === undefined ||
        identity === undefined ||
        tenant === undefined ||
        tool === undefined ||
        (session !== null && str(session) === undefined) ||
        (owner !== undefined && owner !== null && str(owner) === undefined) ||
        !('params' in o) ||
        routes.controlPlane.isRetry === undefined
      )
        return refuse('ERR_REQUEST_MALFORMED', 'not a retry question');
      const isRetry = routes.controlPlane.isRetry.bind(routes.controlPlane);
      const params = o['params'];
      return write(async () => ({
        retry: await isRetry({
          request_id,
          identity,
          tenant,
          tool,
          params,
          session: session as string | null,
          // A question only: the decision takes an MCP call's owner from its token.
          ...(owner === undefined ? {} : { owner: owner as string | null }),
        }),
      }));
    }
    case '/v1/internal/cp/tools': {
      // What MCP `tools/list` shows a principal: the bundle's tools its roles could be allowed to
      // call. The principal is the Gate's word here, and a listing decides nothing: every call
      // of a listed tool is authenticated and decided in full.
      const identity = str(o['identity']);
      const tenant = str(o['tenant']);
      const roles = o['roles'];
      if (
        !Object.keys(o).every((k) => ['identity', 'tenant', 'roles'].includes(k)) ||
        identity === undefined ||
        tenant === undefined ||
        !Array.isArray(roles) ||
        roles.length > MAX_CLIENT_ROLES ||
        !(roles as readonly JsonValue[]).every((r) => typeof r === 'string' && CLIENT_ROLE_RE.test(r)) ||
        routes.controlPlane.callableTools === undefined
      )
        return refuse('ERR_REQUEST_MALFORMED', 'not a listing question');
      const list = routes.controlPlane.callableTools.bind(routes.controlPlane);
      return write(async () => ({
        tools: (await list({ identity, tenant, roles: roles as string[] })).map(wireListing),
      }));
    }
    case '/v1/internal/gate/evidence': {
      const mediaType = str(o['media_type'], 128);
      const body = str(o['body'], MAX_EVIDENCE_BASE64);
      if (mediaType === undefined || body === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(body))
        return refuse('ERR_REQUEST_MALFORMED', 'media_type and base64 body');
      const bytes = new Uint8Array(Buffer.from(body, 'base64'));
      // Scenario 16, OE-INV-009: a Gate that did not ask `/v1/internal/cp/secret-values` first
      // (a compromised one) still cannot have a request holding a known secret value stored.
      if (holdsSecretValue(bytes, routes.secretValueIn))
        return refuse('ERR_PARAMS_SECRET', 'the request carries a secret value');
      return write(async () => ({ sha256: await routes.ledgerPort.putEvidence(bytes, mediaType) }));
    }
    case '/v1/internal/gate/event': {
      const type = o['type'];
      const trace_id = str(o['trace_id']);
      const payload = o['payload'];
      const nullable = (k: string): string | null | undefined => (o[k] === null ? null : str(o[k]));
      const request_id = nullable('request_id');
      const tenant = nullable('tenant');
      const identity = nullable('identity');
      // An outcome closing one attempt (`GatewayEvent.closes`): appended only while it is open.
      const closes = o['closes'];
      if (
        typeof type !== 'string' ||
        !(GATEWAY_TYPES as readonly string[]).includes(type) ||
        trace_id === undefined ||
        request_id === undefined ||
        tenant === undefined ||
        identity === undefined ||
        !isObject(payload) ||
        // Only a request's acceptance names its owner, and only where owners are kept.
        (payload['gate_instance'] !== undefined &&
          (type !== 'gateway.accepted' ||
            routes.gateOwners !== true ||
            typeof payload['gate_instance'] !== 'string' ||
            !GATE_INSTANCE.test(payload['gate_instance']))) ||
        // Only an acceptance says it was asked in the background, and only as `true`.
        (payload['background'] !== undefined &&
          (type !== 'gateway.accepted' || payload['background'] !== true)) ||
        (closes !== undefined &&
          (!Number.isSafeInteger(closes) ||
            (closes as number) < 0 ||
            (type !== 'gateway.completed' && type !== 'gateway.failed')))
      )
        return refuse('ERR_REQUEST_MALFORMED', 'not a Gate entry');
      // Scenario 16, OE-INV-009: the entry names the request id and, in its payload, the session;
      // a Gate that did not search them (an older or a compromised one) cannot have a known secret
      // value stored there either. A scanner that throws counts as a find.
      if (secretValueHeld(routes.secretValueIn, { request_id, payload }))
        return refuse('ERR_PARAMS_SECRET', 'the entry carries a secret value');
      return write(async () =>
        refOf(
          await routes.ledger.appendGatewayEvent({
            type: type as GatewayEvent['type'],
            trace_id,
            request_id,
            tenant,
            identity,
            payload,
            ...(closes === undefined ? {} : { closes: closes as number }),
          }),
        ),
      );
    }
    case '/v1/internal/gate/entries': {
      const id = str(o['request_id']);
      if (id === undefined) return refuse('ERR_REQUEST_MALFORMED', 'request_id');
      // Every read of a request's entries by a Gate is recorded first, whoever it says asked.
      return write(async () => {
        await routes.ledger.recordRead({ reader: GATE_READER, request_id: id, scope: 'request' });
        return { entries: (await routes.ledger.entriesForRequest(id)) as unknown as JsonValue };
      });
    }
    case '/v1/internal/gate/job-result': {
      const id = str(o['request_id']);
      const token = str(o['token']);
      if (
        id === undefined ||
        token === undefined ||
        !Object.keys(o).every((k) => k === 'request_id' || k === 'token')
      )
        return refuse('ERR_REQUEST_MALFORMED', 'not a job result question');
      return write(async () => {
        const blob = await jobResultFor(routes, id, token);
        return { body: blob === undefined ? null : Buffer.from(blob).toString('base64') };
      });
    }
    case '/v1/internal/gate/checkpoint':
      return write(async () => {
        const c = await routes.ledger.latestCheckpoint();
        return { checkpoint: c === null ? null : { size: c.size, root_hash: c.root_hash, note: c.note } };
      });
    case '/v1/internal/gate/prove': {
      const index = o['index'];
      const size = o['size'];
      if (
        !Number.isSafeInteger(index) ||
        !Number.isSafeInteger(size) ||
        (index as number) < 0 ||
        (index as number) >= (size as number)
      )
        return refuse('ERR_REQUEST_MALFORMED', 'index and size');
      return write(async () => ({
        proof: [...(await routes.ledger.proveInclusion(index as number, size as number))],
      }));
    }
    case '/v1/internal/gate/read': {
      const reader = o['reader'];
      const request_id = str(o['request_id']);
      if (
        !isObject(reader) ||
        str(reader['id']) === undefined ||
        str(reader['role']) === undefined ||
        request_id === undefined ||
        o['scope'] !== 'request'
      )
        return refuse('ERR_REQUEST_MALFORMED', 'not an evidence read');
      // The person the Gate authenticated, under the role `gate`: a Gate's word, marked as such.
      return write(async () =>
        refOf(
          await routes.ledger.recordRead({
            reader: { id: reader['id'] as string, role: 'gate' },
            request_id,
            scope: 'request',
          }),
        ),
      );
    }
    default:
      return { status: 404, body: { error: 'not_found' } };
  }
}
