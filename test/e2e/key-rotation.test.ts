/**
 * Issuer key rotation and revocation through the operator API and the CLI's path (OE-INV-025
 * incident response, SPEC §7 scenario 10): a rotation is ledgered and takes effect at once, a
 * revoked key's envelopes are refused, and both survive a restart of the deployment on the same
 * data directory: a revoked key is never trusted again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-e2e-keys-'));
let instance: EmbeddedInstance | undefined;

afterAll(async () => {
  await instance?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<EmbeddedInstance> {
  instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  return instance;
}

async function operator(
  action: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${instance!.url}/v1/admin/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function call(message: string): Promise<{ outcome: string; request_id?: string | null }> {
  const f = readClientFile(dir, DEMO_CLIENT.identity);
  const c = createClient({ url: instance!.url, identity: f.identity, tenant: f.tenant, key: f.key });
  return c.call('echo', { message });
}

async function envelopeOf(requestId: string): Promise<string> {
  const res = await fetch(`${instance!.url}/v1/requests/${encodeURIComponent(requestId)}`, {
    headers: { authorization: `Bearer ${readOperatorToken(dir)}` },
  });
  const view = (await res.json()) as {
    records: { entry: { type: string; payload: { envelope?: string } } }[];
  };
  // The consumed JWS is recorded with its receipt (never at issuance).
  const envelope = view.records.find((r) => r.entry.type === 'execution.receipt')?.entry.payload.envelope;
  if (envelope === undefined) throw new Error('no envelope');
  return envelope;
}

async function execute(envelope: string, message: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${instance!.executionUrl}/v1/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ envelope, tool: 'echo', tenant: 'acme', params: { message } }),
  });
  return (await res.json()) as Record<string, unknown>;
}

const kidOf = (jws: string): string =>
  (JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;

describe('issuer key rotation and revocation (OE-INV-025)', () => {
  it('rotate, revoke, restart: the new key signs, the revoked key stays refused', async () => {
    await initDataDir(dir);
    await start();
    const before = await call('old key');
    expect(before.outcome).toBe('executed');
    const oldEnvelope = await envelopeOf(before.request_id ?? '');
    const oldKid = kidOf(oldEnvelope);

    const rotated = await operator('issuer-rotate', {});
    expect(rotated).toMatchObject({ status: 200, body: { outcome: 'ok', previous_kid: oldKid } });
    // The current key cannot be revoked; the retired one can.
    expect(await operator('issuer-revoke', { kid: rotated.body['kid'] })).toMatchObject({
      status: 400,
      body: {
        code: 'ERR_REQUEST_MALFORMED',
        reason: 'the current issuer key cannot be revoked: rotate first',
      },
    });
    expect((await operator('issuer-revoke', { kid: oldKid })).status).toBe(200);

    const after = await call('new key');
    expect(after.outcome).toBe('executed');
    expect(kidOf(await envelopeOf(after.request_id ?? ''))).toBe(rotated.body['kid']);
    expect(await execute(oldEnvelope, 'old key')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_KID_REVOKED',
    });

    await instance!.close();
    instance = undefined;
    await start();
    const jwks = (await (await fetch(`${instance!.url}/v1/jwks`)).json()) as { revoked: string[] };
    expect(jwks.revoked).toContain(oldKid);
    // The published trust roots carry the retired, revoked key too: an auditor pins it as revoked.
    const roots = (await (await fetch(`${instance!.url}/v1/trust-roots`)).json()) as {
      issuer: { keys: { kid: string }[]; revoked: string[] };
    };
    expect(roots.issuer).toEqual(jwks);
    expect(roots.issuer.keys.map((k) => k.kid)).toEqual(
      expect.arrayContaining([oldKid, rotated.body['kid']]),
    );
    expect(await execute(oldEnvelope, 'old key')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_KID_REVOKED',
    });
    const restarted = await call('after restart');
    expect(restarted.outcome).toBe('executed');
    expect(kidOf(await envelopeOf(restarted.request_id ?? ''))).toBe(rotated.body['kid']);
  });
});
