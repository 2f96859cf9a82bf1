/**
 * PostgreSQL {@link ScheduleStore} (docs/schedules.md, FC-INV-6 scheduled tasks), shared by every
 * gate on the database with the semantics of the SQLite store: each change is one guarded
 * statement whose "one row changed" is the only success, so of several gates ticking at once one
 * takes each slot (`claimSlot`). Rows are parsed as untrusted input; any failure rejects and
 * nothing is scheduled or submitted. The store owns nothing: the backend closes the pool.
 */
import { canonicalize } from '../../kernel/index.js';
import { parseDueRows, parseScheduleRow } from '../../schedules/index.js';
import type {
  ScheduleRecord,
  ScheduleRunNote,
  ScheduleStatus,
  ScheduleStore,
} from '../../schedules/index.js';
import type { PostgresPool } from './pool.js';

type Row = Record<string, unknown>;

/** A schedule store over `db` (migrated to the current schema). */
export function createPostgresScheduleStore(db: PostgresPool): ScheduleStore {
  const rows = async (sql: string, params: unknown[]): Promise<ScheduleRecord[]> =>
    (await db.pool.query<Row>(sql, params)).rows.map((r) => parseScheduleRow(r));
  const changed = async (sql: string, params: unknown[]): Promise<boolean> => {
    const n = (await db.pool.query(sql, params)).rowCount;
    if (n !== 0 && n !== 1) throw new TypeError('a guarded write changed more than one row');
    return n === 1;
  };
  return Object.freeze({
    insert: (r: ScheduleRecord) =>
      changed(
        `INSERT INTO schedules (id, tenant, identity, tool, spec, decision_id, request_id, status, next_slot, created_at, last_run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10::bigint, NULL) ON CONFLICT DO NOTHING`,
        [
          r.id,
          r.tenant,
          r.identity,
          r.tool,
          canonicalize(r.spec),
          r.decision_id,
          r.request_id,
          r.status,
          r.next_slot,
          r.created_at,
        ],
      ),
    get: async (id: string) => (await rows('SELECT * FROM schedules WHERE id = $1', [id]))[0],
    list: () => rows("SELECT * FROM schedules WHERE status <> 'removed' ORDER BY created_at, id", []),
    due: async (nowMs: number) =>
      parseDueRows(
        (
          await db.pool.query<Row>(
            `SELECT * FROM schedules WHERE status = 'active' AND next_slot IS NOT NULL AND next_slot <= $1::bigint
         ORDER BY next_slot, id`,
            [nowMs],
          )
        ).rows,
      ),
    setStatus: (
      id: string,
      from: readonly ScheduleStatus[],
      to: ScheduleStatus,
      nextSlot?: number | null,
    ) => {
      if (from.length === 0) return Promise.resolve(false);
      return nextSlot === undefined
        ? changed('UPDATE schedules SET status = $1 WHERE id = $2 AND status = ANY($3::text[])', [
            to,
            id,
            [...from],
          ])
        : changed(
            'UPDATE schedules SET status = $1, next_slot = $2::bigint WHERE id = $3 AND status = ANY($4::text[])',
            [to, nextSlot, id, [...from]],
          );
    },
    claimSlot: (id: string, slot: number, next: number | null) =>
      changed(
        "UPDATE schedules SET next_slot = $1::bigint WHERE id = $2 AND status = 'active' AND next_slot = $3::bigint",
        [next, id, slot],
      ),
    noteRun: async (id: string, run: ScheduleRunNote) => {
      // A note for an earlier slot than the one noted (a late answer) leaves the later one.
      await db.pool.query(
        "UPDATE schedules SET last_run = $1 WHERE id = $2 AND (last_run IS NULL OR (last_run::jsonb->>'slot_start')::bigint <= $3::bigint)",
        [canonicalize({ ...run }), id, run.slot_start],
      );
    },
    close: () => Promise.resolve(),
  });
}
