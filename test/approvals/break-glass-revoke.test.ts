/**
 * Revoking a break-glass grant before its TTL (L7 Break-glass: short-lived, under the operators'
 * control): ledgered first (`break_glass.used`, `scope.phase` `revoked`, the operator as actor),
 * then no call finds the grant; a revoked or unknown grant cannot be revoked again; an operator
 * scoped to another tenant is refused `ERR_FORBIDDEN` and the grant stays; the export verifies.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/kernel/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from './support.js';

let rig: Rig;
const params = { from_account: 'acct_a', to_account: 'acct_b', amount: 5000, currency: 'USD' };

beforeAll(async () => {
  rig = await startRig();
  expect(await rig.enrol('dave', 'L4')).toBe(0);
}, 60_000);

afterAll(async () => {
  await rig.close();
});

async function breakGlass(): Promise<string> {
  const r = await rig.cli(
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
    'payments outage INC-7',
    '--ttl',
    '600',
  );
  expect(r.code).toBe(0);
  return ((JSON.parse(r.out) as JsonObject)['grant'] as JsonObject)['grant_id'] as string;
}

const ledgerTypes = async (): Promise<JsonObject[]> => {
  const l = rig.instance.core.ledger;
  return (await l.store.readRange(0, l.size())).map((r) => JSON.parse(JSON.stringify(r)) as JsonObject);
};

describe('break-glass revocation', () => {
  it('a revoked grant stands in for no approval from then on; revoking is ledgered first, once', async () => {
    const grant = await breakGlass();
    const listed = await rig.cli('break-glass', 'list');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.out)).toMatchObject({ grants: [{ grant_id: grant, tenant: 'acme' }] });

    // An operator of another tenant cannot end it.
    const added = await rig.operator('operators-add', { name: 'gina', tenants: ['globex'] });
    const token = (added.body as JsonObject)['token'] as string;
    const foreign = await rig.instance.core.gate.admin(
      'break-glass-revoke',
      { grant_id: grant, reason: 'not mine' },
      `Bearer ${token}`,
    );
    expect(foreign).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });

    const revoked = await rig.cli('break-glass', 'revoke', grant, '--reason', 'outage over');
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.out)).toMatchObject({ outcome: 'ok', grant: { grant_id: grant } });
    const record = (await ledgerTypes()).find(
      (e) =>
        e['type'] === 'break_glass.used' &&
        (e['payload'] as JsonObject)['scope'] !== undefined &&
        ((e['payload'] as JsonObject)['scope'] as JsonObject)['phase'] === 'revoked',
    );
    expect(record).toMatchObject({
      actor: { role: 'operator' },
      tenant: 'acme',
      payload: {
        reason: { category: 'revoked', text: 'outage over' },
        scope: { phase: 'revoked', grant_id: grant },
      },
    });
    expect(JSON.parse((await rig.cli('break-glass', 'list')).out)).toEqual({ grants: [] });

    // The escalated transfer now waits for its approvers: the revoked grant does not finalise it.
    const call = await rig.agent().call('transfer_funds', params);
    expect(call).toMatchObject({ outcome: 'pending' });
    expect((await ledgerTypes()).some((e) => e['type'] === 'execution.receipt')).toBe(false);

    // Revoked, or never granted: nothing to revoke.
    for (const id of [grant, 'bg_0000']) {
      const again = await rig.cli('break-glass', 'revoke', id);
      expect(again.code).toBe(1);
      expect(again.err + again.out).toContain('ERR_APPROVAL_UNKNOWN');
    }
    expect((await rig.cli('break-glass', 'revoke', '../x')).err).toContain('ERR_REQUEST_MALFORMED');
  });

  it('the export verifies, the revocation in it', async () => {
    const out = join(rig.dir, 'bundle.ndjson');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust, 'utf8') });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
