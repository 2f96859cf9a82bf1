/**
 * Parsing the signed request field by field (src/gate/request.ts; docs/request-format.md "Body",
 * SPEC §2 step 1, FC-INV-3): every field present, exactly typed and formed, nothing else, and
 * each bound exact at its edge.
 */
import { describe, expect, it } from 'vitest';
import { isDeny } from '../../src/kernel/index.js';
import { bytes, req, T } from './request-fixture.js';
import {
  MAX_REQUEST_BYTES,
  MAX_REQUEST_DEPTH,
  parseRequestTimestamp,
  parseRequestValue,
  parseSignedRequest,
} from '../../src/gate/index.js';

const parse = (change: Record<string, unknown>) => parseSignedRequest(bytes({ ...req, ...change }));
const ok = (change: Record<string, unknown>) => expect(isDeny(parse(change))).toBe(false);
const malformed = (change: Record<string, unknown>) =>
  expect(parse(change)).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_MALFORMED' });
const b64 = (n: number) => Buffer.alloc(n, 0xa5).toString('base64url');

describe('FC-INV-3: request fields (docs/request-format.md "Body")', () => {
  it('a well-formed request parses into a frozen request with its derived values', () => {
    const p = parseSignedRequest(bytes(req));
    if (isDeny(p)) throw new Error('denied');
    expect(p.request).toEqual(req);
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.request)).toBe(true);
    expect(p.timestampMs).toBe(T);
    expect(p.signatureBytes.equals(Buffer.from(req.signature, 'base64url'))).toBe(true);
  });

  const names: [string, string][] = [
    ['request_id', '._:-'],
    ['identity', '._:@-'],
    ['tenant', '._-'],
    ['action', '._-'],
    ['session', '._:-'],
  ];
  it.each(names)('%s: 1 to 128 characters of its alphabet, nothing else', (field, punct) => {
    ok({ [field]: 'x' });
    ok({ [field]: 'y'.repeat(128) });
    ok({ [field]: `Az09${punct}` });
    malformed({ [field]: '' });
    malformed({ [field]: 'y'.repeat(129) });
    malformed({ [field]: 'a b' });
    malformed({ [field]: ' ab' });
    malformed({ [field]: 'ab ' });
    malformed({ [field]: 'ab\n' });
    for (const c of ['/', '@', ':', '+', 'é'].filter((x) => !punct.includes(x)))
      malformed({ [field]: `a${c}b` });
    malformed({ [field]: 5 });
    malformed({ [field]: true });
    malformed({ [field]: ['a'] });
    if (field !== 'session') malformed({ [field]: null });
  });

  it('session may be null', () => {
    ok({ session: null });
  });

  it('parameters: an object, never null, an array or a scalar', () => {
    ok({ parameters: {} });
    for (const parameters of [null, [], 'x', 1, true]) malformed({ parameters });
  });

  it('timestamp: a string in the one RFC 3339 form, a real instant', () => {
    for (const timestamp of [T, null, {}, '2025-13-01T12:00:00.000Z', '2025-06-01T12:00:00.0000Z', 'x'])
      malformed({ timestamp });
    expect(parseRequestTimestamp('2025-13-01T12:00:00.000Z')).toBeUndefined();
    expect(parseRequestTimestamp('2025-06-31T12:00:00.000Z')).toBeUndefined();
    expect(parseRequestTimestamp(' 2025-06-01T12:00:00.000Z')).toBeUndefined();
    expect(parseRequestTimestamp('2025-06-01T12:00:00.000Zx')).toBeUndefined();
    expect(parseRequestTimestamp('2025-06-01T12:00:60.000Z')).toBeUndefined();
    expect(parseRequestTimestamp('2024-02-29T23:59:59.999Z')).toBe(Date.parse('2024-02-29T23:59:59.999Z'));
    expect(parseRequestTimestamp('1970-01-01T00:00:00.000Z')).toBe(0);
    // Extended years round-trip through toISOString: only the pattern refuses them.
    expect(parseRequestTimestamp('+010000-01-01T00:00:00.000Z')).toBeUndefined();
    expect(parseRequestTimestamp('-000001-01-01T00:00:00.000Z')).toBeUndefined();
    expect(parseRequestTimestamp('+002025-06-01T12:00:00.000Z')).toBeUndefined();
  });

  it('nonce: unpadded canonical base64url of 16 to 64 bytes', () => {
    ok({ nonce: b64(16) });
    ok({ nonce: b64(64) });
    malformed({ nonce: b64(15) });
    malformed({ nonce: b64(65) });
    malformed({ nonce: `${b64(16).slice(0, -1)}*` });
    // The type is checked first: a number is refused, never decoded.
    for (const nonce of [1234, 12345678, null, [b64(16)]]) malformed({ nonce });
  });

  it('signature: unpadded canonical base64url of exactly 64 bytes', () => {
    malformed({ signature: b64(65) });
    malformed({ signature: b64(63) });
    malformed({ signature: `${req.signature.slice(0, -1)}+` });
    for (const signature of [1234, null, {}]) malformed({ signature });
  });

  it('exactly the nine fields: none missing, none extra', () => {
    for (const field of Object.keys(req)) {
      const { [field]: _gone, ...rest } = req as unknown as Record<string, unknown>;
      expect(parseSignedRequest(bytes(rest))).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
    }
    malformed({ extra: 1 });
    malformed({ __proto__x: 1 });
  });

  it('a body that is not an object', () => {
    for (const v of [[req], null, 'req', 1, true])
      expect(parseSignedRequest(bytes(v))).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
    expect(parseRequestValue(null)).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
  });
});

