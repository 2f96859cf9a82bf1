/**
 * Circuit breakers (SPEC §6, OE-INV-021): rate limits per session and per tenant over a sliding
 * window, loop detection (the same tool and parameters hash repeated in a window), a lifetime
 * cap on calls per session, a per-call spend cap from the policy obligations and a spend limit
 * per tenant per UTC day. A tripped breaker stays open for its principal (a session, or
 * `client:NAME` for a sessionless client) until its window passes: one `windowMs` after the trip
 * for the rate, loop and per-call spend breakers, the next UTC day for the tenant spend breaker;
 * the lifetime breaker (`session_calls`) stays open until an operator resets it. The Control Plane
 * also quarantines a tripped session, which only an operator lifts (OE-INV-021, OE-INV-025).
 * State lives in a {@link BreakerStore}: in memory by default, driven only by the injected clock, so
 * a replay of the same sequence trips at the same call (GEI Determinism); on a shared backend,
 * every Control Plane replica counts the same calls and spend.
 */
import type { DurableWrites } from '../kernel/index.js';
import { createMemoryBreakerStore } from './breaker-store.js';
import type { BreakerStore } from './breaker-store.js';

/** Breaker limits. Every limit is a positive integer; see {@link DEFAULT_BREAKERS}. */
export interface BreakerConfig {
  /** Sliding window for the rate and loop limits, in milliseconds. */
  readonly windowMs: number;
  /** Most calls one session (or sessionless client) may attempt per window. */
  readonly maxCallsPerSessionWindow: number;
  /** Most calls one tenant may attempt per window. */
  readonly maxCallsPerTenantWindow: number;
  /** A call whose tool and `params_sha256` were already attempted this many times in the window trips. */
  readonly loopThreshold: number;
  /** Most calls one session may attempt in its lifetime (max retries, runaway agents). */
  readonly maxCallsPerSession: number;
  /** Most declared spend, in cents, one tenant may be allowed per UTC day. */
  readonly maxSpendCentsPerTenantDay: number;
  /** Top-level parameter holding a call's declared cost in cents (a non-negative integer). */
  readonly costParam: string;
}

/** Default limits: generous for interactive agents, tight enough to stop a loop within seconds. */
export const DEFAULT_BREAKERS: BreakerConfig = Object.freeze({
  windowMs: 60_000,
  maxCallsPerSessionWindow: 120,
  maxCallsPerTenantWindow: 6_000,
  loopThreshold: 5,
  maxCallsPerSession: 10_000,
  maxSpendCentsPerTenantDay: 100_000_00,
  costParam: 'amount_cents',
});

/** Which breaker tripped; recorded in the `admin.quarantine` entry. */
export type BreakerName =
  'session_rate' | 'tenant_rate' | 'loop' | 'session_calls' | 'call_spend' | 'tenant_spend';

/** A breaker verdict: `ok`, or the breaker that tripped. */
export type BreakerVerdict =
  { readonly tripped: false } | { readonly tripped: true; readonly breaker: BreakerName };

/** One attempted call, as the breakers see it. */
export interface BreakerCall {
  /** The session, or `client:<identity>` for a sessionless client. */
  readonly sessionKey: string;
  readonly tenant: string;
  readonly tool: string;
  readonly paramsSha256: string;
  readonly now: number;
}

/** The breakers of one Control Plane, over a {@link BreakerStore} shared by its replicas. */
export interface CircuitBreakers {
  /** Counts the attempt, then says whether any rate, loop or lifetime breaker is open. Rejects when the store does. */
  admit(call: BreakerCall, writes?: DurableWrites): Promise<BreakerVerdict>;
  /**
   * Checks the spend of a call the policy allowed and reserves it against the tenant's day.
   * `maxCallCents` is the per-call cap from the obligations (null: none). Resolves to a release
   * function that undoes the reservation when the call is denied later, or the tripped breaker.
   */
  reserveSpend(
    call: BreakerCall,
    costCents: number | null,
    maxCallCents: number | null,
  ): Promise<SpendVerdict>;
  /** The breaker open for `principal` at `now`, or null (no side effect). */
  openBreaker(principal: string, now: number): Promise<BreakerName | null>;
  /**
   * Operator reset (OE-INV-025): closes the breaker of a principal (session id or `client:NAME`)
   * and forgets its rate, loop and lifetime counts, or, for a tenant, forgets its rate window and
   * spend. The caller ledgers `admin.breaker_reset` first.
   */
  reset(target: BreakerResetTarget): Promise<void>;
}

/** What an operator reset clears: one principal's breakers, or one tenant's. */
export type BreakerResetTarget = { readonly principal: string } | { readonly tenant: string };

