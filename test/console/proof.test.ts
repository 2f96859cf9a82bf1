/**
 * The browser's evidence checks (src/console/web/proof.ts) against the kernel's own (FC-INV-5,
 * RFC 9162 §2.1.3, C2SP signed-note): every inclusion proof of trees of 1..40 leaves verifies and
 * never for another leaf, index or root; a checkpoint note verifies under its vkey only, never
 * with a flipped byte or another key. Run in Node's WebCrypto, the API the browser uses.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createMerkleTree, formatCheckpoint, leafHash, vkeyFor } from '../../src/kernel/index.js';
import { generateSigningKey, noteSignerFor, signNote } from '../../src/kernel/signing/index.js';
import { checkInclusion, verifyCheckpointNote } from '../../src/console/web/proof.js';

describe('browser inclusion proofs', () => {
  it('verify for every leaf of trees of 1..40 leaves, and not for a neighbour or another root', async () => {
    for (let size = 1; size <= 40; size += 1) {
      const hashes = Array.from({ length: size }, () => randomBytes(32).toString('hex'));
      const tree = createMerkleTree(hashes.map((h) => leafHash(Buffer.from(h, 'hex'))));
      const root = tree.root();
      for (let i = 0; i < size; i += 1) {
        const proof = tree.inclusionProof(i).map((p) => p.toString('hex'));
        expect(await checkInclusion(hashes[i]!, i, size, proof, root)).toBe(true);
        if (size > 1) {
          expect(await checkInclusion(hashes[(i + 1) % size]!, i, size, proof, root)).toBe(false);
          expect(await checkInclusion(hashes[i]!, (i + 1) % size, size, proof, root)).toBe(false);
        }
        expect(await checkInclusion(hashes[i]!, i, size, proof, randomBytes(32))).toBe(false);
      }
    }
  });
});

describe('browser checkpoint signature', () => {
  const key = generateSigningKey();
  const text = formatCheckpoint({ origin: 'failclosed.test/ledger', size: 7, rootHash: randomBytes(32) });
  const note = signNote(text, noteSignerFor('failclosed.test/ledger', key.privateKey));
  const vkey = vkeyFor('failclosed.test/ledger', key.publicKey);

  it('verifies under its vkey and reads size and root', async () => {
    const v = await verifyCheckpointNote(note, vkey);
    expect(v?.size).toBe(7);
    expect(v?.origin).toBe('failclosed.test/ledger');
  });

  it('refuses a changed text, a changed signature and another key', async () => {
    expect(await verifyCheckpointNote(note.replace('\n7\n', '\n8\n'), vkey)).toBeUndefined();
    const sigAt = note.lastIndexOf(' ') + 10;
    const flipped = `${note.slice(0, sigAt)}${note[sigAt] === 'A' ? 'B' : 'A'}${note.slice(sigAt + 1)}`;
    expect(await verifyCheckpointNote(flipped, vkey)).toBeUndefined();
    const other = vkeyFor('failclosed.test/ledger', generateSigningKey().publicKey);
    expect(await verifyCheckpointNote(note, other)).toBeUndefined();
    expect(await verifyCheckpointNote(note, 'garbage')).toBeUndefined();
  });
});
