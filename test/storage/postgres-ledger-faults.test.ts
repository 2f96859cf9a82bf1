/**
 * The PostgreSQL ledger store when its database fails (SPEC §4 "A write that cannot be confirmed
 * is a failure, and the governed action is denied", L7 degraded mode: deny; STYLE fault
 * injection: throws, hangs past timeout, returns garbage). A TCP proxy in front of the real
 * server refuses, hangs or garbles; every store call rejects with `ERR_LEDGER_UNAVAILABLE` within
 * the pool's deadlines, the writer denies, and once the database is back the store works again.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../src/ledger/index.js';
import {
  createPostgresLedgerStore,
  openPostgresPool,
  type PostgresPool,
} from '../../src/storage/postgres/index.js';
import { openLedger, sampleInput } from '../ledger/fixtures.js';
import { chain } from '../ledger/store.contract.js';
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
afterEach(async () => {
  proxy.setMode('pass');
  for (const p of pools) await p.close();
  pools = [];
});

const DEADLINES = { statementTimeoutMs: 300, connectTimeoutMs: 300 };
const UNAVAILABLE = { name: 'FailclosedError', code: 'ERR_LEDGER_UNAVAILABLE' };

/** A migrated schema, and a store on it whose connections go through the proxy, with short deadlines. */
async function storeBehindProxy(): Promise<{ direct: PostgresPool; store: LedgerStore }> {
  const direct = await openMigratedPool(pgdb.url);
  pools.push(direct);
  const proxied = openPostgresPool({
    url: proxy.urlThrough(pgdb.url),
    schema: direct.schema,
    max: 2,
    ...DEADLINES,
  });
  pools.push(proxied);
  return { direct, store: createPostgresLedgerStore(proxied) };
}

const query = { index: 1, jti: 'j-1', decision_id: 'd-1' };

describe('PostgreSQL ledger store under database faults (SPEC §4, L7 degraded mode: deny)', () => {
  it.each<ProxyMode>(['refuse', 'hang', 'garbage'])(
    'a database that is %s: appendBatch, head and readEnvelopeContext reject, nothing is half-written, then it recovers',
    async (mode) => {
      const { direct, store } = await storeBehindProxy();
      const entries = chain(6);
      await store.appendBatch(entries.slice(0, 3));
      proxy.setMode(mode);
      await expect(store.appendBatch(entries.slice(3, 5))).rejects.toMatchObject(UNAVAILABLE);
      await expect(store.head()).rejects.toMatchObject(UNAVAILABLE);
      await expect(store.readEnvelopeContext(query)).rejects.toMatchObject(UNAVAILABLE);
      expect((await createPostgresLedgerStore(direct).head()).size).toBe(3);
      proxy.setMode('pass');
      await store.appendBatch(entries.slice(3));
      expect(await store.readRange(0, 6)).toEqual(entries);
      expect((await store.readEnvelopeContext(query)).issued).toEqual([entries[2]]);
    },
  );

  it('a statement held past its deadline (a lock the database never grants in time) rejects, then the store works again', async () => {
    const { direct, store } = await storeBehindProxy();
    const entries = chain(4);
    await store.appendBatch(entries.slice(0, 2));
    const holder = new pg.Client({ connectionString: pgdb.url, options: `-c search_path=${direct.schema}` });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE ledger_entries IN ACCESS EXCLUSIVE MODE');
      await expect(store.appendBatch(entries.slice(2))).rejects.toMatchObject(UNAVAILABLE);
      await expect(store.head()).rejects.toMatchObject(UNAVAILABLE);
      await expect(store.readEnvelopeContext(query)).rejects.toMatchObject(UNAVAILABLE);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    await store.appendBatch(entries.slice(2));
    expect((await store.head()).size).toBe(4);
  });

  it('the writer over it denies appends and lookups with ERR_LEDGER_UNAVAILABLE, then continues the chain', async () => {
    const { store } = await storeBehindProxy();
    const ledger = await openLedger(store);
    await ledger.append(sampleInput(0));
    for (const mode of ['refuse', 'hang', 'garbage'] as const) {
      proxy.setMode(mode);
      await expect(ledger.append(sampleInput(1))).rejects.toMatchObject(UNAVAILABLE);
      await expect(ledger.readEnvelopeContext(query)).rejects.toMatchObject(UNAVAILABLE);
      proxy.setMode('pass');
    }
    expect(ledger.size()).toBe(1);
    const r = await ledger.append(sampleInput(1));
    expect(r.index).toBe(1);
    expect((await store.entry(1))?.prev_hash).toBe((await store.entry(0))?.entry_hash);
    await ledger.close();
  });
});
