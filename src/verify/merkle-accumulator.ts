/**
 * The RFC 9162 §2.1.1 Merkle Tree Hash computed while entries stream by: O(log n) memory, one
 * pass (the kernel's `createRootAccumulator`), and the root of a prefix asked for in advance
 * (the auditor's `--since` size).
 */
import { createRootAccumulator, rootOf } from '../kernel/index.js';
import type { MerkleSummary } from './context.js';

/** A streaming Merkle root. */
export interface MerkleAccumulator {
  /** Adds the next leaf hash (32 bytes). */
  push(leaf: Uint8Array): void;
  /** The summary of every leaf pushed so far. */
  summary(): MerkleSummary;
}

/** Creates an accumulator that also records the root at each size in `prefixSizes`. */
export function createMerkleAccumulator(prefixSizes: readonly number[] = []): MerkleAccumulator {
  const acc = createRootAccumulator();
  const wanted = new Set(prefixSizes);
  const prefixes = new Map<number, Buffer>();
  if (wanted.has(0)) prefixes.set(0, rootOf([]));
  return {
    push(leaf) {
      acc.push(leaf);
      if (wanted.has(acc.count)) prefixes.set(acc.count, acc.root());
    },
    summary() {
      return { count: acc.count, root: acc.root(), prefixRoot: (size) => prefixes.get(size) };
    },
  };
}
