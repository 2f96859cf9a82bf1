/**
 * The console refuses what it must (docs/console.md "Security model", OE-INV-019/020, L7 Identity
 * & Signing): script and HTML from agents and approvers render inert; cross-site requests, a
 * framed console, an expired session, a replayed submission, an approver of another tenant, the
 * requesting agent's owner and an unconfirmed device key are refused with their denial codes.
 * One browser, one gate for the file; one browser context per person.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import {
  cookieOf,
  decideInBrowser,
  enrolDevice,
  ensureConsoleBuilt,
  invite,
  launchBrowser,
  onboard,
  openPerson,
  refreshInbox,
  postFromPage,
  submitFromPage,
  type Person,
} from './browser.js';

let rig: Rig;
let browser: Browser;
let evil: Server;
let evilUrl: string;
let alice: Person;
let bob: Person;

// No quotes: JSON text shows it unescaped, so the literal payload is what the page must show.
const PAYLOAD = '<img src=x onerror=alert(1)><script>alert(2)</script>';
const BIG = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };

beforeAll(async () => {
  ensureConsoleBuilt();
  rig = await startRig();
  browser = await launchBrowser();
  // Another origin: a page that frames the console and posts to it.
  evil = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><iframe id="f" src="${rig.instance.url}/console/"></iframe>`);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}`;
  alice = await onboard(browser, rig, 'alice', 'treasury', ['acme']);
  bob = await onboard(browser, rig, 'bob', 'treasury', ['acme']);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  evil?.close();
  await rig?.close();
});

async function pending(params: JsonObject = BIG): Promise<{ id: string; requestId: string }> {
  const r = await rig.agent().call('transfer_funds', params);
  if (r.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(r)}`);
  return { id: r.decision_id, requestId: r.request_id };
}

/** The statement an approver would sign for `id`, read from the operator's view. */
async function statementFor(
  id: string,
  approver: string,
  justification: string,
): Promise<Record<string, unknown>> {
  const shown = await rig.cli('approvals', 'show', id);
  const v = JSON.parse(shown.out) as Record<string, unknown>;
  return {
    decision_id: id,
    intent_sha256: v['intent_sha256'],
    preview_sha256: v['preview_sha256'],
    verdict: 'approve',
    justification,
    timestamp: new Date(rig.now()).toISOString(),
    approver,
  };
}

async function post(
  path: string,
  headers: Record<string, string>,
  body = '{}',
): Promise<{ status: number; code: unknown }> {
  const r = await fetch(`${rig.instance.url}/console/api/${path}`, { method: 'POST', headers, body });
  return { status: r.status, code: ((await r.json()) as Record<string, unknown>)['code'] };
}

