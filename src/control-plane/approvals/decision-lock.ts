/**
 * The per-decision critical section of one process (OE-INV-019/020): an in-process mutex per
 * decision id, for a store that only one process serves (SQLite). Each caller runs after the
 * one before it on the same decision settled, whatever it resolved or rejected to; a decision
 * nobody waits on leaves no entry behind.
 */
export type DecisionLock = <T>(decisionId: string, fn: () => Promise<T>) => Promise<T>;

/** A fresh set of per-decision mutexes. */
export function createDecisionMutex(): DecisionLock {
  const tails = new Map<string, Promise<void>>();
  return <T>(decisionId: string, fn: () => Promise<T>): Promise<T> => {
    const before = tails.get(decisionId) ?? Promise.resolve();
    const run = before.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    tails.set(decisionId, tail);
    void tail.then(() => {
      // The last caller on this decision finished: nothing to keep.
      if (tails.get(decisionId) === tail) tails.delete(decisionId);
    });
    return run;
  };
}
