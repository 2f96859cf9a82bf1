/**
 * The executor when its caller gives up on a call (`Executor.execute`'s `signal`: the Gate's
 * execution deadline passed, or its connection to a separate Execution Layer closed, after it
 * answered the call denied). The ground rule: a caller told deny never sees the effect happen
 * later (FC-INV-4, SPEC §2 step 7). Before the nonce, nothing is used; after it, the tool never
 * starts; while the tool runs, it is ended as by its time limit; each with `ERR_CALL_CANCELLED`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/execution/index.js';
import type { NonceStore } from '../../src/execution/index.js';
import { call, removeScratch, world } from './executor-world.js';
import { spyAdapter } from './support.js';

afterAll(removeScratch);

const given = (when: 'before the tool started' | 'while the tool ran') => ({
  outcome: 'deny',
  code: 'ERR_CALL_CANCELLED',
  reason: `the caller gave up on the call ${when}`,
});

describe('executor: a call its caller gave up on', () => {
  it('given up before the nonce is consumed → ERR_CALL_CANCELLED, nothing consumed, the tool never ran', async () => {
    const w = world();
    const executor = createExecutor(w.deps);
    const envelope = w.envelope();
    const out = await executor.execute(call(envelope), undefined, undefined, AbortSignal.abort());
    expect(out).toEqual(given('before the tool started'));
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('execution.receipt')).toEqual([]);
    expect(w.ledger.ofType('denial').map((e) => e.payload['code'])).toEqual(['ERR_CALL_CANCELLED']);
    // The envelope was not used: presented again (before its void), it runs once.
    expect(await executor.execute(call(envelope))).toMatchObject({ outcome: 'executed' });
    expect(w.spy.calls).toHaveLength(1);
  });

  it('given up while the consumption was made durable → the tool never starts; a failed receipt ERR_CALL_CANCELLED', async () => {
    const w = world();
    const ac = new AbortController();
    // The caller's deadline passes exactly while the single use is being recorded.
    const nonces: NonceStore = {
      ...w.nonces,
      consume: async (...args) => {
        const r = await w.nonces.consume(...args);
        ac.abort();
        return r;
      },
    };
    const executor = createExecutor({ ...w.deps, nonces });
    const envelope = w.envelope();
    expect(await executor.execute(call(envelope), undefined, undefined, ac.signal)).toEqual(
      given('before the tool started'),
    );
    expect(w.spy.calls).toHaveLength(0);
    // The receipt says the tool never started.
    expect(
      w.ledger
        .ofType('execution.receipt')
        .map((e) => [e.payload.status, e.payload.code, e.payload['reason']]),
    ).toEqual([['failed', 'ERR_CALL_CANCELLED', 'the caller gave up on the call before the tool started']]);
    // Consumed: it never runs, now or later.
    expect(await executor.execute(call(envelope))).toMatchObject({ code: 'ERR_NONCE_REPLAYED' });
    expect(w.spy.calls).toHaveLength(0);
  });

  it('given up while the tool runs → the tool is aborted; a failed receipt ERR_CALL_CANCELLED', async () => {
    const ac = new AbortController();
    let abortedTool = false;
    const w = world(
      {},
      spyAdapter(
        (c) =>
          new Promise((resolve) => {
            c.signal.addEventListener('abort', () => {
              abortedTool = true;
              resolve({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT', reason: 'aborted' });
            });
            setImmediate(() => ac.abort());
          }),
      ),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, undefined, ac.signal);
    expect(out).toEqual(given('while the tool ran'));
    expect(abortedTool).toBe(true);
    // The receipt says the tool had started: it may have done something.
    expect(
      w.ledger
        .ofType('execution.receipt')
        .map((e) => [e.payload.status, e.payload.code, e.payload['reason']]),
    ).toEqual([['failed', 'ERR_CALL_CANCELLED', 'the caller gave up on the call while the tool ran']]);
  });

  it('a tool that answered before the caller gave up keeps its outcome', async () => {
    const ac = new AbortController();
    const w = world(
      {},
      spyAdapter(() => {
        const done = Promise.resolve({ outcome: 'ok' as const, result: { done: true } });
        ac.abort();
        return done;
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, undefined, ac.signal);
    expect(out).toMatchObject({ outcome: 'executed', result: { done: true } });
  });

  it("a refusal of the adapter's own keeps its code though the caller gave up meanwhile", async () => {
    const ac = new AbortController();
    const w = world(
      {},
      spyAdapter(() => {
        ac.abort();
        return Promise.resolve({
          outcome: 'deny' as const,
          code: 'ERR_EGRESS_DENIED' as const,
          reason: 'destination not allowed',
        });
      }),
    );
    const out = await createExecutor(w.deps).execute(call(w.envelope()), undefined, undefined, ac.signal);
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
  });
});
