/**
 * SQLite {@link BreakerStore} (OE-INV-021, embedded deployment): the circuit breaker state in one
 * database file, with the semantics of the in-memory store. Every method is one `BEGIN IMMEDIATE`
 * transaction, so several processes sharing the file (Control Plane replicas on one host) admit,
 * trip and reserve one at a time and count the same calls and spend. WAL mode with
 * `synchronous=FULL`: a count or reservation is durable before it is answered.
 *
 * Keys are stored as their UTF-8 bytes; an open breaker's end `Infinity` is stored as NULL. Window
 * hits are counted in buckets (`bucketOf`, schema v3): an admission adds one to three bucket rows
 * and sums at most 129 rows per key, whatever the load (a row per hit made each count read every
 * hit of the window: the tenant's grows with the call rate). Each admission prunes the buckets
 * that ended before the window of the keys it touches, and a few buckets of any key that ended
 * two windows ago; every 1000 admissions a prune (`BreakerStore.prune`) runs
 * after the admission's turn, in transactions of at most 2000 rows. Any failure — the
 * file locked past the busy timeout, closed, malformed rows — rejects, and the Control Plane
 * denies (fail closed).
 */
import Database from 'better-sqlite3';
import {
  openStoreConnection,
  type DurableWrites,
  type SchemaMigration,
  type SqliteCommitUnit,
} from '../../kernel/index.js';
import { backgroundPrune, breakerPruneBounds } from '../../control-plane/index.js';
import type {
  AdmitCounts,
  AdmitInput,
  BreakerName,
  BreakerPruneInput,
  BreakerResetTarget,
  BreakerStore,
} from '../../control-plane/index.js';
import {
  assertBreakerName,
  assertInt,
  bucketOf,
  keyBytes,
  resetKey,
  rowBreakerName,
  untilColumn,
} from '../breaker-rows.js';
import { rowInt } from '../postgres/rows.js';

/** A {@link BreakerStore} backed by a SQLite file, with `close()`. */
export interface SqliteBreakerStore extends BreakerStore {
  /** Closes the database; later calls reject. */
  close(): void;
}

/** Options of {@link createSqliteBreakerStore}. */
export interface SqliteBreakerStoreOptions {
  /** How long a write waits for another process's lock on the file before it fails (ms). Default 2000. */
  readonly busyTimeoutMs?: number;
  /**
   * The deployment's shared connection (`sqlite-commit.ts`): no file of its own (`path` is
   * ignored); admissions commit with the other stores' writes, and `admit` given a
   * `DurableWrites` answers before its commit. Closing the store leaves the connection open.
   */
  readonly unit?: SqliteCommitUnit;
}

// breaker_hits (v1–v2; breaker_buckets from v3): kind 0 the principal's window (sub empty), 1
// the tenant's (sub empty), 2 the principal's same-call window (sub = the call).
const SCHEMA = `
CREATE TABLE IF NOT EXISTS breaker_totals (
  principal BLOB PRIMARY KEY NOT NULL,
  total INTEGER NOT NULL CHECK (total > 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_hits (
  kind INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
  key BLOB NOT NULL,
  sub BLOB NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS breaker_hits_key_at ON breaker_hits (kind, key, sub, at);
CREATE INDEX IF NOT EXISTS breaker_hits_at ON breaker_hits (at);
CREATE TABLE IF NOT EXISTS breaker_open (
  principal BLOB PRIMARY KEY NOT NULL,
  breaker TEXT NOT NULL,
  until INTEGER
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_spend (
  tenant BLOB NOT NULL,
  day INTEGER NOT NULL,
  cents INTEGER NOT NULL CHECK (cents >= 0),
  PRIMARY KEY (tenant, day)
) STRICT, WITHOUT ROWID;
`;

/**
 * Window hits in buckets (`bucketOf`): `hits` in `[bucket, until)`, the latest at `last_at`. A
 * count sums the buckets whose latest hit is inside the window; a prune deletes buckets that
 * ended two windows ago. Each hit of v2 becomes a bucket of its own.
 */
const BUCKETS = `
CREATE TABLE breaker_buckets (
  kind INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
  key BLOB NOT NULL,
  sub BLOB NOT NULL,
  bucket INTEGER NOT NULL,
  until INTEGER NOT NULL CHECK (until > bucket),
  hits INTEGER NOT NULL CHECK (hits > 0),
  last_at INTEGER NOT NULL,
  PRIMARY KEY (kind, key, sub, bucket)
) STRICT, WITHOUT ROWID;
CREATE INDEX breaker_buckets_until ON breaker_buckets (until);
INSERT INTO breaker_buckets (kind, key, sub, bucket, until, hits, last_at)
  SELECT kind, key, sub, at, at + 1, count(*), at FROM breaker_hits GROUP BY kind, key, sub, at;
DROP TABLE breaker_hits;
`;

