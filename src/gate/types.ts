/**
 * What the Gate needs from the other roles, as interfaces the composition root implements
 * (SPEC §1, FC-INV-6). The Gate never imports the Control Plane, the Execution Layer or the
 * ledger at run time: it only sees these shapes, so its run-time closure can never reach signing
 * code (test/layering.test.ts).
 */
import type { KeyObject } from 'node:crypto';
import type {
  Clock,
  DenialCode,
  Deny,
  DurableWrites,
  JsonObject,
  JsonValue,
  Observer,
} from '../kernel/index.js';
import type { ControlPlane, ControlPlaneResult, GovernedRequest } from '../control-plane/index.js';
import type { OperatorIdentity, OperatorStore } from './operators.js';
import type { GateJobQueue } from './jobs.js';
import type { CallRelay } from '../execution/index.js';

export type { ControlPlaneResult, GovernedRequest };

/** The slice of the Control Plane the Gate calls (decide, readiness, issuer keys, retries of escalated calls). */
export type GateControlPlane = Pick<ControlPlane, 'decide' | 'ready'> & {
  /** The issuer's public keys with the revocation list; a Control Plane in another process answers later. */
  issuerJwks(): JsonValue | Promise<JsonValue>;
  /**
   * True when a request with a reused request id is a retry of an escalated call with the same
   * client, tenant, tool, session and parameters that has not been issued yet
   * (docs/approvals.md "Retries"). Absent: every reused request id is a replay.
   */
  isRetry?(
    req: Pick<GovernedRequest, 'request_id' | 'identity' | 'tenant' | 'tool' | 'params' | 'session'> & {
      /**
       * The owner the retry's ingress knows (an OAuth token's owner claim, null for none): it
       * must be the held call's, so a retry cannot run under another owner than the one the
       * approvers were checked against. Absent: a signed client, whose owner is its registration's.
       */
      readonly owner?: string | null;
    },
  ): Promise<boolean>;
  /**
   * The active bundle's tools this principal could be allowed to call (MCP `tools/list`, see
   * docs/mcp.md "Which tools are listed"). Absent: none are listed.
   */
  callableTools?(principal: {
    readonly identity: string;
    readonly tenant: string;
    readonly roles: readonly string[];
  }): Promise<readonly CatalogListing[]>;
  /**
   * The active bundle's pinned MCP prompts and resources, whatever policy says (MCP
   * `prompts/get` and `resources/read` find their entry here, then the call is decided in full).
   * Absent: none.
   */
  mcpEntries?(): Promise<readonly CatalogListing[]>;
};

/**
 * A pinned upstream prompt or resource behind a bundle entry (docs/mcp.md "Prompts and
 * resources"), or the completion of a pinned prompt's arguments or template's variables
 * (docs/mcp.md "Completion"): never listed, reached by `completion/complete` only.
 */
export interface McpEntryInfo {
  readonly kind: 'prompt' | 'resource' | 'template' | 'completion';
  /** The upstream prompt name, the resource URI, or the URI template (a completion: of what it completes). */
  readonly upstream: string;
  /** A template's URIs: the anchored pattern of what it expands to (kernel `uriTemplatePattern`). */
  readonly pattern?: RegExp;
  /** The pinned definition (prompt: name, title, description, arguments; resource: uri, name, title, description, mimeType). */
  readonly definition: JsonObject;
}

/** A bundle entry as the MCP ingress lists it. */
export interface CatalogListing {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: JsonObject;
  /** Present for a pinned upstream prompt or resource; absent for a tool. */
  readonly mcp?: McpEntryInfo;
}

/** The call the Gate forwards to the Execution Layer with the envelope (SPEC §2 step 6). */
export interface ExecutionCall {
  readonly envelope: string;
  readonly tool: string;
  readonly tenant: string;
  readonly params: JsonObject;
  readonly trace_id: string;
  readonly request_id: string;
  /**
   * A background call's run (docs/jobs.md): its envelope may grant up to the tool's background
   * time limit, so a port waits that long. Never sent to the Execution Layer, which reads the
   * limit from the envelope.
   */
  readonly background?: true;
}

