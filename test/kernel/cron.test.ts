/** Schedule timing: the 5-field cron parser and slots (docs/schedules.md, FC-INV-6 scheduled tasks). */
import { describe, expect, it } from 'vitest';
import { nextCronTime, nextSlot, parseCron } from '../../src/kernel/cron.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined =>
  ms === undefined ? undefined : new Date(ms).toISOString();

describe('parseCron', () => {
  it('parses numbers, lists, ranges, steps and stars', () => {
    const c = parseCron('*/15 2,14 1-3 * 1-5');
    expect([...c.minutes]).toEqual([0, 15, 30, 45]);
    expect([...c.hours]).toEqual([2, 14]);
    expect([...c.days]).toEqual([1, 2, 3]);
    expect(c.months.size).toBe(12);
    expect([...c.weekdays]).toEqual([1, 2, 3, 4, 5]);
    expect(c.dayOr).toBe(true);
  });

  it('folds weekday 7 into Sunday', () => {
    expect([...parseCron('0 0 * * 7').weekdays]).toEqual([0]);
  });

  it.each([
    ['', /non-empty/],
    ['* * * *', /exactly 5 fields/],
    ['* * * * * *', /exactly 5 fields/],
    ['60 * * * *', /minute: 60 is outside/],
    ['* 24 * * *', /hour: 24 is outside/],
    ['* * 0 * *', /day of month: 0 is outside/],
    ['* * * 13 *', /month: 13 is outside/],
    ['* * * * 8', /day of week: 8 is outside/],
    ['5-1 * * * *', /reversed/],
    ['*/0 * * * *', /minute: 0 is outside/],
    ['MON * * * *', /not a number/],
    ['1,,2 * * * *', /malformed/],
    ['1/2/3 * * * *', /malformed/],
    ['x'.repeat(200), /at most 128/],
  ])('refuses %j', (text, message) => {
    expect(() => parseCron(text)).toThrow(message);
  });
});

describe('nextCronTime', () => {
  it('finds the next nightly run, UTC', () => {
    const c = parseCron('30 2 * * *');
    expect(iso(nextCronTime(c, at('2026-12-04T23:24:05Z')))).toBe('2026-12-05T02:30:00.000Z');
    // At the minute itself: that minute.
    expect(iso(nextCronTime(c, at('2026-12-05T02:30:00Z')))).toBe('2026-12-05T02:30:00.000Z');
    expect(iso(nextCronTime(c, at('2026-12-05T02:30:00.001Z')))).toBe('2026-12-06T02:30:00.000Z');
  });

  it('matches either day field when both are restricted, both otherwise', () => {
    // The 13th or any Friday.
    expect(iso(nextCronTime(parseCron('0 0 13 * 5'), at('2026-12-01T00:00:01Z')))).toBe(
      '2026-12-04T00:00:00.000Z',
    );
    // Mondays only.
    expect(iso(nextCronTime(parseCron('0 0 * * 1'), at('2026-12-01T00:00:01Z')))).toBe(
      '2026-12-07T00:00:00.000Z',
    );
  });

  it('finds 29 February and gives up on 31 February', () => {
    expect(iso(nextCronTime(parseCron('0 0 29 2 *'), at('2026-03-01T00:00:00Z')))).toBe(
      '2028-02-29T00:00:00.000Z',
    );
    expect(nextCronTime(parseCron('0 0 31 2 *'), at('2026-03-01T00:00:00Z'))).toBeUndefined();
  });
});

describe('nextSlot', () => {
  it('gives a window from the start', () => {
    const s = nextSlot(
      { kind: 'cron', cron: parseCron('0 3 * * *'), until: null },
      at('2026-12-04T00:00:00Z'),
      60_000,
    );
    expect(s).toEqual({ start: at('2026-12-04T03:00:00Z'), end: at('2026-12-04T03:01:00Z') });
  });

  it('stops at until and after a one-shot time', () => {
    const cron = { kind: 'cron', cron: parseCron('0 3 * * *'), until: at('2026-12-05T03:00:00Z') } as const;
    expect(nextSlot(cron, at('2026-12-04T04:00:00Z'), 60_000)).toBeUndefined();
    const once = { kind: 'at', at: at('2026-12-05T10:00:00Z') } as const;
    expect(nextSlot(once, at('2026-12-05T09:00:00Z'), 1000)?.start).toBe(at('2026-12-05T10:00:00Z'));
    expect(nextSlot(once, at('2026-12-05T10:00:00.001Z'), 1000)).toBeUndefined();
  });
});
