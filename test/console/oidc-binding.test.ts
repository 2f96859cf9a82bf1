/**
 * An approver bound to an identity provider (`approvers invite --oidc-subject`) is heard only
 * through the console's `key+oidc` session, on every path of the approval service (OE-INV-020
 * "distinct humans", L7 Identity & Signing; docs/console.md "OIDC sign-in"): once the identity
 * provider refuses her, a statement signed by her device key and posted to the approval API
 * (`POST /v1/break-glass`, `POST /v1/approvals/{id}/approve`, `POST /v1/reviews/{id}/close`) is
 * refused `ERR_APPROVER_SESSION_REQUIRED`, the vote refusal ledgered, nothing granted, counted or
 * closed. Signed in again with the device key and the identity provider, the same three steps
 * through the console succeed and their evidence names the session's issuer and subject.
 *
 * The identity provider here is a minimal issuer (discovery, JWKS, token endpoint) run by the
 * test, so it can stop signing the person in; `test/console/oidc.test.ts` runs a full one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInInput } from '../../src/console/service.js';
import { signApproval, signBreakGlass, signReview } from '../../src/client/approver.js';
import { dataPaths } from '../../src/embedded/index.js';
import { encodeBase64url } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { generateSigningKey, importSigningKeyJwk, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { cliApproverKey, startRig, type Rig } from '../approvals/support.js';
import { freePort } from '../support/ports.js';

const CLIENT = 'failclosed-console';
const transfer = (amount: number) => ({
  from_account: 'acct_a',
  to_account: 'acct_b',
  amount,
  currency: 'USD',
});

let rig: Rig;
let idp: Server;
let issuer = '';
let idpKey: CryptoKey;
let nonce = '';
let idpEnabled = true;
let erinKey: SigningKey;
let dave: SigningKey;

const jar: Record<string, string> = {};
async function con(
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: JsonObject }> {
  const cookie = Object.entries(jar)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
  const res = await fetch(new URL(`/console/api/${route}`, rig.instance.url), {
    method,
    headers: {
      origin: new URL(rig.instance.url).origin,
      'content-type': 'application/json',
      ...(cookie === '' ? {} : { cookie }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  for (const c of res.headers.getSetCookie()) {
    const kv = c.split(';')[0] ?? '';
    const i = kv.indexOf('=');
    jar[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { status: res.status, body: (await res.json()) as JsonObject };
}

async function post(path: string, body: JsonObject): Promise<{ status: number; body: JsonObject }> {
  const res = await fetch(new URL(path, rig.instance.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as JsonObject };
}

/** The issuer's round trip in the session held in `jar`. */
async function throughIdp(): Promise<{ status: number; body: JsonObject }> {
  const start = await con('POST', 'sign-in/oidc/start', {});
  expect(start.status).toBe(200);
  const au = new URL(start.body['authorization_url'] as string);
  nonce = au.searchParams.get('nonce') ?? '';
  return con('POST', 'sign-in/oidc/callback', { code: 'c1', state: au.searchParams.get('state') });
}

function forget(): void {
  for (const k of Object.keys(jar)) delete jar[k];
}

const stamp = (): string => new Date(rig.now()).toISOString();

function breakGlassBody(key: SigningKey, approver: string): JsonObject {
  const statement = {
    approver,
    tenant: 'acme',
    tool: 'transfer_funds',
    reason_category: 'incident',
    reason: 'payroll outage INC-9',
    ttl_sec: 600,
    timestamp: stamp(),
  };
  return { statement, signature: signBreakGlass(key, statement) };
}

async function approvalBody(decisionId: string): Promise<JsonObject> {
  const shown = rig.instance.core.approvals.service;
  const p = await shown.get(decisionId);
  const statement = {
    decision_id: decisionId,
    intent_sha256: p?.intent_sha256 ?? '',
    preview_sha256: p?.preview_sha256 ?? null,
    verdict: 'approve' as const,
    justification: 'checked the transfer',
    timestamp: stamp(),
    approver: 'erin',
  };
  return { statement, signature: signApproval(erinKey, statement) };
}

function reviewBody(reviewId: string): JsonObject {
  const statement = { review_id: reviewId, reviewer: 'erin', notes: 'justified', timestamp: stamp() };
  return { statement, signature: signReview(erinKey, statement) };
}

async function ledgerSince(from: number): Promise<JsonObject[]> {
  const ledger = rig.instance.core.ledger;
  const rows = await ledger.store.readRange(from, ledger.size());
  return rows.map((r) => JSON.parse(JSON.stringify(r)) as JsonObject);
}

const eventOf = (e: JsonObject): JsonObject => (e['entry'] ?? e) as JsonObject;

