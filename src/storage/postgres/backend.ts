/**
 * The PostgreSQL backend (SPEC §1 "Distributed"): one pool over one database schema, migrated to
 * this build's version on open, handing every role its store. Several gate processes on one
 * schema share one truth: envelope and request nonces single use across them (one atomic
 * statement each), governance state read on every decision (no cache), breaker counts and spend
 * global, the approval state (each vote counted once, each approved call issued once), and the
 * policy bundles with their active pointer.
 *
 * Every replica is active: each holds an instance lease (`instance-lease.ts`) and appends to the
 * ledger on the lease's session under the ledger's transaction-scoped append lock, continuing the
 * chain from the committed head (SPEC §4 "one writer", per transaction). Its open requests are
 * its own while it lives; once it is gone another replica claims and closes them.
 */
import { hostname } from 'node:os';
import type { Clock } from '../../kernel/index.js';
import type { OrphanClaim, StorageBackend } from '../backend.js';
import type { AcquireOptions, WriterLease } from '../writer-lock.js';
import { acquireInstanceLease, type InstanceLease } from './instance-lease.js';
import { createPostgresApprovalStore } from './approval-store.js';
import { createPostgresConsoleStore } from './console-store.js';
import { createPostgresDecisionClaims } from './decision-claims.js';
import { createPostgresOperatorStore } from './operator-store.js';
import { createPostgresScheduleStore } from './schedule-store.js';
import { createPostgresBreakerStore } from './breaker-store.js';
import { createPostgresBundleMirror } from './bundle-mirror.js';
import { createPostgresGateState } from './gate-state.js';
import { createPostgresGovernanceState } from './governance-state.js';
import { createPostgresLedgerStore } from './ledger-store.js';
import { migrate } from './migrations.js';
import { createPostgresNonceStore, postgresNonceStoreIdentity } from './nonce-store.js';
import { openPostgresPool } from './pool.js';
import { createPostgresWriteProbe } from './probe.js';

/** The most owners whose requests one orphan sweep claims. */
const OWNERS_PER_SWEEP = 64;

/** Options of {@link openPostgresBackend}. */
export interface PostgresBackendOptions {
  /** `postgres://…` of the database. */
  readonly url: string;
  /** Schema of failclosed's tables (default `public`). */
  readonly schema?: string;
  readonly clock: Clock;
  /** Nonce rows are kept this long past `exp`: clock tolerance plus the longest envelope life. */
  readonly retainAfterExpSec: number;
  /**
   * Request nonces and ids, and the Control Plane's decision claims, are kept this long (ms): at
   * least twice the request timestamp tolerance.
   */
  readonly replayRetentionMs: number;
  /** Deadline of one statement (default 5000 ms): past it the store rejects and the role denies. */
  readonly statementTimeoutMs?: number;
  /** Deadline of opening a connection (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Most pooled connections (default 16). */
  readonly maxConnections?: number;
  /** Prefix of this gate's instance id (default `host:pid`); a random suffix makes it unique. */
  readonly holder?: string;
  /** Time between two checks of the instance lease's session (default 1000 ms). */
  readonly heartbeatMs?: number;
}

/**
 * Opens the pool, migrates the schema (refusing a database newer than this build) and creates
 * the stores. The ledger store appends only under this instance's lease from
 * {@link StorageBackend.acquireWriter}: before one is held, and after it is lost, every append is
 * refused.
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
  let lease: InstanceLease | undefined;
  /** The last owner the previous orphan sweep tried: the next window starts after it. */
  let sweepAfter = '';
  const ledger = createPostgresLedgerStore(db, { shared: () => lease });
  const nonces = createPostgresNonceStore(db, {
    now: options.clock,
    retainAfterExpSec: options.retainAfterExpSec,
  });
  const governance = createPostgresGovernanceState(db);
  const gateState = createPostgresGateState(db, { replayRetentionMs: options.replayRetentionMs });
  const decisionClaims = createPostgresDecisionClaims(db, { retentionMs: options.replayRetentionMs });
  const breakers = createPostgresBreakerStore(db);
  const approvals = createPostgresApprovalStore(db);
  const consoleStore = createPostgresConsoleStore(db);
  const operators = createPostgresOperatorStore(db);
  const held = (): InstanceLease => {
    if (lease === undefined || !lease.isHeld()) throw new Error('this gate instance holds no lease');
    return lease;
  };
  let closing: Promise<void> | undefined;
  return {
    name: 'postgres',
    ledger,
    nonceStoreIdentity: () => postgresNonceStoreIdentity(db),
    // A reader never writes.
    openLedgerReader: () => createPostgresLedgerStore(db, { readonly: true }),
    shared: true,
    instance: () => held().instance,
    async claimOrphanedRequests(): Promise<OrphanClaim> {
      const own = held();
      const open = (await ledger.openRequests?.()) ?? [];
      // At most a few owners' locks per pass (each is a session lock held until released): a Gate
      // naming thousands of owners cannot fill the lock table. The window moves on each pass, so
      // that as many live owners (whose locks are never taken) cannot hide the gone ones behind.
      // Ordered by name, the window starting after the last owner the previous pass tried.
      const all = [...new Set(open.map((r) => r.owner ?? ''))].filter((o) => o !== own.instance).sort();
      const after = all.findIndex((o) => o > sweepAfter);
      const from = all.length <= OWNERS_PER_SWEEP || after < 0 ? 0 : after;
      const owners = [...all, ...all].slice(from, from + Math.min(all.length, OWNERS_PER_SWEEP));
      sweepAfter = owners.length === all.length ? '' : (owners[owners.length - 1] ?? '');
      const claimed = new Set(await own.claimOwners(owners));
      try {
        // Read again now that their instances are held: what they closed before they went is gone.
        const requests = ((await ledger.openRequests?.()) ?? []).filter((r) => claimed.has(r.owner ?? ''));
        return { requests, release: () => own.releaseOwners([...claimed]) };
      } catch (err) {
        await own.releaseOwners([...claimed]);
        throw err;
      }
    },
    nonces,
    governance,
    gateState,
    breakers,
    approvals,
    decisionClaims,
    console: consoleStore,
    operators,
    schedules: createPostgresScheduleStore(db),
    bundles: createPostgresBundleMirror(db),
    probes: [createPostgresWriteProbe('database', db)],
    async acquireWriter(acquire: AcquireOptions): Promise<WriterLease> {
      if (lease !== undefined) throw new Error('the lease of this backend was already taken');
      if (acquire.wait)
        throw new TypeError('every gate on PostgreSQL serves at once: a standby applies to SQLite only');
      acquire.signal?.throwIfAborted();
      lease = await acquireInstanceLease(db, {
        name: options.holder ?? `${hostname()}:${process.pid}`,
        ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
      });
      return lease;
    },
    close: () =>
      (closing ??= (async () => {
        await lease?.release();
        await ledger.close();
        await nonces.close();
        await gateState.close();
        await decisionClaims.close();
        await approvals.close();
        await db.close();
      })()),
  };
}
