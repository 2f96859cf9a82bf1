/**
 * What the SQLite and PostgreSQL circuit breaker stores (OE-INV-021) share: the checks on the
 * values they are given and the parsing of the rows they read back (a database row is untrusted
 * input, STYLE "Untrusted input").
 */
import type { BreakerName, BreakerResetTarget } from '../control-plane/index.js';

const BREAKER_NAMES: ReadonlySet<string> = new Set<BreakerName>([
  'session_rate',
  'tenant_rate',
  'loop',
  'session_calls',
  'call_spend',
  'tenant_spend',
]);

/** A breaker name read from a row; `TypeError` for anything else. */
export function rowBreakerName(v: unknown, column: string): BreakerName {
  if (typeof v !== 'string' || !BREAKER_NAMES.has(v))
    throw new TypeError(`column ${column} is not a breaker`);
  return v as BreakerName;
}

/** A name to record as a breaker; `TypeError` for anything else (nothing unknown is ever stored). */
export function assertBreakerName(v: BreakerName): void {
  rowBreakerName(v, 'breaker');
}

// A lone surrogate has no UTF-8 form: two such keys could meet in one stored key.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The stored form of a principal, tenant or call key: its UTF-8 bytes (a call key holds a NUL,
 * which a text column refuses). A string with a lone surrogate has no exact UTF-8 form and is
 * refused with `TypeError` (the caller denies).
 */
export function keyBytes(key: string, what: string): Buffer {
  if (typeof key !== 'string' || LONE_SURROGATE.test(key))
    throw new TypeError(`${what} is not a well-formed string`);
  return Buffer.from(key, 'utf8');
}

/** `TypeError` unless `v` is a safe integer (at least `min` when given). */
export function assertInt(v: number, what: string, min = Number.MIN_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(v) || v < min)
    throw new TypeError(`${what} must be an integer of at least ${min}`);
}

/** The stored end of an open breaker: `null` for `Infinity` (until an operator reset). */
export function untilColumn(until: number): number | null {
  if (until === Number.POSITIVE_INFINITY) return null;
  assertInt(until, 'until');
  return until;
}

/** A reset target as (kind, key bytes): 0 for a principal, 1 for a tenant. */
export function resetKey(target: BreakerResetTarget): readonly [0 | 1, Buffer] {
  return 'principal' in target
    ? [0, keyBytes(target.principal, 'principal')]
    : [1, keyBytes(target.tenant, 'tenant')];
}

/** Buckets per window: a count reads at most this many (plus one) rows per key. */
export const BUCKETS_PER_WINDOW = 64;

/**
 * The bucket of a hit at `now` under a window of `windowMs`: its start and its end (exclusive),
 * `ceil(windowMs / 64)` wide. A window count sums the buckets holding a hit inside the window,
 * so it counts every hit of `(now - windowMs, now]` and at most the hits of one bucket before
 * it: a breaker trips at the latest where an exact count would, at the earliest one bucket
 * sooner (OE-INV-021, fail closed), and the cost of a count no longer grows with the load.
 */
export function bucketOf(now: number, windowMs: number): { readonly start: number; readonly end: number } {
  const width = Math.max(1, Math.ceil(windowMs / BUCKETS_PER_WINDOW));
  const start = Math.floor(now / width) * width;
  return { start, end: start + width };
}
