/**
 * For a partial export (a range not starting at 0, or a trace), every entry and every anchor
 * has an RFC 9162 inclusion proof against the signed checkpoint (SPEC §4 "inclusion proofs for
 * any entry", L7 ledger protection).
 */
import { verifyInclusion } from '../../kernel/index.js';
import { entryLeaf } from '../entry-format.js';
import type { Finding, VerifyCheck } from '../types.js';
import { decodeProof, entryFinding, isHex64, parsedViews } from './util.js';

/** Inclusion proof check. */
export const inclusionProofsCheck: VerifyCheck = {
  id: 'inclusion-proofs',
  title: 'every entry and anchor is included in the signed checkpoint',
  requirements: ['L7-ledger-protection'],
  // Stryker disable next-line LogicalOperator,ConditionalExpression: equivalent, a bundle with inclusion proofs is never complete (context.ts)
  applies: (ctx) => !ctx.complete || ctx.bundle.inclusion.length > 0,
  run: (ctx) => {
    const cp = ctx.checkpoint.verified;
    if (cp === undefined)
      return [
        { code: 'CHECKPOINT_UNVERIFIED', message: 'no verified checkpoint to check inclusion against' },
      ];
    const proofs = new Map<number, Buffer[]>();
    for (const p of ctx.bundle.inclusion) {
      const { index, hashes } = (typeof p === 'object' && p !== null && !Array.isArray(p) ? p : {}) as {
        index?: unknown;
        hashes?: unknown;
      };
      const decoded = decodeProof(hashes);
      if (typeof index === 'number' && decoded !== undefined) proofs.set(index, decoded);
    }
    const included = (index: number, hash: string): boolean => {
      const proof = proofs.get(index);
      // Stryker disable next-line ConditionalExpression: equivalent, verifyInclusion rejects a missing proof itself
      return proof !== undefined && verifyInclusion(index, cp.size, entryLeaf(hash), proof, cp.rootHash);
    };
    const out: Finding[] = [];
    for (const v of parsedViews(ctx.views)) {
      if (!included(v.entry.index, v.entry.entry_hash))
        out.push(
          entryFinding(v, 'INCLUSION_PROOF', `not proven included in the checkpoint of size ${cp.size}`),
        );
    }
    // Anchors are judged once, with the last run of entries.
    for (const a of ctx.segment.final ? ctx.bundle.anchors : []) {
      const { index, entry_hash: hash } = (
        typeof a === 'object' && a !== null && !Array.isArray(a) ? a : {}
      ) as { index?: unknown; entry_hash?: unknown };
      // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, included() is false for any malformed anchor too
      if (typeof index !== 'number' || !isHex64(hash) || !included(index, hash))
        out.push({
          code: 'INCLUSION_PROOF',
          message: `anchor ${String(index)} is malformed or not proven included`,
          ...(typeof index === 'number' ? { index } : {}),
        });
    }
    return out;
  },
};
