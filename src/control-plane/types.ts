/**
 * The Control Plane's contract with the Gate (SPEC §2 steps 3–5, FC-INV-6): what the Gate hands
 * in after authenticating and parsing a signed request, and what it gets back.
 */
import type { DurableWrites, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import type { PolicyBundleLike } from './ports.js';

/** A request the Gate authenticated and parsed (SPEC §2 steps 1–2, FC-INV-3). */
export interface GovernedRequest {
  readonly request_id: string;
  readonly trace_id: string;
  /** Client (agent) id. */
  readonly identity: string;
  readonly tenant: string;
  /**
   * The client's registered roles, as the Gate read them from its registry (never from the
   * request); Cedar sees them as `principal.roles`. Absent: none.
   */
  readonly roles?: readonly string[];
  readonly tool: string;
  readonly params: JsonValue;
  /** Milliseconds since the epoch, from the signed request. */
  readonly timestamp: number;
  /** Agent session id, for quarantine and circuit breakers (OE-INV-021). */
  readonly session: string | null;
  /** Lower-case hex SHA-256 of the raw signed request (evidence reference). */
  readonly request_sha256: string;
  /**
   * The requester's human owner as the ingress authenticated it (an OAuth token's owner claim,
   * docs/mcp.md "Approvals"); null: none is known and nobody may approve its escalated calls
   * (OE-INV-002). Absent: the owner registered for the client.
   */
  readonly owner?: string | null;
  /**
   * Present for a run of a schedule (docs/schedules.md): the Control Plane checks the run against
   * its schedule and slot, and issues an envelope that expires at the slot's end at the latest.
   */
  readonly schedule?: ScheduledRun;
  /**
   * A background call (docs/jobs.md): the envelope grants the tool's `background_timeout_ms`
   * when it names one. Unsigned by the client (the `Prefer` header): it chooses only which of the
   * tool's policy-set limits applies.
   */
  readonly background?: boolean;
  /**
   * The index of this attempt's `gateway.accepted` entry, when another process may close the
   * attempt meanwhile (a keyless Gate's request, which a sweep records abandoned once its Gate is
   * gone): the `envelope.issued` is then appended only while that attempt is open, else the call
   * is denied `ERR_LEDGER_REQUEST_CLOSED` and no envelope leaves (FC-INV-5). Set by the Control
   * Plane process from its own ledger, never taken from a Gate.
   */
  readonly attempt?: number;
}

/** A scheduled run as the Gate's scheduler submits it (docs/schedules.md, FC-INV-6). */
export interface ScheduledRun {
  /** The schedule's id. */
  readonly id: string;
  /** The decision of the schedule's creation (`schedule.create`), whose approvals stand behind its runs. */
  readonly decision_id: string;
  /** The creation's parameters, exactly as approved (`{tool, params, cron | at, until?, window_seconds?}`). */
  readonly spec: JsonObject;
  /** The start of the slot this run is for (ms since the epoch); the spec must fire then. */
  readonly slot_start: number;
}

/**
 * The Control Plane's answer: an allow carries the signed envelope and the confirmed ledger
 * reference of its decision record; anything else is a {@link Deny} with the decision id when
 * one was derived (FC-INV-4, FC-INV-5).
 */
export type ControlPlaneResult =
  | {
      readonly outcome: 'allow';
      readonly decision_id: string;
      readonly envelope: string;
      readonly decision_ref: { readonly index: number; readonly entry_hash: string };
      readonly policy_bundle: string;
    }
  | (Deny & { readonly decision_id: string | null });

/** The allow branch of {@link ControlPlaneResult}. */
export type ControlPlaneAllow = Extract<ControlPlaneResult, { outcome: 'allow' }>;

/** Options of one decision. */
export interface DecideOptions {
  /**
   * How long an escalated decision may wait for its approvals before answering
   * `ERR_APPROVAL_PENDING` (long-poll, ms; capped by the approval settings). Default 0.
   */
  readonly waitMs?: number;
  /**
   * The call's pending durable writes (`durability.ts`): the breaker admission, the decision and
   * the issuance may then share one commit with what the Gate wrote before, and the Control
   * Plane waits for all of them (`writes.sync()`) before an envelope leaves it. Absent: each write
   * is waited for on its own.
   */
  readonly writes?: DurableWrites;
  /**
   * Aborted when the caller cancels or goes away: a wait for approvals ends then, and the call is
   * not issued even if its approvals arrive (`approval-step.ts`).
   */
  readonly signal?: AbortSignal;
  /**
   * The bearer token an MCP call was authenticated with (`Principal.credential`): only a Control
   * Plane in another process uses it, to authenticate the call again (`gate-routes.ts`). Never
   * recorded or stored.
   */
  readonly credential?: string;
  /** The message a client-key `credential` is bound to, base64 (`Principal.message`). */
  readonly message?: string;
}

/** The Control Plane as the Gate sees it (SPEC §1, §2). */
export interface ControlPlane {
  /**
   * Decides one request: governance state, circuit breakers, bundle, tool, parameters, policy,
   * decision record (confirmed), envelope. Never throws; every failure is a deny (FC-INV-4).
   */
  decide(req: GovernedRequest, options?: DecideOptions): Promise<ControlPlaneResult>;
  /** Ready when a verified active bundle is loaded and the governance state answers. */
  ready(): Promise<{ ready: boolean; reason?: string }>;
  /** The issuer's public keys with the revocation list (`{keys, revoked}`), never a private key. */
  issuerJwks(): JsonValue;
  /** The verified active bundle, or `undefined` when none is (SPEC §6, scenario 13). */
  activeBundle(): { readonly hash: string; readonly bundle: PolicyBundleLike } | undefined;
}
