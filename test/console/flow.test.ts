/**
 * The console end to end (OE-INV-019/020, L7 Identity & Signing; docs/console.md): an agent's
 * transfer waits for two treasury approvals; two people, each in their own browser profile, are
 * invited, sign in with their one-time codes, enrol non-extractable device keys, are confirmed by
 * the operator, and approve in the browser; the retry runs exactly once; the exported ledger
 * verifies offline with the approvals the browsers signed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import { decideInBrowser, ensureConsoleBuilt, launchBrowser, onboard, refreshInbox } from './browser.js';

let rig: Rig;
let browser: Browser;
const BIG = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };

beforeAll(async () => {
  ensureConsoleBuilt();
  rig = await startRig();
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await rig?.close();
});

describe('console approval flow', { timeout: 180_000 }, () => {
  it('two approvers enrol their own device keys, approve in the browser, the call runs once and verifies', async () => {
    const alice = await onboard(browser, rig, 'alice', 'treasury', ['acme']);
    const bob = await onboard(browser, rig, 'bob', 'treasury', ['acme']);
    expect(alice.kid).not.toBe(bob.kid);

    const agent = rig.agent();
    const first = await agent.call('transfer_funds', BIG);
    if (first.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(first)}`);
    const id = first.decision_id;

    expect(await decideInBrowser(alice, id, 'approve', 'invoice 42 checked')).toContain('Approved');
    const early = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(early.outcome).toBe('pending');
    expect(await decideInBrowser(bob, id, 'approve', 'second pair of eyes')).toContain('Approved');

    const ran = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(ran.outcome).toBe('executed');
    const replay = await agent.call('transfer_funds', BIG, { requestId: first.request_id });
    expect(replay.outcome === 'deny' && replay.code).toBe('ERR_REQUEST_REPLAYED');

    // The evidence page: every record re-hashed and proven in the signed checkpoint, in the browser.
    await refreshInbox(alice);
    await alice.page.fill('#evidence-id', first.request_id);
    await alice.page.click('#evidence-open');
    await alice.page.waitForSelector('#evidence');
    expect(await alice.page.locator('#checkpoint-check .check.ok').count()).toBe(1);
    const records = await alice.page.locator('#evidence article.record').count();
    expect(records).toBeGreaterThan(5);
    expect(await alice.page.locator('#evidence .check.fail').count()).toBe(0);
    expect(await alice.page.locator('#evidence .check.ok').count()).toBe(2 * records + 1);
    expect(await alice.page.locator('#evidence article.record.receipt').count()).toBe(1);
    expect(await alice.page.locator('#claims').textContent()).toContain(first.decision_id);

    const out = join(rig.dir, 'audit.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const bundle = readFileSync(out, 'utf8');
    const entries = bundle.split('\n').filter((l) => l.includes('"execution.receipt"') && l.includes(id));
    expect(entries).toHaveLength(1);
    // Invitation, enrolment (by the person) and confirmation (the key's registration) are ledgered.
    expect(bundle).toContain('"admin.approver_invited"');
    expect(bundle).toContain('"admin.approver_enrolled"');
    // The inbox showed each approver the preview: no approval is flagged as made unopened.
    expect(bundle).not.toContain('unviewed_quick');
    // The evidence read is ledgered with its reader (L7 read path).
    expect(
      bundle
        .split('\n')
        .some(
          (l) => l.includes('"audit.read"') && l.includes('"id":"alice"') && l.includes(first.request_id),
        ),
    ).toBe(true);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(report.exitCode).toBe(0);
    expect(report.checks.find((c) => c.id === 'approvals')?.status).toBe('pass');
    expect(alice.dialogs).toEqual([]);
  });
});
