/**
 * What a component still has under way (`src/kernel/in-flight.ts`): a close waits for it before
 * closing what it writes through, including work started by work that settled (the separate
 * Execution Layer's record after a call; docs/deployment.md "Stopping"), and at most its bound.
 */
import { describe, expect, it } from 'vitest';
import { createInFlight } from '../../src/kernel/index.js';

const later = <T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } => {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

describe('createInFlight', () => {
  it('returns the promise tracked and forgets it once it settles, resolved or rejected', async () => {
    const f = createInFlight();
    const a = later<number>();
    const b = later<number>();
    expect(f.track(a.promise)).toBe(a.promise);
    f.track(b.promise).catch(() => undefined);
    expect(f.size).toBe(2);
    a.resolve(1);
    b.reject(new Error('no'));
    await f.settled();
    expect(f.size).toBe(0);
  });

  it('settled waits for what settling started, not only for what was tracked when it was asked', async () => {
    const f = createInFlight();
    const first = later<void>();
    const second = later<void>();
    // As the execution listener does: once the call settles, it writes a record.
    void f.track(first.promise).then(() => void f.track(second.promise));
    let done = false;
    const settling = f.settled().then(() => (done = true));
    first.resolve();
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    expect(f.size).toBe(1);
    second.resolve();
    await settling;
    expect(f.size).toBe(0);
  });

  it('settled gives up at its bound, leaving what is still under way tracked', async () => {
    const f = createInFlight();
    void f.track(new Promise<never>(() => undefined));
    await f.settled(30);
    expect(f.size).toBe(1);
  });
});
