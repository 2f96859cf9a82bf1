/**
 * Edge checks of C2SP signed notes and checkpoints (SPEC §4 signed checkpoints, §5 checkpoint
 * signature check, L7-ledger-protection, OE-INV-016 cryptographic integrity of records): every
 * malformed note, key or checkpoint body fails closed with its code, at the exact bounds.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FailclosedError, isDeny } from '../../src/kernel/errors.js';
import {
  NOTE_ALG_ED25519,
  NOTE_MAX_BYTES,
  NOTE_MAX_SIGNATURES,
  formatCheckpoint,
  formatNoteSignature,
  isValidKeyName,
  isValidNoteText,
  noteKeyId,
  noteVerifierFor,
  noteVerifierFromVkey,
  parseCheckpoint,
  parseNote,
  verifyCheckpoint,
  verifyNote,
  vkeyFor,
  type NoteVerifier,
} from '../../src/kernel/note.js';
import { noteSignerFor, signNote } from '../../src/kernel/signing/sign-note.js';
import { signingKeyFromSeed } from '../../src/kernel/signing/signing-key.js';

const keyOf = (seedByte: number) => signingKeyFromSeed(Buffer.alloc(32, seedByte));
const LOG = 'log.example/a';
const logKey = keyOf(1);
const signer = noteSignerFor(LOG, logKey.privateKey);
const verifier = noteVerifierFor(LOG, logKey.publicKey);
const ROOT = Buffer.alloc(32, 5);
const ROOT_B64 = ROOT.toString('base64');
const body = formatCheckpoint({ origin: LOG, size: 3, rootHash: ROOT });
const signed = signNote(body, signer);
const sigLine = signed.slice(signed.lastIndexOf('\u2014 '));
const sigB64 = sigLine.split(' ')[2]!.trimEnd();

function expectDeny(result: unknown, code: string): void {
  expect(isDeny(result)).toBe(true);
  expect((result as { code: string }).code).toBe(code);
}

function expectThrowsCode(run: () => unknown, code: string): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(FailclosedError);
  expect((caught as FailclosedError).code).toBe(code);
}

const malformedNote = (input: string | Uint8Array): void => {
  expectThrowsCode(() => parseNote(input), 'ERR_CHECKPOINT_MALFORMED');
  expectDeny(verifyNote(input, [verifier]), 'ERR_CHECKPOINT_MALFORMED');
};

describe('SPEC §4 signed-note key names and text (L7-ledger-protection)', () => {
  it('key names: non-empty strings without spaces, plus, control characters or lone surrogates', () => {
    expect(isValidKeyName('log.example/a')).toBe(true);
    expect(isValidKeyName('\u00e9t\u00e9\u{1f600}')).toBe(true);
    expect(isValidKeyName('del\u007fok')).toBe(true);
    expect(isValidKeyName('!')).toBe(true);
    for (const bad of [
      '',
      'a b',
      'a+b',
      'a\tb',
      'a\nb',
      'a\u0001b',
      'a\u001fb',
      'a\u0085b',
      'a\u2003b',
      'a\ud800',
      '\udc00a',
      42,
      undefined,
      ['a'],
    ])
      expect(isValidKeyName(bad)).toBe(false);
  });

  it('note text: ends in a newline, no control character but newline, bounded in length and bytes', () => {
    expect(isValidNoteText('a\n')).toBe(true);
    expect(isValidNoteText('a b\n\n')).toBe(true);
    expect(isValidNoteText('\n')).toBe(true);
    expect(isValidNoteText(`${'a'.repeat(NOTE_MAX_BYTES - 1)}\n`)).toBe(true);
    for (const bad of [
      '',
      'a',
      'a\n ',
      'a\r\n\r',
      'a\u001f\n',
      'a\u0000\n',
      'a\ud800\n',
      'a\udc00\n',
      `${'a'.repeat(NOTE_MAX_BYTES)}\n`,
      // Fewer UTF-16 units than the bound, more UTF-8 bytes.
      `${'\u00e9'.repeat(NOTE_MAX_BYTES / 2)}\n`,
      7,
      null,
    ])
      expect(isValidNoteText(bad)).toBe(false);
  });

  it('key ID and signature line formats are byte-exact', () => {
    const raw = Buffer.alloc(32, 9);
    // SHA-256("n\n" || 0x01 || raw)[:4], computed independently.
    const digest = createHash('sha256')
      .update(Buffer.concat([Buffer.from('n\n'), Buffer.from([1]), raw]))
      .digest();
    expect(noteKeyId('n', NOTE_ALG_ED25519, raw)).toBe(digest.readUInt32BE(0));
    expect(noteKeyId('n', 2, raw)).not.toBe(digest.readUInt32BE(0));
    expect(formatNoteSignature('n', 0x01020304, Buffer.from([0xff]))).toBe(
      `\u2014 n ${Buffer.from([1, 2, 3, 4, 0xff]).toString('base64')}\n`,
    );
  });
});

describe('SPEC §4 malformed notes fail closed with ERR_CHECKPOINT_MALFORMED (L7-ledger-protection)', () => {
  it('the unmodified note parses into frozen text and signatures', () => {
    const note = parseNote(signed);
    expect(note.text).toBe(body);
    expect(note.signatures).toHaveLength(1);
    expect(note.signatures[0]).toMatchObject({ name: LOG, keyId: signer.keyId });
    expect(note.signatures[0]!.signature).toHaveLength(64);
    expect(Object.isFrozen(note)).toBe(true);
    expect(Object.isFrozen(note.signatures)).toBe(true);
    expect(Object.isFrozen(note.signatures[0])).toBe(true);
  });

  it('signature lines: prefix, name, separator, base64 and length', () => {
    const bad = [
      `${body}\n\u2014${LOG} ${sigB64}\n`,
      `${body}\n\u2014  ${LOG} ${sigB64}\n`,
      `${body}\n${LOG} ${sigB64}\n`,
      `${body}\n\u2014 ${LOG}${sigB64}\n`,
      `${body}\n\u2014 ${LOG}\n`,
      `${body}\n\u2014 ${sigB64}\n`,
      // Without a space, the whole rest is valid base64 and its prefix a valid name.
      `${body}\n\u2014 AAAAAAAA\n`,
      `${body}\n\u2014 ${LOG} ${sigB64} \n`,
      `${body}\n\u2014 ${LOG} ${sigB64}\n\n`,
      `${body}\n\u2014 ${LOG} ${sigB64}\n\u2014 ${LOG} \n`,
      `${body}\n\u2014 ${LOG} ${sigB64.slice(0, 10)}!${sigB64.slice(11)}\n`,
      `${body}\n\u2014 ${LOG} AAAAAA==\n`,
      `${body}\n\n`,
      `${body}\n\u2014 ${LOG} ${sigB64}\n\u2014 x\n`,
    ];
    for (const note of bad) malformedNote(note);
  });

  it('a 5-byte signature (key ID and one byte) parses, and then fails to verify', () => {
    const line = formatNoteSignature(LOG, signer.keyId, Buffer.from([7]));
    const note = parseNote(`${body}\n${line}`);
    expect(note.signatures[0]!.signature).toEqual(Buffer.from([7]));
    expectDeny(verifyNote(`${body}\n${line}`, [verifier]), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('a key name without its signature, or a signature without a space, is malformed', () => {
    malformedNote(`${body}\n\u2014 ${LOG}\n`);
    malformedNote(`${body}\n\u2014 \n`);
  });

  it('exactly NOTE_MAX_SIGNATURES lines parse, one more does not', () => {
    expect(parseNote(`${body}\n${sigLine.repeat(NOTE_MAX_SIGNATURES)}`).signatures).toHaveLength(
      NOTE_MAX_SIGNATURES,
    );
    malformedNote(`${body}\n${sigLine.repeat(NOTE_MAX_SIGNATURES + 1)}`);
  });

  it('input types and sizes: bytes are strict UTF-8, bounded; other types refused', () => {
    expect(parseNote(Buffer.from(signed, 'utf8')).text).toBe(body);
    expect(parseNote(new Uint8Array(Buffer.from(signed, 'utf8'))).text).toBe(body);
    const big = Buffer.alloc(NOTE_MAX_BYTES + 1, 0x61);
    malformedNote(big);
    malformedNote(Buffer.from([0xc3, 0x28, 0x0a, 0x0a]));
    for (const input of [null, undefined, 7, {}, [1, 2], new ArrayBuffer(4)])
      malformedNote(input as Uint8Array);
  });

  it('a note of exactly NOTE_MAX_BYTES bytes verifies, as text and as bytes; one more byte does not', () => {
    const overhead = Buffer.byteLength(signNote('x\n', signer)) - 2;
    const text = `${'a'.repeat(NOTE_MAX_BYTES - overhead - 1)}\n`;
    const note = signNote(text, signer);
    expect(Buffer.byteLength(note)).toBe(NOTE_MAX_BYTES);
    expect(verifyNote(note, [verifier]).outcome).toBe('verified');
    expect(verifyNote(Buffer.from(note), [verifier]).outcome).toBe('verified');
    const over = signNote(`a${text}`, signer);
    malformedNote(over);
    malformedNote(Buffer.from(over));
  });

  it('the smallest note: an empty line of text, split at offset 0', () => {
    const note = signNote('\n', signer);
    expect(note.startsWith('\n\n')).toBe(true);
    expect(parseNote(note).text).toBe('\n');
    expect(verifyNote(note, [verifier])).toMatchObject({ outcome: 'verified', text: '\n' });
  });

  it('a byte-order mark is kept as text: the signature covers it', () => {
    const text = `\ufeff${body}`;
    const note = signNote(text, signer);
    const bytes = Buffer.from(note, 'utf8');
    expect(bytes[0]).toBe(0xef);
    expect(parseNote(bytes).text).toBe(text);
    expect(verifyNote(bytes, [verifier])).toMatchObject({ outcome: 'verified', text });
  });

  it('line endings and blank lines', () => {
    malformedNote(signed.replace(/\n/g, '\r\n'));
    malformedNote(signed.replace('\n\n', '\n\r\n'));
    malformedNote(signed.slice(0, -1));
    malformedNote(`${body}${sigLine}`);
    malformedNote(`${signed}\n`);
    malformedNote('\n\n');
  });
});

describe('SPEC §5 checkpoint signature check: verdicts (OE-INV-016)', () => {
  const witnessKey = keyOf(2);
  const witness = noteSignerFor('w.example', witnessKey.privateKey);
  const witnessVerifier = noteVerifierFor('w.example', witnessKey.publicKey);

  it('a verified note is frozen and lists each known key once, in note order', () => {
    const note = `${signNote(body, [witness, signer])}${sigLine}`;
    const out = verifyNote(note, [verifier, witnessVerifier]);
    expect(out).toEqual({ outcome: 'verified', text: body, verifiedBy: ['w.example', LOG] });
    expect(Object.isFrozen(out)).toBe(true);
    expect(Object.isFrozen(out.outcome === 'verified' && out.verifiedBy)).toBe(true);
  });

  it('no verifiers, or only unknown signers: ERR_CHECKPOINT_SIGNATURE', () => {
    expectDeny(verifyNote(signed, []), 'ERR_CHECKPOINT_SIGNATURE');
    expectDeny(verifyNote(signed, [witnessVerifier]), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('a verifier is selected by name and key ID together', () => {
    const sameIdOtherName: NoteVerifier = { ...witnessVerifier, name: LOG, verify: () => true };
    expectDeny(verifyNote(signed, [sameIdOtherName]), 'ERR_CHECKPOINT_SIGNATURE');
    const sameNameOtherId: NoteVerifier = { ...verifier, keyId: signer.keyId ^ 1, verify: () => true };
    expectDeny(verifyNote(signed, [sameNameOtherId]), 'ERR_CHECKPOINT_SIGNATURE');
    const accepting: NoteVerifier = { ...verifier, verify: () => true };
    expect(verifyNote(signed, [accepting]).outcome).toBe('verified');
  });

  it('a verifier that returns a truthy non-boolean does not verify', () => {
    const truthy = { ...verifier, verify: () => 1 as unknown as boolean };
    expectDeny(verifyNote(signed, [truthy]), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('the verifier gets the UTF-8 text and the signature after the key ID', () => {
    const seen: [Buffer, Buffer][] = [];
    const spy: NoteVerifier = {
      ...verifier,
      verify: (t, s) => {
        seen.push([Buffer.from(t), Buffer.from(s)]);
        return true;
      },
    };
    expect(verifyNote(signed, [spy]).outcome).toBe('verified');
    expect(seen).toEqual([[Buffer.from(body, 'utf8'), Buffer.from(sigB64, 'base64').subarray(4)]]);
  });

  it('one failing known signature denies, even after a good one', () => {
    const bad = formatNoteSignature('w.example', witness.keyId, Buffer.alloc(64));
    expectDeny(verifyNote(`${signed}${bad}`, [verifier, witnessVerifier]), 'ERR_CHECKPOINT_SIGNATURE');
    expect(verifyNote(`${signed}${bad}`, [verifier]).outcome).toBe('verified');
  });
});

describe('SPEC §4 checkpoint bodies (tlog-checkpoint; L7-ledger-protection)', () => {
  it('parses sizes 0 and 16 digits, keeps extensions, and freezes the result', () => {
    const cp = parseCheckpoint(`o\n0\n${ROOT_B64}\nx\ny z\n`);
    expect(cp).toEqual({ origin: 'o', size: 0, rootHash: ROOT, extensions: ['x', 'y z'] });
    expect(Object.isFrozen(cp)).toBe(true);
    expect(Object.isFrozen(cp.extensions)).toBe(true);
    expect(parseCheckpoint(`o\n1000000000000000\n${ROOT_B64}\n`).size).toBe(1e15);
    expect(parseCheckpoint(`o\n10\n${ROOT_B64}\n`).size).toBe(10);
  });

  it('rejects every malformed size, root hash, origin and extension line', () => {
    const bad = [
      'o\n',
      `\n1\n${ROOT_B64}\n`,
      '',
      'o',
      `o\n10000000000000000\n${ROOT_B64}\n`,
      `o\n1 \n${ROOT_B64}\n`,
      `o\n1x\n${ROOT_B64}\n`,
      `o\nx1\n${ROOT_B64}\n`,
      `o\n\n${ROOT_B64}\n`,
      `o\n1e3\n${ROOT_B64}\n`,
      `o\n0x1\n${ROOT_B64}\n`,
      `o\n00\n${ROOT_B64}\n`,
      `o\n1\n${ROOT_B64} \n`,
      `o\n1\n${Buffer.alloc(33).toString('base64')}\n`,
      `o\n1\n${ROOT_B64.slice(0, -1)}\n`,
      `o\n1\n\n`,
      `o\n1\n${ROOT.toString('base64url')}x\n`,
      `o\n1\n${ROOT_B64}\n\n`,
      `o\n1\n${ROOT_B64}\na\n\n`,
      `o\n1\n${ROOT_B64}\r\n`,
      `o\t\n1\n${ROOT_B64}\n`,
    ];
    for (const text of bad) expectThrowsCode(() => parseCheckpoint(text), 'ERR_CHECKPOINT_MALFORMED');
  });

  it('formatCheckpoint writes exact lines and refuses every invalid field', () => {
    expect(formatCheckpoint({ origin: 'o', size: 0, rootHash: new Uint8Array(32), extensions: ['e'] })).toBe(
      `o\n0\n${Buffer.alloc(32).toString('base64')}\ne\n`,
    );
    const ok = { origin: 'o', size: 1, rootHash: Buffer.alloc(32) };
    for (const bad of [
      { ...ok, origin: 1 },
      { ...ok, origin: 'a\tb' },
      { ...ok, origin: '\n' },
      { ...ok, size: Number.NaN },
      { ...ok, size: Number.POSITIVE_INFINITY },
      { ...ok, size: 2 ** 53 },
      { ...ok, size: '1' },
      { ...ok, rootHash: Array.from({ length: 32 }, () => 0) },
      { ...ok, rootHash: Buffer.alloc(33) },
      { ...ok, extensions: ['a', 'b\nc'] },
      { ...ok, extensions: [7] },
      { ...ok, extensions: ['a\u0000'] },
    ])
      expect(() => formatCheckpoint(bad as never)).toThrow(TypeError);
  });
});

describe('SPEC §5 verifyCheckpoint: origin pinning and body checks (OE-INV-016)', () => {
  it('verifies with and without an expected origin, frozen', () => {
    const out = verifyCheckpoint(signed, [verifier]);
    expect(out).toEqual({
      outcome: 'verified',
      checkpoint: { origin: LOG, size: 3, rootHash: ROOT, extensions: [] },
      verifiedBy: [LOG],
    });
    expect(Object.isFrozen(out)).toBe(true);
    expect(verifyCheckpoint(signed, [verifier], { origin: LOG }).outcome).toBe('verified');
    expect(verifyCheckpoint(signed, [verifier], {}).outcome).toBe('verified');
  });

  it('origin mismatch is a signature deny; a bad note keeps its own code', () => {
    expectDeny(verifyCheckpoint(signed, [verifier], { origin: 'log.example/b' }), 'ERR_CHECKPOINT_SIGNATURE');
    expectDeny(verifyCheckpoint(signed, [verifier], { origin: '' }), 'ERR_CHECKPOINT_SIGNATURE');
    expectDeny(verifyCheckpoint(signed.slice(0, -1), [verifier]), 'ERR_CHECKPOINT_MALFORMED');
    expectDeny(verifyCheckpoint(signed, []), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('a signed note whose body is not a checkpoint is malformed', () => {
    for (const text of ['hello\n', `o\n1\n${ROOT_B64}\n\nx\n`.replace('\n\nx', '\nx\n'), `o\n1\nAAAA\n`])
      expectDeny(verifyCheckpoint(signNote(text, signer), [verifier]), 'ERR_CHECKPOINT_MALFORMED');
  });
});

describe('SPEC §5 trust roots: verifier keys (vkeys) fail closed with ERR_KEY_INVALID', () => {
  const vkey = vkeyFor(LOG, logKey.publicKey);

  it('round-trips a vkey into a working verifier', () => {
    const v = noteVerifierFromVkey(vkey);
    expect(v).toMatchObject({ name: LOG, keyId: signer.keyId, algorithm: NOTE_ALG_ED25519 });
    expect(Object.isFrozen(v)).toBe(true);
    expect(verifyNote(signed, [v]).outcome).toBe('verified');
    expect(v.verify(Buffer.from(body), Buffer.alloc(64))).toBe(false);
    expect(vkey).toBe(
      `${LOG}+${signer.keyId.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([1]), logKey.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)]).toString('base64')}`,
    );
  });

  it('pads a key ID below 2^28 to 8 hex digits', () => {
    let seed = 3;
    for (; ; seed++) {
      const k = keyOf(seed);
      if (noteVerifierFor('p', k.publicKey).keyId < 0x10000000) break;
    }
    const k = keyOf(seed);
    const v = vkeyFor('p', k.publicKey);
    expect(v.split('+')[1]).toMatch(/^0[0-9a-f]{7}$/);
    expect(noteVerifierFromVkey(v).keyId).toBe(noteVerifierFor('p', k.publicKey).keyId);
  });

  it('accepts a vkey of exactly the length bound and refuses one character more', () => {
    const tail = vkey.slice(LOG.length);
    const long = (n: number) => {
      const name = 'n'.repeat(n);
      return vkeyFor(name, logKey.publicKey);
    };
    const fits = long(4096 - tail.length);
    expect(fits).toHaveLength(4096);
    expect(noteVerifierFromVkey(fits).name).toHaveLength(4096 - tail.length);
    const over = long(4097 - tail.length);
    expect(over).toHaveLength(4097);
    expectThrowsCode(() => noteVerifierFromVkey(over), 'ERR_KEY_INVALID');
  });

  it('refuses malformed vkeys', () => {
    const [name, id, b64] = vkey.split('+') as [string, string, string];
    for (const bad of [
      '',
      '+',
      '++',
      `${name}`,
      `${name}+${id}`,
      `+${id}+${b64}`,
      `${name}++${b64}`,
      `${name}+${id}+`,
      `${name}+${id}+AQ==`,
      `${name}+${id}+${b64.slice(0, -1)}`,
      `${name}+${id}+${b64} `,
      `${name}+ ${id}+${b64}`,
      `${name}+${id}0+${b64}`,
      `${name}+g${id.slice(1)}+${b64}`,
      `a b+${id}+${b64}`,
      `${name}x+${id}+${b64}`,
      `${name}+${id}+${Buffer.concat([Buffer.from([2]), Buffer.from(b64, 'base64').subarray(1)]).toString('base64')}`,
      `${name}+${id}+${Buffer.concat([Buffer.from(b64, 'base64'), Buffer.from([0])]).toString('base64')}`,
    ])
      expectThrowsCode(() => noteVerifierFromVkey(bad), 'ERR_KEY_INVALID');
    for (const bad of [undefined, null, 42, { vkey }])
      expectThrowsCode(() => noteVerifierFromVkey(bad as never), 'ERR_KEY_INVALID');
  });

  it('noteVerifierFor and vkeyFor refuse invalid names as caller errors', () => {
    for (const bad of ['', 'a b', 'a+b', 'a\u0085'] as const) {
      expect(() => noteVerifierFor(bad, logKey.publicKey)).toThrow(TypeError);
      expect(() => vkeyFor(bad, logKey.publicKey)).toThrow(TypeError);
    }
  });
});
