import { defineConfig } from 'vitest/config';
import { groups } from './mutation/groups.mjs';

/**
 * The test set StrykerJS runs against a mutant of one group (`FC_MUTATION_GROUP`): the tests
 * that exercise that component in process (see `mutation/groups.mjs`).
 */
const name = process.env.FC_MUTATION_GROUP ?? '';
const group = groups[name];
if (group === undefined) throw new Error(`FC_MUTATION_GROUP must name a group, got "${name}"`);

export default defineConfig({
  test: {
    include: [...group.tests],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
