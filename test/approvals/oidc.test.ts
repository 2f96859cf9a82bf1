/**
 * OIDC approver identity (OE-INV-019, L7 Identity & Signing "OAuth/OIDC, role claims"): tokens
 * verified against a real local HTTP JWKS endpoint serving keys generated with jose; roles from a
 * configured claim; a token counts only when bound to the exact approval statement, and only for
 * a tenant its tenant claim names (OE-INV-020), which also bounds what its bearer can read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url, sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { ApprovalStatement } from '../../src/kernel/index.js';
import {
  DEFAULT_WATCH_SETTINGS,
  createApprovalApi,
  createApprovalService,
  createOidcVerifier,
  createSqliteApprovalStore,
} from '../../src/control-plane/index.js';
import type {
  ApprovalService,
  ApprovalStore,
  LedgerAppend,
  PendingRecord,
} from '../../src/control-plane/index.js';
import { routeApprovals } from '../../src/gate/index.js';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let server: Server;
let jwksUrl: string;
let idpKey: Key;
let otherKey: Key;
const entries: LedgerAppend[] = [];
let service: ApprovalService;
const store = createSqliteApprovalStore(':memory:');

beforeAll(async () => {
  const idp = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  idpKey = idp.privateKey;
  otherKey = (await generateKeyPair('EdDSA', { crv: 'Ed25519' })).privateKey;
  const jwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'EdDSA', use: 'sig' };
  server = createServer((req, res) => {
    res.writeHead(req.url === '/jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  service = serviceOver(store);
});

/**
 * An approval service over `store` that ledgers into `entries` and trusts the test IdP's tokens;
 * `over` replaces or adds dependencies.
 */
function serviceOver(
  on: ApprovalStore,
  over: Partial<Parameters<typeof createApprovalService>[0]> = {},
): ApprovalService {
  return createApprovalService({
    store: on,
    ledger: {
      append: (e) => (
        entries.push(e),
        Promise.resolve({ index: entries.length - 1, entry_hash: sha256Hex(String(entries.length)) })
      ),
    },
    putEvidence: (bytes) => Promise.resolve(sha256Hex(bytes)),
    now: () => Date.now(),
    isClient: (name) => name === 'bot' || name === 'oidc:bot',
    oidc: createOidcVerifier({
      issuer: 'https://idp.example',
      audience: 'failclosed',
      jwksUri: jwksUrl,
      rolesClaim: 'groups',
    }),
    ...over,
  });
}

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

async function open(id: string, on: ApprovalService = service): Promise<PendingRecord> {
  const p = await on.open({
    decision_id: id,
    kind: 'call',
    request_id: `req-${id}`,
    trace_id: `trace-${id}`,
    identity: 'bot',
    owner: 'owner',
    tenant: 'acme',
    tool: 'transfer_funds',
    session: null,
    params: { amount: 5000 },
    params_sha256: 'c'.repeat(64),
    preview: null,
    risk: 'critical',
    required: 2,
    roles: ['treasury'],
    policy_bundle: 'd'.repeat(64),
    decision_ref: { index: 0, entry_hash: 'e'.repeat(64) },
    constraints: null,
  });
  if ('outcome' in p) throw new Error(p.code);
  return p;
}

function statement(p: PendingRecord, approver: string): ApprovalStatement {
  return {
    decision_id: p.decision_id,
    intent_sha256: p.intent_sha256,
    preview_sha256: null,
    verdict: 'approve',
    justification: 'ok',
    timestamp: new Date().toISOString(),
    approver,
  };
}

async function token(
  claims: Record<string, unknown>,
  opts: { key?: Key; aud?: string; sub?: string; exp?: string } = {},
): Promise<string> {
  // Scoped to the tenant of the calls below unless a test says otherwise (`tenants: undefined`
  // leaves the claim out).
  return new SignJWT({ tenants: ['acme'], ...claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'idp-1' })
    .setIssuer('https://idp.example')
    .setAudience(opts.aud ?? 'failclosed')
    .setSubject(opts.sub ?? 'alice')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(opts.key ?? idpKey);
}

const bound = (s: ApprovalStatement): string => sha256Hex(approvalSigningInput(s));
const submit = (p: PendingRecord, s: ApprovalStatement, t: string) =>
  service.submit(p.decision_id, { statement: { ...s }, token: t });

