/**
 * What a schedule asks for (docs/schedules.md, FC-INV-6 "All scheduled tasks MUST use an approval
 * envelope with explicit expiry"): the parameters of the reserved action `schedule.create`,
 * parsed once at the Control Plane (which decides the creation) and again wherever a stored or
 * ledgered schedule is read. Pure: no I/O.
 */
import { parseCron } from './cron.js';
import type { Timing } from './cron.js';
import { deny } from './errors.js';
import type { Deny } from './errors.js';
import type { JsonObject, JsonValue } from './json.js';
import { REQUEST_NAME } from './observe.js';

/** The reserved action that creates a schedule: a governed call like any other (docs/schedules.md). */
export const SCHEDULE_CREATE_ACTION = 'schedule.create';
/** Default length of a slot: a run not decided and executed within it is denied (seconds). */
export const DEFAULT_SLOT_SECONDS = 300;
/** Shortest and longest slot (seconds); the envelope of a run expires at its slot's end at the latest. */
export const MIN_SLOT_SECONDS = 10;
export const MAX_SLOT_SECONDS = 3_600;

/**
 * The request id of a schedule's run at one slot (docs/schedules.md "Runs"): `run-<schedule id>-`
 * and the slot's start in compact ISO 8601 (`20270105T023000.000Z`). One slot has one request id,
 * so its decision id and envelope nonce (`jti`), derived from it, are one as well: a slot handed
 * out twice (a resume on a clock that lags, a replica whose clock differs) is refused as a replay
 * at the Gate, claimed once at a Control Plane process, and its envelope runs at most once
 * (FC-INV-6, OE-INV-017).
 */
export function runRequestId(scheduleId: string, slotStartMs: number): string {
  return `run-${scheduleId}-${new Date(slotStartMs).toISOString().replace(/[-:]/g, '')}`;
}

/** A parsed `schedule.create` request: the call to run, and when. */
export interface ScheduleSpec {
  readonly tool: string;
  readonly params: JsonObject;
  readonly timing: Timing;
  /** Length of each run's slot, milliseconds. */
  readonly windowMs: number;
}

const MEMBERS = new Set(['tool', 'params', 'cron', 'at', 'until', 'window_seconds']);
const UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z$/;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function utc(v: unknown): number | undefined {
  if (typeof v !== 'string' || !UTC.test(v)) return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : undefined;
}

/**
 * Parses `schedule.create` parameters: `{tool, params, cron | at, until?, window_seconds?}` with
 * exactly one of `cron` (5 fields, UTC) and `at` (RFC 3339 UTC), `until` only with `cron`.
 * Denies `ERR_PARAMS_INVALID` for anything else (unknown members, a bad expression, the
 * reserved action itself as the scheduled tool).
 */
export function parseScheduleSpec(input: JsonValue | undefined): ScheduleSpec | Deny {
  const bad = (why: string): Deny => deny('ERR_PARAMS_INVALID', `schedule: ${why}`);
  if (!isObject(input)) return bad('parameters must be an object');
  for (const k of Object.keys(input)) if (!MEMBERS.has(k)) return bad(`unknown member ${k}`);
  const { tool, params, cron, at, until } = input;
  if (typeof tool !== 'string' || !REQUEST_NAME.test(tool) || tool === SCHEDULE_CREATE_ACTION)
    return bad('tool must name a tool');
  if (!isObject(params)) return bad('params must be an object');
  const w = input['window_seconds'] ?? DEFAULT_SLOT_SECONDS;
  if (typeof w !== 'number' || !Number.isSafeInteger(w) || w < MIN_SLOT_SECONDS || w > MAX_SLOT_SECONDS)
    return bad(`window_seconds must be an integer ${MIN_SLOT_SECONDS}..${MAX_SLOT_SECONDS}`);
  let timing: Timing;
  if (cron !== undefined) {
    if (at !== undefined) return bad('give cron or at, not both');
    if (typeof cron !== 'string') return bad('cron must be a string');
    let parsed;
    try {
      parsed = parseCron(cron);
    } catch (err) {
      return bad((err as Error).message);
    }
    const end = until === undefined ? null : utc(until);
    if (end === undefined) return bad('until must be an RFC 3339 UTC time');
    timing = Object.freeze({ kind: 'cron', cron: parsed, until: end });
  } else {
    if (until !== undefined) return bad('until applies to cron only');
    const t = utc(at);
    if (t === undefined) return bad('give cron (5 fields, UTC) or at (RFC 3339 UTC)');
    timing = Object.freeze({ kind: 'at', at: t });
  }
  return Object.freeze({ tool, params, timing, windowMs: w * 1000 });
}
