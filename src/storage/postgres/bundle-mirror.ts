/**
 * PostgreSQL {@link PolicyBundleMirror} (SPEC §6 "Policy as hash-addressed bundles", SPEC §1
 * "Distributed"): the policy bundles and the active pointer of a deployment live in the shared
 * database, so a gate that opens later serves the bundle the ledger last activated, whatever
 * copy of the data directory it started from. Rows are untrusted: every body read back must hash
 * to its row's hash by the bundle store's own rule, or the read rejects.
 */
import { bundleMatchesHash } from '../../control-plane/index.js';
import type { PolicyBundleMirror } from '../backend.js';
import type { PostgresPool } from './pool.js';
import { rowBytes, rowText } from './rows.js';

const HASH_RE = /^[0-9a-f]{64}$/;

function assertHash(hash: unknown): asserts hash is string {
  if (typeof hash !== 'string' || !HASH_RE.test(hash)) throw new TypeError('not a bundle hash');
}

/** A hash column value: text in the bundle hash form, `TypeError` otherwise. */
function rowHash(v: unknown, column: string): string {
  const text = rowText(v, column);
  if (!HASH_RE.test(text)) throw new TypeError(`column ${column} is not a bundle hash`);
  return text;
}

/**
 * A {@link PolicyBundleMirror} over the `policy_bundles` and `policy_active` tables of `db`
 * (schema migration v1). Every method is one statement and rejects when the database is
 * unreachable, slow past the pool's deadline, or answers a malformed row; `get` rejects with
 * `TypeError` when a body does not hash to its name, and `put` when given bytes that do not.
 */
export function createPostgresBundleMirror(db: PostgresPool): PolicyBundleMirror {
  return Object.freeze({
    async list(): Promise<readonly string[]> {
      const r = await db.pool.query('SELECT hash FROM policy_bundles ORDER BY hash');
      return r.rows.map((row: Record<string, unknown>) => rowHash(row['hash'], 'policy_bundles.hash'));
    },
    async get(hash: string): Promise<Uint8Array | undefined> {
      assertHash(hash);
      const r = await db.pool.query('SELECT hash, body FROM policy_bundles WHERE hash = $1::text', [hash]);
      if (r.rows.length === 0) return undefined;
      const row = r.rows[0] as Record<string, unknown>;
      if (r.rows.length !== 1 || rowHash(row['hash'], 'policy_bundles.hash') !== hash)
        throw new TypeError('policy_bundles returned another row');
      // Database row: a body is trusted only once it hashes to the name it is stored under.
      const body = rowBytes(row['body'], 'policy_bundles.body');
      if (!bundleMatchesHash(body, hash)) throw new TypeError('stored policy bundle does not match its hash');
      return body;
    },
    async put(hash: string, bytes: Uint8Array): Promise<void> {
      assertHash(hash);
      if (!bundleMatchesHash(bytes, hash)) throw new TypeError('bundle bytes do not match their hash');
      await db.pool.query(
        'INSERT INTO policy_bundles (hash, body) VALUES ($1::text, $2::bytea) ON CONFLICT (hash) DO NOTHING',
        [hash, Buffer.from(bytes)],
      );
    },
    async active(): Promise<string | null> {
      const r = await db.pool.query('SELECT hash FROM policy_active WHERE id = 1');
      if (r.rows.length === 0) return null;
      return rowHash((r.rows[0] as Record<string, unknown>)['hash'], 'policy_active.hash');
    },
    async setActive(hash: string): Promise<void> {
      assertHash(hash);
      // The foreign key refuses a pointer at a bundle the database does not hold.
      await db.pool.query(
        `INSERT INTO policy_active (id, hash) VALUES (1, $1::text)
          ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash`,
        [hash],
      );
    },
  });
}
