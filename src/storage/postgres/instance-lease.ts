/**
 * The lease of one gate instance on a PostgreSQL backend that several gate processes share
 * (SPEC §1 "Distributed", §4 "one writer", §5 "a stop or a crash never breaks the record").
 *
 * Every replica is active: each appends to the one ledger under a transaction-scoped advisory
 * lock (one writer at a time, per transaction) and continues the chain from the committed head
 * (`LedgerStore.appendShared`). What a replica must own is its in-flight requests: the requests it
 * accepted and has not closed are recorded with its instance id, and only it may record their
 * outcome while it lives. When it is gone (stopped, crashed, killed with SIGKILL, cut off), any
 * other replica records `request.abandoned` for them, truthfully, after voiding their envelopes.
 *
 * "Lives" is a session advisory lock on the instance's key, held on a dedicated connection for
 * the life of the process. PostgreSQL drops it when the session ends, whatever ended it; a
 * replica claims a dead instance's requests by taking that lock itself. Every append of this
 * instance runs on the same session, so an instance whose session is gone can never append again,
 * not even an outcome for a request another replica has meanwhile recorded as abandoned.
 *
 * The session is checked every `heartbeatMs` (with a deadline): an error, a closed connection or
 * a missed deadline loses the lease, and the gate then stops running anything (its fence). The
 * server ends a session idle for ten beats, or idle that long inside a transaction: a gate that
 * hangs while its host still answers TCP is treated as gone, not alive forever.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { pgDriver } from './driver.js';
import type { PostgresPool } from './pool.js';
import { prepareStatements } from './prepared.js';
import { writerSessionConfig } from './writer-lock.js';
import type { WriterLease } from '../writer-lock.js';

/**
 * The prefix of a keyless Gate's instance id (`failclosed serve gate`): the owner its
 * `gateway.accepted` entries name (`gate_instance`), which no Control Plane process's id has.
 */
export const GATE_INSTANCE_PREFIX = 'gate/';

/** First key of an instance's two-key advisory lock: "fcin" read as a 32-bit integer. */
export const INSTANCE_LOCK_CLASS = 0x6663696e;

/** How long a release waits for the session to end cleanly before leaving it to the server. */
const END_DEADLINE_MS = 2000;

/** Attempts at a fresh instance id whose lock key another instance happens to hold (a hash collision). */
const ID_ATTEMPTS = 3;

/** The lease of a live gate instance: a {@link WriterLease} whose session the ledger store appends on. */
export interface InstanceLease extends WriterLease {
  /** This instance's id, recorded as the owner of the requests it accepts. */
  readonly instance: string;
  /**
   * Runs `fn` on the lease's session, after every earlier use of it has finished (one transaction
   * at a time on the session). Rejects without running `fn` once the lease is lost or released.
   */
  run<T>(fn: (client: pg.ClientBase) => Promise<T>): Promise<T>;
  /**
   * Of `owners` (instance ids other than this one), takes the lock of each that is no longer alive
   * and returns those: their open requests are this instance's to close until {@link releaseOwners}.
   */
  claimOwners(owners: readonly string[]): Promise<readonly string[]>;
  /** Gives back the locks {@link claimOwners} took. */
  releaseOwners(owners: readonly string[]): Promise<void>;
}

/** Options of {@link acquireInstanceLease}. */
export interface InstanceLeaseOptions {
  /** A readable prefix of the instance id (e.g. host and pid); 1–120 characters. */
  readonly name: string;
  /** Time between two checks of the session (default 1000 ms). */
  readonly heartbeatMs?: number;
  /** Deadline of one check; past it the lease is lost (default twice `heartbeatMs`). */
  readonly heartbeatTimeoutMs?: number;
}

const LOCK_KEY = (schema: string, instance: string): [number, string] => [
  INSTANCE_LOCK_CLASS,
  `${schema}/${instance}`,
];

async function endQuietly(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, END_DEADLINE_MS))),
  ]);
  clearTimeout(timer);
}

/**
 * Opens a dedicated session and takes a fresh instance id's lock on it. Rejects when the database
 * cannot be reached (the gate does not start).
 */
