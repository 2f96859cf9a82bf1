/**
 * SQLite {@link NonceStore} (embedded deployment). One atomic `INSERT … ON CONFLICT DO NOTHING`
 * on a `jti` primary key decides; "one row changed" is the only `'fresh'` (SPEC §8). WAL mode
 * with `synchronous=FULL`: a consumption is durable before it is acknowledged, and several
 * processes may share the file.
 *
 * This file has no runtime imports besides better-sqlite3 so that it can be loaded on its own
 * (the cross-process concurrency test does so).
 */
import Database from 'better-sqlite3';
import type { Clock } from '../kernel/index.js';
import type { NonceConsumption, NonceStore, NonceVerdict } from './nonce-store.js';

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

  const consumeSync = (input: NonceConsumption): NonceVerdict => {
    if (typeof input.jti !== 'string' || input.jti.length === 0 || input.jti.length > 512) {
      throw new TypeError('jti must be a non-empty string of at most 512 characters');
    }
    if (typeof input.tenant !== 'string' || input.tenant.length === 0)
      throw new TypeError('tenant must be a non-empty string');
    if (!Number.isSafeInteger(input.exp)) throw new TypeError('exp must be an integer');
    if (typeof input.decision_id !== 'string') throw new TypeError('decision_id must be a string');
    // consumed_at is informational only; the decision is the primary key.
    const info = insert.run(
      input.jti,
      input.tenant,
      input.exp,
      input.decision_id,
      Math.floor(options.now() / 1000),
    );
    if (info.changes === 1) return 'fresh';
    if (info.changes === 0) return 'replayed';
    throw new Error('unexpected change count');
  };

  return {
    consume(input) {
      try {
        return Promise.resolve(consumeSync(input));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('nonce store failure'));
      }
    },
    prune({ nowSec, toleranceSec }) {
      try {
        return Promise.resolve(prune.run(Math.trunc(toleranceSec), Math.trunc(nowSec)).changes);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('nonce store failure'));
      }
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
}
