/**
 * Pruning of the PostgreSQL stores (FC-INV-3, OE-INV-017, OE-INV-021): schema version 3 adds the
 * breaker prune's indexes; an envelope-nonce table of a million rows is emptied of its expired
 * rows by one prune, in batches, while consumptions answer; the breaker store prunes itself in
 * the background and its limits hold after; and a prune that fails changes no decision: claims,
 * admissions and reservations answer as before, and the rows wait for a later prune.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NonceConsumption } from '../../src/execution/index.js';
import {
  createPostgresBreakerStore,
  createPostgresGateState,
  createPostgresNonceStore,
  migrate,
  MIGRATIONS,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { nextSchema, openMigratedPool, useTestDatabase } from '../support/postgres.js';

const DAY = 86_400_000;
const T0 = 1_700_000_000_000;
const pgdb = useTestDatabase('fc_prune');

const countOf = async (db: PostgresPool, sql: string, params: unknown[] = []): Promise<number> =>
  Number((await db.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

/** Makes every DELETE on `table` fail, as a prune would meet a broken database (test-only fault). */
async function refuseDeletes(db: PostgresPool, table: string): Promise<void> {
  await db.pool.query(`CREATE FUNCTION refuse_delete_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'delete refused by the test'; END $$`);
  await db.pool.query(`CREATE TRIGGER refuse_delete BEFORE DELETE ON ${table}
    FOR EACH ROW EXECUTE FUNCTION refuse_delete_${table}()`);
}

describe('PostgreSQL schema version 3: prune indexes', () => {
  it('the breaker prune deletes through indexes: open breakers by end, spend by day', async () => {
    const db = await openMigratedPool(pgdb.url);
    try {
      expect(MIGRATIONS.map((m) => m.version)).toContain(3);
      const r = await db.pool.query<{ indexname: string }>(
        'SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname',
        [db.schema],
      );
      const names = r.rows.map((x) => x.indexname);
      expect(names).toEqual(
        expect.arrayContaining(['breaker_open_until', 'breaker_spend_day', 'breaker_buckets_until']),
      );
    } finally {
      await db.close();
    }
  });
});

describe('PostgreSQL envelope-nonce prune at scale (OE-INV-017)', () => {
  let schema: string;
  // Setup statements (the bulk insert) may run long; the store under test gets a 2 s deadline.
  let setup: PostgresPool;
  let db: PostgresPool;
  beforeAll(async () => {
    schema = nextSchema();
    setup = openPostgresPool({ url: pgdb.url, schema, max: 2, statementTimeoutMs: 120_000 });
    await migrate(setup);
    db = openPostgresPool({ url: pgdb.url, schema, max: 4, statementTimeoutMs: 2000 });
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    await setup?.close();
  });
  const count = (sql: string): Promise<number> => countOf(setup, sql);

  it('OE-INV-017: one prune removes a million expired envelope nonces in batches; consumptions answer meanwhile and a live jti stays single use', async () => {
    const T = 1_700_000_000;
    await setup.pool.query(
      `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at)
       SELECT 'old-' || lpad(g::text, 8, '0'), 'acme', $1::bigint + g / 10000, 'd', $1::bigint
         FROM generate_series(1, 1000000) AS g`,
      [T - 10 * 86_400],
    );
    await setup.pool.query('ANALYZE envelope_nonces');
    const store = createPostgresNonceStore(db, { now: () => T * 1000 });
    const n = (jti: string, exp: number): NonceConsumption => ({
      jti,
      tenant: 'acme',
      exp,
      decision_id: 'd',
    });
    try {
      expect(await store.consume(n('live', T + 60))).toBe('fresh');
      const pruned = store.prune({ nowSec: T, toleranceSec: 300 });
      // Consumptions are not held back while the rows go (only while the horizon moves).
      const during = await store.consume(n('during', T + 60));
      expect(await pruned).toBe(1_000_000);
      expect(during).toBe('fresh');
      expect(await count('SELECT count(*) AS n FROM envelope_nonces')).toBe(2);
      expect(await store.consume(n('live', T + 60))).toBe('replayed');
      expect(await store.consume(n('old-00000007', T - 10 * 86_400))).toBe('replayed');
    } finally {
      await store.close();
    }
  }, 120_000);
});