/**
 * A spend verdict: reserved (with a release function), or the breaker that tripped. A release
 * that the store fails to apply leaves the spend counted: the limit only gets stricter.
 */
export type SpendVerdict =
  | { readonly tripped: false; readonly release: () => void }
  | { readonly tripped: true; readonly breaker: BreakerName };

const DAY_MS = 86_400_000;

/** Throws `TypeError` for a config with a limit that is not a positive safe integer. */
export function assertBreakerConfig(config: BreakerConfig): void {
  for (const [name, value] of Object.entries(config)) {
    if (name === 'costParam') {
      if (typeof value !== 'string' || value.length === 0)
        throw new TypeError('costParam must be a non-empty string');
    } else if (!Number.isSafeInteger(value) || (value as number) <= 0) {
      throw new TypeError(`${name} must be a positive integer`);
    }
  }
}

/**
 * Creates the breakers with `config` over `store` (default: in memory, this process only).
 * (OE-INV-021)
 */
export function createCircuitBreakers(
  config: BreakerConfig = DEFAULT_BREAKERS,
  store: BreakerStore = createMemoryBreakerStore(),
): CircuitBreakers {
  assertBreakerConfig(config);

  async function trip(
    call: BreakerCall,
    breaker: BreakerName,
  ): Promise<{ readonly tripped: true; readonly breaker: BreakerName }> {
    await store.trip(call.sessionKey, breaker, reopensAt(breaker, call.now, config.windowMs));
    return { tripped: true, breaker };
  }

  return Object.freeze({
    async admit(call: BreakerCall, writes?: DurableWrites): Promise<BreakerVerdict> {
      const counts = await store.admit(
        {
          principal: call.sessionKey,
          tenant: call.tenant,
          call: `${call.tool}\u0000${call.paramsSha256}`,
          now: call.now,
          windowMs: config.windowMs,
        },
        writes,
      );
      if (counts.open !== null) return { tripped: true, breaker: counts.open };
      if (counts.total > config.maxCallsPerSession) return trip(call, 'session_calls');
      if (counts.sameCall > config.loopThreshold) return trip(call, 'loop');
      if (counts.inSession > config.maxCallsPerSessionWindow) return trip(call, 'session_rate');
      // A tenant-wide rate limit denies but does not open the breaker for this one session.
      if (counts.inTenant > config.maxCallsPerTenantWindow) return { tripped: true, breaker: 'tenant_rate' };
      return { tripped: false };
    },
    async reserveSpend(
      call: BreakerCall,
      costCents: number | null,
      maxCallCents: number | null,
    ): Promise<SpendVerdict> {
      if (costCents === null || costCents === 0) return { tripped: false, release: () => undefined };
      if (maxCallCents !== null && costCents > maxCallCents) return trip(call, 'call_spend');
      const day = Math.floor(call.now / DAY_MS);
      if (!(await store.reserveSpend(call.tenant, day, costCents, config.maxSpendCentsPerTenantDay)))
        return trip(call, 'tenant_spend');
      let released = false;
      return {
        tripped: false,
        release: () => {
          if (released) return;
          released = true;
          // Not awaited: a release the store misses keeps the spend counted (stricter, never looser).
          store.releaseSpend(call.tenant, day, costCents).catch(() => undefined);
        },
      };
    },
    openBreaker: (principal: string, now: number) => store.openBreaker(principal, now),
    reset: (target: BreakerResetTarget) => store.reset(target),
  });
}

/**
 * When a breaker tripped at `now` closes again: rate, loop and per-call spend after one window,
 * the tenant spend at the next UTC day, the lifetime cap never (operator reset only).
 */
function reopensAt(breaker: BreakerName, now: number, windowMs: number): number {
  if (breaker === 'session_calls') return Number.POSITIVE_INFINITY;
  if (breaker === 'tenant_spend') return (Math.floor(now / DAY_MS) + 1) * DAY_MS;
  return now + windowMs;
}

/**
 * The declared cost of a call in cents: the top-level `costParam` member of an object `params`
 * when it is a non-negative safe integer; `null` when absent; `NaN` when present but not a
 * valid amount (the caller denies). (OE-INV-021 spend limits)
 */
export function declaredCostCents(params: unknown, costParam: string): number | null {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return null;
  if (!Object.prototype.hasOwnProperty.call(params, costParam)) return null;
  const value = (params as Record<string, unknown>)[costParam];
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : Number.NaN;
}

/**
 * Converts a decimal USD string (`"12"`, `"12.5"`, `"12.50"`) to whole cents; `null` stays
 * `null`; anything else (more than two decimals, signs, exponents) is `NaN` (the caller denies).
 */
export function usdToCents(usd: string | null): number | null {
  if (usd === null) return null;
  const m = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(usd);
  if (m === null) return Number.NaN;
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
}