let decisionId = '';
let reviewId = '';

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  idpKey = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  idp = createServer((req, res) => {
    const json = (b: unknown, s = 200): void => {
      res.writeHead(s, { 'content-type': 'application/json' });
      res.end(JSON.stringify(b));
    };
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path === '/.well-known/openid-configuration')
      return json({
        issuer,
        authorization_endpoint: `${issuer}/auth`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
      });
    if (path === '/jwks') return json({ keys: [jwk] });
    if (path === '/token') {
      req.resume();
      // The organisation disabled the account: the issuer signs her in no more.
      if (!idpEnabled) return json({ error: 'invalid_grant' }, 400);
      void new SignJWT({ nonce })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(issuer)
        .setAudience(CLIENT)
        .setSubject('sub-erin')
        .setIssuedAt(Math.floor(rig.now() / 1000))
        .setExpirationTime(Math.floor(rig.now() / 1000) + 300)
        .sign(idpKey)
        .then((t) => json({ id_token: t, token_type: 'Bearer', access_token: 'x' }));
      return;
    }
    return json({ error: 'not_found' }, 404);
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const port = await freePort();
  rig = await startRig(
    undefined,
    (dir) => {
      const p = dataPaths(dir).config;
      const config = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      config['console'] = {
        oidc: { issuer, client_id: CLIENT, redirect_uri: `http://127.0.0.1:${port}/console/` },
      };
      writeFileSync(p, JSON.stringify(config));
    },
    { port },
  );
  // dave: an approver with a CLI key (no binding), who breaks glass to open a review.
  expect(await rig.enrol('dave', 'L4')).toBe(0);
  dave = importSigningKeyJwk(cliApproverKey(rig, 'dave'));
  // erin: invited bound to the issuer's `sub-erin`, enrolled after proving it, confirmed.
  const inv = await rig.operator('approvers-invite', {
    name: 'erin',
    roles: ['L4', 'treasury'],
    tenants: ['acme'],
    oidc_subject: 'sub-erin',
  });
  expect(inv.status).toBe(201);
  const code = (inv.body as JsonObject)['code'];
  expect((await con('POST', 'sign-in/code', { name: 'erin', code })).status).toBe(200);
  expect((await throughIdp()).status).toBe(200);
  erinKey = generateSigningKey();
  const en = await con('POST', 'enrol', { public_jwk: { ...erinKey.publicJwk } });
  expect(en.status).toBe(200);
  expect(
    (await rig.operator('approvers-confirm', { name: 'erin', kid: en.body['kid'] ?? null })).status,
  ).toBe(200);
  forget();
  // A call waiting for a treasury approval, and an open review from dave's break-glass.
  const waiting = await rig.agent().call('transfer_funds', transfer(4000));
  expect(waiting.outcome).toBe('pending');
  decisionId = (waiting as unknown as JsonObject)['decision_id'] as string;
  expect((await post('/v1/break-glass', breakGlassBody(dave, 'dave'))).status).toBe(201);
  const glassAgent = rig.agent();
  const used = await glassAgent.call('transfer_funds', transfer(4100));
  expect(used.outcome).toBe('executed');
  const open = (await rig.instance.core.approvals.service.listReviews()).filter((r) => r.status === 'open');
  expect(open).toHaveLength(1);
  reviewId = open[0]?.review_id ?? '';
  // The grant served its call; erin's vote is what the waiting call needs.
}, 60_000);

afterAll(async () => {
  await rig?.close();
  await new Promise((r) => idp?.close(r));
});

