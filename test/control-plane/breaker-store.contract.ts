/**
 * The `BreakerStore` contract (OE-INV-021): every backend runs it unchanged. `make` returns a
 * fresh, empty store; stores made by one call of `makePair` share their state (two replicas).
 */
import { describe, expect, it } from 'vitest';
import type { BreakerStore } from '../../src/control-plane/index.js';

const W = 1000;
const admit = (
  s: BreakerStore,
  now: number,
  over: { principal?: string; tenant?: string; call?: string } = {},
) => s.admit({ principal: 'p', tenant: 't', call: 'echo\u0000h', now, windowMs: W, ...over });

/** Runs the contract for one backend. */
export function runBreakerStoreContract(
  name: string,
  make: () => Promise<BreakerStore>,
  makePair?: () => Promise<readonly [BreakerStore, BreakerStore]>,
): void {
  describe(`BreakerStore contract: ${name} (OE-INV-021)`, () => {
    it('counts lifetime, principal, tenant and same-call hits within the window, this one included', async () => {
      const s = await make();
      expect(await admit(s, 0)).toEqual({ open: null, total: 1, inSession: 1, inTenant: 1, sameCall: 1 });
      expect(await admit(s, 10, { call: 'echo\u0000other' })).toEqual({
        open: null,
        total: 2,
        inSession: 2,
        inTenant: 2,
        sameCall: 1,
      });
      expect(await admit(s, 20, { principal: 'q' })).toEqual({
        open: null,
        total: 1,
        inSession: 1,
        inTenant: 3,
        sameCall: 1,
      });
      // Past the window only the lifetime count remembers: (now - windowMs, now].
      expect(await admit(s, 10 + W)).toEqual({
        open: null,
        total: 3,
        inSession: 1,
        inTenant: 2,
        sameCall: 1,
      });
    });

    it('a clock stepped back never lowers a count below the calls of the window', async () => {
      const s = await make();
      // Back within one bucket: the later hit stays the bucket's latest.
      await admit(s, 110);
      await admit(s, 100);
      const a = await admit(s, 1105);
      expect(a.open).toBeNull();
      if (a.open === null) expect(a.inSession).toBeGreaterThanOrEqual(2);
      // Back by less than a window after another call of the principal: the older hit of this
      // call is still counted. Exact in (4900, 5900]: the calls at 5000 and 5900.
      await admit(s, 5000, { principal: 'q', call: 'B' });
      await admit(s, 6100, { principal: 'q', call: 'A' });
      const b = await admit(s, 5900, { principal: 'q', call: 'B' });
      expect(b.open).toBeNull();
      if (b.open === null) expect(b.sameCall).toBeGreaterThanOrEqual(2);
    });

    it('an open breaker answers until its end and records nothing; its end never moves earlier', async () => {
      const s = await make();
      await admit(s, 0);
      await s.trip('p', 'loop', 500);
      expect(await admit(s, 499)).toEqual({ open: 'loop' });
      expect(await s.openBreaker('p', 499)).toBe('loop');
      expect(await s.openBreaker('p', 500)).toBeNull();
      await s.trip('p', 'session_calls', Number.POSITIVE_INFINITY);
      await s.trip('p', 'loop', 10);
      expect(await s.openBreaker('p', 10 ** 13)).toBe('session_calls');
      expect(await s.openBreaker('other', 0)).toBeNull();
    });

    it('reserves spend up to the limit and never past it; a release takes back its cents', async () => {
      const s = await make();
      expect(await s.reserveSpend('t', 1, 60, 100)).toBe(true);
      expect(await s.reserveSpend('t', 1, 41, 100)).toBe(false);
      expect(await s.reserveSpend('t', 1, 40, 100)).toBe(true);
      expect(await s.reserveSpend('t', 2, 100, 100)).toBe(true);
      expect(await s.reserveSpend('u', 1, 100, 100)).toBe(true);
      await s.releaseSpend('t', 1, 40);
      expect(await s.reserveSpend('t', 1, 40, 100)).toBe(true);
      await s.releaseSpend('t', 1, 1000);
      expect(await s.reserveSpend('t', 1, 100, 100)).toBe(true);
    });

    it('a principal reset forgets its counts and breaker; a tenant reset its window and spend', async () => {
      const s = await make();
      await admit(s, 0);
      await admit(s, 1, { principal: 'q' });
      await s.trip('p', 'session_calls', Number.POSITIVE_INFINITY);
      await s.reserveSpend('t', 0, 100, 100);
      await s.reset({ principal: 'p' });
      expect(await s.openBreaker('p', 2)).toBeNull();
      expect(await admit(s, 2)).toEqual({ open: null, total: 1, inSession: 1, inTenant: 3, sameCall: 1 });
      await s.reset({ tenant: 't' });
      expect(await admit(s, 3)).toMatchObject({ total: 2, inSession: 2, inTenant: 1 });
      expect(await s.reserveSpend('t', 0, 100, 100)).toBe(true);
    });

    it('a prune deletes old hits, breakers closed a day, spend before yesterday; every limit holds as before', async () => {
      const s = await make();
      const DAY = 86_400_000;
      const now = 10 * DAY;
      // Live hits first: an admission's own sweep reaches only hits two windows before its time.
      await admit(s, now - 500);
      await admit(s, now - 5 * W, { principal: 'gone' });
      await s.trip('closed', 'loop', now - DAY - 1);
      await s.trip('recent', 'loop', now - 10);
      await s.trip('open', 'loop', now + W);
      await s.trip('forever', 'session_calls', Number.POSITIVE_INFINITY);
      for (const day of [10, 9, 8, 2]) expect(await s.reserveSpend('t', day, 100, 100)).toBe(true);
      // The three old hits of 'gone', 'closed', the spend of days 8 and 2.
      expect(await s.prune({ now, windowMs: W })).toBe(6);
      expect(await s.prune({ now, windowMs: W })).toBe(0);
      // Window counts and lifetime counts are those before the prune.
      expect(await admit(s, now)).toEqual({ open: null, total: 2, inSession: 2, inTenant: 2, sameCall: 2 });
      expect(await admit(s, now, { principal: 'gone' })).toMatchObject({ total: 2, inSession: 1 });
      // Open breakers stay open; today's and yesterday's spend still count against the limit.
      expect(await s.openBreaker('open', now)).toBe('loop');
      expect(await s.openBreaker('forever', now + 100 * DAY)).toBe('session_calls');
      expect(await s.reserveSpend('t', 10, 1, 100)).toBe(false);
      expect(await s.reserveSpend('t', 9, 1, 100)).toBe(false);
      // A breaker closed less than a day ago is kept for a clock stepped back: open again then.
      expect(await s.openBreaker('recent', now - 20)).toBe('loop');
      await expect(s.prune({ now: Number.NaN, windowMs: W })).rejects.toThrow(TypeError);
      await expect(s.prune({ now, windowMs: 0 })).rejects.toThrow(TypeError);
    });

    if (makePair !== undefined) {
      it('replicas share one truth: concurrent reservations never pass the limit', async () => {
        const [a, b] = await makePair();
        const tries = Array.from({ length: 40 }, (_, i) =>
          (i % 2 === 0 ? a : b).reserveSpend('t', 7, 10, 100),
        );
        const granted = (await Promise.all(tries)).filter(Boolean).length;
        expect(granted).toBe(10);
      });

      it('replicas share one truth: concurrent admissions are each counted once', async () => {
        const [a, b] = await makePair();
        const all = await Promise.all(
          Array.from({ length: 20 }, (_, i) => admit(i % 2 === 0 ? a : b, 100, { call: `c${i}` })),
        );
        const totals = all.map((c) => (c.open === null ? c.total : -1)).sort((x, y) => x - y);
        expect(totals).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      });
    }
  });
}
