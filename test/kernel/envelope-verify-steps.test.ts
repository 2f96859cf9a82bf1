/**
 * The verifier's SPEC §3 steps one by one, at their edges: what each step refuses, with which
 * code, in which order, and the limits it applies to attacker-controlled input. Steps are
 * numbered as in `src/kernel/envelope/verify.ts`: 1 well-formed compact JWS, 2 header, 3 kid,
 * 4 signature, 5 canonical payload, 6 typed claims, 7 aud, 8 iat/exp/lifetime, 9 tool and
 * tenant, 10 params_sha256, 11 policy bundle.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  computeParamsSha256,
  createKeyRing,
  encodeBase64url,
  ENVELOPE_MAX_LENGTH,
  ENVELOPE_TYP,
  sha256Hex,
  verifyEnvelope,
  type EnvelopeClaims,
  type JsonValue,
  type KeyRing,
  type VerifyEnvelopeContext,
} from '../../src/kernel/index.js';
import { headerCacheStateForTesting } from '../../src/kernel/envelope/verify.js';
import { signEd25519, signEnvelope, type SigningKey } from '../../src/kernel/signing/index.js';
import {
  baseClaims,
  baseContext,
  headerText,
  NOW_MS,
  rawJws,
  REVOKED_KEY,
  TEST_KEY,
  toVerifyContext,
  UNPINNED_KEY,
} from '../fixtures/envelope-reject/generate.js';

const NOW_SEC = NOW_MS / 1000;
// Signed inside the tests, not while collecting them: a mutant that makes signing throw must
// fail tests, not the file's collection (which the mutation runner does not count as a kill).
let signed: string | undefined;
const good = (): string => (signed ??= signEnvelope(baseClaims(), TEST_KEY));
const h = (): string => good().split('.')[0]!;
const p = (): string => good().split('.')[1]!;
const s = (): string => good().split('.')[2]!;

function ctx(patch: Partial<VerifyEnvelopeContext> = {}): VerifyEnvelopeContext {
  return { ...toVerifyContext(baseContext()), ...patch };
}

function codeOf(token: unknown, c: VerifyEnvelopeContext = ctx()): string {
  const result = verifyEnvelope(token, c);
  return result.outcome === 'allow' ? 'allow' : result.code;
}

/** A compact JWS over the exact segment texts given, signed with `key` over `h.p`. */
function signSegments(h: string, p: string, key: SigningKey = TEST_KEY): string {
  const input = `${h}.${p}`;
  return `${input}.${encodeBase64url(signEd25519(key, Buffer.from(input, 'latin1')))}`;
}

/** The same bytes as `segment` decodes to, spelled with non-zero trailing bits (lenient decoders accept it). */
function nonCanonicalSpelling(segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(segment.at(-1)!);
  const spelled = `${segment.slice(0, -1)}${alphabet[last + 1]}`;
  expect(Buffer.from(spelled, 'base64url').equals(Buffer.from(segment, 'base64url'))).toBe(true);
  return spelled;
}

/** A probe around a real key ring: records every kid the verifier asks for. */
function recordingRing(): { ring: KeyRing; asked: unknown[] } {
  const ring = createKeyRing();
  ring.add(TEST_KEY.publicJwk);
  const asked: unknown[] = [];
  return {
    asked,
    ring: {
      ...ring,
      lookup: (kid: unknown) => {
        asked.push(kid);
        return ring.lookup(kid);
      },
    },
  };
}

