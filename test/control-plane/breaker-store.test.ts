/**
 * Breaker state behind a store (OE-INV-021): the contract for the in-memory store, and the
 * Control Plane failing closed when the store throws, hangs or stops answering.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryBreakerStore } from '../../src/control-plane/index.js';
import type { BreakerStore, ControlPlaneResult } from '../../src/control-plane/index.js';
import { runBreakerStoreContract } from './breaker-store.contract.js';
import { entriesOf, request, rig, type Rig } from './support.js';

runBreakerStoreContract(
  'memory',
  () => Promise.resolve(createMemoryBreakerStore()),
  () => {
    const shared = createMemoryBreakerStore();
    return Promise.resolve([shared, shared] as const);
  },
);

type Mode = 'ok' | 'throw' | 'hang';
/** A real store whose `admit` or `reserveSpend` fails on demand (fault injection around it). */
function faultyBreakerStore(inner: BreakerStore): BreakerStore & { admitMode: Mode; spendMode: Mode } {
  const fail = <T>(mode: Mode, run: () => Promise<T>): Promise<T> =>
    mode === 'throw'
      ? Promise.reject(new Error('breaker store down'))
      : mode === 'hang'
        ? new Promise<T>(() => undefined)
        : run();
  const store = {
    admitMode: 'ok' as Mode,
    spendMode: 'ok' as Mode,
    admit: (input: Parameters<BreakerStore['admit']>[0]) => fail(store.admitMode, () => inner.admit(input)),
    trip: (p: string, b: Parameters<BreakerStore['trip']>[1], until: number) => inner.trip(p, b, until),
    openBreaker: (p: string, now: number) => inner.openBreaker(p, now),
    reserveSpend: (t: string, d: number, c: number, l: number) =>
      fail(store.spendMode, () => inner.reserveSpend(t, d, c, l)),
    releaseSpend: (t: string, d: number, c: number) => inner.releaseSpend(t, d, c),
    reset: (target: Parameters<BreakerStore['reset']>[0]) => inner.reset(target),
    prune: (input: Parameters<BreakerStore['prune']>[0]) => inner.prune(input),
  };
  return store;
}

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});
const code = (res: ControlPlaneResult): string => (res.outcome === 'deny' ? res.code : 'ALLOWED');
let n = 0;
const req = (params: Record<string, string | number>, session = 'sess-1') =>
  request('amount_cents' in params ? 'pay' : 'echo', params, { request_id: `bs-${++n}`, session });

describe('the Control Plane over a failing breaker store (OE-INV-021, fail closed)', () => {
  it.each(['throw', 'hang'] as const)(
    'admission %s → ERR_CONTROL_PLANE_UNAVAILABLE with a recorded decision, then recovers',
    async (mode) => {
      const store = faultyBreakerStore(createMemoryBreakerStore());
      const r = await rig({ breakerStore: store });
      opened.push(r);
      store.admitMode = mode;
      expect(code(await r.cp.decide(req({ message: 'x' })))).toBe('ERR_CONTROL_PLANE_UNAVAILABLE');
      expect((await entriesOf(r.ledger)).at(-1)).toMatchObject({
        type: 'decision',
        payload: { outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE' },
      });
      store.admitMode = 'ok';
      expect(code(await r.cp.decide(req({ message: 'y' })))).toBe('ALLOWED');
    },
  );

  it.each(['throw', 'hang'] as const)(
    'a spend reservation that %s → ERR_CONTROL_PLANE_UNAVAILABLE, no envelope',
    async (mode) => {
      const store = faultyBreakerStore(createMemoryBreakerStore());
      const r = await rig({ breakerStore: store });
      opened.push(r);
      store.spendMode = mode;
      const res = await r.cp.decide(req({ amount_cents: 5 }));
      expect(code(res)).toBe('ERR_CONTROL_PLANE_UNAVAILABLE');
      expect((await entriesOf(r.ledger)).some((e) => e.type === 'envelope.issued')).toBe(false);
    },
  );

  it('two Control Planes on one store share the tenant spend limit (replicas, one truth)', async () => {
    const shared = createMemoryBreakerStore();
    const a = await rig({ breakerStore: shared, breakers: { maxSpendCentsPerTenantDay: 10 } });
    const b = await rig({ breakerStore: shared, breakers: { maxSpendCentsPerTenantDay: 10 } });
    opened.push(a, b);
    expect(code(await a.cp.decide(req({ amount_cents: 6 }, 'sa')))).toBe('ALLOWED');
    expect(code(await b.cp.decide(req({ amount_cents: 6 }, 'sb')))).toBe('ERR_CIRCUIT_OPEN');
    expect(code(await b.cp.decide(req({ amount_cents: 4 }, 'sc')))).toBe('ALLOWED');
  });
});
