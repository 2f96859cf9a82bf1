/**
 * The contract every {@link WriterLock} keeps (SPEC §4 "one writer", L7 ledger protection), run
 * against each backend by `writer-lock.test.ts`: one holder at a time, a standby that takes over
 * after the holder, strictly increasing epochs (the fencing token), abortable waiting, idempotent
 * release.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WRITER_LOCK_BUSY } from '../../src/storage/writer-lock.js';
import type { WriterLease, WriterLock } from '../../src/storage/writer-lock.js';

/** One lock resource (a lock file, a schema) for one test. */
export interface WriterLockFixture {
  /** A new lock over the resource, as another process or replica would open it. */
  open(): WriterLock;
  cleanup(): Promise<void>;
}

/** A standby polls quickly in tests; nothing here waits a fixed time. */
const POLL_MS = 10;

/** True when `p` has settled by the time the event loop has turned once. */
export async function hasSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

/** Runs the contract against the locks `setup` makes. */
export function runWriterLockContract(name: string, setup: () => Promise<WriterLockFixture>): void {
  describe(`WriterLock contract: ${name}`, () => {
    let fixture: WriterLockFixture;
    const leases: WriterLease[] = [];
    const acquire = async (lock: WriterLock, options: Parameters<WriterLock['acquire']>[0]) => {
      const lease = await lock.acquire(options);
      leases.push(lease);
      return lease;
    };

    beforeEach(async () => {
      fixture = await setup();
    });
    afterEach(async () => {
      await Promise.all(leases.splice(0).map((l) => l.release()));
      await fixture.cleanup();
    });

    it('grants one holder at a time: a second acquire with wait:false is refused with ERR_WRITER_LOCK_BUSY (SPEC §4 one writer)', async () => {
      const first = await acquire(fixture.open(), { wait: false });
      expect(first.isHeld()).toBe(true);
      await expect(fixture.open().acquire({ wait: false })).rejects.toMatchObject({ code: WRITER_LOCK_BUSY });
      // The same lock object is no exception: one holder, whoever asks.
      const again = fixture.open();
      await expect(again.acquire({ wait: false })).rejects.toMatchObject({ code: WRITER_LOCK_BUSY });
      expect(first.isHeld()).toBe(true);
    });

    it('lets a waiting standby take over only after the holder released, with a higher epoch (L7 ledger protection)', async () => {
      const first = await acquire(fixture.open(), { wait: false });
      let firstHeldWhenTaken: boolean | undefined;
      const standby = fixture
        .open()
        .acquire({ wait: true, pollMs: POLL_MS })
        .then((lease) => {
          leases.push(lease);
          firstHeldWhenTaken = first.isHeld();
          return lease;
        });
      expect(await hasSettled(standby)).toBe(false);
      await first.release();
      const second = await standby;
      expect(firstHeldWhenTaken).toBe(false);
      expect(second.isHeld()).toBe(true);
      expect(second.epoch).toBeGreaterThan(first.epoch);
    });

    it('raises the epoch strictly with every acquisition, across lock objects (the fencing token)', async () => {
      const epochs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const lease = await acquire(fixture.open(), { wait: false });
        epochs.push(lease.epoch);
        await lease.release();
      }
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThan(epochs[i - 1]!);
      expect(epochs[0]).toBeGreaterThan(0);
    });

    it('stops a waiting standby when its signal aborts: it rejects with the reason and never takes the lock', async () => {
      const first = await acquire(fixture.open(), { wait: false });
      const controller = new AbortController();
      const reason = new Error('standby no longer wanted');
      const standby = fixture.open().acquire({ wait: true, pollMs: POLL_MS, signal: controller.signal });
      controller.abort(reason);
      await expect(standby).rejects.toBe(reason);
      await first.release();
      // The aborted standby holds nothing: the next holder gets the lock at once.
      const next = await acquire(fixture.open(), { wait: false });
      expect(next.epoch).toBeGreaterThan(first.epoch);
    });

    it('refuses at once a signal that is already aborted, even when the lock is free', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(fixture.open().acquire({ wait: true, signal: controller.signal })).rejects.toMatchObject({
        name: 'AbortError',
      });
      const lease = await acquire(fixture.open(), { wait: false });
      expect(lease.isHeld()).toBe(true);
    });

    it('releases idempotently; a released lease is not held and was not lost', async () => {
      const lease = await acquire(fixture.open(), { wait: false });
      await lease.release();
      await lease.release();
      expect(lease.isHeld()).toBe(false);
      expect(await hasSettled(lease.lost)).toBe(false);
      const next = await acquire(fixture.open(), { wait: false });
      expect(next.epoch).toBeGreaterThan(lease.epoch);
    });

    it('rejects a pollMs that is not a positive integer as a caller mistake (TypeError)', async () => {
      await expect(fixture.open().acquire({ wait: true, pollMs: 0 })).rejects.toBeInstanceOf(TypeError);
    });
  });
}
