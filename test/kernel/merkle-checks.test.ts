/**
 * Edge checks of the RFC 6962/9162 Merkle tree (SPEC §4 ledger Merkle tree, inclusion and
 * consistency proofs; §5 the verifier recomputes the root; L7-ledger-protection, OE-INV-022
 * immutable auditability): exact range bounds, every proof verification edge, and reopening a
 * stored tree without re-hashing.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT,
  HASH_SIZE,
  createMerkleTree,
  createRootAccumulator,
  leafHash,
  nodeHash,
  restoreMerkleTree,
  rootFromInclusionProof,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../src/kernel/merkle.js';

const leaves = Array.from({ length: 40 }, (_, i) => leafHash(Buffer.from(`entry ${i}`)));
const tree = createMerkleTree(leaves);
const sha = (...parts: Buffer[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();

/** The RFC 9162 §2.1.1 MTH, recursively, as an independent reference. */
function mth(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return sha();
  if (hashes.length === 1) return hashes[0]!;
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return nodeHash(mth(hashes.slice(0, k)), mth(hashes.slice(k)));
}

describe('SPEC §4 hashing (RFC 9162 §2.1.1; L7-ledger-protection)', () => {
  it('leaf, node and empty hashes are domain-separated SHA-256', () => {
    const a = Buffer.from('a');
    expect(leafHash(a)).toEqual(sha(Buffer.from([0]), a));
    expect(nodeHash(leaves[0]!, leaves[1]!)).toEqual(sha(Buffer.from([1]), leaves[0]!, leaves[1]!));
    expect(EMPTY_ROOT).toEqual(sha());
    expect(HASH_SIZE).toBe(32);
  });

  it('the accumulator counts leaves and matches the recursive MTH at every size', () => {
    const acc = createRootAccumulator();
    expect(acc.count).toBe(0);
    expect(acc.root()).toEqual(sha());
    for (let i = 0; i < 20; i++) {
      acc.push(leaves[i]!);
      expect(acc.count).toBe(i + 1);
      expect(acc.root()).toEqual(mth(leaves.slice(0, i + 1)));
    }
    expect(() => acc.push(Buffer.alloc(33))).toThrow(TypeError);
    expect(() => acc.push('x'.repeat(32) as never)).toThrow(TypeError);
    expect(acc.count).toBe(20);
    expect(rootOf([])).toEqual(sha());
    expect(rootOf(leaves.slice(0, 1))).toEqual(leaves[0]);
  });

  it('the incremental tree gives the recursive MTH for every historical size', () => {
    for (let n = 0; n <= leaves.length; n++) expect(tree.root(n)).toEqual(mth(leaves.slice(0, n)));
    expect(tree.root()).toEqual(mth(leaves));
    expect(tree.size).toBe(40);
  });
});

describe('SPEC §4 MerkleTree ranges are exact (OE-INV-022)', () => {
  it('leaf, root, inclusionProof and consistencyProof accept the bounds and refuse one past them', () => {
    expect(tree.leaf(0)).toEqual(leaves[0]);
    expect(tree.leaf(39)).toEqual(leaves[39]);
    for (const i of [-1, 40, 0.5, Number.NaN]) expect(() => tree.leaf(i)).toThrow(RangeError);
    expect(tree.root(0)).toEqual(sha());
    for (const s of [-1, 41, Number.POSITIVE_INFINITY]) expect(() => tree.root(s)).toThrow(RangeError);

    expect(tree.inclusionProof(39)).toEqual(tree.inclusionProof(39, 40));
    expect(tree.inclusionProof(0, 1)).toEqual([]);
    for (const [i, s] of [
      [0, 41],
      [-1, 5],
      [5, 5],
      [0, 0],
    ] as const)
      expect(() => tree.inclusionProof(i, s)).toThrow(RangeError);

    expect(tree.consistencyProof(40)).toEqual([]);
    expect(tree.consistencyProof(7)).toEqual(tree.consistencyProof(7, 40));
    expect(tree.consistencyProof(1, 1)).toEqual([]);
    expect(tree.consistencyProof(5, 5)).toEqual([]);
    for (const [a, b] of [
      [1, 41],
      [0, 0],
      [6, 5],
      [0, 5],
    ] as const)
      expect(() => tree.consistencyProof(a, b)).toThrow(RangeError);
    expect(() => createMerkleTree().consistencyProof(1, 0)).toThrow(RangeError);
  });

  it('every proof verifies between every pair of sizes, and a leaf only at its index', () => {
    for (let size = 1; size <= 20; size++) {
      const root = tree.root(size);
      for (let i = 0; i < size; i++) {
        const proof = tree.inclusionProof(i, size);
        expect(verifyInclusion(i, size, leaves[i]!, proof, root)).toBe(true);
        expect(rootFromInclusionProof(i, size, leaves[i]!, proof)).toEqual(root);
        if (size > 1) expect(verifyInclusion((i + 1) % size, size, leaves[i]!, proof, root)).toBe(false);
      }
      for (let m = 1; m <= size; m++)
        expect(verifyConsistency(m, size, tree.consistencyProof(m, size), tree.root(m), root)).toBe(true);
    }
  });
});