/** Reference to a confirmed ledger entry. */
export interface LedgerRef {
  readonly index: number;
  readonly entry_hash: string;
}

/** What the Execution Layer answers. */
export type ExecutionResult =
  { readonly outcome: 'executed'; readonly result: JsonValue; readonly receipt: LedgerRef } | Deny;

/** A request to void the envelope of a call that failed after issuance (SPEC §3). */
export interface VoidCall extends ExecutionCall {
  /** The denial the Gate answers with. */
  readonly code: DenialCode;
  /** Where the call failed. */
  readonly stage: string;
}

/**
 * What the Execution Layer answers to a void: `voided` (never consumable; `recorded` when
 * `envelope.voided` was ledgered), `consumed` (a consumption won: the tool may have run), or a
 * deny (voiding not confirmed).
 */
export type VoidResult =
  { readonly outcome: 'voided'; readonly recorded: boolean } | { readonly outcome: 'consumed' } | Deny;

/**
 * The Execution Layer as the Gate sees it: it can ask for a run, and it can take an envelope out
 * of use; it can never consume a nonce or run a tool itself (FC-INV-6).
 */
export interface GateExecutor {
  /**
   * With `writes` (an in-process Execution Layer over stores that share commits), the nonce
   * consumption joins the call's pending writes and the receipt may be written without waiting:
   * the Gate lets nothing out before `writes.sync()` (`durability.ts`).
   *
   * With `relay` (the MCP ingress): the Execution Layer relays the upstream's notices and
   * requests of the call to it and ends the call when it is cancelled (relay.ts); a remote port
   * carries it across the connection (docs/deployment.md "The relay between the Gate and the
   * Execution Layer"), except for a background call.
   */
  execute(
    call: ExecutionCall,
    writes?: DurableWrites,
    signal?: AbortSignal,
    relay?: CallRelay,
  ): Promise<ExecutionResult>;
  /** `signal` (both methods): aborted when the Gate's deadline passes; a remote port cancels its request. */
  void(call: VoidCall, signal?: AbortSignal): Promise<VoidResult>;
}

/** A gateway event appended by the Gate (SPEC §2 steps 2 and 8, FC-INV-5). */
export interface GatewayEvent {
  readonly type: 'gateway.accepted' | 'gateway.completed' | 'gateway.failed' | 'gateway.queued';
  readonly trace_id: string;
  /** Null when the request never authenticated (its fields cannot be trusted). */
  readonly request_id: string | null;
  readonly tenant: string | null;
  /** The authenticated client identity, or null. */
  readonly identity: string | null;
  readonly payload: JsonObject;
  /**
   * For an outcome (`gateway.completed`, `gateway.failed`): the index of the `gateway.accepted`
   * entry of the attempt it closes. The outcome is then appended only while that request is
   * open, and refused with `ERR_LEDGER_REQUEST_CLOSED` once it has an outcome (its own, written
   * by an earlier try whose answer was lost, or another's: a sweep's `request.abandoned`, another
   * Gate's answer to the same job). So an outcome can be retried, and a request never gets two
   * (FC-INV-5).
   */
  readonly closes?: number;
}

/** A ledger entry as read back for the evidence view (SPEC §4 fields). */
export interface LedgerEntryView {
  readonly index: number;
  readonly type: string;
  readonly entry_hash: string;
  readonly [field: string]: JsonValue;
}

/** The latest signed checkpoint. */
export interface CheckpointView {
  readonly size: number;
  readonly root_hash: string;
  /** The C2SP signed note text. */
  readonly note: string;
}

