import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompactSign, compactVerify } from 'jose';
import {
  canonicalize,
  createKeyRing,
  ENVELOPE_MAX_LENGTH,
  ENVELOPE_TYP,
  FailclosedError,
  isEnvelopeClaims,
  parseEnvelopeClaims,
  sha256Hex,
  computeParamsSha256,
  verifyEnvelope,
  type EnvelopeClaims,
  type JsonValue,
  type VerifyEnvelopeContext,
} from '../../src/kernel/index.js';
import { signEnvelope, signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import {
  baseClaims,
  baseContext,
  headerText,
  NOW_MS,
  TEST_KEY,
  toVerifyContext,
} from '../fixtures/envelope-reject/generate.js';
import { REPO_ROOT } from '../support/paths.js';

function ctx(patch: Partial<VerifyEnvelopeContext> = {}): VerifyEnvelopeContext {
  return { ...toVerifyContext(baseContext()), ...patch };
}

function codeOf(result: ReturnType<typeof verifyEnvelope>): string {
  return result.outcome === 'allow' ? 'allow' : result.code;
}

describe('signEnvelope / verifyEnvelope round trip (SPEC §3)', () => {
  it('issues the canonical header and verifies to frozen claims equal to the input', () => {
    const token = signEnvelope(baseClaims(), TEST_KEY);
    const [h] = token.split('.');
    expect(Buffer.from(h!, 'base64url').toString('utf8')).toBe(headerText());
    expect(headerText()).toBe(`{"alg":"EdDSA","kid":"${TEST_KEY.kid}","typ":"${ENVELOPE_TYP}"}`);
    const result = verifyEnvelope(token, ctx());
    expect(result.outcome).toBe('allow');
    if (result.outcome !== 'allow') return;
    expect(result.claims).toEqual(baseClaims());
    expect(result.header).toEqual({ alg: 'EdDSA', kid: TEST_KEY.kid, typ: ENVELOPE_TYP });
    expect(Object.isFrozen(result.claims.constraints.fs_read)).toBe(true);
    expect(Object.isFrozen(result.claims.ledger)).toBe(true);
  });

  it('is deterministic, also across key objects built from the same seed (GEI Determinism)', () => {
    const again = signingKeyFromSeed(
      Buffer.from(TEST_KEY.privateKey.export({ format: 'jwk' }).d!, 'base64url'),
    );
    expect(signEnvelope(baseClaims(), again)).toBe(signEnvelope(baseClaims(), TEST_KEY));
  });

  it('refuses to issue claims the verifier would refuse', () => {
    const bad = { ...baseClaims(), extra: 1 } as unknown as EnvelopeClaims;
    expect(() => signEnvelope(bad, TEST_KEY)).toThrow(FailclosedError);
    expect(() => signEnvelope({ ...baseClaims(), exp: 1.5 }, TEST_KEY)).toThrow(FailclosedError);
    try {
      signEnvelope(bad, TEST_KEY);
      expect.unreachable();
    } catch (err) {
      expect(err instanceof FailclosedError && err.code).toBe('ERR_ENVELOPE_CLAIMS');
    }
  });
});

describe('claims typing', () => {
  it('parseEnvelopeClaims copies and freezes, and refuses with ERR_ENVELOPE_CLAIMS', () => {
    const input = baseClaims();
    const parsed = parseEnvelopeClaims(input);
    expect(parsed).toEqual(input);
    expect(parsed.approvals).not.toBe(input.approvals);
    expect(Object.isFrozen(parsed.constraints)).toBe(true);
    try {
      parseEnvelopeClaims({ ...input, approvals: 'x' });
      expect.unreachable();
    } catch (err) {
      expect(err instanceof FailclosedError && err.code).toBe('ERR_ENVELOPE_CLAIMS');
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ['max_cost_cents as a number', { constraints: { ...baseClaims().constraints, max_cost_cents: 250 } }],
    ['long approval list at the limit', { approvals: Array.from({ length: 64 }, (_, i) => `a${i}`) }],
    ['string at the limit', { sub: 's'.repeat(512) }],
  ])('accepts %s', (_n, patch) => {
    expect(isEnvelopeClaims({ ...baseClaims(), ...patch })).toBe(true);
  });

  it.each<[string, Record<string, unknown>]>([
    ['approvals over the limit', { approvals: Array.from({ length: 65 }, (_, i) => `a${i}`) }],
    ['string over the limit', { sub: 's'.repeat(513) }],
    ['unsafe integer', { iat: 2 ** 53 }],
    ['negative timeout', { constraints: { ...baseClaims().constraints, timeout_ms: -1 } }],
    ['network as a string', { constraints: { ...baseClaims().constraints, network: 'false' } }],
    ['egress item empty', { constraints: { ...baseClaims().constraints, egress: [''] } }],
    ['ledger with an extra member', { ledger: { ...baseClaims().ledger, prev: 'x' } }],
    ['policy bundle too short', { policy_bundle: 'ab' }],
    ['null claim', { aud: null }],
    ['lone surrogate', { sub: 'agent\ud800' }],
  ])('refuses %s', (_n, patch) => {
    expect(isEnvelopeClaims({ ...baseClaims(), ...patch })).toBe(false);
  });
});

describe('verifyEnvelope edge cases', () => {
  // Signed inside the tests, not while collecting them: a mutant that makes signing throw must
  // fail tests, not the file's collection (which the mutation runner does not count as a kill).
  let signed: string | undefined;
  const tokenOf = (): string => (signed ??= signEnvelope(baseClaims(), TEST_KEY));

  it.each<[string, () => unknown, string]>([
    ['undefined', () => undefined, 'ERR_ENVELOPE_MISSING'],
    ['null', () => null, 'ERR_ENVELOPE_MISSING'],
    ['a number', () => 42, 'ERR_ENVELOPE_MALFORMED'],
    ['an object', () => ({ token: tokenOf() }), 'ERR_ENVELOPE_MALFORMED'],
    ['too long', () => `${tokenOf()}${'A'.repeat(ENVELOPE_MAX_LENGTH)}`, 'ERR_ENVELOPE_MALFORMED'],
    [
      'empty header segment',
      () => `.${tokenOf().split('.')[1]}.${tokenOf().split('.')[2]}`,
      'ERR_ENVELOPE_MALFORMED',
    ],
    ['leading whitespace', () => ` ${tokenOf()}`, 'ERR_ENVELOPE_MALFORMED'],
  ])('denies %s', (_n, input, code) => {
    expect(codeOf(verifyEnvelope(input(), ctx()))).toBe(code);
  });

  it('applies the clock tolerance at its exact boundaries', () => {
    const c = baseClaims();
    const at = (ms: number): string => codeOf(verifyEnvelope(tokenOf(), ctx({ now: () => ms })));
    expect(at((c.exp + 5) * 1000 - 1)).toBe('allow');
    expect(at((c.exp + 5) * 1000)).toBe('ERR_ENVELOPE_EXPIRED');
    expect(at((c.iat - 5) * 1000)).toBe('allow');
    expect(at((c.iat - 5) * 1000 - 1)).toBe('ERR_ENVELOPE_NOT_YET_VALID');
  });

  it('denies a zero or negative lifetime', () => {
    const c = baseClaims();
    const now = (): number => c.iat * 1000;
    for (const exp of [c.iat, c.iat - 1]) {
      expect(codeOf(verifyEnvelope(signEnvelope({ ...c, exp }, TEST_KEY), ctx({ now })))).toBe(
        'ERR_ENVELOPE_LIFETIME',
      );
    }
    expect(codeOf(verifyEnvelope(signEnvelope({ ...c, exp: c.iat + 300 }, TEST_KEY), ctx({ now })))).toBe(
      'allow',
    );
  });

  it('never throws: failing dependencies and bad configuration deny', () => {
    const boom = (): never => {
      throw new Error('boom');
    };
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ now: boom })))).toBe('ERR_INTERNAL');
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ now: () => Number.NaN })))).toBe('ERR_INTERNAL');
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ isKnownPolicyBundle: boom })))).toBe('ERR_INTERNAL');
    expect(
      codeOf(verifyEnvelope(tokenOf(), ctx({ isKnownPolicyBundle: () => 1 as unknown as boolean }))),
    ).toBe('ERR_ENVELOPE_POLICY_UNKNOWN');
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ clockToleranceSec: -1 })))).toBe('ERR_INTERNAL');
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ maxLifetimeSec: 0 })))).toBe('ERR_INTERNAL');
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ keys: { lookup: boom } as never })))).toBe('ERR_INTERNAL');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const call = { ...baseContext().call, params: cyclic as JsonValue };
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ call })))).toBe('ERR_ENVELOPE_PARAMS_MISMATCH');
  });

  it('denies with an empty key ring and after revocation', () => {
    const ring = createKeyRing();
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ keys: ring })))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
    ring.add(TEST_KEY.publicJwk);
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ keys: ring })))).toBe('allow');
    ring.revoke(TEST_KEY.kid);
    expect(codeOf(verifyEnvelope(tokenOf(), ctx({ keys: ring })))).toBe('ERR_ENVELOPE_KID_REVOKED');
  });
});

