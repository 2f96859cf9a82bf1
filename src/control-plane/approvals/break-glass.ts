/**
 * Break-glass (L7 "Break-Glass Access", SPEC §6, §7 scenario 14): an L4/L5 approver signs a
 * request with a structured reason and a short TTL, scoped to one target (tenant) and action
 * class (tool). While it lasts, it stands in for the approvals of escalated decisions in its
 * scope, never for a policy `forbid` (a deny never reaches this code). It never bypasses the
 * ledger: the grant and each use are ledgered (`break_glass.used`), each use opens a review item
 * (`review.opened`) that another person must close (`review.closed`).
 */
import { humanOf } from './threshold.js';
import {
  breakGlassSigningInput,
  decodeBase64url,
  deny,
  isDeny,
  parseBreakGlassStatement,
  parseReviewStatement,
  parseStatementTimestamp,
  reviewSigningInput,
  sha256Hex,
  verifyEd25519,
} from '../../kernel/index.js';
import type { Deny, JsonObject, ReviewStatement } from '../../kernel/index.js';
import { CONTROL_PLANE_ACTOR, type LedgerRef } from '../ledger-port.js';
import type { ApprovalCtx } from './context.js';
import { sessionCheck, type SessionProof } from './session.js';
import {
  approverCovers,
  type ApproverTenants,
  type BreakGlassGrant,
  type PendingRecord,
  type ReviewRecord,
} from './store.js';

/** A signed statement as submitted. */
export interface SignedStatement {
  readonly statement: unknown;
  readonly signature: unknown;
  /** The console's proof of a live `key+oidc` session (in-process only; session.ts). */
  readonly session?: SessionProof;
}

type Signer = {
  readonly name: string;
  readonly roles: readonly string[];
  readonly kid: string;
  readonly tenants: ApproverTenants;
  /** The session proof recorded in the evidence, for an approver bound to an identity provider. */
  readonly session?: JsonObject;
};

/** Authenticates a registered, active, human approver's signature over `input`. */
async function authenticate(
  ctx: ApprovalCtx,
  name: string,
  signature: unknown,
  input: Buffer,
  proof: SessionProof | undefined,
): Promise<Signer | Deny> {
  if (await ctx.deps.isClient(name)) return deny('ERR_APPROVER_AGENT', 'an agent identity can never approve');
  const a = await ctx.deps.store.approver(name);
  if (a === undefined || a.status !== 'active')
    return deny('ERR_APPROVER_UNKNOWN', 'the approver is not registered or is revoked');
  const sig = typeof signature === 'string' ? decodeBase64url(signature) : undefined;
  if (sig === undefined || sig.length !== 64 || !verifyEd25519(a.publicKey, input, sig))
    return deny('ERR_APPROVAL_SIGNATURE', 'the signature does not verify');
  // Bound to an identity provider: heard through the console's key+oidc session only.
  const bound = await sessionCheck(ctx.deps.bindingOf, a.name, proof);
  if ('outcome' in bound) return bound;
  return { name: a.name, roles: a.roles, kid: a.kid, tenants: a.tenants, ...bound };
}

/**
 * Ledgers the refusal of a verified signature from an approver bound to an identity provider
 * outside the console's key+oidc session (`ERR_APPROVER_SESSION_REQUIRED`), as vote refusals are:
 * a `denial` naming the approver. Other refusals here are answered only, as before.
 */
async function refuseUnbound(
  ctx: ApprovalCtx,
  d: Deny,
  approver: string,
  on: { readonly trace_id: string; readonly request_id: string; readonly tenant: string },
  payload: JsonObject,
): Promise<Deny> {
  if (d.code !== 'ERR_APPROVER_SESSION_REQUIRED') return d;
  // Not recorded: the caller learns the same refusal (the step changed nothing).
  await ctx.append(
    'denial',
    on,
    { id: approver, role: 'approver' },
    { code: d.code, reason: d.reason, ...payload },
  );
  return d;
}

function fresh(ctx: ApprovalCtx, timestamp: string): boolean {
  const at = parseStatementTimestamp(timestamp) ?? Number.NaN;
  const now = ctx.deps.now();
  return at <= now + ctx.settings.statementSkewMs && now - at <= ctx.settings.statementMaxAgeSec * 1000;
}

/**
 * Grants break-glass. Denies `ERR_BREAK_GLASS_DENIED` (statement without structured reason or
 * TTL, TTL above the maximum, or a signer without an L4/L5 role), `ERR_APPROVER_AGENT`,
 * `ERR_APPROVER_UNKNOWN`, `ERR_APPROVER_TENANT` (a tenant outside the signer's scope),
 * `ERR_APPROVAL_SIGNATURE`, `ERR_APPROVAL_EXPIRED` (stale statement),
 * `ERR_APPROVAL_REPLAYED` (statement used before), `ERR_LEDGER_UNAVAILABLE`. (L7 Break-glass)
 */
