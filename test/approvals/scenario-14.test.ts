/**
 * SPEC §7 scenario 14, end to end (L7 Break-glass): break-glass without an L4/L5 role, a
 * structured reason or a short TTL is refused (`ERR_BREAK_GLASS_DENIED`); with them, an escalated
 * call in the grant's scope runs without approvals, is flagged in the ledger and opens a review
 * item that only another person can close. It never overrides a policy `forbid`, never reaches
 * outside its target and action class, and ends with its TTL.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breakGlassSigningInput, encodeBase64url, reviewSigningInput } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { generateSigningKey, importSigningKeyJwk, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { cliApproverKey, startRig, type Rig } from './support.js';

let rig: Rig;
const keys = new Map<string, SigningKey>();
const transfer = (amount: number) => ({
  from_account: 'acct_a',
  to_account: 'acct_b',
  amount,
  currency: 'USD',
});

beforeAll(async () => {
  rig = await startRig();
  // Through the CLI, which writes the approvers' key files (0600) the CLI signs with.
  for (const [name, roles] of [
    ['dave', 'L4'],
    ['erin', 'L5,treasury'],
    ['carol', 'finance'],
  ] as const) {
    expect(await rig.enrol(name, roles)).toBe(0);
    keys.set(name, importSigningKeyJwk(cliApproverKey(rig, name)));
  }
}, 60_000);

afterAll(async () => {
  await rig.close();
});

async function raw(statement: JsonObject, key: SigningKey): Promise<JsonObject> {
  const sig = encodeBase64url(signEd25519(key, breakGlassSigningInput(statement as never)));
  const res = await fetch(new URL('/v1/break-glass', rig.instance.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ statement, signature: sig }),
  });
  return (await res.json()) as JsonObject;
}

const base = (over: JsonObject = {}): JsonObject => ({
  approver: 'dave',
  tenant: 'acme',
  tool: 'transfer_funds',
  reason_category: 'incident',
  reason: 'payroll outage INC-7',
  ttl_sec: 600,
  timestamp: new Date(Date.now()).toISOString(),
  ...over,
});

describe('SPEC §7 scenario 14: break-glass', () => {
  it('without role, reason or TTL: ERR_BREAK_GLASS_DENIED', async () => {
    expect(
      (
        await rig.approver('carol', keys.get('carol')!).breakGlass({
          tenant: 'acme',
          tool: 'transfer_funds',
          reason_category: 'incident',
          reason: 'x',
          ttl_sec: 600,
        })
      ).body,
    ).toMatchObject({ code: 'ERR_BREAK_GLASS_DENIED' });
    expect(await raw(base({ reason: '' }), keys.get('dave')!)).toMatchObject({
      code: 'ERR_BREAK_GLASS_DENIED',
    });
    const { reason_category: _c, ...noCategory } = base();
    expect(await raw(noCategory, keys.get('dave')!)).toMatchObject({ code: 'ERR_BREAK_GLASS_DENIED' });
    const { ttl_sec: _t, ...noTtl } = base();
    expect(await raw(noTtl, keys.get('dave')!)).toMatchObject({ code: 'ERR_BREAK_GLASS_DENIED' });
    expect(await raw(base({ ttl_sec: 0 }), keys.get('dave')!)).toMatchObject({
      code: 'ERR_BREAK_GLASS_DENIED',
    });
    expect(await raw(base({ ttl_sec: 86_400 }), keys.get('dave')!)).toMatchObject({
      code: 'ERR_BREAK_GLASS_DENIED',
    });
    expect(await raw(base(), generateSigningKey())).toMatchObject({ code: 'ERR_APPROVAL_SIGNATURE' });
    expect(await raw(base({ approver: 'demo-agent' }), generateSigningKey())).toMatchObject({
      code: 'ERR_APPROVER_AGENT',
    });
    // Nothing was granted: an escalated call still waits.
    expect((await rig.agent().call('transfer_funds', transfer(4000))).outcome).toBe('pending');
  });

  it('with them: the call runs without approvals, flagged, with a review another person must close', async () => {
    const granted = await rig.cli(
      'break-glass',
      '--as',
      'dave',
      '--tool',
      'transfer_funds',
      '--tenant',
      'acme',
      '--reason-category',
      'incident',
      '--reason',
      'payroll outage INC-7',
      '--ttl',
      '600',
    );
    expect(granted.code).toBe(0);
    const statementReplay = await raw(base(), keys.get('dave')!);
    expect(statementReplay['outcome']).toBe('ok'); // a new signed statement is a new grant

    const ran = await rig.agent().call('transfer_funds', transfer(4500));
    expect(ran.outcome).toBe('executed');
    if (ran.outcome !== 'executed') throw new Error('expected executed');
    const ev = await rig.cli('requests', 'show', ran.request_id);
    for (const t of ['break_glass.used', 'review.opened', 'approval.finalized', 'envelope.issued'])
      expect(ev.out).toContain(t);

    // Never for a forbid; never outside its target.
    const forbidden = await rig.agent().call('transfer_funds', transfer(60_000));
    expect(forbidden.outcome === 'deny' && forbidden.code).toBe('ERR_POLICY_DENY');
    const otherKey = generateSigningKey();
    await rig.operator('clients-add', {
      name: 'globex-agent',
      tenant: 'globex',
      public_jwk: { ...otherKey.publicJwk },
    });
    const { createClient } = await import('../../src/client/index.js');
    const globex = createClient({
      url: rig.instance.url,
      identity: 'globex-agent',
      tenant: 'globex',
      key: otherKey,
      now: rig.now,
    });
    expect((await globex.call('transfer_funds', transfer(4500))).outcome).toBe('pending');

    const listed = await rig.cli('reviews', 'list');
    const reviews = (JSON.parse(listed.out) as { reviews: JsonObject[] }).reviews.filter(
      (r) => r['status'] === 'open',
    );
    // Exactly the one break-glass use of this test opened a review.
    expect(reviews).toHaveLength(1);
    const reviewId = reviews[0]!['review_id'] as string;
    const own = await rig.cli('reviews', 'close', reviewId, '--as', 'dave', '--notes', 'my own review');
    expect(own.err).toContain('ERR_APPROVAL_SELF');
    // Under his identity-provider name his own key closes nothing either: no key approver is
    // `oidc:dave` (key approver names carry no colon), and one would be dave (`ERR_APPROVAL_SELF`).
    const asOidc = {
      review_id: reviewId,
      reviewer: 'oidc:dave',
      notes: 'as oidc',
      timestamp: new Date(rig.now()).toISOString(),
    };
    const oidcClose = await fetch(new URL(`/v1/reviews/${reviewId}/close`, rig.instance.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        statement: asOidc,
        signature: encodeBase64url(signEd25519(keys.get('dave')!, reviewSigningInput(asOidc))),
      }),
    });
    expect(await oidcClose.json()).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_UNKNOWN' });
    // A reviewer of another tenant, through the CLI: the same step refuses it.
    expect(await rig.enrol('gina', 'L5', ['globex'])).toBe(0);
    const foreign = await rig.cli('reviews', 'close', reviewId, '--as', 'gina', '--notes', 'not my tenant');
    expect(foreign.err).toContain('ERR_APPROVER_TENANT');
    const closed = await rig.cli(
      'reviews',
      'close',
      reviewId,
      '--as',
      'erin',
      '--notes',
      'justified: payroll restored',
    );
    expect(closed.code).toBe(0);
    expect((await rig.cli('reviews', 'close', reviewId, '--as', 'erin', '--notes', 'again')).err).toContain(
      'ERR_APPROVAL_INVALID',
    );

    const out = join(rig.dir, 'bg.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
  }, 30_000);

  it('ends with its TTL', async () => {
    rig.advance(601_000);
    try {
      expect((await rig.agent().call('transfer_funds', transfer(4600))).outcome).toBe('pending');
    } finally {
      rig.advance(-601_000);
    }
  });
});
