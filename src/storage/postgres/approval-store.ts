/**
 * PostgreSQL {@link ApprovalStore} (OE-INV-019/020, FC-INV-4 single use, L7 Break-glass; SPEC §1
 * "Distributed"): the approval state every Control Plane replica on one database shares, with
 * the semantics of the SQLite store. Each state transition is one atomic operation of the
 * database, so two replicas racing never count a vote twice nor issue an approved call twice:
 *
 * - `addVote` is one transaction: the vote row (primary key decision and approver, UNIQUE
 *   approval hash) and the used mark of its approval hash, both inserted or neither; a racing
 *   insert of the same key waits for the first transaction and then finds its row;
 * - `markUsed`, `insertPending` and `insertReview` are `INSERT … ON CONFLICT DO NOTHING`, true
 *   only when this call inserted the row;
 * - `finalize` (`pending` →), `markIssued` (`approved` → `issued`) and `closeReview` (`open` →
 *   `closed`) are UPDATEs guarded by the status: true only for the one call that changed the row.
 *
 * One decision's approval steps (ledger entry, then state change) are serialized across replicas
 * by `withDecisionLock`: a session advisory lock keyed by ({@link DECISION_LOCK_CLASS},
 * `hashtext(schema:decision)`) held on a dedicated pooled connection while the step runs. Its
 * wait is bounded by the pool's `lock_timeout`; a lock not granted in time rejects (the step
 * denies, fail closed). A hash collision of two decisions only serializes more.
 *
 * Every row read back is parsed as untrusted input by the same functions as the SQLite store's
 * (approver keys checked again by `parsePublicJwk`); any failure — a database that is stopped,
 * slow past the pool's deadlines or garbled, a malformed row — rejects and the callers deny
 * (fail closed). The store owns nothing: the backend that opened `db` closes it.
 */
import {
  approverJwksOf,
  parseApproverRow,
  parseApproverWithKey,
  parseGrantBody,
  parsePendingRow,
  parseReviewBody,
  parseVoteRow,
  pendingBody,
  parseActivity,
  parseActivityRow,
  tenantsText,
  utcHour,
} from '../../control-plane/index.js';
import type {
  ActivityColumns,
  ActivityRecord,
  ApprovalStore,
  ApproverColumns,
  BreakGlassGrant,
  PendingColumns,
  PendingRecord,
  ReviewRecord,
  VoteColumns,
  VoteRecord,
} from '../../control-plane/index.js';
import { parsePublicJwk } from '../../kernel/index.js';
import { inTransaction, type PostgresPool } from './pool.js';
import { rowInt, rowText } from './rows.js';

type Row = Record<string, unknown>;

const PENDING_COLUMNS = 'decision_id, body, status, approvals, grant_id';
const VOTE_COLUMNS =
  'decision_id, approver, verdict, role, method, approval_sha256, at, ledger_index, candidate';

const INSERT_VOTE = `INSERT INTO approval_votes (${VOTE_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8::bigint, $9) ON CONFLICT DO NOTHING RETURNING 1 AS one`;
const MARK_USED = `INSERT INTO approval_used (approval_sha256, at) VALUES ($1, $2::bigint)
  ON CONFLICT DO NOTHING RETURNING 1 AS one`;

/** First key of a decision's two-key advisory lock: "fcap" read as a 32-bit integer. */
export const DECISION_LOCK_CLASS = 0x66636170;

const LOCK = 'SELECT pg_advisory_lock($1::int4, hashtext($2))';
const UNLOCK = 'SELECT pg_advisory_unlock($1::int4, hashtext($2)) AS ok';

/** Thrown inside the vote transaction to roll its vote row back when the hash was used before. */
class Replayed extends Error {}

/** A millisecond time as stored (`bigint`): a safe integer. */
function ms(v: number, what: string): number {
  const n = Math.trunc(v);
  if (!Number.isSafeInteger(n)) throw new TypeError(`${what} is not a safe integer`);
  return n;
}

