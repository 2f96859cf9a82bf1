/**
 * The work a component still has under way, so that its close waits for it before closing what
 * that work writes through (a pool, a ledger link): the PostgreSQL nonce store's statements, the
 * separate Execution Layer's executions and records (docs/deployment.md "Stopping").
 */

/** Promises tracked until they settle. */
export interface InFlight {
  /** Tracks `p` until it settles; returns `p` itself (its rejection is the caller's to handle). */
  track<T>(p: Promise<T>): Promise<T>;
  /** How many are tracked now. */
  readonly size: number;
  /**
   * Resolves once nothing is tracked, waiting again for what was tracked meanwhile (what settles
   * may start more), or once `withinMs` has passed (default: no bound). Never rejects.
   */
  settled(withinMs?: number): Promise<void>;
}

/** An empty {@link InFlight}. */
export function createInFlight(): InFlight {
  const running = new Set<Promise<unknown>>();
  return {
    track(p) {
      running.add(p);
      const forget = (): void => void running.delete(p);
      p.then(forget, forget);
      return p;
    },
    get size() {
      return running.size;
    },
    async settled(withinMs) {
      let timer: NodeJS.Timeout | undefined;
      let late = false;
      const bound =
        withinMs === undefined
          ? undefined
          : new Promise<void>((resolve) => {
              timer = setTimeout(() => {
                late = true;
                resolve();
              }, withinMs);
            });
      try {
        while (running.size > 0 && !late) {
          const all = Promise.allSettled([...running]);
          await (bound === undefined ? all : Promise.race([all, bound]));
        }
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
