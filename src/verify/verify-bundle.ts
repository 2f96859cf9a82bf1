/**
 * `verifyBundle`: the offline audit-bundle verifier (SPEC §5 "checks it without trusting the
 * system"). It reads as a checklist: parse the bundle, build the shared facts, run each named
 * check of `VERIFY_CHECKS` (or those serving `--invariant`), and report pass/fail per check and
 * per requirement ID, naming the first bad entry. Kernel only: no database, no server. A v1
 * bundle is checked whole; a v2 bundle (JSON Lines) is read record by record through the engine
 * (`engine.ts`); `verifyBundleFile` streams a v2 file from disk.
 */
import { BUNDLE_V2_MAGIC, parseBundle } from './bundle.js';
import { readV2Lines } from './bundle-v2.js';
import { createContext } from './context.js';
import { runOn, tallies, type CheckTally } from './engine.js';
import { buildReport, countAbandoned, type AbandonedTally } from './report-build.js';
import { selectChecks, trustSource, unusable } from './select.js';
import type { VerifyOptions, VerifyReport } from './types.js';

function isV2(input: unknown): input is string | Uint8Array {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) return false;
  const head =
    typeof input === 'string' ? input.slice(0, 100) : Buffer.from(input.subarray(0, 100)).toString('utf8');
  return head.startsWith(BUNDLE_V2_MAGIC);
}

/**
 * Verifies an audit bundle (v1 text, bytes or parsed JSON; or v2 JSON Lines text or bytes held
 * in memory). Exit code 0 when every check that ran holds under pinned trust roots (or
 * `trustBundleKeys`), 1 on any violation, 2 when the input (bundle, trust file, `since`,
 * `invariant`) is unusable, 3 when no violation was found but no trust root was pinned. Never throws on hostile input. (SPEC §5, §7
 * scenario 12; requirement IDs per check in docs/ledger.md)
 */
export function verifyBundle(input: unknown, opts: VerifyOptions = {}): VerifyReport {
  if (isV2(input)) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    return readV2Lines(text.split('\n'), opts);
  }
  const bundle = parseBundle(input, opts.maxBytes);
  if (typeof bundle === 'string') return unusable(`bundle unusable: ${bundle}`, opts);
  const checks = selectChecks(opts);
  if (typeof checks === 'string') return unusable(checks, opts);
  // A v1 bundle is in memory already: one segment of every entry, checked whole.
  const ctx = createContext(bundle, opts);
  const ts: CheckTally[] = tallies(checks);
  for (const t of ts) runOn(t, ctx);
  const abandoned: AbandonedTally = { count: 0, mayHaveRun: 0 };
  for (const v of ctx.views) countAbandoned(abandoned, v.entry);
  const size = ctx.checkpoint.verified?.size;
  const first = ctx.views[0]?.entry?.index;
  const last = ctx.views[ctx.views.length - 1]?.entry?.index;
  return buildReport({
    tallies: ts,
    sorted: false,
    origin: bundle.origin,
    keyPinned: ctx.key.pinned,
    trust: trustSource(opts),
    abandoned,
    complete: ctx.complete && size !== undefined && ctx.views.length === size,
    coverage: {
      entries: ctx.views.length,
      ...(first !== undefined ? { first } : {}),
      ...(last !== undefined ? { last } : {}),
      ...(size !== undefined ? { checkpointSize: size } : {}),
    },
  });
}
