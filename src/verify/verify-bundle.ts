/**
 * `verifyBundle`: the offline audit-bundle verifier (SPEC §5 "checks it without trusting the
 * system"). It reads as a checklist: parse the bundle, build the shared context, run each named
 * check of `VERIFY_CHECKS` (or those serving `--invariant`), and report pass/fail per check and
 * per requirement ID, naming the first bad entry. Kernel only: no database, no server.
 */
import { parseCheckpoint, parseNote } from '../kernel/index.js';
import { parseBundle } from './bundle.js';
import { VERIFY_CHECKS } from './checks.js';
import { createContext, type VerifyContext } from './context.js';
import {
  MAX_FINDINGS_PER_CHECK,
  type CheckResult,
  type Finding,
  type VerifyCheck,
  type VerifyOptions,
  type VerifyReport,
  type TrustSource,
  NO_TRUST_ROOTS,
} from './types.js';
import { parseTrustRoots, type TrustRoots } from './trust-roots.js';

/** True when the options pin at least one trust root. */
function pinsRoots(opts: VerifyOptions): boolean {
  return opts.trust !== undefined || opts.trustedKey !== undefined || (opts.trustedKeys ?? []).length > 0;
}

function trustSource(opts: VerifyOptions): TrustSource {
  if (opts.trust !== undefined) return 'trust-file';
  if (pinsRoots(opts)) return 'ledger-key';
  return opts.trustBundleKeys === true ? 'bundle-keys' : 'none';
}

