/**
 * The PostgreSQL connection pool every store of the PostgreSQL backend shares (SPEC §1
 * "Distributed": PostgreSQL as the shared ledger, nonce store and state).
 *
 * Every statement has a server-side `statement_timeout` and a client-side `query_timeout`, and a
 * connection attempt a `connectionTimeoutMillis`: a database that is stopped, slow or unreachable
 * makes the store reject within a bounded time, and the role maps the rejection to its
 * `*_UNAVAILABLE` denial (fail closed, L7 degraded mode). Errors of idle connections are absorbed
 * by the pool (the next query opens a new connection); they never crash the process.
 */
import type pg from 'pg';
import { pgDriver } from './driver.js';
import { prepareStatements } from './prepared.js';

/** Options of {@link openPostgresPool}. */
export interface PostgresPoolOptions {
  /** `postgres://user@host:port/database` (libpq URL; `sslmode` and friends honoured by `pg`). */
  readonly url: string;
  /**
   * Schema holding failclosed's tables (default `public`). Several deployments can share one
   * database, each in its own schema. `[a-z_][a-z0-9_]{0,62}`.
   */
  readonly schema?: string;
  /** Most connections (default 10). */
  readonly max?: number;
  /** Deadline of one statement, enforced by the server and the client (default 5000 ms). */
  readonly statementTimeoutMs?: number;
  /** Deadline of opening a connection (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** `application_name` shown in `pg_stat_activity` (default `failclosed`). */
  readonly applicationName?: string;
}

/** A pool with the schema it serves. */
export interface PostgresPool {
  readonly pool: pg.Pool;
  /** The schema (validated), already on every connection's `search_path`. */
  readonly schema: string;
  /** The options it was opened with, for opening a sibling connection (the writer lock). */
  readonly clientConfig: pg.ClientConfig;
  /** Ends every connection. Idempotent. */
  close(): Promise<void>;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws `TypeError` unless `name` is a schema name failclosed accepts (it is put in SQL text). */
export function assertSchemaName(name: string): void {
  if (!SCHEMA_RE.test(name)) throw new TypeError('schema must match [a-z_][a-z0-9_]{0,62}');
}

/**
 * Opens (lazily: no connection until the first query) a pool over `options.url`. Every
 * connection gets `search_path` = the schema, the statement deadline and
 * `idle_in_transaction_session_timeout`, so a client that dies mid-transaction frees its locks.
 */
export function openPostgresPool(options: PostgresPoolOptions): PostgresPool {
  const schema = options.schema ?? 'public';
  assertSchemaName(schema);
  const statementTimeoutMs = options.statementTimeoutMs ?? 5000;
  const clientConfig: pg.ClientConfig = {
    connectionString: options.url,
    application_name: options.applicationName ?? 'failclosed',
    statement_timeout: statementTimeoutMs,
    // The client gives up a little after the server would have: either way the caller sees a rejection.
    query_timeout: statementTimeoutMs + 500,
    lock_timeout: statementTimeoutMs,
    idle_in_transaction_session_timeout: Math.max(10_000, 2 * statementTimeoutMs),
    connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
    options: `-c search_path=${schema}`,
    keepAlive: true,
  };
  const pool = new (pgDriver().Pool)({ ...clientConfig, max: options.max ?? 10, idleTimeoutMillis: 30_000 });
  // An idle connection's error (server restart, network cut) must not crash the process; the pool
  // drops that connection and the next query reconnects or rejects.
  pool.on('error', () => undefined);
  // A checked-out connection whose server ends (restart, failover, pg_terminate_backend, a cut)
  // emits 'error' while the pool no longer listens: absorbed here, so the query in flight rejects
  // and its caller denies, instead of the process ending on an unhandled 'error' event.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    // Each statement parsed once per connection, not at every call (prepared.ts).
    prepareStatements(client);
  });
  let ended: Promise<void> | undefined;
  return {
    pool,
    schema,
    clientConfig,
    close: () => (ended ??= pool.end()),
  };
}

/**
 * Runs `fn` in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it
 * rejects (the rejection is passed on). A connection whose ROLLBACK fails is destroyed, not
 * returned to the pool.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  isolation: 'read committed' | 'repeatable read' | 'serializable' = 'read committed',
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(`BEGIN ISOLATION LEVEL ${isolation.toUpperCase()}`);
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error('rollback failed');
    }
    throw err;
  } finally {
    client.release(broken);
  }
}