describe('interop with jose (RFC 7515 compact serialization)', () => {
  it('an envelope we sign verifies with jose.compactVerify', async () => {
    const token = signEnvelope(baseClaims(), TEST_KEY);
    const { payload, protectedHeader } = await compactVerify(token, TEST_KEY.publicKey, {
      algorithms: ['EdDSA'],
    });
    expect(protectedHeader).toEqual({ alg: 'EdDSA', kid: TEST_KEY.kid, typ: ENVELOPE_TYP });
    expect(Buffer.from(payload).toString('utf8')).toBe(canonicalize(baseClaims() as unknown as JsonValue));
  });

  it('a JWS jose signs with our header and canonical claims verifies with ours, byte-identical', async () => {
    const payload = Buffer.from(canonicalize(baseClaims() as unknown as JsonValue), 'utf8');
    const token = await new CompactSign(payload)
      .setProtectedHeader({ alg: 'EdDSA', kid: TEST_KEY.kid, typ: ENVELOPE_TYP })
      .sign(TEST_KEY.privateKey);
    expect(codeOf(verifyEnvelope(token, ctx()))).toBe('allow');
    expect(token).toBe(signEnvelope(baseClaims(), TEST_KEY));
  });

  it('a jose-signed JWS with a non-canonical header order is refused', async () => {
    const payload = Buffer.from(canonicalize(baseClaims() as unknown as JsonValue), 'utf8');
    const token = await new CompactSign(payload)
      .setProtectedHeader({ typ: ENVELOPE_TYP, alg: 'EdDSA', kid: TEST_KEY.kid })
      .sign(TEST_KEY.privateKey);
    expect(codeOf(verifyEnvelope(token, ctx()))).toBe('ERR_ENVELOPE_NONCANONICAL');
  });
});