/**
 * Schema versions of the breaker state (store `breakers`; append-only): 1 is the pre-versioning
 * schema; 2 adds the indexes the prune deletes by (open breakers by end, spend by day); 3 counts
 * window hits in buckets. Each is applied in place to an older file when it opens.
 */
export const BREAKER_SQLITE_MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'breaker totals, hits, open breakers, spend', up: SCHEMA },
  {
    version: 2,
    name: 'prune indexes: open breakers by end, spend by day',
    up: `CREATE INDEX IF NOT EXISTS breaker_open_until ON breaker_open (until) WHERE until IS NOT NULL;
CREATE INDEX IF NOT EXISTS breaker_spend_day ON breaker_spend (day);`,
  },
  {
    version: 3,
    name: 'window hits counted in buckets',
    up: BUCKETS,
  },
];

/** Rows one prune transaction deletes at most: it holds the file's write lock only briefly. */
const PRUNE_BATCH = 2000;
/** Admissions between two prunes the store starts by itself (in the background). */
const PRUNE_EVERY = 1000;
/** Keys whose last prune bucket {@link createSqliteBreakerStore} remembers; past it, it forgets them all. */
const PRUNED_KEYS = 4096;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 1000;

type Row = Record<string, unknown>;
const EMPTY = Buffer.alloc(0);

/** A count the store answered: a positive safe integer. */
function count(row: Row | undefined, column: string): number {
  const n = rowInt(row?.[column], column);
  if (n < 1) throw new TypeError(`column ${column} is not a count`);
  return n;
}

/**
 * Opens (creating if needed) the breaker state at `path` (`':memory:'` for a private in-memory
 * database). Processes opening the same file share every count. Throws when the file records a
 * schema newer than this build (`SchemaVersionError`, fail closed). (OE-INV-021)
 */
