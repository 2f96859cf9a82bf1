/**
 * The console's state in SQLite, over better-sqlite3: in the data directory's `ledger.db` on the
 * deployment's shared connection (the SQLite backend), or in a file of its own. Every write is
 * durable before it returns. Rows read back are parsed before use: a malformed row rejects (the
 * caller refuses).
 */
import Database from 'better-sqlite3';
import { openStoreConnection } from '../kernel/index.js';
import type { JsonObject, SchemaMigration, SqliteCommitUnit } from '../kernel/index.js';
import { parseOperatorSessionRow, parsePersonRow, parseSessionRow } from './rows.js';
import type {
  ConsoleSession,
  ConsoleStore,
  InvitedPerson,
  OperatorSession,
  SignInAdmission,
} from './store.js';

const SCHEMA = `
CREATE TABLE console_people (
  name TEXT PRIMARY KEY, roles TEXT NOT NULL, tenants TEXT NOT NULL, code_sha256 TEXT,
  invited_at INTEGER NOT NULL, code_expires_at INTEGER NOT NULL, public_jwk TEXT, kid TEXT,
  enrolled_at INTEGER, confirmed_at INTEGER
);
CREATE TABLE console_sessions (
  id_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, method TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE TABLE console_used_challenges (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
`;

const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'invited people, sign-in sessions, used sign-in challenges', up: SCHEMA },
  {
    version: 2,
    name: 'invitations bound to an OIDC identity',
    up: 'ALTER TABLE console_people ADD COLUMN oidc_issuer TEXT; ALTER TABLE console_people ADD COLUMN oidc_subject TEXT;',
  },
  {
    version: 3,
    name: 'operator sessions and failed sign-in counters in the store',
    up: `
CREATE TABLE console_operator_sessions (
  id_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, method TEXT NOT NULL, credential TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE TABLE console_sign_in_failures (
  key TEXT PRIMARY KEY, count INTEGER NOT NULL, since INTEGER NOT NULL, told INTEGER NOT NULL
);
CREATE INDEX console_sign_in_failures_since ON console_sign_in_failures (since);`,
  },
];

/**
 * Opens (creating its tables when absent) the console store at `path`, or on `unit`, the
 * deployment's shared connection over that file: then every write commits on its own before it
 * returns (`writeNow`), and closing the store leaves the connection open.
 */