describe('OIDC approvers', () => {
  it('two distinct OIDC approvers with the role, tokens bound to their statements, approve', async () => {
    const p = await open('oidc-ok');
    const a = statement(p, 'oidc:alice');
    expect(
      await submit(p, a, await token({ approval_sha256: bound(a), groups: ['treasury'] })),
    ).toMatchObject({ outcome: 'ok', status: 'pending' });
    const b = statement(p, 'oidc:bob');
    const r = await submit(
      p,
      b,
      await token({ approval_sha256: bound(b), groups: 'treasury ops' }, { sub: 'bob' }),
    );
    expect(r).toMatchObject({ outcome: 'ok', status: 'approved' });
    expect(entries.some((e) => e.type === 'approval.finalized' && e.payload['verdict'] === 'approve')).toBe(
      true,
    );
    expect(await service.isApproverToken(await token({ groups: ['treasury'] }))).toBe(true);
  });

  it('refuses forged, foreign, unbound, expired, role-less and mismatched tokens with their codes', async () => {
    const p = await open('oidc-bad');
    const a = statement(p, 'oidc:alice');
    const ok = { approval_sha256: bound(a), groups: ['treasury'] };
    expect(await submit(p, a, await token(ok, { key: otherKey }))).toMatchObject({
      code: 'ERR_APPROVER_UNKNOWN',
    });
    expect(await submit(p, a, await token(ok, { aud: 'someone-else' }))).toMatchObject({
      code: 'ERR_APPROVER_UNKNOWN',
    });
    expect(await submit(p, a, await token(ok, { exp: '-1m' }))).toMatchObject({
      code: 'ERR_APPROVER_UNKNOWN',
    });
    expect(
      await submit(p, a, await token({ approval_sha256: 'f'.repeat(64), groups: ['treasury'] })),
    ).toMatchObject({ code: 'ERR_APPROVAL_SIGNATURE' });
    expect(await submit(p, a, await token({ approval_sha256: bound(a) }))).toMatchObject({
      code: 'ERR_APPROVER_UNKNOWN',
    });
    expect(await submit(p, a, await token({ approval_sha256: bound(a), groups: ['finance'] }))).toMatchObject(
      { code: 'ERR_APPROVER_ROLE' },
    );
    expect(await submit(p, a, await token(ok, { sub: 'mallory' }))).toMatchObject({
      code: 'ERR_APPROVAL_SIGNATURE',
    });
    const botStatement = statement(p, 'oidc:bot');
    expect(
      await submit(
        p,
        botStatement,
        await token({ approval_sha256: bound(botStatement), groups: ['treasury'] }, { sub: 'bot' }),
      ),
    ).toMatchObject({ code: 'ERR_APPROVER_AGENT' });
    expect(await submit(p, a, 'not-a-jwt')).toMatchObject({ code: 'ERR_APPROVER_UNKNOWN' });
    expect(await service.isApproverToken(await token(ok, { key: otherKey }))).toBe(false);
    expect((await service.get(p.decision_id))?.status).toBe('pending');
  });

  it('the requester’s owner is the same human through an IdP token: no self-approval (ERR_APPROVAL_SELF)', async () => {
    const p = await open('oidc-self');
    const o = statement(p, 'oidc:owner');
    const r = await submit(
      p,
      o,
      await token({ approval_sha256: bound(o), groups: ['treasury'] }, { sub: 'owner' }),
    );
    expect(r).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect((await service.get(p.decision_id))?.status).toBe('pending');
  });

  it('an OIDC approver who opened the item through the API is not flagged; one who never did is (L7 hardening)', async () => {
    const p = await open('oidc-viewed');
    const api = createApprovalApi(service);
    const route = (bearer: string) =>
      routeApprovals(
        { approvals: api, isOperator: () => false, timeoutMs: 5000 },
        'GET',
        `/v1/approvals/${p.decision_id}`,
        {},
        `Bearer ${bearer}`,
      );
    // carol reads the item with her own bearer token: the view is recorded under her name.
    expect((await route(await token({ groups: ['treasury'] }, { sub: 'carol' })))?.status).toBe(200);
    const c = statement(p, 'oidc:carol');
    expect(
      await submit(p, c, await token({ approval_sha256: bound(c), groups: ['treasury'] }, { sub: 'carol' })),
    ).toMatchObject({ outcome: 'ok' });
    const d = statement(p, 'oidc:dan');
    expect(
      await submit(p, d, await token({ approval_sha256: bound(d), groups: ['treasury'] }, { sub: 'dan' })),
    ).toMatchObject({ outcome: 'ok', status: 'approved' });
    const flagged = entries.filter(
      (e) => e.type === 'approval.flagged' && e.payload['decision_id'] === p.decision_id,
    );
    expect(flagged.map((e) => [e.payload['approver'], e.payload['flags']])).toEqual([
      ['oidc:dan', ['unviewed_quick']],
    ]);
  });

  it('a key approver x then oidc:x flagged under require_extra: the flag on the human raises the threshold', async () => {
    // Burst at the human's second approval: x's key vote (on another call) is unflagged,
    // oidc:x's is flagged.
    const watched = serviceOver(createSqliteApprovalStore(':memory:'), {
      settings: {
        watch: {
          ...DEFAULT_WATCH_SETTINGS,
          quickSec: 0,
          burst: { count: 2, windowSec: 3600 },
          minHistory: 1000,
          onFlag: 'require_extra',
        },
      },
    });
    const key = generateSigningKey();
    expect(
      await watched.registerApprover(
        { name: 'alice', roles: ['treasury'], tenants: '*', public_jwk: { ...key.publicJwk } },
        { id: 'ops-1', role: 'operator' },
      ),
    ).toMatchObject({ name: 'alice' });
    const earlier = await open('oidc-human-flag-earlier', watched);
    const p = await open('oidc-human-flag', watched);
    const byKey = statement(earlier, 'alice');
    expect(
      await watched.submit(earlier.decision_id, {
        statement: { ...byKey },
        signature: encodeBase64url(signEd25519(key, approvalSigningInput(byKey))),
      }),
    ).toMatchObject({ outcome: 'ok', status: 'pending', required: 2 });
    const byIdp = statement(p, 'oidc:alice');
    expect(
      await watched.submit(p.decision_id, {
        statement: { ...byIdp },
        token: await token({ approval_sha256: bound(byIdp), groups: ['treasury'] }),
      }),
    ).toMatchObject({ outcome: 'ok', status: 'pending', required: 3 });
    expect(
      entries.find((e) => e.type === 'approval.flagged' && e.payload['decision_id'] === p.decision_id)
        ?.payload,
    ).toMatchObject({ approver: 'oidc:alice', flags: ['burst'], policy: 'require_extra' });
    // Her key approval here is the same human deciding again: refused, not counted twice.
    const again = statement(p, 'alice');
    expect(
      await watched.submit(p.decision_id, {
        statement: { ...again },
        signature: encodeBase64url(signEd25519(key, approvalSigningInput(again))),
      }),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_DUPLICATE' });
    // With bob two humans approve, short of the raised threshold.
    const b = statement(p, 'oidc:bob');
    expect(
      await watched.submit(p.decision_id, {
        statement: { ...b },
        token: await token({ approval_sha256: bound(b), groups: ['treasury'] }, { sub: 'bob' }),
      }),
    ).toMatchObject({ outcome: 'ok', status: 'pending', required: 3 });
    expect((await watched.get(p.decision_id))?.status).toBe('pending');
  });

  it('one human decides once: key alice approves, then oidc:alice’s rejection (or approval) is ERR_APPROVAL_DUPLICATE, never a vote the count drops', async () => {
    const key = generateSigningKey();
    expect(
      await service.registerApprover(
        { name: 'alice', roles: ['treasury'], tenants: '*', public_jwk: { ...key.publicJwk } },
        { id: 'ops-1', role: 'operator' },
      ),
    ).toMatchObject({ name: 'alice' });
    try {
      const p = await open('oidc-one-human');
      const byKey = statement(p, 'alice');
      expect(
        await service.submit(p.decision_id, {
          statement: { ...byKey },
          signature: encodeBase64url(signEd25519(key, approvalSigningInput(byKey))),
        }),
      ).toMatchObject({ outcome: 'ok', status: 'pending' });
      for (const verdict of ['reject', 'approve'] as const) {
        const byIdp = { ...statement(p, 'oidc:alice'), verdict };
        expect(
          await submit(p, byIdp, await token({ approval_sha256: bound(byIdp), groups: ['treasury'] })),
        ).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_DUPLICATE' });
      }
      expect(
        entries.filter((e) => e.type === 'approval.added' && e.payload['decision_id'] === p.decision_id),
      ).toHaveLength(1);
      expect((await service.get(p.decision_id))?.status).toBe('pending');
    } finally {
      await service.removeApprover('alice', 'test over', { id: 'ops-1', role: 'operator' });
    }
  });

  it('a token of an identity the console bound to an approver is not a second name for them: refused ERR_APPROVER_SESSION_REQUIRED, no self-approval, no double count', async () => {
    // owner is a console approver bound to the IdP's subject 00uA.
    const svc = serviceOver(createSqliteApprovalStore(':memory:'), {
      boundPerson: (issuer, subject) =>
        Promise.resolve(issuer === 'https://idp.example' && subject === '00uA' ? 'owner' : undefined),
    });
    const p = await open('oidc-bound-person', svc);
    const own = statement(p, 'oidc:00uA');
    expect(
      await svc.submit(p.decision_id, {
        statement: { ...own },
        token: await token({ approval_sha256: bound(own), groups: ['treasury'] }, { sub: '00uA' }),
      }),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_SESSION_REQUIRED' });
    // Another subject of the same issuer is an approver of its own.
    const other = statement(p, 'oidc:carol');
    expect(
      await svc.submit(p.decision_id, {
        statement: { ...other },
        token: await token({ approval_sha256: bound(other), groups: ['treasury'] }, { sub: 'carol' }),
      }),
    ).toMatchObject({ outcome: 'ok', status: 'pending' });
  });

  it('an OIDC vote counts only for a tenant its token is scoped to (OE-INV-020): other, absent and malformed scopes are ERR_APPROVER_TENANT', async () => {
    const p = await open('oidc-tenant');
    const a = statement(p, 'oidc:alice');
    const claims = { approval_sha256: bound(a), groups: ['treasury'] };
    for (const tenants of [['globex'], undefined, [], 'acme globex!', [7], 'acme*']) {
      expect(await submit(p, a, await token({ ...claims, tenants }))).toMatchObject({
        outcome: 'deny',
        code: 'ERR_APPROVER_TENANT',
      });
    }
    expect((await service.votes(p.decision_id)).length).toBe(0);
    // The refusals are ledgered, as every refused vote is.
    expect(
      entries.filter((e) => e.type === 'denial' && e.payload['code'] === 'ERR_APPROVER_TENANT').length,
    ).toBeGreaterThanOrEqual(6);
    // A space-separated claim, and the explicit every-tenant scope, count.
    expect(await submit(p, a, await token({ ...claims, tenants: 'globex acme' }))).toMatchObject({
      outcome: 'ok',
      status: 'pending',
    });
    const b = statement(p, 'oidc:bob');
    expect(
      await submit(
        p,
        b,
        await token({ approval_sha256: bound(b), groups: ['treasury'], tenants: '*' }, { sub: 'bob' }),
      ),
    ).toMatchObject({ outcome: 'ok', status: 'approved' });
  });

  it('an approver bearer reads only its tenants’ approvals and reviews; another tenant’s item is unknown to it', async () => {
    const p = await open('oidc-read-scope');
    const api = createApprovalApi(service);
    const get = async (path: string, bearer: string) =>
      (await routeApprovals(
        { approvals: api, isOperator: (auth) => auth === 'Bearer op', timeoutMs: 5000 },
        'GET',
        path,
        {},
        `Bearer ${bearer}`,
      ))!;
    const ids = (r: { body: unknown }) =>
      ((r.body as { approvals: { decision_id: string }[] }).approvals ?? []).map((x) => x.decision_id);
    const acme = await token({ groups: ['treasury'] }, { sub: 'erin' });
    const globex = await token({ groups: ['treasury'], tenants: ['globex'] }, { sub: 'erin' });
    const none = await token({ groups: ['treasury'], tenants: undefined }, { sub: 'erin' });
    expect(ids(await get('/v1/approvals', acme))).toContain(p.decision_id);
    expect(ids(await get('/v1/approvals', 'op'))).toContain(p.decision_id);
    expect(ids(await get('/v1/approvals', globex))).toEqual([]);
    expect(ids(await get('/v1/approvals', none))).toEqual([]);
    expect((await get(`/v1/approvals/${p.decision_id}`, acme)).status).toBe(200);
    for (const outside of [globex, none])
      expect(await get(`/v1/approvals/${p.decision_id}`, outside)).toMatchObject({
        status: 404,
        body: { code: 'ERR_APPROVAL_UNKNOWN' },
      });
    // Reviews by the reviewed call's tenant; one whose call is unknown is for every-tenant readers.
    const review = (id: string, decision: string) => ({
      review_id: id,
      grant_id: `g-${id}`,
      decision_id: decision,
      opened_for: 'zed',
      opened_at: Date.now(),
      status: 'open' as const,
      closed_by: null,
      closed_at: null,
      notes: null,
    });
    await store.insertReview(review('rv-acme', p.decision_id));
    await store.insertReview(review('rv-unknown', 'no-such-decision'));
    const reviews = async (bearer: string) =>
      ((await get('/v1/reviews', bearer)).body as { reviews: { review_id: string }[] }).reviews
        .map((r) => r.review_id)
        .sort();
    const every = await token({ groups: ['treasury'], tenants: '*' }, { sub: 'erin' });
    expect(await reviews(acme)).toEqual(['rv-acme']);
    expect(await reviews(globex)).toEqual([]);
    expect(await reviews(none)).toEqual([]);
    expect(await reviews(every)).toEqual(['rv-acme', 'rv-unknown']);
    expect(await reviews('op')).toEqual(['rv-acme', 'rv-unknown']);
    expect(await get('/v1/approvals', 'not-a-token')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
  });
});
