import { execFileSync } from 'node:child_process';
import { open as openAsync } from 'node:fs/promises';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  createKeyRing,
  encodeBase64url,
  FailclosedError,
  jwkThumbprint,
  keyRingFromJwks,
  parsePublicJwk,
  publicKeyFromKeyObject,
  publicKeyFromRaw,
  verifyCounts,
  verifyEd25519,
  verifyEd25519Async,
  VERIFY_POOL_MAX_QUEUED,
  VERIFY_POOL_WAIT_MS,
} from '../../src/kernel/index.js';
import {
  exportSigningKeyJwk,
  generateSigningKey,
  importSigningKeyJwk,
  signEd25519,
  signingKeyFromSeed,
} from '../../src/kernel/signing/index.js';
import { VECTORS_DIR } from '../support/paths.js';

const ED = join(VECTORS_DIR, 'ed25519');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof FailclosedError ? err.code : `not a FailclosedError: ${String(err)}`;
  }
}

interface CctvRecord {
  number: number;
  key: string;
  sig: string;
  msg: string;
  flags: string[] | null;
}
const cctv = JSON.parse(readFileSync(join(ED, 'cctv_ed25519vectors.json'), 'utf8')) as CctvRecord[];
const STRICT_REJECT = [
  'low_order_A',
  'low_order_R',
  'non_canonical_A',
  'non_canonical_R',
  'low_order_residue',
];

