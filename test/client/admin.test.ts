/**
 * The client library on its own (docs/client.md): client key generation and loading, and the
 * operator client against a real embedded gate: each operator action it names reaches the Gate
 * and takes effect (kill switch, lockdown, quarantine: the next call is denied with its code and
 * the tool does not run), reads need the operator token, and a Gate that cannot be reached is a
 * deny, never a throw.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAdminClient,
  createClient,
  generateClientKey,
  loadClientKey,
  type AdminClient,
  type ClientKey,
  type FailclosedClient,
} from '../../src/index.js';
import { initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { jwkThumbprint } from '../../src/kernel/index.js';
import { verifyBundleFile } from '../../src/verify/index.js';

let dir: string;
let instance: EmbeddedInstance;
let admin: AdminClient;
let key: ClientKey;
let agent: FailclosedClient;
const runs = new Map<string, number>();
const totalRuns = (): number => [...runs.values()].reduce((a, b) => a + b, 0);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-admin-client-'));
  await initDataDir(dir);
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
  admin = createAdminClient({ url: instance.url, token: readOperatorToken(dir) });
  key = generateClientKey();
  expect(
    await admin.addClient({ name: 'lib-agent', tenant: 'acme', publicJwk: key.publicJwk }),
  ).toMatchObject({
    status: 201,
  });
  agent = createClient({ url: instance.url, identity: 'lib-agent', tenant: 'acme', key: key.key });
}, 60_000);

afterAll(async () => {
  await instance?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('client keys', () => {
  it('generateClientKey gives a private JWK, a public JWK and its RFC 7638 thumbprint as kid', () => {
    const k = generateClientKey();
    expect(k.kid).toBe(jwkThumbprint(k.publicJwk));
    expect(k.publicJwk).toEqual({ kty: 'OKP', crv: 'Ed25519', x: k.privateJwk.x, kid: k.kid });
    expect(k.publicJwk).not.toHaveProperty('d');
    expect(k.privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: k.kid });
    expect(generateClientKey().kid).not.toBe(k.kid);
  });

  it('loadClientKey reads a stored private JWK back, and refuses a tampered one with ERR_KEY_INVALID', () => {
    const stored = JSON.parse(JSON.stringify(key.privateJwk)) as Record<string, string>;
    expect(loadClientKey(stored).kid).toBe(key.kid);
    expect(() => loadClientKey({ ...stored, x: generateClientKey().privateJwk.x })).toThrow(
      expect.objectContaining({ code: 'ERR_KEY_INVALID' }),
    );
  });
});

describe('the operator client (OE-INV-025)', () => {
  it('a registered client calls; the registration is listed', async () => {
    expect(await agent.call('echo', { message: 'hi' })).toMatchObject({ outcome: 'executed' });
    const listed = await admin.listClients();
    expect(listed.status).toBe(200);
    expect((listed.body as { clients: { identity: string; kid: string }[] }).clients).toContainEqual(
      expect.objectContaining({ identity: 'lib-agent', kid: key.kid }),
    );
  });

  it.each([
    ['kill switch', (on: boolean) => admin.killSwitch(on, 'test'), 'ERR_KILL_SWITCH'],
    ['tenant lockdown', (on: boolean) => admin.lockdown('acme', on, 'test'), 'ERR_TENANT_LOCKDOWN'],
    [
      'session quarantine',
      (on: boolean) => admin.quarantine('sess-q', on, 'test'),
      'ERR_SESSION_QUARANTINED',
    ],
  ] as const)(
    '%s: engaged, the next call is denied with its code and nothing runs; released, it runs',
    async (_n, set, code) => {
      expect(await set(true)).toMatchObject({ status: 200, body: { outcome: 'ok', engaged: true } });
      const before = totalRuns();
      expect(await agent.call('echo', { message: 'x' }, { session: 'sess-q' })).toMatchObject({
        outcome: 'deny',
        code,
      });
      expect(totalRuns()).toBe(before);
      expect(await set(false)).toMatchObject({ status: 200, body: { outcome: 'ok', engaged: false } });
      expect(await agent.call('echo', { message: 'x' }, { session: 'sess-q' })).toMatchObject({
        outcome: 'executed',
      });
    },
  );

  it('reads: evidence, approvals, reviews, approvers, jwks, readiness and an export', async () => {
    const r = await agent.call('echo', { message: 'evidence' });
    expect(r.outcome).toBe('executed');
    const view = await admin.evidence(r.request_id ?? '');
    expect(view).toMatchObject({ status: 200, body: { outcome: 'executed' } });
    expect(await admin.approvals()).toMatchObject({ status: 200 });
    expect(await admin.reviews()).toMatchObject({ status: 200 });
    expect(await admin.listApprovers()).toMatchObject({ status: 200, body: { approvers: [] } });
    expect((await admin.jwks()).status).toBe(200);
    expect((await admin.ready()).body).toHaveProperty('checks');
    const empty = join(dir, 'no-such-trace.jsonl');
    expect(await admin.exportLedger({ traceId: 'no-such-trace', out: empty })).toMatchObject({ status: 200 });
    expect(existsSync(empty)).toBe(true);
  });

  it('exportLedger streams the audit bundle to a file that verify accepts under the pinned ledger key', async () => {
    expect((await agent.call('echo', { message: 'exported' })).outcome).toBe('executed');
    const out = join(dir, 'bundle.jsonl');
    const a = await admin.exportLedger({ out });
    // Before, the bundle (JSON Lines) was read as one JSON answer: status 200 with ERR_INTERNAL.
    expect(a).toMatchObject({ status: 200, body: { path: out } });
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(statSync(out).size).toBe((a.body as { bytes: number }).bytes);
    expect(JSON.parse(lines[lines.length - 1]!)).toMatchObject({ record: 'end' });
    expect(existsSync(`${out}.partial`)).toBe(false);
    const r = await verifyBundleFile(out, { trustedKey: instance.core.ledger.ledgerKey.vkey });
    expect(r.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(r.exitCode).toBe(0);
    // A refusal is the Gate's answer, and writes nothing.
    const refused = join(dir, 'refused.jsonl');
    const bad = await admin.exportLedger({ out: refused, from: 5, to: 2 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ outcome: 'deny', code: expect.stringMatching(/^ERR_/) });
    expect(existsSync(refused)).toBe(false);
    // A token the Gate does not know: refused, nothing written.
    const stranger = createAdminClient({ url: instance.url, token: 'x'.repeat(43) });
    expect((await stranger.exportLedger({ out: refused })).status).toBe(401);
    expect(existsSync(refused)).toBe(false);
    // A Gate that cannot be reached: status 0, nothing written.
    const gone = createAdminClient({ url: 'http://127.0.0.1:9', token: 'x' });
    expect(await gone.exportLedger({ out: refused })).toMatchObject({
      status: 0,
      body: { outcome: 'deny', code: 'ERR_INTERNAL' },
    });
    expect(existsSync(refused)).toBe(false);
  });

  it('a malformed action is refused with its code; an unknown one is 404', async () => {
    expect(await admin.lockdown('not a tenant!', true)).toMatchObject({
      status: 400,
      body: { code: 'ERR_REQUEST_MALFORMED' },
    });
    expect(await admin.action('no-such-action')).toMatchObject({ status: 404 });
  });

  it('a wrong token is ERR_UNAUTHENTICATED and changes nothing', async () => {
    const intruder = createAdminClient({ url: instance.url, token: 'not-the-token' });
    expect(await intruder.killSwitch(true)).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    expect(await intruder.evidence('x')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    expect(await agent.call('echo', { message: 'still open' })).toMatchObject({ outcome: 'executed' });
  });

  it('operators: added with a scope, acting with its own token; rotated, the old token stops (OE-INV-025)', async () => {
    const added = await admin.addOperator('lib-op', ['acme'], 'on call');
    expect(added.status).toBe(201);
    const op = createAdminClient({ url: instance.url, token: (added.body as { token: string }).token });
    expect((await op.lockdown('acme', false)).status).toBe(200);
    expect(await op.killSwitch(true)).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    expect((await admin.listOperators()).body).toMatchObject({
      operators: expect.arrayContaining([expect.objectContaining({ name: 'lib-op', tenants: ['acme'] })]),
    });
    const rotated = await admin.rotateOperator('lib-op');
    expect(rotated.status).toBe(200);
    expect(await op.listClients()).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHENTICATED' } });
    const next = createAdminClient({ url: instance.url, token: (rotated.body as { token: string }).token });
    expect((await next.listClients()).status).toBe(200);
    expect((await admin.removeOperator('lib-op')).status).toBe(200);
    expect(await next.listClients()).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHENTICATED' } });
    expect(await agent.call('echo', { message: 'still open' })).toMatchObject({ outcome: 'executed' });
  });

  it('an unreachable Gate is status 0 ERR_INTERNAL, never a throw', async () => {
    const away = createAdminClient({ url: 'http://127.0.0.1:1', token: 't' });
    expect(await away.killSwitch(true)).toMatchObject({ status: 0, body: { code: 'ERR_INTERNAL' } });
  });
});
