/**
 * PostgreSQL {@link DecisionClaimStore} (FC-INV-3, FC-INV-6): the claims every Control Plane
 * process on the schema shares. A claim is one `INSERT … ON CONFLICT DO NOTHING` on the primary
 * key (tenant, identity, request id): of racing askers in any number of processes exactly one
 * inserts (a concurrent insert of the same key waits for the first to commit, then does nothing),
 * and "one row inserted" is its only success. Any failure rejects; the Control Plane denies. The
 * store owns nothing: the backend closes the pool.
 */
import type { DecisionClaimKey, DecisionClaimStore } from '../../control-plane/index.js';
import type { PostgresPool } from './pool.js';

/** The decision claims over `db` (migrated to the current schema). */
export function createPostgresDecisionClaims(db: PostgresPool): DecisionClaimStore {
  return Object.freeze({
    async claim(key: DecisionClaimKey, holder: string, atMs: number): Promise<boolean> {
      const n = (
        await db.pool.query(
          `INSERT INTO decision_claims (tenant, identity, request_id, holder, claimed_at)
           VALUES ($1, $2, $3, $4, $5::bigint) ON CONFLICT DO NOTHING`,
          [key.tenant, key.identity, key.request_id, holder, Math.trunc(atMs)],
        )
      ).rowCount;
      if (n !== 0 && n !== 1) throw new TypeError('a claim changed more than one row');
      return n === 1;
    },
    close: () => Promise.resolve(),
  });
}