function unusable(reason: string, opts: VerifyOptions): VerifyReport {
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

function runCheck(check: VerifyCheck, ctx: VerifyContext): CheckResult {
  const base = { id: check.id, title: check.title, requirements: check.requirements };
  let all: readonly Finding[];
  try {
    if (check.applies !== undefined && !check.applies(ctx))
      return { ...base, status: 'skip', findings: [], more: 0 };
    all = check.run(ctx);
  } catch {
    // A check that cannot finish has not shown the property holds: fail closed.
    all = [{ code: 'CHECK_ERROR', message: `check ${check.id} could not complete` }];
  }
  // Only a partial bundle may leave a link undecided; in a complete one a missing link is a violation.
  const undecided = ctx.complete ? [] : all.filter((f) => f.partial === true);
  const findings = ctx.complete
    ? all.map(({ partial: _p, ...f }) => f)
    : all.filter((f) => f.partial !== true);
  return {
    ...base,
    status: findings.length === 0 ? 'pass' : 'fail',
    findings: findings.slice(0, MAX_FINDINGS_PER_CHECK),
    more: Math.max(0, findings.length - MAX_FINDINGS_PER_CHECK),
    ...(undecided.length > 0 ? { undecided: undecided.slice(0, MAX_FINDINGS_PER_CHECK) } : {}),
  };
}

/** The seed's own invariant names (`INV-6`, the FC seed's "verify.sh: INV-6") are aliases of `FC-INV-n`. */
function invariantId(id: string): string {
  return /^INV-[1-6]$/.test(id) ? `FC-${id}` : id;
}

/** True when `since` is at least shaped like a signed checkpoint note (else the auditor's input is unusable). */
function sinceIsUsable(since: string): boolean {
  try {
    parseCheckpoint(parseNote(since).text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Verifies an audit bundle (text, bytes or parsed JSON). Exit code 0 when every check that ran
 * holds under pinned trust roots (or `trustBundleKeys`), 1 on any violation, 2 when the input
 * (bundle, trust file, `since`, `invariant`) is unusable, 3 when no violation was found but no
 * trust root was pinned. Never throws on hostile input. (SPEC §5, §7 scenario 12; requirement IDs per check in docs/ledger.md)
 */
export function verifyBundle(input: unknown, opts: VerifyOptions = {}): VerifyReport {
  const bundle = parseBundle(input, opts.maxBytes);
  if (typeof bundle === 'string') return unusable(`bundle unusable: ${bundle}`, opts);
  if (opts.since !== undefined && !sinceIsUsable(opts.since))
    return unusable('the --since file is not a signed checkpoint note', opts);
  const wanted = opts.invariant === undefined ? undefined : invariantId(opts.invariant);
  const checks =
    wanted === undefined ? VERIFY_CHECKS : VERIFY_CHECKS.filter((c) => c.requirements.includes(wanted));
  if (checks.length === 0) return unusable(`no check serves requirement ${opts.invariant ?? ''}`, opts);

  if (opts.trustBundleKeys === true && pinsRoots(opts))
    return unusable('--trust-bundle-keys cannot be combined with pinned trust roots', opts);
  let roots: TrustRoots | undefined;
  if (opts.trust !== undefined) {
    const parsed = parseTrustRoots(opts.trust);
    if (typeof parsed === 'string') return unusable(`trust file unusable: ${parsed}`, opts);
    roots = parsed;
  }

  const ctx = createContext(bundle, opts, roots);
  const results = checks.map((c) => runCheck(c, ctx));

  const requirements: Record<string, 'pass' | 'fail'> = {};
  for (const r of results) {
    if (r.status === 'skip') continue;
    for (const id of r.requirements)
      if (requirements[id] !== 'fail') requirements[id] = r.status === 'fail' ? 'fail' : 'pass';
  }
  const failed = results.filter((r) => r.status === 'fail');
  const firstFinding = failed
    .flatMap((r) => r.findings.map((f) => ({ ...f, check: r.id })))
    .sort((a, b) => (a.position ?? Number.MAX_SAFE_INTEGER) - (b.position ?? Number.MAX_SAFE_INTEGER))[0];
  const notes: string[] = [];
  const trust = trustSource(opts);
  if (trust === 'bundle-keys')
    notes.push(
      "NOTHING PINNED: --trust-bundle-keys trusted the bundle's OWN ledger, issuer, client and approver keys; anyone who can rewrite the bundle can re-sign it; pin the deployment's trust roots with --trust FILE",
    );
  else if (trust === 'none')
    notes.push(
      'no pinned trust roots: obtain the trust file out of band (failclosed trust-roots, GET /v1/trust-roots) and pass --trust FILE',
    );
  else if (trust === 'ledger-key')
    notes.push(
      'issuer and approver keys NOT pinned: taken from the bundle (the ledger key is pinned); pass --trust FILE to pin them too',
    );
  const first = ctx.views[0]?.entry?.index;
  const last = ctx.views[ctx.views.length - 1]?.entry?.index;
  const size = ctx.checkpoint.verified?.size;
  const complete = ctx.complete && size !== undefined && ctx.views.length === size;
  if (!complete) notes.push('partial export: the bundle does not hold every entry of its checkpoint');
  for (const c of checks) notes.push(...(c.notes?.(ctx) ?? []));
  const undecided = results.reduce((n, r) => n + (r.undecided?.length ?? 0), 0);
  if (undecided > 0)
    notes.push(
      `partial export: ${undecided} link(s) lie outside this bundle and were not decided (listed per check); export the whole ledger to decide them`,
    );
  // Without pinned roots a clean run proves only that the bundle agrees with itself: never plain success.
  const untrusted = trust === 'none';
  return {
    ok: failed.length === 0 && !untrusted,
    exitCode: failed.length > 0 ? 1 : untrusted ? NO_TRUST_ROOTS : 0,
    origin: bundle.origin,
    coverage: {
      entries: ctx.views.length,
      ...(first !== undefined ? { first } : {}),
      ...(last !== undefined ? { last } : {}),
      ...(size !== undefined ? { checkpointSize: size } : {}),
      complete,
    },
    keyPinned: ctx.key.pinned,
    trust,
    notes,
    checks: results,
    requirements,
    ...(firstFinding !== undefined ? { firstViolation: firstFinding } : {}),
  };
}
