// @ts-check
/**
 * Mutation testing of the enforcement core. Run it with `npm run mutation`, which runs each
 * group of `mutation/groups.mjs` through this configuration (the group's name arrives in
 * `FC_MUTATION_GROUP`) and then prints the per-file score table (`scripts/mutation.mjs`).
 *
 * Incremental mode: each group keeps its results in `mutation/incremental/GROUP.json`, so a rerun
 * after a small change tests only the mutants whose code or covering tests changed.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
import { groups } from './mutation/groups.mjs';

const name = process.env.FC_MUTATION_GROUP ?? '';
const group = groups[/** @type {keyof typeof groups} */ (name)];
if (group === undefined)
  throw new Error(`FC_MUTATION_GROUP must name a group of mutation/groups.mjs, got "${name}"`);

export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  coverageAnalysis: 'perTest',
  // Message text of denials, errors and findings is not mutated: see the ignorer's header.
  plugins: ['@stryker-mutator/vitest-runner', './mutation/ignore-message-text.mjs'],
  ignorers: ['MessageText'],
  mutate: group.mutate,
  incremental: true,
  incrementalFile: `mutation/incremental/${name}.json`,
  reporters: ['progress', 'json'],
  jsonReporter: { fileName: `mutation/reports/${name}.json` },
  concurrency: Number(process.env.FC_MUTATION_CONCURRENCY ?? 2),
  timeoutMS: 20_000,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
