/**
 * The approval flow end to end (OE-INV-019/020, SPEC §2 step 5 "once approvals are complete"):
 * a transfer above the threshold waits (202 pending), two distinct treasury approvers approve
 * from the CLI, the retry with the same request id runs exactly once, and the exported bundle
 * proves who approved what before it ran.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from './support.js';

let rig: Rig;
const BIG = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };

beforeAll(async () => {
  rig = await startRig();
}, 60_000);

afterAll(async () => {
  await rig.close();
});

describe('approval flow (demo policy: transfer above 1000 USD needs two treasury approvals)', () => {
  it('waits, is approved by two distinct approvers from the CLI, runs once, and verifies', async () => {
    expect(await rig.enrol('alice', 'treasury')).toBe(0);
    expect(await rig.enrol('bob', 'treasury')).toBe(0);

    const agent = rig.agent();
    const first = await agent.call('transfer_funds', BIG);
    expect(first.outcome).toBe('pending');
    if (first.outcome !== 'pending') throw new Error('expected pending');
    expect(first.status).toBe(202);
    const id = first.decision_id;

    const shown = await rig.cli('approvals', 'show', id);
    expect(shown.code).toBe(0);
    const view = JSON.parse(shown.out) as Record<string, unknown>;
    expect(view['status']).toBe('pending');
    expect(view['required']).toBe(2);
    expect(view['roles']).toEqual(['treasury']);

    // Still pending after one approval: a retry gets 202 again and nothing runs.
    expect(
      (await rig.cli('approvals', 'approve', id, '--as', 'alice', '--justification', 'invoice 42 checked'))
        .code,
    ).toBe(0);
    const early = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(early.outcome).toBe('pending');

    // The same approver twice is refused: distinct humans.
    const again = await rig.cli('approvals', 'approve', id, '--as', 'alice', '--justification', 'again');
    expect(again.code).toBe(1);
    expect(again.err).toContain('ERR_APPROVAL_DUPLICATE');

    expect(
      (await rig.cli('approvals', 'approve', id, '--as', 'bob', '--justification', 'second pair of eyes'))
        .code,
    ).toBe(0);
    const ran = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(ran.outcome).toBe('executed');

    // Single issuance: a further retry is refused.
    const replay = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(replay.outcome === 'deny' && replay.code).toBe('ERR_REQUEST_REPLAYED');

    // A retry with other parameters under the same request id is a replay, never a new decision.
    const changed = await rig
      .agent()
      .call('transfer_funds', { ...BIG, amount: 4999 }, { requestId: first.request_id });
    expect(changed.outcome === 'deny' && changed.code).toBe('ERR_REQUEST_REPLAYED');

    const out = join(rig.dir, 'audit.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    // Pinned: approvals verify only under the deployment's published approver keys.
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(report.exitCode).toBe(0);
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    const approvals = report.checks.find((c) => c.id === 'approvals');
    expect(approvals?.status).toBe('pass');
  }, 60_000);

  it('a rejection by a required approver denies the call', async () => {
    const agent = rig.agent();
    const first = await agent.call('transfer_funds', { ...BIG, amount: 2500 });
    if (first.outcome !== 'pending') throw new Error('expected pending');
    const r = await rig.cli(
      'approvals',
      'reject',
      first.decision_id,
      '--as',
      'bob',
      '--justification',
      'unknown vendor',
    );
    expect(r.code).toBe(0);
    const retry = await agent.call(
      'transfer_funds',
      { ...BIG, amount: 2500 },
      { requestId: first.request_id },
    );
    expect(retry.outcome === 'deny' && retry.code).toBe('ERR_APPROVAL_REJECTED');
  }, 30_000);

  it('an expired approval window is a deny', async () => {
    const agent = rig.agent();
    const first = await agent.call('transfer_funds', { ...BIG, amount: 3000 });
    if (first.outcome !== 'pending') throw new Error('expected pending');
    rig.advance(3601_000);
    const late = await rig.cli(
      'approvals',
      'approve',
      first.decision_id,
      '--as',
      'alice',
      '--justification',
      'late',
    );
    expect(late.err).toContain('ERR_APPROVAL_EXPIRED');
    const retry = await rig
      .agent()
      .call('transfer_funds', { ...BIG, amount: 3000 }, { requestId: first.request_id });
    expect(retry.outcome === 'deny' && retry.code).toBe('ERR_APPROVAL_EXPIRED');
    rig.advance(-3601_000);
  }, 30_000);
});

describe('retries at the Gate', () => {
  it('a retry must carry a fresh nonce: the exact first request replayed is refused', async () => {
    const { buildSignedRequest } = await import('../../src/client/index.js');
    const { readClientFile, DEMO_CLIENT } = await import('../../src/embedded/index.js');
    const { importSigningKeyJwk } = await import('../../src/kernel/signing/index.js');
    const key = importSigningKeyJwk(readClientFile(rig.dir, DEMO_CLIENT.identity).key);
    const body = buildSignedRequest({
      key,
      identity: DEMO_CLIENT.identity,
      tenant: DEMO_CLIENT.tenant,
      action: 'transfer_funds',
      parameters: { ...BIG, amount: 1500 },
      timestampMs: rig.now(),
    });
    const post = async () => {
      const res = await fetch(new URL('/v1/calls', rig.instance.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await post()).status).toBe(202);
    const again = await post();
    expect(again.body['code']).toBe('ERR_REQUEST_REPLAYED');
  });
});
