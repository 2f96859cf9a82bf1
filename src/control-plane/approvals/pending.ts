/**
 * Pending approvals (OE-INV-019/020): opening one for an escalated decision, expiring it, and
 * submitting signed approvals and rejections until the threshold is met or a required approver
 * rejects. Every step is ledgered and confirmed before it takes effect: `approval.requested`,
 * `approval.added` / `approval.rejected` (with identity and justification), `approval.finalized`.
 * Refused submissions are ledgered as `denial` (stage `approval`) with their code. Each step
 * that ledgers something about a decision and then changes its state runs in the decision's
 * critical section across every replica sharing the store (`ctx.step`) and re-reads the state
 * there, so the ledger records exactly what counted: one `approval.added` per counted vote, one
 * `approval.finalized` per decision, no rejection after a finalisation.
 */
import {
  approvalSigningInput,
  deny,
  intentSha256,
  isDeny,
  parseApprovalStatement,
  sha256Hex,
} from '../../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import { CONTROL_PLANE_ACTOR, type LedgerRef } from '../ledger-port.js';
import type { ApprovalCtx } from './context.js';
import { sessionCheck, type SessionProof } from './session.js';
import { previewDigest, redactedParams, type Preview } from './preview.js';
import type { PendingKind, PendingRecord, PendingStatus, VoteRecord } from './store.js';
import { checkApproval, humanOf, tallyApprovals, type ApprovalCandidate } from './threshold.js';
import { anomaliesOf, rateWindowStart, requiredWithFlags, type FlagReason } from './watch.js';

/** What opening a pending approval needs: the escalated decision's facts. */
export interface OpenInput {
  readonly decision_id: string;
  readonly kind: PendingKind;
  readonly request_id: string;
  readonly trace_id: string;
  readonly identity: string;
  /**
   * The requester's owner; null when the ingress knows there is none (nobody may then approve);
   * by default looked up among client owners.
   */
  readonly owner?: string | null;
  readonly tenant: string;
  readonly tool: string;
  readonly session: string | null;
  readonly params: JsonValue;
  readonly params_sha256: string;
  readonly preview: Preview | null;
  readonly risk: string;
  readonly required: number;
  readonly roles: readonly string[];
  readonly policy_bundle: string | null;
  readonly decision_ref: LedgerRef | null;
  readonly constraints: JsonObject | null;
  readonly ttlSec?: number;
}

/** An approval or rejection as submitted over the API. */
export interface Submission {
  readonly statement: unknown;
  /** base64url Ed25519 signature (registered approver key). */
  readonly signature?: string;
  /** OIDC bearer token bound to the statement (`approval_sha256` claim). */
  readonly token?: string;
  /** The console's proof of a live `key+oidc` session (in-process only; session.ts). */
  readonly session?: SessionProof;
}

/** The state after a counted submission. */
export interface SubmitAccepted {
  readonly outcome: 'ok';
  readonly decision_id: string;
  readonly status: PendingStatus;
  readonly approvals: number;
  readonly required: number;
  readonly ledger: LedgerRef;
}

const on = (p: PendingRecord) => ({ trace_id: p.trace_id, request_id: p.request_id, tenant: p.tenant });

/**
 * Opens (or returns the existing) pending approval; ledgers `approval.requested` first, once
 * across replicas (in the decision's critical section).
 */
export async function openPending(ctx: ApprovalCtx, input: OpenInput): Promise<PendingRecord | Deny> {
  const existing = await ctx.deps.store.pending(input.decision_id);
  if (existing !== undefined) return existing;
  return ctx.step(input.decision_id, () => openLocked(ctx, input));
}

