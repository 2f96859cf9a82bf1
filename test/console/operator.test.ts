/**
 * The console's operator pages (docs/console.md "Operator pages"; OE-INV-025 incident response,
 * OE-INV-020 policy activation, FC-INV-5): an operator signs in with the operator token, engages
 * the kill switch only after typing the confirmation, the ledger records it and calls are refused;
 * the ledger page checks the signed checkpoint in the browser; an approver sees what a policy
 * activation changes (the diff, not two hashes), with markup in the bundle shown as text; operator
 * and approver sessions never stand in for each other; a cross-origin change is refused; tenant
 * scope is enforced by the gate.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOperatorConsole } from '../../src/console/index.js';
import { policyPagesFor, readOperatorToken } from '../../src/embedded/index.js';
import { isDeny, sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import { entriesOf } from '../control-plane/support.js';
import {
  cookieOf,
  enrolDevice,
  ensureConsoleBuilt,
  launchBrowser,
  openPerson,
  postFromPage,
  refreshInbox,
  type Person,
} from './browser.js';

let rig: Rig;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let token: string;
const dialogs: string[] = [];
const PAYLOAD = '<img src=x onerror=alert(1)><script>alert(2)</script>';

beforeAll(async () => {
  ensureConsoleBuilt();
  rig = await startRig({ policy_activation: { approvals: 1, roles: [] } });
  token = readOperatorToken(rig.dir);
  browser = await launchBrowser();
  context = await browser.newContext();
  page = await context.newPage();
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await rig?.close();
});

/** The operator's page as a Person, for the page helpers. */
const operatorPerson = (): Person => ({ name: 'operator', context, page, dialogs });

async function killSwitchEntries(): Promise<unknown[]> {
  await rig.instance.core.ledger.settled();
  return (await entriesOf(rig.instance.core.ledger)).filter((e) => e.type === 'admin.kill_switch');
}

