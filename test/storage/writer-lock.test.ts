/**
 * The ledger's single-writer lock (SPEC §4 "one writer", L7 ledger protection) on both backends:
 * the file lock's contract, then what only real processes and a real network show: a holder
 * killed with SIGKILL is replaced by a waiting standby; on PostgreSQL, every gate holds an
 * instance lease, a killed holder's instance is claimed by another once its session is gone, and
 * a holder cut off from the database loses its lease.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileWriterLock } from '../../src/storage/sqlite/index.js';
import pg from 'pg';
import {
  acquireInstanceLease,
  openPostgresPool,
  writerSessionConfig,
  type InstanceLease,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { WRITER_LOCK_BUSY } from '../../src/storage/writer-lock.js';
import type { WriterLease, WriterLock } from '../../src/storage/writer-lock.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';
import { killHard, startHolder } from './holder-process.js';
import type { HolderProcess } from './holder-process.js';
import { runWriterLockContract } from './writer-lock.contract.js';

const testDb = useTestDatabase();

function tempLockFile(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-writer-lock-'));
  return { path: join(dir, 'writer.lock'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

runWriterLockContract('sqlite-file', () => {
  const file = tempLockFile();
  return Promise.resolve({
    open: () => createFileWriterLock(file.path),
    cleanup: () => Promise.resolve(file.cleanup()),
  });
});

/** Processes and leases a test started, ended after it whatever happened. */
const started: HolderProcess[] = [];
const leases: WriterLease[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const h of started.splice(0)) await killHard(h);
  await Promise.all(leases.splice(0).map((l) => l.release()));
  for (const close of closers.splice(0).reverse()) await close();
});

async function holdIn(lock: WriterLock, options: Parameters<WriterLock['acquire']>[0]): Promise<WriterLease> {
  const lease = await lock.acquire(options);
  leases.push(lease);
  return lease;
}

const instanceLeases: InstanceLease[] = [];
afterEach(async () => {
  await Promise.all(instanceLeases.splice(0).map((l) => l.release()));
});

async function leaseOn(db: PostgresPool, name: string, heartbeatMs = 200): Promise<InstanceLease> {
  const lease = await acquireInstanceLease(db, { name, heartbeatMs });
  instanceLeases.push(lease);
  return lease;
}

async function migratedPool(): Promise<PostgresPool> {
  const db = await openMigratedPool(testDb.url);
  closers.push(() => db.close());
  return db;
}

/** A pool over the same schema as `db`, connected through a fault proxy. */
async function throughFaultProxy(db: PostgresPool): Promise<{ proxy: FaultProxy; through: PostgresPool }> {
  const url = new URL(testDb.url);
  const proxy = await startFaultProxy({ host: url.hostname, port: Number(url.port || 5432) });
  closers.push(() => proxy.close());
  const through = openPostgresPool({ url: proxy.urlThrough(testDb.url), schema: db.schema });
  closers.push(() => through.close());
  return { proxy, through };
}

describe('the file writer lock across processes (SPEC §4 one writer)', () => {
  it('refuses a second process while one holds the lock, and hands it to a waiting standby when the holder is killed with SIGKILL', async () => {
    const file = tempLockFile();
    closers.push(() => Promise.resolve(file.cleanup()));
    const holder = await startHolder(['sqlite', file.path]);
    started.push(holder);
    const lock = createFileWriterLock(file.path);
    await expect(lock.acquire({ wait: false })).rejects.toMatchObject({ code: WRITER_LOCK_BUSY });
    const standby = holdIn(lock, { wait: true, pollMs: 10 });
    await killHard(holder);
    const lease = await standby;
    expect(lease.isHeld()).toBe(true);
    expect(lease.epoch).toBeGreaterThan(holder.epoch);
    // And the other way round: a process started now finds the lock taken.
    await expect(startHolder(['sqlite', file.path])).rejects.toThrow(/exited without the lock/);
  });
});

