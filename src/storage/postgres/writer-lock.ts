/**
 * The ledger's single-writer lock for the PostgreSQL backend (SPEC §4 "one writer", L7 ledger
 * protection).
 *
 * The lock is a session advisory lock held on a dedicated connection (not a pooled one: the
 * lock lives exactly as long as that session), keyed by the schema so that deployments sharing
 * a database in different schemas do not exclude each other. PostgreSQL drops the lock when the
 * session ends, whatever ended it: a release, a crash or SIGKILL of the holder, a network cut.
 *
 * On acquiring, the holder raises `ledger_writer.epoch` (the fencing token) on the same session.
 * Every append of the PostgreSQL ledger store reads that epoch `FOR SHARE` inside its
 * transaction and refuses to commit unless it equals its lease's epoch; the raising `UPDATE`
 * waits for appends in flight, so once a standby has taken over, the previous writer can never
 * append again, even before it notices that its lease is gone.
 *
 * The holder's session is checked every `heartbeatMs` (it reads the epoch, with a deadline): an
 * error, a closed connection, a missed deadline or an epoch raised by someone else loses the
 * lease. A waiting standby polls `pg_try_advisory_lock` (never the blocking form, so that waiting
 * stays abortable).
 */
import pg from 'pg';
import type { PostgresPool } from './pool.js';
import { rowInt } from './rows.js';
import {
  WriterLockBusy,
  pauseUnlessAborted,
  pollInterval,
  type AcquireOptions,
  type WriterLease,
  type WriterLock,
} from '../writer-lock.js';

/** Options of {@link createPostgresWriterLock}. */
export interface PostgresWriterLockOptions {
  /** Who holds the lease, recorded in `ledger_writer.holder` (e.g. host and pid); 1–200 characters. */
  readonly holder: string;
  /** Time between two checks of the holder's session (default 1000 ms). */
  readonly heartbeatMs?: number;
  /** Deadline of one check; past it the lease is lost (default twice `heartbeatMs`). */
  readonly heartbeatTimeoutMs?: number;
}

/** First key of the two-key advisory lock: "fcwr" read as a 32-bit integer. */
export const WRITER_LOCK_CLASS = 0x66637772;

/** How long a release waits for the session to end cleanly before leaving it to the server. */
const END_DEADLINE_MS = 2000;

/** SQLSTATE classes a standby outlives: connection, rollback, resources, lock, operator intervention. */
const TRANSIENT_CLASSES = new Set(['08', '40', '53', '55', '57']);

function positiveInt(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

/**
 * True when a standby should try again after `err`: the database was unreachable, restarting or
 * busy. A missing table or a malformed row is not transient: waiting would never end.
 */
function isTransient(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) return TRANSIENT_CLASSES.has((err.code ?? '').slice(0, 2));
  return !(err instanceof TypeError || err instanceof RangeError);
}

/** Ends a session; gives up waiting (the server ends it on its own) after {@link END_DEADLINE_MS}. */
async function endQuietly(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, END_DEADLINE_MS))),
  ]);
  clearTimeout(timer);
}

/**
 * Connection settings of a lock session: the pool's, plus server-side TCP keepalives and a user
 * timeout, so that the server ends the session of a holder whose host vanished (power loss,
 * network partition) within seconds instead of the default two hours, and a standby can take over.
 * The fencing epoch keeps the ledger safe either way; this bounds how long no one can write.
 */
export function writerSessionConfig(db: PostgresPool): pg.ClientConfig {
  const base = db.clientConfig.options ?? '';
  return {
    ...db.clientConfig,
    keepAliveInitialDelayMillis: 5000,
    options:
      `${base} -c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3` +
      ' -c tcp_user_timeout=10000',
  };
}

async function connect(db: PostgresPool): Promise<pg.Client> {
  const client = new pg.Client(writerSessionConfig(db));
  // A connection that fails while idle is seen by the next query; without a listener its
  // 'error' event would end the process.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function tryLock(client: pg.Client, schema: string): Promise<boolean> {
  const r = await client.query<{ ok: unknown }>('SELECT pg_try_advisory_lock($1::int4, hashtext($2)) AS ok', [
    WRITER_LOCK_CLASS,
    schema,
  ]);
  return r.rows[0]?.ok === true;
}

