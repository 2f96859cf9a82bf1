/**
 * The console's OIDC sign-in (OE-INV-020 "distinct humans", L7 Identity & Signing;
 * docs/console.md "OIDC sign-in") against a real identity provider run here (`oidc-provider`,
 * its own login and consent pages), the real console and Chromium: an invitation bound to an
 * issuer and subject enrols only after a sign-in there as exactly that subject, in the same
 * browser session as the code; later sign-ins need the identity provider and the device key.
 * The protocol's refusals (state, PKCE verifier, replayed code, issuer, audience, subject, nonce,
 * expiry, signature, garbage answers, the issuer down) each end with a code and no session.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, generateKeyPair, type CryptoKey } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOidcRelyingParty,
  createSqliteConsoleStore,
  openPending,
  sealPending,
} from '../../src/console/index.js';
import type { ConsoleStore, OidcConfig, OidcRelyingParty } from '../../src/console/index.js';
import { dataPaths, initDataDir, parseConfig, startEmbedded } from '../../src/embedded/index.js';
import { isDeny } from '../../src/kernel/index.js';
import { startRig, type Rig } from '../approvals/support.js';
import { ensureConsoleBuilt, launchBrowser, openPerson, postFromPage } from './browser.js';
import { freePort, startIdp, throughIdp, type Idp } from './idp.js';

const SECRET = 'console-client-secret-0123456789';
const CLIENT = 'failclosed-console';
const SEAL = Buffer.alloc(32, 7);

let rig: Rig;
let browser: Browser;
let idp: Idp;
let issuer: string;
let idpKey: CryptoKey;
let work: string;
let rpStore: ConsoleStore;
/** Where the relying party tests are sent back to: a page that answers `back` and nothing else. */
let RP_REDIRECT = '';
let rpBack: Server;