export function grantBreakGlass(
  ctx: ApprovalCtx,
  body: SignedStatement,
): Promise<{ outcome: 'ok'; grant: BreakGlassGrant; ledger: LedgerRef } | Deny> {
  return ctx.serial(async () => {
    const s = parseBreakGlassStatement(body.statement);
    if (s === undefined)
      return deny(
        'ERR_BREAK_GLASS_DENIED',
        'break-glass needs an approver, target, action class, structured reason and TTL',
      );
    const signer = await authenticate(
      ctx,
      s.approver,
      body.signature,
      breakGlassSigningInput(s),
      body.session,
    );
    if ('outcome' in signer) {
      const id = `bg_refused_${sha256Hex(breakGlassSigningInput(s)).slice(0, 32)}`;
      return refuseUnbound(
        ctx,
        signer,
        s.approver,
        { trace_id: id, request_id: id, tenant: s.tenant },
        { stage: 'break_glass', tool: s.tool },
      );
    }
    // A scoped approver breaks glass only for a tenant of its scope (OE-INV-020).
    if (!approverCovers(signer.tenants, s.tenant))
      return deny('ERR_APPROVER_TENANT', 'the approver is not scoped to this tenant');
    const role = [...ctx.settings.breakGlassRoles].sort().find((r) => signer.roles.includes(r));
    if (role === undefined) return deny('ERR_BREAK_GLASS_DENIED', 'break-glass needs an L4 or L5 role');
    if (s.ttl_sec < 1 || s.ttl_sec > ctx.settings.breakGlassMaxTtlSec)
      return deny('ERR_BREAK_GLASS_DENIED', 'the break-glass TTL is missing or too long');
    if (!fresh(ctx, s.timestamp)) return deny('ERR_APPROVAL_EXPIRED', 'the break-glass statement is stale');
    const sha = await ctx.evidence({
      format: 'failclosed.break-glass/v1',
      method: 'key',
      kid: signer.kid,
      statement: { ...s },
      signature: String(body.signature),
      // The console session that carried it, for an approver bound to an identity provider.
      ...(signer.session === undefined ? {} : { session: signer.session }),
    });
    if (isDeny(sha)) return sha;
    const now = ctx.deps.now();
    if (!(await ctx.deps.store.markUsed(sha, now)))
      return deny('ERR_APPROVAL_REPLAYED', 'this break-glass statement was already used');
    const grant: BreakGlassGrant = {
      grant_id: `bg_${sha.slice(0, 32)}`,
      approver: s.approver,
      role,
      tenant: s.tenant,
      tool: s.tool,
      reason_category: s.reason_category,
      reason: s.reason,
      created_at: now,
      expires_at: now + s.ttl_sec * 1000,
      ledger_index: -1,
      statement_sha256: sha,
    };
    const ref = await ctx.append(
      'break_glass.used',
      { trace_id: grant.grant_id, request_id: grant.grant_id, tenant: s.tenant },
      { id: s.approver, role },
      {
        decision_id: null,
        role,
        reason: { category: s.reason_category, text: s.reason },
        ttl_ms: s.ttl_sec * 1000,
        expires_at: new Date(grant.expires_at).toISOString(),
        scope: { phase: 'granted', grant_id: grant.grant_id, statement_sha256: sha },
        target: s.tenant,
        action_class: s.tool,
        review_id: null,
      },
    );
    if (isDeny(ref)) return ref;
    const stored = { ...grant, ledger_index: ref.index };
    await ctx.deps.store.insertGrant(stored);
    ctx.notice({
      event: 'break_glass.used',
      decision_id: null,
      tool: stored.tool,
      tenant: stored.tenant,
      expires_at: stored.expires_at,
      preview: null,
      break_glass: {
        phase: 'granted',
        grant_id: stored.grant_id,
        approver: stored.approver,
        reason_category: stored.reason_category,
      },
    });
    return { outcome: 'ok', grant: stored, ledger: ref };
  });
}

/**
 * Uses an active grant in scope of `seen` (same tenant and tool) to finalise it: ledgers
 * `break_glass.used` (phase `used`), `review.opened` and `approval.finalized` (verdict
 * `break_glass`), in that order and each confirmed, then marks the decision approved. A step in
 * the decision's critical section: the decision is read again there, and one finalised or
 * expired meanwhile (on any replica) is left as it is. Resolves to undefined when no grant is in
 * scope or the decision is no longer pending, to the approval reference otherwise, or a deny.
 */
