/**
 * The trust-roots check (SPEC §5 "Trust roots out of band"; L7 ledger protection, L7 identity and
 * signing): under a pinned trust file the bundle is for the pinned origin and carries only pinned
 * issuer and approver keys with the pinned material. Each test names the finding code.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { ORIGIN } from '../ledger/fixtures.js';
import { codesOf } from './forge.js';
import { makeBundle, mutable, text, type MutableBundle } from './helpers.js';
import { ISSUER_KEY } from './realistic.js';

let base: Awaited<ReturnType<typeof makeBundle>>;
const approver = generateSigningKey();

/** The trust file an auditor pinned, with `change` applied. */
function trustFile(change: (t: MutableBundle) => void = () => undefined): string {
  const t: MutableBundle = {
    format: 'failclosed.trust-roots/v1',
    origin: ORIGIN,
    ledger: { vkey: base.vkey },
    issuer: { keys: [{ ...ISSUER_KEY.publicJwk, kid: ISSUER_KEY.kid }], revoked: [] },
    approvers: { keys: [{ ...approver.publicJwk, kid: approver.kid }], revoked: [] },
  };
  change(t);
  return JSON.stringify(t);
}

beforeAll(async () => {
  base = await makeBundle(6);
});

const check = (m: MutableBundle, trust = trustFile()) =>
  codesOf(verifyBundle(text(m), { trust }), 'trust-roots');

describe('SPEC §5: the bundle carries only the pinned trust roots', () => {
  it('the pinned keys and origin pass; without a trust file the check is skipped', () => {
    expect(check(mutable(base.text))).toEqual([]);
    const r = verifyBundle(base.text, { trustedKey: base.vkey });
    expect(r.checks.find((c) => c.id === 'trust-roots')?.status).toBe('skip');
  });

  it('a bundle for another origin: TRUST_ROOT_MISMATCH', () => {
    const m = mutable(base.text);
    m['origin'] = 'other.origin/x';
    expect(check(m)).toEqual(['TRUST_ROOT_MISMATCH']);
  });

  it.each(['issuer', 'approvers'])('an unpinned %s key in the bundle: TRUST_ROOT_MISMATCH', (slot) => {
    const m = mutable(base.text);
    const stranger = generateSigningKey();
    m['jwks'][slot] = { keys: [{ ...stranger.publicJwk, kid: stranger.kid }], revoked: [] };
    expect(check(m)).toEqual(['TRUST_ROOT_MISMATCH']);
  });

  it.each(['issuer', 'approvers'])('an unusable %s key in the bundle: TRUST_ROOT_MISMATCH', (slot) => {
    const m = mutable(base.text);
    m['jwks'][slot] = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }], revoked: [] };
    expect(check(m)).toEqual(['TRUST_ROOT_MISMATCH']);
  });

  it('a pinned kid with other key material: TRUST_ROOT_MISMATCH', () => {
    const m = mutable(base.text);
    const other = generateSigningKey();
    m['jwks'].approvers = { keys: [{ ...other.publicJwk, kid: approver.kid }], revoked: [] };
    expect(check(m)).toEqual(['TRUST_ROOT_MISMATCH']);
  });

  it('a bundle whose key slots are not JWKS carries no key to compare', () => {
    const m = mutable(base.text);
    m['jwks'].approvers = 'none';
    m['jwks'].issuer = { keys: 'none' };
    expect(check(m)).toEqual([]);
    for (const slot of [null, 7, ['keys']]) {
      const n = mutable(base.text);
      n['jwks'].approvers = slot;
      expect(check(n)).toEqual([]);
    }
  });
});
