// @ts-check
/**
 * The enforcement core under mutation testing, in groups: each group's source files are mutated
 * against the test files that exercise that component (its unit and contract tests, and the
 * end-to-end files that drive it in process). Running a mutant of `json.ts` against the whole
 * suite would run nearly every test for every mutant; a group keeps a run to minutes.
 *
 * `npm run mutation` runs every group (`scripts/mutation.mjs`); `npm run mutation -- GROUP…`
 * runs some of them.
 */
export const groups = {
  json: {
    mutate: [
      'src/kernel/json.ts',
      'src/kernel/canonical.ts',
      'src/kernel/base64url.ts',
      'src/kernel/hash.ts',
    ],
    tests: [
      'test/kernel/json*.test.ts',
      'test/kernel/canonical*.test.ts',
      'test/kernel/hash.test.ts',
      'test/kernel/base64url*.test.ts',
    ],
  },
  envelope: {
    mutate: ['src/kernel/envelope/*.ts', 'src/kernel/signing/sign-envelope.ts'],
    tests: ['test/kernel/envelope*.test.ts'],
  },
  merkle: {
    mutate: ['src/kernel/merkle.ts', 'src/kernel/note.ts'],
    tests: ['test/kernel/merkle*.test.ts', 'test/kernel/note*.test.ts'],
  },
  gate: {
    mutate: ['src/kernel/request.ts', 'src/gate/request.ts', 'src/gate/gate.ts'],
    tests: ['test/gate/*.test.ts', 'test/kernel/request*.test.ts'],
  },
  'control-plane': {
    mutate: [
      'src/control-plane/control-plane.ts',
      'src/control-plane/policy-decision.ts',
      'src/control-plane/decision-record.ts',
      'src/control-plane/issuer.ts',
    ],
    tests: ['test/control-plane/*.test.ts', 'test/approvals/control-plane.test.ts'],
  },
  execution: {
    mutate: [
      'src/execution/executor.ts',
      'src/execution/nonce-store.ts',
      'src/execution/sqlite-nonce-store.ts',
      'src/execution/ledger-checks.ts',
      'src/execution/outcome-checks.ts',
      'src/execution/void-envelope.ts',
    ],
    tests: ['test/execution/*.test.ts'],
  },
  // The offline verify checks, each against the test files written for it: every verify run
  // runs every check, so mutating a check against the whole verify suite would rebuild every
  // bundle of every file for every mutant.
  'verify-envelope': {
    mutate: ['src/verify/checks/envelope-binding.ts'],
    tests: ['test/verify/envelope-binding.test.ts', 'test/verify/checklist.test.ts'],
  },
  'verify-ledger': {
    mutate: [
      'src/verify/checks/entry-format.ts',
      'src/verify/checks/entry-hash.ts',
      'src/verify/checks/chain-continuity.ts',
      'src/verify/checks/checkpoint-signature.ts',
      'src/verify/checks/merkle-root.ts',
      'src/verify/checks/inclusion-proofs.ts',
      'src/verify/checks/consistency.ts',
      'src/verify/checks/util.ts',
    ],
    tests: [
      'test/verify/ledger-integrity.test.ts',
      'test/verify/check-util.test.ts',
      'test/verify/checklist.test.ts',
    ],
  },
  'verify-linkage': {
    mutate: ['src/verify/checks/receipt-linkage.ts', 'src/verify/checks/trace-linkage.ts'],
    tests: [
      'test/verify/receipt-trace.test.ts',
      'test/verify/linkage.test.ts',
      'test/verify/checklist.test.ts',
    ],
  },
  'verify-outcome': {
    mutate: ['src/verify/checks/attributable-outcome.ts'],
    tests: ['test/verify/outcome.test.ts', 'test/verify/checklist.test.ts'],
  },
  'verify-evidence': {
    mutate: ['src/verify/checks/evidence.ts', 'src/verify/checks/payload-allowlist.ts'],
    tests: [
      'test/verify/evidence.test.ts',
      'test/verify/payload-allowlist.test.ts',
      'test/verify/allowlist-sync.test.ts',
      'test/verify/checklist.test.ts',
    ],
  },
  'verify-trust': {
    mutate: ['src/verify/checks/trust-roots.ts'],
    tests: [
      'test/verify/trust-roots.test.ts',
      'test/verify/client-keys.test.ts',
      'test/verify/checklist.test.ts',
    ],
  },
  'verify-approvals': {
    mutate: ['src/verify/checks/approvals.ts'],
    tests: ['test/approvals/verify.test.ts', 'test/verify/checklist.test.ts'],
  },
};
