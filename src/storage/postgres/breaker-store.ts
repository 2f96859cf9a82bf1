/**
 * PostgreSQL {@link BreakerStore} (OE-INV-021; SPEC §1 "Distributed"): the circuit breakers of
 * every Control Plane replica on one database count the same calls and the same spend. The
 * semantics are those of the in-memory store; every method is one statement, so one transaction
 * and one round trip:
 *
 * - `admit` and `reset` call the functions of schema v9 (`failclosed_breaker_admit`,
 *   `failclosed_breaker_reset`), which serialize on transaction advisory locks of the principal
 *   and the tenant (taken in ascending key order), count window hits in buckets (64 per window,
 *   `bucketOf`: a count sums at most 129 rows per key whatever the load, and counts at most one
 *   bucket's hits before the window, never fewer than the window's) and prune the buckets that
 *   ended before the window of the keys they touch (and a few of any key two windows old);
 * - `reserveSpend` is one conditional upsert: two replicas reserving at once never pass the limit;
 * - an open breaker's end `Infinity` is stored as NULL;
 * - `prune` deletes in batches through indexes (schema v3), and runs by itself in the background
 *   every 1000 admissions; lifetime counts are never pruned.
 *
 * Keys are stored as their UTF-8 bytes. Every row read back is parsed; any failure — a database
 * that is stopped, slow past the pool's deadlines or garbled, a malformed row, a value that cannot
 * be stored — rejects, and the Control Plane denies (fail closed). The store owns nothing: the
 * backend that opened `db` closes it.
 */
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
  keyBytes,
  resetKey,
  rowBreakerName,
  untilColumn,
} from '../breaker-rows.js';
import type { PostgresPool } from './pool.js';
import { rowInt } from './rows.js';

type Row = Record<string, unknown>;

const ADMIT = `SELECT open_breaker, total, in_session, in_tenant, same_call
  FROM failclosed_breaker_admit($1::bytea, $2::bytea, $3::bytea, $4::bigint, $5::bigint)`;

// Kept when no end or a later (or equal) one is open: the end never moves earlier.
const TRIP = `INSERT INTO breaker_open AS o (principal, breaker, until) VALUES ($1::bytea, $2::text, $3::bigint)
  ON CONFLICT (principal) DO UPDATE SET breaker = excluded.breaker, until = excluded.until
  WHERE excluded.until IS NULL OR (o.until IS NOT NULL AND o.until <= excluded.until)`;

const OPEN = `SELECT breaker, until FROM breaker_open
  WHERE principal = $1::bytea AND (until IS NULL OR until > $2::bigint)`;

// A first reservation past the limit proposes no row, so neither inserts nor updates.
const RESERVE = `INSERT INTO breaker_spend AS s (tenant, day, cents)
  SELECT $1::bytea, $2::bigint, $3::bigint WHERE $3::bigint <= $4::bigint
  ON CONFLICT (tenant, day) DO UPDATE SET cents = s.cents + excluded.cents
  WHERE s.cents + excluded.cents <= $4::bigint
  RETURNING s.cents`;

const RELEASE = `UPDATE breaker_spend SET cents = greatest(0, cents - $3::bigint)
  WHERE tenant = $1::bytea AND day = $2::bigint`;

// Prune batches, $1 the bound, $2 the batch: each deletes at most $2 rows found through an index
// in its order, skipping rows another prune (or an admission's own pruning) holds.
const PRUNE_HITS = `DELETE FROM breaker_buckets WHERE ctid = ANY (ARRAY(
  SELECT ctid FROM breaker_buckets WHERE until <= $1::bigint ORDER BY until LIMIT $2 FOR UPDATE SKIP LOCKED))`;
// The end is checked again on the locked row: a breaker tripped again meanwhile stays.
const PRUNE_OPEN = `DELETE FROM breaker_open WHERE principal = ANY (ARRAY(
  SELECT principal FROM breaker_open WHERE until IS NOT NULL AND until <= $1::bigint
   ORDER BY until LIMIT $2 FOR UPDATE SKIP LOCKED)) AND until IS NOT NULL AND until <= $1::bigint`;
const PRUNE_SPEND = `DELETE FROM breaker_spend WHERE (tenant, day) IN (
  SELECT tenant, day FROM breaker_spend WHERE day < $1::bigint
   ORDER BY day LIMIT $2 FOR UPDATE SKIP LOCKED) AND day < $1::bigint`;

/** Rows one prune statement deletes at most. */
const PRUNE_BATCH = 5000;
/** Admissions between two prunes a store starts by itself (in the background). */
const PRUNE_EVERY = 1000;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 5000;

