/**
 * The approver's Reviews page (docs/console.md "Reviews"): the post-incident review items opened
 * by break-glass uses (L7 Break-glass "mandatory post-incident review"), open and closed, that
 * the signed-in approver may see: those of a call of a tenant in their scope (OE-INV-020). Closing
 * one is not here: it is `POST reviews/{id}/close` (api.ts), the approval service's review close,
 * the same step as the CLI's `reviews close` and `POST /v1/reviews/{id}/close`.
 */
import { deny } from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { approverCovers, humanOf } from '../control-plane/index.js';
import type { ApprovalService, ApproverRecord } from '../control-plane/index.js';
import { keySignedIn } from './service.js';
import type { SignedIn } from './service.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * True when a review of a call of `tenant` (undefined: the call is unknown) is the approver's to
 * see, with the approval service's rule for closing it: `*` and unknown calls for approvers of
 * every tenant only.
 */
function inScope(a: ApproverRecord, tenant: string | undefined): boolean {
  return tenant === undefined || tenant === '*' ? a.tenants === '*' : approverCovers(a.tenants, tenant);
}

/**
 * The review items the signed-in approver may see, newest first, each with the reviewed call's
 * tenant, tool and request and `own` (true when the approver is the one who used break-glass, who
 * may not close it). Denies `ERR_APPROVER_UNKNOWN` to a session that is not a confirmed device-key
 * session.
 */
export async function reviewsFor(
  deps: { readonly approvals: ApprovalService; readonly now: Clock },
  who: SignedIn,
): Promise<{ status: 200; body: JsonObject } | Deny> {
  const a = who.approver;
  if (a === undefined || !keySignedIn(who))
    return deny('ERR_APPROVER_UNKNOWN', 'the device key is not confirmed by an operator yet');
  const items: JsonValue[] = [];
  for (const r of await deps.approvals.listReviews()) {
    const call = await deps.approvals.get(r.decision_id);
    if (!inScope(a, call?.tenant)) continue;
    items.push({
      review_id: r.review_id,
      decision_id: r.decision_id,
      request_id: call?.request_id ?? null,
      tenant: call?.tenant ?? null,
      tool: call?.tool ?? null,
      opened_for: r.opened_for,
      opened_at: iso(r.opened_at),
      status: r.status,
      closed_by: r.closed_by,
      closed_at: iso(r.closed_at),
      notes: r.notes,
      own: humanOf(r.opened_for) === humanOf(a.name),
    });
  }
  items.reverse();
  return { status: 200, body: { now: new Date(deps.now()).toISOString(), reviews: items } };
}
