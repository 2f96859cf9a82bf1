/**
 * The guard between an upstream's notices and a caller's relay (src/execution/relay.ts;
 * docs/mcp.md "While a call runs"; OE-INV-010, OE-INV-013): hostile notification params are
 * dropped, text is redacted while numbers and levels stay the upstream's, the bounds hold, and a
 * throwing sink or a late notice changes nothing.
 */
import { describe, expect, it } from 'vitest';
import {
  createRedactor,
  guardRelay,
  MAX_NOTICE_BYTES,
  MAX_RELAYED_BYTES,
  MAX_RELAYED_NOTICES,
} from '../../src/execution/index.js';
import type { RelayedNotice } from '../../src/execution/index.js';

const redactor = createRedactor({ secrets: () => ['s3cr3t-value-42'] });

function guarded(progress = true, maxOutputBytes = 1024 * 1024) {
  const seen: RelayedNotice[] = [];
  const g = guardRelay({ progress, notify: (n) => seen.push(n) }, redactor, maxOutputBytes);
  return { ...g, seen };
}

describe('guardRelay', () => {
  it('relays progress and log messages, text redacted, numbers and levels as sent', () => {
    const g = guarded();
    g.notices.onProgress({ progressToken: 'x', progress: 42, total: 100, message: 'key s3cr3t-value-42' });
    g.notices.onLog({ level: 'warning', logger: 'db', data: { dsn: 'password=hunter2-xyz', n: 7 } });
    expect(g.seen).toEqual([
      { kind: 'progress', progress: 42, total: 100, message: 'key [REDACTED:secret]' },
      {
        kind: 'log',
        level: 'warning',
        logger: 'db',
        data: { dsn: 'password=[REDACTED:credential_assignment]', n: 7 },
      },
    ]);
    expect(g.counts()).toMatchObject({ relayed: 2, dropped: 0 });
  });

  it.each([
    ['params not an object', 'progress', 'x'],
    ['progress not a number', 'progress', { progress: '1' }],
    ['progress not finite', 'progress', { progress: Number.POSITIVE_INFINITY }],
    ['total not a number', 'progress', { progress: 1, total: 'all' }],
    ['message not a string', 'progress', { progress: 1, message: { text: 'x' } }],
    ['message too long', 'progress', { progress: 1, message: 'x'.repeat(MAX_NOTICE_BYTES + 1) }],
    ['an unknown level', 'log', { level: 'shout', data: 'x' }],
    ['no data', 'log', { level: 'info' }],
    ['logger not a string', 'log', { level: 'info', logger: 1, data: 'x' }],
    ['data not plain JSON', 'log', { level: 'info', data: new Date(0) }],
  ])('drops a notice with %s', (_why, kind, params) => {
    const g = guarded();
    if (kind === 'progress') g.notices.onProgress(params);
    else g.notices.onLog(params);
    expect(g.seen).toEqual([]);
    expect(g.counts()).toMatchObject({ relayed: 0, dropped: 1 });
  });

  it('drops progress when the caller did not ask for it', () => {
    const g = guarded(false);
    g.notices.onProgress({ progress: 1 });
    expect(g.notices.progress).toBe(false);
    expect(g.seen).toEqual([]);
  });

  it('relays at most MAX_RELAYED_NOTICES, then counts the rest as dropped', () => {
    const g = guarded();
    for (let i = 0; i < MAX_RELAYED_NOTICES + 10; i++) g.notices.onLog({ level: 'info', data: `line ${i}` });
    expect(g.seen).toHaveLength(MAX_RELAYED_NOTICES);
    expect(g.counts()).toMatchObject({ relayed: MAX_RELAYED_NOTICES, dropped: 10 });
  });

  it('drops a notice over MAX_NOTICE_BYTES and stops at the byte budget (never above max_output_bytes)', () => {
    const big = guarded();
    big.notices.onLog({ level: 'info', data: 'x'.repeat(MAX_NOTICE_BYTES) });
    expect(big.counts()).toMatchObject({ relayed: 0, dropped: 1 });

    const small = guarded(true, 1000);
    for (let i = 0; i < 10; i++) small.notices.onLog({ level: 'info', data: 'y'.repeat(300) });
    const { relayed } = small.counts();
    expect(relayed).toBeGreaterThan(0);
    expect(relayed * 300).toBeLessThanOrEqual(1000);

    const budget = guarded();
    for (let i = 0; i < MAX_RELAYED_NOTICES; i++)
      budget.notices.onLog({ level: 'info', data: 'z'.repeat(MAX_NOTICE_BYTES - 100) });
    expect(budget.counts().relayed * (MAX_NOTICE_BYTES - 100)).toBeLessThanOrEqual(MAX_RELAYED_BYTES);
    expect(budget.counts().dropped).toBeGreaterThan(0);
  });

  it('a throwing sink changes nothing; after close nothing is relayed', () => {
    const g = guardRelay(
      {
        progress: true,
        notify: () => {
          throw new Error('sink failed');
        },
      },
      redactor,
      1024,
    );
    expect(() => g.notices.onLog({ level: 'info', data: 'x' })).not.toThrow();
    expect(g.counts()).toMatchObject({ relayed: 1, dropped: 0 });
    g.close();
    g.notices.onLog({ level: 'info', data: 'late' });
    expect(g.counts()).toMatchObject({ relayed: 1, dropped: 0 });
  });
});