describe('an approver bound to an identity provider', () => {
  it('is refused on the approval API with her device key alone: break-glass, approve, review close', async () => {
    // The organisation disables erin at the issuer; she holds no console session.
    idpEnabled = false;
    forget();
    const from = rig.instance.core.ledger.size();

    const glass = await post('/v1/break-glass', breakGlassBody(erinKey, 'erin'));
    expect(glass.body).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_SESSION_REQUIRED' });
    expect(glass.status).toBe(401);

    const vote = await post(`/v1/approvals/${decisionId}/approve`, await approvalBody(decisionId));
    expect(vote.body).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_SESSION_REQUIRED' });
    const p = await rig.instance.core.approvals.service.get(decisionId);
    expect(p?.status).toBe('pending');
    expect(await rig.instance.core.approvals.service.votes(decisionId)).toHaveLength(0);

    const review = await post(`/v1/reviews/${reviewId}/close`, reviewBody(reviewId));
    expect(review.body).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_SESSION_REQUIRED' });
    const r = (await rig.instance.core.approvals.service.listReviews()).find((x) => x.review_id === reviewId);
    expect(r?.status).toBe('open');

    // Ledgered where vote refusals are; no grant, no vote, no closed review.
    const events = (await ledgerSince(from)).map(eventOf);
    const refused = events.filter(
      (e) =>
        e['type'] === 'denial' && (e['payload'] as JsonObject)['code'] === 'ERR_APPROVER_SESSION_REQUIRED',
    );
    expect(refused.map((e) => (e['payload'] as JsonObject)['stage']).sort()).toEqual([
      'approval',
      'break_glass',
      'review',
    ]);
    for (const e of refused) expect(e['actor']).toMatchObject({ id: 'erin', role: 'approver' });
    for (const ev of ['break_glass.granted', 'approval.added', 'review.closed'])
      expect(events.some((e) => e['type'] === ev)).toBe(false);

    // The console refuses her too: the device key signs in, the issuer does not.
    const ch = await con('POST', 'sign-in/challenge', { name: 'erin' });
    const challenge = ch.body['challenge'] as string;
    const signature = encodeBase64url(signEd25519(erinKey, signInInput('erin', challenge)));
    expect((await con('POST', 'sign-in/key', { name: 'erin', challenge, signature })).status).toBe(200);
    const refusedFrom = rig.instance.core.ledger.size();
    expect((await throughIdp()).body).toMatchObject({ code: 'ERR_OIDC_INVALID' });
    // The refused return from the identity provider is ledgered under the person signed in.
    expect(
      (await ledgerSince(refusedFrom)).map(eventOf).find((e) => e['type'] === 'console.sign_in'),
    ).toMatchObject({
      actor: { id: 'erin', role: 'approver' },
      payload: { method: 'oidc', outcome: 'refused', name: 'erin' },
    });
    const inConsole = await con('POST', `approvals/${decisionId}/approve`, await approvalBody(decisionId));
    expect(inConsole.body).toMatchObject({ code: 'ERR_APPROVER_UNKNOWN' });
    expect(await rig.instance.core.approvals.service.votes(decisionId)).toHaveLength(0);
  });

  it('is heard through the console with a live key+oidc session, the session in the evidence', async () => {
    idpEnabled = true;
    forget();
    const ch = await con('POST', 'sign-in/challenge', { name: 'erin' });
    const challenge = ch.body['challenge'] as string;
    const signature = encodeBase64url(signEd25519(erinKey, signInInput('erin', challenge)));
    expect((await con('POST', 'sign-in/key', { name: 'erin', challenge, signature })).status).toBe(200);
    const okFrom = rig.instance.core.ledger.size();
    expect((await throughIdp()).status).toBe(200);
    expect(
      (await ledgerSince(okFrom)).map(eventOf).find((e) => e['type'] === 'console.sign_in'),
    ).toMatchObject({ actor: { id: 'erin', role: 'approver' }, payload: { method: 'oidc', outcome: 'ok' } });
    expect((await con('GET', 'me')).body).toMatchObject({ method: 'key+oidc' });
    const from = rig.instance.core.ledger.size();
    const session = { method: 'key+oidc', issuer, subject: 'sub-erin' };

    const vote = await con('POST', `approvals/${decisionId}/approve`, await approvalBody(decisionId));
    expect(vote.status).toBe(200);
    expect(vote.body).toMatchObject({ outcome: 'ok' });

    const glass = await con('POST', 'break-glass', breakGlassBody(erinKey, 'erin'));
    expect(glass.status).toBe(201);

    const review = await con('POST', `reviews/${reviewId}/close`, reviewBody(reviewId));
    expect(review.status).toBe(200);
    expect(review.body).toMatchObject({ outcome: 'ok' });

    const events = (await ledgerSince(from)).map(eventOf);
    const closed = events.find((e) => e['type'] === 'review.closed');
    expect((closed?.['payload'] as JsonObject)['oidc_session']).toMatchObject(session);
    // The vote's and the grant's evidence name the session.
    const docs: JsonObject[] = [];
    const shas = new Set<string>();
    for (const e of events) {
      const payload = (e['payload'] ?? {}) as JsonObject;
      const scope = (payload['scope'] ?? {}) as JsonObject;
      if (typeof payload['approval_sha256'] === 'string') shas.add(payload['approval_sha256']);
      if (typeof scope['statement_sha256'] === 'string') shas.add(scope['statement_sha256']);
    }
    for (const sha of shas) {
      const blob = await rig.instance.core.ledger.store.getEvidence(sha);
      if (blob !== undefined) docs.push(JSON.parse(blob.body.toString('utf8')) as JsonObject);
    }
    const formats = docs.filter((d) => d['session'] !== undefined).map((d) => d['format']);
    expect(formats.sort()).toEqual(['failclosed.approval/v1', 'failclosed.break-glass/v1']);
    for (const d of docs) if (d['session'] !== undefined) expect(d['session']).toMatchObject(session);

    // The ledger with the refusals and the session proofs verifies offline.
    const out = join(rig.dir, 'bound.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
  });
});
