/**
 * The ledger's single-writer lock (SPEC §4 "one writer", L7 ledger protection) on both backends:
 * the shared contract, then what only real processes and a real network show: a holder killed
 * with SIGKILL is replaced by a waiting standby, and a PostgreSQL holder cut off from the
 * database loses its lease and is fenced off by the next epoch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileWriterLock } from '../../src/storage/sqlite/index.js';
import pg from 'pg';
import {
  createPostgresWriterLock,
  openPostgresPool,
  writerSessionConfig,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { WRITER_LOCK_BUSY, WriterLockBusy } from '../../src/storage/writer-lock.js';
import type { WriterLease, WriterLock } from '../../src/storage/writer-lock.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';
import { killHard, startHolder } from './holder-process.js';
import type { HolderProcess } from './holder-process.js';
import { hasSettled, runWriterLockContract } from './writer-lock.contract.js';

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

runWriterLockContract('postgres', async () => {
  const db = await openMigratedPool(testDb.url);
  return {
    open: () => createPostgresWriterLock(db, { holder: 'contract', heartbeatMs: 50 }),
    cleanup: () => db.close(),
  };
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

/** The `ledger_writer` row as an append of the ledger store reads it: `FOR SHARE`, in a transaction. */
async function epochForShare(db: PostgresPool): Promise<number> {
  const r = await db.pool.query<{ epoch: string }>('SELECT epoch FROM ledger_writer WHERE id = 1 FOR SHARE');
  return Number(r.rows[0]!.epoch);
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

describe('the PostgreSQL writer lock (SPEC §4 one writer, L7 ledger protection)', () => {
  it('refuses a second process while one holds the lock, and hands it to a waiting standby when the holder is killed with SIGKILL', async () => {
    const db = await migratedPool();
    const holder = await startHolder(['postgres', testDb.url, db.schema]);
    started.push(holder);
    const lock = createPostgresWriterLock(db, { holder: 'standby', heartbeatMs: 50 });
    await expect(lock.acquire({ wait: false })).rejects.toMatchObject({ code: WRITER_LOCK_BUSY });
    const standby = holdIn(lock, { wait: true, pollMs: 10 });
    await killHard(holder);
    const lease = await standby;
    expect(lease.isHeld()).toBe(true);
    expect(lease.epoch).toBeGreaterThan(holder.epoch);
    expect(await epochForShare(db)).toBe(lease.epoch);
  });

  it('records the holder and its epoch in ledger_writer', async () => {
    const db = await migratedPool();
    const lease = await holdIn(createPostgresWriterLock(db, { holder: 'node-a:4242' }), { wait: false });
    const r = await db.pool.query<{ epoch: string; holder: string }>(
      'SELECT epoch, holder FROM ledger_writer',
    );
    expect(r.rows).toEqual([{ epoch: String(lease.epoch), holder: 'node-a:4242' }]);
  });

  it('loses the lease when its connection is cut: lost resolves, isHeld is false, and a standby takes over with a higher epoch', async () => {
    const db = await migratedPool();
    const { proxy, through } = await throughFaultProxy(db);
    const lease = await holdIn(createPostgresWriterLock(through, { holder: 'cut-off', heartbeatMs: 50 }), {
      wait: false,
    });
    const standby = holdIn(createPostgresWriterLock(db, { holder: 'standby', heartbeatMs: 50 }), {
      wait: true,
      pollMs: 10,
    });
    proxy.setMode('refuse');
    await lease.lost;
    expect(lease.isHeld()).toBe(false);
    const next = await standby;
    expect(next.epoch).toBeGreaterThan(lease.epoch);
    // Every append of the cut-off writer would now find an epoch that is not its own.
    expect(await epochForShare(db)).not.toBe(lease.epoch);
  });

  it('keeps a standby waiting through an unreachable database, and grants it once the database is back', async () => {
    const db = await migratedPool();
    const { proxy, through } = await throughFaultProxy(db);
    const lock = createPostgresWriterLock(through, { holder: 'standby', heartbeatMs: 50 });
    proxy.setMode('refuse');
    // Without waiting, an unreachable database is an error of its own, not a busy lock.
    const refused = await lock.acquire({ wait: false }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(Error);
    expect(refused).not.toBeInstanceOf(WriterLockBusy);
    const before = proxy.accepted();
    const standby = holdIn(lock, { wait: true, pollMs: 10 });
    await until(() => proxy.accepted() >= before + 2);
    expect(await hasSettled(standby)).toBe(false);
    proxy.setMode('pass');
    const lease = await standby;
    expect(lease.isHeld()).toBe(true);
    expect(await epochForShare(db)).toBe(lease.epoch);
  });

  it("asks the server to end a vanished holder's session within seconds (TCP keepalives and user timeout on the lock session)", async () => {
    const db = await migratedPool();
    const client = new pg.Client(writerSessionConfig(db));
    await client.connect();
    closers.push(() => client.end());
    const show = async (name: string): Promise<unknown> =>
      (await client.query<{ v: string }>(`SELECT current_setting('${name}') AS v`)).rows[0]!.v;
    expect(await show('tcp_keepalives_idle')).toBe('5');
    expect(await show('tcp_keepalives_count')).toBe('3');
    expect(await show('tcp_user_timeout')).toBe('10000');
    // The lock session still lives in the deployment's schema.
    expect(await show('search_path')).toBe(db.schema);
  });

  it('is fenced off by an UPDATE takeover of another holder: its epoch is stale and its lease is lost', async () => {
    const db = await migratedPool();
    const lease = await holdIn(createPostgresWriterLock(db, { holder: 'first', heartbeatMs: 20 }), {
      wait: false,
    });
    expect(await epochForShare(db)).toBe(lease.epoch);
    await db.pool.query(
      "UPDATE ledger_writer SET epoch = epoch + 1, holder = 'second', since = now() WHERE id = 1",
    );
    expect(await epochForShare(db)).toBeGreaterThan(lease.epoch);
    await lease.lost;
    expect(lease.isHeld()).toBe(false);
  });

  it('raises the epoch only after an append in flight (holding the row FOR SHARE) has committed', async () => {
    const db = await migratedPool();
    const first = await holdIn(createPostgresWriterLock(db, { holder: 'first', heartbeatMs: 50 }), {
      wait: false,
    });
    // An append of the first writer: checks its epoch and is still in its transaction.
    const append = await db.pool.connect();
    closers.push(() => Promise.resolve(append.release()));
    await append.query('BEGIN');
    const seen = await append.query<{ epoch: string }>(
      'SELECT epoch FROM ledger_writer WHERE id = 1 FOR SHARE',
    );
    expect(Number(seen.rows[0]!.epoch)).toBe(first.epoch);
    let committed = false;
    const standby = holdIn(createPostgresWriterLock(db, { holder: 'second', heartbeatMs: 50 }), {
      wait: true,
      pollMs: 10,
    }).then((lease) => ({ lease, afterCommit: committed }));
    await first.release();
    // The standby holds the advisory lock and its epoch UPDATE is waiting on the append's row lock.
    await waitForBlockedEpochUpdate(db);
    committed = true;
    await append.query('COMMIT');
    const { lease, afterCommit } = await standby;
    expect(afterCommit).toBe(true);
    expect(lease.epoch).toBe(first.epoch + 1);
  });

  it('keys the lock by schema: deployments in different schemas of one database do not exclude each other', async () => {
    const a = await migratedPool();
    const b = await migratedPool();
    const la = await holdIn(createPostgresWriterLock(a, { holder: 'a' }), { wait: false });
    const lb = await holdIn(createPostgresWriterLock(b, { holder: 'b' }), { wait: false });
    expect(la.isHeld() && lb.isHeld()).toBe(true);
  });

  it('rejects, without waiting, a schema that was never migrated (no ledger_writer row to fence with)', async () => {
    const db = openPostgresPool({ url: testDb.url, schema: 'never_migrated' });
    closers.push(() => db.close());
    const lock = createPostgresWriterLock(db, { holder: 'x' });
    // 42P01 undefined_table: not a busy lock, and not worth waiting for.
    await expect(lock.acquire({ wait: true, pollMs: 10 })).rejects.toMatchObject({ code: '42P01' });
    // The failed attempt dropped the advisory lock with its session: the next one is not busy.
    await expect(lock.acquire({ wait: false })).rejects.toMatchObject({ code: '42P01' });
  });

  it('rejects a holder name outside 1–200 characters as a caller mistake (TypeError)', async () => {
    const db = await migratedPool();
    expect(() => createPostgresWriterLock(db, { holder: '' })).toThrow(TypeError);
    expect(() => createPostgresWriterLock(db, { holder: 'x'.repeat(201) })).toThrow(TypeError);
    expect(() => createPostgresWriterLock(db, { holder: 'x', heartbeatMs: 0 })).toThrow(TypeError);
  });
});

/** Resolves once `predicate` holds, checking every 10 ms (the test's timeout bounds the wait). */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** Resolves once a backend of this database waits on a lock in an UPDATE of ledger_writer. */
async function waitForBlockedEpochUpdate(db: PostgresPool): Promise<void> {
  for (;;) {
    const r = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE ledger_writer%'`,
    );
    if (r.rows[0]!.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
