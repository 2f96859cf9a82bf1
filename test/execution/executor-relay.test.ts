/**
 * The executor with a caller's relay (src/execution/relay.ts, docs/mcp.md "While a call runs";
 * OE-INV-010, FC-INV-4): the adapter's notices reach the caller through the guard, redacted and
 * counted in the receipt; the caller's cancellation aborts the adapter and the call is denied
 * `ERR_CALL_CANCELLED` with a failed receipt; a call that answered first keeps its outcome.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/execution/index.js';
import type { CallRelay, RelayedNotice, ToolCall } from '../../src/execution/index.js';
import { call, removeScratch, SECRET, world } from './executor-world.js';
import { spyAdapter } from './support.js';
import { canonicalize, sha256Hex } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';

afterAll(removeScratch);

function relay(progress = true): { relay: CallRelay; seen: RelayedNotice[]; cancel: () => void } {
  const seen: RelayedNotice[] = [];
  const ac = new AbortController();
  return {
    relay: { progress, notify: (n) => void seen.push(n), cancelled: ac.signal },
    seen,
    cancel: () => ac.abort(),
  };
}

const aborted = (c: ToolCall) =>
  new Promise<{ outcome: 'deny'; code: 'ERR_TOOL_TIMEOUT'; reason: string }>((resolve) =>
    c.signal.addEventListener('abort', () =>
      resolve({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT', reason: 'aborted' }),
    ),
  );

describe('executor with a relay', () => {
  it("relays the adapter's notices, redacted, and counts them in the receipt", async () => {
    const r = relay();
    const w = world(
      {},
      spyAdapter((c) => {
        c.notices?.onLog({ level: 'info', data: `using ${SECRET}` });
        c.notices?.onProgress({ progress: 1, total: 2 });
        c.notices?.onLog({ level: 'nonsense', data: 'dropped' });
        return Promise.resolve({ outcome: 'ok', result: { done: true } });
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, r.relay);
    expect(out.outcome).toBe('executed');
    expect(r.seen).toEqual([
      { kind: 'log', level: 'info', data: 'using [REDACTED:secret]' },
      { kind: 'progress', progress: 1, total: 2 },
    ]);
    // The receipt covers what was relayed: their count, and the digest of them as JSON Lines.
    const lines = r.seen.map((n) => `${canonicalize(n as unknown as JsonValue)}\n`).join('');
    expect(w.ledger.ofType('execution.receipt').map((e) => e.payload['notices'])).toEqual([
      { relayed: 2, dropped: 1, sha256: sha256Hex(Buffer.from(lines)) },
    ]);
  });

  it('without a relay the adapter gets no notices and the receipt records none', async () => {
    const w = world();
    await createExecutor(w.deps).execute(call(w.envelope()));
    expect(w.spy.calls[0]?.notices).toBeUndefined();
    expect(w.ledger.ofType('execution.receipt')[0]?.payload).not.toHaveProperty('notices');
  });

  it('a cancellation while the tool runs aborts it: ERR_CALL_CANCELLED, a failed receipt', async () => {
    const r = relay();
    const w = world(
      {},
      spyAdapter((c) => {
        setImmediate(r.cancel);
        return aborted(c);
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, r.relay);
    expect(out).toEqual({
      outcome: 'deny',
      code: 'ERR_CALL_CANCELLED',
      reason: 'the caller cancelled the call while the tool ran',
    });
    expect(
      w.ledger
        .ofType('execution.receipt')
        .map((e) => [e.payload.status, e.payload.code, e.payload['reason']]),
    ).toEqual([['failed', 'ERR_CALL_CANCELLED', 'the caller cancelled the call while the tool ran']]);
  });

  it('cancelled before the nonce is consumed: ERR_CALL_CANCELLED, nothing used, the tool never ran', async () => {
    const r = relay();
    const w = world();
    const executor = createExecutor(w.deps);
    const envelope = w.envelope();
    r.cancel();
    expect(await executor.execute(call(envelope), undefined, r.relay)).toEqual({
      outcome: 'deny',
      code: 'ERR_CALL_CANCELLED',
      reason: 'the caller cancelled the call before the tool started',
    });
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('execution.receipt')).toEqual([]);
    // Not consumed: presented again without the cancellation, it runs.
    expect(await executor.execute(call(envelope))).toMatchObject({ outcome: 'executed' });
  });

  it("a refusal of the adapter's own keeps its code though the caller cancelled meanwhile", async () => {
    const r = relay();
    const w = world(
      {},
      spyAdapter(() => {
        r.cancel();
        return Promise.resolve({
          outcome: 'deny' as const,
          code: 'ERR_TOOL_DEFINITION_CHANGED' as const,
          reason: 'the upstream changed the definition of echo',
        });
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, r.relay);
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
    expect(w.ledger.ofType('execution.receipt').map((e) => e.payload.code)).toEqual([
      'ERR_TOOL_DEFINITION_CHANGED',
    ]);
  });

  it('a call that answered before the cancellation keeps its outcome', async () => {
    const r = relay();
    const w = world(
      {},
      spyAdapter(() => {
        const done = Promise.resolve({ outcome: 'ok' as const, result: { done: true } });
        r.cancel();
        return done;
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, r.relay);
    expect(out).toMatchObject({ outcome: 'executed', result: { done: true } });
  });
});
