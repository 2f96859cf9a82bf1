/**
 * Durable writes a governed call has made but not yet waited for (SPEC §2 hot path, §8 "durable
 * writes"): a store given a {@link DurableWrites} may answer as soon as its write is in the
 * commit under way, and registers that commit here; the call then waits for all of them at once,
 * with {@link DurableWrites.sync}, before anything that depends on them leaves the process (an
 * envelope leaves the Control Plane, a tool runs, an answer leaves the Gate). Writes that share a
 * commit therefore cost one durable round together instead of one each.
 *
 * A store that cannot defer (PostgreSQL: each statement commits on its own) simply answers after
 * its commit, and `sync` has nothing left to wait for. A failed commit makes every later `sync`
 * of the same scope reject: the call denies (fail closed, FC-INV-4).
 */

/** The pending durable writes of one call. */
export interface DurableWrites {
  /** Registers a commit that must be durable before what depends on it leaves the process. */
  add(durable: Promise<void>): void;
  /** Resolves once every registered commit is durable; rejects when any of them failed (and ever after). */
  sync(): Promise<void>;
}

/** A fresh, empty {@link DurableWrites}. */
export function createDurableWrites(): DurableWrites {
  /** Registered commits not settled yet: every `sync` waits for all of them, however many ask. */
  const pending = new Set<Promise<void>>();
  let failure: unknown;
  let failed = false;
  return {
    add(durable) {
      pending.add(durable);
      // Observed at once: a commit that fails before sync() is never an unhandled rejection.
      durable.then(
        () => pending.delete(durable),
        (err: unknown) => {
          pending.delete(durable);
          if (!failed) {
            failed = true;
            failure = err;
          }
        },
      );
    },
    async sync() {
      if (pending.size > 0) {
        try {
          await Promise.all([...pending]);
        } catch (err) {
          if (!failed) {
            failed = true;
            failure = err;
          }
        }
      }
      if (failed) throw failure instanceof Error ? failure : new Error('a durable write failed');
    },
  };
}
