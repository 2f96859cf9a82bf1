/**
 * A governed call's pending durable writes (`src/kernel/durability.ts`, SPEC §8 "durable
 * writes"): `sync` resolves only once every commit registered before it is durable, however many
 * ask at once, and rejects ever after one failed (FC-INV-4).
 */
import { describe, expect, it } from 'vitest';
import { createDurableWrites } from '../../src/kernel/index.js';

/** A commit the test makes durable, or fails, when it says. */
function commit(): { durable: Promise<void>; done(): void; fail(err: Error): void } {
  let done!: () => void;
  let fail!: (err: Error) => void;
  const durable = new Promise<void>((resolve, reject) => {
    done = resolve;
    fail = reject;
  });
  return { durable, done, fail };
}

const settled = async (p: Promise<void>): Promise<string> => {
  let state = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
};

describe('DurableWrites', () => {
  it('a second sync while the first waits waits too: neither resolves before the commit is durable', async () => {
    const writes = createDurableWrites();
    const c = commit();
    writes.add(c.durable);
    const first = writes.sync();
    const second = writes.sync();
    expect(await settled(first)).toBe('pending');
    expect(await settled(second)).toBe('pending');
    c.done();
    await Promise.all([first, second]);
  });

  it('a failed commit rejects every sync, the ones waiting and every later one', async () => {
    const writes = createDurableWrites();
    const ok = commit();
    const bad = commit();
    writes.add(ok.durable);
    writes.add(bad.durable);
    const first = writes.sync();
    const second = writes.sync();
    ok.done();
    bad.fail(new Error('fsync failed'));
    await expect(first).rejects.toThrow('fsync failed');
    await expect(second).rejects.toThrow('fsync failed');
    await expect(writes.sync()).rejects.toThrow('fsync failed');
  });

  it('a commit added after a sync that resolved is waited for by the next sync', async () => {
    const writes = createDurableWrites();
    const c = commit();
    writes.add(c.durable);
    c.done();
    await writes.sync();
    const later = commit();
    writes.add(later.durable);
    const s = writes.sync();
    expect(await settled(s)).toBe('pending');
    later.done();
    await s;
  });
});
