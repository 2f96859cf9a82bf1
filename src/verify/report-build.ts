/** Builds the {@link VerifyReport} from what each check found (SPEC §5 "reports pass/fail per invariant ID"). */
import type { CheckTally } from './engine.js';
import {
  MAX_FINDINGS_PER_CHECK,
  NO_TRUST_ROOTS,
  type CheckResult,
  type Finding,
  type TrustSource,
  type VerifyReport,
} from './types.js';

/** Requests a crash or a stop left without a Gate outcome (`request.abandoned`, SPEC §5). */
export interface AbandonedTally {
  count: number;
  /** Those whose envelope had been consumed: the tool may have run. */
  mayHaveRun: number;
}

/** Counts the `request.abandoned` records among `types`/`payloads` into `t`. */
export function countAbandoned(
  t: AbandonedTally,
  entry: { readonly type: string; readonly payload: Readonly<Record<string, unknown>> } | undefined,
): void {
  if (entry?.type !== 'request.abandoned') return;
  t.count++;
  if (entry.payload['envelope_consumed'] === true) t.mayHaveRun++;
}

/** What the report needs besides the tallies. */
export interface ReportInput {
  readonly tallies: readonly CheckTally[];
  /** Sort findings by bundle position (a streamed bundle is checked request by request, not in order). */
  readonly sorted: boolean;
  readonly origin: string;
  readonly keyPinned: boolean;
  readonly trust: TrustSource;
  readonly abandoned: AbandonedTally;
  /** True when the bundle holds every entry of its verified checkpoint. */
  readonly complete: boolean;
  readonly coverage: {
    readonly entries: number;
    readonly first?: number;
    readonly last?: number;
    readonly checkpointSize?: number;
  };
}

const byPosition = (a: Finding, b: Finding): number =>
  (a.position ?? Number.MAX_SAFE_INTEGER) - (b.position ?? Number.MAX_SAFE_INTEGER);

function resultOf(t: CheckTally, sorted: boolean): CheckResult {
  const base = { id: t.check.id, title: t.check.title, requirements: t.check.requirements };
  if (t.calls > 0 && t.skipped === t.calls) return { ...base, status: 'skip', findings: [], more: 0 };
  const findings = sorted ? [...t.findings].sort(byPosition) : t.findings;
  const undecided = sorted ? [...t.undecided].sort(byPosition) : t.undecided;
  return {
    ...base,
    status: findings.length === 0 ? 'pass' : 'fail',
    findings: findings.slice(0, MAX_FINDINGS_PER_CHECK),
    more: Math.max(0, findings.length - MAX_FINDINGS_PER_CHECK) + t.moreFindings,
    ...(undecided.length > 0 ? { undecided: undecided.slice(0, MAX_FINDINGS_PER_CHECK) } : {}),
  };
}

/** The report: per check, per requirement ID, the first violation and the notes. */
export function buildReport(i: ReportInput): VerifyReport {
  const results = i.tallies.map((t) => resultOf(t, i.sorted));
  const requirements: Record<string, 'pass' | 'fail'> = {};
  for (const r of results) {
    if (r.status === 'skip') continue;
    for (const id of r.requirements)
      if (requirements[id] !== 'fail') requirements[id] = r.status === 'fail' ? 'fail' : 'pass';
  }
  const failed = results.filter((r) => r.status === 'fail');
  const firstFinding = failed
    .flatMap((r) => r.findings.map((f) => ({ ...f, check: r.id })))
    .sort(byPosition)[0];
  const notes: string[] = [];
  if (i.trust === 'bundle-keys')
    notes.push(
      "NOTHING PINNED: --trust-bundle-keys trusted the bundle's OWN ledger, issuer, client and approver keys; anyone who can rewrite the bundle can re-sign it; pin the deployment's trust roots with --trust FILE",
    );
  else if (i.trust === 'none')
    notes.push(
      'no pinned trust roots: obtain the trust file out of band (failclosed trust-roots, GET /v1/trust-roots) and pass --trust FILE',
    );
  else if (i.trust === 'ledger-key')
    notes.push(
      'issuer and approver keys NOT pinned: taken from the bundle (the ledger key is pinned); pass --trust FILE to pin them too',
    );
  if (i.abandoned.count > 0)
    notes.push(
      `${i.abandoned.count} request(s) abandoned by a crash or stop (request.abandoned), ${i.abandoned.mayHaveRun} of them may have run (envelope consumed)`,
    );
  for (const t of i.tallies) notes.push(...t.notes);
  if (!i.complete) notes.push('partial export: the bundle does not hold every entry of its checkpoint');
  const undecided = results.reduce((n, r) => n + (r.undecided?.length ?? 0), 0);
  if (undecided > 0)
    notes.push(
      `partial export: ${undecided} link(s) lie outside this bundle and were not decided (listed per check); export the whole ledger to decide them`,
    );
  // Without pinned roots a clean run proves only that the bundle agrees with itself: never plain success.
  const untrusted = i.trust === 'none';
  return {
    ok: failed.length === 0 && !untrusted,
    exitCode: failed.length > 0 ? 1 : untrusted ? NO_TRUST_ROOTS : 0,
    origin: i.origin,
    coverage: { ...i.coverage, complete: i.complete },
    keyPinned: i.keyPinned,
    trust: i.trust,
    notes,
    checks: results,
    requirements,
    ...(firstFinding !== undefined ? { firstViolation: firstFinding } : {}),
  };
}
