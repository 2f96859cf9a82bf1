/**
 * How many cases a fuzz test runs. `npm test` runs a small number of cases per target so the
 * suite stays within its time budget; `npm run fuzz` (FC_FUZZ=full) runs the full count, at least
 * 10^6 cases for the strict JSON parser. A fixed seed per target keeps `npm test` reproducible;
 * `npm run fuzz` draws a fresh seed and prints it, so a failure can be replayed with FC_FUZZ_SEED.
 */
export const FULL = process.env.FC_FUZZ === 'full';

/** Cases to run: `inTests` under `npm test`, `full` under `npm run fuzz`. */
export function fuzzRuns(inTests: number, full: number): number {
  return FULL ? full : inTests;
}

/** The seed for a fast-check run: fixed in `npm test`, fresh (or FC_FUZZ_SEED) in `npm run fuzz`. */
export function fuzzSeed(fixed: number): number {
  const given = process.env.FC_FUZZ_SEED;
  if (given !== undefined) return Number(given);
  return FULL ? Math.floor(Math.random() * 2 ** 31) : fixed;
}
