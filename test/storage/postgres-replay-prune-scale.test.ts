/**
 * The request-replay prune of PostgreSQL at scale (FC-INV-3): a table of 2.5 million rows, made
 * on the server with `generate_series`, is emptied of its expired rows by one prune call under a
 * 2 s statement deadline, because every statement of the prune examines a bounded batch through
 * an index (never a sort or rank of the whole table); the requests still within their window
 * are refused as replays after it. (Kept alone in its file: the bulk insert is most of its time.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresGateState, migrate, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';

const DAY = 86_400_000;
const T0 = 1_700_000_000_000;
const BULK = 2_500_000;
const pgdb = useTestDatabase('fc_replay_scale');

describe('PostgreSQL request-replay prune of millions of rows (FC-INV-3)', () => {
  let schema: string;
  // Setup statements (the bulk inserts) may run long; the stores under test get a 2 s deadline.
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

  const count = async (sql: string, params: unknown[] = []): Promise<number> =>
    Number((await setup.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

  it('FC-INV-3: one prune removes 2.5 million expired request rows in batches, under a 2 s statement deadline; live requests stay refused', async () => {
    // Two clients with 1.25 million requests (nonce rows) each, all 30 days old; values in key
    // order, so the server appends to its indexes instead of splitting pages all over them.
    await setup.pool.query(
      `INSERT INTO gate_request_nonces (identity, kind, value, seen_at)
       SELECT CASE WHEN g <= $2::int / 2 THEN 'bulk-a' ELSE 'bulk-b' END, 'nonce',
              'old-' || lpad(g::text, 8, '0'), $1::bigint + g / 1000
         FROM generate_series(1, $2::int) AS g`,
      [T0 - 30 * DAY, BULK],
    );
    await setup.pool.query('ANALYZE gate_request_nonces');
    const state = createPostgresGateState(db, { replayRetentionMs: 7 * DAY, replayKeepPerClient: 10 });
    try {
      // Requests within the window (the latest seen_at is T0): each client 20 rows, a third client 2.
      for (let i = 0; i < 10; i++) {
        for (const identity of ['bulk-a', 'bulk-b'])
          expect(
            await state.claim({ identity, nonce: `live-${i}`, requestId: `rid-${i}`, atMs: T0 - DAY + i }),
          ).toBe('fresh');
      }
      expect(await state.claim({ identity: 'small', nonce: 'n', requestId: 'r', atMs: T0 })).toBe('fresh');

      // The batch statement walks the (identity, seq) index: no sort or scan of the whole table.
      const plan = (
        await setup.pool.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT ctid FROM gate_request_nonces WHERE identity = 'bulk-a' AND seq > 0 AND seq < 1000000
           ORDER BY seq LIMIT 5000`,
        )
      ).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).toContain('gate_request_nonces_identity_seq');
      expect(plan).not.toMatch(/Seq Scan|Sort/);

      // One call, until done: every old row goes, none of the window's.
      expect(await state.pruneReplay()).toBe(BULK);
      expect(await count('SELECT count(*) AS n FROM gate_request_nonces')).toBe(42);
      expect(await count(`SELECT count(*) AS n FROM gate_request_nonces WHERE value LIKE 'old-%'`)).toBe(0);
      // A replay within its window is still refused, by nonce and by request id.
      expect(await state.claim({ identity: 'bulk-a', nonce: 'live-3', requestId: 'other', atMs: T0 })).toBe(
        'replayed',
      );
      expect(await state.claim({ identity: 'bulk-b', nonce: 'fresh-n', requestId: 'rid-9', atMs: T0 })).toBe(
        'replayed',
      );
      expect(await state.pruneReplay()).toBe(0);
    } finally {
      await state.close();
    }
  }, 120_000);
});
