/**
 * The PostgreSQL decision lock (`ApprovalStore.withDecisionLock`; OE-INV-019/020, fail closed):
 * a session advisory lock on a dedicated pooled connection. Held elsewhere past the pool's
 * `lock_timeout`, it rejects without running the step, and the connection that waited is
 * discarded; a lock connection that breaks during the step is discarded too (never returned to
 * the pool), and the lock is free again for the other replicas.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalStore } from '../../src/control-plane/index.js';
import {
  createPostgresApprovalStore,
  DECISION_LOCK_CLASS,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const database = useTestDatabase('fc_decision_lock');

let pools: PostgresPool[] = [];
let a: ApprovalStore;
let b: ApprovalStore;
let holder: pg.Client;
beforeAll(async () => {
  const db = await openMigratedPool(database.url, { statementTimeoutMs: 300 });
  const other = openPostgresPool({ url: database.url, schema: db.schema, max: 4, statementTimeoutMs: 300 });
  pools = [db, other];
  a = createPostgresApprovalStore(db);
  b = createPostgresApprovalStore(other);
  holder = new pg.Client(db.clientConfig);
  await holder.connect();
});
afterAll(async () => {
  await holder.end();
  for (const p of pools) await p.close();
});

const keyOf = (id: string): [number, string] => [DECISION_LOCK_CLASS, `${pools[0]!.schema}:${id}`];

describe('PostgreSQL decision lock (OE-INV-019/020, fail closed)', () => {
  it('held by another session past lock_timeout: rejects, the step never runs, the waiting connection is discarded', async () => {
    await holder.query('SELECT pg_advisory_lock($1::int4, hashtext($2))', keyOf('d-held'));
    let ran = false;
    await expect(
      a.withDecisionLock('d-held', () => {
        ran = true;
        return Promise.resolve();
      }),
    ).rejects.toThrow('the approval decision lock was not granted');
    expect(ran).toBe(false);
    expect(pools[0]!.pool.totalCount).toBe(pools[0]!.pool.idleCount);
    // Another decision is not held up.
    expect(await a.withDecisionLock('d-free', () => Promise.resolve('free'))).toBe('free');
    await holder.query('SELECT pg_advisory_unlock($1::int4, hashtext($2))', keyOf('d-held'));
    expect(await a.withDecisionLock('d-held', () => Promise.resolve('after'))).toBe('after');
  });

  it('a lock connection that breaks during the step is discarded and the lock is free for the other replicas', async () => {
    const before = pools[0]!.pool.totalCount;
    const out = await a.withDecisionLock('d-broken', async (held) => {
      expect(held()).toBe(true);
      // The connection holding the lock is cut (a network failure, a server restart of the session).
      const r = await holder.query<{ pid: number }>(
        `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND classid::bigint = $1::bigint AND objid::bigint = (hashtext($2)::bigint & 4294967295)`,
        keyOf('d-broken'),
      );
      expect(r.rows).toHaveLength(1);
      await holder.query('SELECT pg_terminate_backend($1)', [r.rows[0]!.pid]);
      // The session ended with the lock: another replica can take it now.
      expect(await b.withDecisionLock('d-broken', () => Promise.resolve('b'))).toBe('b');
      // And the step is told: it may no longer write as the decision's one writer.
      await expect.poll(() => held()).toBe(false);
      return 'a';
    });
    expect(out).toBe('a');
    // The broken connection went away instead of back to the pool.
    expect(pools[0]!.pool.totalCount).toBeLessThanOrEqual(before);
    expect(pools[0]!.pool.totalCount).toBe(pools[0]!.pool.idleCount);
    expect(await a.withDecisionLock('d-broken', () => Promise.resolve('again'))).toBe('again');
  });
});
