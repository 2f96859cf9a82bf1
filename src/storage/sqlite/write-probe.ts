/**
 * The SQLite backend's readiness probe (STYLE "Readiness asks the real dependency, never a
 * flag"; L7 degraded mode): a store is ready only when its file completes a real, durable write
 * and read back. A full disk, a read-only mount, a locked or corrupt database file each fail
 * their named check.
 *
 * The write probe goes to a one-row `readiness_probe` table of the store's own file, on its own
 * connection: it exercises the same file, journal and disk as the store's writes, and never
 * touches the ledger's entries (nothing is appended to the log an auditor verifies).
 */
import Database from 'better-sqlite3';
import type { SqliteCommitUnit } from '../../kernel/index.js';
import type { ReadinessProbe } from '../backend.js';

/** A probe over an SQLite file; `close` releases its connection. */
export interface SqliteWriteProbe extends ReadinessProbe {
  close(): void;
}

const PROBE_TABLE = `CREATE TABLE IF NOT EXISTS readiness_probe (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  at INTEGER NOT NULL
) STRICT`;

/**
 * A probe that commits one row to `readiness_probe` in the SQLite file at `path` and reads it
 * back. `false` on any failure (`SQLITE_FULL`, `SQLITE_READONLY`, `SQLITE_BUSY` past
 * `busyTimeoutMs`, a closed or unopenable file); never throws.
 */
export function createSqliteWriteProbe(
  name: string,
  path: string,
  options: { readonly busyTimeoutMs?: number } = {},
): SqliteWriteProbe {
  let db: Database.Database | undefined;
  let counter = 0;
  const connect = (): Database.Database => {
    if (db !== undefined) return db;
    const opened = new Database(path, { fileMustExist: true });
    try {
      opened.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 1000)}`);
      opened.pragma('synchronous = FULL');
      opened.exec(PROBE_TABLE);
    } catch (err) {
      opened.close();
      throw err;
    }
    db = opened;
    return opened;
  };
  return {
    name,
    check(): boolean {
      try {
        const conn = connect();
        counter += 1;
        const mark = counter;
        conn
          .prepare(
            'INSERT INTO readiness_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
          )
          .run(mark);
        const row = conn.prepare<[], { at: number }>('SELECT at FROM readiness_probe WHERE id = 1').get();
        return row?.at === mark;
      } catch {
        return false;
      }
    },
    close(): void {
      db?.close();
      db = undefined;
    },
  };
}

/**
 * The same probe over the deployment's shared connection (`sqlite-commit.ts`): the row commits
 * in a transaction of its own (`writeNow`, which first commits what is open) and is read back.
 * A second connection to the file would wait on the shared connection's open transaction from
 * inside the same thread.
 */
export function createSqliteUnitProbe(name: string, unit: SqliteCommitUnit): SqliteWriteProbe {
  let counter = 0;
  let ready = false;
  return {
    name,
    check(): boolean {
      try {
        if (!ready) {
          unit.writeNow(() => unit.db.exec(PROBE_TABLE));
          ready = true;
        }
        counter += 1;
        const mark = counter;
        unit.writeNow(() =>
          unit.db
            .prepare(
              'INSERT INTO readiness_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
            )
            .run(mark),
        );
        const row = unit.db.prepare<[], { at: number }>('SELECT at FROM readiness_probe WHERE id = 1').get();
        return row?.at === mark;
      } catch {
        return false;
      }
    },
    close(): void {
      // The connection is its owner's.
    },
  };
}
