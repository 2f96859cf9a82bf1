/**
 * The approval API as JSON answers (docs/approvals.md "HTTP API"): what the Gate's approval
 * routes call. Bodies are untrusted: each member is checked here or by the service; every
 * refusal is a deny with its code and HTTP status (OE-INV-019/020, L7 Break-glass).
 */
import { isDeny, statusOf } from '../../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import type { ApprovalService } from './service.js';
import type { SessionProof } from './session.js';
import { approverCovers } from './store.js';
import type { ApproverTenants, PendingRecord, ReviewRecord } from './store.js';

/** An HTTP answer. */
export interface ApiAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/** The approval API (structurally the Gate's `GateApprovals`). */
export interface ApprovalApi {
  /** The pending approvals; `scope`: only those of tenants the reading approver is scoped to. */
  list(scope?: ApproverTenants): Promise<ApiAnswer>;
  /**
   * One approval with its votes; `viewer`, an identified approver, is recorded as having opened
   * it, and sees only an approval of a tenant its `scope` covers (any other is unknown to it).
   */
  show(decisionId: string, viewer?: ApproverScope): Promise<ApiAnswer>;
  submit(
    decisionId: string,
    verdict: 'approve' | 'reject',
    body: JsonValue,
    bearer: string | undefined,
    /** The console's proof of a live key+oidc session (in-process only, never from the body). */
    session?: SessionProof,
  ): Promise<ApiAnswer>;
  breakGlass(body: JsonValue, session?: SessionProof): Promise<ApiAnswer>;
  /** The review items; `scope`: only those of calls of tenants the reading approver is scoped to. */
  reviews(scope?: ApproverTenants): Promise<ApiAnswer>;
  closeReview(reviewId: string, body: JsonValue, session?: SessionProof): Promise<ApiAnswer>;
  /** The approver an approver bearer token identifies, with its tenant scope, or undefined. */
  approverOf(bearer: string): Promise<ApproverScope | undefined>;
}

