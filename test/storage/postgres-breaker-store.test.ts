/**
 * The PostgreSQL breaker store (OE-INV-021): the BreakerStore contract with two pools on one
 * schema as two replicas, concurrency between replicas (the spend limit and the counts hold),
 * database faults through a TCP proxy (every method rejects, then recovers), rows read back as
 * untrusted input, and two Control Planes sharing the tenant daily spend limit.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BreakerStore, ControlPlaneResult } from '../../src/control-plane/index.js';
import {
  MIGRATIONS,
  createPostgresBreakerStore,
  migrate,
  openPostgresPool,
  type PostgresPool,
} from '../../src/storage/postgres/index.js';
import { runBreakerStoreContract } from '../control-plane/breaker-store.contract.js';
import { request, rig, type Rig } from '../control-plane/support.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy, type FaultProxy, type ProxyMode } from '../support/tcp-fault-proxy.js';

const pgdb = useTestDatabase();
let proxy: FaultProxy;
beforeAll(async () => {
  const u = new URL(pgdb.url);
  proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) });
});
afterAll(async () => {
  await proxy.close();
});

let pools: PostgresPool[] = [];
let rigs: Rig[] = [];
afterEach(async () => {
  proxy.setMode('pass');
  for (const r of rigs) await r.close();
  for (const p of pools) await p.close();
  pools = [];
  rigs = [];
});

async function migrated(): Promise<PostgresPool> {
  const db = await openMigratedPool(pgdb.url);
  pools.push(db);
  return db;
}

/** A second pool on the schema of `db`: another replica on the same database. */
function sibling(
  db: PostgresPool,
  url = pgdb.url,
  over: { statementTimeoutMs?: number; connectTimeoutMs?: number } = {},
) {
  const p = openPostgresPool({ url, schema: db.schema, max: 4, ...over });
  pools.push(p);
  return p;
}

/** Two stores on one schema through two pools: two replicas. */
async function replicas(): Promise<readonly [BreakerStore, BreakerStore, PostgresPool]> {
  const db = await migrated();
  return [createPostgresBreakerStore(db), createPostgresBreakerStore(sibling(db)), db];
}

runBreakerStoreContract(
  'postgres',
  async () => createPostgresBreakerStore(await migrated()),
  async () => {
    const [a, b] = await replicas();
    return [a, b] as const;
  },
);

const W = 1000;
const admit = (
  s: BreakerStore,
  now: number,
  over: { principal?: string; tenant?: string; call?: string } = {},
) => s.admit({ principal: 'p', tenant: 't', call: 'echo\u0000h', now, windowMs: W, ...over });

describe('PostgreSQL breaker store across replicas (OE-INV-021)', () => {
  it('200 trials of one spend limit hit at once from two replicas: never passed, exactly filled', async () => {
    const [a, b] = await replicas();
    for (let trial = 0; trial < 200; trial++) {
      const cost = 1 + (trial % 7);
      const fits = 3 + (trial % 4);
      const limit = cost * fits;
      const tries = Array.from({ length: fits + 4 }, (_, i) =>
        (i % 2 === 0 ? a : b).reserveSpend(`t${trial}`, 20_000, cost, limit),
      );
      const granted = (await Promise.all(tries)).filter(Boolean).length;
      expect(granted * cost).toBeLessThanOrEqual(limit);
      expect(granted).toBe(fits);
    }
  });

  it('concurrent admissions from two replicas: no count is lost, each count is answered once', async () => {
    const [a, b] = await replicas();
    const n = 40;
    const all = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        admit(i % 2 === 0 ? a : b, 100 + (i % 3), { principal: i % 4 === 0 ? 'q' : 'p' }),
      ),
    );
    const got = (key: 'total' | 'inSession' | 'inTenant' | 'sameCall', who?: 'p' | 'q') =>
      all
        .filter((_, i) => who === undefined || (i % 4 === 0) === (who === 'q'))
        .map((c) => (c.open === null ? c[key] : -1))
        .sort((x, y) => x - y);
    const upTo = (k: number) => Array.from({ length: k }, (_, i) => i + 1);
    expect(got('inTenant')).toEqual(upTo(n));
    for (const who of ['p', 'q'] as const) {
      const k = who === 'q' ? n / 4 : n - n / 4;
      expect(got('total', who)).toEqual(upTo(k));
      expect(got('inSession', who)).toEqual(upTo(k));
      expect(got('sameCall', who)).toEqual(upTo(k));
    }
    expect(await admit(a, 200)).toEqual({ open: null, total: 31, inSession: 31, inTenant: 41, sameCall: 31 });
  });

  it('a breaker tripped on one replica is open on the other; a reset on one clears it for both', async () => {
    const [a, b] = await replicas();
    await admit(a, 0);
    await a.trip('p', 'session_calls', Number.POSITIVE_INFINITY);
    expect(await admit(b, 1)).toEqual({ open: 'session_calls' });
    await b.reset({ principal: 'p' });
    expect(await admit(a, 2)).toEqual({ open: null, total: 1, inSession: 1, inTenant: 2, sameCall: 1 });
  });

  it('prunes the buckets that left the window of the keys an admission touches, and sweeps stale keys a few at a time', async () => {
    const [a, , db] = await replicas();
    const rows = async () =>
      (await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM breaker_buckets')).rows[0]?.n;
    // A window of 1000 ms counts in buckets of 16 ms: the five hits share one per key.
    for (let i = 0; i < 5; i++) await admit(a, i, { call: `c${i}` });
    expect(await rows()).toBe('7');
    // Kept for two windows (a clock stepped back by up to one still counts them).
    await admit(a, 1500);
    expect(await rows()).toBe('10');
    // 1500–1503 in the bucket [1488, 1504), 1504 in the next one.
    for (let i = 1; i < 5; i++) await admit(a, 1500 + i, { call: `c${i}` });
    expect(await rows()).toBe('16');
    // Another principal and tenant, two windows later: at most 8 stale buckets go per admission.
    await admit(a, 10_000, { principal: 'q', tenant: 'u' });
    expect(await rows()).toBe('11');
    await admit(a, 10_001, { principal: 'q', tenant: 'u' });
    expect(await rows()).toBe('3');
    expect(await admit(a, 10_002)).toEqual({ open: null, total: 11, inSession: 1, inTenant: 1, sameCall: 1 });
  });

  it('a schema of version 8 upgrades in place: its hits become buckets and count as before', async () => {
    const db = openPostgresPool({ url: pgdb.url, schema: `fc_bk_${Date.now().toString(36)}`, max: 2 });
    pools.push(db);
    await migrate(
      db,
      MIGRATIONS.filter((m) => m.version <= 8),
    );
    for (const at of [100, 100, 900])
      await db.pool.query(
        "INSERT INTO breaker_hits (kind, key, sub, at) VALUES (0, convert_to('p', 'UTF8'), ''::bytea, $1)",
        [at],
      );
    await migrate(db);
    const s = createPostgresBreakerStore(db);
    expect(await admit(s, 1050)).toMatchObject({ inSession: 4 });
    expect(await admit(s, 1950)).toMatchObject({ inSession: 2 });
  });

  it('rows are parsed and values checked: an unknown breaker or a value not stored exactly rejects (fail closed)', async () => {
    const [a, , db] = await replicas();
    await a.trip('p', 'loop', 500);
    await db.pool.query("UPDATE breaker_open SET breaker = 'bogus'");
    await expect(a.openBreaker('p', 0)).rejects.toBeInstanceOf(TypeError);
    await expect(admit(a, 0)).rejects.toBeInstanceOf(TypeError);
    await a.reset({ principal: 'p' });
    expect(await a.openBreaker('p', 0)).toBeNull();
    await expect(admit(a, 0, { principal: 'p\ud800' })).rejects.toBeInstanceOf(TypeError);
    await expect(a.reserveSpend('t', 1.5, 1, 10)).rejects.toBeInstanceOf(TypeError);
    await expect(a.trip('p', 'loop', Number.NaN)).rejects.toBeInstanceOf(TypeError);
  });
});

