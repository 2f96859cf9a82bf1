/** Builds the {@link VerifyReport} from what each check found (SPEC §5 "reports pass/fail per invariant ID"). */
import type { CheckTally } from './engine.js';
import { MAX_FINDINGS_PER_CHECK, type CheckResult, type Finding, type VerifyReport } from './types.js';

/** What the report needs besides the tallies. */
export interface ReportInput {
  readonly tallies: readonly CheckTally[];
  /** Sort findings by bundle position (a streamed bundle is checked request by request, not in order). */
  readonly sorted: boolean;
  readonly origin: string;
  readonly keyPinned: boolean;
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
  if (!i.keyPinned)
    notes.push(
      "checkpoint key NOT pinned: verified against the bundle's own ledger key; pass --trusted-key VKEY to pin it out of band",
    );
  if (!i.complete) notes.push('partial export: the bundle does not hold every entry of its checkpoint');
  const undecided = results.reduce((n, r) => n + (r.undecided?.length ?? 0), 0);
  if (undecided > 0)
    notes.push(
      `partial export: ${undecided} link(s) lie outside this bundle and were not decided (listed per check); export the whole ledger to decide them`,
    );
  return {
    ok: failed.length === 0,
    exitCode: failed.length === 0 ? 0 : 1,
    origin: i.origin,
    coverage: { ...i.coverage, complete: i.complete },
    keyPinned: i.keyPinned,
    notes,
    checks: results,
    requirements,
    ...(firstFinding !== undefined ? { firstViolation: firstFinding } : {}),
  };
}