describe('the PostgreSQL instance lease (SPEC §4 one writer per transaction, §5, L7 ledger protection)', () => {
  it('a second lease on the schema is granted: every gate serves, each under its own instance id', async () => {
    const db = await migratedPool();
    const a = await leaseOn(db, 'a');
    const b = await leaseOn(db, 'b');
    expect(a.isHeld() && b.isHeld()).toBe(true);
    expect(a.instance).not.toBe(b.instance);
    // Each holds its own instance lock: neither can claim the other while it lives.
    expect(await a.claimOwners([b.instance])).toEqual([]);
    await b.release();
    expect(await a.claimOwners([b.instance])).toEqual([b.instance]);
    await a.releaseOwners([b.instance]);
  });

  it('a holder killed with SIGKILL frees its instance: another claims it once the session is gone', async () => {
    const db = await migratedPool();
    const holder = await startHolder(['postgres', testDb.url, db.schema]);
    started.push(holder);
    const other = await leaseOn(db, 'other');
    expect(await other.claimOwners([holder.instance])).toEqual([]);
    await killHard(holder);
    for (;;) {
      const got = await other.claimOwners([holder.instance]);
      if (got.length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });

  it('a holder that hangs while its host still answers TCP (SIGSTOP) is gone after ten missed beats: another claims it', async () => {
    const db = await migratedPool();
    const holder = await startHolder(['postgres', testDb.url, db.schema, '200']);
    started.push(holder);
    const other = await leaseOn(db, 'other');
    expect(await other.claimOwners([holder.instance])).toEqual([]);
    holder.child.kill('SIGSTOP');
    try {
      // The server ends the idle session (idle_session_timeout, 10 × its 200 ms heartbeat).
      for (;;) {
        const got = await other.claimOwners([holder.instance]);
        if (got.length === 1) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      holder.child.kill('SIGCONT');
    }
  });

  it('keeps the lease through a busy process: an answer that arrived while the event loop was blocked is a beat', async () => {
    const db = await migratedPool();
    // Beats every 100 ms with a 50 ms deadline; the server ends the session only after 10 idle beats.
    const lease = await acquireInstanceLease(db, { name: 'busy', heartbeatMs: 100, heartbeatTimeoutMs: 50 });
    instanceLeases.push(lease);
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 110));
      // A long synchronous step (a bundle compile on a starved CPU), far past the beat's deadline.
      const until = Date.now() + 300;
      while (Date.now() < until);
    }
    expect(lease.isHeld()).toBe(true);
  });

  it('loses the lease when its connection is cut: lost resolves, isHeld is false, its session refuses work', async () => {
    const db = await migratedPool();
    const { proxy, through } = await throughFaultProxy(db);
    const lease = await leaseOn(through, 'cut-off', 50);
    proxy.setMode('refuse');
    await lease.lost;
    expect(lease.isHeld()).toBe(false);
    await expect(lease.run((c) => c.query('SELECT 1'))).rejects.toThrow(/no longer held/);
  });

  it("asks the server to end a vanished holder's session within seconds (TCP keepalives and user timeout on the lease session)", async () => {
    const db = await migratedPool();
    const client = new pg.Client(writerSessionConfig(db));
    await client.connect();
    closers.push(() => client.end());
    const show = async (name: string): Promise<unknown> =>
      (await client.query<{ v: string }>(`SELECT current_setting('${name}') AS v`)).rows[0]!.v;
    expect(await show('tcp_keepalives_idle')).toBe('5');
    expect(await show('tcp_keepalives_count')).toBe('3');
    expect(await show('tcp_user_timeout')).toBe('10000');
    // The lease session still lives in the deployment's schema.
    expect(await show('search_path')).toBe(db.schema);
  });

  it('rejects an instance name outside 1–120 characters as a caller mistake (TypeError)', async () => {
    const db = await migratedPool();
    await expect(acquireInstanceLease(db, { name: '' })).rejects.toThrow(TypeError);
    await expect(acquireInstanceLease(db, { name: 'x'.repeat(121) })).rejects.toThrow(TypeError);
    await expect(acquireInstanceLease(db, { name: 'x', heartbeatMs: 0 })).rejects.toThrow(TypeError);
  });
});
