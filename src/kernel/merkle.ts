/**
 * RFC 6962 / RFC 9162 Merkle tree hashing over SHA-256: leaf and node hashes, an incremental
 * tree that proves inclusion and consistency for any historical size, and the pure verification
 * functions the offline verifier uses (SPEC §4 ledger Merkle tree, §5 `failclosed verify`,
 * L7 ledger protection). No I/O.
 *
 * https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1
 */
import { createHash, hash } from 'node:crypto';
import { digestEquals } from './hash.js';

/** Length in bytes of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
/** Hashes per storage chunk: levels are packed so a 1M-entry tree costs ~2n × 32 bytes. */
const CHUNK_HASHES = 1024;
/** No valid proof over a tree of at most 2^53 leaves is longer than this. */
const MAX_PROOF_LENGTH = 128;

/**
 * Merkle Tree Hash of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
 * The tree keeps its own copy, so mutating this constant cannot corrupt a root.
 */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();
const EMPTY = Buffer.from(EMPTY_ROOT);

/** Leaf hash: SHA-256(0x00 || data) (RFC 9162 §2.1.1). */
export function leafHash(data: Uint8Array): Buffer {
  // One-shot crypto.hash is ~40% cheaper than a createHash object per call (hot in verify).
  return hash('sha256', Buffer.concat([LEAF_PREFIX, data]), 'buffer');
}

/** Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([NODE_PREFIX, left, right]), 'buffer');
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// Attacker-controlled: proofs come from bundles; check shape before hashing anything.
function isProof(value: unknown): value is readonly Uint8Array[] {
  return Array.isArray(value) && value.length <= MAX_PROOF_LENGTH && value.every(isHash);
}

/** Largest power of two strictly less than `n` (n ≥ 2): the RFC's split point k. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** floor(log2(n)) for n ≥ 1, exact beyond 2^32 (no 32-bit bit operations). */
function floorLog2(n: number): number {
  let level = 0;
  for (let p = 2; p <= n; p *= 2) level++;
  return level;
}

const isOdd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** Folds complete subtree hashes (largest, leftmost first) into their MTH, right to left. */
function foldRight(parts: readonly Uint8Array[]): Buffer {
  let acc = parts[parts.length - 1];
  if (acc === undefined) return Buffer.from(EMPTY);
  for (let i = parts.length - 2; i >= 0; i--) acc = nodeHash(parts[i] as Uint8Array, acc);
  return Buffer.from(acc);
}

/** The RFC 9162 §2.1.1 Merkle Tree Hash of leaves pushed one by one, in O(log n) memory. */
export interface RootAccumulator {
  /** Adds the next leaf hash; throws `TypeError` if it is not 32 bytes. */
  push(leaf: Uint8Array): void;
  /** Leaves pushed so far. */
  readonly count: number;
  /** The root over every leaf pushed so far (the empty-tree hash for none). */
  root(): Buffer;
}

/** Creates an empty {@link RootAccumulator}. */
export function createRootAccumulator(): RootAccumulator {
  // stack[i] is a complete subtree of 2^heights[i] leaves; heights strictly decrease.
  const stack: Uint8Array[] = [];
  // Stryker disable next-line ArrayDeclaration: equivalent, heights are only compared for equality with numbers, so a leading non-number never matches
  const heights: number[] = [];
  let count = 0;
  return {
    push(leaf) {
      if (!isHash(leaf)) throw new TypeError('leaf hashes must be 32 bytes');
      let h: Uint8Array = leaf;
      let height = 0;
      while (heights.length > 0 && heights[heights.length - 1] === height) {
        heights.pop();
        h = nodeHash(stack.pop() as Uint8Array, h);
        // Stryker disable next-line UpdateOperator: equivalent, heights are only compared for equality, so counting down merges the same subtrees
        height++;
      }
      stack.push(h);
      heights.push(height);
      count++;
    },
    get count() {
      return count;
    },
    root: () => foldRight(stack),
  };
}

/**
 * Merkle Tree Hash of `leafHashes` in one O(n) pass with O(log n) memory (RFC 9162 §2.1.1).
 * Used to recompute a root from all entries. Throws `TypeError` if a leaf hash is not 32 bytes.
 * (SPEC §5: the verifier recomputes the Merkle root.)
 */
export function rootOf(leafHashes: readonly Uint8Array[]): Buffer {
  const acc = createRootAccumulator();
  for (const leaf of leafHashes) acc.push(leaf);
  return acc.root();
}

/** One level of the tree: its complete-subtree hashes, packed into fixed-size chunks. */
class HashLevel {
  private readonly chunks: Buffer[] = [];
  length = 0;

  push(hash: Uint8Array): void {
    const slot = this.length % CHUNK_HASHES;
    if (slot === 0) this.chunks.push(Buffer.alloc(CHUNK_HASHES * HASH_SIZE));
    (this.chunks[this.chunks.length - 1] as Buffer).set(hash, slot * HASH_SIZE);
    this.length++;
  }

