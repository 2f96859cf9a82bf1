// @ts-check
/* global fetch */
// Screenshots of the console for docs/ (docs/console.md): an embedded gate in a temporary data
// directory, two approvers enrolled in their own browser profiles, a tainted session's transfer
// waiting for them, then the inbox, the approval dialog and the evidence page once it ran; a
// policy activation waiting for approval with its diff; and the operator's pages (incident
// controls and their confirmation, ledger, policy bundles, clients and approvers, break-glass);
// and an approver's Reviews page once break-glass was used twice and one review closed.
// Run after `npm run build`:
//   node scripts/console-screenshots.mjs
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createClient, signBreakGlass } from '../dist/src/client/index.js';
import { generateSigningKey } from '../dist/src/kernel/signing/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../dist/src/embedded/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'fc-console-shots-'));
await initDataDir(dir);
writeFileSync(
  join(dir, 'approvals.json'),
  JSON.stringify({ policy_activation: { approvals: 1, roles: [] } }),
);
const gate = await startEmbedded(dir, { port: 0, executionPort: 0 });
const auth = `Bearer ${readOperatorToken(dir)}`;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  /** @param {string} name @param {string[] | '*'} tenants */
  const enrol = async (name, tenants = ['acme']) => {
    const invited = await gate.core.gate.admin(
      'approvers-invite',
      { name, roles: ['treasury'], tenants },
      auth,
    );
    const code = /** @type {{code: string}} */ (invited.body).code;
    const context = await browser.newContext({
      viewport: { width: 1100, height: 900 },
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    await page.goto(`${gate.url}/console/`);
    await page.fill('#name', name);
    await page.fill('#code', code);
    await page.click('#code-sign-in');
    const kid = (await page.locator('#kid').textContent()) ?? '';
    const confirmed = await gate.core.gate.admin('approvers-confirm', { name, kid }, auth);
    if (confirmed.status !== 200) throw new Error(JSON.stringify(confirmed.body));
    await page.click('#device-sign-in');
    await page.waitForSelector('#inbox');
    return page;
  };
  const alice = await enrol('alice');
  const bob = await enrol('bob');
  const f = readClientFile(dir, DEMO_CLIENT.identity);
  const agent = createClient({ url: gate.url, identity: f.identity, tenant: f.tenant, key: f.key });
  await agent.call('read_inbox', {}, { session: 'sess-42' });
  const waiting = await agent.call(
    'transfer_funds',
    {
      from_account: 'acct_ops',
      to_account: 'acct_vendor',
      amount: 5000,
      currency: 'USD',
      memo: 'invoice 42 (vendor onboarding)',
    },
    { session: 'sess-42' },
  );
  if (waiting.outcome !== 'pending') throw new Error(JSON.stringify(waiting));
  await alice.click('#refresh');
  const card = alice.locator(`article.approval[data-decision-id="${waiting.decision_id}"]`);
  await card.locator('button.approve').click();
  await alice.fill('#justification', 'invoice 42 matches the purchase order');
  await alice.click('#sign-submit');
  await alice.locator('#status', { hasText: /\S/ }).waitFor();
  await bob.click('#refresh');
  await bob.locator('article.approval').first().waitFor();
  await bob.screenshot({ path: join(root, 'docs', 'console-inbox.png'), fullPage: true });
  await bob.locator('article.approval button.approve').first().click();
  await bob.fill('#justification', 'second pair of eyes: amount and payee checked');
  await bob.screenshot({ path: join(root, 'docs', 'console-approve-dialog.png') });
  await bob.click('#sign-submit');
  await bob.locator('#status', { hasText: /Approved/ }).waitFor();
  const ran = await agent.call(
    'transfer_funds',
    {
      from_account: 'acct_ops',
      to_account: 'acct_vendor',
      amount: 5000,
      currency: 'USD',
      memo: 'invoice 42 (vendor onboarding)',
    },
    { session: 'sess-42', requestId: waiting.request_id },
  );
  if (ran.outcome !== 'executed') throw new Error(JSON.stringify(ran));
  await bob.fill('#evidence-id', waiting.request_id);
  await bob.click('#evidence-open');
  await bob.waitForSelector('#evidence');
  await bob.screenshot({ path: join(root, 'docs', 'console-evidence.png') });

  // A policy activation waiting for approval: the approver sees what it changes.
  const active = gate.core.bundles.active();
  if (!('bundle' in active)) throw new Error('no active bundle');
  const doc = active.bundle.document;
  const next = {
    ...doc,
    policies: {
      ...doc.policies,
      'no-deletes-on-fridays':
        '@reason("no record deletions during the freeze")\nforbid (principal, action == Action::"delete_records", resource);\n',
    },
  };
  const asked = await gate.core.gate.admin(
    'policy-activate',
    { bundle: JSON.stringify(next), reason: 'freeze' },
    auth,
  );
  const activation = /** @type {{decision_id?: string}} */ (asked.body).decision_id;
  if (activation === undefined) throw new Error(JSON.stringify(asked.body));
  const carol = await enrol('carol', '*');
  await carol.click('#refresh');
  const item = carol.locator(`article.approval[data-decision-id="${activation}"]`);
  await item.locator('.policy-diff').waitFor();
  await item.screenshot({ path: join(root, 'docs', 'console-policy-activation.png') });

  // Break-glass by dave (L4), used by two transfers: two reviews; bob closes one on his page.
  const daveKey = generateSigningKey();
  const added = await gate.core.gate.admin(
    'approvers-add',
    { name: 'dave', roles: ['L4'], tenants: ['acme'], public_jwk: { ...daveKey.publicJwk } },
    auth,
  );
  if (added.status !== 201) throw new Error(JSON.stringify(added.body));
  const glass = {
    approver: 'dave',
    tenant: 'acme',
    tool: 'transfer_funds',
    reason_category: 'incident',
    reason: 'payroll outage INC-7: the treasury approvers are unreachable',
    ttl_sec: 600,
    timestamp: new Date().toISOString(),
  };
  const granted = await fetch(`${gate.url}/v1/break-glass`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ statement: glass, signature: signBreakGlass(daveKey, glass) }),
  });
  if (granted.status !== 201) throw new Error(await granted.text());
  for (const amount of [4200, 3900]) {
    const used = await agent.call('transfer_funds', {
      from_account: 'acct_ops',
      to_account: 'acct_payroll',
      amount,
      currency: 'USD',
    });
    if (used.outcome !== 'executed') throw new Error(JSON.stringify(used));
  }
  await bob.click('#back');
  await bob.waitForSelector('#inbox');
  // The Break-glass page, filled in (bob holds no L4/L5 role: the gate would refuse him).
  await bob.click('#nav-break-glass');
  await bob.waitForSelector('#bg-form');
  await bob.fill('#bg-tool', 'transfer_funds');
  await bob.fill('#bg-reason', 'payroll outage INC-7: the treasury approvers are unreachable');
  await bob.fill('#bg-ttl', '600');
  await bob.screenshot({ path: join(root, 'docs', 'console-break-glass.png'), fullPage: true });
  await bob.click('#nav-inbox');
  await bob.waitForSelector('#inbox');
  await bob.click('#nav-reviews');
  await bob.waitForSelector('#reviews');
  await bob.locator('article.review.open button.close-review').last().click();
  await bob.fill('#review-notes', 'INC-7 postmortem: payroll run verified against the bank statement');
  await bob.click('#review-sign-submit');
  await bob.locator('#status', { hasText: /Review closed/ }).waitFor();
  await bob.screenshot({ path: join(root, 'docs', 'console-reviews.png'), fullPage: true });

  // The operator's pages.
  const opContext = await browser.newContext({
    viewport: { width: 1100, height: 900 },
    deviceScaleFactor: 1,
  });
  const op = await opContext.newPage();
  await op.goto(`${gate.url}/console/operator.html`);
  await op.fill('#operator-token', readOperatorToken(dir));
  await op.click('#operator-sign-in-submit');
  await op.waitForSelector('#incident');
  await op.fill('#quarantine-target', 'sess-42');
  await op.click('#quarantine-on');
  await op.fill('#confirm-text', 'sess-42');
  await op.fill('#confirm-reason', 'read untrusted mail, then asked for a transfer');
  await op.click('#confirm-submit');
  await op.locator('ul.quarantined-sessions').waitFor();
  await op.fill('#lockdown-target', 'acme');
  await op.click('#lockdown-on');
  await op.fill('#confirm-text', 'acme');
  await op.fill('#confirm-reason', 'incident 7: suspected key leak');
  await op.screenshot({ path: join(root, 'docs', 'console-operator-confirm.png') });
  await op.click('#confirm-cancel');
  await op.screenshot({ path: join(root, 'docs', 'console-operator-incident.png'), fullPage: true });
  await op.click('#nav-ledger');
  await op.waitForSelector('#checkpoint');
  await op.screenshot({ path: join(root, 'docs', 'console-operator-ledger.png'), fullPage: true });
  await op.click('#nav-policy');
  await op.waitForSelector('#policy');
  await op.locator('button.pending-diff').first().click();
  await op.locator('#policy-diff').waitFor();
  await op.screenshot({ path: join(root, 'docs', 'console-operator-policy.png'), fullPage: true });
  await op.click('#nav-people');
  await op.waitForSelector('#people');
  await op.screenshot({ path: join(root, 'docs', 'console-operator-people.png'), fullPage: true });
  await op.click('#nav-break-glass');
  await op.waitForSelector('#break-glass');
  await op.screenshot({ path: join(root, 'docs', 'console-operator-break-glass.png'), fullPage: true });
} finally {
  await browser.close();
  await gate.close();
  rmSync(dir, { recursive: true, force: true });
}