export function useBreakGlass(ctx: ApprovalCtx, seen: PendingRecord): Promise<string | Deny | undefined> {
  if (seen.kind !== 'call') return Promise.resolve(undefined);
  return ctx.step(seen.decision_id, async () => {
    const { store, now } = ctx.deps;
    const p = await store.pending(seen.decision_id);
    if (p?.kind !== 'call' || p.status !== 'pending' || now() >= p.expires_at) return undefined;
    const g = await store.activeGrant(p.tenant, p.tool, now());
    if (g === undefined) return undefined;
    // A grant never lets its holder finalise their own agent's call, and dies with its grantor's key.
    const grantor = await store.approver(g.approver);
    if (grantor === undefined || grantor.status !== 'active') return undefined;
    // The owner named as an OIDC approver (`oidc:x`) is the key approver `x` too (as for votes).
    if (p.owner === null || humanOf(g.approver) === humanOf(p.owner) || g.approver === p.identity)
      return undefined;
    const where = { trace_id: p.trace_id, request_id: p.request_id, tenant: p.tenant };
    const review_id = `rv_${sha256Hex(`${g.grant_id}:${p.decision_id}`).slice(0, 32)}`;
    const reason = { category: g.reason_category, text: g.reason };
    const used = await ctx.append(
      'break_glass.used',
      where,
      { id: g.approver, role: g.role },
      {
        decision_id: p.decision_id,
        role: g.role,
        reason,
        ttl_ms: g.expires_at - g.created_at,
        expires_at: new Date(g.expires_at).toISOString(),
        scope: { phase: 'used', grant_id: g.grant_id },
        target: g.tenant,
        action_class: g.tool,
        review_id,
      },
    );
    if (isDeny(used)) return used;
    const due_at = new Date(now() + ctx.settings.reviewDueSec * 1000).toISOString();
    const opened = await ctx.append('review.opened', where, CONTROL_PLANE_ACTOR, {
      review_id,
      decision_id: p.decision_id,
      reason,
      due_at,
      break_glass_ref: { index: used.index, entry_hash: used.entry_hash },
    });
    if (isDeny(opened)) return opened;
    await store.insertReview({
      review_id,
      grant_id: g.grant_id,
      decision_id: p.decision_id,
      opened_for: g.approver,
      opened_at: now(),
      status: 'open',
      closed_by: null,
      closed_at: null,
      notes: null,
    });
    const ref = g.statement_sha256;
    const fin = await ctx.append('approval.finalized', where, CONTROL_PLANE_ACTOR, {
      decision_id: p.decision_id,
      verdict: 'break_glass',
      code: null,
      count: 1,
      required: p.required,
      roles: [g.role],
      approvers: [g.approver],
      approval_sha256: g.statement_sha256,
    });
    if (isDeny(fin)) return fin;
    const finalized = await store.finalize(p.decision_id, 'approved', [ref], g.grant_id);
    ctx.notify(p.decision_id);
    if (finalized)
      ctx.notice({
        event: 'break_glass.used',
        decision_id: p.decision_id,
        tool: p.tool,
        tenant: p.tenant,
        expires_at: g.expires_at,
        preview: null,
        break_glass: {
          phase: 'used',
          grant_id: g.grant_id,
          approver: g.approver,
          reason_category: g.reason_category,
        },
      });
    // Guarded by `pending` as well: an outcome stored first stands, read back by the caller.
    return finalized ? ref : undefined;
  });
}

/**
 * Closes a review item. Denies `ERR_APPROVAL_INVALID` (malformed statement, or the review is not
 * open), `ERR_APPROVAL_UNKNOWN`, `ERR_APPROVAL_SELF` (the break-glass user cannot review its own
 * use, under either of its names), `ERR_APPROVER_TENANT` (the reviewed call's tenant is outside
 * the reviewer's scope; both ledgered as a `denial`), the signature codes of approvers,
 * `ERR_APPROVAL_EXPIRED`, `ERR_APPROVAL_REPLAYED`, `ERR_LEDGER_UNAVAILABLE`. (L7 "mandatory post-incident review")
 */
export function closeReview(
  ctx: ApprovalCtx,
  reviewId: string,
  body: SignedStatement,
): Promise<{ outcome: 'ok'; review: ReviewRecord; ledger: LedgerRef } | Deny> {
  const s = parseReviewStatement(body.statement);
  if (s === undefined || s.review_id !== reviewId)
    return Promise.resolve(deny('ERR_APPROVAL_INVALID', 'the review statement is malformed'));
  return ctx.serial(async () => {
    const seen = await ctx.deps.store.review(reviewId);
    if (seen === undefined) return deny('ERR_APPROVAL_UNKNOWN', 'no review item has this id');
    // Closing is a step of the reviewed decision: read again inside its critical section.
    return ctx.deps.store.withDecisionLock(seen.decision_id, () => closeLocked(ctx, reviewId, s, body));
  });
}

