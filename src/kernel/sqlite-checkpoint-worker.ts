/**
 * The checkpoint thread's entry (`sqlite-checkpointer.ts`): a connection of its own on the
 * deployment's database file, which runs `PRAGMA wal_checkpoint(PASSIVE)` each time the commit
 * unit asks, off the event loop that serves every call, and answers SQLite's row or its error.
 * It never writes anything else: a checkpoint copies committed pages from the log into the
 * database, and SQLite syncs the log before and the database after it (this connection's
 * default `synchronous=FULL`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** What the unit asks: one checkpoint. */
export interface CheckpointAsk {
  readonly id: number;
}

/** SQLite's row, or the error of the checkpoint (`code` SQLite's, when it has one). */
export type CheckpointAnswer =
  | { readonly id: number; readonly row: { busy: number; log: number; checkpointed: number } }
  | { readonly id: number; readonly error: string; readonly code?: string };

const port = parentPort;
if (port !== null) {
  const { path } = workerData as { path: string };
  let db: Database.Database | undefined;
  port.on('message', (m: CheckpointAsk) => {
    try {
      db ??= new Database(path, { fileMustExist: true });
      const [row] = db.pragma('wal_checkpoint(PASSIVE)') as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      if (row === undefined) throw new Error('the checkpoint answered no row');
      port.postMessage({ id: m.id, row: { busy: row.busy, log: row.log, checkpointed: row.checkpointed } });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      port.postMessage({
        id: m.id,
        error: err instanceof Error ? err.message : 'the checkpoint failed',
        ...(typeof code === 'string' ? { code } : {}),
      } satisfies CheckpointAnswer);
    }
  });
}
