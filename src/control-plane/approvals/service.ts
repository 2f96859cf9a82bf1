/**
 * The approval service (OE-INV-019/020, OE-INV-018, L7 Identity & Signing, L7 Break-glass): the
 * one object the Control Plane, the Gate's approval routes and the operator actions use. See
 * docs/approvals.md.
 */
import { deny, isDeny, parsePublicJwk } from '../../kernel/index.js';
import type { Deny, Ed25519Jwks } from '../../kernel/index.js';
import { GLOBAL_TENANT, adminRequestId, type Actor, type LedgerRef } from '../ledger-port.js';
import { closeReview, grantBreakGlass, useBreakGlass, type SignedStatement } from './break-glass.js';
import { createApprovalCtx, type ApprovalServiceDeps, type ApprovalSettings } from './context.js';
import {
  openPending,
  readPending,
  requiredNow,
  settlePending,
  submitApproval,
  type OpenInput,
  type Submission,
  type SubmitAccepted,
} from './pending.js';
import type {
  ApproverRecord,
  ApproverTenants,
  BreakGlassGrant,
  PendingRecord,
  ReviewRecord,
  VoteRecord,
} from './store.js';
import { TENANT_NAME as TENANT, approverCovers } from './store.js';
import { humanOf } from './threshold.js';

/**
 * The approval service. The decision-path methods resolve to denies for refusals; every method
 * rejects when the approval state fails (the callers' edges turn that into their deny).
 */
export interface ApprovalService {
  readonly settings: ApprovalSettings;
  /** Opens (or returns) the pending approval of an escalated decision; ledgers `approval.requested`. */
  open(input: OpenInput): Promise<PendingRecord | Deny>;
  /** The pending approval (expired once its window closed), or undefined. */
  get(decisionId: string): Promise<PendingRecord | undefined>;
  /** Like `get`, and finalises a decision whose stored votes already decide it. */
  settle(decisionId: string): Promise<PendingRecord | undefined>;
  list(): Promise<readonly PendingRecord[]>;
  /** The counted votes of a decision, in ledger order. */
  votes(decisionId: string): Promise<readonly VoteRecord[]>;
  /**
   * The threshold `p` needs as its votes stand: the policy's (`p.required`), plus one when a
   * human whose approval counts has a `require_extra` flag on it (docs/approvals.md "Approvals watched").
   */
  required(p: PendingRecord): Promise<number>;
  /** True when `token` is a valid OIDC approver token (for reading the approval API). */
  isApproverToken(token: string): Promise<boolean>;
  /**
   * The approver a valid OIDC approver token identifies (`oidc:<sub>`) with the tenants the
   * token scopes it to, or undefined.
   */
  approverOfToken(token: string): Promise<{ name: string; tenants: ApproverTenants } | undefined>;
  /**
   * Records that the identified approver `approverName` opened the view of a pending approval
   * at `at` (ms; the first time stays): an approval soon after the request by an approver who
   * never opened it is flagged (L7 hardening, docs/approvals.md "Approvals watched"). Called by
   * the approval API for an approver's bearer, and by any sign-in that identifies a person.
   * False when the name is malformed or no approval has this id (nothing recorded).
   */
  recordView(decisionId: string, approverName: string, at: number): Promise<boolean>;
  submit(decisionId: string, submission: Submission): Promise<SubmitAccepted | Deny>;
  /**
   * True when every key approver whose vote approved `p` is still registered, active and scoped
   * to its tenant: an approver removed (or re-scoped) after the finalisation, before the call was
   * issued, no longer stands behind it (OE-INV-020). A decision a break-glass grant finalised
   * stands only while that grant does: unexpired, not revoked, its grantor still registered and
   * active (L7 break-glass): a schedule created under a grant runs no longer than the grant.
   */
  stillApproved(p: PendingRecord): Promise<boolean>;
  /** `approved` → `issued`, true exactly once across every replica sharing the store (single issuance). */
  markIssued(decisionId: string): Promise<boolean>;
  /**
   * Resolves when the decision is finalised, after `ms` (at most `settings.maxWaitMs`), or when
   * `signal` aborts (the caller cancelled or went away): true. Resolves false at once, without
   * waiting, when `principal` already has `settings.maxWaitingPerPrincipal` calls waiting.
   */
  waitFor(decisionId: string, ms: number, signal?: AbortSignal, principal?: string): Promise<boolean>;
  breakGlass(
    body: SignedStatement,
  ): Promise<{ outcome: 'ok'; grant: BreakGlassGrant; ledger: LedgerRef } | Deny>;
  /** Finalises `p` through a break-glass grant in scope; undefined when there is none. */
  useBreakGlass(p: PendingRecord): Promise<string | Deny | undefined>;
  listReviews(): Promise<readonly ReviewRecord[]>;
  /** The break-glass grants unexpired now (at most 1,000), the latest expiry first. */
  activeGrants(): Promise<readonly BreakGlassGrant[]>;
  /**
   * Revokes an unexpired break-glass grant now (L7 break-glass): ledgers `break_glass.used` with
   * `scope.phase` `revoked` first (actor: who revoked it), then ends the grant, so no call looks
   * it up from then on. A use already finalising a call when it is revoked completes (its records
   * may follow the revocation's). Denies `ERR_APPROVAL_UNKNOWN` (no unexpired grant has this id),
   * `ERR_LEDGER_UNAVAILABLE`.
   */
  revokeGrant(
    grantId: string,
    reason: string,
    actor: Actor,
  ): Promise<{ outcome: 'ok'; grant: BreakGlassGrant; ledger: LedgerRef } | Deny>;
  closeReview(
    reviewId: string,
    body: SignedStatement,
  ): Promise<{ outcome: 'ok'; review: ReviewRecord; ledger: LedgerRef } | Deny>;
  /**
   * Registers an approver's public key with roles and a tenant scope (a list of tenants, or
   * `'*'`: every tenant, asked for explicitly); ledgers `admin.client_registered` (`key_use:
   * approval`, `tenants`) first. The gate never sees the private key. Denies
   * `ERR_APPROVER_AGENT` when the name is a client (separate namespaces, OE-INV-002),
   * `ERR_KEY_INVALID`, `ERR_APPROVAL_INVALID` (malformed or taken name, roles or tenants),
   * `ERR_LEDGER_UNAVAILABLE`.
   */
  registerApprover(
    input: { name: string; roles: readonly string[]; tenants: unknown; public_jwk: unknown },
    actor: Actor,
  ): Promise<ApproverRecord | Deny>;
  /**
   * Removes an approver: ledgers `admin.key_revoked` (`key_use: approval`) first, then marks it
   * revoked, so its later votes are refused (`ERR_APPROVER_UNKNOWN`) and its earlier votes on
   * open decisions no longer count when they are re-counted. The name stays taken. Denies
   * `ERR_APPROVER_UNKNOWN` (unknown or already removed), `ERR_LEDGER_UNAVAILABLE`.
   */
  removeApprover(name: string, reason: string, actor: Actor): Promise<ApproverRecord | Deny>;
  listApprovers(): Promise<readonly ApproverRecord[]>;
  /** True when `name` is a registered approver (client names must not collide). */
  isApprover(name: string): Promise<boolean>;
  /** Records the human owner of a client (self-approval detection). */
  setOwner(identity: string, owner: string): Promise<void>;
  approverJwks(): Promise<Ed25519Jwks>;
}

const APPROVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ROLE = /^[A-Za-z0-9._:-]{1,64}$/;
/** An approver name as votes carry it: a registered name, or `oidc:<sub>`. */
const VIEWER_NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The tenant scope asked for: `'*'`, or 1 to 64 tenant names (sorted, without duplicates). */
function parseTenants(v: unknown): ApproverTenants | undefined {
  if (v === '*') return '*';
  if (!Array.isArray(v) || v.length === 0 || v.length > 64) return undefined;
  if (!v.every((t) => typeof t === 'string' && TENANT.test(t))) return undefined;
  return Object.freeze([...new Set(v as string[])].sort());
}

/** An approver's name, roles and tenant scope, checked as given (untrusted input). */
export interface ApproverScope {
  readonly name: string;
  /** Sorted, without duplicates. */
  readonly roles: readonly string[];
  readonly tenants: ApproverTenants;
}

/**
 * Checks the name, roles (1 to 16) and tenant scope of an approver to be registered or invited;
 * `ERR_APPROVAL_INVALID` names what is malformed. `"*"` (every tenant) must be asked for explicitly.
 */
export function parseApproverScope(input: {
  readonly name: unknown;
  readonly roles: unknown;
  readonly tenants: unknown;
}): ApproverScope | Deny {
  const { name, roles } = input;
  if (typeof name !== 'string' || !APPROVER_NAME.test(name))
    return deny('ERR_APPROVAL_INVALID', 'the approver name is malformed');
  if (
    !Array.isArray(roles) ||
    roles.length === 0 ||
    roles.length > 16 ||
    !roles.every((r) => typeof r === 'string' && ROLE.test(r))
  )
    return deny('ERR_APPROVAL_INVALID', 'approver roles are malformed');
  const tenants = parseTenants(input.tenants);
  if (tenants === undefined)
    return deny(
      'ERR_APPROVAL_INVALID',
      'approver tenants must be a list of tenant names, or "*" for every tenant (asked for explicitly)',
    );
  return { name, roles: Object.freeze([...new Set(roles as string[])].sort()), tenants };
}

