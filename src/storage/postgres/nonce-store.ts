/**
 * PostgreSQL {@link NonceStore} (distributed deployment, SPEC §1): every executor replica shares
 * one `envelope_nonces` table, so a `jti` is single use across all of them (SPEC §7 scenarios 6
 * and 8, OE-INV-017, FC-INV-4).
 *
 * One statement decides: an `INSERT … SELECT … WHERE exp >= horizon ON CONFLICT (jti) DO NOTHING`
 * on the `jti` primary key, committed before the answer is read; "this statement inserted the
 * row" is the only `'fresh'`. A void is the same statement with `voided = true`, so a void and a
 * consumption of one `jti` have exactly one winner, and the loser reads the winner's row (rows
 * never change once inserted). The same statement reads that row, which answers in one round
 * trip in the common case. Under READ COMMITTED, though, a row inserted by a transaction that
 * committed after the statement's snapshot was taken makes `ON CONFLICT DO NOTHING` wait and
 * then skip, yet stays invisible to that snapshot; only then a second statement (a new snapshot)
 * reads the winner's row.
 *
 * The prune horizon (see `NonceStore`) is read by the deciding statement; a prune raises it and
 * deletes below it while holding a `SHARE ROW EXCLUSIVE` lock on `envelope_nonces`, which waits
 * for every deciding statement in flight and holds new ones back until it committed. A statement
 * takes its table locks before its snapshot, so none decides with the old horizon once the rows
 * below the new one are deleted: a pruned `jti` can never be inserted again. (Without the lock, a
 * consumption whose snapshot predates the prune's commit would pass the old gate, wait on the
 * row being deleted, then insert it afresh.) Consumptions pause while a prune runs.
 *
 * The statements expect the server's default READ COMMITTED; under a stricter
 * `default_transaction_isolation` a lost race fails with a serialization error instead, which
 * rejects (a deny), never answers `'fresh'`.
 */
import type { NonceConsumption, NonceStore } from '../../execution/index.js';
import { assertNonceConsumption } from '../../execution/index.js';
import { createInFlight } from '../../kernel/index.js';
import type { Clock } from '../../kernel/index.js';
import type { PostgresPool } from './pool.js';
import { rowBool } from './rows.js';

/** Options for {@link createPostgresNonceStore}. */
export interface PostgresNonceStoreOptions {
  /** Clock for the informational `consumed_at` column and the automatic prune. */
  readonly now: Clock;
  /**
   * Seconds every envelope may still be presented after its `exp`: the verifier's clock
   * tolerance plus the maximum envelope lifetime. When set, the store prunes itself in the
   * background every 1000 consumptions and voids made through it (see `NonceStore.prune`; at
   * most 5 s of batches per run, the rest at the next run); without it, rows are kept until
   * `prune` is called.
   */
  readonly retainAfterExpSec?: number;
}

/** Consumptions and voids between two automatic prunes of one store. */
const PRUNE_EVERY = 1000;

// $1 jti, $2 tenant, $3 exp, $4 decision_id, $5 consumed_at, $6 voided. One snapshot for the
// horizon gate, the insert and the read of an earlier row.
const CLAIM = `WITH gate AS (
  SELECT ($3::bigint >= horizon) AS open FROM envelope_nonce_horizon WHERE id = 1
), ins AS (
  INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at, voided)
  SELECT $1::text, $2::text, $3::bigint, $4::text, $5::bigint, $6::boolean FROM gate WHERE gate.open
  ON CONFLICT (jti) DO NOTHING
  RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins) AS inserted,
  (SELECT open FROM gate) AS open,
  (SELECT voided FROM envelope_nonces WHERE jti = $1::text) AS voided`;

const READ_VOIDED = 'SELECT voided FROM envelope_nonces WHERE jti = $1::text';

// $1 nowSec, $2 toleranceSec. An empty table moves no horizon (GREATEST/LEAST skip NULLs).
const RAISE = `UPDATE envelope_nonce_horizon AS h
  SET horizon = GREATEST(h.horizon, LEAST($1::bigint, m.max_exp) - $2::bigint)
  FROM (SELECT max(exp) AS max_exp FROM envelope_nonces) AS m
  WHERE h.id = 1 AND m.max_exp IS NOT NULL`;

