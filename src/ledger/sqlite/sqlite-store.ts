/**
 * SQLite {@link LedgerStore} (the embedded default, SPEC §1/§4): better-sqlite3, WAL, a busy
 * timeout, and append-only triggers (L7 write path controls). A write is acknowledged only once
 * durable ("writes are durable before they are acknowledged", SPEC §4): on its own connection
 * with `synchronous=FULL`, on the deployment's shared connection once the commit unit synced the
 * log (`src/kernel/sqlite-commit.ts`).
 */
import Database from 'better-sqlite3';
import {
  FailclosedError,
  checkSchemaVersion,
  migrateSchema,
  parseJson,
  sha256Hex,
  type SchemaMigration,
  type SqliteCommitUnit,
} from '../../kernel/index.js';
import { entryJson, parseStoredEntry, type LedgerEntry } from '../entry.js';
import type { EvidenceBlob, LedgerStore, StoreHead, StoredCheckpoint } from '../store.js';
import { DERIVED_SCHEMA, backfillOpenRequests, prepareDerived, type DerivedTables } from './derived.js';

/** Options for {@link createSqliteLedgerStore}. */
export interface SqliteLedgerStoreOptions {
  /** Database file path (`:memory:` only for tests that need no durability). */
  readonly path: string;
  /** How long a write waits for another connection's lock before failing. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
  /** Open read-only (export and inspection tools). Default false. */
  readonly readonly?: boolean;
  /**
   * The deployment's shared connection (`sqlite-commit.ts`): the store opens no file of its own
   * (`path` is ignored), its writes commit together with the other stores', and it offers
   * {@link LedgerStore.stageBatch}. Closing the store leaves the connection open.
   */
  readonly unit?: SqliteCommitUnit;
}

