/**
 * Bounded calls (FC-INV-4, OE-INV-003): `withDeadline` turns a value, a throw, a rejection and an
 * expired deadline into a settled outcome that never rejects; `withCancellableDeadline` does the
 * same and aborts its callee's signal when the deadline passes, whatever the callee's shape (a
 * callee that takes the signal through a rest parameter, or a default, still sees it aborted).
 */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withCancellableDeadline, withDeadline } from '../../src/kernel/deadline.js';

describe('withDeadline', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('settles ok with a value, sync or async, and leaves no timer behind', async () => {
    await expect(withDeadline(() => 7, 1000)).resolves.toEqual({ status: 'ok', value: 7 });
    await expect(withDeadline(() => Promise.resolve('x'), 1000)).resolves.toEqual({
      status: 'ok',
      value: 'x',
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('settles error on a synchronous throw and on a rejection, never rejecting', async () => {
    const boom = new Error('boom');
    await expect(
      withDeadline(() => {
        throw boom;
      }, 1000),
    ).resolves.toEqual({ status: 'error', error: boom });
    await expect(withDeadline(() => Promise.reject(boom), 1000)).resolves.toEqual({
      status: 'error',
      error: boom,
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('settles timeout when the callee hangs, whether or not it takes the signal', async () => {
    const hang = withDeadline(() => new Promise<never>(() => undefined), 50);
    let seen: AbortSignal | undefined;
    const cooperative = withCancellableDeadline((signal) => {
      seen = signal;
      return new Promise<never>(() => undefined);
    }, 50);
    // Callees whose declared parameter count is 0 but that read the signal all the same.
    const signals: AbortSignal[] = [];
    const rest = withCancellableDeadline((...args: AbortSignal[]) => {
      signals.push(args[0]!);
      return new Promise<never>(() => undefined);
    }, 50);
    const defaulted = withCancellableDeadline((signal: AbortSignal = new AbortController().signal) => {
      signals.push(signal);
      return new Promise<never>(() => undefined);
    }, 50);
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(50);
    await expect(hang).resolves.toEqual({ status: 'timeout' });
    await expect(cooperative).resolves.toEqual({ status: 'timeout' });
    await expect(rest).resolves.toEqual({ status: 'timeout' });
    await expect(defaulted).resolves.toEqual({ status: 'timeout' });
    // Every callee of withCancellableDeadline sees its signal aborted at the deadline.
    expect(seen?.aborted).toBe(true);
    expect(signals.map((s) => s.aborted)).toEqual([true, true]);
  });

  it('a linked signal aborts the callee before the deadline; an aborted one at once; its listener goes once settled', async () => {
    const caller = new AbortController();
    let seen: AbortSignal | undefined;
    const call = withCancellableDeadline(
      (signal) => {
        seen = signal;
        return new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve('stopped')));
      },
      1000,
      [undefined, caller.signal],
    );
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);
    caller.abort();
    await expect(call).resolves.toEqual({ status: 'ok', value: 'stopped' });
    expect(seen?.aborted).toBe(true);
    const done = new AbortController();
    await expect(withCancellableDeadline(() => 1, 1000, [done.signal])).resolves.toEqual({
      status: 'ok',
      value: 1,
    });
    expect(getEventListeners(done.signal, 'abort')).toHaveLength(0);
    let early: boolean | undefined;
    await withCancellableDeadline((signal) => (early = signal.aborted), 1000, [AbortSignal.abort()]);
    expect(early).toBe(true);
    expect(() => withCancellableDeadline(() => 1, 0, [done.signal])).toThrow('deadline must be');
    expect(getEventListeners(done.signal, 'abort')).toHaveLength(0);
  });

  it('a late answer after the deadline changes nothing', async () => {
    let finish!: (v: string) => void;
    const call = withDeadline(() => new Promise<string>((resolve) => (finish = resolve)), 10);
    await vi.advanceTimersByTimeAsync(10);
    finish('late');
    await expect(call).resolves.toEqual({ status: 'timeout' });
  });

  it('refuses a deadline that is not a positive finite number of milliseconds', () => {
    for (const ms of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      for (const bounded of [() => withDeadline(() => 1, ms), () => withCancellableDeadline(() => 1, ms)])
        expect(bounded).toThrow('deadline must be a positive number of milliseconds');
  });
});