// $1 batch. The lowest `$1` rows below the horizon, in `exp` index order, skipping rows another
// prune is deleting; by ctid, a TID scan.
const DELETE_BELOW = `DELETE FROM envelope_nonces WHERE ctid = ANY (ARRAY(
  SELECT ctid FROM envelope_nonces
   WHERE exp < (SELECT horizon FROM envelope_nonce_horizon WHERE id = 1)
   ORDER BY exp LIMIT $1 FOR UPDATE SKIP LOCKED))`;

/** Rows one delete statement of a prune removes at most: each stays far below the deadline. */
const PRUNE_BATCH = 5000;
/** Wall time one automatic prune may take before it leaves the rest to the next one (ms). */
const AUTO_PRUNE_BUDGET_MS = 5000;

/** What one claim found: the row is new, or the row there is a void or a consumption. */
type Claim = 'new' | 'voided' | 'consumed';

/** The deciding statement's row (database row: parsed, anything else rejects). */
interface ClaimRow {
  readonly inserted: boolean;
  /** `null` when the horizon row is missing. */
  readonly open: boolean | null;
  /** The earlier row's `voided`, `null` when none is visible. */
  readonly voided: boolean | null;
}

function parseClaimRow(rows: readonly unknown[]): ClaimRow {
  const row = rows.length === 1 ? rows[0] : undefined;
  if (typeof row !== 'object' || row === null) throw new TypeError('nonce claim returned no row');
  const r = row as Record<string, unknown>;
  return {
    inserted: rowBool(r.inserted, 'inserted'),
    open: r.open === null ? null : rowBool(r.open, 'open'),
    voided: r.voided === null ? null : rowBool(r.voided, 'envelope_nonces.voided'),
  };
}

/** `null` when no row, the row's `voided` otherwise (database row: parsed). */
function parseVoidedRow(rows: readonly unknown[]): boolean | null {
  if (rows.length === 0) return null;
  const row = rows.length === 1 ? rows[0] : undefined;
  if (typeof row !== 'object' || row === null) throw new TypeError('envelope_nonces row malformed');
  return rowBool((row as Record<string, unknown>).voided, 'envelope_nonces.voided');
}

