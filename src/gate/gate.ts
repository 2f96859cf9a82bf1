/**
 * The Gate (SPEC §1, §2 steps 1, 2, 6, 8): authenticates signed requests, records them, asks the
 * Control Plane for a decision and forwards allowed calls with their envelope to the Execution
 * Layer. It never executes a tool and never signs anything; every failure is a deny with a code
 * and a ledger record (FC-INV-3, FC-INV-4, FC-INV-5, FC-INV-6).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  NO_OBSERVER,
  createDurableWrites,
  deny,
  denyFromError,
  FailclosedError,
  envelopeSha256,
  hexDigestEquals,
  isDeny,
  isLedgerRef,
  sha256Hex,
  statusOf,
  canonicalize,
  verifyEd25519Async,
  observedToolName,
} from '../kernel/index.js';
import type { DenialCode, Deny, DurableWrites, JsonObject, JsonValue } from '../kernel/index.js';
import { parseDecisionAnswer, parseExecutionAnswer } from './answers.js';
import type { DenyAnswer } from './answers.js';
import { withCancellableDeadline, withDeadline } from './deadline.js';
import { buildEvidenceView } from './evidence.js';
import { MAX_REQUEST_BYTES, parseSignedRequest, REDACTED_ID_PREFIX, requestSigningInput } from './request.js';
import type { ParsedRequest } from './request.js';
import { DEFAULT_MAX_INFLIGHT } from './types.js';
import type {
  CallResponse,
  EvidenceRead,
  GateDeps,
  GatewayEvent,
  McpEntryInfo,
  RegisteredClient,
} from './types.js';
import { routeApprovals } from './approval-routes.js';
import { BOOTSTRAP_OPERATOR, operatorCovers } from './operators.js';
import type { OperatorIdentity } from './operators.js';
import { CAUGHT_STATUS, failCaught } from './caught.js';
import { voidEnvelope } from './void-envelope.js';
import type { VoidReport } from './void-envelope.js';
import { mintCall } from './principal.js';
import { holdsJobToken, jobView, settlesView } from './job-view.js';
import type { JobDelivery, QueuedJob } from './jobs.js';
import type { AuthMethod, MintedCall, Principal, PrincipalCall } from './principal.js';
import type { SignedRequest } from '../kernel/index.js';
import type { ScheduledRun } from '../control-plane/index.js';
import type { CallRelay } from '../execution/index.js';
import { MAX_CALL_WAIT_MS } from './bounds.js';

export { MAX_CALL_WAIT_MS };

/**
 * The request id a record names when the client's own holds a secret: `redacted-` and the first
 * 32 hex digits of the SHA-256 of the request's bytes as received (`rawSha`), which covers its
 * nonce and signature: the record is linked to the request, and offers no test of a guessed
 * secret (SPEC §7 scenario 16, OE-INV-009). Clients may not use the prefix (request.ts).
 */
export function redactedId(rawSha: string): string {
  return `${REDACTED_ID_PREFIX}${rawSha.slice(0, 32)}`;
}

/** An HTTP-neutral answer: status and JSON body. */
export interface GateAnswer<B = JsonValue> {
  readonly status: number;
  readonly body: B;
}

/** The Gate's operations, independent of the transport. */
export interface Gate {
  /**
   * `POST /v1/calls`: one governed call from raw body bytes (FC-INV-3, FC-INV-6); `null` means
   * the transport stopped reading a body over the size limit (`ERR_REQUEST_TOO_LARGE`).
   */
  call(body: Uint8Array | null, options?: CallOptions): Promise<GateAnswer<CallResponse>>;
  /**
   * The approval API (`/v1/approvals`, `/v1/break-glass`, `/v1/reviews`, see
   * docs/approvals.md); undefined when `method` and `path` name no approval route.
   */
  approvalRoute(
    method: string,
    path: string,
    body: JsonValue,
    authorization: string | undefined,
  ): Promise<GateAnswer> | undefined;
  /**
   * `GET /v1/requests/{id}`: the operator evidence view (SPEC §5, FC-INV-5), read as the
   * authenticated operator (`audit.read` with the person as reader). An operator of some tenants
   * reads only a request whose every record is of those tenants (`403 ERR_FORBIDDEN` otherwise).
   */
  evidence(requestId: string, authorization: string | undefined): Promise<GateAnswer>;
  /**
   * `GET /v1/jobs/{id}`: a background call's state and, once executed, its redacted result, for
   * the holder of the job's token or an operator of its tenant (docs/jobs.md).
   */
  job(requestId: string, authorization: string | undefined): Promise<GateAnswer>;
  /**
   * Records a worker's answer for a background call (`gateway.completed` / `gateway.failed`),
   * as the synchronous path does; the job queue calls it. Rejects when the ledger cannot record
   * it (the queue keeps the answer and delivers it again).
   */
  finishJob(delivery: JobDelivery): Promise<void>;
  /**
   * The evidence view of `requestId` for an already authenticated `reader` (a signed-in person):
   * ledgered as `audit.read` with the reader before anything is read; `503
   * ERR_LEDGER_UNAVAILABLE` and nothing returned when the read cannot be recorded (L7 read path).
   */
  readEvidence(requestId: string, reader: EvidenceRead['reader']): Promise<GateAnswer>;
  /**
   * MCP `tools/call`: one governed call of a principal the MCP ingress authenticated (bearer JWT
   * or client key). The Gate mints its request id and nonce, claims them, and runs the same steps
   * as {@link Gate.call} (SPEC §2 step 1, FC-INV-3, FC-INV-6).
   */
  callAs(principal: Principal, call: PrincipalCall, options?: CallOptions): Promise<GateAnswer<CallResponse>>;
  /**
   * MCP `tools/list`: the active bundle's tools this principal could be allowed to call; empty
   * when the Control Plane cannot say (deny by default).
   */
  toolsFor(principal: Principal): Promise<readonly ToolListing[]>;
  /**
   * MCP `prompts/get` and `resources/read`: the active bundle's pinned prompts and resources,
   * unfiltered (the call is then decided in full); empty when the Control Plane cannot say.
   */
  mcpEntries(): Promise<readonly ToolListing[]>;
  /**
   * Records a request the MCP ingress refused before authentication (`gateway.failed`, hash only,
   * within the per-second budget for unauthenticated records).
   */
  refuse(d: Deny, requestSha256: string): Promise<void>;
  /** `GET /v1/jwks`: issuer public keys (the JWKS with retired and revoked keys). */
  jwks(): Promise<GateAnswer>;
  /** `GET /v1/trust-roots`: the trust file (docs/ledger.md "Trust roots"); 404 when not configured. */
  trustRoots(): Promise<GateAnswer>;
  /** `GET /readyz`: 200 only when the Control Plane and every injected readiness check answer true. */
  ready(): Promise<GateAnswer>;
  /** `POST /v1/admin/{action}`: operator actions behind the operator token. */
  admin(
    action: string,
    body: JsonValue,
    authorization: string | undefined,
  ): Promise<GateAnswer & { readonly stream?: AsyncIterable<string> }>;
  /**
   * The operator whose token `authorization` (`Bearer <token>`) carries: active in the registry
   * (or the bootstrap token without one); undefined for anything else, a registry failure included.
   */
  operatorOf(authorization: string | undefined): Promise<OperatorIdentity | undefined>;
}

/**
 * A bundle entry this principal could be allowed to use, as `tools/list`, `prompts/list` and
 * `resources/list` show it (docs/mcp.md): a tool, or (with `mcp`) a pinned upstream prompt or resource.
 */
export interface ToolListing {
  readonly name: string;
  readonly description: string;
  /** The entry's input JSON Schema from the active bundle. */
  readonly inputSchema: JsonObject;
  /** Present for a pinned upstream prompt or resource. */
  readonly mcp?: McpEntryInfo;
}

