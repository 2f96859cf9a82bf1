/**
 * PostgreSQL {@link ConsoleStore} (docs/console.md): the console's invited people, sessions and
 * used sign-in challenges, shared by every gate on the database, with the semantics of the SQLite
 * store: each state change is one statement, guarded so that "one row changed" is the only
 * success. Rows are parsed as untrusted input (`src/console/rows.ts`); any failure rejects and
 * the console refuses (fail closed). The store owns nothing: the backend closes the pool.
 */
import { parseOperatorSessionRow, parsePersonRow, parseSessionRow } from '../../console/index.js';
import type {
  ConsoleSession,
  ConsoleStore,
  InvitedPerson,
  OperatorSession,
  SignInAdmission,
} from '../../console/index.js';
import type { JsonObject } from '../../kernel/index.js';
import { inTransaction } from './pool.js';
import type { PostgresPool } from './pool.js';

/**
 * First key of the transaction advisory lock every sign-in check takes ("fcsi" read as a 32-bit
 * integer): sign-ins are rare, so one lock per schema serializes them simply and without deadlocks.
 */
const SIGN_IN_LOCK_CLASS = 0x66637369;
/** First key of the lock that serializes making operator sessions ("fcos"), for their bound. */
const OPERATOR_SESSION_LOCK_CLASS = 0x66636f73;

type Row = Record<string, unknown>;