/** Creates the approval service. Throws `TypeError` for malformed settings. */
export function createApprovalService(deps: ApprovalServiceDeps): ApprovalService {
  const ctx = createApprovalCtx(deps);
  const s = ctx.settings;
  if (
    !(s.defaultTtlSec > 0 && s.statementMaxAgeSec > 0 && s.maxWaitMs >= 0 && s.breakGlassMaxTtlSec > 0) ||
    !(Number.isSafeInteger(s.maxWaitingPerPrincipal) && s.maxWaitingPerPrincipal >= 0)
  )
    throw new TypeError('malformed approval settings');
  const w = s.watch;
  if (
    !(w.rateLimit.max >= 1 && w.rateLimit.windowSec > 0 && w.quickSec >= 0 && w.burst.count >= 2) ||
    !(w.burst.windowSec > 0 && w.minHistory >= 1 && (w.onFlag === 'flag' || w.onFlag === 'require_extra'))
  )
    throw new TypeError('malformed approval watch settings');
  const { store } = deps;
  return Object.freeze({
    settings: s,
    open: (input: OpenInput) => openPending(ctx, input),
    get: (id: string) => readPending(ctx, id),
    settle: (id: string) => settlePending(ctx, id),
    list: () => store.listPending(),
    votes: (id: string) => store.votes(id),
    required: (p: PendingRecord) => requiredNow(ctx, p),
    async isApproverToken(token: string): Promise<boolean> {
      if (deps.oidc === undefined) return false;
      const id = await deps.oidc.verify(token, deps.now());
      return !('outcome' in id) && !(await deps.isClient(`oidc:${id.subject}`));
    },
    async approverOfToken(token: string) {
      if (deps.oidc === undefined) return undefined;
      const id = await deps.oidc.verify(token, deps.now());
      if ('outcome' in id) return undefined;
      const name = `oidc:${id.subject}`;
      return (await deps.isClient(name)) ? undefined : { name, tenants: id.tenants };
    },
    async recordView(decisionId: string, approverName: string, at: number): Promise<boolean> {
      if (typeof approverName !== 'string' || !VIEWER_NAME.test(approverName) || !Number.isSafeInteger(at))
        return false;
      if ((await store.pending(decisionId)) === undefined) return false;
      // The human's view: a key `x` and an OIDC `oidc:x` are one person.
      await store.recordView(decisionId, humanOf(approverName), at);
      return true;
    },
    submit: (id: string, submission: Submission) => submitApproval(ctx, id, submission),
    async stillApproved(p: PendingRecord): Promise<boolean> {
      if (p.grant_id !== null) {
        const g = (await store.activeGrants(deps.now())).find((x) => x.grant_id === p.grant_id);
        if (g === undefined) return false;
        const grantor = await store.approver(g.approver);
        if (grantor === undefined || grantor.status !== 'active') return false;
      }
      const counted = new Set(p.approvals);
      for (const v of await store.votes(p.decision_id)) {
        // The votes the finalisation counted (its references): a vote it discounted is not behind it.
        if (v.verdict !== 'approve' || v.method !== 'key' || !counted.has(v.approval_sha256)) continue;
        const a = await store.approver(v.approver);
        if (a === undefined || a.status !== 'active' || !approverCovers(a.tenants, p.tenant)) return false;
      }
      return true;
    },
    markIssued: (id: string) => store.markIssued(id),
    waitFor: (id: string, ms: number, signal?: AbortSignal, principal?: string) =>
      ctx.waitFor(id, ms, signal, principal),
    breakGlass: (body: SignedStatement) => grantBreakGlass(ctx, body),
    useBreakGlass: (p: PendingRecord) => useBreakGlass(ctx, p),
    listReviews: () => store.listReviews(),
    activeGrants: () => store.activeGrants(deps.now()),
    closeReview: (id: string, body: SignedStatement) => closeReview(ctx, id, body),
    registerApprover: (
      input: { name: string; roles: readonly string[]; tenants: unknown; public_jwk: unknown },
      actor: Actor,
    ) =>
      ctx.serial(async (): Promise<ApproverRecord | Deny> => {
        const scope = parseApproverScope(input);
        if (isDeny(scope)) return scope;
        const { name, roles, tenants } = scope;
        if (await deps.isClient(name))
          return deny('ERR_APPROVER_AGENT', 'the name is a client identity: agents can never approve');
        if ((await store.approver(name)) !== undefined)
          return deny('ERR_APPROVAL_INVALID', 'the approver already exists');
        let key;
        try {
          key = parsePublicJwk(input.public_jwk);
        } catch {
          return deny('ERR_KEY_INVALID', 'public_jwk is not a valid Ed25519 public key');
        }
        const sorted = [...new Set(roles)].sort();
        const payload = {
          client: name,
          kid: key.kid,
          key_use: 'approval',
          roles: sorted,
          tenants: tenants === '*' ? '*' : [...tenants],
          public_jwk: { ...key.jwk },
          auth_method: 'signature',
        };
        const id = adminRequestId('admin.client_registered', GLOBAL_TENANT, payload, deps.now());
        const ref = await ctx.append(
          'admin.client_registered',
          { trace_id: id, request_id: id, tenant: GLOBAL_TENANT },
          actor,
          payload,
        );
        if (isDeny(ref)) return ref;
        try {
          return await store.registerApprover({
            name,
            roles: sorted,
            tenants,
            jwk: key.jwk,
            atMs: deps.now(),
          });
        } catch (err) {
          // Registered meanwhile by another replica; any other failure is passed on.
          if (err instanceof TypeError) return deny('ERR_APPROVAL_INVALID', 'the approver already exists');
          throw err;
        }
      }),
    revokeGrant: (grantId: string, reason: string, actor: Actor) =>
      ctx.serial(async () => {
        const now = deps.now();
        const g = (await store.activeGrants(now)).find((x) => x.grant_id === grantId);
        if (g === undefined)
          return deny('ERR_APPROVAL_UNKNOWN', 'no unexpired break-glass grant has this id');
        const ref = await ctx.append(
          'break_glass.used',
          { trace_id: g.grant_id, request_id: g.grant_id, tenant: g.tenant },
          actor,
          {
            decision_id: null,
            role: g.role,
            reason: { category: 'revoked', text: String(reason).slice(0, 500) },
            ttl_ms: Math.max(0, now - g.created_at),
            expires_at: new Date(now).toISOString(),
            scope: { phase: 'revoked', grant_id: g.grant_id, statement_sha256: g.statement_sha256 },
            target: g.tenant,
            action_class: g.tool,
            review_id: null,
          },
        );
        if (isDeny(ref)) return ref;
        // Ended meanwhile (expired, or revoked through another replica): the ledger says so twice.
        // Ending is idempotent: once more after a refusal (on the shared SQLite connection, another
        // call's failed commit refuses it before it runs), so the ledger's "revoked" is not left
        // over a grant still in use; a second refusal reaches the operator.
        await store.endGrant(g.grant_id, now).catch(() => store.endGrant(g.grant_id, now));
        return { outcome: 'ok' as const, grant: { ...g, expires_at: now }, ledger: ref };
      }),
    removeApprover: (name: string, reason: string, actor: Actor) =>
      ctx.serial(async (): Promise<ApproverRecord | Deny> => {
        const a = typeof name === 'string' ? await store.approver(name) : undefined;
        if (a === undefined || a.status !== 'active')
          return deny('ERR_APPROVER_UNKNOWN', 'no active approver has this name');
        const payload = {
          client: a.name,
          kid: a.kid,
          key_use: 'approval',
          reason: reason.slice(0, 500),
          revoked_at: new Date(deps.now()).toISOString(),
        };
        const id = adminRequestId('admin.key_revoked', GLOBAL_TENANT, payload, deps.now());
        const ref = await ctx.append(
          'admin.key_revoked',
          { trace_id: id, request_id: id, tenant: GLOBAL_TENANT },
          actor,
          payload,
        );
        if (isDeny(ref)) return ref;
        // Removed meanwhile by another replica: the ledger says so twice, the state once.
        await store.revokeApprover(a.name);
        const { publicKey: _key, ...rec } = a;
        return Object.freeze({ ...rec, status: 'revoked' as const });
      }),
    listApprovers: () => store.listApprovers(),
    isApprover: async (name: string) => (await store.approver(name)) !== undefined,
    setOwner: (identity: string, owner: string) => store.setOwner(identity, owner),
    approverJwks: () => store.approverJwks(),
  });
}
