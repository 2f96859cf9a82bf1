/**
 * One SQLite connection shared by every store of an embedded deployment, with commits shared
 * across them (SPEC §8 "durable writes": one fsync ≈ 0.28 ms whatever the transaction holds).
 *
 * A write runs at once, inside the connection's open write transaction (begun by the first write
 * of an event-loop turn, in a savepoint of its own: a write that throws undoes only itself), and
 * its caller learns its result at once; the transaction commits after every write of the turn
 * has run (`setImmediate`). {@link SqliteCommitUnit.stage} hands back the result and the commit's
 * promise: nothing that depends on the write may leave the process before that promise resolves
 * (`durability.ts`). A failed commit rolls back every write of its transaction and rejects them
 * all.
 *
 * **Durable off the event loop.** The connection runs WAL with `synchronous=NORMAL`: `COMMIT`
 * appends the transaction's frames to the write-ahead log without waiting for the disk, and the
 * unit then makes the log durable itself with an `fsync` of the `-wal` file in libuv's thread
 * pool (and, once per log file, of its directory). A commit's promise resolves only once an
 * `fsync` that began after its `COMMIT` succeeded; meanwhile the event loop goes on serving the
 * calls in flight and staging the next transaction, and one `fsync` covers every commit before
 * it. The `fsync`s go through descriptors kept on the log file for as long as it is the same
 * file: Linux reports an `fsync` error once per open file, so a descriptor opened afresh after an
 * error seen elsewhere would report success over lost pages (two of them, opened together: see
 * `log` below). Checkpoints run from the unit once
 * the log passes a threshold, 32 MiB by default (`wal_autocheckpoint=0`: SQLite's automatic
 * checkpoint ignores its own errors); SQLite syncs the log before a checkpoint and the database
 * after it (`synchronous=NORMAL` in WAL mode), so the log never loses a frame the database lacks.
 * SQLite reuses the log from its start after a complete checkpoint without shrinking the file, so
 * the file's size alone says nothing of what the log holds: `journal_size_limit` truncates the
 * file to the threshold when the log restarts, and a checkpoint runs when the file grows past that
 * (measured here at a 4 MiB threshold: with the size alone, every commit after the log's first
 * 4 MiB checkpointed, an `fsync` of the database on the event loop each time, 15% of the gate's
 * time). A checkpoint copies each page once whatever number of commits rewrote it, so a larger
 * log does less work in all: a governed load rewrites the same index leaves and counters at every
 * commit (measured here at 32 governed clients: at SQLite's default of 4 MiB checkpoints took 6%
 * of the event loop; at 32 MiB, 3%, and in three alternating pairs of 20 s runs the gate served
 * 6–15% more calls per second, at 2–9% less CPU per call). The price is fewer, longer pauses of
 * the event loop: on a load of appends and hot counters, a median of 17–19 ms per checkpoint at
 * 32 MiB against 6–8 ms at 4 MiB (the longest 26–28 ms against 10–30 ms); 17–46 ms in the bench.
 * Before, `COMMIT` with `synchronous=FULL` held the event loop for the whole `fsync` (measured
 * here: 0.25–0.29 ms per commit against 0.05 ms, three commits per governed call, and several
 * milliseconds each while the disk is busy).
 *
 * **A failed `fsync` stops the unit**, and so does a failed checkpoint or an I/O error at
 * `COMMIT`. After a failed `fsync` the kernel may have dropped the log's dirty pages, so what is
 * on disk is unknown (PostgreSQL's "fsyncgate" answer: stop). Every commit awaiting it is
 * rejected, every later write and `writeNow` throws, and the ledger refuses to read its head from
 * the connection ({@link SqliteCommitUnit.stopped}), so every call denies until the deployment is
 * restarted. A restart does not trust the log's pages as it finds them: after a failed `fsync`
 * Linux keeps the pages it could not write in memory, marked clean, so the next process reads the
 * rejected commits as part of the log, and its own `fsync`s never write those pages; once they
 * are evicted, the log on disk has a hole, and a crash then loses every commit after it. So the
 * unit, before anything is appended, copies the whole log into the database, syncs it and
 * restarts the log empty (`wal_checkpoint(TRUNCATE)`), and refuses to start when another
 * connection holds part of the log back. The rejected commits that were read become durable
 * then, as commits nobody acknowledged (the ledger's recovery closes their requests; a synchronous
 * write reported failed takes effect).
 *
 * A committed transaction is visible to other connections (a separate export reader) before its
 * `fsync` ends. Nothing on this connection acts on it before: the ledger writer's committed head,
 * which bounds exports and checkpoints, advances only on the commit's promise.
 *
 * Reads on the connection see the writes of the open transaction, other calls' included: a
 * single-use claim or a counter therefore sees every earlier claim, committed or not (a claim
 * whose commit then fails only made a later one deny: fail closed). Writes others must never read
 * before they are durable (governance, keys, policy, approvals) use {@link SqliteCommitUnit.writeNow}:
 * the open transaction commits first, then the write commits in a transaction of its own and the
 * log is synced before `writeNow` returns, all synchronously, so no reader on the connection sees
 * it undurable.
 *
 * Only this module begins or ends transactions on the connection; stores' own `db.transaction`
 * functions run inside it as savepoints (better-sqlite3 nests them).
 */
