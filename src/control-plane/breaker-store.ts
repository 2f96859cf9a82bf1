/**
 * The state of the circuit breakers (OE-INV-021) behind a store, so that every Control Plane
 * replica on one backend counts the same calls and spend: rate windows, lifetime counts, open
 * breakers and each tenant's spend per UTC day. Each method is one atomic step of the store;
 * any rejection is a deny at the Control Plane (fail closed). The in-memory store serves tests
 * and one-process runs; SQLite and PostgreSQL stores live with their backends.
 */
import type { DurableWrites } from '../kernel/index.js';
import type { BreakerName, BreakerResetTarget } from './breakers.js';

/** What {@link BreakerStore.admit} counted, or the breaker already open. */
export type AdmitCounts =
  | { readonly open: BreakerName }
  | {
      readonly open: null;
      /** Calls of the principal in its lifetime, this one included. */
      readonly total: number;
      /** Calls of the principal in the window, this one included. */
      readonly inSession: number;
      /** Calls of the tenant in the window, this one included. */
      readonly inTenant: number;
      /** Calls of the principal with this tool and parameters hash in the window, this one included. */
      readonly sameCall: number;
    };

/** One attempt as the store records it. */
export interface AdmitInput {
  /** The session, or `client:<identity>`. */
  readonly principal: string;
  readonly tenant: string;
  /** `tool` NUL `params_sha256`: the loop detector's key within the principal. */
  readonly call: string;
  readonly now: number;
  readonly windowMs: number;
}

/** What {@link BreakerStore.prune} is given: the time now and the breakers' window. */
export interface BreakerPruneInput {
  readonly now: number;
  readonly windowMs: number;
}

/**
 * The background prune of a store: every `every` calls of the returned function, `run` starts
 * after this turn of the event loop, unless one is still running; a failed run waits for the
 * next trigger (pruning never affects a verdict: rows are then kept, never lost).
 */
export function backgroundPrune(every: number): (run: () => Promise<unknown>) => void {
  let since = 0;
  let pruning = false;
  return (run) => {
    since += 1;
    if (since < every || pruning) return;
    since = 0;
    pruning = true;
    setImmediate(() => {
      void run()
        .catch(() => undefined)
        .finally(() => {
          pruning = false;
        });
    });
  };
}

/** What one prune may delete: the bounds {@link breakerPruneBounds} computes. */
export interface BreakerPruneBounds {
  /** Hits at or before this time: two windows old, never counted again. */
  readonly hitsAtOrBefore: number;
  /** Open breakers whose end is at or before this time: closed for a day. */
  readonly openEndedAtOrBefore: number;
  /** Spend of UTC days before this one: the current day and the day before are kept. */
  readonly spendDaysBefore: number;
}

const DAY_MS = 86_400_000;

/**
 * What a prune at `now` may delete without changing any breaker decision (OE-INV-021): hits
 * two windows old (a count reads one window back), open breakers closed for a day (an end
 * is compared with the clock, so a day of margin keeps a breaker closed by a clock that stepped
 * forward open again when it steps back), and the spend of days before yesterday (a spend limit
 * reads the current UTC day only; yesterday is kept for a clock stepped back over midnight).
 * Lifetime counts are never pruned: a session has no end, and its lifetime cap must hold
 * whenever it calls again. Throws `TypeError` for a time or window that is not a safe integer.
 */
export function breakerPruneBounds(input: BreakerPruneInput): BreakerPruneBounds {
  const { now, windowMs } = input;
  if (!Number.isSafeInteger(now)) throw new TypeError('now must be an integer');
  if (!Number.isSafeInteger(windowMs) || windowMs < 1)
    throw new TypeError('windowMs must be a positive integer');
  return Object.freeze({
    hitsAtOrBefore: now - 2 * windowMs,
    openEndedAtOrBefore: now - DAY_MS,
    spendDaysBefore: Math.floor(now / DAY_MS) - 1,
  });
}

/** Breaker state shared by the Control Plane replicas of one backend. */
export interface BreakerStore {
  /**
   * In one atomic step: when `principal` has a breaker open at `now` (`now < until`), answers it
   * and records nothing; otherwise adds one to the principal's lifetime count and one hit at
   * `now` to its, its tenant's and its call's windows, and answers the counts of hits in
   * `(now - windowMs, now]`. A store may count in buckets (the SQLite and PostgreSQL stores do,
   * `bucketOf`): then a count holds every hit of the window and at most the hits of the
   * `ceil(windowMs / 64)` before it, never fewer (a breaker trips at most that much sooner).
   */
  admit(input: AdmitInput, writes?: DurableWrites): Promise<AdmitCounts>;
  /** Opens `principal`'s breaker until `until` (`Infinity`: until an operator reset); never moves an open one's end earlier. */
  trip(principal: string, breaker: BreakerName, until: number): Promise<void>;
  /** The breaker open for `principal` at `now`, or null. */
  openBreaker(principal: string, now: number): Promise<BreakerName | null>;
  /** Atomically adds `cents` to the spend of `tenant` on `day` unless the sum would pass `limit`; true when added. */
  reserveSpend(tenant: string, day: number, cents: number, limit: number): Promise<boolean>;
  /** Takes back `cents` of a reservation (never below zero). */
  releaseSpend(tenant: string, day: number, cents: number): Promise<void>;
  /** Forgets a principal's windows, lifetime count and open breaker, or a tenant's window and spend. */
  reset(target: BreakerResetTarget): Promise<void>;
  /**
   * Deletes what no decision reads any more ({@link breakerPruneBounds}: old hits, breakers
   * closed for a day, past days' spend; never lifetime counts) in bounded batches, until none is
   * left; returns how many rows (entries) it deleted. The SQLite and PostgreSQL stores also run
   * it by themselves in the background every 1000 admissions. A failed prune changes no
   * decision: it only keeps rows until the next one. (OE-INV-021)
   */
  prune(input: BreakerPruneInput): Promise<number>;
}

