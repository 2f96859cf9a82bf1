/**
 * The verifier's checklist (SPEC §5 "reports pass/fail per invariant ID, can check one invariant
 * (`--invariant FC-INV-6`)"; the auditor checklist maps every requirement ID to its verification
 * step): which check serves which requirement, and what unit of the bundle it reads, is pinned
 * here, so a check silently dropping a requirement (and `--invariant` no longer running it) fails.
 */
import { describe, expect, it } from 'vitest';
import { VERIFY_CHECKS } from '../../src/verify/index.js';

const CHECKLIST: readonly { id: string; unit: string; requirements: string[] }[] = [
  { id: 'entry-format', unit: 'entries', requirements: ['OE-INV-016', 'OE-INV-022'] },
  { id: 'entry-hash', unit: 'entries', requirements: ['OE-INV-016', 'GEI-audit-chain'] },
  { id: 'chain-continuity', unit: 'entries', requirements: ['GEI-audit-chain', 'L7-ledger-protection'] },
  { id: 'payload-allowlist', unit: 'entries', requirements: ['OE-INV-009', 'L7-secret-handling'] },
  { id: 'checkpoint-signature', unit: 'bundle', requirements: ['L7-ledger-protection', 'OE-INV-016'] },
  { id: 'trust-roots', unit: 'entries', requirements: ['L7-ledger-protection', 'L7-identity-signing'] },
  { id: 'merkle-root', unit: 'bundle', requirements: ['L7-ledger-protection', 'GEI-audit-chain'] },
  { id: 'inclusion-proofs', unit: 'entries', requirements: ['L7-ledger-protection'] },
  { id: 'consistency', unit: 'bundle', requirements: ['L7-ledger-protection'] },
  { id: 'evidence', unit: 'entries', requirements: ['OE-INV-016', 'OE-INV-022'] },
  {
    id: 'approvals',
    unit: 'requests',
    requirements: ['OE-INV-019', 'OE-INV-020', 'OE-INV-002', 'L7-identity-signing', 'L7-break-glass'],
  },
  {
    id: 'envelope-binding',
    unit: 'requests',
    requirements: ['OE-INV-017', 'FC-INV-4', 'GEI-param-binding', 'L7-boundary-b'],
  },
  {
    id: 'receipt-linkage',
    unit: 'requests',
    requirements: ['OE-INV-015', 'OE-INV-017', 'FC-INV-4', 'GEI-decision-before-execution'],
  },
  { id: 'trace-linkage', unit: 'requests', requirements: ['FC-INV-6'] },
  { id: 'attributable-outcome', unit: 'requests', requirements: ['FC-INV-5', 'FC-INV-3'] },
  { id: 'interface-inventory', unit: 'entries', requirements: ['FC-INV-6'] },
  { id: 'schedules', unit: 'requests', requirements: ['FC-INV-6'] },
];

describe('SPEC §5: every check serves its requirement IDs, in checklist order', () => {
  it('the checklist maps each check to its requirements and the unit it reads', () => {
    expect(
      VERIFY_CHECKS.map((c) => ({ id: c.id, unit: c.unit ?? 'entries', requirements: [...c.requirements] })),
    ).toEqual(CHECKLIST);
  });

  it('every check says in one line what it proves', () => {
    for (const c of VERIFY_CHECKS) expect(c.title.length).toBeGreaterThan(20);
  });
});
