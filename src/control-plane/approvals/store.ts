/**
 * The approval state (OE-INV-019/020, L7 Identity & Signing, Break-glass): the approver registry
 * (a namespace apart from clients, OE-INV-002), client owners (self-approval detection), pending
 * approvals, votes, break-glass grants and review items, and the store interface every backend
 * implements (SQLite: `sqlite-store.ts`; PostgreSQL: `src/storage/postgres/approval-store.ts`).
 * Single use and single issuance are enforced by the database: a primary key or a guarded UPDATE,
 * where "one row changed" is the only success (SPEC §8 nonce-store pitfall). Failures reject; the
 * callers deny.
 */
import type { KeyObject } from 'node:crypto';
import type { Ed25519Jwks, JsonObject, JsonValue } from '../../kernel/index.js';
import type { LedgerRef } from '../ledger-port.js';
import type { ActivityRecord, ApproverActivity } from './watch.js';

/** Life of a pending approval. `issued` is terminal: the envelope was issued once. */
export type PendingStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'issued';

/** What is being approved: a governed call or a policy activation (OE-INV-020). */
export type PendingKind = 'call' | 'policy_activation';

/** A pending approval as stored. */
export interface PendingRecord {
  readonly decision_id: string;
  readonly kind: PendingKind;
  readonly request_id: string;
  readonly trace_id: string;
  /** The requesting client (or `operator` for a policy activation). */
  readonly identity: string;
  /** The human owner of the requesting client; null when unknown (then nobody may approve). */
  readonly owner: string | null;
  readonly tenant: string;
  readonly tool: string;
  readonly session: string | null;
  readonly params_sha256: string;
  readonly intent_sha256: string;
  readonly params_view: JsonValue;
  readonly preview: JsonObject | null;
  readonly preview_sha256: string | null;
  readonly risk: string;
  readonly required: number;
  readonly roles: readonly string[];
  readonly policy_bundle: string | null;
  readonly decision_ref: LedgerRef | null;
  /** The envelope `constraints` computed at decision time (calls), or null. */
  readonly constraints: JsonObject | null;
  readonly created_at: number;
  readonly expires_at: number;
  readonly status: PendingStatus;
  /** Approval references (evidence hashes) once finalised. */
  readonly approvals: readonly string[];
  readonly grant_id: string | null;
}

/** One counted approval or rejection. */
export interface VoteRecord {
  readonly decision_id: string;
  readonly approver: string;
  readonly verdict: 'approve' | 'reject';
  readonly role: string;
  readonly method: 'key' | 'oidc';
  readonly approval_sha256: string;
  readonly at: number;
  readonly ledger_index: number;
  /** The submitted approval (statement with its signature, or the verified OIDC identity), re-counted at finalisation. */
  readonly candidate: JsonObject;
}

/**
 * The tenants an approver may decide for (OE-INV-020): a list, or `'*'` for every tenant, given
 * explicitly at registration (`--all-tenants`) and recorded as such. Approvers registered before
 * tenant scopes existed read as `'*'` (they were global).
 */
export type ApproverTenants = readonly string[] | '*';

/** A registered approver (embedded default identity method). */
export interface ApproverRecord {
  readonly name: string;
  readonly roles: readonly string[];
  readonly tenants: ApproverTenants;
  readonly kid: string;
  /** `revoked`: removed (`approvers remove`); its votes no longer count, the name stays taken. */
  readonly status: 'active' | 'revoked';
  readonly registered_at: number;
}

/** A tenant name as clients are registered with (never `*`, which stands for every tenant). */
export const TENANT_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/** True when an approver scoped to `tenants` may decide for `tenant`. */
export function approverCovers(tenants: ApproverTenants, tenant: string): boolean {
  return tenants === '*' || tenants.includes(tenant);
}

/** A break-glass grant (L7). */
export interface BreakGlassGrant {
  readonly grant_id: string;
  readonly approver: string;
  readonly role: string;
  readonly tenant: string;
  readonly tool: string;
  readonly reason_category: string;
  readonly reason: string;
  readonly created_at: number;
  readonly expires_at: number;
  readonly ledger_index: number;
  /** SHA-256 of the signed break-glass statement (evidence); the envelope's approval reference. */
  readonly statement_sha256: string;
}

/** A post-incident review item opened by a break-glass use. */
export interface ReviewRecord {
  readonly review_id: string;
  readonly grant_id: string;
  readonly decision_id: string;
  /** Who used break-glass: may not close the review. */
  readonly opened_for: string;
  readonly opened_at: number;
  readonly status: 'open' | 'closed';
  readonly closed_by: string | null;
  readonly closed_at: number | null;
  readonly notes: string | null;
}

/**
 * The approval state (OE-INV-019/020, FC-INV-4 single use). Every method returns a promise and
 * rejects when the database fails or a row read back is malformed; the callers deny. Every state
 * transition is one atomic operation of the database, so several Control Plane replicas sharing
 * one database count each vote once and issue each approved call once.
 */
