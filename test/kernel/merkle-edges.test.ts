/**
 * RFC 9162 Merkle tree edges (SPEC §4 ledger Merkle tree and proofs, §5 offline verification,
 * L7 ledger protection): the accumulator's count, the empty tree, and hostile roots and sizes
 * that must be refused without throwing.
 */
import { expect, it } from 'vitest';
import {
  EMPTY_ROOT,
  createMerkleTree,
  createRootAccumulator,
  leafHash,
  restoreMerkleTree,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../src/kernel/merkle.js';
import { describeOrFail } from '../support/collect.js';

const leaves = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`e${i}`)));

describeOrFail('RFC 9162 §2.1.1: roots and counts', () => {
  it('the accumulator counts every leaf pushed and matches rootOf at each count', () => {
    const acc = createRootAccumulator();
    expect(acc.count).toBe(0);
    expect(acc.root()).toEqual(EMPTY_ROOT);
    const all = leaves(9);
    all.forEach((leaf, i) => {
      acc.push(leaf);
      expect(acc.count).toBe(i + 1);
      expect(acc.root()).toEqual(rootOf(all.slice(0, i + 1)));
    });
  });

  it('a tree created without leaves is empty, with the empty-tree root', () => {
    const tree = createMerkleTree();
    expect(tree.size).toBe(0);
    expect(tree.root()).toEqual(EMPTY_ROOT);
    tree.append(leaves(1)[0]!);
    expect(tree.root()).toEqual(leaves(1)[0]);
  });
});

describeOrFail('RFC 9162 §2.1.3.2 / §2.1.4.2: hostile roots and sizes are refused, never thrown', () => {
  const all = leaves(7);
  const tree = (): ReturnType<typeof createMerkleTree> => createMerkleTree(all);
  const asArray = (b: Buffer): number[] => [...b];

  it('a root that is 32 numbers but not bytes is refused', () => {
    const t = tree();
    const proof = t.inclusionProof(3, 7);
    expect(verifyInclusion(3, 7, all[3]!, proof, t.root(7))).toBe(true);
    expect(verifyInclusion(3, 7, all[3]!, proof, asArray(t.root(7)) as never)).toBe(false);
    const c = t.consistencyProof(3, 7);
    expect(verifyConsistency(3, 7, c, t.root(3), t.root(7))).toBe(true);
    expect(verifyConsistency(3, 7, c, asArray(t.root(3)) as never, t.root(7))).toBe(false);
    expect(verifyConsistency(3, 7, c, t.root(3), asArray(t.root(7)) as never)).toBe(false);
  });

  it.each<[string, unknown, unknown]>([
    ['size2 NaN', 3, Number.NaN],
    ['size2 fractional', 3, 7.5],
    ['size2 negative', 3, -7],
    ['size2 a string', 3, '7'],
    ['size1 a string', '3', 7],
    ['size1 zero', 0, 7],
    ['size1 above size2', 7, 3],
  ])('a consistency check with %s is false', (_n, size1, size2) => {
    const t = tree();
    const c = t.consistencyProof(3, 7);
    expect(verifyConsistency(size1 as number, size2 as number, c, t.root(3), t.root(7))).toBe(false);
  });

  it('a consistency proof with extra hashes is refused', () => {
    const t = tree();
    const c = t.consistencyProof(3, 7);
    expect(verifyConsistency(3, 7, [...c, t.root(7)], t.root(3), t.root(7))).toBe(false);
    const p = t.inclusionProof(3, 7);
    expect(verifyInclusion(3, 7, all[3]!, [...p, t.root(7)], t.root(7))).toBe(false);
  });

  it('an inclusion index or size that is not a safe non-negative integer is refused', () => {
    const t = tree();
    const p = t.inclusionProof(3, 7);
    for (const [index, size] of [
      ['3', 7],
      [3, '7'],
      [3.5, 7],
      [-1, 7],
      [3, Number.POSITIVE_INFINITY],
    ] as const) {
      expect(verifyInclusion(index as number, size as number, all[3]!, p, t.root(7))).toBe(false);
    }
  });
});

describeOrFail('SPEC §4: a tree reopened from its stored levels, without re-hashing', () => {
  it('nodes() of every level restore a tree with the same roots and proofs', () => {
    for (const n of [0, 1, 2, 5, 8, 13]) {
      const t = createMerkleTree(leaves(n));
      const stored = (level: number): Buffer => t.nodes(level, 0, Math.floor(n / 2 ** level));
      const restored = restoreMerkleTree(n, stored);
      expect(restored.size).toBe(n);
      for (let s = 0; s <= n; s++) expect(restored.root(s)).toEqual(t.root(s));
      for (let i = 0; i < n; i++) expect(restored.inclusionProof(i)).toEqual(t.inclusionProof(i));
      for (let s = 1; s <= n; s++) expect(restored.consistencyProof(s)).toEqual(t.consistencyProof(s));
    }
  });

  it('nodes() returns the requested range of a level, and refuses out-of-range requests', () => {
    const t = createMerkleTree(leaves(6));
    expect(t.nodes(0, 2, 4)).toEqual(Buffer.concat([t.leaf(2), t.leaf(3)]));
    expect(t.nodes(1, 1, 3)).toEqual(Buffer.concat([t.nodes(1, 1, 2), t.nodes(1, 2, 3)]));
    expect(t.nodes(1, 0, 1)).toEqual(t.root(2));
    expect(t.nodes(2, 0, 1)).toEqual(t.root(4));
    expect(t.nodes(3, 0, 0)).toEqual(Buffer.alloc(0));
    for (const [level, from, to] of [
      [-1, 0, 0],
      [64, 0, 0],
      [0.5, 0, 0],
      [0, 0, 7],
      [0, 3, 2],
      [2, 0, 2],
    ] as const) {
      expect(() => t.nodes(level, from, to)).toThrow(RangeError);
    }
  });

  it('restoreMerkleTree refuses a bad size or a short or non-byte level', () => {
    const t = createMerkleTree(leaves(5));
    const stored = (level: number): Buffer => t.nodes(level, 0, Math.floor(5 / 2 ** level));
    expect(() => restoreMerkleTree(-1, stored)).toThrow(TypeError);
    expect(() => restoreMerkleTree(1.5, stored)).toThrow(TypeError);
    expect(() => restoreMerkleTree(5, (l) => (l === 1 ? stored(1).subarray(1) : stored(l)))).toThrow(
      TypeError,
    );
    expect(() => restoreMerkleTree(5, (l) => (l === 2 ? ([...stored(2)] as never) : stored(l)))).toThrow(
      TypeError,
    );
    const extra = restoreMerkleTree(5, (l) => Buffer.concat([stored(l), Buffer.alloc(64, 9)]));
    expect(extra.root()).toEqual(t.root());
  });
});
