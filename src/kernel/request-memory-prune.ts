/**
 * The pruning of the tables that remember requests so that none is taken twice (FC-INV-3): the
 * Gate's request-replay memory (`gate_request_nonces`) and the Control Plane's decision claims
 * (`decision_claims`), on SQLite and on PostgreSQL. One rule, one driver; each table gives its
 * own statements ({@link RequestMemoryTable}).
 *
 * **The rule.** A row goes only when it is older than the retention measured against the LATEST
 * time the table recorded (not the clock now: a clock set back deletes nothing) AND it is not
 * among the newest `keep` rows of its client in insertion order (a clock jumped forward cannot
 * empty the memory: the requests a client made just before the jump are still known when the
 * clock comes back). docs/deployment.md "Clock jumps", docs/storage.md "Retention and pruning".
 *
 * **The walk.** Client by client (resumed at the client a run stopped in, then wrapping around,
 * so clients late in the order are reached too), in batches of at most `batchRows` examined rows
 * in insertion order past a cursor and below the client's floor, yielding to the event loop
 * between batches. A background run stops once `budgetMs` is spent (the rest goes at the next
 * one); a run called goes until done and stops with an error once the store is closed. Stopping
 * early, or failing, only keeps more rows: no verdict ever depends on a prune.
 */

/** What one batch did. */
export interface RequestMemoryBatch {
  /** Rows examined (at most `batchRows`; fewer: the client is done). */
  readonly examined: number;
  /** Insertion position of the last row examined: the next batch's cursor. */
  readonly last: number;
  readonly deleted: number;
}

/** One table's statements; `C` names a client (the rows of one signer of requests). */
export interface RequestMemoryTable<C> {
  /** The latest time recorded; undefined when the table is empty. */
  latest(): Promise<number | undefined>;
  /** The clients with rows, in the table's order (one index probe each, never a pass over rows). */
  clients(): Promise<readonly C[]>;
  /** A stable text of `client`, to resume a run where the last one stopped. */
  keyOf(client: C): string;
  /** Insertion position of the client's keep-th newest row; undefined: nothing of it may go. */
  floor(client: C): Promise<number | undefined>;
  /**
   * Examines the client's next `rows` rows past `cursor` and below `floor` in insertion order,
   * and deletes those recorded before `cutoff`: one short transaction.
   */
  batch(client: C, cursor: number, floor: number, cutoff: number, rows: number): Promise<RequestMemoryBatch>;
}

/** How a table is pruned. */
export interface RequestMemoryPruneOptions {
  /** Rows kept whatever their age, measured back from the latest time recorded (ms). */
  readonly retentionMs: number;
  /** Rows one batch examines at most. */
  readonly batchRows: number;
  /** Wall time one background run may take before it leaves the rest to the next one (ms). */
  readonly budgetMs: number;
  /** True once the store is closed: a run called then stops with `closedError()`. */
  readonly closed: () => boolean;
  readonly closedError: () => Error;
}

/** A table's pruner: runs called, and at most one background run at a time. */
export interface RequestMemoryPruner {
  /** Prunes until done; resolves with the rows deleted, rejects when the store closes or fails. */
  run(): Promise<number>;
  /**
   * Starts a background run unless one is running (false then, or when closed); its failure is
   * dropped (the next one retries).
   */
  start(): boolean;
  /** Resolves once no background run is in progress (`close()` waits for it). */
  idle(): Promise<void>;
}

const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** The pruner of `table` by the rule above. */
export function createRequestMemoryPruner<C>(
  table: RequestMemoryTable<C>,
  options: RequestMemoryPruneOptions,
): RequestMemoryPruner {
  const retention = Math.trunc(options.retentionMs);
  if (!(retention >= 1 && Number.isSafeInteger(retention)))
    throw new TypeError('the retention must be a positive integer of milliseconds');
  let resumeAt: string | undefined;
  let background: Promise<void> | undefined;

  const prune = async (inBackground: boolean): Promise<number> => {
    const started = performance.now();
    const spent = (): boolean => {
      if (!inBackground && options.closed()) throw options.closedError();
      return inBackground && performance.now() - started >= options.budgetMs;
    };
    // Started from inside a claim's transaction: read nothing before it committed.
    await nextTurn();
    const latest = await table.latest();
    if (latest === undefined) return 0;
    const cutoff = Math.trunc(latest - retention);
    const listed = await table.clients();
    const from = Math.max(
      0,
      listed.findIndex((c) => table.keyOf(c) === resumeAt),
    );
    let deleted = 0;
    for (const client of [...listed.slice(from), ...listed.slice(0, from)]) {
      if (spent()) {
        resumeAt = table.keyOf(client);
        return deleted;
      }
      const floor = await table.floor(client);
      if (floor === undefined) continue;
      let cursor = 0;
      for (;;) {
        const r = await table.batch(client, cursor, floor, cutoff, options.batchRows);
        deleted += r.deleted;
        if (r.examined < options.batchRows) break;
        if (spent()) {
          resumeAt = table.keyOf(client);
          return deleted;
        }
        cursor = r.last;
        await nextTurn();
      }
    }
    resumeAt = undefined;
    return deleted;
  };

  return Object.freeze({
    run: () => prune(false),
    start() {
      if (background !== undefined || options.closed()) return false;
      background = prune(true)
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          background = undefined;
        });
      return true;
    },
    idle: async () => {
      await background;
    },
  });
}