describe('PostgreSQL breaker store under database faults (OE-INV-021, L7 degraded mode: deny)', () => {
  it.each<ProxyMode>(['refuse', 'hang', 'garbage'])(
    'a database that is %s: every method rejects, never a count or true; then it recovers',
    async (mode) => {
      const db = await migrated();
      const store = createPostgresBreakerStore(
        sibling(db, proxy.urlThrough(pgdb.url), { statementTimeoutMs: 300, connectTimeoutMs: 300 }),
      );
      expect(await admit(store, 0)).toMatchObject({ open: null, total: 1 });
      proxy.setMode(mode);
      await expect(admit(store, 1)).rejects.toBeInstanceOf(Error);
      await expect(store.reserveSpend('t', 1, 1, 100)).rejects.toBeInstanceOf(Error);
      await expect(store.openBreaker('p', 1)).rejects.toBeInstanceOf(Error);
      await expect(store.trip('p', 'loop', 10)).rejects.toBeInstanceOf(Error);
      await expect(store.releaseSpend('t', 1, 1)).rejects.toBeInstanceOf(Error);
      await expect(store.reset({ tenant: 't' })).rejects.toBeInstanceOf(Error);
      proxy.setMode('pass');
      expect(await admit(store, 2)).toEqual({ open: null, total: 2, inSession: 2, inTenant: 2, sameCall: 2 });
      expect(await store.reserveSpend('t', 1, 100, 100)).toBe(true);
      expect(await store.openBreaker('p', 2)).toBeNull();
    },
  );
});

const code = (res: ControlPlaneResult): string => (res.outcome === 'deny' ? res.code : 'ALLOWED');
let reqSeq = 0;
const pay = (cents: number, session: string) =>
  request('pay', { amount_cents: cents }, { request_id: `pgb-${++reqSeq}`, session });

describe('two Control Planes over one PostgreSQL breaker store (OE-INV-021)', () => {
  it('the tenant daily spend limit holds across replicas', async () => {
    const [storeA, storeB] = await replicas();
    const deps = {
      breakers: { maxSpendCentsPerTenantDay: 10 },
      deadlines: { ledgerMs: 2000, policyMs: 2000, stateMs: 2000 },
    };
    const a = await rig({ breakerStore: storeA, ...deps });
    rigs.push(a);
    const b = await rig({ breakerStore: storeB, ...deps });
    rigs.push(b);
    expect(code(await a.cp.decide(pay(6, 'sa')))).toBe('ALLOWED');
    expect(code(await b.cp.decide(pay(6, 'sb')))).toBe('ERR_CIRCUIT_OPEN');
    expect(code(await b.cp.decide(pay(4, 'sc')))).toBe('ALLOWED');
    expect(code(await a.cp.decide(pay(1, 'sd')))).toBe('ERR_CIRCUIT_OPEN');
  });
});