/**
 * Why an authenticated reviewer may not close `r`, or undefined: the person who used break-glass
 * never reviews their own use, also under their identity-provider name (`oidc:x` is `x`, as for
 * votes: OE-INV-020 distinct humans), and a reviewer scoped to tenants reviews only a call of one
 * of them (OE-INV-020 tenant scope); a review whose call is unknown, or of every tenant, is for
 * reviewers of every tenant only (fail closed).
 */
function reviewerRefusal(
  signer: Signer,
  reviewer: string,
  r: ReviewRecord,
  reviewed: PendingRecord | undefined,
): Deny | undefined {
  if (humanOf(reviewer) === humanOf(r.opened_for))
    return deny('ERR_APPROVAL_SELF', 'the break-glass user cannot close its own review');
  const tenant = reviewed?.tenant ?? '*';
  if (tenant === '*' ? signer.tenants !== '*' : !approverCovers(signer.tenants, tenant))
    return deny('ERR_APPROVER_TENANT', 'the reviewed call is of a tenant outside your scope');
  return undefined;
}

async function closeLocked(
  ctx: ApprovalCtx,
  reviewId: string,
  s: ReviewStatement,
  body: SignedStatement,
): Promise<{ outcome: 'ok'; review: ReviewRecord; ledger: LedgerRef } | Deny> {
  const { store, now } = ctx.deps;
  const r = await store.review(reviewId);
  if (r === undefined) return deny('ERR_APPROVAL_UNKNOWN', 'no review item has this id');
  if (r.status !== 'open') return deny('ERR_APPROVAL_INVALID', 'the review item is already closed');
  const signer = await authenticate(ctx, s.reviewer, body.signature, reviewSigningInput(s), body.session);
  if ('outcome' in signer) {
    const reviewed = await store.pending(r.decision_id);
    return refuseUnbound(
      ctx,
      signer,
      s.reviewer,
      {
        trace_id: reviewed?.trace_id ?? r.review_id,
        request_id: reviewed?.request_id ?? r.review_id,
        tenant: reviewed?.tenant ?? '*',
      },
      { stage: 'review', decision_id: r.decision_id },
    );
  }
  const p = await store.pending(r.decision_id);
  const refusal = reviewerRefusal(signer, s.reviewer, r, p);
  if (refusal !== undefined) {
    // The signature verified: the refusal is ledgered with the reviewer, as vote refusals are.
    await ctx.append(
      'denial',
      {
        trace_id: p?.trace_id ?? r.review_id,
        request_id: p?.request_id ?? r.review_id,
        tenant: p?.tenant ?? '*',
      },
      { id: s.reviewer, role: 'approver' },
      { code: refusal.code, reason: refusal.reason, stage: 'review', decision_id: r.decision_id },
    );
    return refusal;
  }
  if (!fresh(ctx, s.timestamp)) return deny('ERR_APPROVAL_EXPIRED', 'the review statement is stale');
  const sha = sha256Hex(reviewSigningInput(s));
  if (!(await store.markUsed(sha, now())))
    return deny('ERR_APPROVAL_REPLAYED', 'this review statement was already used');
  // The signed statement kept as evidence: `verify` checks it under the pinned approver keys.
  const statement = await ctx.evidence({
    format: 'failclosed.review/v1',
    method: 'key',
    kid: signer.kid,
    statement: { ...s },
    signature: String(body.signature),
    ...(signer.session === undefined ? {} : { session: signer.session }),
  });
  if (isDeny(statement)) return statement;
  const payload: JsonObject = {
    review_id: r.review_id,
    decision_id: r.decision_id,
    outcome: 'closed',
    reviewer: s.reviewer,
    justification: s.notes,
    review_sha256: statement,
    // The console session that carried it, for a reviewer bound to an identity provider.
    ...(signer.session === undefined ? {} : { oidc_session: signer.session }),
  };
  const ref = await ctx.append(
    'review.closed',
    {
      trace_id: p?.trace_id ?? r.review_id,
      request_id: p?.request_id ?? r.review_id,
      tenant: p?.tenant ?? '*',
    },
    { id: s.reviewer, role: signer.roles[0] ?? 'approver' },
    payload,
  );
  if (isDeny(ref)) return ref;
  if (!(await store.closeReview(reviewId, s.reviewer, s.notes, now())))
    return deny('ERR_APPROVAL_INVALID', 'the review item is already closed');
  return { outcome: 'ok', review: (await store.review(reviewId)) ?? r, ledger: ref };
}
