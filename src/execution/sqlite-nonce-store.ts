/**
 * SQLite {@link NonceStore} (embedded deployment). One atomic `INSERT … ON CONFLICT DO NOTHING`
 * on a `jti` primary key decides; "one row changed" is the only `'fresh'` (SPEC §8). WAL mode
 * with `synchronous=FULL`: a consumption is durable before it is acknowledged, and several
 * processes may share the file.
 *
 * Group commit: consumptions arriving in the same event-loop turn run as individual statements
 * inside ONE `BEGIN IMMEDIATE` transaction (one fsync for the batch). Each caller's verdict is
 * its own statement's change count, released only after the COMMIT returned; a failed
 * transaction rejects every caller in it (SPEC §8 durable writes, OE-INV-017).
 *
 * This file has no runtime imports besides better-sqlite3 and the import-free
 * `group-commit.ts`, so that the cross-process concurrency test can load the two on their own.
 */
import Database from 'better-sqlite3';
import type { Clock } from '../kernel/index.js';
import { createGroupCommit } from './group-commit.js';
import type { NonceConsumption, NonceStore, VoidVerdict } from './nonce-store.js';

/** Options for {@link createSqliteNonceStore}. */
export interface SqliteNonceStoreOptions {
  /** Database file path. Shared by every executor process on the host. */
  readonly path: string;
  /** How long a writer waits for the file lock before the call fails (ms). Default 2000. */
  readonly busyTimeoutMs?: number;
  /** Clock for the informational `consumed_at` column. */
  readonly now: Clock;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS envelope_nonces (
  jti TEXT PRIMARY KEY NOT NULL,
  tenant TEXT NOT NULL,
  exp INTEGER NOT NULL,
  decision_id TEXT NOT NULL,
  consumed_at INTEGER NOT NULL
) STRICT`;

/** One row of `envelope_nonces`: jti, tenant, exp, decision_id, consumed_at. */
type NonceRow = readonly [string, string, number, string, number];

/**
 * Opens (creating if needed) a SQLite nonce store at `options.path`. `consume` rejects when the
 * database is locked past the busy timeout, closed or failing: the executor turns that into
 * `ERR_NONCE_STORE_UNAVAILABLE` (SPEC §7 scenario 8, OE-INV-017).
 */
export function createSqliteNonceStore(options: SqliteNonceStoreOptions): NonceStore {
  const db = new Database(options.path);
  db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 2000)}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(SCHEMA);
  db.exec('CREATE INDEX IF NOT EXISTS envelope_nonces_exp ON envelope_nonces (exp)');
  const insert = db.prepare(
    `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at)
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING`,
  );
  const prune = db.prepare('DELETE FROM envelope_nonces WHERE exp + ? < ?');
  // A voided nonce is a consumed row (consume answers 'replayed') plus a mark that nothing ran.
  db.exec('CREATE TABLE IF NOT EXISTS envelope_voids (jti TEXT PRIMARY KEY NOT NULL) STRICT');
  const markVoid = db.prepare('INSERT OR IGNORE INTO envelope_voids (jti) VALUES (?)');
  const isVoid = db.prepare<[string], { jti: string }>('SELECT jti FROM envelope_voids WHERE jti = ?');
  const pruneVoids = db.prepare(
    'DELETE FROM envelope_voids WHERE jti NOT IN (SELECT jti FROM envelope_nonces)',
  );
  const voidTx = db.transaction((row: NonceRow): VoidVerdict => {
    if (insert.run(...row).changes === 1) {
      markVoid.run(row[0]);
      return 'voided';
    }
    return isVoid.get(row[0]) === undefined ? 'consumed' : 'voided';
  });

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
  const insertAll = db.transaction((rows: readonly NonceRow[]) => rows.map((r) => insert.run(...r).changes));
  const group = createGroupCommit((rows: readonly NonceRow[]) => insertAll.immediate(rows));
  let closed = false;

  return {
    async consume(input) {
      if (closed) throw new Error('nonce store closed');
      validate(input);
      // consumed_at is informational only; the decision is the primary key.
      const changes = await group.submit([
        input.jti,
        input.tenant,
        input.exp,
        input.decision_id,
        Math.floor(options.now() / 1000),
      ]);
      if (changes === 1) return 'fresh';
      if (changes === 0) return 'replayed';
      throw new Error('unexpected change count');
    },
    void(input) {
      try {
        if (closed) throw new Error('nonce store closed');
        validate(input);
        const row: NonceRow = [
          input.jti,
          input.tenant,
          input.exp,
          input.decision_id,
          Math.floor(options.now() / 1000),
        ];
        return Promise.resolve(voidTx.immediate(row));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('nonce store failure'));
      }
    },
    prune({ nowSec, toleranceSec }) {
      try {
        const n = prune.run(Math.trunc(toleranceSec), Math.trunc(nowSec)).changes;
        pruneVoids.run();
        return Promise.resolve(n);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('nonce store failure'));
      }
    },
    async close() {
      closed = true;
      // Queued consumptions commit (or reject) before the connection goes.
      await group.drain();
      db.close();
    },
  };
}