/**
 * An authenticated call on its way into the shared pipeline: the evidence bytes, the values the
 * pipeline reads, and how the principal authenticated (ledgered in `gateway.accepted`).
 */
interface Authenticated {
  readonly body: Uint8Array;
  readonly rawSha: string;
  readonly p: Pick<ParsedRequest, 'trace_id' | 'timestampMs'>;
  readonly request: Pick<SignedRequest, 'request_id' | 'action' | 'parameters' | 'session'>;
  readonly client: Pick<RegisteredClient, 'identity' | 'tenant' | 'roles'>;
  readonly auth: { readonly auth_method: AuthMethod; readonly issuer?: string; readonly owner?: string };
  /**
   * The requester's owner for approvals: a string or null (none: nobody may approve) when the
   * ingress knows it (an OAuth token's owner claim); absent, the Control Plane looks up the
   * registered client's owner.
   */
  readonly owner?: string | null;
  /** The call's pending durable writes, the request id's claim among them (durability.ts). */
  readonly writes: DurableWrites;
  /** A scheduled run: its schedule and slot, checked by the Control Plane (docs/schedules.md). */
  readonly schedule?: ScheduledRun;
  /** The MCP principal's bearer token, for a Control Plane in another process (`Principal.credential`). */
  readonly credential?: string;
  /** The message that token is bound to, base64 (`Principal.message`). */
  readonly message?: string;
}

/** Options of one call. */
export interface CallOptions {
  /** How long an escalated call may wait for approvals (ms, `Prefer: wait=N`); capped by the Control Plane. */
  readonly waitMs?: number;
  /**
   * Aborted when the caller cancels or its connection closes: a wait for approvals ends at once
   * and the call does not run, even if approved meanwhile (nobody would see its result).
   */
  readonly signal?: AbortSignal;
  /**
   * The caller's W3C `traceparent` header, unparsed: linked from the call's trace when valid,
   * ignored otherwise (docs/deployment.md "Observability"). Never decides anything.
   */
  readonly traceparent?: string;
  /**
   * A background call (`Prefer: respond-async`, docs/jobs.md): once decided and enveloped, the
   * call goes to the job queue and the answer is `202` with the job's id and bearer token.
   */
  readonly background?: boolean;
  /**
   * A run of a schedule (`callAs` by the Gate's scheduler only, docs/schedules.md): handed to the
   * Control Plane, which checks it against the schedule's approved creation and its slot.
   */
  readonly schedule?: ScheduledRun;
  /**
   * Where an MCP upstream's progress and log messages about the call go, and the caller's
   * cancellation of it while it runs (the MCP ingress, docs/mcp.md "While a call runs"). Handed
   * to the Execution Layer with the call; a port that cannot carry it (a separate Execution
   * Layer) runs the call without it. Never decides anything.
   */
  readonly relay?: CallRelay;
}

/**
 * What the Gate learns of a call on its way, for its observer: the tool once authenticated, and
 * the request id once it is known to hold no secret (or the redacted id its records name).
 */
interface CallNote {
  tool: string | null;
  requestId?: string | null;
}

/** Who reads behind the bootstrap operator token, as `audit.read` records it. */
export const OPERATOR_READER: EvidenceRead['reader'] = Object.freeze({
  id: BOOTSTRAP_OPERATOR,
  role: 'operator',
});

/** The bootstrap operator, of every tenant (DATA/operator.token). */
const BOOTSTRAP: OperatorIdentity = Object.freeze({ name: BOOTSTRAP_OPERATOR, tenants: '*' });

const INGRESS = 'ingress';
/**
 * The `status` of the `gateway.failed` of a call whose handling threw after its acceptance was
 * confirmed: unlike `ingress` and `internal`, written before acceptance, it settles the attempt.
 */
const AFTER_ACCEPTANCE_STATUS = 'gate';

