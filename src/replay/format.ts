/** The text form of a replay report (`failclosed replay` without `--json`). */
import type { ReplayReport } from './types.js';

/** One line per decision, every finding with the entry and member it names, then the verdict. */
export function formatReplayReport(r: ReplayReport): string {
  const lines: string[] = [];
  const scope = r.trace_id === null ? 'every decision in the bundle' : `trace ${r.trace_id}`;
  lines.push(`failclosed replay: ${scope} (${r.complete ? 'complete' : 'partial'} export)`);
  lines.push(`integrity (verify): exit ${r.verify.exitCode}, trust ${r.verify.trust}`);
  if (r.error !== undefined) lines.push(`error: ${r.error}`);
  for (const d of r.decisions) {
    const tag = d.status.toUpperCase().padEnd(15);
    const what = `${typeof d.outcome === 'string' ? d.outcome : JSON.stringify(d.outcome)}${d.code === null ? '' : ` ${typeof d.code === 'string' ? d.code : JSON.stringify(d.code)}`}`;
    lines.push(`  ${tag} decision #${d.index} ${what} (trace ${d.trace_id}, ${d.decision_id})`);
    if (d.reason !== undefined) lines.push(`                  ${d.reason}`);
  }
  for (const f of r.findings) lines.push(`  ${f.code}: ${f.message}`);
  const s = r.summary;
  lines.push(
    `decisions: ${s.decisions} (match ${s.match}, partial ${s.partial}, not re-derivable ${s.notRederivable}, mismatch ${s.mismatch})`,
  );
  const verdict: Record<number, string> = {
    0: 'every replayed decision matches the ledger byte for byte (exit 0)',
    1: 'MISMATCH: the ledger does not say what its pinned policy decides (exit 1)',
    2: 'unusable input (exit 2)',
    3: 'NOT VERIFIED: no pinned trust roots; no mismatch found (exit 3)',
  };
  lines.push(`result: ${verdict[r.exitCode] ?? ''}`);
  if (r.exitCode === 1 && r.findings.length === 0 && r.error !== undefined) lines.push(`  ${r.error}`);
  return `${lines.join('\n')}\n`;
}
