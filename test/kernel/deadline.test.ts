/**
 * Bounded calls (FC-INV-4, OE-INV-003): `withDeadline` turns a value, a throw, a rejection and an
 * expired deadline into a settled outcome that never rejects, and aborts the signal of a callee
 * that asked for one when the deadline passes.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withDeadline } from '../../src/kernel/deadline.js';

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
    const cooperative = withDeadline((signal) => {
      seen = signal;
      return new Promise<never>(() => undefined);
    }, 50);
    expect(seen?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(50);
    await expect(hang).resolves.toEqual({ status: 'timeout' });
    await expect(cooperative).resolves.toEqual({ status: 'timeout' });
    // The callee that declared the signal sees it aborted at the deadline.
    expect(seen?.aborted).toBe(true);
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
      expect(() => withDeadline(() => 1, ms)).toThrow('deadline must be a positive number of milliseconds');
  });
});
