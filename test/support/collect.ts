import { describe, it } from 'vitest';

/**
 * `describe` whose collection cannot fail silently: when building the suite's cases throws (for
 * instance a mutant makes a setup call throw), the error becomes a failing test of the suite.
 * Stryker's vitest runner counts a file that fails to collect as "no test failed", so a mutant
 * caught only at collection would otherwise be scored as survived.
 */
export function describeOrFail(name: string, body: () => void): void {
  describe(name, () => {
    try {
      body();
    } catch (err) {
      it('collects its cases', () => {
        throw err;
      });
    }
  });
}