describe('SPEC §4 stored levels: nodes() and restoreMerkleTree (OE-INV-022)', () => {
  const big = createMerkleTree(Array.from({ length: 2100 }, (_, i) => leafHash(Buffer.from(`big ${i}`))));

  it('nodes() returns the aligned subtree roots of a level, with exact bounds', () => {
    expect(tree.nodes(0, 0, 40)).toEqual(Buffer.concat(leaves));
    expect(tree.nodes(0, 3, 5)).toEqual(Buffer.concat(leaves.slice(3, 5)));
    expect(tree.nodes(1, 0, 20)).toHaveLength(20 * 32);
    expect(tree.nodes(1, 2, 3)).toEqual(nodeHash(leaves[4]!, leaves[5]!));
    expect(tree.nodes(3, 4, 5)).toEqual(mth(leaves.slice(32, 40)));
    expect(tree.nodes(5, 0, 1)).toEqual(tree.root(32));
    expect(tree.nodes(6, 0, 0)).toHaveLength(0);
    expect(tree.nodes(63, 0, 0)).toHaveLength(0);
    expect(tree.nodes(0, 40, 40)).toHaveLength(0);
    for (const [l, f, t] of [
      [-1, 0, 0],
      [64, 0, 0],
      [0.5, 0, 0],
      [0, 0, 41],
      [1, 0, 21],
      [5, 0, 2],
      [0, 5, 4],
      [0, -1, 2],
    ] as const)
      expect(() => tree.nodes(l, f, t)).toThrow(RangeError);
    expect(big.nodes(0, 1023, 1026)).toEqual(Buffer.concat([1023, 1024, 1025].map((i) => big.leaf(i))));
  });

  it('a restored tree has the same roots and proofs, and keeps growing correctly', () => {
    for (const src of [tree, big]) {
      const size = src.size;
      const restored = restoreMerkleTree(size, (l) => src.nodes(l, 0, Math.floor(size / 2 ** l)));
      expect(restored.size).toBe(size);
      expect(restored.root()).toEqual(src.root());
      for (const s of [1, 2, 3, 31, 32, 33, size]) expect(restored.root(s)).toEqual(src.root(s));
      expect(restored.inclusionProof(size - 1)).toEqual(src.inclusionProof(size - 1));
      expect(restored.consistencyProof(3)).toEqual(src.consistencyProof(3));
      const extra = leafHash(Buffer.from('next'));
      restored.append(extra);
      expect(restored.root()).toEqual(
        rootOf([...Array.from({ length: size }, (_, i) => src.leaf(i)), extra]),
      );
    }
  });

  it('extra stored hashes are ignored; size 0 reads no level', () => {
    const padded = restoreMerkleTree(5, (l) =>
      Buffer.concat([tree.nodes(l, 0, Math.floor(5 / 2 ** l)), Buffer.alloc(64, 0xee)]),
    );
    expect(padded.size).toBe(5);
    expect(padded.root()).toEqual(tree.root(5));
    const levels: number[] = [];
    const empty = restoreMerkleTree(0, (l) => {
      levels.push(l);
      return Buffer.alloc(0);
    });
    expect(levels).toEqual([]);
    expect(empty.root()).toEqual(sha());
    const read: number[] = [];
    restoreMerkleTree(8, (l) => {
      read.push(l);
      return tree.nodes(l, 0, Math.floor(8 / 2 ** l));
    });
    expect(read).toEqual([0, 1, 2, 3]);
  });

  it('refuses an invalid size or a short or non-byte level', () => {
    for (const s of [-1, 1.5, Number.NaN, '3', 2 ** 53])
      expect(() => restoreMerkleTree(s as never, () => Buffer.alloc(0))).toThrow(TypeError);
    expect(() =>
      restoreMerkleTree(3, (l) => (l === 0 ? Buffer.alloc(3 * 32 - 1) : Buffer.alloc(32))),
    ).toThrow(TypeError);
    expect(() => restoreMerkleTree(3, (l) => (l === 0 ? Buffer.alloc(96) : Buffer.alloc(31)))).toThrow(
      TypeError,
    );
    expect(() =>
      restoreMerkleTree(2, (l) => (l === 0 ? ([...Buffer.alloc(64)] as never) : Buffer.alloc(32))),
    ).toThrow(TypeError);
    expect(restoreMerkleTree(3, (l) => Buffer.alloc(l === 0 ? 96 : 32)).size).toBe(3);
  });
});

