/**
 * PostgreSQL {@link BreakerStore} (OE-INV-021; SPEC §1 "Distributed"): the circuit breakers of
 * every Control Plane replica on one database count the same calls and the same spend. The
 * semantics are those of the in-memory store; every method is one statement, so one transaction
 * and one round trip:
 *
 * - `admit` and `reset` call the functions of schema v1 (`failclosed_breaker_admit`,
 *   `failclosed_breaker_reset`), which serialize on transaction advisory locks of the principal
 *   and the tenant (taken in ascending key order) and prune the hits that fell out of the window
 *   of the keys they touch (and a few of any key older than two windows);
 * - `reserveSpend` is one conditional upsert: two replicas reserving at once never pass the limit;
 * - an open breaker's end `Infinity` is stored as NULL.
 *
 * Keys are stored as their UTF-8 bytes. Every row read back is parsed; any failure — a database
 * that is stopped, slow past the pool's deadlines or garbled, a malformed row, a value that cannot
 * be stored — rejects, and the Control Plane denies (fail closed). The store owns nothing: the
 * backend that opened `db` closes it.
 */
import type {
  AdmitCounts,
  AdmitInput,
  BreakerName,
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
      return admitFromRow((await rows(ADMIT, params))[0]);
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
  });
}
