// @ts-check
// Screenshots of the console for docs/ (docs/console.md): an embedded gate in a temporary data
// directory, two approvers enrolled in their own browser profiles, a tainted session's transfer
// waiting for them, then the inbox, the approval dialog and the evidence page once it ran. Run
// after `npm run build`:
//   node scripts/console-screenshots.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createClient } from '../dist/src/client/index.js';
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
  /** @param {string} name */
  const enrol = async (name) => {
    const invited = await gate.core.gate.admin(
      'approvers-invite',
      { name, roles: ['treasury'], tenants: ['acme'] },
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
} finally {
  await browser.close();
  await gate.close();
  rmSync(dir, { recursive: true, force: true });
}