/** Creates the Gate from its injected dependencies. See docs/request-format.md. */
export function createGate(deps: GateDeps): Gate {
  const tolerance = deps.timestampToleranceMs ?? 120_000;
  const cpMs = deps.timeouts?.controlPlaneMs ?? 5_000;
  const execMs = deps.timeouts?.executionMs ?? 30_000;
  const ledgerMs = deps.timeouts?.ledgerMs ?? 5_000;
  const voidMs = deps.timeouts?.voidMs ?? 5_000;
  const queueMs = deps.timeouts?.queueMs ?? 5_000;
  const budget = deps.unauthenticatedRecordsPerSecond ?? 50;
  const maxInflight = deps.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const obs = deps.observer ?? NO_OBSERVER;
  if (!/^[0-9a-f]{64}$/.test(deps.operatorTokenSha256))
    throw new TypeError('operatorTokenSha256 must be hex SHA-256');
  if (!Number.isSafeInteger(maxInflight) || maxInflight < 1)
    throw new TypeError('maxInflight must be a positive integer');
  /**
   * The deny when `params` hold a secret value known where {@link GateDeps.secretValues} asks, or
   * when it cannot say within the Control Plane deadline; undefined when they hold none.
   */
  const secretValuesIn = async (params: JsonValue): Promise<Deny | undefined> => {
    const ask = deps.secretValues;
    if (ask === undefined) return undefined;
    const r = await withDeadline(() => ask(params), cpMs);
    if (r.status !== 'ok' || typeof r.value !== 'boolean')
      return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the secret values could not be checked');
    return r.value ? deny('ERR_PARAMS_SECRET', 'parameters carry a secret value') : undefined;
  };
  /**
   * The deny when `value` holds a secret: by {@link GateDeps.secretScanner} (a throwing scanner is
   * a find), then by {@link secretValuesIn}; undefined when it holds none.
   */
  const secretsIn = async (value: JsonValue): Promise<Deny | undefined> => {
    if (deps.secretScanner !== undefined) {
      // Assigned on both paths (the compiler checks it): a throwing scanner is a finding.
      let found: boolean;
      try {
        found = deps.secretScanner(value);
      } catch {
        found = true;
      }
      if (found) return deny('ERR_PARAMS_SECRET', 'parameters carry a secret value');
    }
    return secretValuesIn(value);
  };
  // Stryker disable next-line UnaryOperator: equivalent, the first window starts with a count of 0 either way
  let window = -1;
  let windowCount = 0;
  let suppressed = 0;
  let oversized = 0;
  let inflight = 0;
  let shed = 0;

  /** Takes one slot of the per-second budget for unauthenticated records; false when spent. */
  const withinBudget = (): boolean => {
    const second = Math.floor(deps.clock() / 1000);
    if (second !== window) {
      window = second;
      windowCount = 0;
    }
    if (windowCount >= budget) {
      // Over budget: counted (visible on /readyz), not recorded, so a flood cannot fill the ledger.
      suppressed += 1;
      return false;
    }
    windowCount += 1;
    return true;
  };

  /**
   * Appends `event` (with `writes`: confirmed once written, durable at `writes.sync()`): its
   * reference once the ledger confirmed it in time with a well-formed one, `closed` when the
   * ledger refused an outcome because its request already has one (`GatewayEvent.closes`),
   * anything else `unconfirmed`.
   */
  const recordAt = async (
    event: GatewayEvent,
    writes?: DurableWrites,
  ): Promise<{ readonly index: number; readonly entry_hash: string } | 'closed' | 'unconfirmed'> => {
    const r = await withDeadline(() => deps.ledger.appendGatewayEvent(event, writes), ledgerMs);
    if (r.status === 'ok' && isLedgerRef(r.value)) return r.value;
    if (
      r.status === 'error' &&
      r.error instanceof FailclosedError &&
      r.error.code === 'ERR_LEDGER_REQUEST_CLOSED'
    )
      return 'closed';
    return 'unconfirmed';
  };
  /** Appends `event`; true only once confirmed (see {@link recordAt}). */
  const record = async (event: GatewayEvent, writes?: DurableWrites): Promise<boolean> =>
    typeof (await recordAt(event, writes)) === 'object';

  const answer = (d: DenyAnswer, requestId: string | null, traceId: string): GateAnswer<CallResponse> => {
    if (d.code === 'ERR_APPROVAL_PENDING' && d.decision_id !== undefined && requestId !== null) {
      // 202: nothing ran; the client retries with the same request id once approved.
      return {
        status: 202,
        body: {
          outcome: 'pending',
          code: d.code,
          reason: d.reason,
          request_id: requestId,
          trace_id: traceId,
          decision_id: d.decision_id,
        },
      };
    }
    return {
      status: statusOf(d.code),
      body: {
        outcome: 'deny',
        code: d.code,
        reason: d.reason,
        request_id: requestId,
        trace_id: traceId,
        ...(d.decision_id === undefined ? {} : { decision_id: d.decision_id }),
      },
    };
  };

  /** Denial before authentication: hash only, and at most `budget` records per second. */
  const failUnauthenticated = async (
    d: Deny,
    rawSha: string,
    parsed: ParsedRequest | undefined,
  ): Promise<GateAnswer<CallResponse>> => {
    const traceId = parsed?.trace_id ?? rawSha.slice(0, 32);
    if (withinBudget()) {
      await record({
        type: 'gateway.failed',
        trace_id: traceId,
        request_id: null,
        tenant: null,
        identity: null,
        payload: {
          code: d.code,
          status: INGRESS,
          outcome: 'deny',
          auth_method: 'none',
          request_sha256: rawSha,
        },
      });
    }
    return answer(d, parsed?.request.request_id ?? null, traceId);
  };

  /**
   * Over the in-flight limit: answered at once `ERR_OVERLOADED`, before parsing or any store is
   * asked, and counted. Recorded within the unauthenticated budget without waiting for the ledger
   * (the point is not to queue); a record the ledger refuses still leaves the call denied.
   */
  const shedCall = (body: Uint8Array | null): GateAnswer<CallResponse> => {
    shed += 1;
    const rawSha = sha256Hex(body ?? Buffer.alloc(0));
    const traceId = rawSha.slice(0, 32);
    if (withinBudget())
      void record({
        type: 'gateway.failed',
        trace_id: traceId,
        request_id: null,
        tenant: null,
        identity: null,
        payload: {
          code: 'ERR_OVERLOADED',
          status: INGRESS,
          outcome: 'deny',
          auth_method: 'none',
          request_sha256: rawSha,
        },
      });
    return answer(deny('ERR_OVERLOADED', 'the Gate is at its in-flight limit'), null, traceId);
  };

  /** Denial of an authenticated request before acceptance: attributable to the client. */
  const failAuthenticated = async (
    d: Deny,
    rawSha: string,
    p: ParsedRequest,
    client: RegisteredClient,
    /** The request id the client is answered with, when the record names another (a redacted one). */
    answeredId: string = p.request.request_id,
  ): Promise<GateAnswer<CallResponse>> => {
    await record({
      type: 'gateway.failed',
      trace_id: p.trace_id,
      request_id: p.request.request_id,
      tenant: client.tenant,
      identity: client.identity,
      payload: {
        code: d.code,
        status: INGRESS,
        outcome: 'deny',
        auth_method: 'signature',
        request_sha256: rawSha,
        client: client.identity,
      },
    });
    return answer(d, answeredId, p.trace_id);
  };

  /**
   * A reused request id passes only as a retry of an escalated call the Control Plane still holds
   * for the same client, tenant, tool, session and parameters, and only with a fresh nonce.
   */
  const isRetry = async (
    p: {
      readonly request: Pick<SignedRequest, 'request_id' | 'action' | 'parameters' | 'session' | 'nonce'>;
    },
    client: Pick<RegisteredClient, 'identity' | 'tenant'>,
    now: number,
    owner?: string | null,
  ): Promise<boolean> => {
    const { request } = p;
    const cp = deps.controlPlane;
    const claimNonce = deps.replay.claimNonce?.bind(deps.replay);
    if (cp.isRetry === undefined || claimNonce === undefined) return false;
    const check = cp.isRetry.bind(cp);
    const retry = await withDeadline(
      () =>
        check({
          request_id: request.request_id,
          identity: client.identity,
          tenant: client.tenant,
          tool: request.action,
          params: request.parameters,
          session: request.session,
          ...(owner === undefined ? {} : { owner }),
        }),
      cpMs,
    );
    if (retry.status !== 'ok' || retry.value !== true) return false;
    const fresh = await withDeadline(
      () => claimNonce({ identity: client.identity, nonce: request.nonce, atMs: now }),
      ledgerMs,
    );
    return fresh.status === 'ok' && fresh.value === 'fresh';
  };

  const authenticate = async (
    body: Uint8Array,
    rawSha: string,
    writes: DurableWrites,
    note: CallNote,
  ): Promise<{ p: ParsedRequest; client: RegisteredClient } | GateAnswer<CallResponse>> => {
    const p = parseSignedRequest(body);
    if (isDeny(p)) return failUnauthenticated(p, rawSha, undefined);
    const { request } = p;
    const found = await withDeadline(() => deps.clients.lookup(request.identity), ledgerMs);
    if (found.status !== 'ok')
      return failUnauthenticated(
        deny('ERR_CLIENT_REGISTRY_UNAVAILABLE', 'client registry unavailable'),
        rawSha,
        p,
      );
    const client = found.value;
    if (client === undefined)
      return failUnauthenticated(deny('ERR_CLIENT_UNKNOWN', 'unknown client'), rawSha, p);
    if (client.status !== 'active')
      return failUnauthenticated(deny('ERR_CLIENT_REVOKED', 'client revoked'), rawSha, p);
    // Off the event loop (libuv's thread pool), which serves every other call meanwhile.
    if (!(await verifyEd25519Async(client.publicKey, requestSigningInput(request), p.signatureBytes)))
      return failUnauthenticated(
        deny('ERR_REQUEST_SIGNATURE', 'request signature does not verify'),
        rawSha,
        p,
      );
    // Authenticated from here on: denials are attributable to the client.
    // Secrets travel by reference only (secret_ref): a request carrying one is refused before its
    // bytes or its id are stored anywhere, and recorded by hash only (SPEC §7 scenario 16,
    // OE-INV-009). The session and the request id are stored too (in the evidence and every
    // record), so they are searched with the parameters, before any other attributable denial
    // records the id; a request id that holds a secret is recorded as {@link redactedId}.
    const held = await secretsIn({
      parameters: request.parameters,
      session: request.session,
      request_id: request.request_id,
    });
    if (held !== undefined) {
      // Which field held it decides only what the record may name: asked again on this deny path
      // alone, and an id that cannot be cleared (or a Control Plane that did not answer) is
      // recorded by hash all the same.
      const idHeld = held.code !== 'ERR_PARAMS_SECRET' || (await secretsIn(request.request_id)) !== undefined;
      const recordedId = idHeld ? redactedId(rawSha) : request.request_id;
      note.requestId = recordedId;
      const recorded = { ...p, request: { ...request, request_id: recordedId } };
      return failAuthenticated(held, rawSha, recorded, client, request.request_id);
    }
    note.requestId = request.request_id;
    if (client.tenant !== request.tenant)
      return failAuthenticated(
        deny('ERR_REQUEST_TENANT', 'client not registered for this tenant'),
        rawSha,
        p,
        client,
      );
    const now = deps.clock();
    if (Math.abs(p.timestampMs - now) > tolerance)
      return failAuthenticated(
        deny('ERR_REQUEST_TIMESTAMP', 'request timestamp outside tolerance'),
        rawSha,
        p,
        client,
      );
    const claimed = await withDeadline(
      () =>
        deps.replay.claim(
          {
            identity: client.identity,
            nonce: request.nonce,
            requestId: request.request_id,
            atMs: now,
          },
          writes,
        ),
      ledgerMs,
    );
    if (claimed.status !== 'ok' || (claimed.value !== 'fresh' && claimed.value !== 'replayed'))
      return failAuthenticated(
        deny('ERR_NONCE_STORE_UNAVAILABLE', 'request nonce store unavailable'),
        rawSha,
        p,
        client,
      );
    if (claimed.value === 'replayed' && !(await isRetry(p, client, now)))
      return failAuthenticated(
        deny('ERR_REQUEST_REPLAYED', 'request nonce or id already used'),
        rawSha,
        p,
        client,
      );
    return { p, client };
  };

  const call = async (
    body: Uint8Array,
    waitMs: number,
    signal: AbortSignal | undefined,
    note: CallNote,
    background: boolean,
  ): Promise<GateAnswer<CallResponse>> => {
    const t0 = performance.now();
    const rawSha = sha256Hex(body);
    // The call's durable writes up to its decision share one commit where the stores allow it,
    // and are waited for before an envelope leaves the Control Plane; those after it, before the
    // tool runs and before the answer leaves (at most three durable rounds, durability.ts).
    const writes = createDurableWrites();
    const auth = await authenticate(body, rawSha, writes, note);
    if ('status' in auth) return auth;
    const { p, client } = auth;
    note.tool = p.request.action;
    obs.stage('authenticate', p.trace_id, t0, performance.now());
    return governed(
      { body, rawSha, p, request: p.request, client, auth: { auth_method: 'signature' }, writes },
      waitMs,
      signal,
      background,
    );
  };

  /**
   * A background call past its decision (docs/jobs.md): `gateway.queued`, durable with the
   * call's earlier writes, then the queue's confirmation, then `202`. Anything short of that
   * voids the envelope and denies (`ERR_QUEUE_UNAVAILABLE`): a caller told "deny" never sees the
   * job run later. The job's bearer token is returned once; the ledger keeps its digest.
   */
  const queueJob = async (
    job: QueuedJob,
    base: Omit<GatewayEvent, 'type' | 'payload'>,
    writes: DurableWrites,
    failIssued: (d: DenyAnswer, record: boolean) => Promise<GateAnswer<CallResponse>>,
  ): Promise<GateAnswer<CallResponse>> => {
    const jobs = deps.jobs;
    if (jobs === undefined)
      return failIssued(deny('ERR_QUEUE_UNAVAILABLE', 'background calls are not configured'), true);
    const token = randomBytes(32).toString('base64url');
    const queued = await record(
      {
        ...base,
        type: 'gateway.queued',
        payload: {
          decision_id: job.decision_id,
          tool: job.call.tool,
          client: job.client,
          job_token_sha256: sha256Hex(token),
          queue: jobs.name,
        },
      },
      writes,
    );
    // Its outcome is recorded all the same: the attempt is closed by its denial, not left open
    // for a sweep to record abandoned (FC-INV-5).
    if (!queued) return failIssued(deny('ERR_LEDGER_UNAVAILABLE', 'gateway.queued not confirmed'), true);
    const durable = await writes.sync().then(
      () => true,
      () => false,
    );
    if (!durable) return failIssued(deny('ERR_LEDGER_UNAVAILABLE', 'gateway.queued not confirmed'), true);
    const put = await withCancellableDeadline((s) => jobs.enqueue(job, s), queueMs);
    if (put.status !== 'ok')
      return failIssued(deny('ERR_QUEUE_UNAVAILABLE', 'the queue did not confirm the job in time'), true);
    const id = job.call.request_id;
    return {
      status: 202,
      body: {
        outcome: 'queued',
        request_id: id,
        trace_id: job.call.trace_id,
        decision_id: job.decision_id,
        job: { id, token, href: `/v1/jobs/${encodeURIComponent(id)}` },
      },
    };
  };

  /** Jobs whose answer this process is recording now: a second delivery waits for the queue's next try. */
  const finishing = new Set<string>();

  /**
   * Records a worker's answer for a queued call. The answer is untrusted: it must belong to a
   * `gateway.queued` record of this ledger still without an outcome, and an `executed` answer's
   * receipt must be in the ledger, written by the Execution Layer for this decision with this
   * result's digest. Anything else is recorded as a deny after voiding the envelope.
   */
  const finishJob = async ({ job, answer: raw }: JobDelivery): Promise<void> => {
    const c = job.call;
    const key = `${c.request_id}\u0000${c.trace_id}`;
    if (finishing.has(key)) throw new Error('this job is being recorded');
    finishing.add(key);
    try {
      const read = await withDeadline(() => deps.ledger.entriesForRequest(c.request_id), ledgerMs);
      if (read.status !== 'ok') throw new Error('the ledger could not be read');
      const mine = read.value.filter((e) => e.trace_id === c.trace_id);
      const queued = mine.find(
        (e) =>
          e.type === 'gateway.queued' &&
          e.tenant === c.tenant &&
          payloadOf(e)['decision_id'] === job.decision_id &&
          payloadOf(e)['tool'] === c.tool,
      );
      // Not a job this deployment queued (a message someone else published): the executor has
      // recorded its own denial, and there is no call to close.
      if (queued === undefined) return;
      // Closed already: by an outcome of this attempt, wherever it lies (one recorded before a
      // late queue record, as the job view reads it; a refusal of a replay of the request, in the
      // same trace, settles nothing: FC-INV-5).
      if (mine.some(settlesView)) return;
      // The answer must carry the very envelope issued for this decision: an answer naming this
      // job with another envelope (forged, or another job's) closes nothing and voids nothing.
      const issued = mine.find(
        (e) => e.type === 'envelope.issued' && payloadOf(e)['decision_id'] === job.decision_id,
      );
      const digest = payloadOf(issued ?? {})['envelope_sha256'];
      if (typeof digest !== 'string' || !hexDigestEquals(envelopeSha256(c.envelope), digest)) return;
      const actor = (queued['actor'] as { id?: unknown } | undefined)?.id;
      const identity = typeof actor === 'string' ? actor : job.client;
      // The attempt the job belongs to: its answer closes exactly it, once, whichever Gate records
      // it first (another delivery of the same answer to another Gate is then refused: FC-INV-5).
      const acceptedAt = mine
        .filter((e) => e.type === 'gateway.accepted' && e.index < queued.index)
        .at(-1)?.index;
      const base = {
        trace_id: c.trace_id,
        request_id: c.request_id,
        tenant: c.tenant,
        identity,
        ...(acceptedAt === undefined ? {} : { closes: acceptedAt }),
      };
      /** Records the job's outcome; a request another Gate closed meanwhile is done, not an error. */
      const close = async (event: GatewayEvent): Promise<void> => {
        const r = await recordAt(event);
        if (r === 'unconfirmed') throw new Error(`${event.type} not confirmed`);
      };
      let outcome = parseExecutionAnswer(raw);
      if (outcome.outcome === 'executed') {
        const r = outcome.receipt;
        const receipt = mine.find((e) => e.index === r.index);
        const p = receipt === undefined ? {} : payloadOf(receipt);
        const role = (receipt?.['actor'] as { role?: unknown } | undefined)?.role;
        if (
          receipt === undefined ||
          receipt.type !== 'execution.receipt' ||
          receipt.entry_hash !== r.entry_hash ||
          role !== 'executor' ||
          p['decision_id'] !== job.decision_id ||
          p['result_sha256'] !== sha256Hex(canonicalize(outcome.result))
        )
          outcome = deny('ERR_EXECUTION_UNAVAILABLE', 'the worker answer is not confirmed by a receipt');
      }
      if (outcome.outcome === 'executed') {
        const bytes = Buffer.from(canonicalize(outcome.result));
        const stored = await withDeadline(() => deps.ledger.putEvidence(bytes, 'application/json'), ledgerMs);
        if (stored.status !== 'ok') throw new Error('the result could not be stored');
        await close({
          ...base,
          type: 'gateway.completed',
          payload: {
            decision_id: job.decision_id,
            outcome: 'executed',
            tool: c.tool,
            client: identity,
            result_sha256: stored.value,
          },
        });
        return;
      }
      const voided = await voidEnvelope(deps.executor, c, { code: outcome.code, stage: 'execution' }, voidMs);
      // A replay denial the Execution Layer recorded for this decision is the nonce store's word
      // that the envelope was consumed before (a worker that died mid-job): the tool may have run.
      // The void cannot always tell any more (the envelope may have expired since, and an expired
      // envelope is not voided), so unless the void confirmed the jti unused, the record says
      // consumed rather than leave it unknown. The worker's answer alone is not that word.
      const replayRecorded = mine.some(
        (e) =>
          e.type === 'denial' &&
          (e['actor'] as { role?: unknown } | undefined)?.role === 'executor' &&
          payloadOf(e)['code'] === 'ERR_NONCE_REPLAYED' &&
          payloadOf(e)['decision_id'] === job.decision_id,
      );
      // So is the Execution Layer's receipt for this decision: the tool ran (a long one that failed
      // after its envelope expired, a result the queue withheld), whatever the worker answers now.
      const receiptRecorded = mine.some(
        (e) =>
          e.type === 'execution.receipt' &&
          (e['actor'] as { role?: unknown } | undefined)?.role === 'executor' &&
          payloadOf(e)['decision_id'] === job.decision_id,
      );
      const report =
        !voided.envelope_voided &&
        (receiptRecorded || (outcome.code === 'ERR_NONCE_REPLAYED' && replayRecorded))
          ? { ...voided, envelope_consumed: true as const }
          : voided;
      await close({
        ...base,
        type: 'gateway.failed',
        payload: {
          code: outcome.code,
          status: 'execution',
          outcome: 'deny',
          tool: c.tool,
          client: identity,
          decision_id: job.decision_id,
          ...report,
        },
      });
    } finally {
      finishing.delete(key);
    }
  };

  /**
   * The steps after authentication, shared by both ingresses (signed `POST /v1/calls` and MCP
   * `tools/call`): evidence and `gateway.accepted`, decision, execution, `gateway.completed`
   * (SPEC §2 steps 2-8). The caller has authenticated the principal and claimed the request id.
   */
  const governed = async (
    a: Authenticated,
    waitMs: number,
    signal?: AbortSignal,
    background = false,
    relay?: CallRelay,
  ): Promise<GateAnswer<CallResponse>> => {
    /** The index of this attempt's `gateway.accepted`, once confirmed: its outcome closes exactly it. */
    const attempt: { accepted?: number } = {};
    try {
      return await governedSteps(a, attempt, waitMs, signal, background, relay);
    } catch (err) {
      // Before acceptance the edge records it (caught.ts, status `internal`: it settles nothing).
      if (attempt.accepted === undefined) throw err;
      // After: this attempt's outcome, which settles it (FC-INV-5), so that no stop or sweep
      // records it abandoned as if it had none.
      const d = denyFromError(err);
      await record({
        type: 'gateway.failed',
        trace_id: a.p.trace_id,
        request_id: a.request.request_id,
        tenant: a.client.tenant,
        identity: a.client.identity,
        closes: attempt.accepted,
        payload: {
          code: d.code,
          status: AFTER_ACCEPTANCE_STATUS,
          outcome: 'deny',
          tool: a.request.action,
          client: a.client.identity,
        },
      });
      return answer(deny(d.code, d.reason), a.request.request_id, a.p.trace_id);
    }
  };

  const governedSteps = async (
    a: Authenticated,
    attempt: { accepted?: number },
    waitMs: number,
    signal?: AbortSignal,
    background = false,
    relay?: CallRelay,
  ): Promise<GateAnswer<CallResponse>> => {
    const { body, rawSha, p, request, client, writes } = a;
    const base = {
      trace_id: p.trace_id,
      request_id: request.request_id,
      tenant: client.tenant,
      identity: client.identity,
    };
    const closing = (): { closes?: number } =>
      attempt.accepted === undefined ? {} : { closes: attempt.accepted };
    const failAccepted = async (
      d: DenyAnswer,
      stage: string,
      report: VoidReport | undefined = undefined,
    ): Promise<GateAnswer<CallResponse>> => {
      const payload: JsonObject = {
        code: d.code,
        status: stage,
        outcome: d.code === 'ERR_APPROVAL_PENDING' ? 'pending' : 'deny',
        tool: request.action,
        client: client.identity,
        ...(d.decision_id === undefined ? {} : { decision_id: d.decision_id }),
        // After issuance: whether the envelope is out of use, or was consumed (the tool may have run).
        ...(report === undefined ? {} : { ...report }),
      };
      const event: GatewayEvent = { ...base, type: 'gateway.failed', payload };
      const recorded = await recordAt({ ...event, ...closing() });
      // Refused as closed: a sweep's outcome stands; but an attempt whose acceptance was never
      // committed (its shared commit failed) has nothing to close, and its denial is recorded.
      if (recorded === 'closed' && !(await attemptRecorded())) await record(event);
      return answer(d, request.request_id, p.trace_id);
    };
    /** True when this attempt's `gateway.accepted` is in the ledger, or when that cannot be read. */
    const attemptRecorded = async (): Promise<boolean> => {
      const r = await withDeadline(() => deps.ledger.entriesForRequest(request.request_id), ledgerMs);
      if (r.status !== 'ok') return true;
      return r.value.some(
        (e) => e.index === attempt.accepted && e.type === 'gateway.accepted' && e['trace_id'] === p.trace_id,
      );
    };

    // Step 2: raw bytes as evidence and gateway.accepted, both confirmed before the Control Plane.
    // Issued together, they join the same group commit: one durable round instead of two.
    let t = performance.now();
    const [stored, accepted] = await Promise.all([
      withDeadline(() => deps.ledger.putEvidence(body, 'application/json', writes), ledgerMs),
      recordAt(
        {
          ...base,
          type: 'gateway.accepted',
          payload: {
            request_sha256: rawSha,
            tool: request.action,
            session: request.session,
            client: client.identity,
            ...a.auth,
            // Asked in the background (docs/jobs.md): recorded before the decision, so the
            // ledger says which of the tool's time limits the envelope was granted even when
            // no `gateway.queued` follows (replay derives it from here).
            ...(background ? { background: true } : {}),
          },
        },
        writes,
      ),
    ]);
    // Confirmed (or, over a shared commit, written): the denials below close this attempt.
    if (typeof accepted === 'object') attempt.accepted = accepted.index;
    // A writer that knows secret values the Gate does not (a keyless Gate's) refuses evidence
    // holding one, and stores nothing (scenario 16).
    if (
      stored.status === 'error' &&
      stored.error instanceof FailclosedError &&
      stored.error.code === 'ERR_PARAMS_SECRET'
    )
      // Refused by the writer after `gateway.accepted` was recorded with the evidence: an outcome
      // of this attempt (status `ledger`), which settles it, unlike an ingress refusal.
      return failAccepted(deny('ERR_PARAMS_SECRET', 'parameters carry a secret value'), 'ledger');
    if (stored.status !== 'ok' || stored.value !== rawSha)
      return failAccepted(deny('ERR_LEDGER_UNAVAILABLE', 'request evidence not confirmed'), 'ledger');
    if (typeof accepted !== 'object')
      return failAccepted(deny('ERR_LEDGER_UNAVAILABLE', 'gateway.accepted not confirmed'), 'ledger');
    let now = performance.now();
    obs.stage('ledger_accept', p.trace_id, t, now);
    t = now;

    // Step 3-5: the Control Plane decides (and ledgers the decision) within the deadline.
    const decided = await withDeadline(
      () =>
        deps.controlPlane.decide(
          {
            request_id: request.request_id,
            trace_id: p.trace_id,
            identity: client.identity,
            tenant: client.tenant,
            // From the registry, never from the request: what Cedar sees as principal.roles.
            roles: client.roles ?? [],
            tool: request.action,
            params: request.parameters,
            timestamp: p.timestampMs,
            session: request.session,
            request_sha256: rawSha,
            ...(a.owner === undefined ? {} : { owner: a.owner }),
            ...(a.schedule === undefined ? {} : { schedule: a.schedule }),
            ...(background ? { background: true } : {}),
          },
          {
            writes,
            ...(waitMs > 0 ? { waitMs, ...(signal === undefined ? {} : { signal }) } : {}),
            ...(a.credential === undefined ? {} : { credential: a.credential }),
            ...(a.message === undefined ? {} : { message: a.message }),
          },
        ),
      cpMs + waitMs,
    );
    now = performance.now();
    obs.stage('decide', p.trace_id, t, now);
    t = now;
    const decision =
      // Stryker disable next-line ConditionalExpression: equivalent, a missing answer parses as uninterpretable, the same code
      decided.status === 'ok'
        ? parseDecisionAnswer(decided.value)
        : deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the Control Plane did not answer in time');
    if (decision.outcome === 'deny') return failAccepted(decision, 'control-plane');

    // Step 6-7: the Execution Layer verifies the envelope itself and runs the tool.
    const execCall = {
      envelope: decision.envelope,
      tool: request.action,
      tenant: client.tenant,
      params: request.parameters,
      trace_id: p.trace_id,
      request_id: request.request_id,
    };
    // From here an envelope exists: any failure voids it before the Gate answers (SPEC §3).
    const failIssued = async (d: DenyAnswer, record: boolean): Promise<GateAnswer<CallResponse>> => {
      const report = await voidEnvelope(
        deps.executor,
        execCall,
        { code: d.code, stage: 'execution' },
        voidMs,
      );
      const withId = { ...d, decision_id: decision.decision_id };
      const a = record
        ? await failAccepted(withId, 'execution', report)
        : answer(withId, request.request_id, p.trace_id);
      return a.body.outcome === 'deny' ? { status: a.status, body: { ...a.body, ...report } } : a;
    };
    if (background) {
      const job: QueuedJob = {
        call: execCall,
        decision_id: decision.decision_id,
        client: client.identity,
        queued_at: deps.clock(),
      };
      return queueJob(job, base, writes, failIssued);
    }
    try {
      const executed = await withCancellableDeadline(
        (signal) => deps.executor.execute(execCall, writes, signal, relay),
        execMs,
      );
      now = performance.now();
      obs.stage('execute', p.trace_id, t, now);
      t = now;
      const outcome =
        // Stryker disable next-line ConditionalExpression: equivalent, a missing answer parses as uninterpretable, the same code
        executed.status === 'ok'
          ? parseExecutionAnswer(executed.value)
          : deny('ERR_EXECUTION_UNAVAILABLE', 'the Execution Layer did not answer in time');
      if (outcome.outcome === 'deny') return await failIssued(outcome, true);

      // Step 8: gateway.completed confirmed before the result leaves; otherwise the result is withheld.
      const completed = await record(
        {
          ...base,
          ...closing(),
          type: 'gateway.completed',
          payload: {
            decision_id: decision.decision_id,
            outcome: 'executed',
            tool: request.action,
            client: client.identity,
            result_sha256: sha256Hex(canonicalize(outcome.result)),
          },
        },
        writes,
      );
      // Refused outright (the ledger is unavailable): no further record is attempted.
      if (!completed)
        return await failIssued(deny('ERR_LEDGER_UNAVAILABLE', 'gateway.completed not confirmed'), false);
      // The receipt and gateway.completed share a commit; the result leaves only once it holds.
      // When that commit failed, the executor wrote its receipt again on its own, and the
      // denial is recorded after it.
      const durable = await writes.sync().then(
        () => true,
        () => false,
      );
      if (!durable)
        return await failIssued(deny('ERR_LEDGER_UNAVAILABLE', 'gateway.completed not confirmed'), true);
      obs.stage('ledger_complete', p.trace_id, t, performance.now());
      return {
        status: 200,
        body: {
          outcome: 'executed',
          request_id: request.request_id,
          trace_id: p.trace_id,
          decision_id: decision.decision_id,
          result: outcome.result,
          receipt: outcome.receipt,
        },
      };
    } catch (err) {
      const d = denyFromError(err);
      return failIssued(deny(d.code, d.reason), true);
    }
  };

  /**
   * The MCP ingress's entry (SPEC §2 step 1): the principal is authenticated already; the Gate
   * mints the request id and nonce, scans the parameters for secrets and claims the pair in the
   * replay store before the shared steps. Denials here are attributable to the principal.
   */
  const callAs = async (
    principal: Principal,
    c: PrincipalCall,
    waitMs: number,
    signal?: AbortSignal,
    options?: Pick<CallOptions, 'background' | 'schedule' | 'relay'>,
  ): Promise<GateAnswer<CallResponse>> => {
    const t0 = performance.now();
    const now = deps.clock();
    let m: MintedCall;
    try {
      m = mintCall(principal, c, now, options?.schedule);
    } catch {
      // Parameters without a canonical form (the ingress parses them strictly, so not expected).
      const d = deny('ERR_REQUEST_MALFORMED', 'the call has no canonical form');
      return failUnauthenticated(d, sha256Hex(`mcp-unmintable:${principal.identity}:${now}`), undefined);
    }
    const auth = {
      auth_method: principal.auth_method,
      issuer: principal.issuer,
      ...(principal.owner === undefined ? {} : { owner: principal.owner }),
    };
    const fail = async (d: Deny, status: string): Promise<GateAnswer<CallResponse>> => {
      await record({
        type: 'gateway.failed',
        trace_id: m.trace_id,
        request_id: m.request_id,
        tenant: principal.tenant,
        identity: principal.identity,
        payload: {
          code: d.code,
          status,
          outcome: 'deny',
          tool: c.tool,
          client: principal.identity,
          ...auth,
          request_sha256: m.rawSha,
        },
      });
      return answer(d, m.request_id, m.trace_id);
    };
    try {
      // The session and a retried request id come from the caller and are stored like the
      // parameters (scenario 16, OE-INV-009): searched with them. A retried id that holds a
      // secret (or one that could not be cleared) is recorded and answered as its redacted id.
      const held = await secretsIn({ parameters: c.params, session: c.session, request_id: m.request_id });
      if (held !== undefined) {
        const idHeld =
          c.retryOf !== undefined &&
          (held.code !== 'ERR_PARAMS_SECRET' || (await secretsIn(m.request_id)) !== undefined);
        if (idHeld) m = { ...m, request_id: redactedId(m.rawSha) };
        return await fail(held, INGRESS);
      }
      const writes = createDurableWrites();
      const claimed = await withDeadline(
        () =>
          deps.replay.claim(
            {
              identity: principal.identity,
              nonce: m.nonce,
              requestId: m.request_id,
              atMs: now,
            },
            writes,
          ),
        ledgerMs,
      );
      if (claimed.status !== 'ok' || (claimed.value !== 'fresh' && claimed.value !== 'replayed'))
        return await fail(deny('ERR_NONCE_STORE_UNAVAILABLE', 'request nonce store unavailable'), INGRESS);
      // A retry names a request id the Gate minted before: one it never saw is not a retry, and
      // a caller never chooses the id of a new call.
      if (c.retryOf !== undefined && claimed.value === 'fresh')
        return await fail(deny('ERR_REQUEST_REPLAYED', 'no earlier call has this request id'), INGRESS);
      // A slot of a schedule is submitted once: its request id is the slot's, so a slot handed
      // out again (a resume on a clock that lags, a replica whose clock differs) is a replay.
      if (options?.schedule !== undefined && claimed.value === 'replayed')
        return await fail(
          deny('ERR_REQUEST_REPLAYED', 'this slot of the schedule was submitted already'),
          INGRESS,
        );
      // A minted pair is fresh by construction: only a retry reuses its request id, and only as
      // a retry of a decision the Control Plane holds for this principal (docs/approvals.md).
      const request = { request_id: m.request_id, action: c.tool, parameters: c.params, session: c.session };
      if (
        claimed.value === 'replayed' &&
        (c.retryOf === undefined ||
          !(await isRetry(
            { request: { ...request, nonce: m.nonce } },
            principal,
            now,
            // An OAuth principal's owner is its token's: a retry under another owner is refused.
            principal.auth_method === 'oauth' ? (principal.owner ?? null) : undefined,
          )))
      )
        return await fail(
          c.retryOf === undefined
            ? deny('ERR_NONCE_STORE_UNAVAILABLE', 'request nonce store unavailable')
            : deny('ERR_REQUEST_REPLAYED', 'request id already used'),
          INGRESS,
        );
      obs.stage('authenticate', m.trace_id, t0, performance.now());
      return await governed(
        {
          body: m.evidence,
          rawSha: m.rawSha,
          p: { trace_id: m.trace_id, timestampMs: m.timestampMs },
          request,
          client: principal,
          auth,
          // An OAuth principal's owner is its token's, or nobody: never a registered client's.
          ...(principal.auth_method === 'oauth' ? { owner: principal.owner ?? null } : {}),
          ...(principal.credential === undefined ? {} : { credential: principal.credential }),
          ...(principal.message === undefined ? {} : { message: principal.message }),
          ...(options?.schedule === undefined ? {} : { schedule: options.schedule }),
          writes,
        },
        waitMs,
        signal,
        options?.background === true,
        options?.relay,
      );
    } catch (err) {
      // Fail closed by construction, as at the signed edge (caught.ts).
      const d = denyFromError(err);
      try {
        return await fail(deny(d.code, d.reason), CAUGHT_STATUS);
      } catch {
        return answer(deny(d.code, d.reason), m.request_id, m.trace_id);
      }
    }
  };

  const toolsFor = async (principal: Principal): Promise<readonly ToolListing[]> => {
    const list = deps.controlPlane.callableTools?.bind(deps.controlPlane);
    if (list === undefined) return [];
    const r = await withDeadline(
      () => list({ identity: principal.identity, tenant: principal.tenant, roles: principal.roles }),
      cpMs,
    );
    return r.status === 'ok' ? r.value : [];
  };

  const mcpEntries = async (): Promise<readonly ToolListing[]> => {
    const list = deps.controlPlane.mcpEntries?.bind(deps.controlPlane);
    if (list === undefined) return [];
    const r = await withDeadline(() => list(), cpMs);
    return r.status === 'ok' ? r.value : [];
  };

  const probeReadiness = async (): Promise<GateAnswer> => {
    const checks: Record<string, boolean> = {};
    const cp = await withDeadline(() => deps.controlPlane.ready(), cpMs);
    checks['control_plane'] = cp.status === 'ok' && isReady(cp.value);
    for (const c of deps.readiness ?? []) {
      const r = await withDeadline(() => c.check(), ledgerMs);
      checks[c.name] = r.status === 'ok' && r.value === true;
    }
    const ok = Object.values(checks).every((v) => v);
    return {
      status: ok ? 200 : 503,
      body: { ready: ok, checks, suppressed_ingress_records: suppressed, shed_calls: shed, inflight },
    };
  };
  let probing: Promise<GateAnswer> | undefined;

  /** Ledgers that `reader` reads the evidence of `requestId` (`audit.read`); false when not confirmed. */
  const recordRead = async (requestId: string, reader: EvidenceRead['reader']): Promise<boolean> => {
    const recorded = await withDeadline(
      () =>
        deps.ledger.recordRead({
          reader: { id: reader.id, role: reader.role },
          request_id: requestId,
          scope: 'request',
        }),
      ledgerMs,
    );
    return recorded.status === 'ok';
  };

  const operatorOf = async (authorization: string | undefined): Promise<OperatorIdentity | undefined> => {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return undefined;
    const token = authorization.slice('Bearer '.length).trim();
    if (token.length === 0) return undefined;
    const sha = sha256Hex(token);
    const registry = deps.operators;
    if (registry === undefined) return hexDigestEquals(sha, deps.operatorTokenSha256) ? BOOTSTRAP : undefined;
    // The registry is the truth on every replica: a rotated or removed token stops at once.
    const r = await withDeadline(() => registry.byToken(sha), ledgerMs);
    if (r.status !== 'ok' || r.value === undefined) return undefined;
    const rec = r.value;
    if (rec.status !== 'active' || !hexDigestEquals(rec.token_sha256, sha)) return undefined;
    return Object.freeze({ name: rec.name, tenants: rec.tenants });
  };
  // The approval API's operator view shows every tenant's approvals: an operator of every tenant's
  // only (a tenant-scoped operator is refused there, ERR_UNAUTHENTICATED, unless also an approver).
  const isOperator = async (authorization: string | undefined): Promise<boolean> =>
    (await operatorOf(authorization))?.tenants === '*';

  const unauthenticated = (): GateAnswer => ({
    status: statusOf('ERR_UNAUTHENTICATED'),
    body: denyBody('ERR_UNAUTHENTICATED'),
  });

  const callEntry = async (
    body: Uint8Array | null,
    options: CallOptions | undefined,
    note: CallNote,
  ): Promise<GateAnswer<CallResponse>> => {
    const waitMs = waitOf(options);
    // Stryker disable next-line AssignmentOperator: equivalent, counting down keeps each placeholder distinct too
    const bytes = body ?? Buffer.from(`oversized:${deps.clock()}:${(oversized += 1)}`);
    try {
      if (body === null || body.byteLength > MAX_REQUEST_BYTES)
        return await failUnauthenticated(
          deny('ERR_REQUEST_TOO_LARGE', 'request body too large'),
          sha256Hex(bytes),
          undefined,
        );
      return await call(body, waitMs, options?.signal, note, options?.background === true);
    } catch (err) {
      // Fail closed by construction: nothing thrown past this point can become an allow. The
      // failure is still recorded, with the request id once the request authenticates.
      const d = denyFromError(err);
      return failCaught(
        { deps, ledgerMs, record, answer, failUnauthenticated },
        deny(d.code, d.reason),
        body,
        sha256Hex(bytes),
      );
    }
  };

  /** Tells the observer how a call ended (its answer, never its parameters or result). */
  const observeEnd = (
    a: GateAnswer<CallResponse>,
    startMs: number,
    ingress: 'http' | 'mcp',
    tool: string | null,
    traceparent: string | undefined,
    /** The id logs and traces may name: never one a secret was found in, nor an unauthenticated one. */
    requestId: string | null,
  ): void => {
    const b = a.body;
    obs.callEnded({
      outcome: b.outcome,
      code: b.outcome === 'executed' || b.outcome === 'queued' ? null : b.code,
      status: a.status,
      trace_id: b.trace_id,
      request_id: requestId,
      // Only a name of the request syntax is logged or traced; anything else is `invalid`.
      tool: observedToolName(tool),
      ingress,
      startMs,
      endMs: performance.now(),
      ...(traceparent === undefined ? {} : { traceparent }),
    });
  };

  const gate: Gate = Object.freeze({
    call: (body: Uint8Array | null, options?: CallOptions) => callEntry(body, options, { tool: null }),
    callAs: (principal: Principal, c: PrincipalCall, options?: CallOptions) =>
      callAs(principal, c, waitOf(options), options?.signal, options),
    toolsFor,
    mcpEntries,
    refuse: async (d: Deny, requestSha256: string) => {
      await failUnauthenticated(d, requestSha256, undefined);
    },
    async evidence(requestId: string, authorization: string | undefined) {
      const who = await operatorOf(authorization);
      if (who === undefined) return unauthenticated();
      const reader = { id: who.name, role: 'operator' };
      if (who.tenants === '*') return gate.readEvidence(requestId, reader);
      // An operator of some tenants: the records' tenants are checked before the read is recorded
      // and anything returned, as the console checks an approver's (src/console/api.ts).
      const scope = who.tenants;
      const view = await withDeadline(() => buildEvidenceView(deps.ledger, requestId), ledgerMs);
      if (view.status !== 'ok') return { status: 503, body: denyBody('ERR_LEDGER_UNAVAILABLE') };
      if (view.value === null) return { status: 404, body: { error: 'not_found', request_id: requestId } };
      const records = (view.value as { records?: unknown }).records;
      const tenants = Array.isArray(records)
        ? records.map((rec) => (rec as { entry?: { tenant?: unknown } } | null)?.entry?.tenant)
        : [undefined];
      if (tenants.some((t) => typeof t !== 'string' || t === '*' || !operatorCovers(scope, t)))
        return { status: statusOf('ERR_FORBIDDEN'), body: denyBody('ERR_FORBIDDEN') };
      // The view that was checked is the view returned: building it again after the read is
      // recorded could take in records another tenant's agent wrote under the same request id
      // in between, unchecked (as the console does, src/console/api.ts).
      if (!(await recordRead(requestId, reader)))
        return { status: 503, body: denyBody('ERR_LEDGER_UNAVAILABLE') };
      return { status: 200, body: view.value };
    },
    async job(requestId: string, authorization: string | undefined) {
      // Without a bearer there is no reader: nothing is read.
      if (bearerOf(authorization) === undefined) return { status: 404, body: { error: 'not_found' } };
      const read = await withDeadline(() => deps.ledger.entriesForRequest(requestId), ledgerMs);
      if (read.status !== 'ok') return { status: 503, body: denyBody('ERR_LEDGER_UNAVAILABLE') };
      // The job's own token reads it without an operator lookup (the registry is asked only for
      // a bearer that is no job's token here).
      const who = holdsJobToken(read.value, bearerOf(authorization))
        ? undefined
        : await operatorOf(authorization);
      const view = await jobView(read.value, {
        token: bearerOf(authorization),
        operator: who === undefined ? undefined : who.tenants,
        covers: operatorCovers,
        result: (sha) => {
          const token = bearerOf(authorization);
          const viaToken = deps.ledger.jobResult?.bind(deps.ledger);
          // The job view checks the blob against `sha` whichever way it came.
          return viaToken === undefined || token === undefined
            ? deps.ledger.getEvidence(sha)
            : viaToken(requestId, token);
        },
        ledgerMs,
        recordOperatorRead: () =>
          who === undefined
            ? Promise.resolve(false)
            : recordRead(requestId, { id: who.name, role: 'operator' }),
      });
      return view;
    },
    finishJob,
    async readEvidence(requestId: string, reader: EvidenceRead['reader']) {
      // L7 read path: the read is ledgered, with who reads, before anything is read; a ledger
      // that cannot record it refuses the read (fail closed).
      if (!(await recordRead(requestId, reader)))
        return { status: 503, body: denyBody('ERR_LEDGER_UNAVAILABLE') };
      const r = await withDeadline(() => buildEvidenceView(deps.ledger, requestId), ledgerMs);
      if (r.status !== 'ok') return { status: 503, body: denyBody('ERR_LEDGER_UNAVAILABLE') };
      return r.value === null
        ? { status: 404, body: { error: 'not_found', request_id: requestId } }
        : { status: 200, body: r.value };
    },
    async jwks() {
      const r = await withDeadline(() => deps.controlPlane.issuerJwks(), cpMs);
      if (r.status !== 'ok') return { status: 503, body: denyBody('ERR_CONTROL_PLANE_UNAVAILABLE') };
      return { status: 200, body: JSON.parse(JSON.stringify(r.value)) as JsonValue };
    },
    async trustRoots() {
      const build = deps.trustRoots;
      if (build === undefined) return { status: 404, body: { error: 'not_found' } };
      const r = await withDeadline(() => build(), cpMs);
      if (r.status !== 'ok') return { status: 503, body: denyBody('ERR_CONTROL_PLANE_UNAVAILABLE') };
      return { status: 200, body: r.value };
    },
    ready() {
      // Concurrent probes share one round: a flood of /readyz costs one probe at a time, not one
      // committed write per request on every store.
      probing ??= probeReadiness().finally(() => (probing = undefined));
      return probing;
    },
    async admin(action: string, body: JsonValue, authorization: string | undefined) {
      const who = await operatorOf(authorization);
      if (who === undefined) return unauthenticated();
      if (deps.operator === undefined) return { status: 404, body: { error: 'not_found' } };
      const op = deps.operator;
      const r = await withDeadline(() => op.run(action, body, who), execMs);
      if (r.status !== 'ok') return { status: 500, body: denyBody('ERR_INTERNAL') };
      return r.value;
    },
    operatorOf,
    approvalRoute: (method: string, path: string, body: JsonValue, authorization: string | undefined) =>
      routeApprovals(
        { approvals: deps.approvals, isOperator, timeoutMs: cpMs },
        method,
        path,
        body,
        authorization,
      ),
  });
  // Overload shedding wraps the entry: a call past the limit does no work at all.
  return Object.freeze({
    ...gate,
    call: async (body: Uint8Array | null, options?: CallOptions) => {
      const startMs = obs === NO_OBSERVER ? 0 : performance.now();
      const note: CallNote = { tool: null };
      let a: GateAnswer<CallResponse>;
      if (inflight >= maxInflight) a = shedCall(body);
      else {
        inflight += 1;
        try {
          a = await callEntry(body, options, note);
        } finally {
          inflight -= 1;
        }
      }
      if (obs !== NO_OBSERVER)
        observeEnd(a, startMs, 'http', note.tool, options?.traceparent, note.requestId ?? null);
      return a;
    },
    callAs: async (principal: Principal, c: PrincipalCall, options?: CallOptions) => {
      const startMs = obs === NO_OBSERVER ? 0 : performance.now();
      let a: GateAnswer<CallResponse>;
      if (inflight >= maxInflight) a = shedCall(null);
      else {
        inflight += 1;
        try {
          a = await gate.callAs(principal, c, options);
        } finally {
          inflight -= 1;
        }
      }
      // The principal is authenticated: the tool it names is attributable (shed calls name none).
      if (obs !== NO_OBSERVER)
        observeEnd(
          a,
          startMs,
          'mcp',
          a.body.request_id === null ? null : c.tool,
          options?.traceparent,
          a.body.request_id,
        );
      return a;
    },
  });
}

function waitOf(options: CallOptions | undefined): number {
  const w = options?.waitMs ?? 0;
  return Number.isSafeInteger(w) && w > 0 ? Math.min(w, MAX_CALL_WAIT_MS) : 0;
}

function payloadOf(e: { readonly [field: string]: JsonValue }): Readonly<Record<string, JsonValue>> {
  const p = e['payload'];
  return typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as JsonObject) : {};
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
function bearerOf(authorization: string | undefined): string | undefined {
  const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/.exec(authorization ?? '');
  return m?.[1];
}

function denyBody(code: DenialCode): JsonValue {
  return { outcome: 'deny', code, reason: code };
}

function isReady(v: unknown): boolean {
  if (v === true) return true;
  return typeof v === 'object' && v !== null && (v as { ready?: unknown }).ready === true;
}
