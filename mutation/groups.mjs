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
  verify: {
    mutate: ['src/verify/checks/*.ts'],
    tests: ['test/verify/*.test.ts', 'test/approvals/verify.test.ts'],
  },
};