async function openLocked(ctx: ApprovalCtx, input: OpenInput): Promise<PendingRecord | Deny> {
  const { store, now } = ctx.deps;
  // Opened meanwhile through another replica: that record stands, nothing more is ledgered.
  const existing = await store.pending(input.decision_id);
  if (existing !== undefined) return existing;
  let preview_sha256: string | null = null;
  if (input.preview !== null) {
    const stored = await ctx.evidence(
      JSON.parse(previewDigest(input.preview).bytes.toString('utf8')) as JsonValue,
    );
    if (isDeny(stored)) return stored;
    preview_sha256 = stored;
  }
  const created_at = now();
  const ttl = input.ttlSec ?? ctx.settings.defaultTtlSec;
  const rec: PendingRecord = {
    decision_id: input.decision_id,
    kind: input.kind,
    request_id: input.request_id,
    trace_id: input.trace_id,
    identity: input.identity,
    owner: input.owner === undefined ? ((await store.ownerOf(input.identity)) ?? null) : input.owner,
    tenant: input.tenant,
    tool: input.tool,
    session: input.session,
    params_sha256: input.params_sha256,
    intent_sha256: intentSha256({
      tool: input.tool,
      tenant: input.tenant,
      params_sha256: input.params_sha256,
    }),
    params_view: redactedParams(input.params),
    preview: input.preview === null ? null : { ...input.preview, changes: [...input.preview.changes] },
    preview_sha256,
    risk: input.risk,
    required: Math.max(1, input.required),
    roles: Object.freeze([...input.roles].sort()),
    policy_bundle: input.policy_bundle,
    decision_ref: input.decision_ref,
    constraints: input.constraints,
    created_at,
    expires_at: created_at + ttl * 1000,
    status: 'pending',
    approvals: [],
    grant_id: null,
  };
  const ref = await ctx.append('approval.requested', on(rec), CONTROL_PLANE_ACTOR, {
    decision_id: rec.decision_id,
    intent_sha256: rec.intent_sha256,
    preview_sha256: rec.preview_sha256,
    required: rec.required,
    roles: [...rec.roles],
    expires_at: new Date(rec.expires_at).toISOString(),
    code: 'ERR_APPROVAL_REQUIRED',
  });
  if (isDeny(ref)) return ref;
  // Inside the critical section nobody else inserts; the first stored record would stay anyway.
  await store.insertPending(rec);
  const stored = await store.pending(rec.decision_id);
  if (stored === undefined) return deny('ERR_INTERNAL', 'pending approval not stored');
  ctx.notice({
    event: 'approval.requested',
    decision_id: rec.decision_id,
    tool: rec.tool,
    tenant: rec.tenant,
    expires_at: rec.expires_at,
    // The redacted preview: never the parameter lines (`changes`), which hold their values.
    preview:
      input.preview === null
        ? null
        : {
            summary: input.preview.summary,
            objects: input.preview.objects,
            cost_estimate_cents: input.preview.cost_estimate_cents,
            irreversible: input.preview.irreversible,
          },
    required: rec.required,
    risk: rec.risk,
  });
  return stored;
}

const expiresNow = (ctx: ApprovalCtx, p: PendingRecord | undefined): p is PendingRecord =>
  p !== undefined && p.status === 'pending' && ctx.deps.now() >= p.expires_at;

/**
 * The pending approval, expired (ledgered `approval.finalized` with `ERR_APPROVAL_EXPIRED`) once
 * its window closed; the expiry is a step in the decision's critical section.
 */
export async function readPending(ctx: ApprovalCtx, decisionId: string): Promise<PendingRecord | undefined> {
  const p = await ctx.deps.store.pending(decisionId);
  if (!expiresNow(ctx, p)) return p;
  return ctx.step(decisionId, () => readLocked(ctx, decisionId));
}

/** {@link readPending} inside the decision's critical section (a step already holds it). */
async function readLocked(ctx: ApprovalCtx, decisionId: string): Promise<PendingRecord | undefined> {
  const p = await ctx.deps.store.pending(decisionId);
  if (!expiresNow(ctx, p)) return p;
  const ref = await ctx.append('approval.finalized', on(p), CONTROL_PLANE_ACTOR, {
    decision_id: p.decision_id,
    verdict: 'expired',
    code: 'ERR_APPROVAL_EXPIRED',
    count: 0,
    required: p.required,
    approvers: [],
  });
  // Expired either way: an unrecorded expiry still never lets the call run.
  if (!isDeny(ref)) await ctx.deps.store.finalize(p.decision_id, 'expired', []);
  ctx.notify(p.decision_id);
  return { ...p, status: 'expired' };
}

async function candidateOf(ctx: ApprovalCtx, s: Submission): Promise<ApprovalCandidate | Deny> {
  if (s.token !== undefined && s.signature === undefined) {
    const statement = parseApprovalStatement(s.statement);
    if (statement === undefined) return deny('ERR_APPROVAL_INVALID', 'the approval statement is malformed');
    if (ctx.deps.oidc === undefined) return deny('ERR_APPROVER_UNKNOWN', 'no OIDC issuer is configured');
    const id = await ctx.deps.oidc.verify(s.token, ctx.deps.now());
    if ('outcome' in id) return id;
    if (id.approval_sha256 !== sha256Hex(approvalSigningInput(statement))) {
      return deny('ERR_APPROVAL_SIGNATURE', 'the token is not bound to this approval statement');
    }
    // A person the console bound to this issuer and subject is one approver, under their own
    // name: as `oidc:<sub>` they would count twice and pass for someone other than themselves
    // (the owner check, distinct humans).
    const person = await ctx.deps.boundPerson?.(id.issuer, id.subject);
    if (person !== undefined)
      return deny(
        'ERR_APPROVER_SESSION_REQUIRED',
        `this identity is the console approver ${person}: approve in the console, signed in with it`,
      );
    return { statement: s.statement, oidc: { subject: id.subject, roles: id.roles, tenants: id.tenants } };
  }
  if (typeof s.signature === 'string' && s.token === undefined)
    return { statement: s.statement, signature: s.signature };
  return deny('ERR_APPROVAL_INVALID', 'an approval carries exactly one of signature or token');
}

