/**
 * The ledger's single-writer lock for the embedded (SQLite) deployment (SPEC §4 "one writer",
 * L7 ledger protection): a lock held by the kernel, not a pid file. A small SQLite database (by
 * convention `<data>/writer.lock`) is opened with `locking_mode = EXCLUSIVE` and written once
 * (`BEGIN EXCLUSIVE`, raise the epoch, `COMMIT`): SQLite then keeps its exclusive file lock until
 * the connection closes, and the kernel drops it when the process ends in any way, SIGKILL
 * included. There is no window in which two processes both see a dead owner and both take over.
 * A connection that finds the lock taken gets `SQLITE_BUSY` at once (busy timeout 0).
 *
 * The epoch is a counter in the same file, raised under the lock on every acquisition, so it
 * strictly increases across processes and restarts.
 *
 * Two limits of POSIX file locks, which SQLite uses:
 * - they belong to the process: nothing else in the process may open and close the lock file
 *   (closing any descriptor of it drops the lock); only this module opens it;
 * - the kernel does not tell a holder that its lock went away, and it goes away only with the
 *   process (or when the file is deleted and a new one made): {@link WriterLease.lost} of a file
 *   lease never resolves while the process lives.
 */
import Database from 'better-sqlite3';
import {
  WriterLockBusy,
  pauseUnlessAborted,
  pollInterval,
  type AcquireOptions,
  type WriterLease,
  type WriterLock,
} from '../writer-lock.js';

/** A lease on a lock file, which synchronous callers can also release synchronously. */
export interface FileWriterLease extends WriterLease {
  /** Same as {@link WriterLease.release}, done before returning. Idempotent. */
  releaseSync(): void;
}

const EPOCH_TABLE = `CREATE TABLE IF NOT EXISTS writer_epoch (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  epoch INTEGER NOT NULL CHECK (epoch >= 0)
)`;

/** True for `SQLITE_BUSY` and its extended codes: another connection holds the lock. */
function isBusy(err: unknown): boolean {
  return err instanceof Database.SqliteError && err.code.startsWith('SQLITE_BUSY');
}

/** The epoch column of the row `RETURNING epoch` gave (a database row is parsed, not trusted). */
function parseEpoch(row: unknown): number {
  const epoch = (row as { epoch?: unknown } | undefined)?.epoch;
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 1)
    throw new TypeError('writer_epoch.epoch is not a positive safe integer');
  return epoch;
}

/**
 * Takes the lock file at `path` (created when missing; its directory must exist) and raises its
 * epoch, or returns `undefined` at once when another connection, in this process or another,
 * holds it. Throws on any other error (unreadable or foreign file): the caller is not the writer.
 */
export function tryAcquireFileLease(path: string): FileWriterLease | undefined {
  const db = new Database(path, { timeout: 0 });
  let epoch: number;
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('synchronous = FULL');
    db.exec('BEGIN EXCLUSIVE');
    try {
      db.exec(EPOCH_TABLE);
      db.exec('INSERT OR IGNORE INTO writer_epoch (id, epoch) VALUES (1, 0)');
      epoch = parseEpoch(
        db.prepare('UPDATE writer_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch').get(),
      );
      // In exclusive locking mode the lock outlives the transaction: held until close.
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    db.close();
    if (isBusy(err)) return undefined;
    throw err;
  }
  let held = true;
  const releaseSync = (): void => {
    if (!held) return;
    held = false;
    db.close();
  };
  return {
    epoch,
    // The kernel never takes the lock from a live process (see the module comment).
    lost: new Promise<void>(() => undefined),
    isHeld: () => held,
    releaseSync,
    release: () => {
      releaseSync();
      return Promise.resolve();
    },
  };
}

/**
 * The single-writer lock over the lock file at `path` (SPEC §4, L7 ledger protection). A standby
 * (`wait: true`) tries again every `pollMs` and takes over as soon as the holder's process ends.
 * Its leases are {@link FileWriterLease}s.
 */
export function createFileWriterLock(path: string): WriterLock {
  return {
    async acquire(options: AcquireOptions): Promise<FileWriterLease> {
      const interval = pollInterval(options.pollMs);
      for (;;) {
        options.signal?.throwIfAborted();
        const lease = tryAcquireFileLease(path);
        if (lease !== undefined) return lease;
        if (!options.wait) throw new WriterLockBusy();
        await pauseUnlessAborted(interval, options.signal);
      }
    },
  };
}