  /** A view into storage: internal use only, callers receive copies. */
  view(index: number): Buffer {
    const chunk = this.chunks[Math.floor(index / CHUNK_HASHES)] as Buffer;
    const offset = (index % CHUNK_HASHES) * HASH_SIZE;
    return chunk.subarray(offset, offset + HASH_SIZE);
  }
}

/**
 * An append-only RFC 6962 Merkle tree. Level L holds the hash of every complete, aligned
 * subtree of 2^L leaves, so appends cost amortised O(1) hashes, memory is ~2n hashes, and
 * roots and proofs for any historical size cost O(log n) (proofs O(log² n) hashes worst case).
 */
export interface MerkleTree {
  /** Number of leaves. */
  readonly size: number;
  /** Appends a 32-byte leaf hash (see {@link leafHash}); throws `TypeError` otherwise. */
  append(leafHash: Uint8Array): void;
  /** The leaf hash at `index`; throws `RangeError` when out of range. */
  leaf(index: number): Buffer;
  /** MTH of the first `size` leaves (default: all); throws `RangeError` when size > this.size. */
  root(size?: number): Buffer;
  /**
   * Audit path for leaf `index` in the tree of the first `size` leaves, leaf level first
   * (RFC 9162 §2.1.3.1). Throws `RangeError` unless 0 ≤ index < size ≤ this.size.
   */
  inclusionProof(index: number, size?: number): Buffer[];
  /**
   * Consistency proof from the tree of `size1` leaves to the tree of `size2` leaves
   * (RFC 9162 §2.1.4.1). Throws `RangeError` unless 1 ≤ size1 ≤ size2 ≤ this.size: a proof
   * from the empty tree proves nothing and {@link verifyConsistency} rejects it.
   */
  consistencyProof(size1: number, size2?: number): Buffer[];
  /**
   * The stored hashes of `level` (level L holds the root of every complete, aligned subtree of
   * 2^L leaves; there are floor(size / 2^L)) at positions [from, to), concatenated: what a store
   * persists so that {@link restoreMerkleTree} can reopen the tree without re-hashing its leaves.
   * Throws `RangeError` when out of range.
   */
  nodes(level: number, from: number, to: number): Buffer;
}

class IncrementalMerkleTree implements MerkleTree {
  private readonly levels: HashLevel[] = [new HashLevel()];

  get size(): number {
    return (this.levels[0] as HashLevel).length;
  }

  append(hash: Uint8Array): void {
    if (!isHash(hash)) throw new TypeError('leaf hash must be 32 bytes');
    let level = 0;
    let current = this.levelAt(0);
    current.push(hash);
    // Each time a level gets an even count, its last two nodes complete a parent.
    while (current.length % 2 === 0) {
      const parent = nodeHash(current.view(current.length - 2), current.view(current.length - 1));
      current = this.levelAt(++level);
      current.push(parent);
    }
  }

  leaf(index: number): Buffer {
    this.checkRange(index, 0, this.size - 1, 'index');
    return Buffer.from(this.levelAt(0).view(index));
  }

  root(size: number = this.size): Buffer {
    this.checkRange(size, 0, this.size, 'size');
    return Buffer.from(this.subtreeRoot(0, size));
  }

  inclusionProof(index: number, size: number = this.size): Buffer[] {
    this.checkRange(size, 1, this.size, 'size');
    this.checkRange(index, 0, size - 1, 'index');
    const out: Buffer[] = [];
    this.path(index, 0, size, out);
    return out.map((h) => Buffer.from(h));
  }

  consistencyProof(size1: number, size2: number = this.size): Buffer[] {
    this.checkRange(size2, 1, this.size, 'size2');
    this.checkRange(size1, 1, size2, 'size1');
    const out: Buffer[] = [];
    this.subproof(size1, 0, size2, true, out);
    return out.map((h) => Buffer.from(h));
  }

  nodes(level: number, from: number, to: number): Buffer {
    if (!Number.isSafeInteger(level) || level < 0 || level > 63) throw new RangeError('level out of range');
    const count = Math.floor(this.size / 2 ** level);
    this.checkRange(to, 0, count, 'to');
    this.checkRange(from, 0, to, 'from');
    const out = Buffer.alloc((to - from) * HASH_SIZE);
    for (let i = from; i < to; i++) out.set(this.levelAt(level).view(i), (i - from) * HASH_SIZE);
    return out;
  }

