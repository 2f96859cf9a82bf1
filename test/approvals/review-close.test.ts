/**
 * Who may close a break-glass review (L7 Break-glass "mandatory post-incident review", OE-INV-020
 * distinct humans and tenant scope), with the real approval service and Control Plane over a real
 * SQLite ledger: the person who used break-glass never closes their own review, also under their
 * identity-provider name (`oidc:dave` is dave, as for votes), and a reviewer whose tenants do not
 * cover the reviewed call's tenant is refused; each refusal is ledgered as a `denial` and leaves
 * the review open. Key approver names carry no colon, so to sign as `oidc:dave` the test's store
 * answers dave's key for that name (test-only wrapping, as a deployment mapping its identity
 * provider's names to keys would).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBase64url, isDeny, reviewSigningInput } from '../../src/kernel/index.js';
import type { ReviewStatement } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalService, ApprovalStore } from '../../src/control-plane/index.js';
import { daveBreakGlass, entriesOf, OPERATOR, request, type Rig, rigWithApprovals } from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

/** The SQLite store, answering dave's key for `oidc:dave` too. */
function withOidcAlias(store: ApprovalStore): ApprovalStore {
  return Object.freeze({
    ...store,
    approver: async (name: string) => {
      const a = await store.approver(name === 'oidc:dave' ? 'dave' : name);
      return a === undefined ? undefined : { ...a, name };
    },
  });
}

async function setup(): Promise<{
  r: Rig;
  approvals: ApprovalService;
  keys: Map<string, SigningKey>;
  reviewId: string;
}> {
  const { r, approvals } = await rigWithApprovals(withOidcAlias(createSqliteApprovalStore(':memory:')));
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const [name, roles, tenants] of [
    ['dave', ['L4'], ['acme']],
    ['erin', ['treasury'], ['acme']],
    ['frank', ['treasury'], ['globex']],
  ] as const) {
    const key = generateSigningKey();
    keys.set(name, key);
    const added = await approvals.registerApprover(
      { name, roles, tenants, public_jwk: { ...key.publicJwk } },
      OPERATOR,
    );
    expect(isDeny(added)).toBe(false);
  }
  const grant = await approvals.breakGlass(daveBreakGlass(keys.get('dave')!, r.clock));
  expect(grant).toMatchObject({ outcome: 'ok' });
  expect((await r.cp.decide(request('wire', { amount_cents: 7 }))).outcome).toBe('allow');
  const reviews = await approvals.listReviews();
  expect(reviews.map((x) => [x.opened_for, x.status])).toEqual([['dave', 'open']]);
  return { r, approvals, keys, reviewId: reviews[0]!.review_id };
}

function close(
  env: { r: Rig; approvals: ApprovalService; keys: Map<string, SigningKey>; reviewId: string },
  reviewer: string,
  key: string,
): ReturnType<ApprovalService['closeReview']> {
  const s: ReviewStatement = {
    review_id: env.reviewId,
    reviewer,
    notes: 'reviewed',
    timestamp: new Date(env.r.clock()).toISOString(),
  };
  return env.approvals.closeReview(env.reviewId, {
    statement: { ...s },
    signature: encodeBase64url(signEd25519(env.keys.get(key)!, reviewSigningInput(s))),
  });
}

describe('closing a break-glass review (L7 Break-glass, OE-INV-020)', () => {
  it('the break-glass user is refused under both names, another tenant’s reviewer too; the tenant’s reviewer closes it', async () => {
    const env = await setup();
    const before = (await entriesOf(env.r.ledger)).length;
    expect(await close(env, 'dave', 'dave')).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect(await close(env, 'oidc:dave', 'dave')).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect(await close(env, 'frank', 'frank')).toMatchObject({ code: 'ERR_APPROVER_TENANT' });
    const refusals = (await entriesOf(env.r.ledger)).slice(before);
    expect(refusals.map((e) => [e.type, e.actor.id, e.payload['code'], e.payload['stage']])).toEqual([
      ['denial', 'dave', 'ERR_APPROVAL_SELF', 'review'],
      ['denial', 'oidc:dave', 'ERR_APPROVAL_SELF', 'review'],
      ['denial', 'frank', 'ERR_APPROVER_TENANT', 'review'],
    ]);
    expect((await env.approvals.listReviews())[0]?.status).toBe('open');

    expect(await close(env, 'erin', 'erin')).toMatchObject({
      outcome: 'ok',
      review: { status: 'closed', closed_by: 'erin' },
    });
    const last = (await entriesOf(env.r.ledger)).at(-1);
    expect([last?.type, last?.actor.id, last?.payload['reviewer']]).toEqual([
      'review.closed',
      'erin',
      'erin',
    ]);
  });
});