import { closeSync, fstatSync, fsync, fsyncSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import type { DurableWrites } from './durability.js';
import type { Observer } from './observe.js';

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
  /** Checkpoints run so far. */
  readonly checkpoints: number;
  /**
   * Set once the unit stopped (a failed `fsync`, checkpoint or I/O error at commit): every write
   * throws it, and readers that would act on what the connection holds refuse too.
   */
  readonly stopped: Error | undefined;
  /** Commits what is open, then closes the connection; later writes throw. */
  close(): void;
}

interface OpenTransaction {
  /** Writes staged in it, and `performance.now()` at its `COMMIT` (observed only). */
  writes: number;
  committedAt: number;
  readonly durable: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * File descriptors that make written data durable: `sync` runs `fsync` in libuv's thread pool,
 * `syncNow` on the calling thread. Tests wrap {@link fileSync} to fail or to hold it.
 */
export interface FileSync {
  open(path: string): number;
  sync(fd: number): Promise<void>;
  syncNow(fd: number): void;
  close(fd: number): void;
}

/** The real `open`/`fsync`/`close`. */
export const fileSync: FileSync = Object.freeze({
  open: (path: string) => openSync(path, 'r'),
  sync: (fd: number) =>
    new Promise<void>((resolve, reject) => fsync(fd, (err) => (err === null ? resolve() : reject(err)))),
  syncNow: (fd: number) => fsyncSync(fd),
  close: (fd: number) => closeSync(fd),
});

/**
 * Log bytes past which a commit checkpoints by default. SQLite's own default is 1000 pages of
 * 4 KiB, at which a governed load checkpointed about every 100 calls, copying the same hot pages
 * (index leaves, counters) into the database and syncing it each time (module doc).
 */
export const DEFAULT_CHECKPOINT_BYTES = 32 * 1024 * 1024;
/** Log file size past which every commit checkpoints: this, or twice the threshold if larger. */
const MAX_CHECKPOINT_AT = 64 * 1024 * 1024;

/** SQLite errors after which what a commit left on disk is unknown. */
const AMBIGUOUS = /^SQLITE_(IOERR|CORRUPT|NOTADB)/;

/** Options of {@link createSqliteCommitUnit}. */
export interface SqliteCommitOptions {
  /** How the write-ahead log (and its directory) is made durable; default {@link fileSync}. */
  readonly fileSync?: FileSync;
  /**
   * Told, per transaction, how many writes it held and the seconds from its `COMMIT` until its
   * log `fsync` ended (the ledger's batch size and commit latency on SQLite, where every store
   * shares the transaction), or that it failed.
   */
  readonly observer?: Pick<Observer, 'ledgerBatch'>;
  /**
   * Log bytes past which a commit checkpoints, and the size the log file is truncated back to
   * when it restarts; default {@link DEFAULT_CHECKPOINT_BYTES}. At least 64 KiB.
   */
  readonly checkpointBytes?: number;
}

/**
 * Takes charge of `db`'s transactions and durability: `db` must be a file in WAL mode (the
 * caller's pragma) and not in a transaction; the unit sets `synchronous=NORMAL` and syncs the log
 * itself.
 */
export function createSqliteCommitUnit(
  db: Database.Database,
  options: SqliteCommitOptions = {},
): SqliteCommitUnit {
  if (db.inTransaction) throw new Error('the connection is already in a transaction');
  if (String(db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal')
    throw new Error('the connection is not in WAL mode');
  const CHECKPOINT_BYTES = options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
  if (!Number.isSafeInteger(CHECKPOINT_BYTES) || CHECKPOINT_BYTES < 64 * 1024)
    throw new RangeError('checkpointBytes must be an integer of at least 64 KiB');
  const checkpointCap = Math.max(MAX_CHECKPOINT_AT, 2 * CHECKPOINT_BYTES);
  db.pragma('synchronous = NORMAL');
  // Checkpoints run where their failure is seen (`finish`): SQLite's automatic one ignores errors.
  db.pragma('wal_autocheckpoint = 0');
  // The log restarts from its beginning after a complete checkpoint; the file shrinks back to this.
  db.pragma(`journal_size_limit = ${CHECKPOINT_BYTES}`);
  // Before anything is appended: the log as found, copied into the database and synced, and
  // restarted empty (module doc, a restart after a stop).
  const [start] = db.pragma('wal_checkpoint(TRUNCATE)') as {
    busy: number;
    log: number;
    checkpointed: number;
  }[];
  if (start === undefined || start.busy !== 0 || start.log !== start.checkpointed)
    throw new Error(
      'the write-ahead log could not be copied into the database at start (another connection holds it)',
    );
  const files = options.fileSync ?? fileSync;
  const observer = options.observer;
  const walPath = `${db.name}-wal`;
  const dirPath = dirname(db.name);
  let open: OpenTransaction | undefined;
  let commits = 0;
  let checkpoints = 0;
  /** The log file's size past which a commit checkpoints, and its size when last seen. */
  let checkpointAt = CHECKPOINT_BYTES;
  let lastLogSize = 0;
  let closed = false;
  let scheduled = false;
  /** Set once the unit stopped: nothing is written any more (module doc). */
  let failed: Error | undefined;
  /** Committed transactions whose log `fsync` has not begun. */
  let unsynced: OpenTransaction[] = [];
  /**
   * The `fsync` under way in the pool (one at a time) and the transactions it makes durable,
   * emptied when a synchronous one covered them first (it is still under way: no other starts).
   */
  let syncing: { txs: OpenTransaction[] } | undefined;
  /**
   * Two descriptors kept on the log for as long as it is the same file, opened together: `fd`
   * for the pool's `fsync`, `fdNow` for the synchronous one. Linux reports a writeback error once
   * per open file: to the first `fsync` of that file to see it, whichever it is. One opened after
   * an error elsewhere would not see it at all; two `fsync`s on one descriptor at once, the pool's
   * and a synchronous one, would leave the second a success over lost pages while the first's
   * failure is still on its way. Each of the two sees every error that comes after their opening,
   * and neither runs two `fsync`s at once. `dirSynced`: the log's directory entry is known durable.
   */
  let log: { fd: number; fdNow: number; ino: number; dirSynced: boolean } | undefined;
  // better-sqlite3 turns a transaction function called inside a transaction into a savepoint.
  const savepoint = db.transaction((fn: () => unknown) => fn());

  /** Stops the unit (module doc); returns the error every later write throws. */
  const stop = (err: unknown): Error => {
    const stopped = (failed ??= new Error(
      `the write-ahead log could not be made durable (${err instanceof Error ? err.message : 'fsync failed'}); restart the deployment`,
    ));
    const waiting = [...(syncing?.txs ?? []), ...unsynced];
    syncing = undefined;
    unsynced = [];
    for (const tx of waiting) observer?.ledgerBatch(tx.writes, 0, true);
    for (const tx of waiting) tx.reject(stopped);
    return stopped;
  };

  const closeLog = (): void => {
    if (log === undefined) return;
    const { fd, fdNow } = log;
    log = undefined;
    try {
      files.close(fd);
    } finally {
      files.close(fdNow);
    }
  };

  /** The descriptors on the current log file (reopened when SQLite replaced the file). */
  const logFile = (): { fd: number; fdNow: number; ino: number; dirSynced: boolean } => {
    const ino = statSync(walPath).ino;
    if (log !== undefined && log.ino === ino) return log;
    closeLog();
    const fd = files.open(walPath);
    let fdNow: number;
    try {
      fdNow = files.open(walPath);
    } catch (err) {
      files.close(fd);
      throw err;
    }
    if (fstatSync(fd).ino !== ino || fstatSync(fdNow).ino !== ino) {
      files.close(fd);
      files.close(fdNow);
      throw new Error('the write-ahead log was replaced while it was opened');
    }
    log = { fd, fdNow, ino, dirSynced: false };
    return log;
  };

  /** Syncs the log's directory once per log file. */
  const syncDir = async (f: { dirSynced: boolean }): Promise<void> => {
    if (f.dirSynced) return;
    const fd = files.open(dirPath);
    try {
      await files.sync(fd);
    } finally {
      files.close(fd);
    }
    f.dirSynced = true;
  };
  const syncDirNow = (f: { dirSynced: boolean }): void => {
    if (f.dirSynced) return;
    const fd = files.open(dirPath);
    try {
      files.syncNow(fd);
    } finally {
      files.close(fd);
    }
    f.dirSynced = true;
  };

  /** Starts the next `fsync` of the log when none is under way. */
  const syncLater = (): void => {
    if (syncing !== undefined || unsynced.length === 0 || failed !== undefined) return;
    const batch = { txs: unsynced };
    unsynced = [];
    syncing = batch;
    void (async () => {
      const f = logFile();
      await files.sync(f.fd);
      await syncDir(f);
    })().then(
      () => {
        if (syncing !== batch) return;
        syncing = undefined;
        if (observer !== undefined) {
          const now = performance.now();
          for (const tx of batch.txs) observer.ledgerBatch(tx.writes, (now - tx.committedAt) / 1000, false);
        }
        for (const tx of batch.txs) tx.resolve();
        syncLater();
      },
      // Whoever's batch it was: a failed fsync means pages may be lost (module doc).
      (err: unknown) => {
        if (!closed) stop(err);
      },
    );
  };

  /** Syncs the log now (a `writeNow`, a close): every commit so far is durable on return. */
  const syncNow = (): void => {
    if (failed !== undefined) throw failed;
    const waiting = [...(syncing?.txs ?? []), ...unsynced];
    try {
      const f = logFile();
      files.syncNow(f.fdNow);
      syncDirNow(f);
    } catch (err) {
      throw stop(err);
    }
    // The pool's fsync still under way made nothing more durable than this one did; it stays the
    // one under way (no second starts beside it), and its failure still stops the unit.
    if (syncing !== undefined) syncing.txs = [];
    unsynced = [];
    for (const tx of waiting) tx.resolve();
  };

  /** Copies the log into the database once it is large, seeing any failure (module doc). */
  const checkpointIfLarge = (): void => {
    if (log === undefined) return;
    const size = fstatSync(log.fd).size;
    // Smaller than last seen: the log restarted after a complete checkpoint and was truncated.
    if (size < lastLogSize) checkpointAt = CHECKPOINT_BYTES;
    lastLogSize = size;
    // Past the cap (readers holding the log back for long), every commit checkpoints.
    if (size <= Math.min(checkpointAt, checkpointCap)) return;
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    checkpoints += 1;
    // Complete: the log restarts at the next commit, from its beginning, whether or not the file
    // shrinks; the next checkpoint is due once it has outgrown the file. Incomplete (a reader
    // holds the log back): the next one waits for another quarter.
    const complete = r !== undefined && r.busy === 0 && r.log === r.checkpointed;
    checkpointAt = complete ? Math.max(CHECKPOINT_BYTES, size) : size + CHECKPOINT_BYTES / 4;
  };

  /** Commits the open transaction; false when it failed (its writers are rejected). */
  const finish = (): boolean => {
    scheduled = false;
    const tx = open;
    if (tx === undefined) return true;
    open = undefined;
    if (failed !== undefined) {
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // The connection is unusable; nothing is written any more anyway.
      }
      tx.reject(failed);
      return false;
    }
    if (observer !== undefined) tx.committedAt = performance.now();
    try {
      db.exec('COMMIT');
      commits += 1;
    } catch (err) {
      try {
        if (db.inTransaction) db.exec('ROLLBACK');
      } catch {
        // The connection is unusable; the next BEGIN fails and its writers deny.
      }
      const e = err instanceof Error ? err : new Error('commit failed');
      observer?.ledgerBatch(tx.writes, 0, true);
      tx.reject(e);
      // An I/O error at commit leaves the log's state unknown: stop.
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && AMBIGUOUS.test(code)) stop(err);
      return false;
    }
    unsynced.push(tx);
    try {
      checkpointIfLarge();
    } catch (err) {
      stop(err);
      return false;
    }
    syncLater();
    return true;
  };

  /**
   * Some errors (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`) make SQLite roll back the whole
   * transaction, not only the savepoint: every write already in it is gone, so its writers are
   * rejected now, and the next write begins a new transaction (instead of autocommitting).
   */
  const abandonIfRolledBack = (err?: unknown): void => {
    const tx = open;
    if (tx === undefined || db.inTransaction) return;
    open = undefined;
    tx.reject(err instanceof Error ? err : new Error('the transaction was rolled back'));
  };

  const begin = (): OpenTransaction => {
    // The error is built only when there is a rolled-back transaction to reject: building one
    // (its stack captured) on every write was 3% of the gate's CPU under load.
    abandonIfRolledBack();
    if (closed) throw new Error('the database is closed');
    if (failed !== undefined) throw failed;
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
    open = { writes: 0, committedAt: 0, durable, resolve, reject };
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
      tx.writes += 1;
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
      if (failed !== undefined) throw failed;
      // The open transaction's failure surfaces here: a write after it does not pretend all is well.
      if (!finish()) throw new Error('the open transaction did not commit');
      let value: T;
      try {
        value = db.transaction(fn).immediate();
      } catch (err) {
        // As at a shared commit: after an I/O error what the log holds is unknown (module doc).
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'string' && AMBIGUOUS.test(code)) throw stop(err);
        throw err;
      }
      syncNow();
      return value;
    },
    get commits() {
      return commits;
    },
    get checkpoints() {
      return checkpoints;
    },
    get stopped() {
      return failed;
    },
    close() {
      if (closed) return;
      finish();
      try {
        if (failed === undefined && commits > 0) syncNow();
      } finally {
        closed = true;
        try {
          closeLog();
        } finally {
          db.close();
        }
      }
    },
  };
  return unit;
}
