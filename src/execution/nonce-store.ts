/**
 * The nonce store: single use of every approval envelope (SPEC §2 step 7, §7 scenarios 6 and 8).
 *
 * Contract for every backend (memory, SQLite, PostgreSQL): `consume` answers `'fresh'` for the
 * first consumption of a `jti` and `'replayed'` for every later one, whatever the tenant
 * (`'voided'` when the `jti` was voided first, see `void`); the
 * decision is made by ONE atomic statement in the store (SPEC §8: a check-then-insert let one
 * token through more than once in 50 of 50 trials). A rejected promise, a timeout or any other
 * answer means the store is unavailable, and the executor denies with
 * `ERR_NONCE_STORE_UNAVAILABLE`.
 *
 * Pruning (OE-INV-017): a row may be deleted only past every envelope's possible life, once
 * `exp + clockToleranceSec + maxLifetimeSec` has passed; from then on the envelope verifier
 * rejects the envelope as expired before the nonce is looked at. The verifier trusts the clock,
 * though, and a clock set back would make a pruned envelope look unexpired again. So every store
 * keeps a monotonic prune horizon `H` (persisted with the rows): a prune deletes only rows with
 * `exp < H`, and `consume` never answers `'fresh'` for an `exp < H`, whatever the clock says
 * (it answers `'replayed'`: the store can no longer tell whether that jti was used; a void
 * answers `'consumed'`: it may have run). The check and the insert are one atomic statement, so
 * no consumption slips between a prune and its horizon. `H` is
 * `min(nowSec, max exp recorded) - toleranceSec`: a clock jumped ahead with no traffic cannot
 * move it past the envelopes actually seen.
 */
import type { DurableWrites } from '../kernel/index.js';

/** What is recorded when an envelope nonce is consumed. */
export interface NonceConsumption {
  /** The envelope's single-use nonce (`jti` claim). Unique across all tenants. */
  readonly jti: string;
  /** The tenant the envelope is scoped to (OE-INV-008). */
  readonly tenant: string;
  /** The envelope's `exp` claim, whole seconds since the epoch. */
  readonly exp: number;
  /** The decision the envelope was issued for. */
  readonly decision_id: string;
}

/**
 * Result of a consumption: the only allow is `'fresh'`; `'voided'` when the envelope was voided
 * before anyone consumed it (its call failed after issuance).
 */
export type NonceVerdict = 'fresh' | 'replayed' | 'voided';

/**
 * Result of a void: `'voided'` when the jti is now (or already was) recorded as voided, so no
 * consumption can ever succeed; `'consumed'` when a consumption won the race (the tool may have run).
 */
export type VoidVerdict = 'voided' | 'consumed';

/** A strongly consistent single-use store for envelope nonces. */
export interface NonceStore {
  /**
   * Atomically records `input.jti` as consumed. `'fresh'` exactly once per `jti`, `'replayed'`
   * after that; rejects when the store cannot confirm (OE-INV-017, FC-INV-4).
   *
   * With `writes`, a store whose writes share commits (the embedded deployment's connection)
   * may answer once the consumption is decided in the open transaction and register its commit
   * there: the caller runs nothing before `writes.sync()` resolved. Other stores answer after
   * their commit whether or not `writes` is given.
   */
  consume(input: NonceConsumption, writes?: DurableWrites): Promise<NonceVerdict>;
  /**
   * Atomically records `input.jti` as voided, in ONE statement racing `consume` on the same key:
   * exactly one of a void and a consumption wins. Rejects when the store cannot confirm.
   */
  void(input: NonceConsumption): Promise<VoidVerdict>;
  /**
   * Raises the prune horizon to `min(nowSec, max exp recorded) - toleranceSec` (never lowers it)
   * and deletes the rows whose `exp` is below it, in bounded batches after the raise; returns
   * how many were deleted. `toleranceSec` must cover the verifier's clock tolerance plus the
   * maximum envelope lifetime.
   */
  prune(input: { readonly nowSec: number; readonly toleranceSec: number }): Promise<number>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** Throws `TypeError` on a consumption that no verified envelope could have produced. */
export function assertNonceConsumption(input: NonceConsumption): void {
  if (typeof input.jti !== 'string' || input.jti.length === 0 || input.jti.length > 512) {
    throw new TypeError('jti must be a non-empty string of at most 512 characters');
  }
  if (typeof input.tenant !== 'string' || input.tenant.length === 0)
    throw new TypeError('tenant must be a non-empty string');
  if (!Number.isSafeInteger(input.exp)) throw new TypeError('exp must be an integer');
  if (typeof input.decision_id !== 'string') throw new TypeError('decision_id must be a string');
}

/**
 * An in-memory {@link NonceStore} for unit tests and single-process experiments. Not durable:
 * a restart forgets every nonce, so it must never back a deployment.
 */
export function createMemoryNonceStore(): NonceStore {
  const rows = new Map<string, NonceConsumption & { readonly voided: boolean }>();
  let closed = false;
  let horizon = Number.NEGATIVE_INFINITY;
  const claim = (input: NonceConsumption, voided: boolean): Promise<'new' | 'voided' | 'consumed'> => {
    if (closed) return Promise.reject(new Error('nonce store closed'));
    try {
      assertNonceConsumption(input);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TypeError('invalid consumption'));
    }
    // The check and the set run in one synchronous turn: atomic in a single event loop.
    if (input.exp < horizon) return Promise.resolve('consumed');
    const row = rows.get(input.jti);
    if (row !== undefined) return Promise.resolve(row.voided ? 'voided' : 'consumed');
    rows.set(input.jti, { ...input, voided });
    return Promise.resolve('new');
  };
  return {
    async consume(input) {
      const r = await claim(input, false);
      return r === 'new' ? 'fresh' : r === 'voided' ? 'voided' : 'replayed';
    },
    async void(input) {
      const r = await claim(input, true);
      return r === 'consumed' ? 'consumed' : 'voided';
    },
    prune({ nowSec, toleranceSec }) {
      let deleted = 0;
      let maxExp = Number.NEGATIVE_INFINITY;
      for (const row of rows.values()) maxExp = Math.max(maxExp, row.exp);
      horizon = Math.max(horizon, Math.min(nowSec, maxExp) - toleranceSec);
      for (const [jti, row] of rows) {
        if (row.exp < horizon) {
          rows.delete(jti);
          deleted += 1;
        }
      }
      return Promise.resolve(deleted);
    },
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}
