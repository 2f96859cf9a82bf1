/**
 * The issuer on its own (GEI Issuer, SPEC §3, OE-INV-025 "key rotation with kids and
 * revocation"): its configuration is checked, envelopes carry its `iss`, `aud` and a short
 * lifetime, and every key change is ledgered (global tenant, its own admin id) before it takes
 * effect. Real SQLite ledger through the fault-injecting wrapper.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIssuer, MAX_ENVELOPE_TTL_SEC, type IssuerConfig } from '../../src/control-plane/index.js';
import type { EnvelopeRequestClaims } from '../../src/control-plane/issuer.js';
import { DEFAULT_CONSTRAINTS } from '../../src/control-plane/index.js';
import { AUD, entriesOf, ISS, issuerKey, OPERATOR, rig, T0, type Rig } from './support.js';

let r: Rig;
beforeAll(async () => {
  r = await rig();
}, 60_000);
afterAll(async () => {
  await r.close();
});
afterEach(() => {
  r.faulty.mode = 'ok';
  r.faulty.onlyType = undefined;
});

const config = (over: Partial<IssuerConfig> = {}): IssuerConfig => ({
  key: issuerKey(),
  iss: ISS,
  audience: AUD,
  envelopeTtlSec: 60,
  ...over,
});
const issuerOf = (over: Partial<IssuerConfig> = {}) =>
  createIssuer({ config: config(over), ledger: r.faulty, now: r.clock, ledgerTimeoutMs: 500 });

const CLAIMS: EnvelopeRequestClaims = {
  sub: 'agent-1',
  tenant: 'acme',
  tool: 'echo',
  params_sha256: 'a'.repeat(64),
  jti: 'j'.repeat(43),
  decision_id: 'd'.repeat(43),
  request_id: 'req-1',
  trace_id: 'trace-1',
  policy_bundle: 'b'.repeat(64),
  ledger: { index: 1, entry_hash: 'c'.repeat(64) },
  approvals: [],
  constraints: DEFAULT_CONSTRAINTS,
};

describe('GEI Issuer: configuration', () => {
  it.each<[string, Partial<IssuerConfig>]>([
    ['an empty iss', { iss: '' }],
    ['a numeric iss', { iss: 1 as never }],
    ['an empty audience', { audience: '' }],
    ['a missing audience', { audience: undefined as never }],
    ['a numeric audience', { audience: 5 as never }],
    ['a zero lifetime', { envelopeTtlSec: 0 }],
    ['a fractional lifetime', { envelopeTtlSec: 1.5 }],
    ['a lifetime past the maximum', { envelopeTtlSec: MAX_ENVELOPE_TTL_SEC + 1 }],
    ['a string lifetime', { envelopeTtlSec: '60' as never }],
  ])('%s is a TypeError', (_name, over) => {
    expect(() => issuerOf(over)).toThrow(TypeError);
  });

  it('SPEC §3: lifetimes of 1 s and of the maximum are accepted; exp = iat + ttl', () => {
    expect(MAX_ENVELOPE_TTL_SEC).toBe(3600);
    for (const ttl of [1, MAX_ENVELOPE_TTL_SEC]) {
      const issued = issuerOf({ envelopeTtlSec: ttl }).issue(CLAIMS, T0 + 999);
      expect(issued.iat).toBe(Math.floor((T0 + 999) / 1000));
      expect(issued.exp).toBe(issued.iat + ttl);
      expect(issued.kid).toBe(issuerKey().kid);
      expect(issued.claims).toEqual({ ...CLAIMS, iss: ISS, aud: AUD, iat: issued.iat, exp: issued.exp });
      expect(Object.isFrozen(issued)).toBe(true);
    }
  });
});

describe('FC-INV-6 scheduled tasks: a run envelope expires at its slot end at the latest', () => {
  it('exp = min(iat + ttl, floor(notAfter / 1000)); without a bound, iat + ttl', () => {
    const issuer = issuerOf({ envelopeTtlSec: 60 });
    const at = T0 + 500;
    expect(issuer.issue(CLAIMS, at, T0 + 30_000).exp).toBe(T0 / 1000 + 30);
    expect(issuer.issue(CLAIMS, at, T0 + 30_999).exp).toBe(T0 / 1000 + 30);
    // A bound later than the lifetime changes nothing.
    expect(issuer.issue(CLAIMS, at, T0 + 600_000).exp).toBe(T0 / 1000 + 60);
    expect(issuer.issue(CLAIMS, at).exp).toBe(T0 / 1000 + 60);
  });

  it('a bound that leaves no lifetime is a TypeError: nothing is signed', () => {
    const issuer = issuerOf();
    expect(() => issuer.issue(CLAIMS, T0 + 500, T0 + 999)).toThrow(/expire before it is issued/);
    expect(() => issuer.issue(CLAIMS, T0 + 500, T0 - 60_000)).toThrow(/expire before it is issued/);
  });
});

describe('OE-INV-025: key changes are ledgered first, globally, under their own admin id', () => {
  it('rotation records both kids, the new public key and the reason; the new key then signs', async () => {
    const issuer = issuerOf();
    const next = issuerKey(5);
    const res = await issuer.rotate(OPERATOR, 'scheduled', next);
    const entry = (await entriesOf(r.ledger)).at(-1)!;
    expect(entry).toMatchObject({ type: 'admin.key_rotated', tenant: '*', actor: OPERATOR });
    expect(entry.request_id).toMatch(/^admin-[0-9a-f]{32}$/);
    expect(entry.trace_id).toBe(entry.request_id);
    expect(entry.payload).toEqual({
      kid: next.kid,
      previous_kid: issuerKey().kid,
      key_use: 'envelope',
      public_jwk: { ...next.publicJwk },
      reason: 'scheduled',
    });
    expect(res).toEqual({
      outcome: 'ok',
      kid: next.kid,
      previous_kid: issuerKey().kid,
      ledger: { index: entry.index, entry_hash: entry.entry_hash },
    });
    expect(issuer.currentKid()).toBe(next.kid);
    expect(issuer.issue(CLAIMS, T0).kid).toBe(next.kid);
    expect(
      issuer
        .jwks()
        .keys.map((k) => k.kid)
        .sort(),
    ).toEqual([issuerKey().kid, next.kid].sort());
  });

  it('a rotation to a key already seen is a TypeError and records nothing; the queue keeps working', async () => {
    const issuer = issuerOf({ retired: { keys: [issuerKey(6).publicJwk], revoked: [] } });
    const before = r.faulty.attempts.length;
    await expect(issuer.rotate(OPERATOR, 'x', issuerKey())).rejects.toThrow(TypeError);
    await expect(issuer.rotate(OPERATOR, 'x', issuerKey(6))).rejects.toThrow(TypeError);
    expect(r.faulty.attempts.length).toBe(before);
    expect(issuer.currentKid()).toBe(issuerKey().kid);
    // A failed change does not block the next one.
    expect(await issuer.rotate(OPERATOR, 'x', issuerKey(7))).toMatchObject({
      outcome: 'ok',
      kid: issuerKey(7).kid,
    });
  });

  it('a rotation without a key generates a fresh one', async () => {
    const issuer = issuerOf();
    const res = await issuer.rotate(OPERATOR, 'auto');
    expect(res).toMatchObject({ outcome: 'ok', previous_kid: issuerKey().kid });
    expect(issuer.currentKid()).not.toBe(issuerKey().kid);
  });

  it('revocation records the kid, the reason and when; a failed record revokes nothing', async () => {
    const issuer = issuerOf();
    await issuer.rotate(OPERATOR, 'r', issuerKey(8));
    r.faulty.mode = 'fail';
    expect(await issuer.revoke(issuerKey().kid, OPERATOR, 'leak')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    expect(issuer.jwks().revoked).toEqual([]);
    r.faulty.mode = 'ok';
    const res = await issuer.revoke(issuerKey().kid, OPERATOR, 'leak');
    const entry = (await entriesOf(r.ledger)).at(-1)!;
    expect(entry).toMatchObject({ type: 'admin.key_revoked', tenant: '*', actor: OPERATOR });
    expect(entry.request_id).toMatch(/^admin-[0-9a-f]{32}$/);
    expect(entry.payload).toEqual({
      kid: issuerKey().kid,
      key_use: 'envelope',
      reason: 'leak',
      revoked_at: new Date(r.clock()).toISOString(),
    });
    expect(res).toEqual({
      outcome: 'ok',
      kid: issuerKey().kid,
      ledger: { index: entry.index, entry_hash: entry.entry_hash },
    });
    expect(issuer.jwks().revoked).toEqual([issuerKey().kid]);
  });

  it('concurrent key changes are applied one after the other', async () => {
    const issuer = issuerOf();
    const [a, b] = await Promise.all([
      issuer.rotate(OPERATOR, 'a', issuerKey(9)),
      issuer.revoke(issuerKey().kid, OPERATOR, 'b'),
    ]);
    expect(a).toMatchObject({ outcome: 'ok', kid: issuerKey(9).kid });
    expect(b).toMatchObject({ outcome: 'ok', kid: issuerKey().kid });
  });
});