/**
 * The Audit System as the Gate sees it. Every write resolves only once durable (SPEC §4), except
 * with `writes` over a ledger whose writes share commits: then it resolves once written, and the
 * Gate waits with `writes.sync()` before anything that depends on it leaves (`durability.ts`).
 */
export interface GateLedger {
  /** Stores raw bytes as evidence; resolves to their lower-case hex SHA-256. */
  putEvidence(bytes: Uint8Array, mediaType: string, writes?: DurableWrites): Promise<string>;
  /** Appends a gateway event; resolves once confirmed. */
  appendGatewayEvent(event: GatewayEvent, writes?: DurableWrites): Promise<LedgerRef>;
  /** The evidence blob with this lower-case hex SHA-256 (a background call's result), or undefined. */
  getEvidence(sha256: string): Promise<Uint8Array | undefined>;
  /**
   * The recorded result of the background call `requestId`, for the holder of its job token
   * only, or undefined. A ledger in another process, which serves a Gate no raw evidence, serves
   * it this one (`control-plane-link.ts`). Absent: the result is read by `getEvidence`.
   */
  jobResult?(requestId: string, token: string): Promise<Uint8Array | undefined>;
  /** Every entry whose `request_id` is `requestId`, in index order. */
  entriesForRequest(requestId: string): Promise<readonly LedgerEntryView[]>;
  /** The latest signed checkpoint, or null before the first. */
  latestCheckpoint(): Promise<CheckpointView | null>;
  /** RFC 6962 inclusion proof (hex node hashes) of `index` in the tree of `treeSize` entries. */
  proveInclusion(index: number, treeSize: number): Promise<readonly string[]>;
  /**
   * Records a read of raw evidence as `audit.read` (L7 read path controls "Access logging (who
   * viewed what, when)"); resolves once confirmed. The Gate returns nothing it did not record.
   */
  recordRead(read: EvidenceRead): Promise<LedgerRef>;
}

/**
 * Who read which request's evidence (L7 read path). `reader` is an input: the operator token
 * reads as `operator`; a per-person sign-in passes the person.
 */
export interface EvidenceRead {
  readonly reader: { readonly id: string; readonly role: string };
  readonly request_id: string;
  /** What was read: the evidence view of one request. */
  readonly scope: 'request';
}

/** A registered client (FC-INV-3). */
export interface RegisteredClient {
  readonly identity: string;
  readonly tenant: string;
  readonly kid: string;
  readonly status: 'active' | 'revoked';
  /** Roles given at registration (`clients add --role`); Cedar sees them as `principal.roles`. */
  readonly roles?: readonly string[];
  /** Checked Ed25519 public key. */
  readonly publicKey: KeyObject;
}

/** Client identities known to the Gate. */
export interface ClientRegistry {
  lookup(identity: string): RegisteredClient | undefined | Promise<RegisteredClient | undefined>;
}

/** Single use of request nonces and request ids per client (FC-INV-3). */
export interface RequestReplayStore {
  /**
   * Atomically records `nonce` and `requestId` for `identity`. `'fresh'` only when neither was
   * seen before; throws or rejects when the store cannot confirm. With `writes`, it may answer
   * before its commit and register the commit there.
   */
  claim(
    input: {
      identity: string;
      nonce: string;
      requestId: string;
      atMs: number;
    },
    writes?: DurableWrites,
  ): 'fresh' | 'replayed' | Promise<'fresh' | 'replayed'>;
  /**
   * Atomically records only `nonce` for `identity` (a retry reuses its request id, never its
   * nonce). `'fresh'` only when the nonce was not seen before.
   */
  claimNonce?(input: {
    identity: string;
    nonce: string;
    atMs: number;
  }): 'fresh' | 'replayed' | Promise<'fresh' | 'replayed'>;
}

/** An HTTP answer from an injected component. */
export interface RouteAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/**
 * The approval API the Gate serves (OE-INV-019/020, L7 Break-glass): implemented by the
 * composition root over the Control Plane's approval service. Submissions carry their own proof
 * (an approver signature, or an OIDC bearer token bound to the statement); listing needs the
 * operator token or a valid approver token.
 */
