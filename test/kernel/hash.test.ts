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

describe('SPEC §3 params_sha256: SHA-256 bytes and hex', () => {
  const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

  it('sha256 is a 32-byte Buffer, of the UTF-8 bytes of a string', () => {
    const digest = sha256('');
    expect(Buffer.isBuffer(digest)).toBe(true);
    expect(digest).toHaveLength(32);
    expect(digest.toString('hex')).toBe(EMPTY);
    expect(sha256('é').equals(sha256(Buffer.from([0xc3, 0xa9])))).toBe(true);
    expect(sha256('é').equals(sha256(Buffer.from('é', 'latin1')))).toBe(false);
  });

  it('sha256Hex is the lower-case hex of the same digest, for strings and bytes', () => {
    expect(sha256Hex('')).toBe(EMPTY);
    expect(sha256Hex(new Uint8Array(0))).toBe(EMPTY);
    expect(sha256Hex('é')).toBe(sha256(Buffer.from([0xc3, 0xa9])).toString('hex'));
    expect(sha256Hex('abc')).toMatch(/^[0-9a-f]{64}$/);
    expect(sha256Hex('x')).toBe('2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881');
  });
});

describe('hexDigestEquals', () => {
  // A literal, not sha256Hex('x'): a table computed while collecting tests would hide a broken
  // sha256Hex from the tests below (the file fails to load instead of a test failing).
  const h = '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881';
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
    ['', '', true],
    ['0123456789abcdef', '0123456789abcdef', true],
    ['0123456789abcdef', '0123456789abcdee', false],
    ['abc', 'ab', false],
    ['ab', 'abc', false],
    ['ab', '', false],
    ['', 'ab', false],
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
