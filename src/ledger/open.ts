/**
 * Opening the ledger without re-hashing it (SPEC §4; issue: startup took 5.5 s at 42k entries).
 * At every checkpoint the writer persists the Merkle levels that changed since the previous one
 * ({@link snapshotChunks}); on open, {@link restoreTree} rebuilds the tree from them, and trusts
 * it only when its root at the snapshot size is the root of a checkpoint that verifies under the
 * ledger's own key, and its last leaf is the hash of the stored entry at that index. Entries after
 * the snapshot are then read and chain-checked as before, so opening costs O(entries since the
 * last checkpoint). Anything that does not match falls back to the full re-hash, which refuses a
 * tampered or rolled-back store (L7 ledger protection).
 */
import {
  hexDigestEquals,
  noteVerifierFromVkey,
  restoreMerkleTree,
  verifyCheckpoint,
  type MerkleTree,
} from '../kernel/index.js';
import { entryLeafHash } from './entry.js';
import { TREE_CHUNK_HASHES } from './store.js';
import type { LedgerStore, TreeChunk, TreeSnapshot } from './store.js';

/** The chunks of `tree` that changed between sizes `from` and `to` (≤ tree.size), as stored. */
export function snapshotChunks(tree: MerkleTree, from: number, to: number): TreeSnapshot {
  const chunks: TreeChunk[] = [];
  for (let level = 0, width = 1; width <= to; level++, width *= 2) {
    const count = Math.floor(to / width);
    const before = Math.floor(from / width);
    if (count === before) continue;
    for (let c = Math.floor(before / TREE_CHUNK_HASHES); c * TREE_CHUNK_HASHES < count; c++) {
      const start = c * TREE_CHUNK_HASHES;
      chunks.push({
        level,
        chunk: c,
        hashes: tree.nodes(level, start, Math.min(count, start + TREE_CHUNK_HASHES)),
      });
    }
  }
  return { size: to, chunks, ...(from === 0 ? { replaceAll: true as const } : {}) };
}

/** Concatenates each level's chunks; undefined when a level has a hole or an oversized chunk. */
function levelsOf(snapshot: TreeSnapshot): Buffer[] | undefined {
  const parts: Buffer[][] = [];
  for (const c of snapshot.chunks) {
    const level = (parts[c.level] ??= []);
    if (c.chunk !== level.length || c.hashes.length > TREE_CHUNK_HASHES * 32) return undefined;
    // Every chunk but a level's last is full.
    const prev = level[level.length - 1];
    if (prev !== undefined && prev.length !== TREE_CHUNK_HASHES * 32) return undefined;
    level.push(c.hashes);
  }
  return parts.map((p) => Buffer.concat(p));
}

/** A tree restored up to `size`, with the hash of entry `size - 1` to continue the chain from. */
export interface RestoredTree {
  readonly tree: MerkleTree;
  readonly size: number;
  readonly lastHash: string;
}

/**
 * The tree from `snapshot` (the store's, read BEFORE its head of `headSize` entries), verified
 * against the signed checkpoint at its size and the stored entry at its last index; undefined
 * when there is none or it does not verify (the caller then re-hashes everything). A snapshot is
 * only ever written for committed entries, and on a shared store another replica may write a
 * larger one at any time: read before the head, it never exceeds an intact store's head. So
 * a snapshot beyond the head means the store lost entries below it (rollback): rejects (SPEC §4,
 * L7 ledger protection).
 */
export async function restoreTree(
  store: LedgerStore,
  snapshot: TreeSnapshot | undefined,
  headSize: number,
  key: { readonly vkey: string; readonly origin: string },
): Promise<RestoredTree | undefined> {
  if (snapshot === undefined || snapshot.size === 0) return undefined;
  if (snapshot.size > headSize)
    throw new RangeError('ledger store holds fewer entries than its tree snapshot');
  const levels = levelsOf(snapshot);
  if (levels === undefined) return undefined;
  let tree: MerkleTree;
  try {
    tree = restoreMerkleTree(snapshot.size, (l) => levels[l] ?? Buffer.alloc(0));
  } catch {
    return undefined;
  }
  const cp = (await store.checkpoints()).find((c) => c.size === snapshot.size);
  if (cp === undefined) return undefined;
  const verified = verifyCheckpoint(cp.note, [noteVerifierFromVkey(key.vkey)], { origin: key.origin });
  if (
    verified.outcome !== 'verified' ||
    verified.checkpoint.size !== snapshot.size ||
    !verified.checkpoint.rootHash.equals(tree.root(snapshot.size))
  )
    return undefined;
  const last = await store.entry(snapshot.size - 1);
  if (last === undefined || !entryLeafHash(last.entry_hash).equals(tree.leaf(snapshot.size - 1)))
    return undefined;
  if (!hexDigestEquals(cp.root_hash, tree.root(snapshot.size).toString('hex'))) return undefined;
  return { tree, size: snapshot.size, lastHash: last.entry_hash };
}