export interface ApprovalStore {
  /** Registers an approver; rejects with `TypeError` for a malformed key or a taken name. */
  registerApprover(input: {
    name: string;
    roles: readonly string[];
    tenants: ApproverTenants;
    jwk: unknown;
    atMs: number;
  }): Promise<ApproverRecord>;
  /** `active` → `revoked` (removal); true exactly once, false when unknown or already removed. */
  revokeApprover(name: string): Promise<boolean>;
  /** The approver and its checked public key, or undefined. */
  approver(name: string): Promise<(ApproverRecord & { readonly publicKey: KeyObject }) | undefined>;
  listApprovers(): Promise<readonly ApproverRecord[]>;
  /** Approver public keys with the revoked kids (audit bundles). */
  approverJwks(): Promise<Ed25519Jwks>;
  setOwner(identity: string, owner: string): Promise<void>;
  ownerOf(identity: string): Promise<string | undefined>;
  /** Inserts a pending approval; false when one exists for the decision (the first one stays). */
  insertPending(rec: PendingRecord): Promise<boolean>;
  pending(decisionId: string): Promise<PendingRecord | undefined>;
  listPending(): Promise<readonly PendingRecord[]>;
  /**
   * Records a vote and marks its approval hash used, atomically: `'duplicate'` when this approver
   * already voted on the decision, `'replayed'` when the signed approval was used before. Of two
   * identical votes racing, exactly one is `'ok'`.
   */
  addVote(vote: VoteRecord): Promise<'ok' | 'duplicate' | 'replayed'>;
  /** Marks a statement hash used (break-glass, reviews); true exactly once per hash. */
  markUsed(sha256: string, atMs: number): Promise<boolean>;
  votes(decisionId: string): Promise<readonly VoteRecord[]>;
  /** `pending` → `status`; true exactly once, false when the decision was no longer pending. */
  finalize(
    decisionId: string,
    status: 'approved' | 'rejected' | 'expired',
    approvals: readonly string[],
    grantId?: string,
  ): Promise<boolean>;
  /** `approved` → `issued`: true exactly once per decision (single issuance). */
  markIssued(decisionId: string): Promise<boolean>;
  /**
   * Runs `fn` in the critical section of one decision, across every replica sharing the store
   * (SQLite, served by one process: an in-process mutex; PostgreSQL: a session advisory lock on
   * a dedicated connection). The approval steps that ledger something about a decision and then
   * change its state run inside it, re-reading that state first, so the ledger records exactly
   * what counted. Rejects, without running `fn`, when the section cannot be entered in time (the
   * caller denies as for any store failure, fail closed); otherwise settles as `fn` does, and
   * leaves the section in every case. Not re-entrant: `fn` must not enter the same decision's.
   * `fn` is handed `held()`: false once the section may have been lost while it runs (PostgreSQL:
   * its connection failed, so the server dropped the lock and another replica may enter); the
   * step then writes nothing more to the ledger.
   */
  withDecisionLock<T>(decisionId: string, fn: (held: () => boolean) => Promise<T>): Promise<T>;
  insertGrant(grant: BreakGlassGrant): Promise<void>;
  /** The latest unexpired grant for `tenant` and `tool` at `atMs`. */
  activeGrant(tenant: string, tool: string, atMs: number): Promise<BreakGlassGrant | undefined>;
  /** Every grant unexpired at `atMs` (at most 1,000), the latest expiry first. */
  activeGrants(atMs: number): Promise<readonly BreakGlassGrant[]>;
  /**
   * Ends the grant `grantId` at `atMs` (revoked): from then on no lookup finds it. True exactly
   * once, when it was unexpired at `atMs`; false when it is unknown or already ended.
   */
  endGrant(grantId: string, atMs: number): Promise<boolean>;
  /** Inserts a review item; one with the same id is kept as it is (a retried break-glass use). */
  insertReview(review: ReviewRecord): Promise<void>;
  review(id: string): Promise<ReviewRecord | undefined>;
  listReviews(): Promise<readonly ReviewRecord[]>;
  /** `open` → `closed`; true exactly once, false when it was not open. */
  closeReview(id: string, by: string, notes: string, atMs: number): Promise<boolean>;
  /**
   * Takes one of `limit` counted-approval slots of `approver` in the fixed window of `windowMs`
   * starting at `windowStart` (L7 "Rate limits … for approvals"): true when taken, false (nothing
   * taken) when all are. One atomic statement, so replicas sharing the store never hand out more
   * than `limit` in one window. Only windows older than the previous one are pruned: a replica
   * whose clock lags the others by less than a window keeps counting in its own.
   */
  takeApprovalSlot(approver: string, windowStart: number, windowMs: number, limit: number): Promise<boolean>;
  /**
   * Marks that the rate-limited refusal of `approver` in the window at `windowStart` was recorded:
   * true exactly once per window (false too when the window is not on record).
   */
  markRateRefusal(approver: string, windowStart: number): Promise<boolean>;
  /**
   * Records the flags of `a.approver` (the human) on `a.decision_id` before they are ledgered
   * (`approval.flagged`): one row per (decision, human); a repeat keeps the first flags and
   * raises `extra` when the repeat has it (`extra` never falls). The threshold a finalisation
   * applies is read from these rows ({@link ApprovalStore.flagged}).
   */
  recordFlag(a: ActivityRecord): Promise<void>;
  /** Records that `approver` opened the view of a decision at `atMs` (the first time stays). */
  recordView(decisionId: string, approver: string, atMs: number): Promise<void>;
  /** When `approver` first opened the view of a decision, or undefined. */
  viewedAt(decisionId: string, approver: string): Promise<number | undefined>;
  /** Records a counted approval (and its flags) in its approver's history; a repeat is kept as it is. */
  recordActivity(a: ActivityRecord): Promise<void>;
  /** `approver`'s counted approvals on record, with how many since `recentSince`. */
  activity(approver: string, recentSince: number): Promise<ApproverActivity>;
  /** The flags recorded on a decision ({@link ApprovalStore.recordFlag}), in approver order. */
  flagged(decisionId: string): Promise<readonly ActivityRecord[]>;
  close(): Promise<void>;
}
