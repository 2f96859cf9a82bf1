/**
 * C2SP signed-note v1.0.0 at its edges (SPEC §4 signed checkpoints, §5 checkpoint signature
 * check, L7 ledger protection): exact limits, byte-order marks, repeated signatures and the
 * spelling of key IDs.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { expect, it } from 'vitest';
import {
  NOTE_MAX_BYTES,
  NOTE_MAX_SIGNATURES,
  noteKeyId,
  noteVerifierFor,
  noteVerifierFromVkey,
  parseNote,
  verifyNote,
  vkeyFor,
  type NoteVerifier,
} from '../../src/kernel/note.js';
import { noteSignerFor, signNote } from '../../src/kernel/signing/sign-note.js';
import { describeOrFail } from '../support/collect.js';

// A fixed Ed25519 key (RFC 8032 test 1 seed), so key IDs are reproducible.
const SEED = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
const PRIVATE = createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), SEED]),
  format: 'der',
  type: 'pkcs8',
});
const PUBLIC = createPublicKey(PRIVATE);
const RAW = PUBLIC.export({ format: 'jwk' }).x!;

function pair(name: string): { sign: (text: string) => string; verifier: NoteVerifier } {
  const signer = noteSignerFor(name, PRIVATE);
  return { sign: (text) => signNote(text, signer), verifier: noteVerifierFor(name, PUBLIC) };
}

function codeOf(result: ReturnType<typeof verifyNote>): string {
  return result.outcome === 'verified' ? 'verified' : result.code;
}

describeOrFail('signed-note §Format: limits, applied exactly', () => {
  it('a note of exactly NOTE_MAX_BYTES bytes verifies, as text and as bytes; one more is malformed', () => {
    const { sign, verifier } = pair('log.example');
    const overhead = Buffer.byteLength(sign('x\n')) - 2;
    const text = `${'x'.repeat(NOTE_MAX_BYTES - overhead - 1)}\n`;
    const note = sign(text);
    expect(Buffer.byteLength(note)).toBe(NOTE_MAX_BYTES);
    expect(codeOf(verifyNote(note, [verifier]))).toBe('verified');
    expect(codeOf(verifyNote(Buffer.from(note), [verifier]))).toBe('verified');
    const over = sign(`x${text}`);
    expect(codeOf(verifyNote(over, [verifier]))).toBe('ERR_CHECKPOINT_MALFORMED');
    expect(codeOf(verifyNote(Buffer.from(over), [verifier]))).toBe('ERR_CHECKPOINT_MALFORMED');
  });

  it('exactly NOTE_MAX_SIGNATURES signature lines parse; one more is malformed', () => {
    const { sign } = pair('log.example');
    const note = sign('hello\n');
    const line = note.slice(note.indexOf('\u2014'));
    const withLines = (n: number): string => `hello\n\n${line.repeat(n)}`;
    expect(parseNote(withLines(NOTE_MAX_SIGNATURES)).signatures).toHaveLength(NOTE_MAX_SIGNATURES);
    expect(() => parseNote(withLines(NOTE_MAX_SIGNATURES + 1))).toThrow(
      expect.objectContaining({ code: 'ERR_CHECKPOINT_MALFORMED' }),
    );
  });

  it('a signature of one byte after the 4-byte key ID parses; four bytes alone do not', () => {
    const five = Buffer.from([1, 2, 3, 4, 5]).toString('base64');
    expect(parseNote(`hello\n\n\u2014 k ${five}\n`).signatures[0]?.signature).toEqual(Buffer.from([5]));
    const four = Buffer.from([1, 2, 3, 4]).toString('base64');
    expect(() => parseNote(`hello\n\n\u2014 k ${four}\n`)).toThrow(
      expect.objectContaining({ code: 'ERR_CHECKPOINT_MALFORMED' }),
    );
  });

  it('a signature line without a space is malformed, even when the rest is valid base64', () => {
    expect(() => parseNote('hello\n\n\u2014 AAAAAAAA\n')).toThrow(
      expect.objectContaining({ code: 'ERR_CHECKPOINT_MALFORMED' }),
    );
  });

  it('a note whose text is a single empty line parses', () => {
    const sig = Buffer.from([1, 2, 3, 4, 5]).toString('base64');
    expect(parseNote(`\n\n\u2014 k ${sig}\n`).text).toBe('\n');
  });
});

describeOrFail('signed-note §Signatures: what verifies and who is reported', () => {
  it('a leading byte-order mark is part of the signed text, in bytes as in text', () => {
    const { sign, verifier } = pair('log.example');
    const note = sign('\uFEFFhello\n');
    expect(codeOf(verifyNote(note, [verifier]))).toBe('verified');
    const bytes = Buffer.from(note, 'utf8');
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    const verified = verifyNote(bytes, [verifier]);
    expect(verified.outcome === 'verified' && verified.text).toBe('\uFEFFhello\n');
  });

  it('a key that signed twice is reported once', () => {
    const { sign, verifier } = pair('log.example');
    const note = sign('hello\n');
    const twice = `${note}${note.slice(note.indexOf('\u2014'))}`;
    const verified = verifyNote(twice, [verifier]);
    expect(verified.outcome === 'verified' && verified.verifiedBy).toEqual(['log.example']);
  });
});

describeOrFail('signed-note §Verifier keys: vkey spelling', () => {
  it('a key ID below 0x10000000 is spelled with its leading zeros, and parses back', () => {
    const raw = Buffer.from(RAW, 'base64url');
    let name = '';
    for (let i = 0; name === ''; i++) {
      if (noteKeyId(`log${i}.example`, 1, raw) < 0x10000000) name = `log${i}.example`;
    }
    const vkey = vkeyFor(name, PUBLIC);
    expect(vkey.split('+')[1]).toMatch(/^0[0-9a-f]{7}$/);
    expect(noteVerifierFromVkey(vkey).keyId).toBe(noteKeyId(name, 1, raw));
  });

  it('vkeyFor and noteVerifierFor refuse an invalid key name as a caller error', () => {
    expect(() => vkeyFor('bad name', PUBLIC)).toThrow(TypeError);
    expect(() => vkeyFor('', PUBLIC)).toThrow(TypeError);
    expect(() => noteVerifierFor('a+b', PUBLIC)).toThrow(TypeError);
  });
});
