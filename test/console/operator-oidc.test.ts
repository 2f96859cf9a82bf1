/**
 * Operators signing in to the console through the configured identity provider (OE-INV-025
 * operators as people, L7 Identity & Signing; docs/console.md "Operator sign-in"), against a real
 * `oidc-provider`, the real gate and Chromium: an operator bound with `operators add
 * --oidc-subject` or `operators bind` signs in there and acts, ledgered with their name; an
 * unbound subject is refused; a tenant-scoped operator is held to their tenants; a bound
 * operator's token is refused by the console (the CLI keeps it) and a token session ends once the
 * binding is made; unbinding or removal ends the OIDC session at its next request; a callback
 * without this browser's pending sign-in, with another state, replayed, or from another origin is
 * refused (the relying party's nonce, PKCE, audience and signature checks: test/console/oidc.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { dataPaths, parseConfig } from '../../src/embedded/index.js';
import type { LedgerEntry } from '../../src/ledger/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import { entriesOf } from '../control-plane/support.js';
import { cookieOf, ensureConsoleBuilt, launchBrowser, postFromPage, type Person } from './browser.js';
import { freePort, startIdp, throughIdp, type Idp } from './idp.js';

const SECRET = 'console-client-secret-0123456789';
const CLIENT = 'failclosed-console';

let rig: Rig;
let browser: Browser;
let idp: Idp;
let work: string;
let operatorPage = '';

beforeAll(async () => {
  ensureConsoleBuilt();
  work = mkdtempSync(join(tmpdir(), 'fc-operator-oidc-'));
  const port = await freePort();
  const consoleUrl = `http://127.0.0.1:${port}/console/`;
  operatorPage = `${consoleUrl}operator.html`;
  idp = await startIdp({ id: CLIENT, secret: SECRET }, [consoleUrl, operatorPage]);
  rig = await startRig(
    undefined,
    (dir) => {
      const p = dataPaths(dir).config;
      const config = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      config['console'] = {
        oidc: { issuer: idp.issuer, client_id: CLIENT, client_secret: SECRET, redirect_uri: consoleUrl },
      };
      writeFileSync(p, JSON.stringify(config));
    },
    { port },
  );
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await rig?.close();
  await idp?.close();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh browser profile on the operator page. */
async function openOperatorPage(name: string): Promise<Person> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(operatorPage);
  await page.waitForSelector('#operator-token');
  return { name, context, page, dialogs };
}

/** Signs in through the identity provider as `sub`; the URL the issuer sent the browser back to. */
async function oidcSignIn(p: Person, sub: string): Promise<string> {
  await p.page.waitForSelector('#operator-oidc-sign-in');
  return throughIdp(p.page, sub, operatorPage, () => p.page.click('#operator-oidc-sign-in'));
}

