/**
 * Hash-chain continuity (GEI "any modification — deletion, insertion, reordering — is
 * detectable", L7 ledger protection): indices ascend (and are contiguous over the scope of a
 * range export), each prev_hash is the hash of the entry before it, entry 0 links to 64 zeros,
 * and a predecessor outside the bundle is given as an anchor (checked by `inclusion-proofs`).
 */
import { hexDigestEquals } from '../../kernel/index.js';
import { GENESIS_PREV_HASH, type BundleEntry } from '../entry-format.js';
import type { Finding, VerifyCheck } from '../types.js';
import type { VerifyContext } from '../context.js';
import { entryFinding, isHex64 } from './util.js';

function anchorsOf(ctx: VerifyContext): Map<number, string> {
  const out = new Map<number, string>();
  for (const a of ctx.bundle.anchors) {
    // Attacker-controlled: any JSON value; destructuring reads members of anything but null.
    const { index, entry_hash: hash } = (a ?? {}) as { index?: unknown; entry_hash?: unknown };
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, the map is only read at integer keys e.index - 1 >= 0
    if (typeof index === 'number' && Number.isSafeInteger(index) && index >= 0 && isHex64(hash))
      out.set(index, hash);
  }
  return out;
}

/** Where the chain stands between runs of entries. */
interface ChainState {
  expected: number;
  prev: BundleEntry | undefined;
  count: number;
  anchors: Map<number, string> | undefined;
}

/** Chain continuity check. */
export const chainContinuityCheck: VerifyCheck = {
  id: 'chain-continuity',
  title: 'entries are in order without gaps, duplicates or breaks in the hash chain',
  requirements: ['GEI-audit-chain', 'L7-ledger-protection'],
  run: (ctx) => {
    const out: Finding[] = [];
    const scope = ctx.bundle.scope;
    const range = scope.kind === 'range';
    // The chain crosses runs of entries: the last entry of one run links the first of the next.
    // Stryker disable next-line StringLiteral: equivalent, any name no other check uses carries the same state
    const st = ctx.carry<ChainState>('chain-continuity', () => ({
      expected: range ? scope.from : 0,
      prev: undefined,
      count: 0,
      anchors: undefined,
    }));
    const anchors = (st.anchors ??= anchorsOf(ctx));
    for (const v of ctx.views) {
      st.count++;
      const e = v.entry;
      if (e === undefined) {
        st.prev = undefined;
        st.expected++;
        continue;
      }
      const prev = st.prev;
      const expected = st.expected;
      if (range && e.index !== expected) {
        out.push(
          entryFinding(
            v,
            'CHAIN_INDEX',
            `expected index ${expected}: ${e.index > expected ? `entries ${expected}..${e.index - 1} are missing` : `index ${e.index} repeats or is out of order`}`,
          ),
        );
      } else if (!range && prev !== undefined && e.index <= prev.index) {
        out.push(entryFinding(v, 'CHAIN_INDEX', `index ${e.index} repeats or is out of order`));
      }
      st.expected = e.index + 1;
      if (e.index === 0) {
        if (e.prev_hash !== GENESIS_PREV_HASH)
          out.push(entryFinding(v, 'CHAIN_PREV_HASH', 'entry 0 must link to 64 zeros'));
      } else if (prev !== undefined && prev.index === e.index - 1) {
        if (!hexDigestEquals(e.prev_hash, prev.entry_hash))
          out.push(
            entryFinding(
              v,
              'CHAIN_PREV_HASH',
              `prev_hash is not the hash of entry ${prev.index} (entry ${prev.index} or ${e.index} was altered)`,
            ),
          );
      } else {
        const anchor = anchors.get(e.index - 1);
        if (anchor === undefined)
          out.push(
            entryFinding(
              v,
              'CHAIN_ANCHOR_MISSING',
              `predecessor ${e.index - 1} is neither in the bundle nor anchored`,
            ),
          );
        else if (!hexDigestEquals(e.prev_hash, anchor))
          out.push(
            entryFinding(v, 'CHAIN_PREV_HASH', `prev_hash is not the anchored hash of entry ${e.index - 1}`),
          );
      }
      st.prev = e;
    }
    if (ctx.segment.final && range && st.count > 0 && st.expected <= scope.to) {
      out.push({
        code: 'CHAIN_INDEX',
        message: `entries ${st.expected}..${scope.to} of the export scope are missing (tail cut)`,
        index: st.expected,
        position: st.count,
      });
    }
    return out;
  },
};
