/** The signed request format (docs/request-format.md, FC-INV-3): parsing and the signing input. */
import { describe, expect, it } from 'vitest';
import { isDeny, verifyEd25519 } from '../../src/kernel/index.js';
import { bytes, key, req, T } from './request-fixture.js';
import { requestSigningBytes } from '../../src/client/index.js';
import { parseRequestTimestamp, parseSignedRequest, requestSigningInput } from '../../src/gate/index.js';

describe('request format', () => {
  it('client and Gate build the same signing input, prefixed with the context string', () => {
    const { signature: _s, ...fields } = req;
    expect(requestSigningInput(fields).equals(requestSigningBytes(fields))).toBe(true);
    expect(
      requestSigningBytes(fields).toString('utf8').startsWith('failclosed-request-v1\n{"action":"echo"'),
    ).toBe(true);
  });

  it('parses a well-formed request and its signature verifies', () => {
    const p = parseSignedRequest(bytes(req));
    expect(isDeny(p)).toBe(false);
    if (isDeny(p)) return;
    expect(p.timestampMs).toBe(T);
    expect(p.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(verifyEd25519(key.publicKey, requestSigningInput(p.request), p.signatureBytes)).toBe(true);
  });

  it.each([
    ['2025-06-01T12:00:00Z'],
    ['2025-06-01T12:00:00.000+00:00'],
    ['2025-02-30T12:00:00.000Z'],
    ['2025-06-01 12:00:00.000Z'],
    ['2025-06-01T24:00:00.000Z'],
  ])('refuses timestamp %s', (ts) => {
    expect(parseRequestTimestamp(ts)).toBeUndefined();
    expect(parseSignedRequest(bytes({ ...req, timestamp: ts }))).toMatchObject({
      code: 'ERR_REQUEST_MALFORMED',
    });
  });

  it.each([
    ['parameters as array', { parameters: [] }],
    ['request_id empty', { request_id: '' }],
    ['identity with a space', { identity: 'a b' }],
    ['signature of 63 bytes', { signature: Buffer.alloc(63).toString('base64url') }],
    ['padded nonce', { nonce: `${req.nonce}=` }],
    ['session as number', { session: 1 }],
  ])('refuses %s', (_n, change) => {
    expect(parseSignedRequest(bytes({ ...req, ...change }))).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
  });

  it('refuses unsafe integers and deep nesting with the strict parser codes', () => {
    const text = JSON.stringify({ ...req, parameters: { n: 1 } }).replace('"n":1', '"n":9007199254740993');
    expect(parseSignedRequest(Buffer.from(text))).toMatchObject({ code: 'ERR_JSON_UNSAFE_NUMBER' });
    let deep: unknown = 1;
    for (let i = 0; i < 40; i += 1) deep = { d: deep };
    expect(parseSignedRequest(bytes({ ...req, parameters: deep }))).toMatchObject({
      code: 'ERR_JSON_TOO_DEEP',
    });
  });

  it('a request that is not an object is malformed', () => {
    expect(parseSignedRequest(bytes([req]))).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
  });
});