/** An approver identified by its bearer token, and the tenants its token scopes it to (OE-INV-020). */
export interface ApproverScope {
  readonly name: string;
  readonly tenants: ApproverTenants;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function refused(d: Deny): ApiAnswer {
  return { status: statusOf(d.code), body: { outcome: 'deny', code: d.code, reason: d.reason } };
}

function obj(v: JsonValue): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** The view approvers see of a pending approval: redacted parameters, preview, requirements, votes. */
export async function pendingView(
  service: ApprovalService,
  p: PendingRecord,
  withVotes: boolean,
): Promise<JsonObject> {
  return {
    decision_id: p.decision_id,
    kind: p.kind,
    status: p.status,
    request_id: p.request_id,
    requester: p.identity,
    owner: p.owner,
    tenant: p.tenant,
    tool: p.tool,
    session: p.session,
    params: p.params_view,
    params_sha256: p.params_sha256,
    intent_sha256: p.intent_sha256,
    preview: p.preview,
    preview_sha256: p.preview_sha256,
    risk: p.risk,
    // The threshold as raised by require_extra flags (the policy's is `approval.requested`'s).
    required: await service.required(p),
    roles: [...p.roles],
    created_at: iso(p.created_at),
    expires_at: iso(p.expires_at),
    approvals: [...p.approvals],
    ...(withVotes
      ? {
          votes: (await service.votes(p.decision_id)).map((v) => ({
            approver: v.approver,
            verdict: v.verdict,
            role: v.role,
            method: v.method,
            approval_sha256: v.approval_sha256,
            ledger_index: v.ledger_index,
          })),
        }
      : {}),
  };
}

function reviewView(r: ReviewRecord): JsonObject {
  return { ...r, opened_at: iso(r.opened_at), closed_at: iso(r.closed_at) };
}

/** Builds the API over `service`; `now` times recorded views (the service's injected clock). */
export function createApprovalApi(service: ApprovalService, now: () => number = Date.now): ApprovalApi {
  return Object.freeze({
    async list(scope?: ApproverTenants) {
      const items = await service.list();
      const views: JsonValue[] = [];
      // Reading through `get` applies expiry, so the list never shows a closed window as pending.
      for (const p of items) {
        if (scope !== undefined && !approverCovers(scope, p.tenant)) continue;
        views.push(await pendingView(service, (await service.get(p.decision_id)) ?? p, false));
      }
      return { status: 200, body: { approvals: views } };
    },
    async show(id: string, viewer?: ApproverScope) {
      const found = await service.get(id);
      // Another tenant's approval does not exist for a scoped approver (not even its id).
      const p =
        viewer === undefined || found === undefined || approverCovers(viewer.tenants, found.tenant)
          ? found
          : undefined;
      // A view that cannot be recorded only makes a later approval look more unusual (flagged),
      // never less: the view is shown anyway.
      if (p !== undefined && viewer !== undefined)
        await service.recordView(id, viewer.name, now()).catch(() => false);
      if (p === undefined)
        return {
          status: 404,
          body: { outcome: 'deny', code: 'ERR_APPROVAL_UNKNOWN', reason: 'no pending approval has this id' },
        };
      return { status: 200, body: await pendingView(service, p, true) };
    },
    async submit(
      id: string,
      verdict: 'approve' | 'reject',
      body: JsonValue,
      bearer: string | undefined,
      session?: SessionProof,
    ) {
      const b = obj(body);
      const statement = b['statement'];
      if ((obj(statement ?? null)['verdict'] ?? verdict) !== verdict) {
        return {
          status: 400,
          body: {
            outcome: 'deny',
            code: 'ERR_APPROVAL_INVALID',
            reason: 'the statement verdict differs from the route',
          },
        };
      }
      const signature = b['signature'];
      const r = await service.submit(id, {
        statement,
        ...(typeof signature === 'string' ? { signature } : {}),
        ...(typeof signature !== 'string' && bearer !== undefined ? { token: bearer } : {}),
        ...(session === undefined ? {} : { session }),
      });
      if (isDeny(r)) return refused(r);
      return { status: 200, body: { ...r, ledger: { ...r.ledger } } };
    },
    async breakGlass(body: JsonValue, session?: SessionProof) {
      const b = obj(body);
      const r = await service.breakGlass({
        statement: b['statement'],
        signature: b['signature'],
        ...(session === undefined ? {} : { session }),
      });
      if (isDeny(r)) return refused(r);
      return {
        status: 201,
        body: {
          outcome: 'ok',
          grant: { ...r.grant, created_at: iso(r.grant.created_at), expires_at: iso(r.grant.expires_at) },
          ledger: { ...r.ledger },
        },
      };
    },
    async reviews(scope?: ApproverTenants) {
      const all = await service.listReviews();
      const shown: ReviewRecord[] = [];
      for (const r of all) {
        // As for closing one: a review whose call is unknown, or of every tenant, is for
        // every-tenant reviewers only (break-glass.ts reviewerRefusal).
        const tenant = scope === undefined ? undefined : ((await service.get(r.decision_id))?.tenant ?? '*');
        if (scope !== undefined && (tenant === '*' ? scope !== '*' : !approverCovers(scope, tenant ?? '')))
          continue;
        shown.push(r);
      }
      return { status: 200, body: { reviews: shown.map(reviewView) } };
    },
    async closeReview(id: string, body: JsonValue, session?: SessionProof) {
      const b = obj(body);
      const r = await service.closeReview(id, {
        statement: b['statement'],
        signature: b['signature'],
        ...(session === undefined ? {} : { session }),
      });
      if (isDeny(r)) return refused(r);
      return { status: 200, body: { outcome: 'ok', review: reviewView(r.review), ledger: { ...r.ledger } } };
    },
    approverOf: (bearer: string) => service.approverOfToken(bearer),
  });
}
