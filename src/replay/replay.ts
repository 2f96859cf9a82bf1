/**
 * `replayBundleFile`: integrity first (the offline verifier, kernel only, under the pinned trust
 * roots), then every decision of the bundle (or of one trace) re-derived with the real policy
 * engine and compared byte for byte with the ledger (GEI Determinism "forensic replay",
 * OE-INV-014). `verify` proves the ledger was not changed by anyone without the keys; replay
 * proves that what it says was decided is what its own pinned policy decides, which a holder of
 * every key cannot fake without also rewriting the policy bundle the decision names.
 */
import { verifyBundleFile } from '../verify/index.js';
import type { VerifyOptions, VerifyReport } from '../verify/index.js';
import type { JsonValue } from '../kernel/index.js';
import { readReplayInput } from './read-bundle.js';
import type { ReplayEntry } from './read-bundle.js';
import { backgroundTraces, rederiveDecision } from './rederive.js';
import type { RuntimeCache } from './rederive.js';
import { recordsOf, rederiveRecords } from './follow.js';
import type { DecisionReplay, ReplayExitCode, ReplayFinding, ReplayReport } from './types.js';

/** Options of {@link replayBundleFile}. */
export interface ReplayOptions {
  /** Trust roots for the integrity check, as `failclosed verify` takes them. */
  readonly verify: VerifyOptions;
  /** Replay only the decisions this trace touches (its decision, or the decision its retry issued). */
  readonly traceId?: string;
}

const EMPTY_SUMMARY = { decisions: 0, match: 0, partial: 0, notRederivable: 0, mismatch: 0 };

function verdictOf(v: VerifyReport): ReplayReport['verify'] {
  return {
    exitCode: v.exitCode,
    trust: v.trust,
    ...(v.firstViolation === undefined ? {} : { firstViolation: v.firstViolation as unknown as JsonValue }),
  };
}

function failed(
  exitCode: ReplayExitCode,
  verify: ReplayReport['verify'],
  traceId: string | undefined,
  error: string,
): ReplayReport {
  return {
    format: 'failclosed.replay-report/v1',
    ok: false,
    exitCode,
    verify,
    trace_id: traceId ?? null,
    complete: false,
    decisions: [],
    findings: [],
    summary: EMPTY_SUMMARY,
    error,
  };
}

/** The decisions a trace touches: its own, and those its approval retry or approvals name. */
function decisionsOf(entries: readonly ReplayEntry[], traceId: string | undefined): ReplayEntry[] {
  const decisions = entries.filter((e) => e.type === 'decision');
  if (traceId === undefined) return decisions;
  const ids = new Set(entries.filter((e) => e.trace_id === traceId).map((e) => e.payload['decision_id']));
  return decisions.filter((d) => d.trace_id === traceId || ids.has(d.payload['decision_id']));
}

/**
 * Verifies the bundle at `path`, then replays its decisions. Exit codes: 0 every decision
 * replayed without a finding under pinned roots (those not re-derivable are listed with their
 * reason), 1 a finding or an integrity violation, 2 an unusable bundle or a trace with no
 * decision, 3 no finding but no trust roots pinned. Never rejects.
 */
export async function replayBundleFile(path: string, opts: ReplayOptions): Promise<ReplayReport> {
  const v = await verifyBundleFile(path, opts.verify);
  const verify = verdictOf(v);
  if (v.exitCode === 1)
    return failed(1, verify, opts.traceId, 'the bundle fails verification: replay needs an intact ledger');
  if (v.exitCode === 2) return failed(2, verify, opts.traceId, 'the bundle is unusable');
  const input = await readReplayInput(path);
  if (typeof input === 'string') return failed(2, verify, opts.traceId, input);
  const targets = decisionsOf(input.entries, opts.traceId);
  if (opts.traceId !== undefined && targets.length === 0)
    return failed(2, verify, opts.traceId, 'no decision is recorded in this trace');
  const cache: RuntimeCache = new Map();
  // The records of each decision id, grouped once (a decision's follow-ups are few).
  const byDecision = new Map<JsonValue, ReplayEntry[]>();
  for (const e of input.entries) {
    const id = e.payload['decision_id'];
    if (e.type === 'decision' || typeof id !== 'string') continue;
    byDecision.set(id, [...(byDecision.get(id) ?? []), e]);
  }
  const decisions: DecisionReplay[] = [];
  const findings: ReplayFinding[] = [];
  for (const d of targets) {
    const r = await rederiveDecision(input, cache, d);
    const records = recordsOf(byDecision.get(d.payload['decision_id'] ?? null) ?? [], d);
    const follow = rederiveRecords(d, r, records, backgroundTraces(input));
    const all = [...r.findings, ...follow];
    findings.push(...all);
    decisions.push({
      index: d.index,
      trace_id: d.trace_id,
      request_id: d.request_id,
      decision_id: typeof d.payload['decision_id'] === 'string' ? d.payload['decision_id'] : '',
      outcome: d.payload['outcome'] ?? null,
      code: d.payload['code'] ?? null,
      status: all.length > 0 ? 'mismatch' : r.status,
      ...(r.reason === undefined ? {} : { reason: r.reason }),
      compared: [d.index, ...(r.outcome === undefined ? [] : records.map((e) => e.index))],
    });
  }
  const count = (s: DecisionReplay['status']) => decisions.filter((x) => x.status === s).length;
  const summary = {
    decisions: decisions.length,
    match: count('match'),
    partial: count('partial'),
    notRederivable: count('not-rederivable'),
    mismatch: count('mismatch'),
  };
  const exitCode: ReplayExitCode = findings.length > 0 ? 1 : v.exitCode === 3 ? 3 : 0;
  return {
    format: 'failclosed.replay-report/v1',
    ok: exitCode === 0,
    exitCode,
    verify,
    trace_id: opts.traceId ?? null,
    complete: input.complete,
    decisions,
    findings,
    summary,
  };
}