describe('SPEC §3 step 1: a well-formed compact JWS of exactly three segments', () => {
  it('a single segment, even one starting with a valid header, is malformed', () => {
    // Without the three-segment check this would reach the header and signature steps.
    const oneSegment = `${h()}A`;
    expect(Buffer.from(oneSegment, 'base64url').toString('base64url')).toBe(oneSegment);
    expect(codeOf(oneSegment)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(h())).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('an empty header, payload or signature-position segment is refused', () => {
    expect(codeOf(`.${p()}.${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${h()}..${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
    // A signed empty payload segment is still not three non-empty segments.
    expect(codeOf(signSegments(h(), ''))).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('two, four and five segments are malformed', () => {
    expect(codeOf(`${h()}.${p()}`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${good()}.${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${good()}.`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${h()}.${p()}..${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('the length limit applies above ENVELOPE_MAX_LENGTH, not at it', () => {
    const filler = 'A'.repeat(ENVELOPE_MAX_LENGTH - h().length - s().length - 2);
    const atLimit = `${h()}.${filler}.${s()}`;
    expect(atLimit.length).toBe(ENVELOPE_MAX_LENGTH);
    expect(filler.length % 4).not.toBe(1);
    // Reaches the signature step: well-formed, but not what was signed.
    expect(codeOf(atLimit)).toBe('ERR_ENVELOPE_SIGNATURE');
    expect(codeOf(`${h()}.${filler}A.${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('a signed payload segment that is not strict base64url is malformed, though its signature verifies', () => {
    const lenient = signSegments(h(), nonCanonicalSpelling(p()));
    expect(codeOf(lenient)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(signSegments(h(), `${p()}=`))).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('a signature segment that is not strict base64url is malformed, not a bad signature', () => {
    expect(codeOf(`${h()}.${p()}.${nonCanonicalSpelling(s())}`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${h()}.${p()}.${s()}==`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${h()}.${p()}.${s().replace(/[-_]/, '+')}`)).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('a header segment that is not strict base64url is malformed', () => {
    expect(codeOf(`${nonCanonicalSpelling(h())}.${p()}.${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
    expect(codeOf(`${h()}=.${p()}.${s()}`)).toBe('ERR_ENVELOPE_MALFORMED');
  });
});

describe('SPEC §3 step 2: the header is exactly alg, kid, typ, canonical and bounded', () => {
  it.each<[string, string]>([
    ['an array', '[]'],
    ['null', 'null'],
    ['a string', '"EdDSA"'],
    ['a number', '1'],
  ])('a header that is %s is malformed', (_n, text) => {
    expect(codeOf(rawJws(text, canonicalize(baseClaims() as unknown as JsonValue)))).toBe(
      'ERR_ENVELOPE_MALFORMED',
    );
  });

  it('a header over 1024 bytes is refused before it is interpreted (parse limit)', () => {
    // Valid in every other respect: a kid of 200 control characters (canonically \u0001 each).
    const longKid = '\u0001'.repeat(200);
    const text = canonicalize({ alg: 'EdDSA', kid: longKid, typ: ENVELOPE_TYP });
    expect(Buffer.byteLength(text)).toBeGreaterThan(1024);
    expect(codeOf(rawJws(text, 'x'))).toBe('ERR_ENVELOPE_MALFORMED');
    // The same header shape under the limit is parsed: its kid is merely unknown.
    const shortKid = canonicalize({ alg: 'EdDSA', kid: '\u0001'.repeat(100), typ: ENVELOPE_TYP });
    expect(Buffer.byteLength(shortKid)).toBeLessThan(1024);
    expect(codeOf(rawJws(shortKid, 'x'))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
  });

  it('a header nested deeper than 4 levels is refused before it is interpreted (parse limit)', () => {
    const deep = (n: number): JsonValue => (n === 0 ? 'k' : [deep(n - 1)]);
    const tooDeep = canonicalize({ alg: 'EdDSA', kid: deep(6), typ: ENVELOPE_TYP });
    expect(codeOf(rawJws(tooDeep, 'x'))).toBe('ERR_ENVELOPE_MALFORMED');
    const shallow = canonicalize({ alg: 'EdDSA', kid: deep(2), typ: ENVELOPE_TYP });
    expect(codeOf(rawJws(shallow, 'x'))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
  });

  it('a header repeating a member is non-canonical; other strict-JSON failures are malformed', () => {
    expect(
      codeOf(rawJws(`{"alg":"EdDSA","alg":"EdDSA","kid":"${TEST_KEY.kid}","typ":"${ENVELOPE_TYP}"}`, 'x')),
    ).toBe('ERR_ENVELOPE_NONCANONICAL');
    expect(codeOf(rawJws(`{"alg":"EdDSA",`, 'x'))).toBe('ERR_ENVELOPE_MALFORMED');
  });

  it('kid must be a non-empty string of at most 512 units; a bad kid never reaches the key ring', () => {
    const header = (kid: JsonValue): string => canonicalize({ alg: 'EdDSA', kid, typ: ENVELOPE_TYP });
    for (const kid of ['', 'k'.repeat(513), 7, null, ['k']] as JsonValue[]) {
      const probe = recordingRing();
      expect(codeOf(rawJws(header(kid), 'x'), ctx({ keys: probe.ring }))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
      expect(probe.asked).toEqual([]);
    }
    for (const kid of ['k', 'k'.repeat(512)]) {
      const probe = recordingRing();
      expect(codeOf(rawJws(header(kid), 'x'), ctx({ keys: probe.ring }))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
      expect(probe.asked).toEqual([kid]);
    }
  });

  it('the valid header reaches the key ring with its kid', () => {
    const probe = recordingRing();
    expect(codeOf(good(), ctx({ keys: probe.ring }))).toBe('allow');
    expect(probe.asked).toEqual([TEST_KEY.kid]);
  });
});

describe('SPEC §3 step 2: the validated-header cache is bounded (attacker-fed)', () => {
  it('after more distinct valid headers than the limit, the cache never exceeds HEADER_CACHE_MAX', () => {
    const { max } = headerCacheStateForTesting();
    expect(max).toBeGreaterThan(0);
    expect(max).toBeLessThanOrEqual(1024);
    let largest = 0;
    for (let i = 0; i < 2 * max + 10; i++) {
      // Each a valid, canonical header for a kid nobody pinned: it is cached, then denied at step 3.
      const token = `${encodeBase64url(headerText(`attacker-kid-${i}`))}.AA.AA`;
      expect(codeOf(token)).toBe('ERR_ENVELOPE_KID_UNKNOWN');
      largest = Math.max(largest, headerCacheStateForTesting().size);
    }
    expect(largest).toBe(max);
    // A cached header still serves the valid envelope, and a refused one is never cached.
    expect(codeOf(good())).toBe('allow');
    const before = headerCacheStateForTesting().size;
    expect(codeOf(rawJws(`{"alg":"none","kid":"k","typ":"${ENVELOPE_TYP}"}`, 'x'))).toBe('ERR_ENVELOPE_ALG');
    expect(headerCacheStateForTesting().size).toBe(before);
  });

  it('a header served from the cache still goes through the key and signature steps', () => {
    expect(codeOf(good())).toBe('allow');
    expect(codeOf(good())).toBe('allow');
    const ring = createKeyRing();
    ring.add(TEST_KEY.publicJwk);
    ring.revoke(TEST_KEY.kid);
    expect(codeOf(good(), ctx({ keys: ring }))).toBe('ERR_ENVELOPE_KID_REVOKED');
    expect(codeOf(`${h()}.${p()}.${s().slice(0, -2)}AA`)).toBe('ERR_ENVELOPE_SIGNATURE');
  });
});

describe('SPEC §3 step 3: kid is a pinned, unrevoked issuer key', () => {
  it('an envelope with a valid signature by a revoked issuer key is denied', () => {
    const byRevoked = signEnvelope(baseClaims(), REVOKED_KEY);
    expect(codeOf(byRevoked)).toBe('ERR_ENVELOPE_KID_REVOKED');
    // The same envelope verifies where its key is pinned and not revoked.
    const ring = createKeyRing();
    ring.add(REVOKED_KEY.publicJwk);
    expect(codeOf(byRevoked, ctx({ keys: ring }))).toBe('allow');
  });

  it('a revoked kid is refused even when the key itself was never added', () => {
    const ring = createKeyRing();
    ring.revoke(UNPINNED_KEY.kid);
    expect(codeOf(signEnvelope(baseClaims(), UNPINNED_KEY), ctx({ keys: ring }))).toBe(
      'ERR_ENVELOPE_KID_REVOKED',
    );
    expect(codeOf(signEnvelope(baseClaims(), UNPINNED_KEY))).toBe('ERR_ENVELOPE_KID_UNKNOWN');
  });
});

describe('SPEC §3 verification order: each step’s denial code wins over every later one', () => {
  // Each row adds one defect at an earlier step to all the defects of the rows below it.
  const c = baseClaims();
  const later: EnvelopeClaims = {
    ...c,
    aud: 'executor-2', // step 7
    iat: NOW_SEC + 100, // step 8: not yet valid, expired is impossible alongside
    exp: NOW_SEC - 100, // step 8: and a negative lifetime
    tool: 'fs.write', // step 9
    tenant: 'other', // step 9
    params_sha256: sha256Hex('other params'), // step 10
    policy_bundle: sha256Hex('unknown bundle'), // step 11
  };
  const payload = (claims: object): string => canonicalize(claims as JsonValue);
  const withExtra = payload({ ...later, extra: 1 }); // step 6
  const nonCanonical = withExtra.replace('{', '{ '); // step 5
  // Step 2 defects below also carry a non-canonical header (a leading space): checked last in step 2.
  const header = (members: Record<string, JsonValue>): string =>
    ` ${canonicalize({ alg: 'EdDSA', kid: TEST_KEY.kid, typ: ENVELOPE_TYP, ...members })}`;
  const reorder = (kid: string): string => `{"typ":"${ENVELOPE_TYP}","alg":"EdDSA","kid":"${kid}"}`;
  const badSig = (token: string): string =>
    `${token.slice(0, -2)}${token.at(-2) === 'A' ? 'B' : 'A'}${token.at(-1)}`;

  it.each<[string, () => string, string]>([
    [
      'step 11: policy bundle',
      () => signEnvelope({ ...c, policy_bundle: later.policy_bundle }, TEST_KEY),
      'ERR_ENVELOPE_POLICY_UNKNOWN',
    ],
    [
      'step 10: params',
      () =>
        signEnvelope(
          { ...c, params_sha256: later.params_sha256, policy_bundle: later.policy_bundle },
          TEST_KEY,
        ),
      'ERR_ENVELOPE_PARAMS_MISMATCH',
    ],
    [
      'step 9: tenant',
      () => signEnvelope({ ...later, aud: c.aud, iat: c.iat, exp: c.exp, tool: c.tool }, TEST_KEY),
      'ERR_ENVELOPE_TENANT_MISMATCH',
    ],
    [
      'step 9: tool',
      () => signEnvelope({ ...later, aud: c.aud, iat: c.iat, exp: c.exp }, TEST_KEY),
      'ERR_ENVELOPE_TOOL_MISMATCH',
    ],
    [
      'step 8: lifetime',
      () => signEnvelope({ ...later, aud: c.aud, iat: NOW_SEC - 10, exp: NOW_SEC + 400 }, TEST_KEY),
      'ERR_ENVELOPE_LIFETIME',
    ],
    [
      'step 8: expired',
      () => signEnvelope({ ...later, aud: c.aud, iat: NOW_SEC - 1000, exp: NOW_SEC - 10 }, TEST_KEY),
      'ERR_ENVELOPE_EXPIRED',
    ],
    [
      'step 8: not yet valid',
      () => signEnvelope({ ...later, aud: c.aud }, TEST_KEY),
      'ERR_ENVELOPE_NOT_YET_VALID',
    ],
    ['step 7: audience', () => signEnvelope(later, TEST_KEY), 'ERR_ENVELOPE_AUDIENCE'],
    ['step 6: claims', () => rawJws(headerText(), withExtra), 'ERR_ENVELOPE_CLAIMS'],
    ['step 5: canonical payload', () => rawJws(headerText(), nonCanonical), 'ERR_ENVELOPE_NONCANONICAL'],
    ['step 4: signature', () => badSig(rawJws(headerText(), nonCanonical)), 'ERR_ENVELOPE_SIGNATURE'],
    [
      'step 3: kid unknown',
      () => badSig(rawJws(headerText(UNPINNED_KEY.kid), nonCanonical)),
      'ERR_ENVELOPE_KID_UNKNOWN',
    ],
    [
      'step 3: kid revoked',
      () => badSig(rawJws(headerText(REVOKED_KEY.kid), nonCanonical)),
      'ERR_ENVELOPE_KID_REVOKED',
    ],
    [
      'step 2: canonical header',
      () => badSig(rawJws(reorder(REVOKED_KEY.kid), nonCanonical)),
      'ERR_ENVELOPE_NONCANONICAL',
    ],
    [
      'step 2: kid malformed',
      () => badSig(rawJws(header({ kid: 5 }), nonCanonical)),
      'ERR_ENVELOPE_KID_UNKNOWN',
    ],
    ['step 2: typ', () => badSig(rawJws(header({ kid: 5, typ: 'JWT' }), nonCanonical)), 'ERR_ENVELOPE_TYP'],
    [
      'step 2: forbidden member',
      () => badSig(rawJws(header({ kid: 5, typ: 'JWT', jku: 'x' }), nonCanonical)),
      'ERR_ENVELOPE_HEADER_FORBIDDEN',
    ],
    [
      'step 2: alg',
      () => badSig(rawJws(header({ kid: 5, typ: 'JWT', jku: 'x', alg: 'HS256' }), nonCanonical)),
      'ERR_ENVELOPE_ALG',
    ],
    [
      'step 1: malformed',
      () => `${badSig(rawJws(header({ alg: 'HS256' }), nonCanonical))}=`,
      'ERR_ENVELOPE_MALFORMED',
    ],
    ['step 1: missing', () => '', 'ERR_ENVELOPE_MISSING'],
  ])('%s', (_n, token, code) => {
    expect(codeOf(token())).toBe(code);
  });

  it('a misconfigured verifier denies ERR_INTERNAL before looking at the envelope', () => {
    expect(codeOf('', ctx({ clockToleranceSec: -1 }))).toBe('ERR_INTERNAL');
  });
});

describe('SPEC §3: the verifier context is checked (FC-INV-4: misconfiguration denies)', () => {
  it.each<[string, Partial<VerifyEnvelopeContext>]>([
    ['fractional tolerance', { clockToleranceSec: 1.5 }],
    ['negative tolerance', { clockToleranceSec: -1 }],
    ['fractional max lifetime', { maxLifetimeSec: 300.5 }],
    ['zero max lifetime', { maxLifetimeSec: 0 }],
    ['negative max lifetime', { maxLifetimeSec: -300 }],
    ['empty audience', { audience: '' }],
    ['non-string audience', { audience: 7 as unknown as string }],
    ['an audience list', { audience: ['executor-1'] as unknown as string }],
  ])('%s is ERR_INTERNAL', (_n, patch) => {
    expect(codeOf(good(), ctx(patch))).toBe('ERR_INTERNAL');
  });

  it('zero tolerance and the smallest lifetime bound are valid configurations', () => {
    const c = baseClaims();
    expect(codeOf(good(), ctx({ clockToleranceSec: 0 }))).toBe('allow');
    const oneSecond = signEnvelope({ ...c, exp: c.iat + 1 }, TEST_KEY);
    expect(codeOf(oneSecond, ctx({ maxLifetimeSec: 1, now: () => c.iat * 1000 }))).toBe('allow');
  });
});

describe('SPEC §3 step 7: aud is this executor', () => {
  it('an envelope for another executor, or a near miss of this one, is denied', () => {
    expect(codeOf(good(), ctx({ audience: 'executor-2' }))).toBe('ERR_ENVELOPE_AUDIENCE');
    for (const aud of ['Executor-1', 'executor-1 ', 'executor-10']) {
      expect(codeOf(signEnvelope({ ...baseClaims(), aud }, TEST_KEY))).toBe('ERR_ENVELOPE_AUDIENCE');
    }
  });
});

describe('SPEC §3 step 8: iat/exp within the clock tolerance, with an injected clock', () => {
  const c = baseClaims();
  const at = (ms: number, patch: Partial<VerifyEnvelopeContext> = {}): string =>
    codeOf(good(), ctx({ now: () => ms, ...patch }));

  it('nbf side: iat may be at most the tolerance ahead of now, to the millisecond', () => {
    expect(at(c.iat * 1000 - 5000)).toBe('allow');
    expect(at(c.iat * 1000 - 5001)).toBe('ERR_ENVELOPE_NOT_YET_VALID');
    expect(at(c.iat * 1000, { clockToleranceSec: 0 })).toBe('allow');
    expect(at(c.iat * 1000 - 1, { clockToleranceSec: 0 })).toBe('ERR_ENVELOPE_NOT_YET_VALID');
  });

  it('exp side: expired from exp plus the tolerance on, to the millisecond', () => {
    expect(at(c.exp * 1000 + 4999)).toBe('allow');
    expect(at(c.exp * 1000 + 5000)).toBe('ERR_ENVELOPE_EXPIRED');
    expect(at(c.exp * 1000 - 1, { clockToleranceSec: 0 })).toBe('allow');
    expect(at(c.exp * 1000, { clockToleranceSec: 0 })).toBe('ERR_ENVELOPE_EXPIRED');
  });

  it('the tolerance is in seconds: a larger one widens both edges', () => {
    expect(at(c.iat * 1000 - 60_000, { clockToleranceSec: 60 })).toBe('allow');
    expect(at(c.exp * 1000 + 59_999, { clockToleranceSec: 60 })).toBe('allow');
    expect(at(c.exp * 1000 + 60_000, { clockToleranceSec: 60 })).toBe('ERR_ENVELOPE_EXPIRED');
  });

  it('a clock without a finite time denies ERR_INTERNAL', () => {
    expect(at(Number.POSITIVE_INFINITY)).toBe('ERR_INTERNAL');
    expect(at(Number.NEGATIVE_INFINITY)).toBe('ERR_INTERNAL');
  });
});

describe('SPEC §3 step 8: exp − iat is at most maxLifetimeSec', () => {
  const c = baseClaims();
  const withLifetime = (seconds: number): string => signEnvelope({ ...c, exp: c.iat + seconds }, TEST_KEY);
  const now = (): number => c.iat * 1000;

  it('exactly maxLifetimeSec is allowed, one second more is denied', () => {
    expect(codeOf(withLifetime(300), ctx({ now }))).toBe('allow');
    expect(codeOf(withLifetime(301), ctx({ now }))).toBe('ERR_ENVELOPE_LIFETIME');
    expect(codeOf(withLifetime(60), ctx({ now, maxLifetimeSec: 60 }))).toBe('allow');
    expect(codeOf(withLifetime(61), ctx({ now, maxLifetimeSec: 60 }))).toBe('ERR_ENVELOPE_LIFETIME');
  });

  it('the lifetime is exp − iat, independent of where the clock is in the window', () => {
    const late = (): number => (c.iat + 250) * 1000;
    expect(codeOf(withLifetime(300), ctx({ now: late }))).toBe('allow');
    expect(codeOf(withLifetime(301), ctx({ now: late }))).toBe('ERR_ENVELOPE_LIFETIME');
  });
});

describe('SPEC §3 step 10: params_sha256 binds the exact canonical parameters (GEI)', () => {
  const params: JsonValue = { path: '/srv/reports/q4.txt', max_lines: 100, follow: false };
  const call = baseContext().call;

  it('the same parameters in another member order still match: the hash is over canonical JSON', () => {
    const reordered: JsonValue = { follow: false, max_lines: 100, path: '/srv/reports/q4.txt' };
    expect(computeParamsSha256(reordered)).toBe(baseClaims().params_sha256);
    expect(codeOf(good(), ctx({ call: { ...call, params: reordered } }))).toBe('allow');
  });

  it.each<[string, JsonValue]>([
    ['a changed value', { ...(params as object), max_lines: 101 }],
    ['a changed type', { ...(params as object), max_lines: '100' }],
    ['an added member', { ...(params as object), extra: null }],
    ['a removed member', { path: '/srv/reports/q4.txt', max_lines: 100 }],
    ['no parameters', {}],
  ])('%s is ERR_ENVELOPE_PARAMS_MISMATCH', (_n, edited) => {
    expect(codeOf(good(), ctx({ call: { ...call, params: edited } }))).toBe('ERR_ENVELOPE_PARAMS_MISMATCH');
  });

  it('an envelope carrying the hash of other parameters is denied for these ones', () => {
    const other = signEnvelope(
      { ...baseClaims(), params_sha256: computeParamsSha256({ path: '/etc' }) },
      TEST_KEY,
    );
    expect(codeOf(other)).toBe('ERR_ENVELOPE_PARAMS_MISMATCH');
    expect(codeOf(other, ctx({ call: { ...call, params: { path: '/etc' } } }))).toBe('allow');
  });
});