describe('console operator pages', { timeout: 180_000 }, () => {
  it('an operator signs in with the token and engages the kill switch only once confirmed; the ledger records it', async () => {
    await page.goto(`${rig.instance.url}/console/operator.html`);
    await page.fill('#operator-token', 'not-the-token-0123456789');
    await page.click('#operator-sign-in-submit');
    await page.locator('#status', { hasText: 'ERR_UNAUTHENTICATED' }).waitFor();

    await page.fill('#operator-token', token);
    await page.click('#operator-sign-in-submit');
    await page.waitForSelector('#incident');
    // The token is not kept by the page: not in the field, the cookie or the browser's storage.
    const cookie = await cookieOf(operatorPerson());
    expect(cookie).not.toContain(token);
    const stored = await page.evaluate<string>(
      'JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])',
    );
    expect(stored).not.toContain(token);
    expect(await page.content()).not.toContain(token);
    expect(await page.locator('#kill-switch-state').textContent()).toBe('released');

    // A confirmation that does not name the target changes nothing, in the page and at the gate.
    const before = (await killSwitchEntries()).length;
    await page.click('#kill-switch-toggle');
    await page.fill('#confirm-text', 'yes');
    await page.click('#confirm-submit');
    await page.locator('#status', { hasText: 'to confirm' }).waitFor();
    await page.click('#confirm-cancel');
    const forged = await postFromPage(
      operatorPerson(),
      'operator/incident/kill-switch',
      JSON.stringify({ on: true, confirm: 'yes' }),
    );
    expect([forged.status, forged.body['code']]).toEqual([400, 'ERR_REQUEST_MALFORMED']);
    expect(await killSwitchEntries()).toHaveLength(before);

    await page.click('#kill-switch-toggle');
    await page.fill('#confirm-text', 'engage');
    await page.fill('#confirm-reason', 'incident 7');
    await page.click('#confirm-submit');
    await page.locator('#kill-switch-state', { hasText: 'ENGAGED' }).waitFor();
    expect(await page.locator('#status').textContent()).toMatch(/Done \(ok, ledger entry #\d+\)/);
    const entries = (await killSwitchEntries()) as { payload: Record<string, unknown> }[];
    expect(entries).toHaveLength(before + 1);
    expect(entries.at(-1)?.payload).toMatchObject({ engaged: true, reason: 'incident 7' });
    const refused = await rig
      .agent()
      .call('transfer_funds', { from_account: 'a', to_account: 'b', amount: 1, currency: 'USD' });
    expect(refused.outcome === 'deny' && refused.code).toBe('ERR_KILL_SWITCH');

    await page.click('#kill-switch-toggle');
    await page.fill('#confirm-text', 'release');
    await page.click('#confirm-submit');
    await page.locator('#kill-switch-state', { hasText: 'released' }).waitFor();
    expect(await killSwitchEntries()).toHaveLength(before + 2);

    // The ledger page: the latest checkpoint's signature checked in this browser.
    await page.click('#nav-ledger');
    await page.waitForSelector('#checkpoint');
    expect(await page.locator('#checkpoint-check .check.ok').count()).toBe(1);
    expect(await page.locator('#checkpoint .root dd').textContent()).toMatch(/^[0-9a-f]{64}$/);
    // The export downloads, and the download is ledgered first (audit.export).
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#ledger-export')]);
    expect(download.suggestedFilename()).toMatch(/^failclosed-ledger-\d+\.ndjson$/);
    const first = (await readFile((await download.path()) ?? '', 'utf8')).split('\n')[0] ?? '';
    expect(Object.keys(JSON.parse(first) as object).length).toBeGreaterThan(0);
    await rig.instance.core.ledger.settled();
    const exports = (await entriesOf(rig.instance.core.ledger)).filter((e) => e.type === 'audit.export');
    expect(exports.at(-1)?.actor).toMatchObject({ role: 'operator' });
    expect(dialogs).toEqual([]);
  });

  it('an approver sees what a policy activation changes, markup shown as text; sessions do not cross', async () => {
    const active = rig.instance.core.bundles.active();
    if (isDeny(active)) throw new Error('no active bundle');
    const doc = active.bundle.document;
    const next = {
      ...doc,
      policies: {
        ...doc.policies,
        'xss-probe': `// ${PAYLOAD}\n@reason("${PAYLOAD}")\nforbid (principal, action, resource)\nunless { principal in resource };\n`,
      },
    };
    const asked = await rig.operator('policy-activate', { bundle: JSON.stringify(next), reason: 'roll out' });
    expect((asked.body as Record<string, unknown>)['code'], JSON.stringify(asked.body)).toBe(
      'ERR_APPROVAL_PENDING',
    );
    const id = String((asked.body as Record<string, unknown>)['decision_id']);

    const ann = await openPerson(browser, rig, 'ann');
    const invited = await rig.cli('approvers', 'invite', 'ann', '--role', 'ops', '--all-tenants');
    expect(invited.code, invited.err).toBe(0);
    const code = (JSON.parse(invited.out.slice(0, invited.out.indexOf('\n}\n') + 2)) as { code: string })
      .code;
    const kid = await enrolDevice(ann, code);
    expect((await rig.cli('approvers', 'confirm', 'ann', '--kid', kid)).code).toBe(0);
    await ann.page.click('#device-sign-in');
    await ann.page.waitForSelector('#inbox');
    await refreshInbox(ann);

    const card = ann.page.locator(`article.approval[data-decision-id="${id}"]`);
    const diff = (await card.locator('.policy-diff pre.diff').textContent()) ?? '';
    expect(diff).toContain('xss-probe');
    expect(diff).toContain(PAYLOAD);
    expect(await ann.page.locator('main img, main script').count()).toBe(0);
    expect(ann.dialogs).toEqual([]);

    // An approver session is no operator session, and an operator session no approver session.
    const asApprover = await postFromPage(
      ann,
      'operator/incident/kill-switch',
      JSON.stringify({ on: true, confirm: 'engage' }),
    );
    expect([asApprover.status, asApprover.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    const read = await ann.page.evaluate<number>(
      "fetch('/console/api/operator/incident').then((r) => r.status)",
    );
    expect(read).toBe(401);
    const inbox = await page.evaluate<number>("fetch('/console/api/inbox').then((r) => r.status)");
    expect(inbox).toBe(401);
    expect((await rig.instance.core.governance.snapshot()).kill_switch).toBe(false);
    await ann.context.close();

    // The operator's policy page: the waiting activation with its diff, and a pasted bundle's diff.
    await page.click('#nav-policy');
    const waiting = page.locator(`article.pending-activation[data-decision-id="${id}"]`);
    await waiting.locator('button.pending-diff').click();
    expect(await waiting.locator('#policy-diff pre.diff').textContent()).toContain(PAYLOAD);
    await page.fill('#bundle-text', JSON.stringify(next));
    await page.click('#bundle-diff');
    expect(await page.locator('#policy-output pre.diff').textContent()).toContain('xss-probe');
    await page.fill('#bundle-text', '{"format": 1}');
    await page.click('#bundle-diff');
    expect(await page.locator('#policy-diff-error').textContent()).toContain('ERR_POLICY_BUNDLE_INVALID');
    expect(await page.locator('main img, main script').count()).toBe(0);
  });

  it('registers and revokes a client from the clients page; a name with markup is refused and shown as text', async () => {
    await page.click('#nav-people');
    await page.waitForSelector('#people');
    const register = async (name: string): Promise<void> => {
      await page.click('#client-register');
      await page.fill('#client-name', name);
      await page.fill('#client-tenant', 'acme');
      await page.fill('#client-jwk', JSON.stringify(generateSigningKey().publicJwk));
      await page.evaluate("document.getElementById('status').textContent = ''");
      await page.click('#people-submit');
      await page.locator('#status', { hasText: /\S/ }).waitFor();
    };
    await register(PAYLOAD);
    expect(await page.locator('#status').textContent()).toContain('ERR_REQUEST_MALFORMED');
    expect(await page.locator('#status').textContent()).toContain('Refused');
    await register('probe-agent');
    const card = page.locator('article.client[data-name="probe-agent"]');
    await card.waitFor();
    await card.locator('button.revoke').click();
    await page.fill('#confirm-text', 'probe-agent');
    await page.click('#people-submit');
    await page.locator('article.client[data-name="probe-agent"] h4', { hasText: 'revoked' }).waitFor();
    await rig.instance.core.ledger.settled();
    const revoked = (await entriesOf(rig.instance.core.ledger)).filter((e) => e.type === 'admin.key_revoked');
    expect(revoked.at(-1)?.payload).toMatchObject({ client: 'probe-agent' });
    await page.click('#nav-break-glass');
    await page.waitForSelector('#break-glass');
    expect(await page.locator('main img, main script').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  it('refuses a cross-origin change with the operator’s cookie, and keeps an operator to its tenants', async () => {
    const cookie = await cookieOf(operatorPerson());
    for (const origin of ['http://evil.example', 'http://127.0.0.1:1']) {
      const r = await fetch(`${rig.instance.url}/console/api/operator/incident/kill-switch`, {
        method: 'POST',
        headers: { cookie, origin, 'content-type': 'application/json' },
        body: JSON.stringify({ on: true, confirm: 'engage' }),
      });
      expect([r.status, ((await r.json()) as Record<string, unknown>)['code']]).toEqual([
        403,
        'ERR_ORIGIN_FORBIDDEN',
      ]);
    }
    expect((await rig.instance.core.governance.snapshot()).kill_switch).toBe(false);

    // An operator of one tenant (as the registry would resolve it), over the real actions.
    const olga = {
      name: 'olga',
      tenants: ['acme'],
      token_sha256: sha256Hex('acme-operator-token-0123'),
      oidc: null,
    };
    const scoped = createOperatorConsole({
      operators: {
        byToken: (sha) => Promise.resolve(sha === olga.token_sha256 ? olga : undefined),
        bySubject: () => Promise.resolve(undefined),
        named: (n) => Promise.resolve(n === olga.name ? olga : undefined),
      },
      runAdmin: (person, action, body) => rig.instance.core.operator.run(action, body, person),
      incidentState: () => rig.instance.core.governance.snapshot(),
      sessions: rig.instance.core.console.store,
      policy: policyPagesFor(rig.instance.core.bundles, rig.instance.core.approvals.service),
      now: rig.now,
    });
    const signedIn = await scoped.route('POST', 'sign-in', { token: 'acme-operator-token-0123' }, undefined);
    if (isDeny(signedIn) || signedIn.cookie === undefined) throw new Error('sign-in failed');
    const as = (route: string, body: Record<string, string | boolean>) =>
      scoped.route('POST', route, body, signedIn.cookie);
    expect(await as('incident/kill-switch', { on: true, confirm: 'engage' })).toMatchObject({
      code: 'ERR_FORBIDDEN',
    });
    expect(await as('incident/lockdown', { tenant: 'other', on: true, confirm: 'other' })).toMatchObject({
      code: 'ERR_FORBIDDEN',
    });
    expect(await as('incident/quarantine', { session: 's1', on: true, confirm: 's1' })).toMatchObject({
      code: 'ERR_FORBIDDEN',
    });
    expect(await as('incident/lockdown', { tenant: 'acme', on: true, confirm: 'acme' })).toMatchObject({
      status: 200,
    });
    expect((await rig.instance.core.governance.snapshot()).locked_tenants).toEqual(['acme']);
    expect(await as('incident/lockdown', { tenant: 'acme', on: false, confirm: 'acme' })).toMatchObject({
      status: 200,
    });
    // Another tenant's clients are neither listed nor changed; bundles are for every-tenant operators.
    const other = await rig.operator('clients-add', {
      name: 'globex-agent',
      tenant: 'globex',
      public_jwk: { ...generateSigningKey().publicJwk },
    });
    expect(other.status).toBe(201);
    const people = await scoped.route('GET', 'people', {}, signedIn.cookie);
    if (isDeny(people)) throw new Error(people.code);
    const listed = JSON.stringify(people.body);
    expect(listed).not.toContain('globex-agent');
    expect(await as('clients/revoke', { name: 'globex-agent', confirm: 'globex-agent' })).toMatchObject({
      code: 'ERR_CLIENT_UNKNOWN',
    });
    expect(await scoped.route('GET', 'policy', {}, signedIn.cookie)).toMatchObject({
      code: 'ERR_FORBIDDEN',
    });
    // Its session ends after 15 minutes unused (the injected clock).
    rig.advance(15 * 60_000);
    expect(await scoped.route('GET', 'incident', {}, signedIn.cookie)).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
    });
    // Its session is not the bootstrap console's, nor an approver's.
    expect(await scoped.route('GET', 'incident', {}, 'A'.repeat(43))).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
    });
  });

  it('a session is kept in the store: signed in through one gate, signed in and out through another on it', async () => {
    const olaf = {
      name: 'olaf',
      tenants: '*' as const,
      token_sha256: sha256Hex('olaf-operator-token-0123'),
      oidc: null,
    };
    // Two gates' operator consoles over one console store, as replicas on one database are.
    const replica = () =>
      createOperatorConsole({
        operators: {
          byToken: (sha) => Promise.resolve(sha === olaf.token_sha256 ? olaf : undefined),
          bySubject: () => Promise.resolve(undefined),
          named: (n) => Promise.resolve(n === olaf.name ? olaf : undefined),
        },
        runAdmin: (person, action, body) => rig.instance.core.operator.run(action, body, person),
        incidentState: () => rig.instance.core.governance.snapshot(),
        sessions: rig.instance.core.console.store,
        now: rig.now,
      });
    const [a, b] = [replica(), replica()];
    const signedIn = await a.route('POST', 'sign-in', { token: 'olaf-operator-token-0123' }, undefined);
    if (isDeny(signedIn) || signedIn.cookie === undefined) throw new Error('sign-in failed');
    expect(await b.route('GET', 'me', {}, signedIn.cookie)).toMatchObject({
      status: 200,
      body: { name: 'olaf', method: 'token' },
    });
    // A gate whose clock is a minute behind the one that signed in still holds the session; one
    // ten minutes behind does not (a clock set back, or a row from the future).
    const behind = (ms: number) =>
      createOperatorConsole({
        operators: {
          byToken: () => Promise.resolve(undefined),
          bySubject: () => Promise.resolve(undefined),
          named: (n) => Promise.resolve(n === olaf.name ? olaf : undefined),
        },
        runAdmin: (person, action, body) => rig.instance.core.operator.run(action, body, person),
        incidentState: () => rig.instance.core.governance.snapshot(),
        sessions: rig.instance.core.console.store,
        now: () => rig.now() - ms,
      });
    expect(await behind(60_000).route('GET', 'me', {}, signedIn.cookie)).toMatchObject({ status: 200 });
    expect(await behind(10 * 60_000).route('GET', 'me', {}, signedIn.cookie)).toMatchObject({
      code: 'ERR_UNAUTHENTICATED',
    });
    const again = await a.route('POST', 'sign-in', { token: 'olaf-operator-token-0123' }, undefined);
    if (isDeny(again) || again.cookie === undefined) throw new Error('sign-in failed');
    await b.signOut(again.cookie);
    expect(await a.route('GET', 'incident', {}, again.cookie)).toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
  });
});