/** Raises the fencing epoch (waiting for appends in flight, which hold the row `FOR SHARE`). */
async function raiseEpoch(client: pg.Client, holder: string): Promise<number> {
  const r = await client.query<{ epoch: unknown }>(
    'UPDATE ledger_writer SET epoch = epoch + 1, holder = $1, since = now() WHERE id = 1 RETURNING epoch',
    [holder],
  );
  if (r.rowCount !== 1) throw new TypeError('ledger_writer has no row: is the schema migrated?');
  return rowInt(r.rows[0]?.epoch, 'ledger_writer.epoch');
}

/** The lease held by `client`'s session, watched by the heartbeat from now on. */
function leaseOn(client: pg.Client, epoch: number, heartbeatMs: number, timeoutMs: number): WriterLease {
  let state: 'held' | 'lost' | 'released' = 'held';
  let timer: NodeJS.Timeout | undefined;
  let markLost: () => void = () => undefined;
  const lost = new Promise<void>((resolve) => (markLost = resolve));
  const lose = (): void => {
    if (state !== 'held') return;
    state = 'lost';
    clearTimeout(timer);
    markLost();
    // If the server still holds the session, ending it frees the lock for a standby.
    void endQuietly(client);
  };
  // pg honours a per-query `query_timeout`; its type declarations do not list it.
  const check: pg.QueryConfig & { query_timeout: number } = {
    text: 'SELECT epoch FROM ledger_writer WHERE id = 1',
    query_timeout: timeoutMs,
  };
  const beat = async (): Promise<void> => {
    try {
      const r = await client.query<{ epoch: unknown }>(check);
      // Someone raised the epoch without the advisory lock: this writer is fenced off already.
      if (rowInt(r.rows[0]?.epoch, 'ledger_writer.epoch') !== epoch) lose();
    } catch {
      lose();
    }
    if (state === 'held') timer = setTimeout(() => void beat(), heartbeatMs);
  };
  client.on('error', lose);
  client.on('end', lose);
  timer = setTimeout(() => void beat(), heartbeatMs);
  return {
    epoch,
    lost,
    isHeld: () => state === 'held',
    release: async () => {
      if (state !== 'held') return;
      state = 'released';
      clearTimeout(timer);
      await endQuietly(client);
    },
  };
}

/**
 * The single-writer lock of the ledger in `db`'s schema (SPEC §4, L7 ledger protection). Each
 * acquisition opens its own connection ({@link writerSessionConfig}); the lease keeps it until
 * released or lost. A standby (`wait: true`) keeps one connection and polls every `pollMs`; it
 * outlives a database that is unreachable or restarting, and rejects on any other error.
 */
export function createPostgresWriterLock(db: PostgresPool, options: PostgresWriterLockOptions): WriterLock {
  if (typeof options.holder !== 'string' || options.holder.length < 1 || options.holder.length > 200)
    throw new TypeError('holder must be 1 to 200 characters');
  const heartbeatMs = positiveInt(options.heartbeatMs ?? 1000, 'heartbeatMs');
  const timeoutMs = positiveInt(options.heartbeatTimeoutMs ?? 2 * heartbeatMs, 'heartbeatTimeoutMs');
  return {
    async acquire(o: AcquireOptions): Promise<WriterLease> {
      const interval = pollInterval(o.pollMs);
      let client: pg.Client | undefined;
      try {
        for (;;) {
          o.signal?.throwIfAborted();
          let lease: WriterLease | undefined;
          try {
            client ??= await connect(db);
            if (await tryLock(client, db.schema)) {
              lease = leaseOn(client, await raiseEpoch(client, options.holder), heartbeatMs, timeoutMs);
              client = undefined;
            }
          } catch (err) {
            // Ending the session also drops the advisory lock if the epoch could not be raised.
            if (client !== undefined) await endQuietly(client);
            client = undefined;
            if (!o.wait || !isTransient(err)) throw err;
          }
          if (lease !== undefined) {
            if (o.signal?.aborted === true) await lease.release();
            o.signal?.throwIfAborted();
            return lease;
          }
          if (!o.wait) throw new WriterLockBusy();
          await pauseUnlessAborted(interval, o.signal);
        }
      } finally {
        if (client !== undefined) await endQuietly(client);
      }
    },
  };
}
