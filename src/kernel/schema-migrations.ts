/**
 * Versioned schemas of the embedded SQLite stores (SPEC §4 durable, append-only ledger; L7 ledger
 * protection): every store records, in a `failclosed_schema` table of its own file, the versions
 * it has applied, keyed by store name, because several stores share one file (`state.db`).
 *
 * Version 1 of every store is the schema the stores created before versions were recorded,
 * written idempotently (`IF NOT EXISTS`, column checks): a file made by an earlier release has the
 * tables and no version row, and reaches version 1 by running it like an empty file does.
 * Migrations are append-only: a released migration is never edited, a change is a new version.
 *
 * A store whose recorded version is NEWER than the build refuses to open: an older binary must
 * not write into tables whose rules it does not know (fail closed), the rule the PostgreSQL
 * backend applies to its own `failclosed_schema`.
 *
 * The kernel performs no I/O: the store hands in its own connection (better-sqlite3's
 * `Database` fits {@link SchemaConnection}), so the ledger, Execution Layer, Control Plane and
 * Gate share one runner without importing each other or the storage layer.
 */

/** One schema change of one store, applied once, in order, inside the migration transaction. */
export interface SchemaMigration {
  /** 1, 2, 3, … without gaps. */
  readonly version: number;
  readonly name: string;
  /** A SQL script, or a step run over the store's connection (column checks, backfills). */
  readonly up: string | (() => void);
}

/** The part of a synchronous SQLite connection the runner uses. */
export interface SchemaConnection {
  exec(sql: string): unknown;
  prepare(sql: string): { get(...params: unknown[]): unknown; run(...params: unknown[]): unknown };
  readonly inTransaction: boolean;
}

/** What {@link migrateSchema} did: `from` 0 is a store with no version recorded (new, or made before versions). */
export interface SchemaMigrationResult {
  readonly store: string;
  readonly from: number;
  readonly to: number;
  readonly applied: readonly number[];
}

/** A store's recorded schema is newer than this build knows: refused (fail closed). */
export class SchemaVersionError extends RangeError {
  override readonly name = 'SchemaVersionError';
  constructor(
    readonly store: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `store ${store} is at schema version ${found}, newer than this build (${supported}): refusing to open it`,
    );
  }
}

/** The version table: one row per (store, applied version). */
export const SCHEMA_TABLE_SQL = `CREATE TABLE IF NOT EXISTS failclosed_schema (
  store TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  name TEXT NOT NULL,
  applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (store, version)
) STRICT`;

const STORE_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** The newest version `migrations` declares; `TypeError` unless they are 1..n in order with names. */
function latestOf(store: string, migrations: readonly SchemaMigration[]): number {
  if (!STORE_NAME.test(store)) throw new TypeError('store name is malformed');
  migrations.forEach((m, i) => {
    if (m.version !== i + 1 || m.name.length === 0)
      throw new TypeError(`migrations of ${store} must be numbered 1..n in order`);
  });
  if (migrations.length === 0) throw new TypeError(`store ${store} declares no migration`);
  return migrations.length;
}

/** The version recorded for `store` (0 when none); the row is parsed, never trusted. */
function recordedVersion(db: SchemaConnection, store: string): number {
  const row = db.prepare('SELECT MAX(version) AS v FROM failclosed_schema WHERE store = ?').get(store);
  const v = (row as { v?: unknown } | undefined)?.v;
  if (v === null || v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw new RangeError(`failclosed_schema holds a malformed version for ${store}`);
  return v;
}

/**
 * Brings `store` to its newest version in one `BEGIN IMMEDIATE` transaction (the write lock is
 * taken before the version is read, so two processes opening one file never both apply a step):
 * every migration above the recorded version runs, then its row is written; any failure rolls
 * all of them back and throws. Throws {@link SchemaVersionError} when the recorded version is
 * newer than `migrations` know. Must be called outside any transaction, before the store prepares
 * statements over its tables.
 */
export function migrateSchema(
  db: SchemaConnection,
  store: string,
  migrations: readonly SchemaMigration[],
): SchemaMigrationResult {
  const latest = latestOf(store, migrations);
  if (db.inTransaction) throw new TypeError('schema migrations run outside any transaction');
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(SCHEMA_TABLE_SQL);
    const from = recordedVersion(db, store);
    if (from > latest) throw new SchemaVersionError(store, from, latest);
    const record = db.prepare('INSERT INTO failclosed_schema (store, version, name) VALUES (?, ?, ?)');
    const applied: number[] = [];
    for (const m of migrations.slice(from)) {
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up();
      record.run(store, m.version, m.name);
      applied.push(m.version);
    }
    db.exec('COMMIT');
    return Object.freeze({ store, from, to: Math.max(from, latest), applied: Object.freeze(applied) });
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/**
 * For a connection that does not write (read-only inspection and export): the version recorded
 * for `store`, 0 when the file records none. Throws {@link SchemaVersionError} when it is newer
 * than `migrations` know, as {@link migrateSchema} does.
 */
export function checkSchemaVersion(
  db: SchemaConnection,
  store: string,
  migrations: readonly SchemaMigration[],
): number {
  const latest = latestOf(store, migrations);
  const table = db
    .prepare("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = 'failclosed_schema'")
    .get();
  if (table === undefined) return 0;
  const found = recordedVersion(db, store);
  if (found > latest) throw new SchemaVersionError(store, found, latest);
  return found;
}
