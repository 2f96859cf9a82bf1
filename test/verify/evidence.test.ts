/**
 * The offline evidence check (SPEC §5 "for each request the raw signed request" is exported;
 * OE-INV-016 hash-addressed records): every evidence blob hashes to its key in one canonical
 * base64 spelling, and every Gate record's raw request is present. Evidence is not covered by the
 * checkpoint, so the bundle is edited directly; each test names the finding code.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/kernel/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { findingsOf } from './forge.js';
import { makeBundle, mutable, text, type MutableBundle } from './helpers.js';

let base: Awaited<ReturnType<typeof makeBundle>>;
let sha: string;

beforeAll(async () => {
  base = await makeBundle(6);
  sha = mutable(base.text)['entries'][1].payload.request_sha256 as string;
});

const evidenceFindings = (m: MutableBundle) =>
  findingsOf(verifyBundle(text(m), { trustedKey: base.vkey }), 'evidence').map((f) => ({
    code: f.code,
    index: f.index,
  }));

describe('OE-INV-016: evidence blobs hash to their keys in one spelling', () => {
  it('the untouched evidence passes', () => {
    expect(evidenceFindings(mutable(base.text))).toEqual([]);
  });

  it.each([
    ['a blob that is not an object', () => 'blob'],
    ['a blob without a media type', (b: MutableBundle) => ({ body_b64: b['body_b64'] })],
    ['a blob without a body', (b: MutableBundle) => ({ media_type: b['media_type'] })],
    [
      'a body in unpadded base64',
      (b: MutableBundle) => ({ ...b, body_b64: (b['body_b64'] as string).replace(/=+$/, '') }),
    ],
    ['a body with a line break', (b: MutableBundle) => ({ ...b, body_b64: `${b['body_b64'] as string}\n` })],
    [
      'a body in base64url',
      (b: MutableBundle) => ({ ...b, body_b64: Buffer.from(`${'?'.repeat(30)}>`).toString('base64url') }),
    ],
    [
      'a body of other bytes',
      (b: MutableBundle) => ({ ...b, body_b64: Buffer.from('forged').toString('base64') }),
    ],
  ])('%s: EVIDENCE_HASH', (_n, edit) => {
    const m = mutable(base.text);
    m['evidence'][sha] = edit(m['evidence'][sha]);
    expect(evidenceFindings(m)).toContainEqual({ code: 'EVIDENCE_HASH', index: undefined });
  });

  it.each([
    ['a number whose digits spell base64', 1234],
    ['a list holding a base64 string', ['AAAA']],
  ])('a body that is not a string (%s): EVIDENCE_HASH, not a check error', (_n, body) => {
    const m = mutable(base.text);
    m['evidence'][sha] = { media_type: 'application/octet-stream', body_b64: body };
    expect(evidenceFindings(m)).toEqual([{ code: 'EVIDENCE_HASH', index: undefined }]);
  });

  it.each(['a', 'ab', 'abc', 'abcd'])(
    'an extra well-formed blob of %j (every padding length) passes',
    (body) => {
      const m = mutable(base.text);
      m['evidence'][sha256Hex(Buffer.from(body))] = {
        media_type: 'application/octet-stream',
        body_b64: Buffer.from(body).toString('base64'),
      };
      expect(evidenceFindings(m)).toEqual([]);
    },
  );

  it('a blob under a key that is not a lower-hex digest: EVIDENCE_HASH', () => {
    const m = mutable(base.text);
    m['evidence'][sha.toUpperCase()] = m['evidence'][sha];
    expect(evidenceFindings(m)).toEqual([{ code: 'EVIDENCE_HASH', index: undefined }]);
  });

  it('a base64 body whose padding bits differ (a second spelling of the same bytes): EVIDENCE_HASH', () => {
    const m = mutable(base.text);
    const b64 = m['evidence'][sha].body_b64 as string;
    const pad = b64.indexOf('=');
    expect(pad).toBeGreaterThan(0);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const last = alphabet.indexOf(b64[pad - 1]!);
    m['evidence'][sha].body_b64 = `${b64.slice(0, pad - 1)}${alphabet[last ^ 1]!}${b64.slice(pad)}`;
    expect(evidenceFindings(m)).toEqual([{ code: 'EVIDENCE_HASH', index: undefined }]);
  });

  it('SPEC §5: a Gate record whose raw request is missing is named; one naming no digest is not', () => {
    const m = mutable(base.text);
    delete m['evidence'][sha];
    expect(evidenceFindings(m)).toEqual([{ code: 'EVIDENCE_MISSING', index: 1 }]);
    const none = mutable(base.text);
    delete none['evidence'][sha];
    none['entries'][1].payload.request_sha256 = 7;
    expect(evidenceFindings(none)).toEqual([]);
    // Only Gate records need their request in the bundle.
    const other = mutable(base.text);
    delete other['evidence'][sha];
    other['entries'][1].type = 'gateway.completed';
    expect(evidenceFindings(other)).toEqual([]);
  });
});
