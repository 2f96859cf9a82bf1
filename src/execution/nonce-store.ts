/**
 * The nonce store: single use of every approval envelope (SPEC §2 step 7, §7 scenarios 6 and 8).
 *
 * Contract for every backend (memory, SQLite, PostgreSQL): `consume` answers `'fresh'` for the
 * first consumption of a `jti` and `'replayed'` for every later one, whatever the tenant; the
 * decision is made by ONE atomic statement in the store (SPEC §8: a check-then-insert let one
 * token through more than once in 50 of 50 trials). A rejected promise, a timeout or any other
 * answer means the store is unavailable, and the executor denies with
 * `ERR_NONCE_STORE_UNAVAILABLE`.
 *
 * Pruning: a row may be deleted only once `exp + clockToleranceSec` has passed, because from
 * then on the envelope verifier rejects the envelope as expired before the nonce is looked at.
 * Pruning earlier would reopen the replay window.
 */

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

/** Result of a consumption: the only allow is `'fresh'`. */
export type NonceVerdict = 'fresh' | 'replayed';

/**
 * Result of voiding an envelope nonce: `'voided'` when it had never been consumed (it now never
 * can be), `'consumed'` when it had been (the tool may have run).
 */
export type VoidVerdict = 'voided' | 'consumed';

/** A strongly consistent single-use store for envelope nonces. */
export interface NonceStore {
  /**
   * Atomically records `input.jti` as consumed. `'fresh'` exactly once per `jti`, `'replayed'`
   * after that; rejects when the store cannot confirm (OE-INV-017, FC-INV-4).
   */
  consume(input: NonceConsumption): Promise<NonceVerdict>;
  /**
   * Deletes rows whose `exp + toleranceSec < nowSec`; returns how many were deleted. Only safe
   * with the same tolerance the envelope verifier uses.
   */
  prune(input: { readonly nowSec: number; readonly toleranceSec: number }): Promise<number>;
  /**
   * Makes `input.jti` unconsumable in ONE atomic statement and says whether it had been consumed
   * before (crash recovery, SPEC §5: an envelope issued for a call that never finished must never
   * run afterwards). A voided nonce answers `'replayed'` to `consume`. Optional: a store without
   * it cannot back crash recovery, and the deployment then refuses to start.
   */
  void?(input: NonceConsumption): Promise<VoidVerdict>;
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
  const rows = new Map<string, NonceConsumption>();
  const voided = new Set<string>();
  let closed = false;
  return {
    consume(input) {
      if (closed) return Promise.reject(new Error('nonce store closed'));
      try {
        assertNonceConsumption(input);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new TypeError('invalid consumption'));
      }
      // The check and the set run in one synchronous turn: atomic in a single event loop.
      if (rows.has(input.jti)) return Promise.resolve('replayed');
      rows.set(input.jti, { ...input });
      return Promise.resolve('fresh');
    },
    void(input) {
      if (closed) return Promise.reject(new Error('nonce store closed'));
      assertNonceConsumption(input);
      if (rows.has(input.jti)) return Promise.resolve(voided.has(input.jti) ? 'voided' : 'consumed');
      rows.set(input.jti, { ...input });
      voided.add(input.jti);
      return Promise.resolve('voided');
    },
    prune({ nowSec, toleranceSec }) {
      let deleted = 0;
      for (const [jti, row] of rows) {
        if (row.exp + toleranceSec < nowSec) {
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
