import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // One module graph per worker, not per file: re-importing the product (and compiling Cedar)
    // for each of the ~250 files took about a third of the suite's time on two cores. So a test
    // file leaves no per-file state in a module another file imports (scratch folders are made
    // on use, environment variables and fake timers restored).
    isolate: false,
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