describe('RFC 7638 thumbprint kid', () => {
  it('matches the RFC 8037 appendix A.3 example', () => {
    expect(jwkThumbprint({ x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' })).toBe(
      'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k',
    );
  });
});

describe('parsePublicJwk (SPEC §8, FC-INV-3)', () => {
  const { x } = signingKeyFromSeed(Buffer.alloc(32, 7)).publicJwk;
  const kid = jwkThumbprint({ x });

  it('accepts a well-formed key, with or without its thumbprint kid, alg and use', () => {
    expect(parsePublicJwk({ kty: 'OKP', crv: 'Ed25519', x }).kid).toBe(kid);
    expect(parsePublicJwk({ kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' }).jwk).toEqual({
      kty: 'OKP',
      crv: 'Ed25519',
      x,
      kid,
    });
  });

  it.each([
    ['not an object', 'x'],
    ['null', null],
    ['array', [x]],
    ['wrong kty', { kty: 'EC', crv: 'Ed25519', x }],
    ['wrong crv', { kty: 'OKP', crv: 'X25519', x }],
    ['private member d', { kty: 'OKP', crv: 'Ed25519', x, d: x }],
    ['unknown member', { kty: 'OKP', crv: 'Ed25519', x, ext: true }],
    ['padded x', { kty: 'OKP', crv: 'Ed25519', x: `${x}=` }],
    ['standard base64 x', { kty: 'OKP', crv: 'Ed25519', x: x.replace(/-/g, '+').replace(/_/g, '/') + '+' }],
    ['short x', { kty: 'OKP', crv: 'Ed25519', x: x.slice(0, 40) }],
    ['kid not the thumbprint', { kty: 'OKP', crv: 'Ed25519', x, kid: 'issuer-1' }],
    ['wrong alg', { kty: 'OKP', crv: 'Ed25519', x, alg: 'ES256' }],
    ['wrong use', { kty: 'OKP', crv: 'Ed25519', x, use: 'enc' }],
    [
      'identity point',
      { kty: 'OKP', crv: 'Ed25519', x: encodeBase64url(Buffer.from('01'.padEnd(64, '0'), 'hex')) },
    ],
  ])('rejects %s with ERR_KEY_INVALID', (_name, input) => {
    expect(codeOf(() => parsePublicJwk(input))).toBe('ERR_KEY_INVALID');
  });

  it('rejects every low_order_A and non_canonical_A CCTV key and accepts every other (SPEC §7 scenario 10)', () => {
    let rejected = 0;
    for (const r of cctv) {
      const flags = r.flags ?? [];
      const bad = flags.includes('low_order_A') || flags.includes('non_canonical_A');
      const code = codeOf(() => publicKeyFromRaw(Buffer.from(r.key, 'hex')));
      expect({ n: r.number, code }).toEqual({ n: r.number, code: bad ? 'ERR_KEY_INVALID' : undefined });
      if (bad) rejected++;
    }
    expect(rejected).toBeGreaterThan(0);
  });
});

describe('verifyEd25519 against CCTV (strict policy, SPEC §8)', () => {
  it('accepts exactly the records with no strict-reject flag (43 of 914)', () => {
    const accepted: number[] = [];
    for (const r of cctv) {
      let ok = false;
      try {
        const key = publicKeyFromRaw(Buffer.from(r.key, 'hex'));
        ok = verifyEd25519(key.keyObject, Buffer.from(r.msg, 'utf8'), Buffer.from(r.sig, 'hex'));
      } catch {
        ok = false;
      }
      const expected = !(r.flags ?? []).some((f) => STRICT_REJECT.includes(f));
      expect({ n: r.number, ok }).toEqual({ n: r.number, ok: expected });
      if (ok) accepted.push(r.number);
    }
    expect(accepted).toHaveLength(43);
  });

  it('verifyEd25519Async (the hot path, off the event loop) gives every record the same answer', async () => {
    for (const r of cctv) {
      let key: ReturnType<typeof publicKeyFromRaw> | undefined;
      try {
        key = publicKeyFromRaw(Buffer.from(r.key, 'hex'));
      } catch {
        continue;
      }
      const msg = Buffer.from(r.msg, 'utf8');
      const sig = Buffer.from(r.sig, 'hex');
      const ok = await verifyEd25519Async(key.keyObject, msg, sig);
      expect({ n: r.number, ok }).toEqual({ n: r.number, ok: verifyEd25519(key.keyObject, msg, sig) });
    }
  });

  it('refuses a small-order KeyObject built around the registry checks', () => {
    const r = cctv.find((v) => v.flags?.includes('low_order_A') && !v.flags.includes('low_order_R'))!;
    const raw = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(r.key, 'hex').toString('base64url') },
      format: 'jwk',
    });
    expect(verifyEd25519(raw, Buffer.from(r.msg, 'utf8'), Buffer.from(r.sig, 'hex'))).toBe(false);
  });

  it('refuses private keys, other curves and wrong signature lengths', () => {
    const k = signingKeyFromSeed(Buffer.alloc(32, 1));
    const data = Buffer.from('data');
    const sig = signEd25519(k, data);
    expect(verifyEd25519(k.publicKey, data, sig)).toBe(true);
    expect(verifyEd25519(k.privateKey, data, sig)).toBe(false);
    expect(verifyEd25519(generateKeyPairSync('ed448').publicKey, data, sig)).toBe(false);
    expect(verifyEd25519(k.publicKey, data, sig.subarray(0, 63))).toBe(false);
    expect(verifyEd25519(k.publicKey, data, Buffer.concat([sig, Buffer.alloc(1)]))).toBe(false);
    const small = cctv.find((v) => v.flags?.includes('low_order_A') && !v.flags.includes('low_order_R'))!;
    const smallKey = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(small.key, 'hex').toString('base64url') },
      format: 'jwk',
    });
    // The same refusals without the event loop's verification; never a rejection.
    return expect(
      Promise.all([
        verifyEd25519Async(k.publicKey, data, sig),
        verifyEd25519Async(k.privateKey, data, sig),
        verifyEd25519Async(generateKeyPairSync('ed448').publicKey, data, sig),
        verifyEd25519Async(k.publicKey, data, sig.subarray(0, 63)),
        verifyEd25519Async(k.publicKey, data, Buffer.concat([sig, Buffer.alloc(1)])),
        verifyEd25519Async(smallKey, Buffer.from(small.msg, 'utf8'), Buffer.from(small.sig, 'hex')),
        verifyEd25519Async(k.publicKey, Buffer.from('other data'), sig),
        verifyEd25519Async(undefined as never, data, sig),
      ]),
    ).resolves.toEqual([true, false, false, false, false, false, false, false]);
  });
});