/** A console store over `db` (migrated to the current schema). */
export function createPostgresConsoleStore(db: PostgresPool): ConsoleStore {
  const rows = async (sql: string, params: unknown[]): Promise<Row[]> =>
    (await db.pool.query<Row>(sql, params)).rows;
  const changed = async (sql: string, params: unknown[]): Promise<boolean> => {
    const n = (await db.pool.query(sql, params)).rowCount;
    if (n !== 0 && n !== 1) throw new TypeError('a guarded write changed more than one row');
    return n === 1;
  };
  return Object.freeze({
    putInvitation: (p: InvitedPerson) =>
      changed(
        `INSERT INTO console_people (name, roles, tenants, code_sha256, invited_at, code_expires_at,
           oidc_issuer, oidc_subject)
         VALUES ($1, $2, $3, $4, $5::bigint, $6::bigint, $7, $8)
         ON CONFLICT (name) DO UPDATE SET roles = excluded.roles, tenants = excluded.tenants,
           code_sha256 = excluded.code_sha256, invited_at = excluded.invited_at,
           code_expires_at = excluded.code_expires_at, public_jwk = NULL, kid = NULL, enrolled_at = NULL,
           oidc_issuer = excluded.oidc_issuer, oidc_subject = excluded.oidc_subject
         WHERE console_people.confirmed_at IS NULL`,
        [
          p.name,
          JSON.stringify(p.roles),
          JSON.stringify(p.tenants),
          p.code_sha256,
          p.invited_at,
          p.code_expires_at,
          p.oidc_issuer,
          p.oidc_subject,
        ],
      ),
    async person(name: string) {
      const [r] = await rows('SELECT * FROM console_people WHERE name = $1', [name]);
      return r === undefined ? undefined : parsePersonRow(r);
    },
    async personBoundTo(issuer: string, subject: string) {
      const [r] = await rows(
        'SELECT * FROM console_people WHERE oidc_issuer = $1 AND oidc_subject = $2 ORDER BY name LIMIT 1',
        [issuer, subject],
      );
      return r === undefined ? undefined : parsePersonRow(r);
    },
    useCode: (name: string, codeSha256: string, atMs: number) =>
      changed(
        'UPDATE console_people SET code_sha256 = NULL WHERE name = $1 AND code_sha256 = $2 AND code_expires_at > $3::bigint',
        [name, codeSha256, atMs],
      ),
    enrol: (name: string, jwk: JsonObject, kid: string, atMs: number) =>
      changed(
        'UPDATE console_people SET public_jwk = $1, kid = $2, enrolled_at = $3::bigint WHERE name = $4 AND public_jwk IS NULL',
        [JSON.stringify(jwk), kid, atMs, name],
      ),
    confirm: (name: string, kid: string, atMs: number) =>
      changed(
        'UPDATE console_people SET confirmed_at = $1::bigint WHERE name = $2 AND kid = $3 AND confirmed_at IS NULL',
        [atMs, name, kid],
      ),
    async createSession(s: ConsoleSession, staleBefore: number) {
      await db.pool.query('DELETE FROM console_sessions WHERE last_seen < $1::bigint', [staleBefore]);
      await db.pool.query(
        'INSERT INTO console_sessions (id_sha256, name, method, created_at, last_seen) VALUES ($1, $2, $3, $4::bigint, $5::bigint)',
        [s.id_sha256, s.name, s.method, s.created_at, s.last_seen],
      );
    },
    async session(id: string) {
      const [r] = await rows('SELECT * FROM console_sessions WHERE id_sha256 = $1', [id]);
      return r === undefined ? undefined : parseSessionRow(r);
    },
    async touchSession(id: string, atMs: number) {
      await db.pool.query('UPDATE console_sessions SET last_seen = $1::bigint WHERE id_sha256 = $2', [
        atMs,
        id,
      ]);
    },
    async deleteSession(id: string) {
      await db.pool.query('DELETE FROM console_sessions WHERE id_sha256 = $1', [id]);
    },
    replaceSession: (oldSha256: string, s: ConsoleSession) =>
      // One statement: the new session exists exactly when the old one was deleted.
      changed(
        `WITH gone AS (DELETE FROM console_sessions WHERE id_sha256 = $1 RETURNING 1)
         INSERT INTO console_sessions (id_sha256, name, method, created_at, last_seen)
         SELECT $2, $3, $4, $5::bigint, $6::bigint FROM gone`,
        [oldSha256, s.id_sha256, s.name, s.method, s.created_at, s.last_seen],
      ),
    async deleteSessionsOf(name: string) {
      await db.pool.query('DELETE FROM console_sessions WHERE name = $1', [name]);
    },
    async useChallenge(id: string, expiresAt: number, atMs: number) {
      await db.pool.query('DELETE FROM console_used_challenges WHERE expires_at <= $1::bigint', [atMs]);
      return changed(
        'INSERT INTO console_used_challenges (id, expires_at) VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING',
        [id, expiresAt],
      );
    },
    createOperatorSession: (
      s: OperatorSession,
      prune: { readonly idleBefore: number; readonly createdBefore: number },
      max: number,
    ) =>
      // Under a transaction advisory lock per schema: gates making sessions at once cannot pass the bound.
      inTransaction(db.pool, async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [
          OPERATOR_SESSION_LOCK_CLASS,
          db.schema,
        ]);
        await c.query(
          'DELETE FROM console_operator_sessions WHERE last_seen < $1::bigint OR created_at < $2::bigint',
          [prune.idleBefore, prune.createdBefore],
        );
        const made = await c.query(
          `INSERT INTO console_operator_sessions (id_sha256, name, method, credential, created_at, last_seen)
           SELECT $1, $2, $3, $4, $5::bigint, $6::bigint
           WHERE (SELECT count(*) FROM console_operator_sessions) < $7::int`,
          [s.id_sha256, s.name, s.method, s.credential, s.created_at, s.last_seen, max],
        );
        return made.rowCount === 1;
      }),
    async operatorSession(id: string) {
      const [r] = await rows('SELECT * FROM console_operator_sessions WHERE id_sha256 = $1', [id]);
      return r === undefined ? undefined : parseOperatorSessionRow(r);
    },
    async touchOperatorSession(id: string, atMs: number) {
      await db.pool.query(
        'UPDATE console_operator_sessions SET last_seen = $1::bigint WHERE id_sha256 = $2',
        [atMs, id],
      );
    },
    async deleteOperatorSession(id: string) {
      await db.pool.query('DELETE FROM console_operator_sessions WHERE id_sha256 = $1', [id]);
    },
    admitSignIn: (keys: readonly string[], atMs: number, limit: number, windowMs: number) =>
      inTransaction(db.pool, async (c): Promise<SignInAdmission> => {
        await c.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [
          SIGN_IN_LOCK_CLASS,
          db.schema,
        ]);
        // A counter is live from its first failure for the window. One up to a window in this
        // gate's future stays live: another gate's clock may be ahead (dropping it would let a gate
        // whose clock is behind reset the limit); one further ahead (a clock stepped far back) is dropped.
        await c.query(
          'DELETE FROM console_sign_in_failures WHERE since <= $1::bigint OR since > $2::bigint',
          [atMs - windowMs, atMs + windowMs],
        );
        const over = await c.query<Row>(
          'SELECT key, told FROM console_sign_in_failures WHERE key = ANY($1::text[]) AND count >= $2::int',
          [keys, limit],
        );
        if (over.rows.length > 0) {
          const told = await c.query(
            'UPDATE console_sign_in_failures SET told = true WHERE key = ANY($1::text[]) AND NOT told',
            [over.rows.map((r) => r['key'])],
          );
          return { admitted: false, tell: (told.rowCount ?? 0) > 0 };
        }
        await c.query(
          `INSERT INTO console_sign_in_failures (key, count, since, told)
           SELECT k, 1, $2::bigint, false FROM unnest($1::text[]) AS k
           ON CONFLICT (key) DO UPDATE SET count = console_sign_in_failures.count + 1`,
          [keys, atMs],
        );
        return { admitted: true };
      }),
    async forgiveSignIn(keys: readonly string[], atMs: number, windowMs: number) {
      await db.pool.query(
        `UPDATE console_sign_in_failures SET count = count - 1
         WHERE key = ANY($1::text[]) AND count > 0 AND since > $2::bigint AND since <= $3::bigint`,
        [keys, atMs - windowMs, atMs + windowMs],
      );
    },
    close: () => Promise.resolve(),
  });
}