async function refuse(
  ctx: ApprovalCtx,
  p: PendingRecord,
  who: unknown,
  d: Deny,
  /** An authenticated approver's refusal: always recorded (a forged one counts against the flood budget). */
  authenticated = false,
): Promise<Deny> {
  const approver = typeof who === 'string' && /^[A-Za-z0-9._:@-]{1,128}$/.test(who) ? who : 'unknown';
  if (!authenticated && !ctx.recordRefusal()) return d;
  await ctx.append(
    'denial',
    on(p),
    { id: approver, role: 'approver' },
    {
      code: d.code,
      stage: 'approval',
      reason: d.reason,
      tool: p.tool,
      client: p.identity,
      decision_id: p.decision_id,
      params_sha256: p.params_sha256,
    },
  );
  return d;
}

/**
 * Submits an approval or rejection for `decisionId`. Denies with the codes of `checkApproval`,
 * `ERR_APPROVAL_UNKNOWN`, `ERR_APPROVAL_EXPIRED`, `ERR_APPROVAL_INVALID` (already finalised),
 * `ERR_APPROVAL_DUPLICATE`, `ERR_APPROVAL_REPLAYED`, `ERR_LEDGER_UNAVAILABLE`. (OE-INV-019/020)
 */
export function submitApproval(
  ctx: ApprovalCtx,
  decisionId: string,
  s: Submission,
): Promise<SubmitAccepted | Deny> {
  return ctx.step(decisionId, async () => {
    const { store } = ctx.deps;
    // Read inside the critical section: the status and votes every check below relies on.
    const p = await readLocked(ctx, decisionId);
    if (p === undefined) return deny('ERR_APPROVAL_UNKNOWN', 'no pending approval has this id');
    const claimed = (s.statement as { approver?: unknown } | null)?.approver;
    if (p.status === 'expired')
      return refuse(ctx, p, claimed, deny('ERR_APPROVAL_EXPIRED', 'the approval window expired'));
    if (p.status !== 'pending')
      return refuse(ctx, p, claimed, deny('ERR_APPROVAL_INVALID', 'the decision is already finalised'));
    const candidate = await candidateOf(ctx, s);
    if ('outcome' in candidate) return refuse(ctx, p, claimed, candidate);
    const checked = checkApproval(await ctx.rules(p, [candidate]), candidate);
    if ('outcome' in checked) return refuse(ctx, p, claimed, checked);
    // A key approver bound to an identity provider is heard through the console's key+oidc
    // session only (session.ts); refused elsewhere, its signature verified: always recorded.
    const bound =
      checked.method === 'key' ? await sessionCheck(ctx.deps.bindingOf, checked.approver, s.session) : {};
    if ('outcome' in bound) return refuse(ctx, p, claimed, bound, true);
    const votes = await store.votes(p.decision_id);
    // One decision per human: a key approver `x` and `oidc:x` are one person (`humanOf`), so a
    // second vote under the other name is a duplicate, never a vote the count then drops.
    const human = humanOf(checked.approver);
    if (votes.some((v) => humanOf(v.approver) === human))
      return refuse(ctx, p, claimed, deny('ERR_APPROVAL_DUPLICATE', 'this approver already decided'));
    const watched = checked.verdict === 'approve' ? await watchApproval(ctx, p, checked.approver) : [];
    if (isDeny(watched))
      return refuse(ctx, p, claimed, watched, await firstRateRefusal(ctx, checked.approver));
    const proof: JsonObject =
      candidate.oidc === undefined ? { signature: candidate.signature ?? '' } : { token: s.token ?? '' };
    const kid = candidate.oidc === undefined ? ((await store.approver(checked.approver))?.kid ?? null) : null;
    const sha = await ctx.evidence({
      format: 'failclosed.approval/v1',
      method: checked.method,
      kid,
      statement: { ...checked.statement },
      ...proof,
      ...bound,
    });
    if (isDeny(sha)) return sha;
    const extra = watched.length > 0 && ctx.settings.watch.onFlag === 'require_extra';
    if (watched.length > 0) {
      // Stored before it is ledgered, keyed by the human, `extra` only rising: the threshold a
      // finalisation reads is never below what the ledger (and so `verify`) says, whatever
      // write fails or crash happens after this one.
      await store.recordFlag({
        decision_id: p.decision_id,
        approver: humanOf(checked.approver),
        tenant: p.tenant,
        at: ctx.deps.now(),
        flags: watched,
        extra,
      });
      // Ledgered before the approval it names: an approval never counts without its flags.
      const flagged = await ctx.append(
        'approval.flagged',
        on(p),
        { id: checked.approver, role: checked.role },
        {
          decision_id: p.decision_id,
          approver: checked.approver,
          verdict: checked.verdict,
          approval_sha256: sha,
          flags: [...watched],
          policy: ctx.settings.watch.onFlag,
          required: Math.max(1, p.required) + (extra ? 1 : 0),
        },
      );
      if (isDeny(flagged)) return flagged;
    }
    const count =
      votes.filter((v) => v.verdict === 'approve').length + (checked.verdict === 'approve' ? 1 : 0);
    const type = checked.verdict === 'approve' ? 'approval.added' : 'approval.rejected';
    const ref = await ctx.append(
      type,
      on(p),
      { id: checked.approver, role: checked.role },
      {
        decision_id: p.decision_id,
        approver: checked.approver,
        role: checked.role,
        verdict: checked.verdict,
        justification: checked.statement.justification,
        approval_sha256: sha,
        intent_sha256: p.intent_sha256,
        preview_sha256: p.preview_sha256,
        signature: candidate.signature ?? sha256Hex(s.token ?? ''),
        count,
        required: p.required,
      },
    );
    if (isDeny(ref)) return ref;
    // The approver's history before the vote counts (its flags were stored above).
    if (checked.verdict === 'approve')
      await store.recordActivity({
        decision_id: p.decision_id,
        approver: humanOf(checked.approver),
        tenant: p.tenant,
        at: ctx.deps.now(),
        flags: watched,
        extra,
      });
    const stored = await store.addVote({
      decision_id: p.decision_id,
      approver: checked.approver,
      verdict: checked.verdict,
      role: checked.role,
      method: checked.method,
      approval_sha256: sha,
      at: ctx.deps.now(),
      ledger_index: ref.index,
      candidate: {
        statement: { ...checked.statement },
        ...(candidate.oidc === undefined
          ? { signature: candidate.signature ?? '' }
          : {
              oidc: {
                subject: candidate.oidc.subject,
                roles: [...candidate.oidc.roles],
                tenants: candidate.oidc.tenants === '*' ? '*' : [...(candidate.oidc.tenants ?? [])],
              },
            }),
      },
    });
    // Not expected inside the critical section (the statement hash used by another kind of
    // step, e.g. a break-glass statement): the ledger says this submission was refused.
    if (stored !== 'ok')
      return refuse(
        ctx,
        p,
        claimed,
        deny(
          stored === 'duplicate' ? 'ERR_APPROVAL_DUPLICATE' : 'ERR_APPROVAL_REPLAYED',
          'the approval was already used',
        ),
      );
    const { status, required } = await finalizeIfDone(ctx, p);
    return {
      outcome: 'ok',
      decision_id: p.decision_id,
      status,
      approvals: count,
      required,
      ledger: ref,
    };
  });
}