export interface GateApprovals {
  /** `scope`: only the approvals of tenants a reading approver is scoped to. */
  list(scope?: TenantScope): Promise<RouteAnswer>;
  /** `viewer`: the identified approver reading it (recorded as having opened it; scoped). */
  show(
    decisionId: string,
    viewer?: { readonly name: string; readonly tenants: TenantScope },
  ): Promise<RouteAnswer>;
  submit(
    decisionId: string,
    verdict: 'approve' | 'reject',
    body: JsonValue,
    bearer: string | undefined,
  ): Promise<RouteAnswer>;
  breakGlass(body: JsonValue): Promise<RouteAnswer>;
  /** `scope`: only the reviews of calls of tenants a reading approver is scoped to. */
  reviews(scope?: TenantScope): Promise<RouteAnswer>;
  closeReview(reviewId: string, body: JsonValue): Promise<RouteAnswer>;
  /** The approver a valid approver token (OIDC) identifies, with its tenant scope; undefined: none. */
  approverOf(bearer: string): Promise<{ readonly name: string; readonly tenants: TenantScope } | undefined>;
}

/** The tenants an approver may see: a list of tenant names, or `'*'` for every tenant. */
export type TenantScope = '*' | readonly string[];

/** A named readiness check for `/readyz`. */
export interface ReadinessCheck {
  readonly name: string;
  check(): boolean | Promise<boolean>;
}

/**
 * An operator action's answer. `stream`, when present, is sent instead of `body` as
 * `application/x-ndjson`, line by line with backpressure (the audit-bundle export, which may be
 * far larger than any JSON answer).
 */
export interface OperatorAnswer {
  readonly status: number;
  readonly body: JsonValue;
  readonly stream?: AsyncIterable<string>;
}

/**
 * Operator actions the Gate routes under `/v1/admin/` after authenticating the operator: `who`
 * is the person whose token it was, recorded as the actor of every entry the action ledgers.
 */
export interface OperatorActions {
  run(action: string, body: JsonValue, who: OperatorIdentity): Promise<OperatorAnswer>;
}

/** Deadlines and tolerances for the Gate. */
export interface GateTimeouts {
  /** Deadline for `decide` (ms). Default 5000. */
  readonly controlPlaneMs?: number;
  /** Deadline for the job queue to confirm a background call (ms). Default 5000. */
  readonly queueMs?: number;
  /** Deadline for `execute` (ms). Default 30000. */
  readonly executionMs?: number;
  /** Deadline for each ledger write (ms). Default 5000. */
  readonly ledgerMs?: number;
  /** Deadline for voiding an envelope after a failure (ms). Default 5000. */
  readonly voidMs?: number;
}