describe('SPEC §5 inclusion verification edges (RFC 9162 §2.1.3.2; L7-ledger-protection)', () => {
  const size = 13;
  const root = tree.root(size);
  const proof = tree.inclusionProof(6, size);
  const leaf = leaves[6]!;

  it('wrong size, index ≥ size, short or long proof, and root mismatch are all false', () => {
    expect(verifyInclusion(6, size, leaf, proof, root)).toBe(true);
    // Sizes 9..16 give leaf 6 a path of the same shape; 7 and 17 do not.
    expect(verifyInclusion(6, 7, leaf, proof, root)).toBe(false);
    expect(verifyInclusion(6, 17, leaf, proof, root)).toBe(false);
    expect(verifyInclusion(size, size, leaf, proof, root)).toBe(false);
    expect(verifyInclusion(size + 1, size, leaf, proof, root)).toBe(false);
    expect(verifyInclusion(6, size, leaf, proof.slice(0, -1), root)).toBe(false);
    expect(verifyInclusion(6, size, leaf, [...proof, leaf], root)).toBe(false);
    expect(verifyInclusion(6, size, leaf, [], root)).toBe(false);
    expect(verifyInclusion(6, size, leaf, proof, tree.root(size + 1))).toBe(false);
    expect(verifyInclusion(6, size, leaf, proof, Buffer.alloc(32))).toBe(false);
    expect(verifyInclusion(6, size, leaf, proof, Buffer.concat([root, Buffer.alloc(1)]))).toBe(false);
    expect(verifyInclusion(6, size, leaf, proof, root.subarray(0, 31))).toBe(false);
    expect(verifyInclusion(6, size, leaves[7]!, proof, root)).toBe(false);
    expect(verifyInclusion(6, size, leaf.subarray(1), proof, root)).toBe(false);
    const swapped = [...proof];
    [swapped[0], swapped[1]] = [swapped[1]!, swapped[0]!];
    expect(verifyInclusion(6, size, leaf, swapped, root)).toBe(false);
  });

  it('rootFromInclusionProof: undefined for a malformed input or a proof of the wrong length', () => {
    expect(rootFromInclusionProof(6, size, leaf, proof)).toEqual(root);
    expect(rootFromInclusionProof(6, size, leaf, proof.slice(0, -1))).toBeUndefined();
    expect(rootFromInclusionProof(6, size, leaf, [...proof, leaf])).toBeUndefined();
    expect(rootFromInclusionProof(size, size, leaf, proof)).toBeUndefined();
    expect(rootFromInclusionProof(-1, size, leaf, proof)).toBeUndefined();
    expect(rootFromInclusionProof(0, 0, leaf, [])).toBeUndefined();
    expect(rootFromInclusionProof(6, size, Buffer.alloc(31), proof)).toBeUndefined();
    expect(rootFromInclusionProof(6, size, leaf, [...proof.slice(0, -1), Buffer.alloc(31)])).toBeUndefined();
    expect(rootFromInclusionProof(6, size, leaf, 'nope' as never)).toBeUndefined();
    expect(rootFromInclusionProof(6, 1.5, leaf, proof)).toBeUndefined();
    expect(rootFromInclusionProof(0, 2 ** 53, leaf, proof)).toBeUndefined();
    expect(rootFromInclusionProof(0, 1, leaf, [])).toEqual(leaf);
    expect(rootFromInclusionProof(0, 1, leaf, [])).not.toBe(leaf);
  });

  it('the proof length bound is 128 hashes: longer proofs are refused before hashing', () => {
    const h = leaves[0]!;
    const at128 = Array.from({ length: 128 }, () => h);
    expect(rootFromInclusionProof(2 ** 52, 2 ** 53 - 1, h, at128)).toBeUndefined();
    expect(verifyInclusion(0, 2, h, [...at128, h], h)).toBe(false);
    expect(verifyConsistency(1, 2, [...at128, h], h, h)).toBe(false);
  });

  it('sizes beyond 2^32 are exact (no 32-bit arithmetic)', () => {
    const big = 2 ** 40;
    const r1 = leaves[1]!;
    const last = leaves[2]!;
    const root2 = nodeHash(r1, last);
    expect(rootFromInclusionProof(big, big + 1, last, [r1])).toEqual(root2);
    expect(verifyInclusion(big, big + 1, last, [r1], root2)).toBe(true);
    expect(verifyInclusion(big - 1, big + 1, last, [r1], root2)).toBe(false);
    expect(verifyConsistency(big, big + 1, [last], r1, root2)).toBe(true);
    expect(verifyConsistency(big, 2 * big + 1, [last], r1, root2)).toBe(false);
    expect(verifyConsistency(big - 1, big + 1, [last], r1, root2)).toBe(false);
    expect(verifyConsistency(2 ** 33, 2 ** 33 + 1, [last], r1, root2)).toBe(true);
  });
});