describe('FC-INV-3: size and depth bounds of the body', () => {
  it('the body may be exactly MAX_REQUEST_BYTES, one more is too large before parsing', () => {
    const text = JSON.stringify(req);
    const exact = Buffer.from(text + ' '.repeat(MAX_REQUEST_BYTES - text.length));
    expect(isDeny(parseSignedRequest(exact))).toBe(false);
    const over = Buffer.from(text + ' '.repeat(MAX_REQUEST_BYTES + 1 - text.length));
    expect(parseSignedRequest(over)).toMatchObject({ code: 'ERR_REQUEST_TOO_LARGE' });
    // Even bytes that are not JSON: refused on size alone.
    expect(parseSignedRequest(Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x7b))).toMatchObject({
      code: 'ERR_REQUEST_TOO_LARGE',
    });
  });

  it('nesting up to MAX_REQUEST_DEPTH is parsed, one deeper is ERR_JSON_TOO_DEEP', () => {
    // The request object is level 1 and parameters level 2.
    const nest = (levels: number): unknown => {
      let v: unknown = {};
      for (let i = 0; i < levels; i += 1) v = { d: v };
      return v;
    };
    expect(isDeny(parse({ parameters: nest(MAX_REQUEST_DEPTH - 2) }))).toBe(false);
    expect(parse({ parameters: nest(MAX_REQUEST_DEPTH - 1) })).toMatchObject({ code: 'ERR_JSON_TOO_DEEP' });
  });

  it('the strict parser codes pass through: invalid UTF-8, duplicate keys, syntax', () => {
    const text = JSON.stringify(req);
    expect(parseSignedRequest(Buffer.from(`${text.slice(0, -1)},"tenant":"t"}`))).toMatchObject({
      code: 'ERR_JSON_DUPLICATE_KEY',
    });
    const bad = Buffer.from(text);
    bad[bad.indexOf('echo')] = 0xff;
    expect(parseSignedRequest(bad)).toMatchObject({ code: 'ERR_JSON_INVALID_UTF8' });
    expect(parseSignedRequest(Buffer.from(''))).toMatchObject({ code: 'ERR_JSON_SYNTAX' });
  });
});
