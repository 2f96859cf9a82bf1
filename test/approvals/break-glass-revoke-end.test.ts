/**
 * Revoking a break-glass grant (L7 Break-glass, under the operators' control) is ledgered first,
 * then the grant is ended in the approval store. On the embedded deployment's shared SQLite
 * connection that end refuses when another call's shared commit fails in the same turn (its
 * write never ran: `sqlite-commit.ts` `writeNow`). The end is idempotent, so the revocation tries
 * it once more: it answers ok only with the grant ended, and no call finds the grant after it,
 * never a ledger that says revoked over a grant still in use.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isDeny } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalService, ApprovalStore } from '../../src/control-plane/index.js';
import { daveBreakGlass, OPERATOR, request, rigWithApprovals, type Rig } from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

/** The SQLite store, its grant ends refused the first `refusals` times as a failed shared commit would. */
function refusingEnds(
  store: ApprovalStore,
  refusals: number,
): ApprovalStore & { readonly tried: () => number } {
  let tried = 0;
  return Object.freeze({
    ...store,
    endGrant: (grantId: string, atMs: number) => {
      tried += 1;
      return tried <= refusals
        ? Promise.reject(new Error('the open transaction did not commit'))
        : store.endGrant(grantId, atMs);
    },
    tried: () => tried,
  });
}

async function withGrant(refusals: number): Promise<{
  r: Rig;
  approvals: ApprovalService;
  store: ReturnType<typeof refusingEnds>;
  grantId: string;
  decisionId: string;
}> {
  const store = refusingEnds(createSqliteApprovalStore(':memory:'), refusals);
  const { r, approvals } = await rigWithApprovals(store);
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  const key = generateSigningKey();
  const added = await approvals.registerApprover(
    { name: 'dave', roles: ['L4'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
    OPERATOR,
  );
  expect(isDeny(added)).toBe(false);
  const grant = await approvals.breakGlass(daveBreakGlass(key, r.clock));
  if (grant.outcome !== 'ok') throw new Error(`no grant: ${JSON.stringify(grant)}`);
  // The grant stands in for the approvals: the call is allowed.
  const allowed = await r.cp.decide(request('wire', { amount_cents: 7 }));
  expect(allowed.outcome).toBe('allow');
  return {
    r,
    approvals,
    store,
    grantId: grant.grant.grant_id,
    decisionId: (allowed as { decision_id: string }).decision_id,
  };
}

describe('revoking a break-glass grant whose end is refused once', () => {
  it('is tried once more: revoked, ended, and no call finds the grant after it', async () => {
    const { r, approvals, store, grantId } = await withGrant(1);
    const revoked = await approvals.revokeGrant(grantId, 'incident over', OPERATOR);
    expect(revoked).toMatchObject({ outcome: 'ok' });
    expect(store.tried()).toBe(2);
    expect(await approvals.activeGrants()).toEqual([]);
    expect((await r.cp.decide(request('wire', { amount_cents: 7 }))).outcome).not.toBe('allow');
  });

  it('refused twice: the revocation fails, as the operator is told, and asking again ends it', async () => {
    const { r, approvals, store, grantId } = await withGrant(2);
    await expect(approvals.revokeGrant(grantId, 'incident over', OPERATOR)).rejects.toThrow(
      'the open transaction did not commit',
    );
    expect(store.tried()).toBe(2);
    expect(await approvals.revokeGrant(grantId, 'incident over', OPERATOR)).toMatchObject({ outcome: 'ok' });
    expect(await approvals.activeGrants()).toEqual([]);
    expect((await r.cp.decide(request('wire', { amount_cents: 7 }))).outcome).not.toBe('allow');
  });
});

describe('a decision a break-glass grant finalised stands only while the grant does (L7 break-glass)', () => {
  it.each(['revoked', 'expired', 'its grantor removed'] as const)(
    'stillApproved is true with the grant and false once it is %s (a schedule created under it runs no more)',
    async (end) => {
      const { r, approvals, grantId, decisionId } = await withGrant(0);
      const p = await approvals.get(decisionId);
      expect(p).toMatchObject({ status: 'issued', grant_id: grantId });
      if (p === undefined) throw new Error('no decision');
      expect(await approvals.stillApproved(p)).toBe(true);
      if (end === 'revoked')
        expect(await approvals.revokeGrant(grantId, 'incident over', OPERATOR)).toMatchObject({
          outcome: 'ok',
        });
      else if (end === 'expired') r.clock.advance(301_000);
      else expect(isDeny(await approvals.removeApprover('dave', 'left', OPERATOR))).toBe(false);
      expect(await approvals.stillApproved(p)).toBe(false);
    },
  );
});