describe('docs/envelope.md worked example', () => {
  it('is what the code produces, and verifies within the stated window', () => {
    const key = signingKeyFromSeed(
      Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'),
    );
    const params: JsonValue = { path: '/srv/reports/q4.txt', max_lines: 100 };
    const claims: EnvelopeClaims = {
      iss: 'control-plane',
      aud: 'executor-1',
      sub: 'agent:reporter',
      tenant: 'acme',
      tool: 'fs.read',
      params_sha256: computeParamsSha256(params),
      jti: 'n-0001',
      iat: 1767225600,
      exp: 1767225660,
      decision_id: 'dec-0001',
      request_id: 'req-0001',
      trace_id: 'trace-0001',
      policy_bundle: sha256Hex('example policy bundle'),
      ledger: { index: 7, entry_hash: sha256Hex('example ledger entry') },
      approvals: [],
      constraints: {
        timeout_ms: 5000,
        max_output_bytes: 65536,
        memory_bytes: 134217728,
        network: false,
        egress: [],
        fs_read: ['/srv/reports'],
        fs_write: [],
        max_cost_cents: null,
      },
    };
    const token = signEnvelope(claims, key);
    const doc = readFileSync(join(REPO_ROOT, 'docs/envelope.md'), 'utf8');
    for (const text of [
      token,
      canonicalize(claims as unknown as JsonValue),
      key.kid,
      key.publicJwk.x,
      claims.params_sha256,
    ]) {
      expect(doc).toContain(text);
    }
    const ring = createKeyRing();
    ring.add(key.publicJwk);
    const at = (ms: number): string =>
      codeOf(
        verifyEnvelope(token, {
          keys: ring,
          audience: 'executor-1',
          now: () => ms,
          clockToleranceSec: 5,
          maxLifetimeSec: 60,
          call: { tool: 'fs.read', tenant: 'acme', params },
          isKnownPolicyBundle: (h) => h === claims.policy_bundle,
        }),
      );
    expect([at(1767225595000), at(1767225664999)]).toEqual(['allow', 'allow']);
    expect([at(1767225594999), at(1767225665000)]).toEqual([
      'ERR_ENVELOPE_NOT_YET_VALID',
      'ERR_ENVELOPE_EXPIRED',
    ]);
  });
});

describe('fixture sanity', () => {
  it('the base context clock is the fixture clock', () => {
    expect(baseContext().now_ms).toBe(NOW_MS);
  });
});
