/**
 * The guard between an upstream's notices and a caller's relay (src/execution/relay.ts;
 * docs/mcp.md "While a call runs"; OE-INV-010, OE-INV-013): hostile notification params are
 * dropped, text is redacted while numbers and levels stay the upstream's, the bounds hold, and a
 * throwing sink or a late notice changes nothing.
 */
import { describe, expect, it } from 'vitest';
import {
  AskNotSent,
  createRedactor,
  guardRelay,
  MAX_NOTICE_BYTES,
  MAX_RELAYED_BYTES,
  MAX_RELAYED_NOTICES,
} from '../../src/execution/index.js';
import type { RelayedAsk, RelayedNotice } from '../../src/execution/index.js';

const redactor = createRedactor({ secrets: () => ['s3cr3t-value-42'] });

function guarded(progress = true, maxOutputBytes = 1024 * 1024) {
  const seen: RelayedNotice[] = [];
  const g = guardRelay({ progress, notify: (n) => void seen.push(n) }, redactor, maxOutputBytes);
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

describe("guardRelay: requests to the caller's client (sampling, elicitation)", () => {
  const hello = {
    messages: [{ role: 'user', content: { type: 'text', text: 'hi s3cr3t-value-42' } }],
    maxTokens: 5,
  };
  const form = {
    message: 'ok?',
    requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } },
  };
  const sampled = { role: 'assistant', content: { type: 'text', text: 'yes' }, model: 'm' };

  function asking(
    answer: (a: RelayedAsk, signal: AbortSignal) => Promise<unknown>,
    maxOutputBytes = 1024 * 1024,
    origin?: string,
  ) {
    const asks: RelayedAsk[] = [];
    const g = guardRelay(
      {
        progress: false,
        notify: () => undefined,
        ask: (a, signal) => {
          asks.push(a);
          return answer(a, signal);
        },
      },
      redactor,
      maxOutputBytes,
      origin,
    );
    return { ...g, asks };
  }

  it('cannot ask a caller that offers no ask', async () => {
    const g = guarded();
    expect(g.notices.canAsk).toBe(false);
    await expect(g.notices.onAsk('sampling', hello)).rejects.toThrow('the call has ended');
    expect(g.counts()).toMatchObject({ relayed: 0, dropped: 1 });
  });

  it('relays the closed, redacted request and hands back the checked answer; both are hashed', async () => {
    const g = asking(() => Promise.resolve({ ...sampled, extra: 'dropped', _meta: { x: 1 } }));
    const got = await g.notices.onAsk('sampling', { ...hello, _meta: { y: 2 }, task: { ttl: 1 } });
    expect(got).toEqual(sampled);
    expect(g.asks).toEqual([
      {
        method: 'sampling/createMessage',
        params: {
          messages: [{ role: 'user', content: { type: 'text', text: 'hi [REDACTED:secret]' } }],
          maxTokens: 5,
        },
      },
    ]);
    const before = g.counts();
    expect(before).toMatchObject({ relayed: 1, dropped: 0 });
    expect(before.sha256).not.toBe(guarded().counts().sha256);
  });

  it.each([
    [
      'sampling with tools',
      'sampling',
      { ...hello, tools: [{ name: 't', inputSchema: { type: 'object' } }] },
    ],
    ['sampling with includeContext thisServer', 'sampling', { ...hello, includeContext: 'thisServer' }],
    [
      'sampling with a tool_result message',
      'sampling',
      {
        messages: [{ role: 'user', content: { type: 'tool_result', toolUseId: 'a', content: [] } }],
        maxTokens: 5,
      },
    ],
    [
      'a URL elicitation',
      'elicitation',
      { mode: 'url', message: 'm', url: 'https://x.example/', elicitationId: 'e' },
    ],
    ['an elicitation without a schema', 'elicitation', { message: 'm' }],
    ['not an object', 'elicitation', 'text'],
  ] as const)('refuses %s without asking the client', async (_what, kind, params) => {
    const g = asking(() => Promise.resolve({ action: 'accept' }));
    await expect(g.notices.onAsk(kind, params)).rejects.toThrow('not one failclosed relays');
    expect(g.asks).toEqual([]);
    expect(g.counts()).toMatchObject({ relayed: 0, dropped: 1 });
  });

  it("refuses an answer that is not the method's result, and a client error, to the upstream", async () => {
    const bad = asking(() => Promise.resolve({ action: 'maybe' }));
    await expect(bad.notices.onAsk('elicitation', form)).rejects.toThrow('client answer is not one');
    const failed = asking(() => Promise.reject(new Error('declined by the user')));
    await expect(failed.notices.onAsk('elicitation', form)).rejects.toThrow('the client did not answer');
  });

  it('ends the wait for an answer when the call ends, and asks nothing after', async () => {
    const g = asking(
      (_a, signal) =>
        new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('ended')))),
    );
    const waiting = g.notices.onAsk('elicitation', form);
    g.close();
    await expect(waiting).rejects.toThrow('the client did not answer');
    await expect(g.notices.onAsk('elicitation', form)).rejects.toThrow('the call has ended');
  });

  it('rebuilds in depth: no _meta, unknown field, provider metadata or schema keyword reaches the client', async () => {
    const g = asking(() => Promise.resolve({ action: 'accept', content: { ok: true } }));
    await g.notices.onAsk('elicitation', {
      message: 'ok?',
      _meta: { x: 1 },
      requestedSchema: {
        type: 'object',
        $defs: { smuggled: { type: 'string' } },
        properties: { ok: { type: 'boolean', 'x-widget': 'password', description: 'Ok' } },
        required: ['ok'],
      },
    });
    expect(g.asks[0]?.params).toEqual({
      mode: 'form',
      message: 'ok?',
      requestedSchema: {
        type: 'object',
        properties: { ok: { type: 'boolean', description: 'Ok' } },
        required: ['ok'],
      },
    });
    const s = asking(() =>
      Promise.resolve({
        ...sampled,
        content: { type: 'text', text: 'yes', _meta: { y: 1 }, annotations: {} },
      }),
    );
    const got = await s.notices.onAsk('sampling', {
      messages: [
        { role: 'user', content: { type: 'text', text: 'hi', _meta: { z: 1 }, smuggled: 1 }, _meta: {} },
      ],
      maxTokens: 5,
      metadata: { provider: 'x' },
      modelPreferences: { hints: [{ name: 'm', extra: 1 }], costPriority: 0.5, extra: 2 },
    });
    expect(s.asks[0]?.params).toEqual({
      messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
      maxTokens: 5,
      modelPreferences: { hints: [{ name: 'm' }], costPriority: 0.5 },
    });
    expect(got).toEqual(sampled);
  });

  it("names the tool in a question to the client's user", async () => {
    const g = asking(() => Promise.resolve({ action: 'decline' }), 1024 * 1024, 'files.delete');
    await g.notices.onAsk('elicitation', form);
    expect(g.asks[0]?.params['message']).toBe('The tool files.delete asks: ok?');
  });

  it("charges requests to the call's byte budget (no more than max_output_bytes reach the client)", async () => {
    const g = asking(() => Promise.resolve({ action: 'decline' }), 250);
    await g.notices.onAsk('elicitation', form);
    await expect(g.notices.onAsk('elicitation', form)).rejects.toThrow('byte budget');
    expect(g.asks).toHaveLength(1);
    expect(g.counts()).toMatchObject({ relayed: 1, dropped: 1 });
  });

  it('counts a request never sent, and a notice with nowhere to go, as dropped, not relayed', async () => {
    const g = asking(() => Promise.reject(new AskNotSent('the client does not take this request')));
    await expect(g.notices.onAsk('elicitation', form)).rejects.toThrow('does not take');
    expect(g.counts()).toMatchObject({ relayed: 0, dropped: 1 });
    expect(g.counts().sha256).toBe(guarded().counts().sha256);
    const nowhere = guardRelay({ progress: true, notify: () => false }, redactor, 1024 * 1024);
    nowhere.notices.onLog({ level: 'info', data: 'x' });
    expect(nowhere.counts()).toMatchObject({ relayed: 0, dropped: 1 });
  });
});