describe('console security', { timeout: 180_000 }, () => {
  it('renders script and HTML from tool parameters and justifications as text', async () => {
    // A session that read outside text is tainted: the transfer then also needs a preview (OE-INV-018).
    const agent = rig.agent();
    expect((await agent.call('read_inbox', {}, { session: 'sess-xss' })).outcome).toBe('executed');
    const r = await agent.call('transfer_funds', { ...BIG, memo: PAYLOAD }, { session: 'sess-xss' });
    if (r.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(r)}`);
    const id = r.decision_id;
    expect(await decideInBrowser(alice, id, 'approve', PAYLOAD)).toContain('Approved');
    await refreshInbox(bob);
    const card = bob.page.locator(`article.approval[data-decision-id="${id}"]`);
    expect(await card.locator('pre.params').textContent()).toContain(PAYLOAD);
    expect(await card.locator('.justification').first().textContent()).toBe(PAYLOAD);
    expect(await card.locator('ul.changes').textContent()).toContain(PAYLOAD);
    expect(await card.locator('.why').textContent()).toContain('sess-xss');
    // Nothing was parsed as markup: no injected element, no dialog.
    expect(await bob.page.locator('main img, main script, dialog img, dialog script').count()).toBe(0);
    expect(await bob.page.locator('script:not([src])').count()).toBe(0);
    expect(bob.dialogs).toEqual([]);
    expect(alice.dialogs).toEqual([]);
    // The dialog shows the statement with the payload as text too.
    await card.locator('button.approve').click();
    await bob.page.fill('#justification', PAYLOAD);
    expect(await bob.page.locator('#statement').textContent()).toContain(
      JSON.stringify(PAYLOAD).slice(1, -1),
    );
    expect(await bob.page.locator('dialog img').count()).toBe(0);
    await bob.page.click('#cancel');
    expect(bob.dialogs).toEqual([]);
  });

  it('a client name can never carry markup: registration refuses it', async () => {
    const r = await rig.operator('clients-add', {
      name: '<img src=x onerror=alert(1)>',
      tenant: 'acme',
      public_jwk: { ...generateSigningKey().publicJwk },
    });
    expect(r.status).toBe(400);
  });

  it('refuses cross-site and non-JSON changes, a foreign Host, and changes without a session', async () => {
    const cookie = await cookieOf(alice);
    const json = { 'content-type': 'application/json', cookie };
    const origin = rig.instance.url;
    expect(await post('sign-out', { ...json, origin: 'http://evil.example' })).toEqual({
      status: 403,
      code: 'ERR_ORIGIN_FORBIDDEN',
    });
    expect(await post('sign-out', json)).toEqual({ status: 403, code: 'ERR_ORIGIN_FORBIDDEN' });
    expect(await post('sign-out', { ...json, origin, 'sec-fetch-site': 'cross-site' })).toEqual({
      status: 403,
      code: 'ERR_ORIGIN_FORBIDDEN',
    });
    expect(await post('sign-out', { ...json, origin, 'content-type': 'text/plain' })).toEqual({
      status: 400,
      code: 'ERR_REQUEST_MALFORMED',
    });
    expect(await post('enrol', { 'content-type': 'application/json', origin })).toEqual({
      status: 401,
      code: 'ERR_UNAUTHENTICATED',
    });
    const { id } = await pending();
    const s = await statementFor(id, 'alice', 'forged from elsewhere');
    expect(
      await post(
        `approvals/${id}/approve`,
        { 'content-type': 'application/json', origin },
        JSON.stringify({ statement: s, signature: 'A'.repeat(86) }),
      ),
    ).toEqual({ status: 401, code: 'ERR_UNAUTHENTICATED' });
    // Reads from another site (another port of the same host is the same site) are refused too.
    const read = await fetch(`${rig.instance.url}/console/api/inbox`, {
      headers: { cookie, 'sec-fetch-site': 'same-site' },
    });
    expect(read.status).toBe(403);
    expect(((await read.json()) as { code: string }).code).toBe('ERR_ORIGIN_FORBIDDEN');
    // DNS rebinding: fetch cannot set Host, node:http can.
    const rebound = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${rig.instance.url}/console/`);
      const req = request(
        { host: u.hostname, port: u.port, path: u.pathname, headers: { host: `evil.example:${u.port}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once('error', reject);
      req.end();
    });
    expect(rebound).toBe(403);
    // A page on another origin posting with the browser: the Strict cookie is not sent, the Origin is refused.
    const page = await alice.context.newPage();
    await page.goto(`${evilUrl}/`);
    const status = await page.evaluate<string>(
      `fetch(${JSON.stringify(`${rig.instance.url}/console/api/sign-out`)}, { method: 'POST', credentials: 'include', mode: 'no-cors', body: '{}' }).then(() => 'sent', () => 'failed')`,
    );
    expect(['sent', 'failed']).toContain(status);
    await page.close();
    // Alice is still signed in: the cross-site sign-out did nothing.
    await refreshInbox(alice);
  });

  it('cannot be framed: frame-ancestors and X-Frame-Options, and a framing page gets nothing rendered', async () => {
    const r = await fetch(`${rig.instance.url}/console/`);
    expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const page = await alice.context.newPage();
    await page.goto(`${evilUrl}/`);
    await page.waitForLoadState('load');
    const frame = page.frames().find((f) => f !== page.mainFrame());
    expect(frame).toBeDefined();
    expect(await frame!.locator('#main').count()).toBe(0);
    expect(await frame!.locator('header h1').count()).toBe(0);
    await page.close();
  });

  it('refuses a replayed approval submission, and the same signed approval under another session', async () => {
    const { id } = await pending();
    const first = await submitFromPage(alice, await statementFor(id, 'alice', 'once'));
    expect(first.status).toBe(200);
    const replayed = await postFromPage(alice, `approvals/${id}/approve`, first.sent);
    expect(replayed.body['code']).toBe('ERR_APPROVAL_DUPLICATE');
    const elsewhere = await postFromPage(bob, `approvals/${id}/approve`, first.sent);
    expect(elsewhere.body['code']).toBe('ERR_APPROVAL_INVALID');
    const shown = JSON.parse((await rig.cli('approvals', 'show', id)).out) as { votes: unknown[] };
    expect(shown.votes).toHaveLength(1);
  });

  it('evidence altered on its way to the browser fails the browser’s checks', async () => {
    const { requestId } = await pending();
    await alice.page.route('**/console/api/requests/**', async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { records: { entry: { payload: Record<string, unknown> } }[] };
      body.records[0]!.entry.payload['tool'] = 'echo';
      await route.fulfill({ response: res, json: body });
    });
    await refreshInbox(alice);
    await alice.page.fill('#evidence-id', requestId);
    await alice.page.click('#evidence-open');
    await alice.page.waitForSelector('#evidence');
    await alice.page.unroute('**/console/api/requests/**');
    expect(await alice.page.locator('#checkpoint-check .check.ok').count()).toBe(1);
    expect(await alice.page.locator('#evidence article.record').first().locator('.check.fail').count()).toBe(
      1,
    );
    await alice.page.click('#back');
    await alice.page.waitForSelector('#inbox');
  });

  it('an approver of another tenant does not see the item, and its submission is refused', async () => {
    const carol = await onboard(browser, rig, 'carol', 'treasury', ['globex']);
    const { id } = await pending();
    await refreshInbox(carol);
    expect(await carol.page.locator(`article.approval[data-decision-id="${id}"]`).count()).toBe(0);
    const r = await submitFromPage(carol, await statementFor(id, 'carol', 'not my tenant'));
    expect(r.body['code']).toBe('ERR_APPROVER_TENANT');
    const shown = JSON.parse((await rig.cli('approvals', 'show', id)).out) as { request_id: string };
    const read = await carol.page.evaluate<Record<string, unknown>>(
      `fetch('/console/api/requests/${shown.request_id}').then((r) => r.json())`,
    );
    expect(read['code']).toBe('ERR_APPROVER_TENANT');
    await carol.context.close();
  });

  it('the requesting agent’s owner is refused (ERR_APPROVAL_SELF)', async () => {
    const dave = await onboard(browser, rig, 'dave', 'treasury', ['acme']);
    const key = generateSigningKey();
    const added = await rig.operator('clients-add', {
      name: 'dave-agent',
      tenant: 'acme',
      owner: 'dave',
      public_jwk: { ...key.publicJwk },
    });
    expect(added.status).toBe(201);
    const agent = createClient({
      url: rig.instance.url,
      identity: 'dave-agent',
      tenant: 'acme',
      key,
      now: rig.now,
    });
    const r = await agent.call('transfer_funds', BIG);
    if (r.outcome !== 'pending') throw new Error('expected pending');
    expect(await decideInBrowser(dave, r.decision_id, 'approve', 'my own agent')).toContain(
      'ERR_APPROVAL_SELF',
    );
    await dave.context.close();
  });

  it('an enrolled but unconfirmed device key signs in to nothing and cannot approve', async () => {
    const erin = await openPerson(browser, rig, 'erin');
    await enrolDevice(erin, await invite(rig, 'erin', 'treasury', ['acme']));
    // A code is good once.
    const code = await invite(rig, 'frank', 'treasury', ['acme']);
    const origin = rig.instance.url;
    const headers = { 'content-type': 'application/json', origin };
    const body = JSON.stringify({ name: 'frank', code });
    expect((await post('sign-in/code', headers, body)).status).toBe(200);
    expect(await post('sign-in/code', headers, body)).toEqual({ status: 401, code: 'ERR_UNAUTHENTICATED' });

    await erin.page.click('#device-sign-in');
    await erin.page.waitForSelector('#enrolled');
    const { id } = await pending();
    const r = await submitFromPage(erin, await statementFor(id, 'erin', 'not confirmed'));
    expect(r.body['code']).toBe('ERR_APPROVER_UNKNOWN');
    const inbox = await erin.page.evaluate(`fetch('/console/api/inbox').then((r) => r.json())`);
    expect((inbox as Record<string, unknown>)['code']).toBe('ERR_APPROVER_UNKNOWN');
    // A wrong fingerprint confirms nothing.
    const wrong = await rig.cli('approvers', 'confirm', 'erin', '--kid', 'A'.repeat(43));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('ERR_KEY_INVALID');
    await erin.context.close();
  });

  it('an expired session is refused and signs the person out (injected clock)', async () => {
    await refreshInbox(alice);
    const cookie = await cookieOf(alice);
    rig.advance(16 * 60_000);
    await alice.page.click('#refresh');
    await alice.page.waitForSelector('#name');
    expect(await alice.page.locator('#status').textContent()).toContain('ERR_UNAUTHENTICATED');
    const r = await fetch(`${rig.instance.url}/console/api/inbox`, { headers: { cookie } });
    expect(r.status).toBe(401);
    // Signing in again with the device key works.
    await alice.page.fill('#name', 'alice');
    await alice.page.click('#device-sign-in');
    await alice.page.waitForSelector('#inbox');
  });

  it('never shows a fingerprint to read out when the enrolled key is not this browser’s', async () => {
    const gil = await openPerson(browser, rig, 'gil');
    const code = await invite(rig, 'gil', 'treasury', ['acme']);
    expect((await postFromPage(gil, 'sign-in/code', JSON.stringify({ name: 'gil', code }))).status).toBe(200);
    // A key made elsewhere is enrolled under the session: the gate reports its kid, not this device's.
    const other = generateSigningKey();
    const enrolled = await postFromPage(gil, 'enrol', JSON.stringify({ public_jwk: other.publicJwk }));
    expect(enrolled.status).toBe(200);
    await gil.page.reload();
    await gil.page.waitForSelector('#key-mismatch');
    expect(await gil.page.locator('#kid').count()).toBe(0);
    expect(await gil.page.locator('#main').textContent()).not.toContain(other.kid);
    await gil.context.close();
  });

  it('refuses to sign when the shown call is not the one its digests name', async () => {
    const { id } = await pending();
    // The inbox answer altered on its way: the tool shown is not the one intent_sha256 covers.
    await alice.page.route('**/console/api/inbox', async (route) => {
      const response = await route.fetch();
      const body = (await response.json()) as { approvals: Record<string, unknown>[] };
      for (const a of body.approvals) if (a['decision_id'] === id) a['tool'] = 'read_balance';
      await route.fulfill({ response, json: body });
    });
    const said = await decideInBrowser(alice, id, 'approve', 'looks harmless');
    await alice.page.unroute('**/console/api/inbox');
    expect(said).toContain('Refused to sign');
    expect(said).toContain('intent_sha256');
    const shown = JSON.parse((await rig.cli('approvals', 'show', id)).out) as Record<string, unknown>;
    expect(shown['approvals']).toEqual([]);
    expect(shown['status']).toBe('pending');
  });
});
