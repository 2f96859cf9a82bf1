/** An injected clock: milliseconds since the Unix epoch. Never read global time on the enforcement path directly. */
export type Clock = () => number;

/** The system clock. Only composition roots (CLI, server start-up) should use it. */
export const systemClock: Clock = () => Date.now();

/** A fixed clock, for tests and deterministic replay. */
export function fixedClock(ms: number): Clock {
  return () => ms;
}
