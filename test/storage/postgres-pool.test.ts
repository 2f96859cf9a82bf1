/**
 * The PostgreSQL pool under a connection that dies mid-transaction (L7 degraded mode: deny, never
 * crash): a checked-out connection whose server process is terminated rejects the transaction in
 * flight, the process lives on, and the pool serves the next query on a fresh connection.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { inTransaction, type PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pgdb = useTestDatabase();
const pools: PostgresPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});

describe('PostgreSQL pool: a connection terminated during a transaction (L7 degraded mode)', () => {
  it('rejects the transaction in flight and keeps the process and the pool alive', async () => {
    const db = await openMigratedPool(pgdb.url);
    pools.push(db);
    const admin = new pg.Client({ connectionString: pgdb.url });
    await admin.connect();
    try {
      const failed = inTransaction(db.pool, async (c) => {
        const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        // The server process of this transaction is ended while its statement runs.
        const sleeping = c.query('SELECT pg_sleep(5)');
        // Awaited below; observed now, since it may reject while the terminate is sent.
        sleeping.catch(() => undefined);
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await sleeping;
      });
      await expect(failed).rejects.toThrow(/terminat|Connection|connection/);
      const r = await db.pool.query<{ one: number }>('SELECT 1 AS one');
      expect(r.rows[0]!.one).toBe(1);
    } finally {
      await admin.end();
    }
  });
});