/**
 * The rate limit and anomalies of an approval by `approver` (L7 hardening): refuses
 * `ERR_APPROVER_RATE_LIMITED` when the approver's window is full (a slot is taken otherwise),
 * else names what is unusual about it (empty: nothing). Rate and history are the human's: a key
 * and an OIDC identity of one person share them.
 */
async function watchApproval(
  ctx: ApprovalCtx,
  p: PendingRecord,
  approver: string,
): Promise<FlagReason[] | Deny> {
  const { store } = ctx.deps;
  const w = ctx.settings.watch;
  const at = ctx.deps.now();
  const human = humanOf(approver);
  if (
    !(await store.takeApprovalSlot(
      human,
      rateWindowStart(w, at),
      w.rateLimit.windowSec * 1000,
      w.rateLimit.max,
    ))
  )
    return deny(
      'ERR_APPROVER_RATE_LIMITED',
      `the approver reached ${w.rateLimit.max} approvals in ${w.rateLimit.windowSec} s`,
    );
  return anomaliesOf(w, {
    atMs: at,
    createdAt: p.created_at,
    tenant: p.tenant,
    viewedAt: await store.viewedAt(p.decision_id, human),
    history: await store.activity(human, at - w.burst.windowSec * 1000),
  });
}

/**
 * True for the first rate-limited refusal of `approver`'s human in the current window (always
 * ledgered); later ones, a signed approval replayed while the limit holds for instance, fall
 * under the ordinary refusal budget. A store failure here only leaves it to that budget.
 */