const getFromPage = async (
  page: Page,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> =>
  page.evaluate(`(async () => {
    const r = await fetch(${JSON.stringify(`/console/api/${path}`)});
    return { status: r.status, body: await r.json() };
  })()`);

const post = (p: Person, path: string, body: Record<string, unknown>) =>
  postFromPage(p, path, JSON.stringify(body));

async function entries(type: string): Promise<LedgerEntry[]> {
  await rig.instance.core.ledger.settled();
  return (await entriesOf(rig.instance.core.ledger)).filter((e) => e.type === type);
}

const tokenOf = (name: string): string =>
  readFileSync(join(rig.home, 'failclosed', 'operators', `${name}.token`), 'utf8').trim();

describe('operator sign-in with OIDC', { timeout: 240_000 }, () => {
  it('a bound operator signs in at the identity provider and engages the kill switch, ledgered with their name; their token is refused by the console only', async () => {
    const added = await rig.cli(
      'operators',
      'add',
      'olivia',
      '--all-tenants',
      '--oidc-subject',
      'olivia-sub',
    );
    expect(added.code, added.err).toBe(0);
    expect(JSON.parse(added.out)).toMatchObject({ name: 'olivia', oidc: { subject: 'olivia-sub' } });
    const [addedEntry] = (await entries('admin.operator')).filter((e) => e.payload['operator'] === 'olivia');
    expect(addedEntry?.payload).toMatchObject({
      change: 'added',
      oidc: { issuer: idp.issuer, subject: 'olivia-sub' },
    });
    expect(addedEntry?.actor).toEqual({ id: 'operator', role: 'operator' });

    const p = await openOperatorPage('olivia');
    expect(await p.page.locator('#operator-oidc-sign-in').textContent()).toBe(
      `Sign in with ${new URL(idp.issuer).host}`,
    );
    const back = await oidcSignIn(p, 'olivia-sub');
    expect(new URL(back).searchParams.get('code')).toBeTruthy();
    await p.page.waitForSelector('#incident');
    // The code is gone from the address bar once handed to the gate.
    expect(p.page.url()).toBe(operatorPage);
    const me = await getFromPage(p.page, 'operator/me');
    expect(me.body).toMatchObject({ kind: 'operator', name: 'olivia', method: 'oidc', tenants: '*' });

    const before = (await entries('admin.kill_switch')).length;
    await p.page.click('#kill-switch-toggle');
    await p.page.fill('#confirm-text', 'engage');
    await p.page.fill('#confirm-reason', 'oidc incident');
    await p.page.click('#confirm-submit');
    await p.page.locator('#kill-switch-state', { hasText: 'ENGAGED' }).waitFor();
    const engaged = await entries('admin.kill_switch');
    expect(engaged).toHaveLength(before + 1);
    expect(engaged.at(-1)).toMatchObject({
      actor: { id: 'olivia', role: 'operator' },
      payload: { engaged: true, reason: 'oidc incident' },
    });
    const refused = await rig
      .agent()
      .call('transfer_funds', { from_account: 'a', to_account: 'b', amount: 1, currency: 'USD' });
    expect(refused.outcome === 'deny' && refused.code).toBe('ERR_KILL_SWITCH');
    const released = await post(p, 'operator/incident/kill-switch', { on: false, confirm: 'release' });
    expect(released.status).toBe(200);
    expect((await entries('admin.kill_switch')).at(-1)?.actor).toEqual({ id: 'olivia', role: 'operator' });

    // The same callback again: the pending sign-in is spent (and its state used once).
    const q = new URL(back).searchParams;
    const replay = await post(p, 'operator/sign-in/oidc/callback', {
      code: q.get('code'),
      state: q.get('state'),
      iss: q.get('iss'),
    });
    expect([replay.status, replay.body['code']]).toEqual([401, 'ERR_OIDC_INVALID']);

    // The token of a bound operator is refused by the console; the CLI still takes it.
    const other = await openOperatorPage('olivia-token');
    await other.page.fill('#operator-token', tokenOf('olivia'));
    await other.page.click('#operator-sign-in-submit');
    await other.page.locator('#status', { hasText: 'ERR_UNAUTHENTICATED' }).waitFor();
    expect((await getFromPage(other.page, 'operator/me')).status).toBe(401);
    const cli = await rig.cli('admin', 'lockdown', 'acme', 'off', '--operator', 'olivia');
    expect(cli.code, cli.err).toBe(0);
    expect(p.dialogs).toEqual([]);
    await other.context.close();
    await p.context.close();
  });

  it('an unbound subject is refused; a tenant-scoped operator is held to their tenants; binding ends their token session', async () => {
    const mallory = await openOperatorPage('mallory');
    await oidcSignIn(mallory, 'mallory-sub');
    await mallory.page.locator('#status', { hasText: 'ERR_UNAUTHENTICATED' }).waitFor();
    expect((await getFromPage(mallory.page, 'operator/me')).status).toBe(401);
    expect(await cookieOf(mallory)).not.toContain('failclosed-console=');
    await mallory.context.close();

    expect((await rig.cli('operators', 'add', 'tess', '--tenant', 'acme')).code).toBe(0);
    // Signed in with the token before the binding: that session ends once the binding is made.
    const byToken = await openOperatorPage('tess-token');
    await byToken.page.fill('#operator-token', tokenOf('tess'));
    await byToken.page.click('#operator-sign-in-submit');
    await byToken.page.waitForSelector('#incident');
    expect((await getFromPage(byToken.page, 'operator/me')).body['method']).toBe('token');
    const bound = await rig.cli('operators', 'bind', 'tess', 'tess-sub', '--reason', 'sso');
    expect(bound.code, bound.err).toBe(0);
    expect((await entries('admin.operator')).at(-1)).toMatchObject({
      actor: { id: 'operator', role: 'operator' },
      payload: {
        operator: 'tess',
        change: 'bound',
        oidc: { issuer: idp.issuer, subject: 'tess-sub' },
        reason: 'sso',
      },
    });
    const gone = await getFromPage(byToken.page, 'operator/me');
    expect([gone.status, gone.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    await byToken.context.close();
    // A second binding, or the identity of another operator, is refused; nothing is ledgered.
    const count = (await entries('admin.operator')).length;
    expect((await rig.cli('operators', 'bind', 'tess', 'other-sub')).code).toBe(1);
    expect(
      (await rig.cli('operators', 'add', 'twin', '--tenant', 'acme', '--oidc-subject', 'tess-sub')).code,
    ).toBe(1);
    expect(await entries('admin.operator')).toHaveLength(count);

    const tess = await openOperatorPage('tess');
    await oidcSignIn(tess, 'tess-sub');
    await tess.page.waitForSelector('#incident');
    const kill = await post(tess, 'operator/incident/kill-switch', { on: true, confirm: 'engage' });
    expect([kill.status, kill.body['code']]).toEqual([403, 'ERR_FORBIDDEN']);
    const globex = await post(tess, 'operator/incident/lockdown', {
      tenant: 'globex',
      on: true,
      confirm: 'globex',
    });
    expect([globex.status, globex.body['code']]).toEqual([403, 'ERR_FORBIDDEN']);
    expect((await rig.instance.core.governance.snapshot()).locked_tenants).toEqual([]);
    const acme = await post(tess, 'operator/incident/lockdown', {
      tenant: 'acme',
      on: true,
      confirm: 'acme',
    });
    expect(acme.status).toBe(200);
    expect((await entries('admin.lockdown')).at(-1)).toMatchObject({
      actor: { id: 'tess', role: 'operator' },
      tenant: 'acme',
    });
    expect(
      (await post(tess, 'operator/incident/lockdown', { tenant: 'acme', on: false, confirm: 'acme' })).status,
    ).toBe(200);

    // Unbinding ends the OIDC session at its next request; the token signs in again.
    const unbound = await rig.cli('operators', 'unbind', 'tess');
    expect(unbound.code, unbound.err).toBe(0);
    expect((await entries('admin.operator')).at(-1)?.payload).toMatchObject({
      operator: 'tess',
      change: 'unbound',
      oidc: { subject: 'tess-sub' },
    });
    const ended = await post(tess, 'operator/incident/lockdown', {
      tenant: 'acme',
      on: true,
      confirm: 'acme',
    });
    expect([ended.status, ended.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    expect((await rig.instance.core.governance.snapshot()).locked_tenants).toEqual([]);
    // Bound to the same subject again: the old session stays ended (the binding is a new one).
    expect((await rig.cli('operators', 'bind', 'tess', 'tess-sub')).code).toBe(0);
    expect((await getFromPage(tess.page, 'operator/me')).status).toBe(401);
    await tess.context.close();
  });

  it('removing a bound operator ends their session; the listing shows bindings, never tokens', async () => {
    expect(
      (await rig.cli('operators', 'add', 'rita', '--all-tenants', '--oidc-subject', 'rita-sub')).code,
    ).toBe(0);
    const rita = await openOperatorPage('rita');
    await oidcSignIn(rita, 'rita-sub');
    await rita.page.waitForSelector('#incident');
    const listed = await rig.cli('operators', 'list');
    expect(listed.out).toContain('"subject": "rita-sub"');
    expect(listed.out).not.toContain(tokenOf('rita'));
    expect((await rig.cli('operators', 'remove', 'rita')).code).toBe(0);
    const r = await getFromPage(rita.page, 'operator/me');
    expect([r.status, r.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);
    await rita.context.close();
  });

  it('a callback without this browser’s pending sign-in, with another state, or from another origin is refused', async () => {
    const p = await openOperatorPage('nobody');
    const forged = { code: 'c0de', state: 'A'.repeat(43), iss: idp.issuer };
    const none = await post(p, 'operator/sign-in/oidc/callback', forged);
    expect([none.status, none.body['code']]).toEqual([401, 'ERR_OIDC_INVALID']);
    // A sign-in pending in this browser, answered with another state (CSRF, RFC 6749 §10.12).
    const started = await post(p, 'operator/sign-in/oidc/start', {});
    expect(started.status).toBe(200);
    expect(String(started.body['authorization_url'])).toContain(
      `redirect_uri=${encodeURIComponent(operatorPage)}`,
    );
    expect(String(started.body['authorization_url'])).toContain('code_challenge_method=S256');
    const wrong = await post(p, 'operator/sign-in/oidc/callback', forged);
    expect([wrong.status, wrong.body['code']]).toEqual([401, 'ERR_OIDC_INVALID']);
    // From another origin: refused before the API is reached.
    const res = await fetch(`${rig.instance.url}/console/api/operator/sign-in/oidc/callback`, {
      method: 'POST',
      headers: {
        origin: 'http://evil.example',
        'content-type': 'application/json',
        cookie: await cookieOf(p),
      },
      body: JSON.stringify(forged),
    });
    expect([res.status, ((await res.json()) as Record<string, unknown>)['code']]).toEqual([
      403,
      'ERR_ORIGIN_FORBIDDEN',
    ]);
    expect((await getFromPage(p.page, 'operator/me')).status).toBe(401);
    await p.context.close();
  });

  it('every sign-in attempt is ledgered console.sign_in; failed ones past the limit are refused ERR_SIGN_IN_RATE_LIMITED per address', async () => {
    const signIns = await entries('console.sign_in');
    // Earlier in this file: olivia through the identity provider, her token refused, mallory's subject refused.
    expect(signIns).toContainEqual(
      expect.objectContaining({
        actor: { id: 'olivia', role: 'operator' },
        payload: expect.objectContaining({ kind: 'operator', method: 'oidc', outcome: 'ok', name: 'olivia' }),
      }),
    );
    expect(signIns).toContainEqual(
      expect.objectContaining({
        payload: expect.objectContaining({
          method: 'token',
          outcome: 'refused',
          code: 'ERR_UNAUTHENTICATED',
        }),
      }),
    );
    for (const e of signIns) expect(JSON.stringify(e)).not.toContain(tokenOf('olivia'));

    expect((await rig.cli('operators', 'add', 'uma', '--tenant', 'acme')).code).toBe(0);
    const p = await openOperatorPage('uma');
    const signIn = (token: string) => post(p, 'operator/sign-in', { token });
    // Wrong tokens from this address until the limit (5 in 15 minutes; earlier refusals count too).
    let tries = 0;
    let last = await signIn('wrong-token-0123456789');
    while (last.status !== 429 && tries < 6) {
      tries += 1;
      last = await signIn('wrong-token-0123456789');
    }
    expect([last.status, last.body['code']]).toEqual([429, 'ERR_SIGN_IN_RATE_LIMITED']);
    expect(tries).toBeLessThanOrEqual(5);
    // Refused before it is tried: a valid token too, and no session.
    const valid = await signIn(tokenOf('uma'));
    expect([valid.status, valid.body['code']]).toEqual([429, 'ERR_SIGN_IN_RATE_LIMITED']);
    expect((await getFromPage(p.page, 'operator/me')).status).toBe(401);
    // The limit is ledgered once per window, however many attempts it refuses.
    const limited = (await entries('console.sign_in')).filter((e) => e.payload['outcome'] === 'rate_limited');
    expect(limited).toHaveLength(1);
    expect(limited[0]?.payload).toMatchObject({ kind: 'operator', code: 'ERR_SIGN_IN_RATE_LIMITED' });
    // The window passes (the injected clock): the valid token signs in, ledgered with the person.
    rig.advance(15 * 60_000 + 1);
    expect((await signIn(tokenOf('uma'))).status).toBe(200);
    expect((await entries('console.sign_in')).at(-1)).toMatchObject({
      actor: { id: 'uma', role: 'operator' },
      payload: { kind: 'operator', method: 'token', outcome: 'ok', name: 'uma' },
    });
    await p.context.close();
  });

  it('console.sign_in_limit is parsed strictly: no setting turns the limit off', () => {
    const base = JSON.parse(readFileSync(dataPaths(rig.dir).config, 'utf8')) as Record<string, unknown>;
    const parse = (limit: unknown) =>
      parseConfig(Buffer.from(JSON.stringify({ ...base, console: { sign_in_limit: limit } })));
    expect(parse({ failures: 3, window_sec: 60 }).console?.sign_in_limit).toEqual({
      failures: 3,
      window_ms: 60_000,
    });
    for (const bad of [
      { failures: 0, window_sec: 60 },
      { failures: 3, window_sec: 0 },
      { failures: 3 },
      { failures: 3, window_sec: 60, off: true },
      { failures: 1.5, window_sec: 60 },
    ])
      expect(() => parse(bad)).toThrow(TypeError);
  });

  it('an export with the bindings and sign-in records verifies offline under the trust roots', async () => {
    const bundle = join(work, 'audit.jsonl');
    const exported = await rig.cli('ledger', 'export', '--out', bundle);
    expect(exported.code, exported.err).toBe(0);
    const text = readFileSync(bundle, 'utf8');
    expect(text).toContain('"console.sign_in"');
    expect(text).toContain('"change":"bound"');
    const trust = join(work, 'trust-roots.json');
    writeFileSync(trust, await (await fetch(new URL('/v1/trust-roots', rig.instance.url))).text());
    let out = '';
    const code = await runCli(['verify', bundle, '--trust', trust], {
      out: (t) => (out += t),
      err: (t) => (out += t),
      env: {},
    });
    expect(out).toContain('entries');
    expect(code, out).toBe(0);
  });
});
