/**
 * The one contract suite every NonceStore backend must pass (memory, SQLite here; PostgreSQL in
 * test/storage/postgres-nonce-store.test.ts): single use whatever the tenant, atomic under concurrency, pruning only after
 * exp + tolerance (SPEC §7 scenario 6, §8 nonce store row, OE-INV-017).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { NonceStore } from '../../src/execution/index.js';

/** A backend under test: `open` may be called several times and every call shares one backing store. */
export interface NonceStoreBackend {
  /** Opens a new connection to the same backing store. */
  open(): Promise<NonceStore>;
  /** Drops the backing store after a test. */
  destroy(): Promise<void>;
}

/** Registers the contract suite for one backend. `factory` is called once per test. */
export function runNonceStoreContract(name: string, factory: () => Promise<NonceStoreBackend>): void {
  describe(`NonceStore contract: ${name}`, () => {
    const opened: NonceStore[] = [];
    let backend: NonceStoreBackend | undefined;

    const setup = async (): Promise<NonceStoreBackend> => {
      backend = await factory();
      return backend;
    };
    const open = async (b: NonceStoreBackend): Promise<NonceStore> => {
      const s = await b.open();
      opened.push(s);
      return s;
    };

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await backend?.destroy();
      backend = undefined;
    });

    const n = (jti: string, exp = 2_000_000_000, tenant = 'acme') => ({
      jti,
      tenant,
      exp,
      decision_id: `d-${jti}`,
    });

    it('answers fresh for the first consumption and replayed for every later one', async () => {
      const store = await open(await setup());
      expect(await store.consume(n('j1'))).toBe('fresh');
      expect(await store.consume(n('j1'))).toBe('replayed');
      expect(await store.consume(n('j1'))).toBe('replayed');
      expect(await store.consume(n('j2'))).toBe('fresh');
    });

    it('treats a jti as consumed across tenants (OE-INV-008: no cross-tenant reuse)', async () => {
      const store = await open(await setup());
      expect(await store.consume(n('shared', 2_000_000_000, 'acme'))).toBe('fresh');
      expect(await store.consume(n('shared', 2_000_000_000, 'globex'))).toBe('replayed');
    });

    it('sees a consumption made through another connection', async () => {
      const b = await setup();
      const a = await open(b);
      const c = await open(b);
      expect(await a.consume(n('x'))).toBe('fresh');
      expect(await c.consume(n('x'))).toBe('replayed');
    });

    it('lets exactly one of 32 concurrent consumers of one jti through (scenario 6)', async () => {
      const b = await setup();
      const stores = await Promise.all(Array.from({ length: 4 }, () => open(b)));
      const verdicts = await Promise.all(
        Array.from({ length: 32 }, (_, i) => stores[i % stores.length]!.consume(n('race'))),
      );
      expect(verdicts.filter((v) => v === 'fresh')).toHaveLength(1);
      expect(verdicts.filter((v) => v === 'replayed')).toHaveLength(31);
    });

    it('a voided jti can never be consumed; voiding is idempotent (issue 8 Why 1)', async () => {
      const b = await setup();
      const a = await open(b);
      const c = await open(b);
      expect(await a.void(n('v1'))).toBe('voided');
      expect(await c.consume(n('v1'))).toBe('voided');
      expect(await a.consume(n('v1'))).toBe('voided');
      expect(await c.void(n('v1'))).toBe('voided');
    });

    it('a void after a consumption answers consumed', async () => {
      const store = await open(await setup());
      expect(await store.consume(n('v2'))).toBe('fresh');
      expect(await store.void(n('v2'))).toBe('consumed');
      expect(await store.consume(n('v2'))).toBe('replayed');
    });

    it('a void racing 31 consumptions of one jti: exactly one winner', async () => {
      const b = await setup();
      const stores = await Promise.all(Array.from({ length: 4 }, () => open(b)));
      const [voided, ...verdicts] = await Promise.all([
        stores[0]!.void(n('race-void')),
        ...Array.from({ length: 31 }, (_, i) => stores[(i + 1) % stores.length]!.consume(n('race-void'))),
      ]);
      const fresh = verdicts.filter((v) => v === 'fresh').length;
      if (voided === 'voided') {
        expect(fresh).toBe(0);
        expect(verdicts.every((v) => v === 'voided')).toBe(true);
      } else {
        expect(voided).toBe('consumed');
        expect(fresh).toBe(1);
      }
    });

    it('rejects malformed consumptions instead of answering', async () => {
      const store = await open(await setup());
      await expect(
        store.consume({ jti: '', tenant: 'acme', exp: 1, decision_id: 'd' }),
      ).rejects.toBeInstanceOf(TypeError);
      await expect(store.consume({ jti: 'a', tenant: '', exp: 1, decision_id: 'd' })).rejects.toBeInstanceOf(
        TypeError,
      );
      await expect(
        store.consume({ jti: 'a', tenant: 'acme', exp: 1.5, decision_id: 'd' }),
      ).rejects.toBeInstanceOf(TypeError);
    });

    it('OE-INV-017: rejects every consumption or void no verified envelope could make, and accepts the bounds', async () => {
      const store = await open(await setup());
      const bad: unknown[] = [
        { jti: 'j'.repeat(513), tenant: 'acme', exp: 1, decision_id: 'd' },
        { jti: 7, tenant: 'acme', exp: 1, decision_id: 'd' },
        { jti: 'a', tenant: 7, exp: 1, decision_id: 'd' },
        { jti: 'a', tenant: 'acme', exp: Number.NaN, decision_id: 'd' },
        { jti: 'a', tenant: 'acme', exp: '1', decision_id: 'd' },
        { jti: 'a', tenant: 'acme', exp: 2 ** 53, decision_id: 'd' },
        { jti: 'a', tenant: 'acme', exp: 1, decision_id: 7 },
        { jti: 'a', tenant: 'acme', exp: 1 },
      ];
      for (const input of bad) {
        await expect(store.consume(input as never)).rejects.toBeInstanceOf(TypeError);
        await expect(store.void(input as never)).rejects.toBeInstanceOf(TypeError);
      }
      // Nothing was recorded by the rejected calls.
      expect(await store.consume(n('a'))).toBe('fresh');
      expect(await store.consume({ jti: 'j'.repeat(512), tenant: 'acme', exp: 1, decision_id: '' })).toBe(
        'fresh',
      );
      expect(await store.void({ jti: 'k'.repeat(512), tenant: 'acme', exp: 1, decision_id: '' })).toBe(
        'voided',
      );
    });

    it('OE-INV-017: a void after close rejects (unavailable, never voided)', async () => {
      const b = await setup();
      const store = await b.open();
      await store.close();
      await expect(store.void(n('late-void'))).rejects.toThrow(/nonce store closed/);
    });

    it('OE-INV-017: a prune of an empty store moves no horizon', async () => {
      const store = await open(await setup());
      expect(await store.prune({ nowSec: 10 ** 9, toleranceSec: 30 })).toBe(0);
      expect(await store.consume(n('old', 1))).toBe('fresh');
    });

    it('OE-INV-017: a void below the prune horizon answers consumed (it may have run before the prune)', async () => {
      const store = await open(await setup());
      await store.consume(n('ran', 1000));
      await store.consume(n('later', 5000));
      expect(await store.prune({ nowSec: 2000, toleranceSec: 30 })).toBe(1);
      expect(await store.void(n('ran', 1000))).toBe('consumed');
      expect(await store.void(n('never-seen', 1969))).toBe('consumed');
      expect(await store.consume(n('never-seen', 1969))).toBe('replayed');
      expect(await store.void(n('at-horizon', 1970))).toBe('voided');
      expect(await store.consume(n('at-horizon', 1970))).toBe('voided');
    });

    it('rejects after close (unavailable, never fresh)', async () => {
      const b = await setup();
      const store = await b.open();
      await store.close();
      await expect(store.consume(n('late'))).rejects.toThrow('nonce store closed');
    });

    it('prunes only rows whose exp + tolerance has passed, and a pruned jti is never fresh again', async () => {
      const store = await open(await setup());
      await store.consume(n('old', 1000));
      await store.consume(n('edge', 1030));
      await store.consume(n('new', 5000));
      // now 1060, tolerance 30: horizon 1030; 'old' (1000 < 1030) goes, 'edge' stays.
      expect(await store.prune({ nowSec: 1060, toleranceSec: 30 })).toBe(1);
      expect(await store.consume(n('edge', 1030))).toBe('replayed');
      expect(await store.consume(n('new', 5000))).toBe('replayed');
      // Below the horizon the store cannot tell whether a jti was used: never fresh.
      expect(await store.consume(n('old', 1000))).toBe('replayed');
      expect(await store.consume(n('never-seen', 1029))).toBe('replayed');
      expect(await store.consume(n('at-horizon', 1030))).toBe('fresh');
    });

    it('a clock set back after a prune reopens nothing (OE-INV-017)', async () => {
      const b = await setup();
      const store = await open(b);
      await store.consume(n('a', 1000));
      await store.consume(n('b', 5000));
      // Horizon min(9000, 5000) - 30 = 4970: only 'a' goes.
      expect(await store.prune({ nowSec: 9000, toleranceSec: 30 })).toBe(1);
      // The clock goes back to 1000: a later, lower prune does not lower the horizon.
      expect(await store.prune({ nowSec: 1000, toleranceSec: 30 })).toBe(0);
      const other = await open(b);
      expect(await other.consume(n('a', 1000))).toBe('replayed');
      expect(await other.consume(n('b', 5000))).toBe('replayed');
      expect(await store.consume(n('c', 4970))).toBe('fresh');
    });

    it('a clock jumped ahead does not move the horizon past the envelopes recorded', async () => {
      const store = await open(await setup());
      await store.consume(n('a', 1000));
      expect(await store.prune({ nowSec: 10 ** 9, toleranceSec: 30 })).toBe(0);
      expect(await store.consume(n('b', 1000))).toBe('fresh');
      expect(await store.consume(n('c', 970))).toBe('fresh');
      expect(await store.consume(n('d', 969))).toBe('replayed');
    });

    it('void makes an unconsumed nonce unconsumable and reports a consumed one as consumed (SPEC §5 recovery)', async () => {
      const store = await open(await setup());
      expect(await store.void(n('never-ran'))).toBe('voided');
      expect(await store.consume(n('never-ran'))).toBe('voided');
      expect(await store.void(n('never-ran'))).toBe('voided');
      expect(await store.consume(n('ran'))).toBe('fresh');
      expect(await store.void(n('ran'))).toBe('consumed');
    });
  });
}
