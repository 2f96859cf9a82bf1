/**
 * One SQLite connection shared by every store of an embedded deployment, with commits shared
 * across them (SPEC §8 "durable writes": one fsync ≈ 0.28 ms whatever the transaction holds).
 *
 * A write runs at once, inside the connection's open write transaction (begun by the first write
 * of an event-loop turn, in a savepoint of its own: a write that throws undoes only itself), and
 * its caller learns its result at once; the transaction commits, durably (`synchronous=FULL`),
 * after every write of the turn has run (`setImmediate`). {@link SqliteCommitUnit.stage} hands
 * back the result and the commit's promise: nothing that depends on the write may leave the
 * process before that promise resolves (`durability.ts`). A failed commit rolls back every write
 * of its transaction and rejects them all.
 *
 * Reads on the connection see the writes of the open transaction, other calls' included: a
 * single-use claim or a counter therefore sees every earlier claim, committed or not (a claim
 * whose commit then fails only made a later one deny: fail closed). Writes others must never read
 * before they are durable (governance, keys, policy, approvals) use {@link SqliteCommitUnit.writeNow}:
 * the open transaction commits first, then the write commits in a transaction of its own before
 * `writeNow` returns, all synchronously, so no reader on the connection sees it undurable.
 *
 * Only this module begins or ends transactions on the connection; stores' own `db.transaction`
 * functions run inside it as savepoints (better-sqlite3 nests them).
 */
import type Database from 'better-sqlite3';
import type { DurableWrites } from './durability.js';

/** A write that ran in the open transaction: its result, and the commit that makes it durable. */
export interface StagedWrite<T> {
  readonly value: T;
  /** Resolves once the transaction holding the write committed durably; rejects if it did not. */
  readonly durable: Promise<void>;
}

/** The shared connection and its commit schedule. */
export interface SqliteCommitUnit {
  readonly db: Database.Database;
  /**
   * Runs `fn` now inside the open write transaction (beginning one, `BEGIN IMMEDIATE`, if none is
   * open), in a savepoint: when `fn` throws its writes are undone and the error is rethrown.
   */
  stage<T>(fn: () => T): StagedWrite<T>;
  /**
   * `stage(fn)`, resolving with its value once durable; with `writes`, resolving once written and
   * registering the commit in `writes` (`durability.ts`). A throw of `fn` rejects.
   */
  write<T>(fn: () => T, writes?: DurableWrites): Promise<T>;
  /**
   * Commits the open transaction (if any), then runs `fn` in a transaction of its own and commits
   * it: durable when `writeNow` returns. Throws when either commit fails (the open transaction's
   * writers are rejected as by any failed commit).
   */
  writeNow<T>(fn: () => T): T;
  /** Transactions committed so far (the hot path's durable rounds are counted with it). */
  readonly commits: number;
  /** Commits what is open, then closes the connection; later writes throw. */
  close(): void;
}

interface OpenTransaction {
  readonly durable: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * Takes charge of `db`'s transactions (WAL and `synchronous=FULL` are the caller's pragmas).
 * `db` must not be in a transaction.
 */
export function createSqliteCommitUnit(db: Database.Database): SqliteCommitUnit {
  if (db.inTransaction) throw new Error('the connection is already in a transaction');
  let open: OpenTransaction | undefined;
  let commits = 0;
  let closed = false;
  let scheduled = false;
  // better-sqlite3 turns a transaction function called inside a transaction into a savepoint.
  const savepoint = db.transaction((fn: () => unknown) => fn());

  /** Commits the open transaction; false when it failed (its writers are rejected). */
  const finish = (): boolean => {
    scheduled = false;
    const tx = open;
    if (tx === undefined) return true;
    open = undefined;
    try {
      db.exec('COMMIT');
      commits += 1;
    } catch (err) {
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // The connection is unusable; the next BEGIN fails and its writers deny.
      }
      tx.reject(err instanceof Error ? err : new Error('commit failed'));
      return false;
    }
    tx.resolve();
    return true;
  };

  /**
   * Some errors (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`) make SQLite roll back the whole
   * transaction, not only the savepoint: every write already in it is gone, so its writers are
   * rejected now, and the next write begins a new transaction (instead of autocommitting).
   */
  const abandonIfRolledBack = (err: unknown): void => {
    const tx = open;
    if (tx === undefined || db.inTransaction) return;
    open = undefined;
    tx.reject(err instanceof Error ? err : new Error('the transaction was rolled back'));
  };

  const begin = (): OpenTransaction => {
    abandonIfRolledBack(new Error('the transaction was rolled back'));
    if (closed) throw new Error('the database is closed');
    if (open !== undefined) return open;
    db.exec('BEGIN IMMEDIATE');
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const durable = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Observed here: a writer that never waits does not make the rejection unhandled.
    durable.catch(() => undefined);
    open = { durable, resolve, reject };
    if (!scheduled) {
      scheduled = true;
      // After every write of this turn (and of the I/O callbacks resumed with it): one commit.
      setImmediate(() => void finish());
    }
    return open;
  };

  const unit: SqliteCommitUnit = {
    db,
    stage<T>(fn: () => T): StagedWrite<T> {
      const tx = begin();
      let value: T;
      try {
        value = savepoint(fn) as T;
      } catch (err) {
        abandonIfRolledBack(err);
        throw err;
      }
      return { value, durable: tx.durable };
    },
    async write<T>(fn: () => T, writes?: DurableWrites): Promise<T> {
      const { value, durable } = unit.stage(fn);
      if (writes === undefined) await durable;
      else writes.add(durable);
      return value;
    },
    writeNow<T>(fn: () => T): T {
      if (closed) throw new Error('the database is closed');
      // The open transaction's failure surfaces here: a write after it does not pretend all is well.
      if (!finish()) throw new Error('the open transaction did not commit');
      return db.transaction(fn).immediate();
    },
    get commits() {
      return commits;
    },
    close() {
      if (closed) return;
      finish();
      closed = true;
      db.close();
    },
  };
  return unit;
}