/** The SQLite store; `database` is the underlying handle, exposed for operations tooling and fault-injection tests only. */
export interface SqliteLedgerStore extends LedgerStore {
  readonly database: Database.Database;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY,
  entry_hash TEXT NOT NULL,
  type TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  body TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS entries_trace ON entries(trace_id, idx);
CREATE INDEX IF NOT EXISTS entries_request ON entries(request_id, idx);
CREATE INDEX IF NOT EXISTS entries_tenant ON entries(tenant, idx);
CREATE INDEX IF NOT EXISTS entries_issued_jti ON entries(json_extract(body, '$.payload.jti'), idx)
  WHERE type = 'envelope.issued';
CREATE INDEX IF NOT EXISTS entries_finalized_decision
  ON entries(json_extract(body, '$.payload.decision_id'), idx) WHERE type = 'approval.finalized';
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
  BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
  BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TABLE IF NOT EXISTS checkpoints (
  size INTEGER PRIMARY KEY,
  root_hash TEXT NOT NULL,
  note TEXT NOT NULL,
  at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS evidence (
  sha256 TEXT PRIMARY KEY,
  media_type TEXT NOT NULL,
  body BLOB NOT NULL
) STRICT;
`;

/** The name under which the ledger records its schema version in `failclosed_schema`. */
const LEDGER_SCHEMA_STORE = 'ledger';

/**
 * The ledger's schema versions (append-only). Version 1 is the schema of the releases before
 * versions were recorded, with their one upgrade (the `open_requests` backfill); it keeps the
 * append-only triggers of the L7 write path controls.
 */
function ledgerMigrations(db: Database.Database): readonly SchemaMigration[] {
  return [
    {
      version: 1,
      name: 'entries, checkpoints, evidence, tree snapshot, open requests',
      up: () => {
        db.exec(SCHEMA);
        db.exec(DERIVED_SCHEMA);
        backfillOpenRequests(db);
      },
    },
    {
      // The file now holds every store of the embedded deployment (`storage/sqlite/backend.ts`):
      // a build from before refuses it rather than opening empty stores beside it.
      version: 2,
      name: 'one-file layout: every store beside the ledger',
      up: MERGED_TABLE_SQL,
    },
  ];
}

/** Which older files were merged into this one (`storage/sqlite/merge-files.ts`). */
export const MERGED_TABLE_SQL = `CREATE TABLE IF NOT EXISTS failclosed_merged (
  file TEXT PRIMARY KEY NOT NULL,
  merged_at TEXT NOT NULL
) STRICT`;

interface EntryRow {
  readonly idx: number;
  readonly body: string;
}
interface CheckpointRow {
  readonly size: number;
  readonly root_hash: string;
  readonly note: string;
  readonly at: string;
}
interface EvidenceRow {
  readonly sha256: string;
  readonly media_type: string;
  readonly body: Buffer;
}

// Database rows are a trust boundary: parse and re-hash every row read.
function toEntry(row: EntryRow): LedgerEntry {
  return parseStoredEntry(parseJson(row.body, { maxBytes: 16 * 1024 * 1024 }), row.idx);
}

function toCheckpoint(row: CheckpointRow): StoredCheckpoint {
  if (
    typeof row.size !== 'number' ||
    typeof row.root_hash !== 'string' ||
    typeof row.note !== 'string' ||
    typeof row.at !== 'string'
  )
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'stored checkpoint is malformed');
  return Object.freeze({ size: row.size, root_hash: row.root_hash, note: row.note, at: row.at });
}

function toEvidence(row: EvidenceRow): EvidenceBlob {
  const body = Buffer.from(row.body);
  if (sha256Hex(body) !== row.sha256)
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'stored evidence is altered');
  return Object.freeze({ sha256: row.sha256, media_type: row.media_type, body });
}

/**
 * Opens (creating if needed) a SQLite ledger store, bringing its schema to the newest version
 * (a read-only open only checks it). Throws when the file cannot be opened or configured, or
 * records a schema newer than this build (`SchemaVersionError`); the ledger writer maps that to
 * `ERR_LEDGER_UNAVAILABLE`.
 */
export function createSqliteLedgerStore(opts: SqliteLedgerStoreOptions): SqliteLedgerStore {
  const unit = opts.unit;
  const ro = unit === undefined && opts.readonly === true;
  const db = unit?.db ?? new Database(opts.path, { readonly: ro, fileMustExist: ro });
  try {
    if (unit !== undefined) migrateSchema(db, LEDGER_SCHEMA_STORE, ledgerMigrations(db));
    else {
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
      if (ro) checkSchemaVersion(db, LEDGER_SCHEMA_STORE, ledgerMigrations(db));
      else {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        migrateSchema(db, LEDGER_SCHEMA_STORE, ledgerMigrations(db));
      }
    }
  } catch (err) {
    if (unit === undefined) db.close();
    throw err;
  }
  const derived: DerivedTables | undefined = ro ? undefined : prepareDerived(db);
  const insert = db.prepare(
    'INSERT INTO entries (idx, entry_hash, type, trace_id, request_id, tenant, body) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const count = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM entries');
  const maxIdx = db.prepare<[], { m: number | null }>('SELECT MAX(idx) AS m FROM entries');
  const byIdx = db.prepare<[number], EntryRow>('SELECT idx, body FROM entries WHERE idx = ?');
  const range = db.prepare<[number, number], EntryRow>(
    'SELECT idx, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx',
  );
  const byTrace = db.prepare<[string], EntryRow>(
    'SELECT idx, body FROM entries WHERE trace_id = ? ORDER BY idx',
  );
  const byRequest = db.prepare<[string], EntryRow>(
    'SELECT idx, body FROM entries WHERE request_id = ? ORDER BY idx',
  );
  const byTenant = db.prepare<[string, number, number], EntryRow>(
    'SELECT idx, body FROM entries WHERE tenant = ? AND idx >= ? ORDER BY idx LIMIT ?',
  );
  // Partial expression indexes (SCHEMA): the executor's issuance and approval lookups stay
  // logarithmic however long the ledger grows.
  const issuedByJti = db.prepare<[string], EntryRow>(
    `SELECT idx, body FROM entries WHERE type = 'envelope.issued'
       AND json_extract(body, '$.payload.jti') = ? ORDER BY idx`,
  );
  const finalizedByDecision = db.prepare<[string], EntryRow>(
    `SELECT idx, body FROM entries WHERE type = 'approval.finalized'
       AND json_extract(body, '$.payload.decision_id') = ? ORDER BY idx`,
  );
  const envelopeContext = db.transaction((index: number, jti: string, decisionId: string) => {
    const d = byIdx.get(index);
    return {
      decision: d === undefined ? undefined : toEntry(d),
      issued: issuedByJti.all(jti).map(toEntry),
      finalized: finalizedByDecision.all(decisionId).map(toEntry),
    };
  });
  const putCp = db.prepare(
    'INSERT INTO checkpoints (size, root_hash, note, at) VALUES (?, ?, ?, ?) ON CONFLICT(size) DO NOTHING',
  );
  const allCp = db.prepare<[], CheckpointRow>(
    'SELECT size, root_hash, note, at FROM checkpoints ORDER BY size',
  );
  const lastCp = db.prepare<[], CheckpointRow>(
    'SELECT size, root_hash, note, at FROM checkpoints ORDER BY size DESC LIMIT 1',
  );
  const putEv = db.prepare(
    'INSERT INTO evidence (sha256, media_type, body) VALUES (?, ?, ?) ON CONFLICT(sha256) DO NOTHING',
  );
  const getEv = db.prepare<[string], EvidenceRow>(
    'SELECT sha256, media_type, body FROM evidence WHERE sha256 = ?',
  );

  const appendTx = db.transaction(
    (entries: readonly LedgerEntry[], evidence: readonly EvidenceBlob[], ifOpen?: number) => {
      // A conditional append (one outcome record, or an issuance): only while its request is open, in this transaction.
      if (ifOpen !== undefined) {
        const o = derived?.openAmong([ifOpen])[0];
        const e = entries[0];
        if (o === undefined || e === undefined || o.request_id !== e.request_id || o.trace_id !== e.trace_id)
          throw new FailclosedError('ERR_LEDGER_REQUEST_CLOSED', 'the request is no longer open');
      }
      for (const b of evidence) putEv.run(b.sha256, b.media_type, b.body);
      if (entries.length === 0) return;
      const next = (maxIdx.get()?.m ?? -1) + 1;
      entries.forEach((e, i) => {
        // Stores never assign indices; they refuse anything but the next contiguous ones.
        if (e.index !== next + i)
          throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'batch does not continue the ledger head');
        insert.run(e.index, e.entry_hash, e.type, e.trace_id, e.request_id, e.tenant, entryJson(e));
      });
      // Same transaction: the open-request index never disagrees with the entries.
      derived?.track(entries);
    },
  );
  // IMMEDIATE takes the write lock up front, so a locked database fails before any insert.
  const appendImmediate = (entries: readonly LedgerEntry[], evidence: readonly EvidenceBlob[]): void =>
    appendTx.immediate(entries, evidence);

  // better-sqlite3 is synchronous: run each call so that a throw becomes a rejection.
  const later = <T>(fn: () => T): Promise<T> => new Promise<T>((resolve) => resolve(fn()));
  /** A write, durable when it resolves: its own commit, or the shared connection's next one. */
  const durably = <T>(fn: () => T): Promise<T> => (unit === undefined ? later(fn) : unit.write(fn));

  return {
    backend: 'sqlite',
    database: db,
    appendBatch: (entries, evidence = []) =>
      entries.length === 0 && evidence.length === 0
        ? Promise.resolve()
        : unit === undefined
          ? later(() => appendImmediate(entries, evidence))
          : durably(() => appendTx(entries, evidence)),
    ...(unit === undefined
      ? {}
      : {
          stageBatch: (
            entries: readonly LedgerEntry[],
            evidence: readonly EvidenceBlob[] = [],
            ifOpen?: number,
          ) => unit.stage(() => appendTx(entries, evidence, ifOpen)),
        }),
    head: () =>
      later((): StoreHead => {
        // A stopped connection may hold entries never made durable: nothing is read as the head.
        if (unit?.stopped !== undefined) throw unit.stopped;
        const size = (maxIdx.get()?.m ?? -1) + 1;
        if ((count.get()?.n ?? 0) !== size)
          throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'ledger has a gap');
        const last = size === 0 ? undefined : byIdx.get(size - 1);
        return { size, last: last === undefined ? undefined : toEntry(last) };
      }),
    tipSize: () =>
      later(() => {
        if (unit?.stopped !== undefined) throw unit.stopped;
        return (maxIdx.get()?.m ?? -1) + 1;
      }),
    readRange: (from, to) => later(() => range.all(from, to).map(toEntry)),
    entry: (index) =>
      later(() => {
        const row = byIdx.get(index);
        return row === undefined ? undefined : toEntry(row);
      }),
    // One deferred (read) transaction: the three lookups see the same snapshot.
    readEnvelopeContext: (q) => later(() => envelopeContext.deferred(q.index, q.jti, q.decision_id)),
    readByTrace: (traceId) => later(() => byTrace.all(traceId).map(toEntry)),
    readByRequest: (requestId) => later(() => byRequest.all(requestId).map(toEntry)),
    readByTenant: (tenant, o) =>
      later(() => byTenant.all(tenant, o?.from ?? 0, o?.limit ?? 1000).map(toEntry)),
    putCheckpoint: (cp) =>
      durably(() => {
        putCp.run(cp.size, cp.root_hash, cp.note, cp.at);
      }),
    checkpoints: () => later(() => allCp.all().map(toCheckpoint)),
    latestCheckpoint: () =>
      later(() => {
        const row = lastCp.get();
        return row === undefined ? undefined : toCheckpoint(row);
      }),
    putEvidence: (blob) =>
      durably(() => {
        putEv.run(blob.sha256, blob.media_type, blob.body);
      }),
    getEvidence: (sha) =>
      later(() => {
        const row = getEv.get(sha);
        return row === undefined ? undefined : toEvidence(row);
      }),
    ...(derived === undefined
      ? {}
      : {
          openRequests: () => later(() => derived.openRequests()),
          openAmong: (accepted: readonly number[]) => later(() => derived.openAmong(accepted)),
          treeSnapshot: () => later(() => derived.treeSnapshot()),
          // Under the shared connection's open transaction its `immediate` is a savepoint.
          putTreeSnapshot: (snapshot) => durably(() => derived.putTreeSnapshot(snapshot)),
        }),
    // The shared connection is its owner's to close.
    close: () => later(() => void (unit === undefined ? db.close() : undefined)),
  };
}
