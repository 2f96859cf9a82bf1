/**
 * The PostgreSQL backend (SPEC §1 "Distributed"): one pool over one database schema, migrated to
 * this build's version on open, handing every role its store. Several gate processes on one
 * schema share one truth: envelope and request nonces single use across them (one atomic
 * statement each), governance state read on every decision (no cache), breaker counts and spend
 * global, one ledger writer at a time by the writer lock, fenced by its epoch at every append,
 * the approval state (each vote counted once, each approved call issued once), and the policy
 * bundles with their active pointer.
 */
import { hostname } from 'node:os';
import type { Clock } from '../../kernel/index.js';
import type { StorageBackend } from '../backend.js';
import type { AcquireOptions, WriterLease } from '../writer-lock.js';
import { createPostgresApprovalStore } from './approval-store.js';
import { createPostgresBreakerStore } from './breaker-store.js';
import { createPostgresBundleMirror } from './bundle-mirror.js';
import { createPostgresGateState } from './gate-state.js';
import { createPostgresGovernanceState } from './governance-state.js';
import { createPostgresLedgerStore } from './ledger-store.js';
import { migrate } from './migrations.js';
import { createPostgresNonceStore } from './nonce-store.js';
import { openPostgresPool } from './pool.js';
import { createPostgresWriteProbe } from './probe.js';
import { createPostgresWriterLock } from './writer-lock.js';

/** Options of {@link openPostgresBackend}. */
export interface PostgresBackendOptions {
  /** `postgres://…` of the database. */
  readonly url: string;
  /** Schema of failclosed's tables (default `public`). */
  readonly schema?: string;
  readonly clock: Clock;
  /** Nonce rows are kept this long past `exp`: clock tolerance plus the longest envelope life. */
  readonly retainAfterExpSec: number;
  /** Request nonces and ids are kept this long (ms): at least twice the request timestamp tolerance. */
  readonly replayRetentionMs: number;
  /** Deadline of one statement (default 5000 ms): past it the store rejects and the role denies. */
  readonly statementTimeoutMs?: number;
  /** Deadline of opening a connection (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Most pooled connections (default 16). */
  readonly maxConnections?: number;
  /** Recorded with the writer lease (default `host:pid`). */
  readonly holder?: string;
}

/**
 * Opens the pool, migrates the schema (refusing a database newer than this build) and creates
 * the stores. The ledger store appends only under a lease from {@link StorageBackend.acquireWriter}:
 * before one is held, and after it is lost, every append is refused.
 */
export async function openPostgresBackend(options: PostgresBackendOptions): Promise<StorageBackend> {
  const db = openPostgresPool({
    url: options.url,
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    max: options.maxConnections ?? 16,
    ...(options.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.statementTimeoutMs }),
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
  });
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  let lease: WriterLease | undefined;
  // No lease, or a lost one: an epoch no lease ever has, so the fenced append refuses.
  const writerEpoch = (): number => (lease !== undefined && lease.isHeld() ? lease.epoch : -1);
  const ledger = createPostgresLedgerStore(db, { writerEpoch });
  const nonces = createPostgresNonceStore(db, {
    now: options.clock,
    retainAfterExpSec: options.retainAfterExpSec,
  });
  const governance = createPostgresGovernanceState(db);
  const gateState = createPostgresGateState(db, { replayRetentionMs: options.replayRetentionMs });
  const breakers = createPostgresBreakerStore(db);
  const approvals = createPostgresApprovalStore(db);
  const lock = createPostgresWriterLock(db, { holder: options.holder ?? `${hostname()}:${process.pid}` });
  let closing: Promise<void> | undefined;
  return {
    name: 'postgres',
    ledger,
    // A reader never appends: an epoch no lease has makes every write of it refused.
    openLedgerReader: () => createPostgresLedgerStore(db, { writerEpoch: () => -1 }),
    nonces,
    governance,
    gateState,
    breakers,
    approvals,
    bundles: createPostgresBundleMirror(db),
    probes: [createPostgresWriteProbe('database', db)],
    async acquireWriter(acquire: AcquireOptions): Promise<WriterLease> {
      if (lease !== undefined) throw new Error('the writer lease of this backend was already taken');
      lease = await lock.acquire(acquire);
      return lease;
    },
    close: () =>
      (closing ??= (async () => {
        await lease?.release();
        await ledger.close();
        await nonces.close();
        await gateState.close();
        await approvals.close();
        await db.close();
      })()),
  };
}
