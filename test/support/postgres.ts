/**
 * PostgreSQL for tests: each test file creates its own database and drops it afterwards; each
 * store under test gets a fresh schema inside it (cheap, so contract suites can start every case
 * empty). The server is `FC_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
 * trust auth). These tests never skip: without a reachable server they fail, with the URL to fix.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { migrate, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool, PostgresPoolOptions } from '../../src/storage/postgres/index.js';

/** The administrative URL tests create their databases through. */
export const PG_ADMIN_URL = process.env.FC_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A database made for one test file. */
export interface TestDatabase {
  /** URL of the database. */
  readonly url: string;
  readonly name: string;
  /** Drops it, closing every connection still open to it. */
  drop(): Promise<void>;
}

/** `url` with its database name replaced. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${PG_ADMIN_URL} (set FC_TEST_PG_URL): ${(err as Error).message}`,
    );
  }
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates a fresh, empty database. */
export async function createTestDatabase(prefix = 'fc_test'): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    url: withDatabase(PG_ADMIN_URL, name),
    name,
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * A database for the calling test file, created in `beforeAll` and dropped in `afterAll`. Read
 * `.url`/`.db` inside tests (they are set once `beforeAll` ran).
 */
export function useTestDatabase(prefix?: string): { readonly db: TestDatabase; readonly url: string } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(prefix);
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    get db() {
      if (db === undefined) throw new Error('test database used before beforeAll');
      return db;
    },
    get url() {
      if (db === undefined) throw new Error('test database used before beforeAll');
      return db.url;
    },
  };
}

let schemaSeq = 0;

/** A new schema name, unique within the process. */
export function nextSchema(): string {
  schemaSeq += 1;
  return `s${process.pid}_${schemaSeq}_${randomBytes(3).toString('hex')}`;
}

/**
 * Opens a pool over `url` in a fresh schema and migrates it. Close the pool when done (the
 * database is dropped with its schemas by {@link TestDatabase.drop}).
 */
export async function openMigratedPool(
  url: string,
  options: Omit<PostgresPoolOptions, 'url'> = {},
): Promise<PostgresPool> {
  const db = openPostgresPool({ url, schema: nextSchema(), max: 4, ...options });
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/**
 * Resolves once `count` other backends wait on a lock held by `holder`'s transaction (the
 * statements under test reached their wait). Polls the server; bounded by the test timeout.
 */
export async function waitUntilBlocked(holder: pg.Client, count: number): Promise<void> {
  const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  for (;;) {
    // Inside a transaction the activity view is read once and cached: drop it on every poll.
    await holder.query('SELECT pg_stat_clear_snapshot()');
    const r = await holder.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))',
      [pid],
    );
    if (r.rows[0]!.n >= count) return;
  }
}

/** A login role made for one test file: its URL on a database, and how to remove it. */
export interface TestRole {
  readonly name: string;
  /** `dbUrl` (with `?schema=`, if any) as this role. */
  url(dbUrl: string): string;
  /** Revokes what it was granted in `dbUrl`'s database and drops the role (cluster-wide). */
  drop(dbUrl: string): Promise<void>;
}

/**
 * Creates a login role and applies `sqlFile` (a `deploy/postgres/*-role.sql`) to it with the real
 * `psql`, as the file's header tells an operator, on `schema` of `dbUrl`.
 */
export async function createRoleWith(
  prefix: string,
  sqlFile: string,
  dbUrl: string,
  schema: string,
): Promise<TestRole> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE ROLE ${name} LOGIN`));
  const { execFileSync } = await import('node:child_process');
  execFileSync(
    'psql',
    [dbUrl, '-v', `schema=${schema}`, '-v', `role=${name}`, '-v', 'ON_ERROR_STOP=1', '-q', '-f', sqlFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return {
    name,
    url(db) {
      const u = new URL(db);
      u.username = name;
      return u.toString();
    },
    async drop(db) {
      const c = new pg.Client({ connectionString: db.replace(/\?.*$/, '') });
      await c.connect();
      try {
        await c.query(`DROP OWNED BY ${name}`);
      } finally {
        await c.end();
      }
      await admin((a) => a.query(`DROP ROLE IF EXISTS ${name}`));
    },
  };
}

/**
 * Applies a shipped role script (`deploy/postgres/*-role.sql`) with the real `psql` as the
 * artefacts run it: `-v password_env=<passwordEnv>`, the password (if any) only in that
 * environment variable, never on the command line.
 */
export function applyRoleSql(
  sqlFile: string,
  dbUrl: string,
  o: {
    readonly schema: string;
    readonly role: string;
    readonly passwordEnv: string;
    readonly password?: string;
  },
): { status: number | null; stdout: string; stderr: string; args: string[] } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[o.passwordEnv];
  if (o.password !== undefined) env[o.passwordEnv] = o.password;
  const args = [
    dbUrl,
    '-X',
    '-q',
    '-v',
    'ON_ERROR_STOP=1',
    '-v',
    `schema=${o.schema}`,
    '-v',
    `role=${o.role}`,
    '-v',
    `password_env=${o.passwordEnv}`,
    '-f',
    sqlFile,
  ];
  const r = spawnSync('psql', args, { env, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, args };
}

/** A role's login flag and stored password hash, or undefined when there is no such role. */
export async function roleAuth(
  name: string,
): Promise<{ rolcanlogin: boolean; rolpassword: string | null } | undefined> {
  return admin(
    async (c) =>
      (
        await c.query<{ rolcanlogin: boolean; rolpassword: string | null }>(
          'SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1',
          [name],
        )
      ).rows[0],
  );
}
