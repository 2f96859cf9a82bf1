/**
 * Schedule timing (docs/schedules.md, FC-INV-6 scheduled tasks): a one-shot `at` time or a
 * 5-field cron expression (minute hour day-of-month month day-of-week, UTC), parsed once into a
 * frozen value, and the slots it fires. A slot is the window `[start, start + windowMs)` in which
 * one run may be decided and executed; the run's envelope expires at the slot's end at the latest.
 */

/** A parsed 5-field cron expression: the allowed values of each field, UTC. */
export interface CronSpec {
  readonly text: string;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly weekdays: ReadonlySet<number>;
  /** Day-of-month and day-of-week both restricted: either matches (POSIX cron). */
  readonly dayOr: boolean;
}

/** One firing of a schedule: milliseconds since the epoch, `end` exclusive. */
export interface Slot {
  readonly start: number;
  readonly end: number;
}

const FIELDS: readonly { readonly name: string; readonly min: number; readonly max: number }[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  // 7 is Sunday too, folded into 0.
  { name: 'day of week', min: 0, max: 7 },
];
const MAX_CRON_LENGTH = 128;
const NUMBER = /^\d{1,2}$/;

function parseNumber(text: string, min: number, max: number, name: string): number {
  if (!NUMBER.test(text)) throw new TypeError(`cron ${name}: "${text}" is not a number`);
  const n = Number(text);
  if (n < min || n > max) throw new TypeError(`cron ${name}: ${n} is outside ${min}-${max}`);
  return n;
}

function parseField(text: string, field: (typeof FIELDS)[number]): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText, extra] = part.split('/');
    if (range === undefined || extra !== undefined || range.length === 0)
      throw new TypeError(`cron ${field.name}: "${part}" is malformed`);
    const step = stepText === undefined ? 1 : parseNumber(stepText, 1, field.max, field.name);
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = field.min;
      hi = field.max === 7 ? 6 : field.max;
    } else {
      const [a, b, more] = range.split('-');
      if (a === undefined || more !== undefined)
        throw new TypeError(`cron ${field.name}: "${part}" is malformed`);
      lo = parseNumber(a, field.min, field.max, field.name);
      hi =
        b === undefined
          ? stepText === undefined
            ? lo
            : field.max
          : parseNumber(b, field.min, field.max, field.name);
      if (hi < lo) throw new TypeError(`cron ${field.name}: range ${range} is reversed`);
    }
    for (let v = lo; v <= hi; v += step) out.add(field.max === 7 && v === 7 ? 0 : v);
  }
  return out;
}

/**
 * Parses a 5-field cron expression (numbers, `*`, ranges `a-b`, lists `a,b`, steps `/n`; no
 * names, no seconds, UTC). Throws `TypeError` naming the field for anything else.
 */
export function parseCron(text: string): CronSpec {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_CRON_LENGTH)
    throw new TypeError('cron must be a non-empty string of at most 128 characters');
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 5)
    throw new TypeError('cron must have exactly 5 fields (minute hour day month weekday)');
  const sets = parts.map((p, i) => parseField(p, FIELDS[i]!));
  const [minutes, hours, days, months, weekdays] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  return Object.freeze({
    text: parts.join(' '),
    minutes,
    hours,
    days,
    months,
    weekdays,
    dayOr: parts[2] !== '*' && parts[4] !== '*',
  });
}

function dayMatches(spec: CronSpec, d: Date): boolean {
  const dom = spec.days.has(d.getUTCDate());
  const dow = spec.weekdays.has(d.getUTCDay());
  return spec.dayOr ? dom || dow : dom && dow;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** Far enough to find `0 0 29 2 *` (every leap year) and short enough to stop on `0 0 31 2 *`. */
const SEARCH_DAYS = 8 * 366;

/**
 * The first minute at or after `fromMs` that `spec` matches (ms since the epoch, UTC), or
 * undefined when none within eight years (an expression such as `0 0 31 2 *` never fires).
 */
export function nextCronTime(spec: CronSpec, fromMs: number): number | undefined {
  let t = Math.ceil(fromMs / MINUTE) * MINUTE;
  const limit = t + SEARCH_DAYS * DAY;
  while (t < limit) {
    const d = new Date(t);
    if (!spec.months.has(d.getUTCMonth() + 1) || !dayMatches(spec, d)) {
      // Skip to the next day's midnight.
      t = Math.floor(t / DAY) * DAY + DAY;
      continue;
    }
    if (!spec.hours.has(d.getUTCHours())) {
      t = Math.floor(t / (60 * MINUTE)) * 60 * MINUTE + 60 * MINUTE;
      continue;
    }
    if (spec.minutes.has(d.getUTCMinutes())) return t;
    t += MINUTE;
  }
  return undefined;
}

/** When a schedule fires: a cron expression or one instant, optionally until an end. */
export type Timing =
  | { readonly kind: 'cron'; readonly cron: CronSpec; readonly until: number | null }
  | { readonly kind: 'at'; readonly at: number };

/**
 * The slot of `timing` that starts at or after `fromMs`, of length `windowMs`, or undefined
 * when the schedule fires no more (past its `until`, or a one-shot time already passed).
 */
export function nextSlot(timing: Timing, fromMs: number, windowMs: number): Slot | undefined {
  const start =
    timing.kind === 'at' ? (timing.at >= fromMs ? timing.at : undefined) : nextCronTime(timing.cron, fromMs);
  if (start === undefined) return undefined;
  if (timing.kind === 'cron' && timing.until !== null && start >= timing.until) return undefined;
  return Object.freeze({ start, end: start + windowMs });
}
