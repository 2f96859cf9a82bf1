/** Human-readable rendering of a {@link VerifyReport} (the `--json` flag prints the report itself). */
import type { TrustSource, VerifyReport } from './types.js';

const TRUST_WORDS: Record<TrustSource, string> = {
  'trust-file': 'pinned (trust file)',
  'ledger-key': 'ledger key pinned; issuer and approver keys from the bundle',
  'bundle-keys': "NONE PINNED: the bundle's own keys were trusted (--trust-bundle-keys)",
  none: 'NONE PINNED',
};

function resultLine(r: VerifyReport): string {
  if (r.exitCode === 1) return 'result: VIOLATION (exit 1)';
  if (r.exitCode === 3)
    return 'result: NOT VERIFIED: no pinned trust roots; pass --trust FILE or --trusted-key VKEY (exit 3)';
  if (r.trust === 'bundle-keys')
    return "result: all checks hold under the BUNDLE'S OWN KEYS, nothing pinned (--trust-bundle-keys) (exit 0)";
  return 'result: all checks hold (exit 0)';
}

/** Renders the report as text: one line per check, its findings, requirement IDs, the first violation, the result. */
export function formatReport(r: VerifyReport): string {
  const lines: string[] = [];
  if (r.unusable !== undefined) return `UNUSABLE ${r.unusable}\nresult: unusable input (exit 2)\n`;
  lines.push(`audit bundle for ${r.origin ?? '?'}`);
  lines.push(`  trust roots: ${TRUST_WORDS[r.trust]}`);
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
  lines.push('', resultLine(r));
  return `${lines.join('\n')}\n`;
}