/** A count the store answered: a positive safe integer. */
function count(row: Row, column: string): number {
  const n = rowInt(row[column], column);
  if (n < 1) throw new TypeError(`column ${column} is not a count`);
  return n;
}

/** Parses the row of `failclosed_breaker_admit`. */
function admitFromRow(row: Row | undefined): AdmitCounts {
  if (row === undefined) throw new TypeError('admit returned no row');
  if (row['open_breaker'] !== null) return { open: rowBreakerName(row['open_breaker'], 'open_breaker') };
  return {
    open: null,
    total: count(row, 'total'),
    inSession: count(row, 'in_session'),
    inTenant: count(row, 'in_tenant'),
    sameCall: count(row, 'same_call'),
  };
}

/**
 * A breaker store over `db` (migrated to the current schema; see `migrate`). Replicas each open
 * their own pool on the same database and schema and share every count. (OE-INV-021)
 */
export function createPostgresBreakerStore(db: PostgresPool): BreakerStore {
  const rows = async (sql: string, params: unknown[]): Promise<Row[]> =>
    (await db.pool.query<Row>(sql, params)).rows;

  /** Batches of each table until a batch comes back short, or the budget is spent. */
  const prune = async (input: BreakerPruneInput, budgetMs?: number): Promise<number> => {
    const bounds = breakerPruneBounds(input);
    const started = performance.now();
    let deleted = 0;
    for (const [sql, bound] of [
      [PRUNE_HITS, bounds.hitsAtOrBefore],
      [PRUNE_OPEN, bounds.openEndedAtOrBefore],
      [PRUNE_SPEND, bounds.spendDaysBefore],
    ] as const) {
      for (;;) {
        if (budgetMs !== undefined && performance.now() - started >= budgetMs) return deleted;
        const n = (await db.pool.query(sql, [bound, PRUNE_BATCH])).rowCount;
        if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
          throw new TypeError('prune returned no row count');
        deleted += n;
        if (n < PRUNE_BATCH) break;
      }
    }
    return deleted;
  };
  const pruneSoon = backgroundPrune(PRUNE_EVERY);
  /** Every {@link PRUNE_EVERY} admissions, one prune in the background. */
  const autoPrune = (input: AdmitInput): void =>
    pruneSoon(() => prune({ now: input.now, windowMs: input.windowMs }, BACKGROUND_BUDGET_MS));

  return Object.freeze({
    async admit(input: AdmitInput): Promise<AdmitCounts> {
      assertInt(input.now, 'now');
      assertInt(input.windowMs, 'windowMs', 1);
      const params = [
        keyBytes(input.principal, 'principal'),
        keyBytes(input.tenant, 'tenant'),
        keyBytes(input.call, 'call'),
        input.now,
        input.windowMs,
      ];
      const counts = admitFromRow((await rows(ADMIT, params))[0]);
      autoPrune(input);
      return counts;
    },
    async trip(principal: string, breaker: BreakerName, until: number): Promise<void> {
      assertBreakerName(breaker);
      await rows(TRIP, [keyBytes(principal, 'principal'), breaker, untilColumn(until)]);
    },
    async openBreaker(principal: string, now: number): Promise<BreakerName | null> {
      assertInt(now, 'now');
      const row = (await rows(OPEN, [keyBytes(principal, 'principal'), now]))[0];
      if (row === undefined) return null;
      const breaker = rowBreakerName(row['breaker'], 'breaker');
      const until = row['until'] === null ? Number.POSITIVE_INFINITY : rowInt(row['until'], 'until');
      // The row must be what the query selected.
      if (!(now < until)) throw new TypeError('breaker_open row is not open');
      return breaker;
    },
    async reserveSpend(tenant: string, day: number, cents: number, limit: number): Promise<boolean> {
      assertInt(day, 'day');
      assertInt(cents, 'cents', 0);
      assertInt(limit, 'limit');
      const row = (await rows(RESERVE, [keyBytes(tenant, 'tenant'), day, cents, limit]))[0];
      if (row === undefined) return false;
      const spent = rowInt(row['cents'], 'cents');
      if (spent < cents || spent > limit) throw new TypeError('breaker_spend row is out of range');
      return true;
    },
    async releaseSpend(tenant: string, day: number, cents: number): Promise<void> {
      assertInt(day, 'day');
      assertInt(cents, 'cents', 0);
      await rows(RELEASE, [keyBytes(tenant, 'tenant'), day, cents]);
    },
    async reset(target: BreakerResetTarget): Promise<void> {
      const [kind, key] = resetKey(target);
      await rows('SELECT failclosed_breaker_reset($1::integer, $2::bytea)', [kind, key]);
    },
    prune: (input: BreakerPruneInput) => prune(input),
  });
}
