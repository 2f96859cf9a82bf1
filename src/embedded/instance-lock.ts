/**
 * One open deployment per data directory. Crash recovery records every open request of the
 * ledger as abandoned, which is true only when no other process is still serving them; and the
 * ledger has a single writer (SPEC §4, L7 ledger protection). So opening takes the data
 * directory's writer lock, `<data>/writer.lock` (see `createFileWriterLock`): a file lock held by
 * the kernel for as long as the process lives and dropped when it ends, SIGKILL included, so a
 * crashed owner never blocks the next start and two starters can never both win.
 */
import { join } from 'node:path';
import { pauseUnlessAborted, tryAcquireFileLease } from '../storage/index.js';

/** Lock files held by this process: a second open here is refused with its own message. */
const held = new Set<string>();

/**
 * Takes the data directory's writer lock; returns its release (idempotent). Throws when another
 * process (or another open instance in this process) holds it, or when the lock file is unusable.
 */
export function lockDataDir(root: string): () => void {
  const path = join(root, 'writer.lock');
  if (held.has(path)) throw new Error(`the data directory ${root} is already open in this process`);
  const lease = tryAcquireFileLease(path);
  if (lease === undefined) throw new Error(`the data directory ${root} is in use by another process`);
  held.add(path);
  return () => {
    if (!lease.isHeld()) return;
    lease.releaseSync();
    held.delete(path);
  };
}

/**
 * {@link lockDataDir} for a standby: while another process holds the lock, tries again every
 * `pollMs` (default 250) until it is free, then takes it. Rejects with `signal.reason` when aborted.
 */
export async function waitForDataDir(
  root: string,
  options: { readonly signal?: AbortSignal; readonly pollMs?: number } = {},
): Promise<() => void> {
  const path = join(root, 'writer.lock');
  if (held.has(path)) throw new Error(`the data directory ${root} is already open in this process`);
  for (;;) {
    options.signal?.throwIfAborted();
    const lease = tryAcquireFileLease(path);
    if (lease !== undefined) {
      held.add(path);
      return () => {
        if (!lease.isHeld()) return;
        lease.releaseSync();
        held.delete(path);
      };
    }
    await pauseUnlessAborted(options.pollMs ?? 250, options.signal);
  }
}
