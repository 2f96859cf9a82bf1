/**
 * Where schedules live (docs/schedules.md): one row per schedule, with the slot it fires next.
 * Only the row's `next_slot` moves a schedule forward, by a compare-and-set: one process takes
 * each slot, whoever else reads the same row (FC-INV-6 scheduled tasks).
 */
import type { JsonObject } from '../kernel/index.js';

/**
 * `pending`: written, not yet ledgered (never fires); `active`: fires its slots; `paused` and
 * `removed`: by an operator (or a creation the Gate could not complete).
 */
export type ScheduleStatus = 'pending' | 'active' | 'paused' | 'removed';

/** The outcome of a schedule's latest run as the Gate answered its submission. */
export interface ScheduleRunNote {
  readonly request_id: string | null;
  readonly slot_start: number;
  /** `queued` (decided and handed to the job queue), or `deny`. */
  readonly outcome: string;
  readonly code: string | null;
}

/** One schedule. */
export interface ScheduleRecord {
  readonly id: string;
  readonly tenant: string;
  /** The creator, the principal of every run. */
  readonly identity: string;
  readonly tool: string;
  /** The `schedule.create` parameters exactly as decided and approved. */
  readonly spec: JsonObject;
  /** The creation's decision, whose approvals stand behind the runs. */
  readonly decision_id: string;
  /** The creation's request. */
  readonly request_id: string;
  readonly status: ScheduleStatus;
  /** Start of the next slot to fire (ms since the epoch); null once the schedule fires no more. */
  readonly next_slot: number | null;
  readonly created_at: number;
  readonly last_run: ScheduleRunNote | null;
}

/** The schedule store; every method rejects when the store cannot answer. */
export interface ScheduleStore {
  /** Adds a schedule; false when its id exists (one schedule per creation decision). */
  insert(rec: ScheduleRecord): Promise<boolean>;
  get(id: string): Promise<ScheduleRecord | undefined>;
  /** Every schedule but removed ones, by creation time. */
  list(): Promise<readonly ScheduleRecord[]>;
  /** Active schedules whose next slot starts at or before `nowMs`. */
  due(nowMs: number): Promise<readonly ScheduleRecord[]>;
  /** Moves `id` from one of `from` to `to` (and, when given, its next slot); false when it was not in `from`. */
  setStatus(
    id: string,
    from: readonly ScheduleStatus[],
    to: ScheduleStatus,
    nextSlot?: number | null,
  ): Promise<boolean>;
  /** Takes slot `slot` of active schedule `id`, moving it to `next`; false when another process took it. */
  claimSlot(id: string, slot: number, next: number | null): Promise<boolean>;
  /**
   * Records how the latest run's submission was answered; a note for an earlier slot than the one
   * noted (a late answer, or another process's) leaves the later one in place.
   */
  noteRun(id: string, run: ScheduleRunNote): Promise<void>;
  close(): Promise<void>;
}

const STATUSES: ReadonlySet<string> = new Set(['pending', 'active', 'paused', 'removed']);

function str(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`schedule row: ${name} is malformed`);
  return v;
}

function int(v: unknown, name: string): number {
  // PostgreSQL answers a bigint as its decimal text; SQLite as a number (or a bigint).
  const n =
    typeof v === 'bigint' ? Number(v) : typeof v === 'string' && /^-?\d{1,16}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n))
    throw new TypeError(`schedule row: ${name} is malformed`);
  return n;
}

function object(text: unknown, name: string): JsonObject {
  const v: unknown = JSON.parse(str(text, name));
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new TypeError(`schedule row: ${name} is malformed`);
  return v as JsonObject;
}

/** Parses a stored row (never trusted): `TypeError` for anything malformed. */
export function parseScheduleRow(r: Record<string, unknown>): ScheduleRecord {
  const status = str(r['status'], 'status');
  if (!STATUSES.has(status)) throw new TypeError('schedule row: status is malformed');
  const last =
    r['last_run'] === null || r['last_run'] === undefined ? null : object(r['last_run'], 'last_run');
  return Object.freeze({
    id: str(r['id'], 'id'),
    tenant: str(r['tenant'], 'tenant'),
    identity: str(r['identity'], 'identity'),
    tool: str(r['tool'], 'tool'),
    spec: object(r['spec'], 'spec'),
    decision_id: str(r['decision_id'], 'decision_id'),
    request_id: str(r['request_id'], 'request_id'),
    status: status as ScheduleStatus,
    next_slot: r['next_slot'] === null ? null : int(r['next_slot'], 'next_slot'),
    created_at: int(r['created_at'], 'created_at'),
    last_run:
      last === null
        ? null
        : Object.freeze({
            request_id: typeof last['request_id'] === 'string' ? last['request_id'] : null,
            slot_start: int(last['slot_start'], 'last_run.slot_start'),
            outcome: str(last['outcome'], 'last_run.outcome'),
            code: typeof last['code'] === 'string' ? last['code'] : null,
          }),
  });
}

/**
 * The due rows parsed one by one: a malformed row is left out (it never fires: nothing of it can
 * be checked), and the others still fire. One bad row used to fail the whole list, and so every
 * schedule of every gate. `list` still refuses it, so an operator sees it.
 */
export function parseDueRows(rows: readonly Record<string, unknown>[]): ScheduleRecord[] {
  const out: ScheduleRecord[] = [];
  for (const r of rows) {
    try {
      out.push(parseScheduleRow(r));
    } catch {
      // Malformed: never due.
    }
  }
  return out;
}
