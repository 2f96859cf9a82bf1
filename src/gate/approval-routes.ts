/**
 * The Gate's approval routes (OE-INV-019/020, L7 Break-glass; docs/approvals.md "HTTP API"):
 *
 * | route | auth |
 * | --- | --- |
 * | `GET /v1/approvals`, `GET /v1/approvals/{id}` | operator token or approver bearer token |
 * | `POST /v1/approvals/{id}/approve`, `/reject` | the approver's signature (or bound OIDC token) in the body |
 * | `POST /v1/break-glass` | the L4/L5 approver's signature in the body |
 * | `GET /v1/reviews` | operator token or approver bearer token |
 * | `POST /v1/reviews/{id}/close` | the reviewer's signature in the body |
 *
 * The Gate only routes and bounds the calls; the Control Plane checks every proof.
 */
import { deny, statusOf } from '../kernel/index.js';
import type { DenialCode, JsonValue } from '../kernel/index.js';
import { withDeadline } from './deadline.js';
import type { GateApprovals, RouteAnswer, TenantScope } from './types.js';

const ID = '([A-Za-z0-9._:-]{1,128})';
const APPROVAL = new RegExp(`^/v1/approvals/${ID}$`);
const VERDICT = new RegExp(`^/v1/approvals/${ID}/(approve|reject)$`);
const REVIEW = new RegExp(`^/v1/reviews/${ID}/close$`);

/** True when `path` belongs to the approval API (the server reads a body for its POST routes). */
export function isApprovalPath(path: string): boolean {
  return (
    path === '/v1/approvals' ||
    path === '/v1/break-glass' ||
    path === '/v1/reviews' ||
    path.startsWith('/v1/approvals/') ||
    path.startsWith('/v1/reviews/')
  );
}

function refused(code: DenialCode, reason: string): RouteAnswer {
  const d = deny(code, reason);
  return { status: statusOf(code), body: { outcome: 'deny', code: d.code, reason: d.reason } };
}

function bearerOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined || !authorization.startsWith('Bearer ')) return undefined;
  const t = authorization.slice('Bearer '.length).trim();
  return t.length > 0 ? t : undefined;
}

/** Routes one approval API request; undefined when no route matches. Never rejects. */
export function routeApprovals(
  deps: {
    readonly approvals: GateApprovals | undefined;
    readonly isOperator: (authorization: string | undefined) => boolean | Promise<boolean>;
    readonly timeoutMs: number;
  },
  method: string,
  path: string,
  body: JsonValue,
  authorization: string | undefined,
): Promise<RouteAnswer> | undefined {
  const api = deps.approvals;
  if (!isApprovalPath(path)) return undefined;
  if (api === undefined) return Promise.resolve({ status: 404, body: { error: 'not_found' } });
  const bounded = async (fn: () => Promise<RouteAnswer>): Promise<RouteAnswer> => {
    const r = await withDeadline(fn, deps.timeoutMs);
    return r.status === 'ok'
      ? r.value
      : refused('ERR_CONTROL_PLANE_UNAVAILABLE', 'the approval service did not answer in time');
  };
  // An operator reads everything; an approver's bearer only what its tenant scope covers
  // (OE-INV-020): another tenant's approvals and reviews do not exist for it.
  const viewer = async (
    fn: (who?: { readonly name: string; readonly tenants: TenantScope }) => Promise<RouteAnswer>,
  ): Promise<RouteAnswer> => {
    if (await deps.isOperator(authorization)) return fn();
    const bearer = bearerOf(authorization);
    const who = bearer === undefined ? undefined : await api.approverOf(bearer);
    if (who !== undefined) return fn(who);
    return refused('ERR_UNAUTHENTICATED', 'operator or approver token required');
  };
  if (method === 'GET') {
    if (path === '/v1/approvals') return bounded(() => viewer((who) => api.list(who?.tenants)));
    if (path === '/v1/reviews') return bounded(() => viewer((who) => api.reviews(who?.tenants)));
    const m = APPROVAL.exec(path);
    if (m?.[1] !== undefined) {
      const id = m[1];
      // An identified approver opening the item is recorded (approvals watched, L7 hardening).
      return bounded(() => viewer((who) => api.show(id, who)));
    }
  }
  if (method === 'POST') {
    if (path === '/v1/break-glass') return bounded(() => api.breakGlass(body));
    const v = VERDICT.exec(path);
    const verdict = v?.[2] === 'approve' ? 'approve' : v?.[2] === 'reject' ? 'reject' : undefined;
    if (v?.[1] !== undefined && verdict !== undefined) {
      const id = v[1];
      return bounded(() => api.submit(id, verdict, body, bearerOf(authorization)));
    }
    const r = REVIEW.exec(path);
    if (r?.[1] !== undefined) {
      const id = r[1];
      return bounded(() => api.closeReview(id, body));
    }
  }
  return Promise.resolve({ status: 404, body: { error: 'not_found' } });
}