/** Everything {@link createGate} needs. */
export interface GateDeps {
  readonly clock: Clock;
  readonly clients: ClientRegistry;
  readonly replay: RequestReplayStore;
  readonly ledger: GateLedger;
  readonly controlPlane: GateControlPlane;
  readonly executor: GateExecutor;
  /** Accepted clock skew either way for request timestamps (ms). Default 120000. */
  readonly timestampToleranceMs?: number;
  readonly timeouts?: GateTimeouts;
  /**
   * Lower-case hex SHA-256 of the bootstrap operator's bearer token (evidence view, admin): the
   * one operator when no {@link GateDeps.operators} registry is given.
   */
  readonly operatorTokenSha256: string;
  /**
   * The operator registry (OE-INV-025): when given, it alone authenticates operators (the
   * bootstrap among them), each with a tenant scope; a registry that fails authenticates no one.
   */
  readonly operators?: Pick<OperatorStore, 'byToken'>;
  /** `/readyz` checks besides the Control Plane's own (ledger, nonce store, sandbox probe, ...). */
  readonly readiness?: readonly ReadinessCheck[];
  readonly operator?: OperatorActions;
  /**
   * True when parameters carry a secret value or secret pattern; such a request is refused with
   * `ERR_PARAMS_SECRET` before its bytes are stored (scenario 16). A throw counts as true.
   */
  readonly secretScanner?: (params: JsonValue) => boolean;
  /**
   * Where the secret values are known elsewhere (a keyless Gate: the Control Plane process's):
   * resolves true when parameters hold one. Asked after {@link secretScanner} and before anything
   * of the request is claimed or stored; a find is `ERR_PARAMS_SECRET`, a rejection or a missed
   * deadline `ERR_CONTROL_PLANE_UNAVAILABLE` (scenario 16, OE-INV-009).
   */
  readonly secretValues?: (params: JsonValue) => Promise<boolean>;
  /**
   * The job queue of background calls (docs/jobs.md); absent, a background call is voided and
   * denied with `ERR_QUEUE_UNAVAILABLE`.
   */
  readonly jobs?: GateJobQueue;
  /** The approval API; absent, its routes answer 404. */
  readonly approvals?: GateApprovals;
  /** Builds the public trust file for `GET /v1/trust-roots`; absent, the route answers 404. */
  readonly trustRoots?: () => JsonValue | Promise<JsonValue>;
  /**
   * At most this many `gateway.failed` records per second for requests that never
   * authenticated; the rest are counted and summarised (bounded flood, FC-INV-5). Default 50.
   */
  readonly unauthenticatedRecordsPerSecond?: number;
  /**
   * Most calls the Gate works on at once (`max_inflight`); a call beyond it is answered at once
   * `503 ERR_OVERLOADED` before any work, counted, and recorded within the unauthenticated-record
   * budget. Default {@link DEFAULT_MAX_INFLIGHT}.
   */
  readonly maxInflight?: number;
  /**
   * Sees each governed call's stages and outcome (logs, metrics, traces; docs/deployment.md
   * "Observability"). Default: nothing is measured.
   */
  readonly observer?: Observer;
}

/**
 * Default in-flight limit: sized for a 2-core host, where calls mostly wait on fsyncs and sandboxed
 * tool processes; beyond it queues only add latency (256 clients saw a 20 s p99 unbounded).
 */
export const DEFAULT_MAX_INFLIGHT = 64;

/** The response body the Gate sends for a call. */
export type CallResponse =
  | {
      readonly outcome: 'executed';
      readonly request_id: string;
      readonly trace_id: string;
      readonly decision_id: string;
      readonly result: JsonValue;
      readonly receipt: LedgerRef;
    }
  | {
      readonly outcome: 'deny';
      readonly code: DenialCode;
      readonly reason: string;
      readonly request_id: string | null;
      readonly trace_id: string;
      readonly decision_id?: string;
      /**
       * Present when an envelope had been issued for the call: true when it was voided durably
       * before this answer (it can never run); false when that could not be confirmed, and its
       * short TTL is the last line (docs/envelope.md "Voiding").
       */
      readonly envelope_voided?: boolean;
      /** True when the envelope had already been consumed: the tool may have run. */
      readonly envelope_consumed?: boolean;
    }
  | {
      /**
       * 202: a background call, decided and queued (docs/jobs.md); fetch its outcome at
       * `job.href` with `Authorization: Bearer <job.token>`.
       */
      readonly outcome: 'queued';
      readonly request_id: string;
      readonly trace_id: string;
      readonly decision_id: string;
      readonly job: { readonly id: string; readonly token: string; readonly href: string };
    }
  | {
      /** 202: the call waits for approvals; retry with the same request id (docs/approvals.md). */
      readonly outcome: 'pending';
      readonly code: 'ERR_APPROVAL_PENDING';
      readonly reason: string;
      readonly request_id: string;
      readonly trace_id: string;
      readonly decision_id: string;
    };
