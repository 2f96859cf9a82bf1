/**
 * Consistency between checkpoints (SPEC §4 "consistency proofs between any two checkpoints
 * (detects rollback and split views)", L7 ledger protection): every older checkpoint in the
 * bundle is signed by the same key and is a prefix of the latest; and a checkpoint the auditor
 * kept from before (`--since`) is a prefix too: a smaller bundle checkpoint is a rollback, a
 * different root at the same size or a failed proof is a fork.
 */
import { digestEquals, verifyCheckpoint, verifyConsistency, type Checkpoint } from '../../kernel/index.js';
import type { VerifyContext } from '../context.js';
import type { Finding, VerifyCheck } from '../types.js';
import { decodeProof } from './util.js';

interface Older {
  readonly cp: Checkpoint;
  readonly consistent: boolean;
}

function olderCheckpoints(ctx: VerifyContext, latest: Checkpoint, out: Finding[]): Older[] {
  const verifier = ctx.key.verifier;
  const list: Older[] = [];
  ctx.bundle.olderCheckpoints.forEach((o, i) => {
    const { note, consistency } = (typeof o === 'object' && o !== null && !Array.isArray(o) ? o : {}) as {
      note?: unknown;
      consistency?: unknown;
    };
    const r =
      // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, verifyCheckpoint denies a non-note and the run ends early without a verifier
      typeof note === 'string' && verifier !== undefined
        ? verifyCheckpoint(note, [verifier], { origin: ctx.bundle.origin })
        : undefined;
    if (r === undefined || r.outcome === 'deny') {
      out.push({
        code: 'CONSISTENCY',
        message: `older checkpoint ${i} is not a checkpoint signed by the ledger key for this origin`,
      });
      return;
    }
    const proof = decodeProof(consistency);
    const consistent =
      proof !== undefined &&
      verifyConsistency(r.checkpoint.size, latest.size, proof, r.checkpoint.rootHash, latest.rootHash);
    if (!consistent)
      out.push({
        code: 'CONSISTENCY',
        message: `older checkpoint of size ${r.checkpoint.size} is not proven a prefix of the checkpoint of size ${latest.size} (split view)`,
      });
    list.push({ cp: r.checkpoint, consistent });
  });
  return list;
}

function checkSince(
  ctx: VerifyContext,
  since: string,
  latest: Checkpoint,
  older: readonly Older[],
): Finding | undefined {
  const verifier = ctx.key.verifier;
  const r =
    verifier === undefined ? undefined : verifyCheckpoint(since, [verifier], { origin: ctx.bundle.origin });
  if (r === undefined || r.outcome === 'deny')
    return {
      code: 'CONSISTENCY',
      message: 'the --since checkpoint does not verify under the ledger key for this origin (key replaced?)',
    };
  const s = r.checkpoint;
  if (s.size > latest.size)
    return {
      code: 'ROLLBACK',
      message: `the bundle checkpoint (size ${latest.size}) is older than the trusted checkpoint (size ${s.size}): rollback`,
    };
  if (s.size === 0) return undefined;
  if (s.size === latest.size)
    return digestEquals(s.rootHash, latest.rootHash)
      ? undefined
      : {
          code: 'FORK',
          message: `the bundle checkpoint and the trusted checkpoint differ at size ${s.size}: fork`,
        };
  const leaves = ctx.complete ? ctx.merkle() : undefined;
  const prefix = leaves !== undefined && leaves.count >= s.size ? leaves.prefixRoot(s.size) : undefined;
  if (prefix !== undefined) {
    if (!digestEquals(prefix, s.rootHash))
      return {
        code: 'FORK',
        message: `the bundle's first ${s.size} entries are not the ones the trusted checkpoint signed: fork`,
        index: s.size - 1,
      };
    return undefined;
  }
  const same = older.filter((o) => o.cp.size === s.size);
  if (same.some((o) => o.consistent && digestEquals(o.cp.rootHash, s.rootHash))) return undefined;
  if (same.length > 0)
    return {
      code: 'FORK',
      message: `the bundle's checkpoint of size ${s.size} differs from the trusted one: fork`,
    };
  return {
    code: 'CONSISTENCY',
    message: `the bundle holds no consistency proof from the trusted size ${s.size}`,
  };
}

/** Consistency check. */
export const consistencyCheck: VerifyCheck = {
  id: 'consistency',
  title: 'older checkpoints (and --since) are prefixes of the bundle checkpoint: no rollback, no fork',
  requirements: ['L7-ledger-protection'],
  unit: 'bundle',
  applies: (ctx) => ctx.bundle.olderCheckpoints.length > 0 || ctx.options.since !== undefined,
  run: (ctx) => {
    const latest = ctx.checkpoint.verified;
    if (latest === undefined)
      return [
        { code: 'CHECKPOINT_UNVERIFIED', message: 'no verified checkpoint to check consistency against' },
      ];
    const out: Finding[] = [];
    const older = olderCheckpoints(ctx, latest, out);
    if (ctx.options.since !== undefined) {
      const f = checkSince(ctx, ctx.options.since, latest, older);
      if (f !== undefined) out.push(f);
    }
    return out;
  },
};
