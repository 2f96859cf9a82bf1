/** Which checks a verification runs, and the report for unusable input (SPEC §5 exit codes). */
import { parseCheckpoint, parseNote } from '../kernel/index.js';
import { VERIFY_CHECKS } from './checks.js';
import type { VerifyCheck, VerifyOptions, VerifyReport } from './types.js';

/** The report for input that cannot be used at all (exit 2). */
export function unusable(reason: string, opts: VerifyOptions): VerifyReport {
  return {
    ok: false,
    exitCode: 2,
    unusable: reason,
    keyPinned: opts.trustedKey !== undefined,
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
  return checks;
}