/** A prune's `nowSec`/`toleranceSec` as whole seconds; `TypeError` for anything else. */
function wholeSeconds(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${name} must be a finite number`);
  const s = Math.trunc(v);
  if (!Number.isSafeInteger(s)) throw new TypeError(`${name} must be a safe integer`);
  return s;
}

/**
 * A {@link NonceStore} over the `envelope_nonces` tables of `db` (schema migration v1). `consume`
 * and `void` reject when the database is unreachable, slow past the pool's statement deadline,
 * answers with anything but the expected row, or when the horizon row is missing: the executor
 * turns that into `ERR_NONCE_STORE_UNAVAILABLE` and never runs the tool (SPEC §7 scenario 8,
 * OE-INV-017, FC-INV-4). They reject with `TypeError` for a consumption no verified envelope
 * could have produced.
 *
 * `close()` waits for the calls in flight and makes later calls reject; it does NOT end `db`:
 * the pool is shared by every store of the backend, and whoever opened it ends it.
 */
export function createPostgresNonceStore(db: PostgresPool, options: PostgresNonceStoreOptions): NonceStore {
  const retain = options.retainAfterExpSec;
  if (retain !== undefined && !(Number.isSafeInteger(retain) && retain >= 0))
    throw new TypeError('retainAfterExpSec must be a non-negative integer');
  let closed = false;
  let sincePrune = 0;
  const inFlight = createInFlight();
  const track = <T>(p: Promise<T>): Promise<T> => inFlight.track(p);

  /** Raises the horizon: the only step that holds consumptions back, for one short statement. */
  const raise = async (nowSec: number, toleranceSec: number): Promise<void> => {
    const client = await db.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      // Waits for the deciding statements in flight, holds new ones back until COMMIT.
      await client.query('LOCK TABLE envelope_nonces IN SHARE ROW EXCLUSIVE MODE');
      await client.query(RAISE, [nowSec, toleranceSec]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error('rollback failed');
      });
      throw err;
    } finally {
      client.release(broken);
    }
  };

  /**
   * Raises the horizon under the table lock, then deletes below it in batches of
   * {@link PRUNE_BATCH} rows without the lock, until none is left or the budget is spent. Once
   * the raise committed, every deciding statement reads the new horizon (the lock waited for the
   * statements that read the old one, and a statement takes its locks before its snapshot), so
   * none inserts a `jti` below it again: the batches race with nothing that decides (OE-INV-017).
   */
  const prune = async (nowSec: number, toleranceSec: number, budgetMs?: number): Promise<number> => {
    const started = performance.now();
    await raise(nowSec, toleranceSec);
    let deleted = 0;
    for (;;) {
      const count = (await db.pool.query(DELETE_BELOW, [PRUNE_BATCH])).rowCount;
      if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0)
        throw new TypeError('prune returned no row count');
      deleted += count;
      if (count < PRUNE_BATCH) return deleted;
      if (budgetMs !== undefined && performance.now() - started >= budgetMs) return deleted;
    }
  };

  let autoPruning = false;
  /**
   * Every {@link PRUNE_EVERY} calls a prune starts in the background (one at a time): the
   * verdict that triggered it is answered at once, and a failed prune only keeps rows until the
   * next one. `close()` waits for it.
   */
  const autoPrune = (): void => {
    if (retain === undefined || closed) return;
    sincePrune += 1;
    if (sincePrune < PRUNE_EVERY || autoPruning) return;
    sincePrune = 0;
    autoPruning = true;
    void track(
      prune(Math.floor(options.now() / 1000), retain, AUTO_PRUNE_BUDGET_MS)
        .catch(() => 0)
        .finally(() => {
          autoPruning = false;
        }),
    );
  };

  const decide = async (input: NonceConsumption, voided: boolean): Promise<Claim> => {
    const consumedAt = Math.floor(options.now() / 1000);
    const first = await db.pool.query(CLAIM, [
      input.jti,
      input.tenant,
      input.exp,
      input.decision_id,
      consumedAt,
      voided,
    ]);
    const row = parseClaimRow(first.rows);
    if (row.open === null) throw new Error('nonce prune horizon is missing');
    if (row.inserted) {
      if (!row.open || row.voided !== null) throw new TypeError('nonce claim row is inconsistent');
      return 'new';
    }
    if (row.voided !== null) return row.voided ? 'voided' : 'consumed';
    // Below the horizon: never consumable again, and it may have run before it was pruned.
    if (!row.open) return 'consumed';
    // A winner committed after this statement's snapshot: read its row with a new snapshot.
    // Gone again means a prune deleted it since: below the horizon, as above.
    const later = parseVoidedRow((await db.pool.query(READ_VOIDED, [input.jti])).rows);
    return later === true ? 'voided' : 'consumed';
  };

  const claim = (input: NonceConsumption, voided: boolean): Promise<Claim> => {
    if (closed) return Promise.reject(new Error('nonce store closed'));
    try {
      assertNonceConsumption(input);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TypeError('invalid consumption'));
    }
    return track(
      decide(input, voided).then((r) => {
        autoPrune();
        return r;
      }),
    );
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
    prune(input) {
      if (closed) return Promise.reject(new Error('nonce store closed'));
      try {
        const nowSec = wholeSeconds(input.nowSec, 'nowSec');
        const toleranceSec = wholeSeconds(input.toleranceSec, 'toleranceSec');
        return track(prune(nowSec, toleranceSec));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new TypeError('invalid prune'));
      }
    },
    async close() {
      closed = true;
      // Calls in flight settle (commit or reject) first; the pool belongs to its opener.
      await inFlight.settled();
    },
  };
}

/**
 * The identity of the nonce store `db` serves (docs/jobs.md "Shared nonce store"): the cluster's
 * system identifier (set once when the cluster is created, readable by any role), the database
 * and the schema. Every connection to that schema, from any host or URL, reads the same.
 */
export async function postgresNonceStoreIdentity(db: PostgresPool): Promise<string> {
  const r = await db.pool.query<{ sys: unknown; db: unknown }>(
    'SELECT system_identifier::text AS sys, current_database() AS db FROM pg_control_system()',
  );
  const row = r.rows.length === 1 ? r.rows[0] : undefined;
  if (
    row === undefined ||
    typeof row.sys !== 'string' ||
    typeof row.db !== 'string' ||
    !/^\d+$/.test(row.sys)
  )
    throw new TypeError('the cluster identifier could not be read');
  return `postgres:${row.sys}/${row.db}/${db.schema}`;
}
