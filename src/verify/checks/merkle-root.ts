/**
 * For a complete export (range from entry 0, no inclusion proofs) the RFC 6962 root recomputed
 * over every entry equals the signed checkpoint's root, and the bundle holds exactly the
 * checkpoint's entries: edits that re-hash, insertions, deletions and a cut tail all change it
 * (SPEC §4/§5, L7 ledger protection, GEI audit chain).
 */
import { digestEquals } from '../../kernel/index.js';
import type { Finding, VerifyCheck } from '../types.js';

/** Merkle root check. */
export const merkleRootCheck: VerifyCheck = {
  id: 'merkle-root',
  title: 'the Merkle root over all entries equals the signed checkpoint root',
  requirements: ['L7-ledger-protection', 'GEI-audit-chain'],
  unit: 'bundle',
  applies: (ctx) => ctx.complete,
  run: (ctx) => {
    const cp = ctx.checkpoint.verified;
    if (cp === undefined)
      return [{ code: 'CHECKPOINT_UNVERIFIED', message: 'no verified checkpoint to compare the root with' }];
    const leaves = ctx.merkle();
    if (leaves === undefined)
      return [
        {
          code: 'MERKLE_ROOT',
          message: 'the root cannot be recomputed: an entry is malformed (see entry-format)',
        },
      ];
    const out: Finding[] = [];
    if (leaves.count < cp.size)
      out.push({
        code: 'ENTRIES_MISSING',
        message: `the checkpoint covers ${cp.size} entries; the bundle holds ${leaves.count}: entries ${leaves.count}..${cp.size - 1} are missing`,
        index: leaves.count,
        position: leaves.count,
      });
    else if (leaves.count > cp.size)
      out.push({
        code: 'MERKLE_ROOT',
        message: `the bundle holds ${leaves.count} entries; the checkpoint covers only ${cp.size}`,
        position: cp.size,
      });
    else if (!digestEquals(leaves.root, cp.rootHash))
      out.push({
        code: 'MERKLE_ROOT',
        message: `the root of entries 0..${cp.size - 1} is not the signed checkpoint root (an entry was altered and re-hashed, or the ledger was rewritten)`,
      });
    return out;
  },
};
