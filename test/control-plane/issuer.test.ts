/** The issuer: JWKS, key rotation and revocation, each ledgered first (SPEC §3, OE-INV-025, GEI Issuer). */
import { afterEach, describe, expect, it } from 'vitest';
import { keyRingFromJwks, verifyEnvelope, type JsonValue } from '../../src/kernel/index.js';
import { createIssuer, type LedgerAppend } from '../../src/control-plane/index.js';
import {
  AUD,
  entriesOf,
  faultyLedger,
  ISS,
  issuerKey,
  OPERATOR,
  request,
  rig,
  settableClock,
  type Rig,
} from './support.js';

const opened: Rig[] = [];
async function open(): Promise<Rig> {
  const r = await rig();
  opened.push(r);
  return r;
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

const PARAMS = { message: 'hi' };

function verifyWith(r: Rig, jwks: JsonValue, envelope: string) {
  return verifyEnvelope(envelope, {
    keys: keyRingFromJwks(jwks),
    audience: AUD,
    now: r.clock,
    clockToleranceSec: 5,
    maxLifetimeSec: 300,
    call: { tool: 'echo', tenant: 'acme', params: PARAMS },
    isKnownPolicyBundle: (h) => h === r.bundleHash,
  });
}

async function allow(r: Rig, id: string): Promise<string> {
  const res = await r.cp.decide(request('echo', PARAMS, { request_id: id }));
  if (res.outcome !== 'allow') throw new Error(`expected allow, got ${res.code}`);
  return res.envelope;
}

describe('issuer keys (OE-INV-025)', () => {
  it('publishes public keys only, in the kernel JWKS format', async () => {
    const r = await open();
    const jwks = r.cp.issuerJwks() as { keys: Record<string, unknown>[]; revoked: string[] };
    expect(jwks.revoked).toEqual([]);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(jwks.keys[0]!['kid']).toBe(issuerKey().kid);
  });

  it('rotation: ledgered first, the new key signs, the old key stays published and verifying', async () => {
    const r = await open();
    const before = await allow(r, 'r-old');
    const next = issuerKey(2);
    const rotated = await r.cp.rotateIssuerKey(OPERATOR, 'scheduled', next);
    expect(rotated).toMatchObject({ outcome: 'ok', kid: next.kid, previous_kid: issuerKey().kid });
    const entry = (await entriesOf(r.ledger)).at(-1)!;
    expect(entry.type).toBe('admin.key_rotated');
    expect(entry.actor).toEqual(OPERATOR);
    expect(entry.payload).toMatchObject({
      kid: next.kid,
      previous_kid: issuerKey().kid,
      key_use: 'envelope',
    });
    expect(entry.payload['public_jwk']).not.toHaveProperty('d');

    const after = await allow(r, 'r-new');
    expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).toBe(next.kid);
    const jwks = r.cp.issuerJwks();
    expect(verifyWith(r, jwks, before)).toMatchObject({ outcome: 'allow' });
    expect(verifyWith(r, jwks, after)).toMatchObject({ outcome: 'allow' });
  });

  it('revocation: ledgered first, listed as revoked, envelopes under it refused (ERR_ENVELOPE_KID_REVOKED)', async () => {
    const r = await open();
    const old = await allow(r, 'r-old');
    await r.cp.rotateIssuerKey(OPERATOR, 'compromise', issuerKey(2));
    const revoked = await r.cp.revokeIssuerKey(issuerKey().kid, OPERATOR, 'compromise');
    expect(revoked).toMatchObject({ outcome: 'ok', kid: issuerKey().kid });
    const entry = (await entriesOf(r.ledger)).at(-1)!;
    expect(entry.type).toBe('admin.key_revoked');
    expect(entry.payload).toMatchObject({ kid: issuerKey().kid, key_use: 'envelope', reason: 'compromise' });
    const jwks = r.cp.issuerJwks() as { revoked: string[] };
    expect(jwks.revoked).toEqual([issuerKey().kid]);
    expect(verifyWith(r, jwks, old)).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_KID_REVOKED' });
    expect(verifyWith(r, jwks, await allow(r, 'r-new'))).toMatchObject({ outcome: 'allow' });
  });

  it('the current key cannot be revoked; an unknown kid is refused', async () => {
    const r = await open();
    await expect(r.cp.revokeIssuerKey(issuerKey().kid, OPERATOR, 'x')).rejects.toThrow(TypeError);
    expect(await r.cp.revokeIssuerKey('A'.repeat(43), OPERATOR, 'x')).toMatchObject({
      code: 'ERR_ENVELOPE_KID_UNKNOWN',
    });
  });

  it('a key change the ledger does not confirm changes nothing', async () => {
    const r = await open();
    r.faulty.mode = 'fail';
    expect(await r.cp.rotateIssuerKey(OPERATOR, 'x', issuerKey(2))).toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    r.faulty.mode = 'ok';
    const envelope = await allow(r, 'r-1');
    expect(JSON.parse(Buffer.from(envelope.split('.')[0]!, 'base64url').toString()).kid).toBe(
      issuerKey().kid,
    );
    expect((r.cp.issuerJwks() as { keys: unknown[] }).keys).toHaveLength(1);
  });

  it('restores retired and revoked keys from configuration; refuses a revoked current key', () => {
    const ledger = faultyLedger({
      append: (_e: LedgerAppend) => Promise.resolve({ index: 0, entry_hash: 'a'.repeat(64) }),
    });
    const retired = { keys: [issuerKey(3).publicJwk], revoked: [issuerKey(3).kid] };
    const config = { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60, retired };
    const issuer = createIssuer({ config, ledger, now: settableClock(), ledgerTimeoutMs: 100 });
    expect(issuer.jwks().revoked).toEqual([issuerKey(3).kid]);
    expect(
      issuer
        .jwks()
        .keys.map((k) => k.kid)
        .sort(),
    ).toEqual([issuerKey().kid, issuerKey(3).kid].sort());
    const bad = { ...config, retired: { keys: [], revoked: [issuerKey().kid] } };
    expect(() => createIssuer({ config: bad, ledger, now: settableClock(), ledgerTimeoutMs: 100 })).toThrow(
      TypeError,
    );
    expect(() =>
      createIssuer({
        config: { ...config, envelopeTtlSec: 0 },
        ledger,
        now: settableClock(),
        ledgerTimeoutMs: 100,
      }),
    ).toThrow(TypeError);
  });
});
