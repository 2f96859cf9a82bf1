/**
 * Strict unpadded base64url (RFC 4648 §5), the encoding of every compact JWS part, signed request
 * field and public key (SPEC §3 "well-formed compact JWS", "rejects … alternate spellings"): one
 * value has exactly one spelling, so a decoder that accepted a second spelling would let two
 * different texts stand for the same signed bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, encodeBase64url } from '../../src/kernel/index.js';

/** RFC 4648 §10 test vectors; base64url differs from base64 only in `-_` and the padding. */
const RFC4648: readonly (readonly [string, string])[] = [
  ['', ''],
  ['f', 'Zg'],
  ['fo', 'Zm8'],
  ['foo', 'Zm9v'],
  ['foob', 'Zm9vYg'],
  ['fooba', 'Zm9vYmE'],
  ['foobar', 'Zm9vYmFy'],
];

describe('SPEC §3 well-formed compact JWS: base64url encoding (RFC 4648 §5)', () => {
  it.each(RFC4648)('RFC 4648 §10: %j → %j', (plain, encoded) => {
    expect(encodeBase64url(plain)).toBe(encoded);
    expect(encodeBase64url(Buffer.from(plain, 'latin1'))).toBe(encoded);
  });

  it('uses the URL-safe alphabet (- and _) and no padding', () => {
    expect(encodeBase64url(new Uint8Array([0xfb, 0xff]))).toBe('-_8');
    expect(encodeBase64url(new Uint8Array([0xfb, 0xef, 0xbe]))).toBe('----');
    expect(encodeBase64url(new Uint8Array([0xff, 0xff, 0xff]))).toBe('____');
  });

  it('encodes a string as its UTF-8 bytes', () => {
    expect(encodeBase64url('é')).toBe('w6k');
    expect(encodeBase64url('😂')).toBe(encodeBase64url(new Uint8Array([0xf0, 0x9f, 0x98, 0x82])));
  });

  it('encodes only the bytes of a Uint8Array view', () => {
    const backing = Buffer.from('xxfooyy');
    expect(encodeBase64url(backing.subarray(2, 5))).toBe('Zm9v');
  });
});

describe('SPEC §3 rejects alternate spellings: strict base64url decoding', () => {
  it.each(RFC4648)('RFC 4648 §10: %j ← %j', (plain, encoded) => {
    const out = decodeBase64url(encoded);
    expect(out).toBeInstanceOf(Buffer);
    expect(out?.toString('latin1')).toBe(plain);
  });

  it('decodes the URL-safe alphabet and every character of it', () => {
    expect([...(decodeBase64url('-_8') ?? [])]).toEqual([0xfb, 0xff]);
    const all = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const out = decodeBase64url(all);
    expect(out).toBeDefined();
    expect(encodeBase64url(out ?? new Uint8Array())).toBe(all);
  });

  it.each([
    ['padding', 'Zg=='],
    ['one padding character', 'Zm8='],
    ['padding alone', '===='],
    ['the standard alphabet +', '-_8+'],
    ['the standard alphabet /', '/_8'],
    ['standard base64 of 0xfbff', '+/8'],
    ['a space', 'Zm9v Zm9v'],
    ['a line break', 'Zm9v\nZm9v'],
    ['a trailing line break', 'Zm9v\n'],
    ['a leading space', ' Zm9v'],
    ['a dot (JWS separator)', 'Zm9v.Zm9v'],
    ['a non-ASCII letter', 'Zm9vé'],
    ['a length of 4n+1', 'Zm9vY'],
    ['a single character', 'Z'],
    ['a non-canonical last character (2 chars)', 'Zh'],
    ['a non-canonical last character (3 chars)', 'Zm9'],
    ['a non-canonical last character of -_', '-_9'],
  ])('denies %s: %j', (_what, text) => {
    expect(decodeBase64url(text)).toBeUndefined();
  });

  it('round-trips any bytes, and the only spelling it accepts is the encoder output', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const text = encodeBase64url(bytes);
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
        expect([...(decodeBase64url(text) ?? [0x100])]).toEqual([...bytes]);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (text) => {
        const out = decodeBase64url(text);
        if (out !== undefined) expect(encodeBase64url(out)).toBe(text);
      }),
    );
  });
});