describe('SPEC §4 consistency verification edges: rollback and split views (RFC 9162 §2.1.4.2)', () => {
  const r = (n: number): Buffer => tree.root(n);

  it('first size 0 is always false, even against the empty root', () => {
    expect(verifyConsistency(0, 0, [], sha(), sha())).toBe(false);
    expect(verifyConsistency(0, 5, [], sha(), r(5))).toBe(false);
    expect(verifyConsistency(0, 5, tree.consistencyProof(1, 5), sha(), r(5))).toBe(false);
  });

  it('equal sizes: true only with an empty proof and equal roots', () => {
    expect(verifyConsistency(5, 5, [], r(5), r(5))).toBe(true);
    expect(verifyConsistency(5, 5, [r(5)], r(5), r(5))).toBe(false);
    expect(verifyConsistency(5, 5, [], r(5), r(6))).toBe(false);
    expect(verifyConsistency(5, 5, [], r(5), r(5).subarray(0, 31))).toBe(false);
  });

  it('wrong sizes, short or long proofs, and either root wrong are false', () => {
    for (const [m, n] of [
      [3, 7],
      [4, 7],
      [6, 8],
      [8, 13],
      [13, 39],
      [32, 39],
      [1, 2],
    ] as const) {
      const proof = tree.consistencyProof(m, n);
      expect(verifyConsistency(m, n, proof, r(m), r(n))).toBe(true);
      expect(verifyConsistency(m, n + 1, proof, r(m), r(n + 1))).toBe(false);
      if (m > 1) expect(verifyConsistency(m - 1, n, proof, r(m - 1), r(n))).toBe(false);
      expect(verifyConsistency(m, n, proof.slice(0, -1), r(m), r(n))).toBe(false);
      expect(verifyConsistency(m, n, [...proof, r(1)], r(m), r(n))).toBe(false);
      expect(verifyConsistency(m, n, [], r(m), r(n))).toBe(false);
      expect(verifyConsistency(m, n, proof, r(m + 1), r(n))).toBe(false);
      expect(verifyConsistency(m, n, proof, r(m), r(n - 1))).toBe(false);
      expect(verifyConsistency(n, m, proof, r(n), r(m))).toBe(false);
      const flipped = proof.map((h, i) => (i === proof.length - 1 ? Buffer.from(h).fill(0) : h));
      expect(verifyConsistency(m, n, flipped, r(m), r(n))).toBe(false);
    }
  });

  it('a power-of-two first size gets its root from root1, not from the proof', () => {
    const proof = tree.consistencyProof(4, 7);
    expect(proof[0]).not.toEqual(r(4));
    expect(verifyConsistency(4, 7, [r(4), ...proof], r(4), r(7))).toBe(false);
    expect(verifyConsistency(3, 7, tree.consistencyProof(3, 7), r(3), r(7))).toBe(true);
  });

  it('malformed inputs are false, never thrown', () => {
    const proof = tree.consistencyProof(3, 7);
    expect(verifyConsistency(3, 7, proof, r(3), 'x' as never)).toBe(false);
    expect(verifyConsistency(3, 7, proof, null as never, r(7))).toBe(false);
    expect(verifyConsistency(3, -7, proof, r(3), r(7))).toBe(false);
    expect(verifyConsistency(-3, 7, proof, r(3), r(7))).toBe(false);
    expect(verifyConsistency(3, 7.5, proof, r(3), r(7))).toBe(false);
    expect(verifyConsistency(3, 7, [proof[0]!.subarray(1)], r(3), r(7))).toBe(false);
  });
});