export async function acquireInstanceLease(
  db: PostgresPool,
  options: InstanceLeaseOptions,
): Promise<InstanceLease> {
  if (typeof options.name !== 'string' || options.name.length < 1 || options.name.length > 120)
    throw new TypeError('instance name must be 1 to 120 characters');
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const timeoutMs = options.heartbeatTimeoutMs ?? 2 * heartbeatMs;
  if (
    !Number.isSafeInteger(heartbeatMs) ||
    heartbeatMs < 1 ||
    !Number.isSafeInteger(timeoutMs) ||
    timeoutMs < 1
  )
    throw new TypeError('heartbeat times must be positive integers');
  const session = writerSessionConfig(db);
  // A gate that stops heartbeating (hung, stopped with SIGSTOP, its event loop blocked) while its
  // host still answers TCP is gone too: the server ends its session after ten missed beats, so
  // another gate can claim its requests; and a transaction it left open frees the append lock.
  const idleMs = 10 * heartbeatMs;
  const client = new (pgDriver().Client)({
    ...session,
    idle_in_transaction_session_timeout: idleMs,
    options: `${session.options ?? ''} -c idle_session_timeout=${idleMs}`,
  });
  // A connection that fails while idle is seen by the next query; without a listener its
  // 'error' event would end the process.
  client.on('error', () => undefined);
  // The ledger's appends run on this session: each parsed once, not at every batch (prepared.ts).
  prepareStatements(client);
  let instance: string | undefined;
  try {
    await client.connect();
    for (let i = 0; i < ID_ATTEMPTS && instance === undefined; i += 1) {
      const id = `${options.name}:${randomBytes(8).toString('hex')}`;
      const r = await client.query<{ ok: unknown }>(
        'SELECT pg_try_advisory_lock($1::int4, hashtext($2)) AS ok',
        LOCK_KEY(db.schema, id),
      );
      if (r.rows[0]?.ok === true) instance = id;
    }
    if (instance === undefined) throw new Error('no free instance lock key');
  } catch (err) {
    await endQuietly(client);
    throw err;
  }
  return leaseOn(db, client, instance, heartbeatMs, timeoutMs);
}

function leaseOn(
  db: PostgresPool,
  client: pg.Client,
  instance: string,
  heartbeatMs: number,
  timeoutMs: number,
): InstanceLease {
  let state: 'held' | 'lost' | 'released' = 'held';
  let timer: NodeJS.Timeout | undefined;
  let markLost: () => void = () => undefined;
  const lost = new Promise<void>((resolve) => (markLost = resolve));
  let tail: Promise<unknown> = Promise.resolve();
  const lose = (): void => {
    if (state !== 'held') return;
    state = 'lost';
    clearTimeout(timer);
    markLost();
    void endQuietly(client);
  };
  const run = <T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> => {
    const next = tail.then(() => {
      if (state !== 'held') throw new Error('the instance lease is no longer held');
      return fn(client);
    });
    tail = next.catch(() => undefined);
    return next;
  };
  /**
   * One beat: `SELECT 1` on the session, lost unless answered within `timeoutMs` of being sent.
   * The deadline is checked after the event loop has taken in pending I/O (`setImmediate` after
   * the timer), so an answer that arrived while this process was busy (a long synchronous step,
   * a starved CPU) counts as the answer it is, not as a missed beat.
   */
  const beatOnce = (c: pg.ClientBase): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      let settled = false;
      const deadline = setTimeout(
        () =>
          setImmediate(() => {
            if (!settled) resolve(false);
            settled = true;
          }),
        timeoutMs,
      );
      c.query<{ one: unknown }>('SELECT 1 AS one').then(
        (r) => {
          clearTimeout(deadline);
          if (!settled) resolve(r.rows[0]?.one === 1);
          settled = true;
        },
        () => {
          clearTimeout(deadline);
          if (!settled) resolve(false);
          settled = true;
        },
      );
    });
  const beat = async (): Promise<void> => {
    let ok: boolean;
    try {
      ok = await run(beatOnce);
    } catch {
      ok = false;
    }
    if (!ok) lose();
    if (state === 'held') timer = setTimeout(() => void beat(), heartbeatMs);
  };
  client.on('error', lose);
  client.on('end', lose);
  timer = setTimeout(() => void beat(), heartbeatMs);
  /** `fn` on the locks of `owners` (not this instance's), in one statement; the owners it answered true for. */
  const lockAll = (owners: readonly string[], fn: 'pg_try_advisory_lock' | 'pg_advisory_unlock') =>
    run(async (c) => {
      const others = owners.filter((o) => o !== instance);
      if (others.length === 0) return [];
      const r = await c.query<{ owner: unknown }>(
        `SELECT o AS owner FROM unnest($3::text[]) AS o WHERE ${fn}($1::int4, hashtext($2 || '/' || o))`,
        [INSTANCE_LOCK_CLASS, db.schema, others],
      );
      return r.rows
        .map((row) => row.owner)
        .filter((o): o is string => typeof o === 'string' && others.includes(o));
    });
  return {
    instance,
    // No fencing epoch: appends are fenced by running on this lease's session.
    epoch: 0,
    lost,
    isHeld: () => state === 'held',
    run,
    claimOwners: (owners) => lockAll(owners, 'pg_try_advisory_lock'),
    releaseOwners: async (owners) => {
      await lockAll(owners, 'pg_advisory_unlock');
    },
    release: async () => {
      if (state !== 'held') return;
      state = 'released';
      clearTimeout(timer);
      await tail;
      await endQuietly(client);
    },
  };
}
