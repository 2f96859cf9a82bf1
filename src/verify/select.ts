/** Which checks a verification runs, and the report for unusable input (SPEC §5 exit codes). */
import { parseCheckpoint, parseNote } from '../kernel/index.js';
import { VERIFY_CHECKS } from './checks.js';
import { parseTrustRoots } from './trust-roots.js';
import type { TrustSource, VerifyCheck, VerifyOptions, VerifyReport } from './types.js';

/** True when the options pin at least one trust root. */
export function pinsRoots(opts: VerifyOptions): boolean {
  return opts.trust !== undefined || opts.trustedKey !== undefined || (opts.trustedKeys ?? []).length > 0;
}

/** Where the keys this verification trusts come from (docs/ledger.md "Trust roots"). */
export function trustSource(opts: VerifyOptions): TrustSource {
  if (opts.trust !== undefined) return 'trust-file';
  if (pinsRoots(opts)) return 'ledger-key';
  return opts.trustBundleKeys === true ? 'bundle-keys' : 'none';
}

/** The report for input that cannot be used at all (exit 2). */
export function unusable(reason: string, opts: VerifyOptions): VerifyReport {
  return {
    ok: false,
    exitCode: 2,
    unusable: reason,
    keyPinned: pinsRoots(opts),
    trust: trustSource(opts),
    notes: [],
    checks: [],
    requirements: {},
  };
}

/** The seed's own invariant names (`INV-6`, the FC seed's "verify.sh: INV-6") are aliases of `FC-INV-n`. */
function invariantId(id: string): string {
  return /^INV-[1-6]$/.test(id) ? `FC-${id}` : id;
}

/** The `--since` checkpoint's size, or undefined when it is not shaped like a signed checkpoint note. */
export function sinceSize(since: string): number | undefined {
  try {
    return parseCheckpoint(parseNote(since).text).size;
  } catch {
    return undefined;
  }
}

/** The checks to run for `opts`, or the reason the options are unusable. */
export function selectChecks(opts: VerifyOptions): readonly VerifyCheck[] | string {
  if (opts.since !== undefined && sinceSize(opts.since) === undefined)
    return 'the --since file is not a signed checkpoint note';
  const wanted = opts.invariant === undefined ? undefined : invariantId(opts.invariant);
  const checks =
    wanted === undefined ? VERIFY_CHECKS : VERIFY_CHECKS.filter((c) => c.requirements.includes(wanted));
  if (checks.length === 0) return `no check serves requirement ${opts.invariant ?? ''}`;
  if (opts.trustBundleKeys === true && pinsRoots(opts))
    return '--trust-bundle-keys cannot be combined with pinned trust roots';
  if (opts.trust !== undefined) {
    const parsed = parseTrustRoots(opts.trust);
    if (typeof parsed === 'string') return `trust file unusable: ${parsed}`;
  }
  return checks;
}
