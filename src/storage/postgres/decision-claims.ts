/**
 * PostgreSQL {@link DecisionClaimStore} (FC-INV-3, FC-INV-6): the claims every Control Plane
 * process on the schema shares. A claim is one `INSERT … ON CONFLICT DO NOTHING` on the primary
 * key (tenant, identity, request id): of racing askers in any number of processes exactly one
 * inserts (a concurrent insert of the same key waits for the first to commit, then does nothing),
 * and "one row inserted" is its only success. Any failure rejects; the Control Plane denies. The
 * store owns nothing: the backend closes the pool.
 *
 * Claims are pruned by the rule of `src/control-plane/decision-claims.ts` (why it is safe there):
 * each stamped never below the latest `claimed_at` recorded (two racing claims may both read the
 * same latest: each is still at least its own clock and that latest), a claim goes only when older
 * than the retention measured against the latest `claimed_at`, and not among the
 * client's newest claims by `seq` (schema version 16), in short statements of
 * {@link PRUNE_BATCH} rows, every `pruneEvery` claims of this process in the background.
 */
import { decisionClaimRetention } from '../../control-plane/index.js';
import type {
  DecisionClaimKey,
  DecisionClaimRetention,
  DecisionClaimStore,
} from '../../control-plane/index.js';
import { createRequestMemoryPruner } from '../../kernel/index.js';
import type { PostgresPool } from './pool.js';
import { pruneBatchOf, rowInt, rowText } from './rows.js';

/** Rows one prune statement examines at most: every statement stays far below the deadline. */
const PRUNE_BATCH = 5000;
/** Wall time one background prune may take before it leaves the rest to the next one (ms). */
const BACKGROUND_BUDGET_MS = 5000;

// One backward step of the claimed_at index.
const LATEST = 'SELECT max(claimed_at) AS latest FROM decision_claims';

// The clients with claims: a skip scan of the (tenant, identity, seq) index, one probe each.
const CLIENTS = `WITH RECURSIVE c(tenant, identity) AS (
  (SELECT tenant, identity FROM decision_claims ORDER BY tenant, identity LIMIT 1)
  UNION ALL
  SELECT n.tenant, n.identity FROM c, LATERAL (
    SELECT d.tenant, d.identity FROM decision_claims d WHERE (d.tenant, d.identity) > (c.tenant, c.identity)
     ORDER BY d.tenant, d.identity LIMIT 1) n
) SELECT tenant, identity FROM c`;

// $1 tenant, $2 identity, $3 keep - 1: the seq of the client's keep-th newest claim (none with
// fewer claims).
const FLOOR = `SELECT seq FROM decision_claims WHERE tenant = $1 AND identity = $2
  ORDER BY seq DESC OFFSET $3 LIMIT 1`;

// $1 tenant, $2 identity, $3 cursor (seq examined last), $4 floor seq, $5 cutoff, $6 batch: the
// client's next claims past the cursor and below its floor, in index order; those claimed before
// the cutoff go (by ctid). By seq, not claimed_at: every batch stays bounded after a clock step.
const PRUNE_BATCH_SQL = `WITH c AS (
  SELECT ctid AS tid, seq, claimed_at FROM decision_claims
   WHERE tenant = $1 AND identity = $2 AND seq > $3::bigint AND seq < $4::bigint
   ORDER BY seq LIMIT $6
), d AS (
  DELETE FROM decision_claims WHERE ctid = ANY (ARRAY(SELECT tid FROM c WHERE claimed_at < $5::bigint))
  RETURNING 1
)
SELECT (SELECT count(*) FROM c) AS examined, (SELECT max(seq) FROM c) AS last,
       (SELECT count(*) FROM d) AS deleted`;

/** A client of the claims: request ids are its own. */
interface ClaimClient {
  readonly tenant: string;
  readonly identity: string;
}

/** The decision claims over `db` (migrated to the current schema). */
export function createPostgresDecisionClaims(
  db: PostgresPool,
  options: DecisionClaimRetention = {},
): DecisionClaimStore {
  const { retentionMs, keepPerClient, pruneEvery } = decisionClaimRetention(options);
  const { pool } = db;
  let closed = false;
  const pruner = createRequestMemoryPruner<ClaimClient>(
    {
      async latest() {
        const v = (await pool.query<{ latest: unknown }>(LATEST)).rows[0]?.latest;
        return v === null || v === undefined ? undefined : rowInt(v, 'decision_claims.claimed_at');
      },
      clients: async () =>
        (await pool.query<{ tenant: unknown; identity: unknown }>(CLIENTS)).rows.map((r) => ({
          tenant: rowText(r.tenant, 'decision_claims.tenant'),
          identity: rowText(r.identity, 'decision_claims.identity'),
        })),
      keyOf: (c) => JSON.stringify([c.tenant, c.identity]),
      async floor(c) {
        const row = (await pool.query<{ seq: unknown }>(FLOOR, [c.tenant, c.identity, keepPerClient - 1]))
          .rows[0];
        return row === undefined ? undefined : rowInt(row.seq, 'decision_claims.seq');
      },
      async batch(c, cursor, floor, cutoff, rows) {
        const r = await pool.query<Record<string, unknown>>(PRUNE_BATCH_SQL, [
          c.tenant,
          c.identity,
          cursor,
          floor,
          cutoff,
          rows,
        ]);
        return pruneBatchOf(r.rows[0], cursor);
      },
    },
    {
      retentionMs,
      batchRows: PRUNE_BATCH,
      budgetMs: BACKGROUND_BUDGET_MS,
      closed: () => closed,
      closedError: () => new Error('the decision claims are closed'),
    },
  );
  let claimsSincePrune = 0;
  return Object.freeze({
    async claim(key: DecisionClaimKey, holder: string, atMs: number): Promise<boolean> {
      if (closed) throw new Error('the decision claims are closed');
      const n = (
        await db.pool.query(
          // Stamped never below the latest stamp (decision-claims.ts in control-plane, why).
          `INSERT INTO decision_claims (tenant, identity, request_id, holder, claimed_at)
           VALUES ($1, $2, $3, $4, GREATEST($5::bigint, (SELECT max(claimed_at) FROM decision_claims)))
           ON CONFLICT DO NOTHING`,
          [key.tenant, key.identity, key.request_id, holder, Math.trunc(atMs)],
        )
      ).rowCount;
      if (n !== 0 && n !== 1) throw new TypeError('a claim changed more than one row');
      claimsSincePrune += 1;
      if (claimsSincePrune >= pruneEvery && pruner.start()) claimsSincePrune = 0;
      return n === 1;
    },
    async prune() {
      if (closed) throw new Error('the decision claims are closed');
      return pruner.run();
    },
    async close() {
      closed = true;
      await pruner.idle();
    },
  });
}