async function firstRateRefusal(ctx: ApprovalCtx, approver: string): Promise<boolean> {
  const w = ctx.settings.watch;
  try {
    return await ctx.deps.store.markRateRefusal(humanOf(approver), rateWindowStart(w, ctx.deps.now()));
  } catch {
    return false;
  }
}

/** The stored votes counted by the pure rules, and the threshold they need with the stored flags. */
async function countVotes(
  ctx: ApprovalCtx,
  p: PendingRecord,
  votes: readonly VoteRecord[],
): Promise<{ tally: ReturnType<typeof tallyApprovals>; required: number }> {
  const candidates = votes.map((v) => v.candidate as unknown as ApprovalCandidate);
  const tally = tallyApprovals(await ctx.rules(p, candidates), candidates);
  const extraFlagged = new Set(
    (await ctx.deps.store.flagged(p.decision_id)).filter((f) => f.extra).map((f) => f.approver),
  );
  return { tally, required: requiredWithFlags(p.required, tally.approvers.map(humanOf), extraFlagged) };
}

/**
 * The threshold `p` needs as its votes stand (what the approval API shows): the policy's, plus
 * one when a human whose approval counts has a `require_extra` flag on it (OE-INV-020).
 */
export async function requiredNow(ctx: ApprovalCtx, p: PendingRecord): Promise<number> {
  return (await countVotes(ctx, p, await ctx.deps.store.votes(p.decision_id))).required;
}

/**
 * Re-counts every stored vote with the pure rules and finalises when the threshold is met or a
 * rejection counts. The threshold is the policy's, plus one when the human behind a counted
 * approver has a `require_extra` flag stored on the decision (read in the decision's critical
 * section, like the votes): the rule `verify` applies to the ledger, whose flags are stored
 * before they are ledgered.
 */
async function finalizeIfDone(
  ctx: ApprovalCtx,
  p: PendingRecord,
): Promise<{ status: PendingStatus; required: number }> {
  const { store } = ctx.deps;
  const votes = await store.votes(p.decision_id);
  const { tally, required } = await countVotes(ctx, p, votes);
  const met = !tally.rejected && tally.approvers.length >= required;
  if (!met && !tally.rejected) return { status: 'pending', required };
  const refs = votes.filter((v) => tally.approvers.includes(v.approver)).map((v) => v.approval_sha256);
  const verdict = tally.rejected ? 'reject' : 'approve';
  const ref = await ctx.append('approval.finalized', on(p), CONTROL_PLANE_ACTOR, {
    decision_id: p.decision_id,
    verdict,
    code: tally.rejected ? 'ERR_APPROVAL_REJECTED' : null,
    count: tally.approvers.length,
    required,
    roles: [...p.roles],
    approvers: [...tally.approvers],
  });
  if (isDeny(ref)) return { status: 'pending', required };
  const verdictStatus = tally.rejected ? 'rejected' : 'approved';
  // Guarded by `pending` as well: an outcome stored first stays, and is then the answer.
  if (!(await store.finalize(p.decision_id, verdictStatus, tally.rejected ? [] : refs))) {
    ctx.notify(p.decision_id);
    return { status: (await store.pending(p.decision_id))?.status ?? 'pending', required };
  }
  ctx.notify(p.decision_id);
  return { status: verdictStatus, required };
}

/**
 * Reads a pending approval and finalises it when its stored votes already decide it (a
 * finalisation that failed to ledger earlier); a finalisation or expiry is a step in the
 * decision's critical section.
 */
export async function settlePending(
  ctx: ApprovalCtx,
  decisionId: string,
): Promise<PendingRecord | undefined> {
  const { store } = ctx.deps;
  const seen = await store.pending(decisionId);
  if (seen === undefined || seen.status !== 'pending') return seen;
  if (!expiresNow(ctx, seen) && (await store.votes(decisionId)).length === 0) return seen;
  return ctx.step(decisionId, async () => {
    const p = await readLocked(ctx, decisionId);
    if (p === undefined || p.status !== 'pending' || (await store.votes(decisionId)).length === 0) return p;
    await finalizeIfDone(ctx, p);
    return await store.pending(decisionId);
  });
}
