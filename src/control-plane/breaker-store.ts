/**
 * The state of the circuit breakers (OE-INV-021) behind a store, so that every Control Plane
 * replica on one backend counts the same calls and spend: rate windows, lifetime counts, open
 * breakers and each tenant's spend per UTC day. Each method is one atomic step of the store;
 * any rejection is a deny at the Control Plane (fail closed). The in-memory store serves tests
 * and one-process runs; SQLite and PostgreSQL stores live with their backends.
 */
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

/** Breaker state shared by the Control Plane replicas of one backend. */
export interface BreakerStore {
  /**
   * In one atomic step: when `principal` has a breaker open at `now` (`now < until`), answers it
   * and records nothing; otherwise adds one to the principal's lifetime count and one hit at
   * `now` to its, its tenant's and its call's windows, and answers the counts of hits in
   * `(now - windowMs, now]`.
   */
  admit(input: AdmitInput): Promise<AdmitCounts>;
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
