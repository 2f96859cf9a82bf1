/**
 * The connection a SQLite store opens its tables on (docs/storage.md "One connection, shared
 * commits"): the deployment's one connection (`unit`, shared; the store never closes it), or one
 * of its own that `open` makes over the store's file, with the settings every store needs (WAL,
 * `synchronous=FULL`, a busy timeout). Either way the store's tables are migrated to its
 * versions before it prepares a statement; a connection of its own is closed again when that
 * fails. `open` is the caller's, so that the kernel loads no native module.
 */
import type Database from 'better-sqlite3';
import { migrateSchema } from './schema-migrations.js';
import type { SchemaMigration } from './schema-migrations.js';
import type { SqliteCommitUnit } from './sqlite-commit.js';

/** What {@link openStoreConnection} needs to know of the store. */
export interface StoreConnectionOptions {
  /** The deployment's shared connection; absent, the store opens its own with `open`. */
  readonly unit?: SqliteCommitUnit | undefined;
  /** The store's name in `failclosed_schema`. */
  readonly store: string;
  /** Its migrations (a function when they depend on what the file already holds). */
  readonly migrations: readonly SchemaMigration[] | ((db: Database.Database) => readonly SchemaMigration[]);
  /** A connection of its own waits this long for another's lock (ms); default 2000. */
  readonly busyTimeoutMs?: number;
}

/** The store's connection, its tables migrated (module doc). */
export function openStoreConnection(
  open: () => Database.Database,
  options: StoreConnectionOptions,
): Database.Database {
  const { unit } = options;
  const db = unit?.db ?? open();
  try {
    if (unit === undefined) {
      db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 2000)}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
    }
    const m = options.migrations;
    migrateSchema(db, options.store, typeof m === 'function' ? m(db) : m);
  } catch (err) {
    if (unit === undefined) db.close();
    throw err;
  }
  return db;
}