export function createSqliteConsoleStore(
  path: string,
  options: { readonly unit?: SqliteCommitUnit } = {},
): ConsoleStore {
  const { unit } = options;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'console',
    migrations: MIGRATIONS,
  });
  /** A write, durable when it returns. */
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const q = {
    put: db.prepare(
      `INSERT INTO console_people (name, roles, tenants, code_sha256, invited_at, code_expires_at,
         oidc_issuer, oidc_subject)
       VALUES (@name, @roles, @tenants, @code_sha256, @invited_at, @code_expires_at, @oidc_issuer, @oidc_subject)
       ON CONFLICT(name) DO UPDATE SET roles = excluded.roles, tenants = excluded.tenants,
         code_sha256 = excluded.code_sha256, invited_at = excluded.invited_at,
         code_expires_at = excluded.code_expires_at, public_jwk = NULL, kid = NULL, enrolled_at = NULL,
         oidc_issuer = excluded.oidc_issuer, oidc_subject = excluded.oidc_subject
       WHERE console_people.confirmed_at IS NULL`,
    ),
    person: db.prepare('SELECT * FROM console_people WHERE name = ?'),
    personBoundTo: db.prepare(
      'SELECT * FROM console_people WHERE oidc_issuer = ? AND oidc_subject = ? ORDER BY name LIMIT 1',
    ),
    useCode: db.prepare(
      'UPDATE console_people SET code_sha256 = NULL WHERE name = ? AND code_sha256 = ? AND code_expires_at > ?',
    ),
    enrol: db.prepare(
      'UPDATE console_people SET public_jwk = ?, kid = ?, enrolled_at = ? WHERE name = ? AND public_jwk IS NULL',
    ),
    confirm: db.prepare(
      'UPDATE console_people SET confirmed_at = ? WHERE name = ? AND kid = ? AND confirmed_at IS NULL',
    ),
    createSession: db.prepare(
      'INSERT INTO console_sessions (id_sha256, name, method, created_at, last_seen) VALUES (?, ?, ?, ?, ?)',
    ),
    session: db.prepare('SELECT * FROM console_sessions WHERE id_sha256 = ?'),
    pruneSessions: db.prepare('DELETE FROM console_sessions WHERE last_seen < ?'),
    touch: db.prepare('UPDATE console_sessions SET last_seen = ? WHERE id_sha256 = ?'),
    deleteSession: db.prepare('DELETE FROM console_sessions WHERE id_sha256 = ?'),
    deleteSessionsOf: db.prepare('DELETE FROM console_sessions WHERE name = ?'),
    pruneChallenges: db.prepare('DELETE FROM console_used_challenges WHERE expires_at <= ?'),
    useChallenge: db.prepare('INSERT OR IGNORE INTO console_used_challenges (id, expires_at) VALUES (?, ?)'),
    pruneOperatorSessions: db.prepare(
      'DELETE FROM console_operator_sessions WHERE last_seen < ? OR created_at < ?',
    ),
    countOperatorSessions: db.prepare('SELECT count(*) AS n FROM console_operator_sessions'),
    createOperatorSession: db.prepare(
      `INSERT INTO console_operator_sessions (id_sha256, name, method, credential, created_at, last_seen)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    operatorSession: db.prepare('SELECT * FROM console_operator_sessions WHERE id_sha256 = ?'),
    touchOperatorSession: db.prepare(
      'UPDATE console_operator_sessions SET last_seen = ? WHERE id_sha256 = ?',
    ),
    deleteOperatorSession: db.prepare('DELETE FROM console_operator_sessions WHERE id_sha256 = ?'),
    // A counter is live from its first failure (`since`) for the window. One up to a window in this
    // gate's future stays live: another gate's clock may be ahead (dropping it would let a gate
    // whose clock is behind reset the limit); one further ahead (a clock stepped far back) is dropped.
    pruneFailures: db.prepare('DELETE FROM console_sign_in_failures WHERE since <= ? OR since > ?'),
    failures: db.prepare('SELECT count, told FROM console_sign_in_failures WHERE key = ?'),
    countFailure: db.prepare(
      `INSERT INTO console_sign_in_failures (key, count, since, told) VALUES (?, 1, ?, 0)
       ON CONFLICT(key) DO UPDATE SET count = count + 1`,
    ),
    tell: db.prepare('UPDATE console_sign_in_failures SET told = 1 WHERE key = ? AND told = 0'),
    forgive: db.prepare(
      'UPDATE console_sign_in_failures SET count = count - 1 WHERE key = ? AND count > 0 AND since > ? AND since <= ?',
    ),
  };
  /** The check and the count of one attempt, in one transaction. */
  const admit = db.transaction(
    (keys: readonly string[], at: number, limit: number, windowMs: number): SignInAdmission => {
      q.pruneFailures.run(at - windowMs, at + windowMs);
      const over = keys.filter((k) => {
        const r = q.failures.get(k) as { count: unknown } | undefined;
        return r !== undefined && Number(r.count) >= limit;
      });
      if (over.length > 0) {
        let tell = false;
        for (const k of over) if (q.tell.run(k).changes === 1) tell = true;
        return { admitted: false, tell };
      }
      for (const k of keys) q.countFailure.run(k, at);
      return { admitted: true };
    },
  );
  const createOperator = db.transaction(
    (s: OperatorSession, idleBefore: number, createdBefore: number, max: number): boolean => {
      q.pruneOperatorSessions.run(idleBefore, createdBefore);
      if (Number((q.countOperatorSessions.get() as { n: unknown }).n) >= max) return false;
      q.createOperatorSession.run(s.id_sha256, s.name, s.method, s.credential, s.created_at, s.last_seen);
      return true;
    },
  );
  return Object.freeze({
    putInvitation: (p: InvitedPerson) =>
      Promise.resolve(
        write(() =>
          q.put.run({
            name: p.name,
            roles: JSON.stringify(p.roles),
            tenants: JSON.stringify(p.tenants),
            code_sha256: p.code_sha256,
            invited_at: p.invited_at,
            code_expires_at: p.code_expires_at,
            oidc_issuer: p.oidc_issuer,
            oidc_subject: p.oidc_subject,
          }),
        ).changes === 1,
      ),
    person: (name: string) => {
      const r = q.person.get(name) as Record<string, unknown> | undefined;
      return Promise.resolve(r === undefined ? undefined : parsePersonRow(r));
    },
    personBoundTo: (issuer: string, subject: string) => {
      const r = q.personBoundTo.get(issuer, subject) as Record<string, unknown> | undefined;
      return Promise.resolve(r === undefined ? undefined : parsePersonRow(r));
    },
    useCode: (name: string, codeSha256: string, atMs: number) =>
      Promise.resolve(write(() => q.useCode.run(name, codeSha256, atMs)).changes === 1),
    enrol: (name: string, jwk: JsonObject, kid: string, atMs: number) =>
      Promise.resolve(write(() => q.enrol.run(JSON.stringify(jwk), kid, atMs, name)).changes === 1),
    confirm: (name: string, kid: string, atMs: number) =>
      Promise.resolve(write(() => q.confirm.run(atMs, name, kid)).changes === 1),
    createSession: (s: ConsoleSession, staleBefore: number) => {
      write(() => {
        q.pruneSessions.run(staleBefore);
        q.createSession.run(s.id_sha256, s.name, s.method, s.created_at, s.last_seen);
      });
      return Promise.resolve();
    },
    session: (id: string) => {
      const r = q.session.get(id) as Record<string, unknown> | undefined;
      return Promise.resolve(r === undefined ? undefined : parseSessionRow(r));
    },
    touchSession: (id: string, atMs: number) => {
      write(() => q.touch.run(atMs, id));
      return Promise.resolve();
    },
    deleteSession: (id: string) => {
      write(() => q.deleteSession.run(id));
      return Promise.resolve();
    },
    replaceSession: (oldSha256: string, s: ConsoleSession) =>
      Promise.resolve(
        write(() =>
          db.transaction(() => {
            if (q.deleteSession.run(oldSha256).changes !== 1) return false;
            q.createSession.run(s.id_sha256, s.name, s.method, s.created_at, s.last_seen);
            return true;
          })(),
        ),
      ),
    deleteSessionsOf: (name: string) => {
      write(() => q.deleteSessionsOf.run(name));
      return Promise.resolve();
    },
    useChallenge: (id: string, expiresAt: number, atMs: number) =>
      Promise.resolve(
        write(() => {
          q.pruneChallenges.run(atMs);
          return q.useChallenge.run(id, expiresAt);
        }).changes === 1,
      ),
    createOperatorSession: (
      s: OperatorSession,
      prune: { readonly idleBefore: number; readonly createdBefore: number },
      max: number,
    ) => Promise.resolve(write(() => createOperator(s, prune.idleBefore, prune.createdBefore, max))),
    operatorSession: (id: string) => {
      const r = q.operatorSession.get(id) as Record<string, unknown> | undefined;
      return Promise.resolve(r === undefined ? undefined : parseOperatorSessionRow(r));
    },
    touchOperatorSession: (id: string, atMs: number) => {
      write(() => q.touchOperatorSession.run(atMs, id));
      return Promise.resolve();
    },
    deleteOperatorSession: (id: string) => {
      write(() => q.deleteOperatorSession.run(id));
      return Promise.resolve();
    },
    admitSignIn: (keys: readonly string[], atMs: number, limit: number, windowMs: number) =>
      Promise.resolve(write(() => admit(keys, atMs, limit, windowMs))),
    forgiveSignIn: (keys: readonly string[], atMs: number, windowMs: number) => {
      write(() => {
        for (const k of keys) q.forgive.run(k, atMs - windowMs, atMs + windowMs);
      });
      return Promise.resolve();
    },
    close: () => {
      if (unit === undefined) db.close();
      return Promise.resolve();
    },
  });
}