  /** Internal to {@link restoreMerkleTree}: appends already computed hashes to a level. */
  restoreLevel(level: number, hashes: Uint8Array, count: number): void {
    const l = this.levelAt(level);
    for (let i = 0; i < count; i++) l.push(hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  }

  private levelAt(level: number): HashLevel {
    let l = this.levels[level];
    if (l === undefined) {
      l = new HashLevel();
      this.levels[level] = l;
    }
    return l;
  }

  private checkRange(value: number, min: number, max: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`${what} must be an integer in [${min}, ${max}]`);
    }
  }

  /**
   * MTH(D[start:end]) where start is a multiple of every power of two ≤ end - start, which
   * holds for every range the RFC recursion visits: split into complete aligned subtrees
   * (stored), then fold right to left.
   */
  private subtreeRoot(start: number, end: number): Buffer {
    const parts: Buffer[] = [];
    let pos = start;
    while (pos < end) {
      const level = floorLog2(end - pos);
      const width = 2 ** level;
      parts.push(this.levelAt(level).view(pos / width));
      pos += width;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : foldRight(parts);
  }

  /** PATH(m, D[start:end]), https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.3.1 */
  private path(m: number, start: number, end: number, out: Buffer[]): void {
    const n = end - start;
    if (n <= 1) return;
    const k = splitPoint(n);
    if (m < k) {
      this.path(m, start, start + k, out);
      out.push(this.subtreeRoot(start + k, end));
    } else {
      this.path(m - k, start + k, end, out);
      out.push(this.subtreeRoot(start, start + k));
    }
  }

  /** SUBPROOF(m, D[start:end], b), https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.4.1 */
  private subproof(m: number, start: number, end: number, complete: boolean, out: Buffer[]): void {
    const n = end - start;
    if (m === n) {
      if (!complete) out.push(this.subtreeRoot(start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      this.subproof(m, start, start + k, complete, out);
      out.push(this.subtreeRoot(start + k, end));
    } else {
      this.subproof(m - k, start + k, end, false, out);
      out.push(this.subtreeRoot(start, start + k));
    }
  }
}

/**
 * Creates an empty {@link MerkleTree}, optionally pre-filled with `leafHashes` (e.g. loaded
 * from a ledger store). (SPEC §4: inclusion and consistency proofs for any checkpoint.)
 */
export function createMerkleTree(leafHashes: Iterable<Uint8Array> = []): MerkleTree {
  const tree = new IncrementalMerkleTree();
  for (const h of leafHashes) tree.append(h);
  return tree;
}

/**
 * Reopens a tree of `size` leaves from its stored levels (see {@link MerkleTree.nodes}):
 * `level(L)` returns at least floor(size / 2^L) concatenated hashes of level L (extra hashes are
 * ignored). Nothing is re-hashed, so the caller must check the result against something it trusts
 * (the ledger checks the root against its signed checkpoint and the last leaf against its last
 * entry). Throws `TypeError` when a level is too short. (SPEC §4: opening without re-hashing.)
 */
export function restoreMerkleTree(size: number, level: (l: number) => Uint8Array): MerkleTree {
  if (!isSize(size)) throw new TypeError('size must be a non-negative integer');
  const tree = new IncrementalMerkleTree();
  for (let l = 0, width = 1; width <= size; l++, width *= 2) {
    const count = Math.floor(size / width);
    const hashes = level(l);
    if (!(hashes instanceof Uint8Array) || hashes.length < count * HASH_SIZE)
      throw new TypeError(`stored level ${l} is too short`);
    tree.restoreLevel(l, hashes, count);
  }
  return tree;
}

/**
 * Root implied by an inclusion proof, or `undefined` when the inputs are malformed
 * (RFC 9162 §2.1.3.2 steps 1-5, without the final root comparison). Never throws.
 * https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.3.2
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Buffer | undefined {
  if (!isSize(index) || !isSize(size) || index >= size) return undefined;
  if (!isHash(leaf) || !isProof(proof)) return undefined;
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? Buffer.from(r) : undefined;
}

/**
 * Verifies that `leaf` is the leaf at `index` of the tree of `size` leaves with root `root`
 * (RFC 9162 §2.1.3.2). Returns false on any malformed input (non-32-byte hashes included);
 * never throws. Roots are compared in constant time. (SPEC §5, L7 ledger protection.)
 * https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.3.2
 */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(root)) return false;
  const computed = rootFromInclusionProof(index, size, leaf, proof);
  return computed !== undefined && digestEquals(computed, root);
}

/**
 * Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1` leaves
 * with root `root1` (RFC 9162 §2.1.4.2), detecting rollback and split views (SPEC §4).
 * Stricter than the bare RFC, fail closed: size1 = 0 is always false (a proof from the empty
 * tree proves nothing), and every hash must be 32 bytes, including on the size1 = size2 path.
 * Never throws.
 * https://www.rfc-editor.org/rfc/rfc9162.html#section-2.1.4.2
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  if (!isSize(size1) || !isSize(size2) || !isProof(proof) || !isHash(root1) || !isHash(root2)) {
    return false;
  }
  if (size1 === 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && digestEquals(root1, root2);
  if (proof.length === 0) return false;
  // Step 2: when size1 is a power of two, its root is the first node of the path.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  const firstOk = digestEquals(fr, root1);
  const secondOk = digestEquals(sr, root2);
  return sn === 0 && firstOk && secondOk;
}

function isPowerOfTwo(n: number): boolean {
  return n >= 1 && 2 ** floorLog2(n) === n;
}
