/**
 * The ledger's single writer (SPEC §4, L7 ledger protection): the ledger writer assigns `index`
 * and `prev_hash` in memory, which is sound only while exactly one writer appends. A
 * {@link WriterLock} makes "one writer" a lock held by the operating system or the database, not
 * a convention: a second process gets {@link WriterLockBusy} or waits as a standby, and takes
 * over once the holder is gone (stopped, crashed, killed with SIGKILL, or cut off).
 *
 * Every lease carries an epoch, a fencing token that strictly increases with each acquisition:
 * a store that checks the epoch inside each append refuses a writer that lost its lease before
 * it noticed.
 */

/** Options of {@link WriterLock.acquire}. */
export interface AcquireOptions {
  /**
   * `false`: reject at once with {@link WriterLockBusy} when another holder has the lock.
   * `true`: wait as a standby until the holder is gone, then take it.
   */
  readonly wait: boolean;
  /** Stops waiting: the acquisition rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** How often a waiting standby tries again (default 250 ms). */
  readonly pollMs?: number;
}

/** The single-writer lock of one ledger (SPEC §4). */
export interface WriterLock {
  /**
   * Takes the lock and raises the epoch. Rejects with {@link WriterLockBusy} (`wait: false`)
   * when another holder has it, with `signal.reason` when aborted, and with the backend's error
   * when the lock or its epoch cannot be reached.
   */
  acquire(options: AcquireOptions): Promise<WriterLease>;
}

/** The right to append, held until released or lost. */
export interface WriterLease {
  /** Fencing token: greater than the epoch of every earlier lease of the same lock. */
  readonly epoch: number;
  /**
   * Resolves when the lease is lost against the holder's will (the backend can no longer vouch
   * that it is held); the writer must stop appending then. Never resolves on {@link release}.
   */
  readonly lost: Promise<void>;
  /** False once the lease is lost or released. */
  isHeld(): boolean;
  /** Gives the lock up (a waiting standby may take it). Idempotent. */
  release(): Promise<void>;
}

/** `code` of {@link WriterLockBusy}. */
export const WRITER_LOCK_BUSY = 'ERR_WRITER_LOCK_BUSY';

/**
 * Rejection of {@link WriterLock.acquire} with `wait: false` while another holder has the lock
 * (SPEC §4: one writer). Not a denial of a request: the process that gets it is not a writer.
 */
export class WriterLockBusy extends Error {
  readonly code = WRITER_LOCK_BUSY;
  constructor(message = 'the ledger writer lock is held by another holder') {
    super(message);
    this.name = 'WriterLockBusy';
  }
}

/**
 * Resolves after `ms`, or as soon as `signal` aborts: a standby's pause between two attempts,
 * which an abort must cut short (the caller then checks the signal).
 */
export function pauseUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Checks `pollMs` (a caller's mistake is a `TypeError`) and returns it or the default. */
export function pollInterval(pollMs: number | undefined): number {
  const ms = pollMs ?? 250;
  if (!Number.isSafeInteger(ms) || ms < 1) throw new TypeError('pollMs must be a positive integer');
  return ms;
}