/** An approval store over `db` (migrated to the current schema; see `migrate`). */
export function createPostgresApprovalStore(db: PostgresPool): ApprovalStore {
  const rows = async (sql: string, params: unknown[] = []): Promise<Row[]> =>
    (await db.pool.query<Row>(sql, params)).rows;
  const changed = async (sql: string, params: unknown[]): Promise<boolean> => {
    const n = (await db.pool.query(sql, params)).rowCount;
    if (n !== 0 && n !== 1) throw new TypeError('a guarded write changed more than one row');
    return n === 1;
  };

  const store: ApprovalStore = {
    async registerApprover({
      name,
      roles,
      tenants,
      jwk,
      atMs,
    }: Parameters<ApprovalStore['registerApprover']>[0]) {
      const key = parsePublicJwk(jwk);
      if (tenants !== '*' && tenants.length === 0) throw new TypeError('an approver needs a tenant scope');
      const row = {
        name,
        roles: JSON.stringify([...roles].sort()),
        tenants: tenantsText(tenants),
        kid: key.kid,
        jwk: JSON.stringify(key.jwk),
        status: 'active',
        registered_at: ms(atMs, 'atMs'),
      };
      const inserted = await changed(
        `INSERT INTO approval_approvers (name, roles, tenants, kid, jwk, status, registered_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7::bigint) ON CONFLICT DO NOTHING`,
        [row.name, row.roles, row.tenants, row.kid, row.jwk, row.status, row.registered_at],
      );
      if (!inserted) throw new TypeError(`approver ${name} already exists`);
      return parseApproverRow(row);
    },
    async revokeApprover(name: string) {
      return changed(
        "UPDATE approval_approvers SET status = 'revoked' WHERE name = $1 AND status = 'active'",
        [name],
      );
    },
    async approver(name: string) {
      const r = (await rows('SELECT * FROM approval_approvers WHERE name = $1', [name]))[0];
      return r === undefined ? undefined : parseApproverWithKey(r as unknown as ApproverColumns);
    },
    async listApprovers() {
      const all = await rows('SELECT * FROM approval_approvers ORDER BY name');
      return Object.freeze(all.map((r) => parseApproverRow(r as unknown as ApproverColumns)));
    },
    async approverJwks() {
      return approverJwksOf((await rows('SELECT * FROM approval_approvers')) as unknown as ApproverColumns[]);
    },
    async setOwner(identity: string, owner: string) {
      await rows(
        `INSERT INTO approval_client_owners (identity, owner) VALUES ($1, $2)
          ON CONFLICT (identity) DO UPDATE SET owner = excluded.owner`,
        [identity, owner],
      );
    },
    async ownerOf(identity: string) {
      const r = (await rows('SELECT owner FROM approval_client_owners WHERE identity = $1', [identity]))[0];
      return r === undefined ? undefined : rowText(r['owner'], 'approval_client_owners.owner');
    },
    async insertPending(rec: PendingRecord) {
      return changed(
        `INSERT INTO approval_pending (decision_id, body, status, approvals, grant_id, expires_at, created_at)
          VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint) ON CONFLICT DO NOTHING`,
        [
          rec.decision_id,
          pendingBody(rec),
          rec.status,
          JSON.stringify(rec.approvals),
          rec.grant_id,
          ms(rec.expires_at, 'expires_at'),
          ms(rec.created_at, 'created_at'),
        ],
      );
    },
    async pending(id: string) {
      const r = (
        await rows(`SELECT ${PENDING_COLUMNS} FROM approval_pending WHERE decision_id = $1`, [id])
      )[0];
      return r === undefined ? undefined : parsePendingRow(r as unknown as PendingColumns);
    },
    async listPending() {
      const all = await rows(
        `SELECT ${PENDING_COLUMNS} FROM approval_pending ORDER BY created_at, decision_id`,
      );
      return Object.freeze(all.map((r) => parsePendingRow(r as unknown as PendingColumns)));
    },
    async addVote(v: VoteRecord) {
      try {
        return await inTransaction(db.pool, async (client) => {
          // Waits for a racing transaction inserting the same key, then sees its row (READ COMMITTED).
          const inserted = await client.query(INSERT_VOTE, [
            v.decision_id,
            v.approver,
            v.verdict,
            v.role,
            v.method,
            v.approval_sha256,
            ms(v.at, 'at'),
            ms(v.ledger_index, 'ledger_index'),
            JSON.stringify(v.candidate),
          ]);
          if (inserted.rowCount !== 1) {
            const voted = await client.query(
              'SELECT 1 AS one FROM approval_votes WHERE decision_id = $1 AND approver = $2',
              [v.decision_id, v.approver],
            );
            return voted.rowCount === 1 ? 'duplicate' : 'replayed';
          }
          const used = await client.query(MARK_USED, [v.approval_sha256, ms(v.at, 'at')]);
          if (used.rowCount !== 1) throw new Replayed();
          return 'ok';
        });
      } catch (err) {
        if (err instanceof Replayed) return 'replayed';
        throw err;
      }
    },
    async markUsed(sha: string, atMs: number) {
      return (await rows(MARK_USED, [sha, ms(atMs, 'atMs')])).length === 1;
    },
    async votes(id: string) {
      const all = await rows(
        `SELECT ${VOTE_COLUMNS} FROM approval_votes WHERE decision_id = $1 ORDER BY ledger_index, approver`,
        [id],
      );
      return Object.freeze(all.map((r) => parseVoteRow(r as unknown as VoteColumns)));
    },
    async finalize(
      id: string,
      status: 'approved' | 'rejected' | 'expired',
      approvals: readonly string[],
      grantId?: string,
    ) {
      return changed(
        `UPDATE approval_pending SET status = $1, approvals = $2, grant_id = $3
          WHERE decision_id = $4 AND status = 'pending'`,
        [status, JSON.stringify(approvals), grantId ?? null, id],
      );
    },
    async markIssued(id: string) {
      return changed(
        "UPDATE approval_pending SET status = 'issued' WHERE decision_id = $1 AND status = 'approved'",
        [id],
      );
    },
    async withDecisionLock<T>(decisionId: string, fn: (held: () => boolean) => Promise<T>): Promise<T> {
      const key = [DECISION_LOCK_CLASS, `${db.schema}:${decisionId}`];
      const client = await db.pool.connect();
      let broken: Error | undefined;
      // A checked-out connection that breaks (server restart, network cut) emits an error: noted
      // here (the pool's own listener only absorbs it), so it never crashes the process, and discarded below.
      const onError = (err: Error): void => {
        broken ??= err;
      };
      client.on('error', onError);
      const release = (): void => {
        client.off('error', onError);
        client.release(broken);
      };
      try {
        // Waits at most the connection's lock_timeout (and statement deadline), then rejects.
        await client.query(LOCK, key);
      } catch (err) {
        // Whether the server granted the lock after the client gave up is unknown: the
        // connection is discarded, and its session's locks end with it.
        broken ??= err instanceof Error ? err : new Error('decision lock failed');
        release();
        throw new Error('the approval decision lock was not granted', { cause: err });
      }
      try {
        // A connection that failed lost its session, and the server the lock with it.
        return await fn(() => broken === undefined);
      } finally {
        try {
          const r = await client.query<{ ok: unknown }>(UNLOCK, key);
          if (r.rows[0]?.ok !== true) broken ??= new Error('the decision lock was not held at unlock');
        } catch (err) {
          broken ??= err instanceof Error ? err : new Error('decision unlock failed');
        }
        // A connection that may still hold the lock never returns to the pool.
        release();
      }
    },
    async insertGrant(g: BreakGlassGrant) {
      await rows(
        `INSERT INTO approval_grants (grant_id, body, tenant, tool, expires_at)
          VALUES ($1, $2, $3, $4, $5::bigint)`,
        [g.grant_id, JSON.stringify(g), g.tenant, g.tool, ms(g.expires_at, 'expires_at')],
      );
    },
    async activeGrants(atMs: number) {
      const found = await rows(
        `SELECT body FROM approval_grants WHERE expires_at > $1::bigint
          ORDER BY expires_at DESC, grant_id LIMIT 1000`,
        [ms(atMs, 'atMs')],
      );
      return found.map((r) => {
        const g = parseGrantBody(r['body']);
        // The row must be what the query selected.
        if (!(g.expires_at > atMs)) throw new TypeError('approval_grants row does not match its columns');
        return g;
      });
    },
    async activeGrant(tenant: string, tool: string, atMs: number) {
      const r = (
        await rows(
          `SELECT body FROM approval_grants WHERE tenant = $1 AND tool = $2 AND expires_at > $3::bigint
            ORDER BY expires_at DESC, grant_id LIMIT 1`,
          [tenant, tool, ms(atMs, 'atMs')],
        )
      )[0];
      if (r === undefined) return undefined;
      const g = parseGrantBody(r['body']);
      // The row must be what the query selected.
      if (g.tenant !== tenant || g.tool !== tool || !(g.expires_at > atMs))
        throw new TypeError('approval_grants row does not match its columns');
      return g;
    },
    async endGrant(grantId: string, atMs: number) {
      const at = ms(atMs, 'atMs');
      return changed(
        'UPDATE approval_grants SET expires_at = $1::bigint WHERE grant_id = $2 AND expires_at > $1::bigint',
        [at, grantId],
      );
    },
    async insertReview(r: ReviewRecord) {
      await rows(
        'INSERT INTO approval_reviews (review_id, body, status) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [r.review_id, JSON.stringify(r), r.status],
      );
    },
    async review(id: string) {
      const r = (await rows('SELECT body, status FROM approval_reviews WHERE review_id = $1', [id]))[0];
      return r === undefined ? undefined : parseReviewBody(r['body'], r['status']);
    },
    async listReviews() {
      const all = await rows('SELECT body, status FROM approval_reviews ORDER BY review_id');
      return Object.freeze(all.map((r) => parseReviewBody(r['body'], r['status'])));
    },
    async closeReview(id: string, by: string, notes: string, atMs: number) {
      const r = (await rows('SELECT body, status FROM approval_reviews WHERE review_id = $1', [id]))[0];
      if (r === undefined) return false;
      const body: ReviewRecord = {
        ...parseReviewBody(r['body'], r['status']),
        status: 'closed',
        closed_by: by,
        closed_at: ms(atMs, 'atMs'),
        notes,
      };
      // Guarded by the status: of two closings racing on any replicas only one changes the row.
      return changed(
        "UPDATE approval_reviews SET body = $1, status = 'closed' WHERE review_id = $2 AND status = 'open'",
        [JSON.stringify(body), id],
      );
    },
    async takeApprovalSlot(approver: string, windowStart: number, windowMs: number, limit: number) {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('limit must be a positive integer');
      if (!Number.isSafeInteger(windowMs) || windowMs < 1)
        throw new TypeError('windowMs must be a positive integer');
      const start = ms(windowStart, 'windowStart');
      // The window before stays: a replica whose clock lags still counts in it.
      await rows('DELETE FROM approval_rate WHERE approver = $1 AND window_start < $2::bigint', [
        approver,
        start - windowMs,
      ]);
      // One statement: the row lock of ON CONFLICT serializes racing replicas; a slot is taken
      // only while fewer than the limit are, and then a row is returned.
      return (
        (
          await rows(
            `INSERT INTO approval_rate (approver, window_start, count) VALUES ($1, $2::bigint, 1)
              ON CONFLICT (approver, window_start) DO UPDATE SET count = approval_rate.count + 1
              WHERE approval_rate.count < $3::int RETURNING count`,
            [approver, start, limit],
          )
        ).length === 1
      );
    },
    async markRateRefusal(approver: string, windowStart: number) {
      return changed(
        'UPDATE approval_rate SET refused = 1 WHERE approver = $1 AND window_start = $2::bigint AND refused = 0',
        [approver, ms(windowStart, 'windowStart')],
      );
    },
    async recordFlag(a: ActivityRecord) {
      // A repeat keeps the first flags; `extra` only rises (any require_extra flag raises).
      await rows(
        `INSERT INTO approval_flags (decision_id, approver, tenant, at, flags, extra)
          VALUES ($1, $2, $3, $4::bigint, $5, $6::int)
          ON CONFLICT (decision_id, approver) DO UPDATE SET extra = GREATEST(approval_flags.extra, excluded.extra)`,
        [a.decision_id, a.approver, a.tenant, ms(a.at, 'at'), JSON.stringify(a.flags), a.extra ? 1 : 0],
      );
    },
    async recordView(decisionId: string, approver: string, atMs: number) {
      await rows(
        'INSERT INTO approval_views (decision_id, approver, at) VALUES ($1, $2, $3::bigint) ON CONFLICT DO NOTHING',
        [decisionId, approver, ms(atMs, 'atMs')],
      );
    },
    async viewedAt(decisionId: string, approver: string) {
      const r = (
        await rows('SELECT at FROM approval_views WHERE decision_id = $1 AND approver = $2', [
          decisionId,
          approver,
        ])
      )[0];
      return r === undefined ? undefined : rowInt(r['at'], 'approval_views.at');
    },
    async recordActivity(a: ActivityRecord) {
      // Its summary is kept by the table's trigger (migration version 17).
      await rows(
        `INSERT INTO approval_activity (decision_id, approver, tenant, hour, at, flags, extra)
          VALUES ($1, $2, $3, $4::int, $5::bigint, $6, $7::int) ON CONFLICT DO NOTHING`,
        [
          a.decision_id,
          a.approver,
          a.tenant,
          utcHour(a.at),
          ms(a.at, 'at'),
          JSON.stringify(a.flags),
          a.extra ? 1 : 0,
        ],
      );
    },
    async activity(approver: string, recentSince: number) {
      const counts = (
        await rows(
          `SELECT coalesce((SELECT total FROM approval_activity_totals WHERE approver = $1), 0) AS total,
             (SELECT count(*) FROM approval_activity WHERE approver = $1 AND at >= $2::bigint) AS recent`,
          [approver, ms(recentSince, 'recentSince')],
        )
      )[0];
      const tenants = await rows(
        'SELECT tenant FROM approval_activity_tenants WHERE approver = $1 ORDER BY tenant',
        [approver],
      );
      const hours = await rows('SELECT hour FROM approval_activity_hours WHERE approver = $1 ORDER BY hour', [
        approver,
      ]);
      return parseActivity(
        counts?.['total'],
        counts?.['recent'],
        tenants.map((r) => r['tenant']),
        hours.map((r) => r['hour']),
      );
    },
    async flagged(decisionId: string) {
      const all = await rows('SELECT * FROM approval_flags WHERE decision_id = $1 ORDER BY approver', [
        decisionId,
      ]);
      return Object.freeze(all.map((r) => parseActivityRow(r as unknown as ActivityColumns)));
    },
    // The pool is the backend's; only this instance stops answering.
    close: () => Promise.resolve(),
  };
  return guarded(store);
}

/** `store` rejecting every call once it was closed (fail closed, like the SQLite store). */
function guarded(store: ApprovalStore): ApprovalStore {
  let closed = false;
  const out: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const [name, fn] of Object.entries(store) as [string, (...args: unknown[]) => Promise<unknown>][]) {
    out[name] =
      name === 'close'
        ? () => {
            closed = true;
            return Promise.resolve();
          }
        : (...args) => (closed ? Promise.reject(new Error('the approval store is closed')) : fn(...args));
  }
  return Object.freeze(out) as unknown as ApprovalStore;
}
