/**
 * PostgreSQL {@link OperatorStore} (OE-INV-025): the operator registry shared by every gate on the
 * database, with the semantics of the SQLite store: each change is one guarded statement whose
 * "one row changed" is the only success, so a token rotated or an operator removed through one
 * replica is refused by every replica on its next request. Rows are parsed as untrusted input;
 * any failure rejects and the Gate refuses (fail closed). The store owns nothing: the backend
 * closes the pool.
 */
import { parseOperatorRow, storedTenants } from '../../gate/index.js';
import type { OperatorStore } from '../../gate/index.js';
import type { PostgresPool } from './pool.js';

type Row = Record<string, unknown>;

/** An operator store over `db` (migrated to the current schema). */
export function createPostgresOperatorStore(db: PostgresPool): OperatorStore {
  const rows = async (sql: string, params: unknown[]): Promise<Row[]> =>
    (await db.pool.query<Row>(sql, params)).rows;
  const changed = async (sql: string, params: unknown[]): Promise<boolean> => {
    const n = (await db.pool.query(sql, params)).rowCount;
    if (n !== 0 && n !== 1) throw new TypeError('a guarded write changed more than one row');
    return n === 1;
  };
  const one = async (sql: string, params: unknown[]) => {
    const [r] = await rows(sql, params);
    return r === undefined ? undefined : parseOperatorRow(r);
  };
  return Object.freeze({
    // ON CONFLICT covers the name and an identity another active operator holds (a unique index).
    add: (rec: Parameters<OperatorStore['add']>[0]) =>
      changed(
        `INSERT INTO operators (name, tenants, token_sha256, status, created_at, oidc_issuer, oidc_subject, oidc_bound_at)
         VALUES ($1, $2, $3, 'active', $4::bigint, $5, $6, $7::bigint) ON CONFLICT DO NOTHING`,
        [
          rec.name,
          storedTenants(rec.tenants),
          rec.token_sha256,
          rec.created_at,
          rec.oidc?.issuer ?? null,
          rec.oidc?.subject ?? null,
          rec.oidc === undefined ? null : rec.created_at,
        ],
      ),
    get: (name: string) => one('SELECT * FROM operators WHERE name = $1', [name]),
    byToken: (sha: string) =>
      one("SELECT * FROM operators WHERE token_sha256 = $1 AND status = 'active'", [sha]),
    bySubject: (issuer: string, subject: string) =>
      one("SELECT * FROM operators WHERE oidc_issuer = $1 AND oidc_subject = $2 AND status = 'active'", [
        issuer,
        subject,
      ]),
    bind: async (name: string, issuer: string, subject: string, atMs: number) => {
      try {
        return await changed(
          `UPDATE operators SET oidc_issuer = $1, oidc_subject = $2, oidc_bound_at = $3::bigint
           WHERE name = $4 AND status = 'active' AND oidc_subject IS NULL
             AND NOT EXISTS (SELECT 1 FROM operators o
                             WHERE o.oidc_issuer = $1 AND o.oidc_subject = $2 AND o.status = 'active')`,
          [issuer, subject, atMs, name],
        );
      } catch (err) {
        // Two replicas binding one identity at once: the unique index decides, the loser is refused.
        if ((err as { code?: unknown }).code === '23505') return false;
        throw err;
      }
    },
    unbind: (name: string, issuer: string, subject: string) =>
      changed(
        `UPDATE operators SET oidc_issuer = NULL, oidc_subject = NULL, oidc_bound_at = NULL
         WHERE name = $1 AND status = 'active' AND oidc_issuer = $2 AND oidc_subject = $3`,
        [name, issuer, subject],
      ),
    rotate: (name: string, from: string, to: string, atMs: number) =>
      changed(
        `UPDATE operators SET token_sha256 = $1, rotated_at = $2::bigint
         WHERE name = $3 AND token_sha256 = $4 AND status = 'active'`,
        [to, atMs, name, from],
      ),
    remove: (name: string, atMs: number) =>
      changed(
        "UPDATE operators SET status = 'removed', removed_at = $1::bigint WHERE name = $2 AND status = 'active'",
        [atMs, name],
      ),
    list: async () => (await rows('SELECT * FROM operators ORDER BY name', [])).map(parseOperatorRow),
    close: () => Promise.resolve(),
  });
}
