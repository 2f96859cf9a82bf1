/**
 * C2SP signed-note v1.0.0 and tlog-checkpoint v1.0.0 (SPEC §4 signed checkpoints, §5 checkpoint
 * signature check, L7 ledger protection), replaying the spec examples and tessera's test log.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FailclosedError, isDeny } from '../../src/kernel/errors.js';
import {
  createMerkleTree,
  leafHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../src/kernel/merkle.js';
import {
  NOTE_MAX_SIGNATURES,
  formatCheckpoint,
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
import { noteSignerFor, noteSignerFromSkey, signNote } from '../../src/kernel/signing/sign-note.js';
import { describeOrFail } from '../support/collect.js';
import { VECTORS_DIR } from '../support/paths.js';

const DIR = join(VECTORS_DIR, 'checkpoint');
const vectors = JSON.parse(readFileSync(join(DIR, 'note_vectors.json'), 'utf8')) as {
  notes: { vkey: string; note: string; expect: string }[];
  formatOnlyExamples: {
    note: string;
    parsed: {
      origin: string;
      treeSize: number;
      rootHashBase64: string;
      signatures: {
        keyName: string;
        keyIdHex: string;
        cosignatureTimestamp?: number;
        signatureBytes: number;
      }[];
    };
  }[];
  tesseraTestLog: {
    origin: string;
    vkey: string;
    testOnlySigningKey: string;
    entries: string[];
    checkpoints: { file: string; treeSize: number; rootHashBase64: string }[];
  };
};
const tessera = vectors.tesseraTestLog;
const readCheckpoint = (n: number): string =>
  readFileSync(join(DIR, `tessera-testdata-log/checkpoint.${n}`), 'utf8');

function newSigner(name: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signer: noteSignerFor(name, privateKey), verifier: noteVerifierFor(name, publicKey), publicKey };
}

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

describeOrFail('signed-note spec example', () => {
  for (const v of vectors.notes) {
    it(`verifies with its vkey (${v.expect})`, () => {
      const result = verifyNote(v.note, [noteVerifierFromVkey(v.vkey)]);
      expect(result).toMatchObject({
        outcome: 'verified',
        text: 'This is an example message.\n',
        verifiedBy: ['example.com/foo'],
      });
    });
  }
  it('computes the key ID SHA-256(name || 0x0A || 0x01 || key)[:4]', () => {
    const v = noteVerifierFromVkey(vectors.notes[0]!.vkey);
    expect(v.keyId).toBe(0x530d903a);
    expect(v.name).toBe('example.com/foo');
  });
});

describeOrFail('tlog-checkpoint spec example (format only, unknown keys)', () => {
  const ex = vectors.formatOnlyExamples[0]!;
  it('parses the note and its checkpoint body', () => {
    const note = parseNote(ex.note);
    expect(note.signatures.map((s) => [s.name, s.keyId.toString(16).padStart(8, '0')])).toEqual(
      ex.parsed.signatures.map((s) => [s.keyName, s.keyIdHex]),
    );
    expect(note.signatures[0]!.signature.length).toBe(64);
    // The cosignature (type 0x04) is an 8-byte timestamp then the signature.
    expect(note.signatures[1]!.signature.length).toBe(72);
    expect(Number(note.signatures[1]!.signature.readBigUInt64BE(0))).toBe(
      ex.parsed.signatures[1]!.cosignatureTimestamp,
    );
    const cp = parseCheckpoint(note.text);
    expect(cp.origin).toBe(ex.parsed.origin);
    expect(cp.size).toBe(ex.parsed.treeSize);
    expect(cp.rootHash.toString('base64')).toBe(ex.parsed.rootHashBase64);
    expect(cp.extensions).toEqual([]);
  });
  it('is rejected when signed only by keys the verifier does not know', () => {
    expectDeny(verifyNote(ex.note, [noteVerifierFromVkey(tessera.vkey)]), 'ERR_CHECKPOINT_SIGNATURE');
    expectDeny(verifyNote(ex.note, []), 'ERR_CHECKPOINT_SIGNATURE');
  });
});

describeOrFail('tessera test log', () => {
  const verifier = noteVerifierFromVkey(tessera.vkey);
  const leaves = tessera.entries.map((e) => leafHash(Buffer.from(e, 'utf8')));
  const tree = createMerkleTree(leaves);

  it('parses a vkey whose base64 contains "+" by splitting on the first two "+" only', () => {
    expect(tessera.vkey.split('+').length).toBeGreaterThan(3);
    expect(verifier.name).toBe('example.com/log/testdata');
    expect(verifier.keyId).toBe(0x33d7b496);
  });

  it('verifies every checkpoint 0..15, whose root is the MTH of the entries', () => {
    for (const want of tessera.checkpoints) {
      const note = readCheckpoint(want.treeSize);
      const result = verifyCheckpoint(note, [verifier], { origin: tessera.origin });
      if (result.outcome !== 'verified') throw new Error(`checkpoint ${want.treeSize}: ${result.code}`);
      expect(result.verifiedBy).toEqual([tessera.origin]);
      expect(result.checkpoint.size).toBe(want.treeSize);
      expect(result.checkpoint.rootHash.toString('base64')).toBe(want.rootHashBase64);
      expect(result.checkpoint.rootHash).toEqual(rootOf(leaves.slice(0, want.treeSize)));
      expect(result.checkpoint.rootHash).toEqual(tree.root(want.treeSize));
    }
    expect(readFileSync(join(DIR, 'tessera-testdata-log/checkpoint'), 'utf8')).toBe(readCheckpoint(15));
  });

  it('level-0 tiles hold the leaf hashes', () => {
    const tile = readFileSync(join(DIR, 'tessera-testdata-log/tile/0/000.p/15'));
    expect(tile).toEqual(Buffer.concat(leaves));
  });

  it('re-signing each body with the published test key reproduces the checkpoint byte for byte', () => {
    const signer = noteSignerFromSkey(tessera.testOnlySigningKey);
    expect(signer.keyId).toBe(verifier.keyId);
    for (let n = 0; n <= 15; n++) {
      const stored = readCheckpoint(n);
      const body = formatCheckpoint({ origin: tessera.origin, size: n, rootHash: tree.root(n) });
      expect(body).toBe(parseNote(stored).text);
      expect(signNote(body, signer)).toBe(stored);
    }
  });

  it('gives end-to-end inclusion and consistency proofs between signed checkpoints', () => {
    const cps = Array.from({ length: 16 }, (_, n) => {
      const r = verifyCheckpoint(readCheckpoint(n), [verifier]);
      if (r.outcome !== 'verified') throw new Error('unverified');
      return r.checkpoint;
    });
    for (let n = 1; n <= 15; n++) {
      for (let i = 0; i < n; i++) {
        expect(verifyInclusion(i, n, leaves[i]!, tree.inclusionProof(i, n), cps[n]!.rootHash)).toBe(true);
      }
      for (let m = 1; m <= n; m++) {
        expect(verifyConsistency(m, n, tree.consistencyProof(m, n), cps[m]!.rootHash, cps[n]!.rootHash)).toBe(
          true,
        );
      }
    }
    // A rollback: checkpoint 15 is not consistent with an older one posing as newer.
    expect(verifyConsistency(7, 15, tree.consistencyProof(7, 15), cps[8]!.rootHash, cps[15]!.rootHash)).toBe(
      false,
    );
  });

  it('rejects an edited body, a reordered body and the wrong origin', () => {
    const stored = readCheckpoint(5);
    expectDeny(verifyCheckpoint(stored.replace('\n5\n', '\n6\n'), [verifier]), 'ERR_CHECKPOINT_SIGNATURE');
    const [origin, size, root, ...rest] = stored.split('\n');
    expectDeny(
      verifyCheckpoint([size, origin, root, ...rest].join('\n'), [verifier]),
      'ERR_CHECKPOINT_SIGNATURE',
    );
    expectDeny(
      verifyCheckpoint(stored, [verifier], { origin: 'example.com/other' }),
      'ERR_CHECKPOINT_SIGNATURE',
    );
    expectDeny(verifyCheckpoint(stored, [newSigner(tessera.origin).verifier]), 'ERR_CHECKPOINT_SIGNATURE');
  });
});

describeOrFail('sign and verify round trip', () => {
  const log = newSigner('log.example/a');
  const witness = newSigner('witness.example/w');
  const body = formatCheckpoint({
    origin: 'log.example/a',
    size: 42,
    rootHash: Buffer.alloc(32, 7),
    extensions: ['ext one'],
  });

  it('verifies, and reports which known keys verified', () => {
    const note = signNote(body, [log.signer, witness.signer]);
    expect(verifyNote(note, [log.verifier, witness.verifier])).toMatchObject({
      outcome: 'verified',
      text: body,
      verifiedBy: ['log.example/a', 'witness.example/w'],
    });
    const cp = verifyCheckpoint(note, [log.verifier]);
    expect(cp).toMatchObject({ outcome: 'verified', verifiedBy: ['log.example/a'] });
    expect(cp.outcome === 'verified' && cp.checkpoint.extensions).toEqual(['ext one']);
    expect(verifyNote(Buffer.from(note, 'utf8'), [log.verifier]).outcome).toBe('verified');
  });

  it('verifies through vkey strings', () => {
    const vkey = vkeyFor('log.example/a', log.publicKey);
    const parsed = noteVerifierFromVkey(vkey);
    expect(parsed.keyId).toBe(log.signer.keyId);
    expect(verifyNote(signNote(body, log.signer), [parsed]).outcome).toBe('verified');
  });

  it('ignores signatures from unknown keys, including same name or same key ID alone', () => {
    const impostorName = newSigner('log.example/a');
    const note = signNote(body, [impostorName.signer, witness.signer, log.signer]);
    expect(verifyNote(note, [log.verifier])).toMatchObject({
      outcome: 'verified',
      verifiedBy: ['log.example/a'],
    });
    // A verifier with the right key ID under another name does not match the signature line.
    const renamed: NoteVerifier = { ...log.verifier, name: 'log.example/b', verify: () => true };
    expectDeny(verifyNote(signNote(body, log.signer), [renamed]), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('rejects a tampered body or signature, and a bad signature from any known key', () => {
    const note = signNote(body, log.signer);
    expectDeny(verifyNote(note.replace('42', '43'), [log.verifier]), 'ERR_CHECKPOINT_SIGNATURE');
    const sigLine = note.slice(note.lastIndexOf('— '));
    const b64 = sigLine.split(' ')[2]!.trimEnd();
    const bytes = Buffer.from(b64, 'base64');
    bytes[10]! ^= 1;
    expectDeny(
      verifyNote(note.replace(b64, bytes.toString('base64')), [log.verifier]),
      'ERR_CHECKPOINT_SIGNATURE',
    );
    const mixed = signNote(body, [log.signer, witness.signer]).replace(
      /(— witness\S+ )(\S+)/u,
      (_, p: string, s: string) => {
        const raw = Buffer.from(s, 'base64');
        raw[20]! ^= 0x80;
        return p + raw.toString('base64');
      },
    );
    expectDeny(verifyNote(mixed, [log.verifier, witness.verifier]), 'ERR_CHECKPOINT_SIGNATURE');
    expect(verifyNote(mixed, [log.verifier]).outcome).toBe('verified');
  });

  it('turns a throwing verifier into a deny', () => {
    const throwing: NoteVerifier = {
      ...log.verifier,
      verify: () => {
        throw new Error('boom');
      },
    };
    expectDeny(verifyNote(signNote(body, log.signer), [throwing]), 'ERR_CHECKPOINT_SIGNATURE');
  });

  it('refuses to sign invalid text or with a mismatched key ID', () => {
    expect(() => signNote('no newline', log.signer)).toThrow(TypeError);
    expect(() => signNote('tab\there\n', log.signer)).toThrow(TypeError);
    expect(() => signNote(body, { ...log.signer, keyId: log.signer.keyId ^ 1 })).toThrow(TypeError);
    expect(() => signNote(body, [])).toThrow(TypeError);
    expect(() => noteSignerFor('has space', generateKeyPairSync('ed25519').privateKey)).toThrow(TypeError);
  });
});

describeOrFail('malformed notes are denied, never thrown', () => {
  const { signer, verifier } = newSigner('k.example');
  const good = signNote('hello\n', signer);
  const line = good.slice(good.indexOf('— '));
  const sig = line.split(' ')[2]!.trimEnd();
  const cases: [string, string | Uint8Array][] = [
    ['no blank line', `hello\n${line}`],
    ['no signatures', 'hello\n\n'],
    ['no final newline', good.slice(0, -1)],
    ['CRLF', good.replace(/\n/g, '\r\n')],
    ['tab in text', `he\tllo\n\n${line}`],
    ['hyphen instead of em dash', `hello\n\n- k.example ${sig}\n`],
    ['name with plus', `hello\n\n— k+example ${sig}\n`],
    ['name with a Unicode space', `hello\n\n— k\u00a0example ${sig}\n`],
    ['two spaces', `hello\n\n— k.example  ${sig}\n`],
    ['unpadded base64', `hello\n\n— k.example ${sig.replace(/=+$/, '')}\n`],
    ['base64url', `hello\n\n— k.example ${sig.replace(/\+/g, '-').replace(/\//g, '_')}x==\n`],
    ['signature shorter than 5 bytes', `hello\n\n— k.example AAAAAA==\n`],
    ['lone surrogate', `he\ud800llo\n\n${line}`],
    ['invalid UTF-8 bytes', Buffer.concat([Buffer.from([0xff]), Buffer.from(good)])],
    ['too many signatures', `hello\n\n${line.repeat(NOTE_MAX_SIGNATURES + 1)}`],
    ['too large', `${'a'.repeat(300_000)}\n\n${line}`],
  ];
  it('the unmodified note verifies', () => expect(verifyNote(good, [verifier]).outcome).toBe('verified'));
  for (const [name, input] of cases) {
    it(name, () => {
      expectDeny(verifyNote(input, [verifier]), 'ERR_CHECKPOINT_MALFORMED');
      expectThrowsCode(() => parseNote(input), 'ERR_CHECKPOINT_MALFORMED');
    });
  }
  it('splits at the last blank line: earlier signature lines become text', () => {
    const note = `hello\n\n${line}\n${line}`;
    expect(parseNote(note).text).toBe(`hello\n\n${line}`);
    expectDeny(verifyNote(note, [verifier]), 'ERR_CHECKPOINT_SIGNATURE');
  });
  it('non-text input', () => expectDeny(verifyNote(42 as never, [verifier]), 'ERR_CHECKPOINT_MALFORMED'));
  it('accepts 16 signatures, as the spec requires', () => {
    expect(verifyNote(`hello\n\n${line.repeat(16)}`, [verifier]).outcome).toBe('verified');
  });
});

describeOrFail('checkpoint bodies', () => {
  const root = Buffer.alloc(32, 1).toString('base64');
  it('round-trips through formatCheckpoint and parseCheckpoint', () => {
    const cp = {
      origin: 'o.example/log',
      size: 9007199254740991,
      rootHash: Buffer.alloc(32, 1),
      extensions: ['a b', 'c'],
    };
    expect(parseCheckpoint(formatCheckpoint(cp))).toEqual(cp);
    expect(formatCheckpoint({ ...cp, extensions: [] })).toBe(`o.example/log\n9007199254740991\n${root}\n`);
  });
  const bad: [string, string][] = [
    ['leading zero', `o\n01\n${root}\n`],
    ['negative size', `o\n-1\n${root}\n`],
    ['plus sign', `o\n+1\n${root}\n`],
    ['spaces', `o\n 1\n${root}\n`],
    ['unsafe size', `o\n9007199254740992\n${root}\n`],
    ['huge size', `o\n${'9'.repeat(40)}\n${root}\n`],
    ['short root', `o\n1\n${Buffer.alloc(31).toString('base64')}\n`],
    ['non-canonical base64 root', `o\n1\n${root.slice(0, 42)}B=\n`],
    ['missing root', `o\n1\n`],
    ['empty origin', `\n1\n${root}\n`],
    ['empty extension line', `o\n1\n${root}\n\next\n`],
    ['no final newline', `o\n1\n${root}`],
  ];
  for (const [name, text] of bad)
    it(`rejects: ${name}`, () => expectThrowsCode(() => parseCheckpoint(text), 'ERR_CHECKPOINT_MALFORMED'));
  it('formatCheckpoint refuses invalid fields', () => {
    const ok = { origin: 'o', size: 1, rootHash: Buffer.alloc(32) };
    expect(() => formatCheckpoint({ ...ok, origin: '' })).toThrow(TypeError);
    expect(() => formatCheckpoint({ ...ok, origin: 'a\nb' })).toThrow(TypeError);
    expect(() => formatCheckpoint({ ...ok, size: -1 })).toThrow(TypeError);
    expect(() => formatCheckpoint({ ...ok, size: 1.5 })).toThrow(TypeError);
    expect(() => formatCheckpoint({ ...ok, rootHash: Buffer.alloc(31) })).toThrow(TypeError);
    expect(() => formatCheckpoint({ ...ok, extensions: [''] })).toThrow(TypeError);
  });
  it('a verified note with a malformed checkpoint body is denied', () => {
    const { signer, verifier } = newSigner('o');
    expectDeny(
      verifyCheckpoint(signNote(`o\n01\n${root}\n`, signer), [verifier]),
      'ERR_CHECKPOINT_MALFORMED',
    );
  });
});

describeOrFail('verifier keys', () => {
  const vkeyOf = (name: string, alg: number, key: Buffer, id = noteKeyId(name, alg, key)): string =>
    `${name}+${id.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([alg]), key]).toString('base64')}`;
  const good = tessera.vkey;
  const [name, idHex] = good.split('+') as [string, string];
  const bad: [string, string][] = [
    ['uppercase key ID', good.replace(idHex, idHex.toUpperCase())],
    ['wrong key ID', good.replace(idHex, '33d7b497')],
    ['short key ID', good.replace(idHex, '33d7b49')],
    ['missing key', `${name}+${idHex}`],
    ['missing parts', name],
    ['empty name', good.slice(name.length)],
    ['name with space', vkeyOf('a b', 1, Buffer.alloc(32, 9))],
    ['unknown signature type', vkeyOf('x', 0x02, Buffer.alloc(32, 9))],
    ['short Ed25519 key', vkeyOf('x', 1, Buffer.alloc(31, 9))],
    ['non-canonical base64', `${good.slice(0, -2)}y=`],
    ['all-zero (small-order) key', vkeyOf('x', 1, Buffer.alloc(32))],
  ];
  for (const [label, vkey] of bad)
    it(`rejects: ${label}`, () => expectThrowsCode(() => noteVerifierFromVkey(vkey), 'ERR_KEY_INVALID'));

  it('rejects every low-order or non-canonical public key from the CCTV vectors', () => {
    const records = JSON.parse(
      readFileSync(join(VECTORS_DIR, 'ed25519/cctv_ed25519vectors.json'), 'utf8'),
    ) as {
      key: string;
      flags: string[] | null;
    }[];
    const weak = records.filter((r) => r.flags?.some((f) => f === 'low_order_A' || f === 'non_canonical_A'));
    expect(weak.length).toBeGreaterThan(0);
    for (const r of weak)
      expectThrowsCode(
        () => noteVerifierFromVkey(vkeyOf('x', 1, Buffer.from(r.key, 'hex'))),
        'ERR_KEY_INVALID',
      );
  });
});
