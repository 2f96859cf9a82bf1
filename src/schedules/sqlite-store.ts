/**
 * The schedule store in SQLite (`ledger.db`, next to the other stores on the deployment's one
 * connection): every write commits before it returns (`writeNow`). Versioned like every store
 * (`failclosed_schema`, store `schedules`).
 */
import Database from 'better-sqlite3';
import { canonicalize, openStoreConnection } from '../kernel/index.js';
import type { SchemaMigration, SqliteCommitUnit } from '../kernel/index.js';
import { parseDueRows, parseScheduleRow } from './store.js';
import type { ScheduleRecord, ScheduleRunNote, ScheduleStatus, ScheduleStore } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  identity TEXT NOT NULL,
  tool TEXT NOT NULL,
  spec TEXT NOT NULL,
  decision_id TEXT NOT NULL UNIQUE,
  request_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'paused', 'removed')),
  next_slot INTEGER,
  created_at INTEGER NOT NULL,
  last_run TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (status, next_slot);
`;

const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'schedules with their next slot', up: SCHEMA },
];

/** Opens (creating its table when absent) the schedule store at `path`, or on `unit`. */
export function createSqliteScheduleStore(
  path: string,
  options: { readonly unit?: SqliteCommitUnit } = {},
): ScheduleStore {
  const { unit } = options;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'schedules',
    migrations: MIGRATIONS,
  });
  const write = <T>(fn: () => T): T => (unit === undefined ? fn() : unit.writeNow(fn));
  const q = {
    insert: db.prepare(
      `INSERT INTO schedules (id, tenant, identity, tool, spec, decision_id, request_id, status, next_slot, created_at, last_run)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING`,
    ),
    get: db.prepare('SELECT * FROM schedules WHERE id = ?'),
    list: db.prepare("SELECT * FROM schedules WHERE status != 'removed' ORDER BY created_at, id"),
    due: db.prepare(
      "SELECT * FROM schedules WHERE status = 'active' AND next_slot IS NOT NULL AND next_slot <= ? ORDER BY next_slot, id",
    ),
    claim: db.prepare(
      "UPDATE schedules SET next_slot = ? WHERE id = ? AND status = 'active' AND next_slot = ?",
    ),
    note: db.prepare(
      "UPDATE schedules SET last_run = ? WHERE id = ? AND (last_run IS NULL OR json_extract(last_run, '$.slot_start') <= ?)",
    ),
  };
  const rows = (rs: unknown[]): ScheduleRecord[] =>
    rs.map((r) => parseScheduleRow(r as Record<string, unknown>));
  return Object.freeze({
    insert: (r: ScheduleRecord) =>
      Promise.resolve(
        write(() =>
          q.insert.run(
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
          ),
        ).changes === 1,
      ),
    get: (id: string) => {
      const r = q.get.get(id);
      return Promise.resolve(r === undefined ? undefined : parseScheduleRow(r as Record<string, unknown>));
    },
    list: () => Promise.resolve(rows(q.list.all())),
    due: (nowMs: number) => Promise.resolve(parseDueRows(q.due.all(nowMs) as Record<string, unknown>[])),
    setStatus: (
      id: string,
      from: readonly ScheduleStatus[],
      to: ScheduleStatus,
      nextSlot?: number | null,
    ) => {
      if (from.length === 0) return Promise.resolve(false);
      const marks = from.map(() => '?').join(', ');
      const sql =
        nextSlot === undefined
          ? `UPDATE schedules SET status = ? WHERE id = ? AND status IN (${marks})`
          : `UPDATE schedules SET status = ?, next_slot = ? WHERE id = ? AND status IN (${marks})`;
      const args = nextSlot === undefined ? [to, id, ...from] : [to, nextSlot, id, ...from];
      return Promise.resolve(write(() => db.prepare(sql).run(...args)).changes === 1);
    },
    claimSlot: (id: string, slot: number, next: number | null) =>
      Promise.resolve(write(() => q.claim.run(next, id, slot)).changes === 1),
    noteRun: (id: string, run: ScheduleRunNote) => {
      write(() => q.note.run(canonicalize({ ...run }), id, run.slot_start));
      return Promise.resolve();
    },
    close: () => {
      if (unit === undefined) db.close();
      return Promise.resolve();
    },
  });
}
