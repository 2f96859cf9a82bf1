/**
 * The PostgreSQL nonce store: the shared NonceStore contract, plus what only this backend has
 * (the READ COMMITTED race of a winner committed after the deciding statement's snapshot, prunes
 * serialized against consumptions, rows parsed at the boundary, a shared pool left open).
 * SPEC §7 scenarios 6 and 8, OE-INV-017, FC-INV-4.
 */
import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NonceStore } from '../../src/execution/index.js';
import {
  createPostgresNonceStore,
  openPostgresPool,
  postgresNonceStoreIdentity,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { runNonceStoreContract } from '../execution/nonce-store.contract.js';
import { openMigratedPool, useTestDatabase, waitUntilBlocked } from '../support/postgres.js';

const pgdb = useTestDatabase('fc_nonce');
const T = 1_700_000_000;

runNonceStoreContract('postgres', async () => {
  // Every open() is a replica of its own: its own pool on the one migrated schema.
  const first = await openMigratedPool(pgdb.url);
  const pools: PostgresPool[] = [first];
  let handedOut = 0;
  return {
    open: () => {
      handedOut += 1;
      const db = handedOut === 1 ? first : openPostgresPool({ url: pgdb.url, schema: first.schema, max: 4 });
      if (db !== first) pools.push(db);
      return Promise.resolve(createPostgresNonceStore(db, { now: () => T * 1000 }));
    },
    destroy: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
});

describe('PostgreSQL nonce store specifics (OE-INV-017, FC-INV-4)', () => {
  const pools: PostgresPool[] = [];
  const stores: NonceStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });
  const setup = async (options: { now?: () => number; retainAfterExpSec?: number } = {}) => {
    // Bulk cases queue a thousand calls on the pool: its queue wait is the connect deadline.
    const db = await openMigratedPool(pgdb.url, { connectTimeoutMs: 30_000 });
    pools.push(db);
    const store = createPostgresNonceStore(db, { now: options.now ?? (() => T * 1000 + 999), ...options });
    stores.push(store);
    return { db, store };
  };
  const n = (jti: string, exp = T + 60) => ({ jti, tenant: 'acme', exp, decision_id: `d-${jti}` });

  it('names its store the same from every pool on one schema, and another schema otherwise (docs/jobs.md)', async () => {
    const { db } = await setup();
    // Another URL naming the same server, database and schema.
    const url = new URL(pgdb.url);
    url.hostname = { localhost: '127.0.0.1', '127.0.0.1': 'localhost' }[url.hostname] ?? url.hostname;
    url.searchParams.set('application_name', 'fc-identity');
    const sibling = openPostgresPool({ url: url.toString(), schema: db.schema, max: 1 });
    const other = await openMigratedPool(pgdb.url);
    pools.push(sibling, other);
    const id = await postgresNonceStoreIdentity(db);
    expect(id).toMatch(new RegExp(`^postgres:\\d+/[a-z0-9_]+/${db.schema}$`));
    // Another URL to the same schema is the same store; another schema is another one.
    expect(await postgresNonceStoreIdentity(sibling)).toBe(id);
    expect(await postgresNonceStoreIdentity(other)).not.toBe(id);
  });
  const rows = async (db: PostgresPool) =>
    (
      await db.pool.query(
        'SELECT jti, tenant, exp::int AS exp, decision_id, consumed_at::int AS consumed_at, voided FROM envelope_nonces ORDER BY jti',
      )
    ).rows;

  it('records each consumption and void with its tenant, decision, time and kind', async () => {
    const { db, store } = await setup();
    expect(await store.consume(n('ran'))).toBe('fresh');
    expect(await store.void(n('voided'))).toBe('voided');
    expect(await rows(db)).toEqual([
      { jti: 'ran', tenant: 'acme', exp: T + 60, decision_id: 'd-ran', consumed_at: T, voided: false },
      { jti: 'voided', tenant: 'acme', exp: T + 60, decision_id: 'd-voided', consumed_at: T, voided: true },
    ]);
  });

  // A transaction on a connection of its own holds the winning row uncommitted, so the store's
  // deciding statement takes its snapshot before the winner commits, then waits on the jti.
  const raceWinnerCommittedAfterSnapshot = async (winnerVoided: boolean) => {
    const { db, store } = await setup();
    const other = new pg.Client({ connectionString: pgdb.url, options: `-c search_path=${db.schema}` });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at, voided)
         VALUES ('held', 'acme', $1, 'd', $2, $3)`,
        [T + 60, T, winnerVoided],
      );
      const consumed = store.consume(n('held'));
      const voided = store.void(n('held'));
      await waitUntilBlocked(other, 2);
      await other.query('COMMIT');
      return { consumed: await consumed, voided: await voided };
    } finally {
      await other.end();
    }
  };

  it('scenario 6: a consumption committed after the deciding snapshot is still seen: replayed, never fresh', async () => {
    expect(await raceWinnerCommittedAfterSnapshot(false)).toEqual({
      consumed: 'replayed',
      voided: 'consumed',
    });
  });

  it('a void committed after the deciding snapshot is still seen: consumptions answer voided', async () => {
    expect(await raceWinnerCommittedAfterSnapshot(true)).toEqual({ consumed: 'voided', voided: 'voided' });
  });

  it('a winner that rolls back leaves the jti to the waiting consumption: fresh exactly once', async () => {
    const { db, store } = await setup();
    const other = new pg.Client({ connectionString: pgdb.url, options: `-c search_path=${db.schema}` });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at) VALUES ('held', 'acme', $1, 'd', $2)`,
        [T + 60, T],
      );
      const consumed = store.consume(n('held'));
      await waitUntilBlocked(other, 1);
      await other.query('ROLLBACK');
      expect(await consumed).toBe('fresh');
      expect(await store.consume(n('held'))).toBe('replayed');
    } finally {
      await other.end();
    }
  });

  it('OE-INV-017: a prune waits for consumptions in flight, which decide on the horizon they saw', async () => {
    const { db, store } = await setup();
    await store.consume(n('a', T));
    await store.consume(n('b', T + 500));
    const other = new pg.Client({ connectionString: pgdb.url, options: `-c search_path=${db.schema}` });
    await other.connect();
    try {
      // A transaction holding a consumption open: the prune must wait for it, then delete it too.
      await other.query('BEGIN');
      await other.query(
        `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at) VALUES ('open', 'acme', $1, 'd', $2)`,
        [T + 10, T],
      );
      const pruned = store.prune({ nowSec: T + 1000, toleranceSec: 0 });
      await waitUntilBlocked(other, 1);
      await other.query('COMMIT');
      // Horizon min(T+1000, T+500) = T+500: 'a' and 'open' go, 'b' stays.
      expect(await pruned).toBe(2);
      expect((await rows(db)).map((r) => r.jti)).toEqual(['b']);
      expect(await store.consume(n('open', T + 10))).toBe('replayed');
      expect(await store.consume(n('a', T))).toBe('replayed');
    } finally {
      await other.end();
    }
  });

  it('OE-INV-017: a consumption arriving during a prune decides on the raised horizon, never on the rows it deleted', async () => {
    const { db, store } = await setup();
    await store.consume(n('a', T));
    const other = new pg.Client({ connectionString: pgdb.url, options: `-c search_path=${db.schema}` });
    await other.connect();
    try {
      // A prune in progress, its statements run by hand: lock, raise the horizon, delete below it.
      await other.query('BEGIN');
      await other.query('LOCK TABLE envelope_nonces IN SHARE ROW EXCLUSIVE MODE');
      await other.query('UPDATE envelope_nonce_horizon SET horizon = $1 WHERE id = 1', [T + 100]);
      await other.query('DELETE FROM envelope_nonces WHERE exp < $1', [T + 100]);
      const replay = store.consume(n('a', T));
      await waitUntilBlocked(other, 1);
      await other.query('COMMIT');
      expect(await replay).toBe('replayed');
      expect(await rows(db)).toEqual([]);
    } finally {
      await other.end();
    }
  });

  it('prunes itself in the background on the 1000th call through the store, on the injected clock', async () => {
    let nowMs = T * 1000;
    const { db, store } = await setup({ now: () => nowMs, retainAfterExpSec: 0 });
    await store.consume(n('old', T));
    await store.consume(n('mid', T + 150));
    nowMs = (T + 100) * 1000;
    await Promise.all(Array.from({ length: 997 }, (_, i) => store.consume(n(`bulk-${i}`, T + 200))));
    expect(await rows(db)).toHaveLength(999);
    // The 1000th starts a prune in the background: horizon min(T+100, T+200) - 0 deletes 'old' only.
    await store.consume(n('last', T + 200));
    await vi.waitFor(async () => expect((await rows(db)).map((r) => r.jti)).not.toContain('old'), {
      timeout: 10_000,
    });
    expect(await rows(db)).toHaveLength(999);
    nowMs = T * 1000;
    expect(await store.consume(n('old', T))).toBe('replayed');
  });

  it('without a retention it never prunes itself', async () => {
    const { db, store } = await setup({ now: () => (T + 10 ** 6) * 1000 });
    const verdicts = await Promise.all(Array.from({ length: 1001 }, (_, i) => store.consume(n(`e-${i}`, T))));
    expect(new Set(verdicts)).toEqual(new Set(['fresh']));
    expect(await rows(db)).toHaveLength(1001);
  });

  it('refuses a retention that is not a non-negative integer, and a prune with a non-numeric clock', async () => {
    const { db, store } = await setup();
    for (const retainAfterExpSec of [-1, 1.5, Number.NaN])
      expect(() => createPostgresNonceStore(db, { now: () => 0, retainAfterExpSec })).toThrow(TypeError);
    await expect(store.prune({ nowSec: Number.NaN, toleranceSec: 0 })).rejects.toBeInstanceOf(TypeError);
    await expect(store.prune({ nowSec: T, toleranceSec: Infinity })).rejects.toBeInstanceOf(TypeError);
  });

  it('FC-INV-4: a missing prune horizon rejects every consumption and void (never fresh)', async () => {
    const { db, store } = await setup();
    await db.pool.query('DELETE FROM envelope_nonce_horizon');
    await expect(store.consume(n('x'))).rejects.toThrow('nonce prune horizon is missing');
    await expect(store.void(n('x'))).rejects.toThrow('nonce prune horizon is missing');
    expect(await rows(db)).toEqual([]);
  });

  it('FC-INV-4: a row of an unexpected shape rejects (the voided column altered to text)', async () => {
    const { db, store } = await setup();
    await store.consume(n('x'));
    await db.pool.query('ALTER TABLE envelope_nonces ALTER COLUMN voided DROP DEFAULT');
    await db.pool.query('ALTER TABLE envelope_nonces ALTER COLUMN voided TYPE text USING voided::text');
    // The statement prepared before the change is refused by the server and sent again (prepared.ts).
    await expect(store.consume(n('x'))).rejects.toThrow('column envelope_nonces.voided is not boolean');
  });

  it('close() waits for calls in flight, then refuses, and leaves the shared pool open', async () => {
    const { db, store } = await setup();
    const pending = store.consume(n('queued'));
    await store.close();
    expect(await pending).toBe('fresh');
    await expect(store.consume(n('late'))).rejects.toThrow('nonce store closed');
    await expect(store.prune({ nowSec: T, toleranceSec: 0 })).rejects.toThrow('nonce store closed');
    // The pool is the backend's: another store over it still works.
    const again = createPostgresNonceStore(db, { now: () => T * 1000 });
    stores.push(again);
    expect(await again.consume(n('queued'))).toBe('replayed');
  });
});