beforeAll(async () => {
  ensureConsoleBuilt();
  work = mkdtempSync(join(tmpdir(), 'fc-oidc-'));
  rpStore = createSqliteConsoleStore(join(work, 'rp.db'));
  rpBack = createServer((_req, res) => res.end('back'));
  await new Promise<void>((r) => rpBack.listen(0, '127.0.0.1', r));
  RP_REDIRECT = `http://127.0.0.1:${(rpBack.address() as AddressInfo).port}/rp/console/`;
  const port = await freePort();
  const consoleUrl = `http://127.0.0.1:${port}/console/`;
  idp = await startIdp({ id: CLIENT, secret: SECRET }, [consoleUrl, RP_REDIRECT]);
  issuer = idp.issuer;
  idpKey = idp.key;
  rig = await startRig(
    undefined,
    (dir) => {
      const p = dataPaths(dir).config;
      const config = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      config['console'] = {
        oidc: { issuer, client_id: CLIENT, client_secret: SECRET, redirect_uri: consoleUrl },
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
  await rpStore?.close();
  await idp?.close();
  await new Promise((r) => rpBack?.close(r));
  rmSync(work, { recursive: true, force: true });
});

const ledgerOf = async (): Promise<string> => {
  const out = join(rig.dir, `audit-${Date.now()}.json`);
  expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
  return readFileSync(out, 'utf8');
};

const publicJwk = () => {
  const { publicKey } = generateKeyPairSync('ed25519');
  return publicKey.export({ format: 'jwk' });
};

const getFromPage = async (
  page: Page,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> =>
  page.evaluate(`(async () => {
    const r = await fetch(${JSON.stringify(`/console/api/${path}`)});
    return { status: r.status, body: await r.json() };
  })()`);

describe('console sign-in with OIDC', { timeout: 180_000 }, () => {
  it('a bound approver enrols after signing in as the invited subject, and later needs the issuer and the device key', async () => {
    const r = await rig.cli(
      'approvers',
      'invite',
      'alice',
      '--role',
      'treasury',
      '--tenant',
      'acme',
      '--oidc-subject',
      'alice-sub',
    );
    expect(r.code, r.err).toBe(0);
    const code = (JSON.parse(r.out.slice(0, r.out.indexOf('\n}\n') + 2)) as { code: string }).code;
    const p = await openPerson(browser, rig, 'alice');
    await p.page.fill('#name', 'alice');
    await p.page.fill('#code', code);
    await p.page.click('#code-sign-in');
    await p.page.waitForSelector('#oidc-step');
    // The code alone enrols nothing: the invitation is bound to an identity not proven yet.
    const early = await postFromPage(p, 'enrol', JSON.stringify({ public_jwk: publicJwk() }));
    expect([early.status, early.body['code']]).toEqual([401, 'ERR_UNAUTHENTICATED']);

    await throughIdp(p.page, 'alice-sub', rig.instance.url, () => p.page.click('#oidc-sign-in'));
    const kid = (await p.page.locator('#kid').textContent()) ?? '';
    expect(kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The code is gone from the address bar once handed to the gate.
    expect(p.page.url()).toBe(`${rig.instance.url}/console/`);
    const confirmed = await rig.cli('approvers', 'confirm', 'alice', '--kid', kid);
    expect(confirmed.code, confirmed.err).toBe(0);

    // The device key alone: the inbox stays shut until the identity provider says it is alice.
    await p.page.click('#device-sign-in');
    await p.page.waitForSelector('#oidc-step');
    const shut = await getFromPage(p.page, 'inbox');
    expect([shut.status, shut.body['code']]).toEqual([401, 'ERR_APPROVER_UNKNOWN']);
    await throughIdp(p.page, 'alice-sub', rig.instance.url, () => p.page.click('#oidc-sign-in'));
    await p.page.waitForSelector('#inbox');
    const me = await getFromPage(p.page, 'me');
    expect([me.body['method'], me.body['stage']]).toEqual(['key+oidc', 'confirmed']);

    // The binding is ledgered with the invitation and the enrolment.
    const bundle = await ledgerOf();
    const line = (type: string) =>
      bundle.split('\n').find((l) => l.includes(`"${type}"`) && l.includes('alice'));
    for (const type of ['admin.approver_invited', 'admin.approver_enrolled']) {
      expect(line(type)).toContain('"subject":"alice-sub"');
      expect(line(type)).toContain(`"issuer":"${issuer}"`);
    }
    expect(p.dialogs).toEqual([]);
    await p.context.close();
  });

  it('another subject at the identity provider is refused: the session ends, nothing is enrolled', async () => {
    const r = await rig.cli(
      'approvers',
      'invite',
      'bob',
      '--role',
      'treasury',
      '--tenant',
      'acme',
      '--oidc-subject',
      'bob-sub',
    );
    const bound = (JSON.parse(r.out.slice(0, r.out.indexOf('\n}\n') + 2)) as { code: string }).code;
    const p = await openPerson(browser, rig, 'bob');
    await p.page.fill('#name', 'bob');
    await p.page.fill('#code', bound);
    await p.page.click('#code-sign-in');
    await throughIdp(p.page, 'mallory', rig.instance.url, () => p.page.click('#oidc-sign-in'));
    await p.page.locator('#status', { hasText: 'ERR_UNAUTHENTICATED' }).waitFor();
    const me = await getFromPage(p.page, 'me');
    expect(me.status).toBe(401);
    expect((await rig.instance.core.console.store.person('bob'))?.public_jwk).toBeNull();
    await p.context.close();
  });
});

/** A relying party like the console's, at {@link RP_REDIRECT}, over a real store; `fetch` wrapped by `wrap`. */
function relyingParty(over: Partial<OidcConfig> = {}, wrap?: typeof fetch): OidcRelyingParty {
  return createOidcRelyingParty({
    config: { issuer, client_id: CLIENT, client_secret: SECRET, redirect_uri: RP_REDIRECT, ...over },
    now: () => Date.now(),
    useState: (id, exp, at) => rpStore.useChallenge(id, exp, at),
    sealKey: SEAL,
    timeoutMs: 2_000,
    ...(wrap === undefined ? {} : { fetch: wrap }),
  });
}

/** Sends `context` to the authorization URL, through the issuer's pages; the callback's parameters. */
async function authorize(context: BrowserContext, url: string, sub: string): Promise<URLSearchParams> {
  const page = await context.newPage();
  await throughIdp(page, sub, RP_REDIRECT, () => page.goto(url));
  const back = new URL(page.url());
  await page.close();
  return back.searchParams;
}

const urlOf = (i: string | URL | Request): string =>
  typeof i === 'string' ? i : i instanceof URL ? i.href : i.url;

const callbackOf = (q: URLSearchParams) => ({
  code: q.get('code'),
  state: q.get('state'),
  iss: q.get('iss'),
});

describe('the relying party against the real issuer', { timeout: 120_000 }, () => {
  it('exchanges a code once, with this sign-in’s state, issuer, session and PKCE verifier only', async () => {
    const rp = relyingParty();
    const context = await browser.newContext();
    const a = await rp.begin('session-a');
    if (isDeny(a)) throw new Error(a.code);
    const url = new URL(a.url);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    const q = await authorize(context, a.url, 'carol-sub');
    const cb = callbackOf(q);
    expect(cb.iss).toBe(issuer);
    const refused = async (r: Promise<unknown>) => {
      const d = await r;
      return isDeny(d) ? d.code : 'accepted';
    };
    expect(await refused(rp.finish(a.pending, 'session-a', { ...cb, state: 'x'.repeat(43) }))).toBe(
      'ERR_OIDC_INVALID',
    );
    expect(await refused(rp.finish(a.pending, 'session-a', { ...cb, iss: 'https://evil.example' }))).toBe(
      'ERR_OIDC_INVALID',
    );
    expect(await refused(rp.finish(a.pending, 'session-b', cb))).toBe('ERR_OIDC_INVALID');
    expect(await refused(rp.finish(undefined, 'session-a', cb))).toBe('ERR_OIDC_INVALID');
    expect(await rp.finish(a.pending, 'session-a', cb)).toEqual({ issuer, subject: 'carol-sub' });
    // Replayed: the same callback again.
    expect(await refused(rp.finish(a.pending, 'session-a', cb))).toBe('ERR_OIDC_INVALID');

    // A code exchanged with another verifier than its challenge's: the issuer refuses (RFC 7636 §4.6).
    const b = await rp.begin('session-a');
    if (isDeny(b)) throw new Error(b.code);
    const q2 = await authorize(context, b.url, 'carol-sub');
    const opened = openPending(SEAL, b.pending);
    if (opened === undefined) throw new Error('unsealed');
    const tampered = sealPending(SEAL, { ...opened, v: 'A'.repeat(43) });
    const t = await rp.finish(tampered, 'session-a', callbackOf(q2));
    expect(isDeny(t) && [t.code, t.reason]).toEqual([
      'ERR_OIDC_INVALID',
      'the token endpoint refused the code (invalid_grant)',
    ]);
    await context.close();
  });
});

describe('the relying party refuses forged and broken answers', () => {
  /** A relying party whose token endpoint answers `answer` (given the sign-in's nonce) instead of the issuer. */
  const withTokenAnswer = (answer: (nonce: string) => Promise<Response> | Response) => {
    let nonce = '';
    const rp = relyingParty({}, async (input, init) => {
      const u = urlOf(input);
      if (u.endsWith('/token')) return answer(nonce);
      return fetch(input, init);
    });
    return {
      async run(): Promise<string> {
        const a = await rp.begin('s');
        if (isDeny(a)) return a.code;
        const url = new URL(a.url);
        nonce = url.searchParams.get('nonce') ?? '';
        const r = await rp.finish(a.pending, 's', {
          code: 'c0de',
          state: url.searchParams.get('state'),
          iss: issuer,
        });
        return isDeny(r) ? r.code : `accepted:${r.subject}`;
      },
    };
  };
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const token = async (nonce: string, over: Record<string, unknown> = {}, key: CryptoKey = idpKey) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ nonce, sub: 'dan-sub', ...over })
      .setProtectedHeader({ alg: 'RS256', kid: 'idp-1' })
      .setIssuer(typeof over['iss'] === 'string' ? over['iss'] : issuer)
      .setAudience((over['aud'] as string | string[] | undefined) ?? CLIENT)
      .setIssuedAt(typeof over['iat'] === 'number' ? over['iat'] : now)
      .setExpirationTime(typeof over['exp'] === 'number' ? over['exp'] : now + 300)
      .sign(key);
  };

  it('accepts the issuer’s own token (the harness refuses nothing by itself)', async () => {
    expect(await withTokenAnswer(async (n) => json({ id_token: await token(n) })).run()).toBe(
      'accepted:dan-sub',
    );
  });

  it.each([
    ['another audience', { aud: 'another-app' }],
    ['several audiences, no azp', { aud: [CLIENT, 'another-app'] }],
    ['another authorized party', { azp: 'another-app' }],
    ['another issuer', { iss: 'https://evil.example' }],
    ['expired', { exp: Math.floor(Date.now() / 1000) - 120, iat: Math.floor(Date.now() / 1000) - 600 }],
    ['issued long ago', { iat: Math.floor(Date.now() / 1000) - 3600 }],
    ['another nonce', { nonce: 'n'.repeat(43) }],
  ])('refuses an ID token with %s', async (_why, over) => {
    expect(await withTokenAnswer(async (n) => json({ id_token: await token(n, over) })).run()).toBe(
      'ERR_OIDC_INVALID',
    );
  });

  it('refuses a token signed by another key, garbage, and a refusal of the code', async () => {
    const stranger = (await generateKeyPair('RS256')).privateKey;
    for (const answer of [
      async (n: string) => json({ id_token: await token(n, {}, stranger) }),
      () => json({ access_token: 'x' }),
      () => json({ id_token: 'not.a.jwt' }),
      () => new Response('<html>hello</html>', { headers: { 'content-type': 'text/html' } }),
      () => json({ error: 'invalid_grant' }, 400),
    ])
      expect(await withTokenAnswer(answer).run()).toBe('ERR_OIDC_INVALID');
  });

  it('refuses when the issuer is down or failing, and a discovery document of another issuer', async () => {
    expect(await withTokenAnswer(() => json({ error: 'server_error' }, 500)).run()).toBe(
      'ERR_OIDC_UNAVAILABLE',
    );
    expect(
      await withTokenAnswer(() => {
        throw new TypeError('connection refused');
      }).run(),
    ).toBe('ERR_OIDC_UNAVAILABLE');
    const down = relyingParty({ issuer: `http://127.0.0.1:${await freePort()}` });
    const d = await down.begin('s');
    expect(isDeny(d) && d.code).toBe('ERR_OIDC_UNAVAILABLE');
    const other = relyingParty({}, async (input, init) => {
      const r = await fetch(input, init);
      if (!urlOf(input).endsWith('/openid-configuration')) return r;
      return json({ ...((await r.json()) as object), issuer: 'https://evil.example' });
    });
    const o = await other.begin('s');
    expect(isDeny(o) && o.code).toBe('ERR_OIDC_INVALID');
  });

  it('does not start a gate whose redirect URI is not its console', async () => {
    const dir = mkdtempSync(join(work, 'elsewhere-'));
    await initDataDir(dir);
    const p = dataPaths(dir).config;
    const config = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    config['console'] = {
      oidc: { issuer, client_id: CLIENT, redirect_uri: 'http://127.0.0.1:1/console/' },
    };
    writeFileSync(p, JSON.stringify(config));
    await expect(startEmbedded(dir, { port: 0, executionPort: 0 })).rejects.toThrow(TypeError);
  });

  it('accepts only an https issuer (http on loopback), and a redirect URI of the console', () => {
    const base = JSON.parse(readFileSync(dataPaths(rig.dir).config, 'utf8')) as Record<string, unknown>;
    const parse = (oidc: Record<string, unknown>) =>
      parseConfig(Buffer.from(JSON.stringify({ ...base, console: { oidc } })));
    const ok = {
      issuer: 'https://idp.example',
      client_id: 'c',
      redirect_uri: 'https://gate.example/console/',
    };
    expect(parse(ok).console?.oidc?.issuer).toBe('https://idp.example');
    expect(() => parse({ ...ok, issuer: 'http://idp.example' })).toThrow(TypeError);
    expect(() => parse({ ...ok, redirect_uri: 'https://gate.example/elsewhere' })).toThrow(TypeError);
    expect(() => parse({ ...ok, insecure: true })).toThrow(TypeError);
  });
});
