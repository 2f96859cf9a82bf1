/**
 * The RFC 9162 §2.1.1 Merkle Tree Hash computed while entries stream by: O(log n) memory, one
 * pass, and the root of a prefix asked for in advance (the auditor's `--since` size). Same
 * result as the kernel's `rootOf` over the whole list.
 */
import { nodeHash, rootOf } from '../kernel/index.js';
import type { MerkleSummary } from './context.js';

/** A streaming Merkle root. */
export interface MerkleAccumulator {
  /** Adds the next leaf hash (32 bytes). */
  push(leaf: Uint8Array): void;
  /** The summary of every leaf pushed so far. */
  summary(): MerkleSummary;
}

function fold(stack: readonly Uint8Array[]): Buffer {
  if (stack.length === 0) return rootOf([]);
  let acc = stack[stack.length - 1] as Uint8Array;
  for (let i = stack.length - 2; i >= 0; i--) acc = nodeHash(stack[i] as Uint8Array, acc);
  return Buffer.from(acc);
}

/** Creates an accumulator that also records the root at each size in `prefixSizes`. */
export function createMerkleAccumulator(prefixSizes: readonly number[] = []): MerkleAccumulator {
  // stack[i] is a complete subtree of 2^heights[i] leaves; heights strictly decrease.
  const stack: Uint8Array[] = [];
  const heights: number[] = [];
  const wanted = new Set(prefixSizes);
  const prefixes = new Map<number, Buffer>();
  let count = 0;
  if (wanted.has(0)) prefixes.set(0, rootOf([]));
  return {
    push(leaf) {
      let h: Uint8Array = leaf;
      let height = 0;
      while (heights.length > 0 && heights[heights.length - 1] === height) {
        heights.pop();
        h = nodeHash(stack.pop() as Uint8Array, h);
        height++;
      }
      stack.push(h);
      heights.push(height);
      count++;
      if (wanted.has(count)) prefixes.set(count, fold(stack));
    },
    summary() {
      return { count, root: fold(stack), prefixRoot: (size) => prefixes.get(size) };
    },
  };
}
