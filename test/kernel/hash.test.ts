/** SHA-256 helpers and constant-time digest comparison (STYLE: `timingSafeEqual`-grade comparison for digests). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestEquals, hexDigestEquals, sha256, sha256Hex } from '../../src/kernel/index.js';

describe('sha256', () => {
  it('matches the FIPS 180-2 "abc" vector, as bytes and as hex', () => {
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(sha256Hex('abc')).toBe(abc);
    expect(sha256(Buffer.from('abc')).toString('hex')).toBe(abc);
  });
});

describe('hexDigestEquals', () => {
  const h = sha256Hex('x');
  it.each([
    [h, h, true],
    [h, h.slice(0, -1) + (h.endsWith('0') ? '1' : '0'), false],
    [h, h + '0', false],
    [h.toUpperCase(), h.toUpperCase(), false],
    ['0f', '0F', false],
    ['g0', 'g0', false],
    ['a/', 'a/', false],
    ['0:', '0:', false],
    ['`a', '`a', false],
    ['ab', 'ab', true],
  ])('%s vs %s → %s', (a, b, want) => {
    expect(hexDigestEquals(a, b)).toBe(want);
  });

  it('is true exactly for equal lower-case hex strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), fc.string({ maxLength: 70 }), (a, b) => {
        expect(hexDigestEquals(a, b)).toBe(a === b && /^[0-9a-f]*$/.test(a));
      }),
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{64}$/), (a) => {
        expect(hexDigestEquals(a, a)).toBe(true);
      }),
    );
  });
});

describe('digestEquals', () => {
  it('compares bytes and refuses different lengths', () => {
    expect(digestEquals(sha256('a'), sha256('a'))).toBe(true);
    expect(digestEquals(sha256('a'), sha256('b'))).toBe(false);
    expect(digestEquals(sha256('a'), sha256('a').subarray(1))).toBe(false);
  });
});
