/**
 * The PostgreSQL stores with the database failing in front of them (a TCP proxy between the pool
 * and the server): stopped (connections refused), slow past the deadlines (every byte held), or
 * answering garbage. Every consumption, void, prune and governance read rejects (never `'fresh'`,
 * never "all clear"), the executor denies with ERR_NONCE_STORE_UNAVAILABLE without running the
 * tool, and once the database is back the same stores work again (SPEC §7 scenario 8,
 * OE-INV-017, FC-INV-4, OE-INV-025).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/execution/index.js';
import type { NonceStore } from '../../src/execution/index.js';
import {
  createPostgresGovernanceState,
  createPostgresNonceStore,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import type { PostgresGovernanceState, PostgresPool } from '../../src/storage/postgres/index.js';
import { call, removeScratch, world } from '../execution/executor-world.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';

const pgdb = useTestDatabase('fc_faults');
const T = 1_700_000_000;

let proxy: FaultProxy;
let direct: PostgresPool;
let proxied: PostgresPool;
let nonces: NonceStore;
let governance: PostgresGovernanceState;

beforeAll(async () => {
  direct = await openMigratedPool(pgdb.url);
  proxy = await startFaultProxy({ host: '127.0.0.1', port: 5432 });
  proxied = openPostgresPool({
    url: proxy.urlThrough(pgdb.url),
    schema: direct.schema,
    max: 4,
    statementTimeoutMs: 300,
    connectTimeoutMs: 300,
  });
  nonces = createPostgresNonceStore(proxied, { now: () => T * 1000 });
  governance = createPostgresGovernanceState(proxied);
});

afterAll(async () => {
  await nonces.close();
  await governance.close();
  await proxied.close();
  await direct.close();
  await proxy.close();
  removeScratch();
});

beforeEach(() => {
  proxy.setMode('pass');
});

let seq = 0;
const n = (prefix: string) => {
  seq += 1;
  return { jti: `${prefix}-${seq}`, tenant: 'acme', exp: T + 60, decision_id: `d-${seq}` };
};

describe('PostgreSQL stores behind a failing database (SPEC §7 scenario 8, FC-INV-4)', () => {
  for (const mode of ['refuse', 'hang', 'garbage'] as const) {
    it(`OE-INV-017: database ${mode} → consume, void and prune reject; after it is back they work again`, async () => {
      // Pooled connections exist and are healthy before the fault.
      expect(await nonces.consume(n('warm'))).toBe('fresh');
      proxy.setMode(mode);
      const during = n('during');
      const voided = n('void');
      await expect(nonces.consume(during)).rejects.toBeInstanceOf(Error);
      await expect(nonces.void(voided)).rejects.toBeInstanceOf(Error);
      await expect(nonces.prune({ nowSec: T, toleranceSec: 0 })).rejects.toBeInstanceOf(Error);
      proxy.setMode('pass');
      // Nothing of the failed calls reached the database: the same jtis are still unused.
      expect(await nonces.consume(during)).toBe('fresh');
      expect(await nonces.consume(during)).toBe('replayed');
      expect(await nonces.void(voided)).toBe('voided');
    });

    it(`OE-INV-025: database ${mode} → governance check and snapshot reject, never all clear; after it is back they read the state`, async () => {
      await governance.apply({ kind: 'kill_switch', on: true });
      expect((await governance.check('acme', 'sess-1')).kill_switch).toBe(true);
      proxy.setMode(mode);
      await expect(governance.check('acme', 'sess-1')).rejects.toBeInstanceOf(Error);
      await expect(governance.snapshot()).rejects.toBeInstanceOf(Error);
      await expect(governance.apply({ kind: 'kill_switch', on: false })).rejects.toBeInstanceOf(Error);
      proxy.setMode('pass');
      expect((await governance.check('acme', 'sess-1')).kill_switch).toBe(true);
      await governance.apply({ kind: 'kill_switch', on: false });
      expect(await governance.check('acme', 'sess-1')).toEqual({
        kill_switch: false,
        tenant_locked: false,
        session_quarantined: false,
        session_tainted: false,
      });
    });
  }

  it('FC-INV-4: a statement held past the deadline by a lock elsewhere → consume, void and check reject, nothing recorded', async () => {
    const holder = await direct.pool.connect();
    const held = n('held');
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE envelope_nonces, governance_kill_switch IN ACCESS EXCLUSIVE MODE');
      await expect(nonces.consume(held)).rejects.toBeInstanceOf(Error);
      await expect(nonces.void(held)).rejects.toBeInstanceOf(Error);
      await expect(governance.check('acme', null)).rejects.toBeInstanceOf(Error);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await nonces.consume(held)).toBe('fresh');
  });

  it('scenario 8: the executor over the PostgreSQL nonce store, database stopped → ERR_NONCE_STORE_UNAVAILABLE, the tool never ran', async () => {
    // The executor's own nonce deadline is wider than the pool's: the pool's rejection decides.
    const w = world({ nonces, timeouts: { ledgerMs: 1000, nonceMs: 5000, adapterGraceMs: 50 } });
    const executor = createExecutor(w.deps);
    proxy.setMode('refuse');
    const denied = await executor.execute(call(w.envelope()));
    expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('execution.receipt')).toHaveLength(0);
    // Back up: the same wiring executes, so the denial above came from the database being down.
    proxy.setMode('pass');
    expect(await executor.execute(call(w.envelope()))).toMatchObject({ outcome: 'executed' });
    expect(w.spy.calls).toHaveLength(1);
  });
});
