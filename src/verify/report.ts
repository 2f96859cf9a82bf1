/** Human-readable rendering of a {@link VerifyReport} (the `--json` flag prints the report itself). */
import type { VerifyReport } from './types.js';

/** Renders the report as text: one line per check, its findings, requirement IDs, the first violation, the result. */
export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  if (r.unusable !== undefined) return `UNUSABLE ${r.unusable}\nresult: unusable input (exit 2)\n`;
  lines.push(`audit bundle for ${r.origin ?? '?'}`);
  const c = r.coverage;
  if (c !== undefined)
    lines.push(
      `  entries: ${c.entries}${c.first !== undefined ? ` (index ${c.first}..${c.last ?? '?'})` : ''}; checkpoint size: ${c.checkpointSize ?? 'unverified'}; ${c.complete ? 'complete' : 'partial'}`,
    );
  for (const n of r.notes) lines.push(`  note: ${n}`);
  lines.push('');
  for (const check of r.checks) {
    lines.push(
      `${check.status.toUpperCase().padEnd(4)} ${check.id.padEnd(22)} ${check.requirements.join(' ')}`,
    );
    for (const f of check.findings) lines.push(`       ${f.code}: ${f.message}`);
    if (check.more > 0) lines.push(`       … and ${check.more} more`);
    for (const f of check.undecided ?? [])
      lines.push(`       not decidable in this partial bundle: ${f.message}`);
  }
  lines.push('', 'requirements:');
  for (const [id, status] of Object.entries(r.requirements))
    lines.push(`  ${status.toUpperCase().padEnd(4)} ${id}`);
  if (r.firstViolation !== undefined)
    lines.push('', `first violation (${r.firstViolation.check}): ${r.firstViolation.message}`);
  lines.push('', r.ok ? 'result: all checks hold (exit 0)' : 'result: VIOLATION (exit 1)');
  return `${lines.join('\n')}\n`;
}
