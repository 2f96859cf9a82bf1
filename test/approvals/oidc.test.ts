/**
 * OIDC approver identity (OE-INV-019, L7 Identity & Signing "OAuth/OIDC, role claims"): tokens
 * verified against a real local HTTP JWKS endpoint serving keys generated with jose; roles from a
 * configured claim; a token counts only when bound to the exact approval statement.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalSigningInput, sha256Hex } from '../../src/kernel/index.js';
import type { ApprovalStatement } from '../../src/kernel/index.js';
import {
  createApprovalApi,
  createApprovalService,
  createOidcVerifier,
  createSqliteApprovalStore,
} from '../../src/control-plane/index.js';
import type { ApprovalService, LedgerAppend, PendingRecord } from '../../src/control-plane/index.js';
import { routeApprovals } from '../../src/gate/index.js';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let server: Server;
let jwksUrl: string;
let idpKey: Key;
let otherKey: Key;
const entries: LedgerAppend[] = [];
let service: ApprovalService;

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
  service = createApprovalService({
    store: createSqliteApprovalStore(':memory:'),
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
  });
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

async function open(id: string): Promise<PendingRecord> {
  const p = await service.open({
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
  return new SignJWT(claims)
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
});
