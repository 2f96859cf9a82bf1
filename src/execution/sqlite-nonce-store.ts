/**
 * SQLite {@link NonceStore} (embedded deployment). One atomic `INSERT … ON CONFLICT DO NOTHING`
 * on a `jti` primary key decides; "one row changed" is the only `'fresh'` (SPEC §8). A void is
 * the same statement with `voided = 1`, so a void and a consumption of one `jti` have exactly
 * one winner; the loser reads the winner's row (which never changes) in the same transaction. WAL mode
 * with `synchronous=FULL`: a consumption is durable before it is acknowledged, and several
 * processes may share the file.
 *
 * Group commit: consumptions arriving in the same event-loop turn run as individual statements
 * inside ONE `BEGIN IMMEDIATE` transaction (one fsync for the batch). Each caller's verdict is
 * its own statement's change count, released only after the COMMIT returned; a failed
 * transaction rejects every caller in it (SPEC §8 durable writes, OE-INV-017).
 *
 * This file has no runtime imports besides better-sqlite3, the import-free `group-commit.ts` and
 * the kernel's import-free schema runner, so that the cross-process concurrency test can load
 * them on their own.
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { openStoreConnection } from '../kernel/index.js';
import type { Clock, DurableWrites, SchemaMigration, SqliteCommitUnit } from '../kernel/index.js';
import { createGroupCommit } from './group-commit.js';
import type { NonceConsumption, NonceStore } from './nonce-store.js';

/** Options for {@link createSqliteNonceStore}. */
export interface SqliteNonceStoreOptions {
  /** Database file path. Shared by every executor process on the host. */
  readonly path: string;
  /** How long a writer waits for the file lock before the call fails (ms). Default 2000. */
  readonly busyTimeoutMs?: number;
  /** Clock for the informational `consumed_at` column and the automatic prune. */
  readonly now: Clock;
  /**
   * Seconds every envelope may still be presented after its `exp`: the verifier's clock
   * tolerance plus the maximum envelope lifetime. When set, the store prunes itself every 1000
   * consumptions (see `NonceStore.prune`): the horizon and up to 1000 rows in that batch's
   * transaction, any more in the background, 1000 rows per transaction; without it, rows are
   * kept until `prune` is called.
   */
  readonly retainAfterExpSec?: number;
  /**
   * The deployment's shared connection (`sqlite-commit.ts`): no file of its own (`path` is
   * ignored), consumptions commit with the other stores' writes, and `consume` given a
   * `DurableWrites` answers before its commit. Closing the store leaves the connection open.
   */
  readonly unit?: SqliteCommitUnit;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS envelope_nonces (
  jti TEXT PRIMARY KEY NOT NULL,
  tenant TEXT NOT NULL,
  exp INTEGER NOT NULL,
  decision_id TEXT NOT NULL,
  consumed_at INTEGER NOT NULL,
  voided INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS envelope_nonce_horizon (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  horizon INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO envelope_nonce_horizon (id, horizon) VALUES (1, -9007199254740991);`;

/**
 * Schema versions of the nonce store (store `envelope_nonces`; append-only). Version 1 is the
 * schema of the releases before versions were recorded, with their upgrade of a pre-void file:
 * every row in it is a consumption.
 */
function nonceMigrations(db: Database.Database): readonly SchemaMigration[] {
  return [
    {
      version: 1,
      name: 'envelope nonces with voids, prune horizon',
      up: () => {
        db.exec(SCHEMA);
        const columns = db.prepare<[], { name: string }>('PRAGMA table_info(envelope_nonces)').all();
        if (!columns.some((c) => c.name === 'voided'))
          db.exec('ALTER TABLE envelope_nonces ADD COLUMN voided INTEGER NOT NULL DEFAULT 0');
        db.exec('CREATE INDEX IF NOT EXISTS envelope_nonces_exp ON envelope_nonces (exp)');
      },
    },
  ];
}

/** Rows one prune transaction deletes at most: it holds the file's write lock only briefly. */
const PRUNE_BATCH = 1000;
/** Wall time the background part of one automatic prune may take; the rest waits for the next (ms). */
const BACKGROUND_BUDGET_MS = 1000;

/** One row of `envelope_nonces`: jti, tenant, exp, decision_id, consumed_at, voided (0/1). */
type NonceRow = readonly [string, string, number, string, number, number];

/**
 * Opens (creating if needed) a SQLite nonce store at `options.path`. `consume` rejects when the
 * database is locked past the busy timeout, closed or failing: the executor turns that into
 * `ERR_NONCE_STORE_UNAVAILABLE` (SPEC §7 scenario 8, OE-INV-017). Throws at open when the file
 * records a schema newer than this build (`SchemaVersionError`, fail closed).
 */
export function createSqliteNonceStore(options: SqliteNonceStoreOptions): NonceStore {
  const unit = options.unit;
  const db = openStoreConnection(() => new Database(options.path), {
    unit,
    store: 'envelope_nonces',
    migrations: nonceMigrations,
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
  });
  // One statement: an exp below the prune horizon is never inserted, so it is never 'fresh'.
  const insert = db.prepare(
    `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at, voided)
     SELECT @jti, @tenant, @exp, @decision_id, @consumed_at, @voided
     WHERE @exp >= (SELECT horizon FROM envelope_nonce_horizon WHERE id = 1)
     ON CONFLICT (jti) DO NOTHING`,
  );
  // Read only after no row was inserted: a row never changes once inserted, so the read cannot
  // race. No row means the exp lies below the prune horizon: it may have been consumed and pruned.
  const wasVoided = db.prepare<[string], { voided: number }>(
    'SELECT voided FROM envelope_nonces WHERE jti = ?',
  );
  const raise = db.prepare<[number, number]>(
    `UPDATE envelope_nonce_horizon SET horizon = MAX(horizon, MIN(?, (SELECT MAX(exp) FROM envelope_nonces)) - ?)
     WHERE id = 1 AND EXISTS (SELECT 1 FROM envelope_nonces)`,
  );
  // The lowest rows below the horizon, in `exp` index order, at most one batch.
  const deleteBelow = db.prepare<[number]>(
    `DELETE FROM envelope_nonces WHERE rowid IN (SELECT rowid FROM envelope_nonces
       WHERE exp < (SELECT horizon FROM envelope_nonce_horizon WHERE id = 1) ORDER BY exp LIMIT ?)`,
  );
  const deleteBatch = (): number => deleteBelow.run(PRUNE_BATCH).changes;
  const deleteBatchTx = db.transaction(deleteBatch);
  let closed = false;
  /**
   * Deletes the rest below the horizon one batch per transaction, yielding to the event loop
   * between batches (other processes' consumptions interleave), until a batch comes back short,
   * the budget is spent or the store closes. Every batch reads the horizon it deletes below, and
   * nothing below it is ever inserted again, so batches need no lock beyond their transaction.
   */
  const deleteRest = async (budgetMs?: number): Promise<number> => {
    const started = performance.now();
    let deleted = 0;
    for (;;) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (closed) return deleted;
      if (budgetMs !== undefined && performance.now() - started >= budgetMs) return deleted;
      const n = unit === undefined ? deleteBatchTx.immediate() : unit.stage(deleteBatch).value;
      deleted += n;
      if (n < PRUNE_BATCH) return deleted;
    }
  };
  const raiseTx = db.transaction((nowSec: number, toleranceSec: number): number => {
    raise.run(Math.trunc(nowSec), Math.trunc(toleranceSec));
    return deleteBatch();
  });
  const retain = options.retainAfterExpSec;
  if (retain !== undefined && !(Number.isSafeInteger(retain) && retain >= 0))
    throw new TypeError('retainAfterExpSec must be a non-negative integer');
  let sincePrune = 0;
  let draining = false;

  const validate = (input: NonceConsumption): void => {
    if (typeof input.jti !== 'string' || input.jti.length === 0 || input.jti.length > 512) {
      throw new TypeError('jti must be a non-empty string of at most 512 characters');
    }
    if (typeof input.tenant !== 'string' || input.tenant.length === 0)
      throw new TypeError('tenant must be a non-empty string');
    if (!Number.isSafeInteger(input.exp)) throw new TypeError('exp must be an integer');
    if (typeof input.decision_id !== 'string') throw new TypeError('decision_id must be a string');
  };

  // One transaction per batch, one statement per consumption; the transaction function returns
  // each statement's change count and better-sqlite3 commits when it returns (throws otherwise).
  const insertAll = db.transaction((rows: readonly NonceRow[]) => {
    const changes = rows.map(([jti, tenant, exp, decision_id, consumed_at, voided]) => {
      if (insert.run({ jti, tenant, exp, decision_id, consumed_at, voided }).changes === 1)
        return 'new' as const;
      const existing = wasVoided.get(jti);
      // Below the horizon: never consumable again, and it may have run before it was pruned.
      if (existing === undefined) return 'consumed' as const;
      return existing.voided === 1 ? ('voided' as const) : ('consumed' as const);
    });
    sincePrune += rows.length;
    if (retain !== undefined && sincePrune >= 1000) {
      sincePrune = 0;
      // The horizon and one batch in this transaction; a longer backlog after it, in batches.
      raise.run(Math.floor(options.now() / 1000), retain);
      if (deleteBatch() === PRUNE_BATCH && !draining) {
        draining = true;
        void deleteRest(BACKGROUND_BUDGET_MS)
          .catch(() => 0)
          .finally(() => {
            draining = false;
          });
      }
    }
    return changes;
  });
  const group = createGroupCommit((rows: readonly NonceRow[]) => insertAll.immediate(rows));

  const claim = async (
    input: NonceConsumption,
    voided: 0 | 1,
    writes?: DurableWrites,
  ): Promise<'new' | 'voided' | 'consumed'> => {
    if (closed) throw new Error('nonce store closed');
    validate(input);
    // consumed_at is informational only; the decision is the primary key.
    const row: NonceRow = [
      input.jti,
      input.tenant,
      input.exp,
      input.decision_id,
      Math.floor(options.now() / 1000),
      voided,
    ];
    let r: 'new' | 'voided' | 'consumed' | undefined;
    if (unit === undefined) r = await group.submit(row);
    else {
      // Decided now, in the open transaction (it sees every earlier claim, committed or not);
      // the caller waits for the commit here, or with `writes` before the tool runs.
      r = (await unit.write(() => insertAll([row]), writes))[0];
    }
    if (r !== 'new' && r !== 'voided' && r !== 'consumed') throw new Error('unexpected verdict');
    return r;
  };

  return {
    async consume(input, writes) {
      const r = await claim(input, 0, writes);
      return r === 'new' ? 'fresh' : r === 'voided' ? 'voided' : 'replayed';
    },
    async void(input) {
      const r = await claim(input, 1);
      return r === 'consumed' ? 'consumed' : 'voided';
    },
    async prune({ nowSec, toleranceSec }) {
      if (closed) throw new Error('nonce store closed');
      const first =
        unit === undefined
          ? raiseTx.immediate(nowSec, toleranceSec)
          : await unit.write(() => raiseTx(nowSec, toleranceSec));
      return first < PRUNE_BATCH ? first : first + (await deleteRest());
    },
    async close() {
      closed = true;
      // Queued consumptions commit (or reject) before the connection goes.
      await group.drain();
      if (unit === undefined) db.close();
    },
  };
}

/** The table holding a SQLite nonce store's identity: one random value, written once. */
const IDENTITY_SQL = `CREATE TABLE IF NOT EXISTS nonce_store_identity (
  id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL)`;

/**
 * The identity of the SQLite nonce store on `db` (docs/jobs.md "Shared nonce store"): a random
 * value written in the file the first time it is asked (the caller makes the write durable), so
 * two files are two stores whatever their host names and paths, a file deleted and made again is
 * another store, and only a copy of the file is the same one.
 */
export function sqliteNonceStoreIdentityOn(db: Database.Database): string {
  db.exec(IDENTITY_SQL);
  db.prepare('INSERT OR IGNORE INTO nonce_store_identity (id, value) VALUES (1, ?)').run(
    randomBytes(16).toString('hex'),
  );
  const row = db.prepare('SELECT value FROM nonce_store_identity WHERE id = 1').get() as
    { value?: unknown } | undefined;
  if (typeof row?.value !== 'string' || !/^[0-9a-f]{32}$/.test(row.value))
    throw new TypeError('the nonce store identity is malformed');
  return `sqlite:${row.value}`;
}

/**
 * {@link sqliteNonceStoreIdentityOn} the file at `path`, through a connection of its own (before
 * the store serves: the write waits at most 5 s for the file's lock).
 */
export function sqliteNonceStoreIdentity(path: string): string {
  const db = new Database(path, { timeout: 5000 });
  try {
    return db.transaction(() => sqliteNonceStoreIdentityOn(db)).immediate();
  } finally {
    db.close();
  }
}
