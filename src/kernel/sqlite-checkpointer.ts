/**
 * Checkpoints of the embedded deployment's database on a thread of their own
 * (`sqlite-checkpoint-worker.ts`), so that the event loop does not stop for them: a checkpoint
 * of the 32 MiB log copies thousands of pages and syncs the database, 17–46 ms at a time
 * (`sqlite-commit.ts`). The commit unit asks for one when its log passes the threshold, goes on
 * committing meanwhile, and reads SQLite's answer as it would its own checkpoint's; an error, or
 * a thread that fails in any way, stops the unit as a failed checkpoint does.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CheckpointAnswer, CheckpointAsk } from './sqlite-checkpoint-worker.js';

/** The compiled worker entry, beside this module. */
export const CHECKPOINT_WORKER_URL = new URL('./sqlite-checkpoint-worker.js', import.meta.url);

/** SQLite's answer to `PRAGMA wal_checkpoint(PASSIVE)`. */
export interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

/** Runs checkpoints of one database file off the event loop. */
export interface Checkpointer {
  /** One `PASSIVE` checkpoint; rejects with its error, or when the thread failed or was closed. */
  checkpoint(): Promise<CheckpointRow>;
  /** Ends the thread (a checkpoint under way is crash-safe: the log keeps every frame). */
  close(): void;
}

/** True when the compiled worker entry is present (a build; not the TypeScript sources). */
export function checkpointerAvailable(url: URL = CHECKPOINT_WORKER_URL): boolean {
  return existsSync(fileURLToPath(url));
}

/**
 * A {@link Checkpointer} of the database at `path`. Its thread starts with the first checkpoint
 * (a short-lived process, a CLI command, never needs one) and keeps no process alive.
 */
export function createCheckpointer(path: string, url: URL = CHECKPOINT_WORKER_URL): Checkpointer {
  let worker: Worker | undefined;
  let failed: Error | undefined;
  let next = 1;
  const waiting = new Map<number, { resolve(r: CheckpointRow): void; reject(e: Error): void }>();
  const fail = (err: Error): void => {
    failed ??= err;
    const all = [...waiting.values()];
    waiting.clear();
    for (const w of all) w.reject(failed);
  };
  const start = (): Worker => {
    const w = new Worker(url, { workerData: { path } });
    w.unref();
    w.on('message', (a: CheckpointAnswer) => {
      const id = typeof a === 'object' && a !== null ? (a as { id?: unknown }).id : undefined;
      const found = typeof id === 'number' ? waiting.get(id) : undefined;
      // Nothing this side asked for: the thread is not to be trusted with the next checkpoint.
      if (found === undefined) return fail(new Error('the checkpoint thread sent an unexpected message'));
      waiting.delete(id as number);
      if ('row' in a) found.resolve(a.row);
      else found.reject(Object.assign(new Error(a.error), a.code === undefined ? {} : { code: a.code }));
    });
    w.on('error', (err) => fail(err));
    w.on('messageerror', (err) => fail(err));
    w.on('exit', () => fail(new Error('the checkpoint thread exited')));
    return w;
  };
  return {
    checkpoint() {
      if (failed !== undefined) return Promise.reject(failed);
      return new Promise<CheckpointRow>((resolve, reject) => {
        try {
          const w = (worker ??= start());
          const id = next++;
          w.postMessage({ id } satisfies CheckpointAsk);
          waiting.set(id, { resolve, reject });
        } catch (err) {
          reject(err instanceof Error ? err : new Error('the checkpoint could not be asked for'));
        }
      });
    },
    close() {
      fail(new Error('the checkpoint thread is closed'));
      void worker?.terminate().catch(() => undefined);
    },
  };
}