export function createSqliteBreakerStore(
  path: string,
  options: SqliteBreakerStoreOptions = {},
): SqliteBreakerStore {
  const unit = options.unit;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'breakers',
    migrations: BREAKER_SQLITE_MIGRATIONS,
    ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }),
  });
  /**
   * Runs `fn` (which calls this store's transaction functions) durably: in a transaction of its
   * own, or on the shared connection, resolving after its commit, or with `writes` once decided.
   */
  const durably = <T>(fn: (immediate: boolean) => T, writes?: DurableWrites): Promise<T> =>
    unit === undefined ? attempt(() => fn(true)) : unit.write(() => fn(false), writes);

  const openAt = db.prepare<[Buffer, number], Row>(
    'SELECT breaker, until FROM breaker_open WHERE principal = ? AND (until IS NULL OR until > ?)',
  );
  const addTotal = db.prepare<[Buffer], Row>(
    `INSERT INTO breaker_totals (principal, total) VALUES (?, 1)
     ON CONFLICT (principal) DO UPDATE SET total = total + 1 RETURNING total`,
  );
  const pruneWindows = db.prepare<{ p: Buffer; t: Buffer; cutoff: number }>(
    `DELETE FROM breaker_buckets WHERE until <= @cutoff AND (
       (kind IN (0, 2) AND key = @p) OR (kind = 1 AND key = @t))`,
  );
  // A few buckets of any key that ended two windows ago (keys never admitted again, e.g. ended sessions).
  const sweep = db.prepare<[number]>(
    `DELETE FROM breaker_buckets WHERE (kind, key, sub, bucket) IN
       (SELECT kind, key, sub, bucket FROM breaker_buckets WHERE until <= ? LIMIT 8)`,
  );
  const hit = db.prepare<[number, Buffer, Buffer, number, number, number]>(
    `INSERT INTO breaker_buckets (kind, key, sub, bucket, until, hits, last_at) VALUES (?, ?, ?, ?, ?, 1, ?)
     ON CONFLICT (kind, key, sub, bucket) DO UPDATE SET hits = hits + 1,
       until = max(until, excluded.until), last_at = max(last_at, excluded.last_at)`,
  );
  const hits = db.prepare<[number, Buffer, Buffer, number], Row>(
    'SELECT sum(hits) AS n FROM breaker_buckets WHERE kind = ? AND key = ? AND sub = ? AND last_at > ?',
  );
  const trip = db.prepare<[Buffer, string, number | null]>(
    `INSERT INTO breaker_open (principal, breaker, until) VALUES (?, ?, ?)
     ON CONFLICT (principal) DO UPDATE SET breaker = excluded.breaker, until = excluded.until
     WHERE excluded.until IS NULL OR (until IS NOT NULL AND until <= excluded.until)`,
  );
  const reserve = db.prepare<{ t: Buffer; day: number; cents: number; limit: number }, Row>(
    `INSERT INTO breaker_spend (tenant, day, cents) SELECT @t, @day, @cents WHERE @cents <= @limit
     ON CONFLICT (tenant, day) DO UPDATE SET cents = cents + excluded.cents
     WHERE cents + excluded.cents <= @limit
     RETURNING cents`,
  );
  const release = db.prepare<[number, Buffer, number]>(
    'UPDATE breaker_spend SET cents = max(0, cents - ?) WHERE tenant = ? AND day = ?',
  );
  // Prune batches, bound then batch size: each deletes at most one batch found through an index.
  const pruneSteps = [
    db.prepare<[number, number]>(
      `DELETE FROM breaker_buckets WHERE (kind, key, sub, bucket) IN
         (SELECT kind, key, sub, bucket FROM breaker_buckets WHERE until <= ? ORDER BY until LIMIT ?)`,
    ),
    db.prepare<[number, number]>(
      `DELETE FROM breaker_open WHERE principal IN (SELECT principal FROM breaker_open
         WHERE until IS NOT NULL AND until <= ? ORDER BY until LIMIT ?)`,
    ),
    db.prepare<[number, number]>(
      `DELETE FROM breaker_spend WHERE (tenant, day) IN (SELECT tenant, day FROM breaker_spend
         WHERE day < ? ORDER BY day LIMIT ?)`,
    ),
  ] as const;
  const resetPrincipal = [
    db.prepare<[Buffer]>('DELETE FROM breaker_open WHERE principal = ?'),
    db.prepare<[Buffer]>('DELETE FROM breaker_totals WHERE principal = ?'),
    db.prepare<[Buffer]>('DELETE FROM breaker_buckets WHERE kind IN (0, 2) AND key = ?'),
  ];
  const resetTenant = [
    db.prepare<[Buffer]>('DELETE FROM breaker_buckets WHERE kind = 1 AND key = ?'),
    db.prepare<[Buffer]>('DELETE FROM breaker_spend WHERE tenant = ?'),
  ];

  const openBreaker = (p: Buffer, now: number): BreakerName | null => {
    const row = openAt.get(p, now);
    if (row === undefined) return null;
    const breaker = rowBreakerName(row['breaker'], 'breaker');
    const until = row['until'] === null ? Number.POSITIVE_INFINITY : rowInt(row['until'], 'until');
    if (!(now < until)) throw new TypeError('breaker_open row is not open');
    return breaker;
  };

  /** The bucket each principal and tenant last had its stale buckets pruned in (bounded). */
  const prunedIn = new Map<string, number>();
  const admit = db.transaction((input: AdmitInput): AdmitCounts => {
    const p = keyBytes(input.principal, 'principal');
    const t = keyBytes(input.tenant, 'tenant');
    const c = keyBytes(input.call, 'call');
    const already = openBreaker(p, input.now);
    if (already !== null) return { open: already };
    const total = count(addTotal.get(p), 'total');
    const cutoff = input.now - input.windowMs;
    // Buckets two windows old: a clock stepped back by up to a window still counts the rest.
    const stale = input.now - 2 * input.windowMs;
    const b = bucketOf(input.now, input.windowMs);
    // A key's buckets leave the window only as time crosses a bucket's end: its prune runs at its
    // first admission in each bucket, not at every one (the prune was a third of an admission's
    // cost). Counts never depend on it (they read `last_at` inside the window): it only keeps a
    // key's rows few, one bucket later at the most.
    const pruneKey = `${input.principal}\u0000${input.tenant}`;
    if (prunedIn.get(pruneKey) !== b.start) {
      pruneWindows.run({ p, t, cutoff: stale });
      if (prunedIn.size >= PRUNED_KEYS) prunedIn.clear();
      prunedIn.set(pruneKey, b.start);
    }
    sweep.run(stale);
    hit.run(0, p, EMPTY, b.start, b.end, input.now);
    hit.run(1, t, EMPTY, b.start, b.end, input.now);
    hit.run(2, p, c, b.start, b.end, input.now);
    return {
      open: null,
      total,
      inSession: count(hits.get(0, p, EMPTY, cutoff), 'n'),
      inTenant: count(hits.get(1, t, EMPTY, cutoff), 'n'),
      sameCall: count(hits.get(2, p, c, cutoff), 'n'),
    };
  });
  const reserveSpend = db.transaction((tenant: string, day: number, cents: number, limit: number) => {
    const row = reserve.get({ t: keyBytes(tenant, 'tenant'), day, cents, limit });
    if (row === undefined) return false;
    const spent = rowInt(row['cents'], 'cents');
    if (spent < cents || spent > limit) throw new TypeError('breaker_spend row is out of range');
    return true;
  });
  const tripOne = db.transaction((p: Buffer, breaker: BreakerName, until: number | null) => {
    trip.run(p, breaker, until);
  });
  const releaseOne = db.transaction((t: Buffer, day: number, cents: number) => {
    release.run(cents, t, day);
  });
  const reset = db.transaction((target: BreakerResetTarget) => {
    const [kind, key] = resetKey(target);
    for (const s of kind === 0 ? resetPrincipal : resetTenant) s.run(key);
  });

  let closed = false;
  // One batch of one table in its own transaction: other processes' admissions interleave.
  const pruneBatch = db.transaction((table: 0 | 1 | 2, bound: number): number => {
    return pruneSteps[table].run(bound, PRUNE_BATCH).changes;
  });
  /**
   * Batches of each table, yielding to the event loop between them, until a batch comes back
   * short, the budget is spent or the store closes.
   */
  const prune = async (input: BreakerPruneInput, budgetMs?: number): Promise<number> => {
    const b = breakerPruneBounds(input);
    const bounds = [b.hitsAtOrBefore, b.openEndedAtOrBefore, b.spendDaysBefore] as const;
    const started = performance.now();
    let deleted = 0;
    for (const table of [0, 1, 2] as const) {
      for (;;) {
        if (closed) throw new Error('breaker store closed');
        if (budgetMs !== undefined && performance.now() - started >= budgetMs) return deleted;
        const n =
          unit === undefined
            ? pruneBatch.immediate(table, bounds[table])
            : unit.stage(() => pruneBatch(table, bounds[table])).value;
        deleted += n;
        if (n < PRUNE_BATCH) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return deleted;
  };
  const pruneSoon = backgroundPrune(PRUNE_EVERY);
  /** Every {@link PRUNE_EVERY} admissions, one prune after this turn. */
  const autoPrune = (input: AdmitInput): void =>
    pruneSoon(() => prune({ now: input.now, windowMs: input.windowMs }, BACKGROUND_BUDGET_MS));

  return Object.freeze({
    admit: (input: AdmitInput, writes?: DurableWrites) =>
      durably((immediate) => {
        assertInt(input.now, 'now');
        assertInt(input.windowMs, 'windowMs', 1);
        const counts = immediate ? admit.immediate(input) : admit(input);
        autoPrune(input);
        return counts;
      }, writes),
    trip: (principal: string, breaker: BreakerName, until: number) =>
      durably((immediate) => {
        assertBreakerName(breaker);
        const args = [keyBytes(principal, 'principal'), breaker, untilColumn(until)] as const;
        if (immediate) tripOne.immediate(...args);
        else tripOne(...args);
      }),
    openBreaker: (principal: string, now: number) =>
      attempt(() => {
        assertInt(now, 'now');
        return openBreaker(keyBytes(principal, 'principal'), now);
      }),
    reserveSpend: (tenant: string, day: number, cents: number, limit: number) =>
      durably((immediate) => {
        assertInt(day, 'day');
        assertInt(cents, 'cents', 0);
        assertInt(limit, 'limit');
        return immediate
          ? reserveSpend.immediate(tenant, day, cents, limit)
          : reserveSpend(tenant, day, cents, limit);
      }),
    releaseSpend: (tenant: string, day: number, cents: number) =>
      durably((immediate) => {
        assertInt(day, 'day');
        assertInt(cents, 'cents', 0);
        if (immediate) releaseOne.immediate(keyBytes(tenant, 'tenant'), day, cents);
        else releaseOne(keyBytes(tenant, 'tenant'), day, cents);
      }),
    // An operator's reset: durable before any admission on the connection reads it.
    reset: (target: BreakerResetTarget) =>
      attempt(() => (unit === undefined ? reset.immediate(target) : unit.writeNow(() => reset(target)))),
    prune: (input: BreakerPruneInput) => {
      if (closed) return Promise.reject(new Error('breaker store closed'));
      return prune(input);
    },
    close(): void {
      closed = true;
      if (unit === undefined) db.close();
    },
  });
}

function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error('breaker store failure'));
  }
}