const MAX_TRACKED = 100_000;

/** Caps memory: the oldest key is dropped past {@link MAX_TRACKED} keys. */
function bounded<K, V>(map: Map<K, V>): Map<K, V> {
  if (map.size >= MAX_TRACKED) {
    const first = map.keys().next();
    if (first.done !== true) map.delete(first.value);
  }
  return map;
}

/**
 * An in-memory {@link BreakerStore}: one process only, forgotten on restart, driven only by the
 * times it is given (so a replay of the same calls trips at the same call, GEI Determinism).
 */
export function createMemoryBreakerStore(): BreakerStore {
  const sessionWindows = new Map<string, number[]>();
  const tenantWindows = new Map<string, number[]>();
  const callWindows = new Map<string, number[]>();
  const sessionTotals = new Map<string, number>();
  const open = new Map<string, { readonly breaker: BreakerName; readonly until: number }>();
  const spend = new Map<string, number>();
  const spendKey = (tenant: string, day: number): string => `${tenant}\u0000${day}`;

  function hit(map: Map<string, number[]>, key: string, now: number, windowMs: number): number {
    const cutoff = now - windowMs;
    const times = (map.get(key) ?? []).filter((t) => t > cutoff);
    times.push(now);
    bounded(map).set(key, times);
    return times.length;
  }

  function openAt(principal: string, now: number): BreakerName | null {
    const o = open.get(principal);
    return o !== undefined && now < o.until ? o.breaker : null;
  }

  return Object.freeze({
    admit(input: AdmitInput): Promise<AdmitCounts> {
      const already = openAt(input.principal, input.now);
      if (already !== null) return Promise.resolve({ open: already });
      const total = (sessionTotals.get(input.principal) ?? 0) + 1;
      bounded(sessionTotals).set(input.principal, total);
      return Promise.resolve({
        open: null,
        total,
        inSession: hit(sessionWindows, input.principal, input.now, input.windowMs),
        inTenant: hit(tenantWindows, input.tenant, input.now, input.windowMs),
        sameCall: hit(callWindows, `${input.principal}\u0000${input.call}`, input.now, input.windowMs),
      });
    },
    trip(principal: string, breaker: BreakerName, until: number): Promise<void> {
      const o = open.get(principal);
      // A clock that moved backwards keeps it open: `until` is never moved earlier.
      if (o === undefined || o.until <= until) bounded(open).set(principal, { breaker, until });
      return Promise.resolve();
    },
    openBreaker: (principal: string, now: number) => Promise.resolve(openAt(principal, now)),
    reserveSpend(tenant: string, day: number, cents: number, limit: number): Promise<boolean> {
      const key = spendKey(tenant, day);
      const spent = spend.get(key) ?? 0;
      if (spent + cents > limit) return Promise.resolve(false);
      bounded(spend).set(key, spent + cents);
      return Promise.resolve(true);
    },
    releaseSpend(tenant: string, day: number, cents: number): Promise<void> {
      const key = spendKey(tenant, day);
      spend.set(key, Math.max(0, (spend.get(key) ?? 0) - cents));
      return Promise.resolve();
    },
    prune(input: BreakerPruneInput): Promise<number> {
      let bounds: BreakerPruneBounds;
      try {
        bounds = breakerPruneBounds(input);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new TypeError('invalid prune'));
      }
      let deleted = 0;
      for (const map of [sessionWindows, tenantWindows, callWindows])
        for (const [key, times] of [...map]) {
          const kept = times.filter((t) => t > bounds.hitsAtOrBefore);
          deleted += times.length - kept.length;
          if (kept.length === 0) map.delete(key);
          else map.set(key, kept);
        }
      for (const [key, o] of [...open])
        if (o.until <= bounds.openEndedAtOrBefore) {
          open.delete(key);
          deleted += 1;
        }
      for (const key of [...spend.keys()])
        if (Number(key.slice(key.lastIndexOf('\u0000') + 1)) < bounds.spendDaysBefore) {
          spend.delete(key);
          deleted += 1;
        }
      return Promise.resolve(deleted);
    },
    reset(target: BreakerResetTarget): Promise<void> {
      if ('principal' in target) {
        const key = target.principal;
        open.delete(key);
        sessionWindows.delete(key);
        sessionTotals.delete(key);
        const prefix = `${key}\u0000`;
        for (const k of [...callWindows.keys()]) if (k.startsWith(prefix)) callWindows.delete(k);
      } else {
        tenantWindows.delete(target.tenant);
        const prefix = `${target.tenant}\u0000`;
        for (const k of [...spend.keys()]) if (k.startsWith(prefix)) spend.delete(k);
      }
      return Promise.resolve();
    },
  });
}