describe("verifyEd25519Async with libuv's thread pool full", () => {
  it('does not wait for the pool, nor queue more on it: the same answers, from the event loop', async () => {
    // Every pool thread blocked in open(2) of a FIFO no one writes (a stuck disk or resolver).
    const dir = mkdtempSync(join(tmpdir(), 'fc-pool-'));
    const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
    const fifos = Array.from({ length: threads }, (_, i) => join(dir, `f${i}`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const blocked = fifos.map((f) => openAsync(f, 'r'));
    try {
      const k = signingKeyFromSeed(Buffer.alloc(32, 2));
      const data = Buffer.from('while the pool is full');
      const sig = signEd25519(k, data);
      const before = verifyCounts();
      // Three times what may be queued: the first ones are queued and answered in place after the
      // wait, the rest at once, none queued (a stuck pool holds no call's data beyond the bound).
      const n = 3 * VERIFY_POOL_MAX_QUEUED;
      // Resolved while every pool thread is still held: the FIFOs are released only after.
      const answers = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          verifyEd25519Async(k.publicKey, i % 2 === 0 ? data : Buffer.from('other'), sig),
        ),
      );
      expect(answers).toEqual(Array.from({ length: n }, (_, i) => i % 2 === 0));
      const after = verifyCounts();
      expect(after.pool - before.pool).toBe(0);
      expect(after.waited - before.waited).toBe(VERIFY_POOL_MAX_QUEUED);
      expect(after.overflow - before.overflow).toBe(n - VERIFY_POOL_MAX_QUEUED);
    } finally {
      // A writer releases each blocked open; then everything is closed.
      for (const f of fifos) closeSync(openSync(f, 'w'));
      for (const h of await Promise.all(blocked)) await h.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // The queued jobs drained: the pool takes verifications again.
    await vi.waitFor(async () => {
      const before = verifyCounts();
      const k = signingKeyFromSeed(Buffer.alloc(32, 3));
      expect(await verifyEd25519Async(k.publicKey, Buffer.from('x'), signEd25519(k, Buffer.from('x')))).toBe(
        true,
      );
      expect(verifyCounts().pool - before.pool).toBe(1);
    });
  });

  it('a turn of the event loop held past the wait: the answers the pool has are taken, none done again', async () => {
    const k = signingKeyFromSeed(Buffer.alloc(32, 4));
    const data = Buffer.from('after a long turn');
    const sig = signEd25519(k, data);
    const before = verifyCounts();
    const pending = Array.from({ length: VERIFY_POOL_MAX_QUEUED }, () =>
      verifyEd25519Async(k.publicKey, data, sig),
    );
    // Hold the loop well past the wait (a checkpoint, a large answer): the pool answers meanwhile,
    // and the waits' timers fire in the same turn as those answers are delivered. The pool's four
    // threads need CPU for that: held for 4 × the wait (100 ms), a run of the whole suite on two
    // busy cores once had one of the 64 unanswered, rightly verified in place; so did a run held
    // for a second on a machine running a second suite beside it. Three seconds.
    const until = Date.now() + Math.max(4 * VERIFY_POOL_WAIT_MS, 3000);
    while (Date.now() < until);
    expect(await Promise.all(pending)).toEqual(Array.from({ length: VERIFY_POOL_MAX_QUEUED }, () => true));
    const after = verifyCounts();
    expect(after.pool - before.pool).toBe(VERIFY_POOL_MAX_QUEUED);
    expect(after.waited - before.waited).toBe(0);
  });
});

describe('verifyEd25519 against Wycheproof ed25519_test.json', () => {
  interface Group {
    publicKey: { pk: string };
    tests: { tcId: number; msg: string; sig: string; result: 'valid' | 'invalid' }[];
  }
  const w = JSON.parse(readFileSync(join(ED, 'wycheproof_ed25519_test.json'), 'utf8')) as {
    testGroups: Group[];
  };

  it('registration plus verification matches every result (151 tests)', () => {
    let n = 0;
    for (const g of w.testGroups) {
      const key = publicKeyFromRaw(Buffer.from(g.publicKey.pk, 'hex'));
      for (const t of g.tests) {
        const ok = verifyEd25519(key.keyObject, Buffer.from(t.msg, 'hex'), Buffer.from(t.sig, 'hex'));
        expect({ tcId: t.tcId, ok }).toEqual({ tcId: t.tcId, ok: t.result === 'valid' });
        n++;
      }
    }
    expect(n).toBe(151);
  });

  it('verifyEd25519Async matches every result too', async () => {
    for (const g of w.testGroups) {
      const key = publicKeyFromRaw(Buffer.from(g.publicKey.pk, 'hex'));
      const oks = await Promise.all(
        g.tests.map((t) =>
          verifyEd25519Async(key.keyObject, Buffer.from(t.msg, 'hex'), Buffer.from(t.sig, 'hex')),
        ),
      );
      expect(g.tests.map((t, i) => ({ tcId: t.tcId, ok: oks[i] }))).toEqual(
        g.tests.map((t) => ({ tcId: t.tcId, ok: t.result === 'valid' })),
      );
    }
  });
});

describe('deterministic signing, RFC 8032 §7.1', () => {
  const v = JSON.parse(readFileSync(join(ED, 'rfc8032_section7_1.json'), 'utf8')) as {
    tests: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
  };
  it.each(v.tests.map((t) => [t.name, t] as const))('%s', (_name, t) => {
    const key = signingKeyFromSeed(Buffer.from(t.secretKey, 'hex'));
    expect(Buffer.from(key.publicJwk.x, 'base64url').toString('hex')).toBe(t.publicKey);
    const sig = signEd25519(key, Buffer.from(t.message, 'hex'));
    expect(sig.toString('hex')).toBe(t.signature);
    expect(verifyEd25519(key.publicKey, Buffer.from(t.message, 'hex'), sig)).toBe(true);
  });
});

describe('signing keys as private JWK', () => {
  it('round-trips generate → export → import with the same kid and signatures', () => {
    const k = generateSigningKey();
    const jwk = exportSigningKeyJwk(k);
    const back = importSigningKeyJwk(JSON.parse(JSON.stringify(jwk)));
    expect(back.kid).toBe(k.kid);
    expect(k.kid).toBe(jwkThumbprint(k.publicJwk));
    expect(signEd25519(back, Buffer.from('m')).equals(signEd25519(k, Buffer.from('m')))).toBe(true);
    expect(publicKeyFromKeyObject(back.publicKey).kid).toBe(k.kid);
  });

  it('rejects mismatched, incomplete or decorated private JWKs', () => {
    const a = exportSigningKeyJwk(signingKeyFromSeed(Buffer.alloc(32, 2)));
    const b = exportSigningKeyJwk(signingKeyFromSeed(Buffer.alloc(32, 3)));
    for (const bad of [
      { ...a, x: b.x, kid: undefined },
      { ...a, kid: b.kid },
      { kty: a.kty, crv: a.crv, x: a.x },
      { ...a, extra: 1 },
      { ...a, d: `${a.d}=` },
      { ...a, d: a.d.slice(0, 30) },
      { ...a, crv: 'Ed448' },
      null,
    ]) {
      const cleaned = bad && Object.fromEntries(Object.entries(bad).filter(([, v]) => v !== undefined));
      expect(codeOf(() => importSigningKeyJwk(cleaned))).toBe('ERR_KEY_INVALID');
    }
  });
});

describe('KeyRing with revocation (SPEC §3: pinned, unrevoked issuer key)', () => {
  const k1 = signingKeyFromSeed(Buffer.alloc(32, 4));
  const k2 = signingKeyFromSeed(Buffer.alloc(32, 5));
  const k3 = signingKeyFromSeed(Buffer.alloc(32, 6));

  it('looks keys up as active, revoked or unknown; revocation wins and is permanent', () => {
    const ring = createKeyRing();
    ring.add(k1.publicJwk);
    ring.add(publicKeyFromKeyObject(k2.publicKey));
    ring.revoke(k3.kid);
    ring.add(k3.publicJwk);
    const found = ring.lookup(k1.kid);
    expect(found.status).toBe('active');
    const again = ring.lookup(k1.kid);
    expect(found.status === 'active' && again.status === 'active' && found.key === again.key).toBe(true);
    expect(ring.lookup(k3.kid).status).toBe('revoked');
    ring.revoke(k2.kid);
    ring.add(k2.publicJwk);
    expect(ring.lookup(k2.kid).status).toBe('revoked');
    expect(ring.lookup('nope').status).toBe('unknown');
    expect(ring.lookup(42).status).toBe('unknown');
    expect(() => ring.revoke('not a kid')).toThrow(TypeError);
  });

  it('round-trips through a JWKS with a revoked list', () => {
    const ring = createKeyRing();
    ring.add(k1.publicJwk);
    ring.add(k2.publicJwk);
    ring.revoke(k2.kid);
    ring.revoke(k3.kid);
    const jwks = ring.toJwks();
    expect(jwks.keys.map((k) => k.kid)).toEqual([k1.kid, k2.kid].sort());
    expect(jwks.revoked).toEqual([k2.kid, k3.kid].sort());
    for (const copy of [
      keyRingFromJwks(JSON.parse(JSON.stringify(jwks))),
      keyRingFromJwks(JSON.stringify(jwks)),
    ]) {
      expect(copy.lookup(k1.kid).status).toBe('active');
      expect(copy.lookup(k2.kid).status).toBe('revoked');
      expect(copy.lookup(k3.kid).status).toBe('revoked');
      expect(copy.toJwks()).toEqual(jwks);
    }
  });

  it.each([
    ['not an object', []],
    ['no keys', { revoked: [] }],
    ['unknown member', { keys: [], extra: 1 }],
    ['duplicate key', { keys: [k1.publicJwk, k1.publicJwk] }],
    ['bad key', { keys: [{ ...k1.publicJwk, d: 'x' }] }],
    ['revoked not a list', { keys: [], revoked: k1.kid }],
    ['malformed revoked kid', { keys: [], revoked: ['short'] }],
  ])('refuses a JWKS with %s', (_name, input) => {
    expect(codeOf(() => keyRingFromJwks(input))).toBe('ERR_KEY_INVALID');
  });

  it('refuses a JWKS text with duplicate members through the strict parser', () => {
    const text = `{"keys":[],"keys":[${JSON.stringify(k1.publicJwk)}]}`;
    expect(codeOf(() => keyRingFromJwks(text))).toBe('ERR_JSON_DUPLICATE_KEY');
  });
});