describe('PostgreSQL breaker prune (OE-INV-021)', () => {
  it('prunes itself in the background every 1000 admissions; the limits hold after', async () => {
    const db = await openMigratedPool(pgdb.url);
    try {
      const store = createPostgresBreakerStore(db);
      const now = 10 * DAY;
      expect(await store.reserveSpend('t', 2, 100, 100)).toBe(true);
      expect(await store.reserveSpend('t', 10, 100, 100)).toBe(true);
      await store.trip('old', 'loop', now - 2 * DAY);
      await store.trip('p', 'session_calls', Number.POSITIVE_INFINITY);
      for (let i = 0; i < 1000; i++)
        await store.admit({ principal: `s${i}`, tenant: 't', call: 'c', now, windowMs: 1000 });
      await vi.waitFor(
        async () =>
          expect(await countOf(db, 'SELECT count(*) AS n FROM breaker_spend WHERE day = 2')).toBe(0),
        { timeout: 10_000 },
      );
      expect(await countOf(db, 'SELECT count(*) AS n FROM breaker_open WHERE until IS NOT NULL')).toBe(0);
      // Today's spend, the open breaker and every lifetime count stay.
      expect(await store.reserveSpend('t', 10, 1, 100)).toBe(false);
      expect(await store.openBreaker('p', now)).toBe('session_calls');
      expect(await countOf(db, 'SELECT count(*) AS n FROM breaker_totals')).toBe(1000);
    } finally {
      await db.close();
    }
  }, 60_000);

  it('a failed prune changes no decision: it rejects, admissions and reservations answer as before', async () => {
    const db = await openMigratedPool(pgdb.url);
    try {
      const store = createPostgresBreakerStore(db);
      expect(await store.reserveSpend('t', 2, 100, 100)).toBe(true);
      await refuseDeletes(db, 'breaker_spend');
      await expect(store.prune({ now: 10 * DAY, windowMs: 1000 })).rejects.toThrow(/delete refused/);
      expect(await store.reserveSpend('t', 10, 100, 100)).toBe(true);
      expect(await store.reserveSpend('t', 10, 1, 100)).toBe(false);
      expect(
        await store.admit({ principal: 'p', tenant: 't', call: 'c', now: 10 * DAY, windowMs: 1000 }),
      ).toEqual({
        open: null,
        total: 1,
        inSession: 1,
        inTenant: 1,
        sameCall: 1,
      });
      expect(await countOf(db, 'SELECT count(*) AS n FROM breaker_spend WHERE day = 2')).toBe(1);
    } finally {
      await db.close();
    }
  });
});

describe('PostgreSQL request-replay prune that fails (FC-INV-3)', () => {
  it('a failed prune, called or in the background, changes no verdict: fresh stays fresh, a replay stays refused', async () => {
    const db = await openMigratedPool(pgdb.url);
    const state = createPostgresGateState(db, {
      replayRetentionMs: 7 * DAY,
      replayKeepPerClient: 1,
      pruneEvery: 2,
    });
    try {
      expect(await state.claim({ identity: 'a', nonce: 'old', requestId: 'old', atMs: T0 - 30 * DAY })).toBe(
        'fresh',
      );
      await refuseDeletes(db, 'gate_request_nonces');
      for (let i = 0; i < 6; i++)
        expect(await state.claim({ identity: 'a', nonce: `n${i}`, requestId: `r${i}`, atMs: T0 })).toBe(
          'fresh',
        );
      await expect(state.pruneReplay()).rejects.toThrow(/delete refused/);
      expect(await state.claim({ identity: 'a', nonce: 'n3', requestId: 'other', atMs: T0 })).toBe(
        'replayed',
      );
      expect(await state.claim({ identity: 'a', nonce: 'old', requestId: 'x', atMs: T0 })).toBe('replayed');
      // Once the database deletes again, the next prune catches up (a background one may be first).
      await db.pool.query('DROP TRIGGER refuse_delete ON gate_request_nonces');
      await state.pruneReplay();
      expect(await countOf(db, `SELECT count(*) AS n FROM gate_request_nonces WHERE value = 'old'`)).toBe(0);
      expect(await countOf(db, 'SELECT count(*) AS n FROM gate_request_nonces')).toBe(12);
    } finally {
      await state.close();
      await db.close();
    }
  });
});
