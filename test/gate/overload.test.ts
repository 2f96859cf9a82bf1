/**
 * Overload shedding (SPEC §8, OE-INV-025 operations): past `maxInflight` calls in flight, a call is
 * answered at once `503 ERR_OVERLOADED` before any work: it never reaches the Control Plane or the
 * Execution Layer, it is counted on /readyz, and it is recorded only within the unauthenticated
 * record budget, so a flood cannot fill the ledger. The admitted calls complete normally.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness } from './harness.js';
import type { Harness } from './harness.js';

const harnesses: Harness[] = [];
// Held decisions must not time out: the test, not a deadline, decides when they finish.
const timeouts = { controlPlaneMs: 120_000, executionMs: 120_000, ledgerMs: 120_000 };
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

/** A Control Plane that holds every decision until `release()`; `reached(n)` resolves once n wait. */
function heldDecisions() {
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const waiters: { n: number; resolve: () => void }[] = [];
  let held = 0;
  return {
    decide: async () => {
      held += 1;
      for (const w of waiters) if (held >= w.n) w.resolve();
      await gate;
      return {
        outcome: 'allow' as const,
        decision_id: 'dec-1',
        envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
        decision_ref: { index: 3, entry_hash: 'ef'.repeat(32) },
        policy_bundle: 'bundle',
      };
    },
    reached: (n: number) =>
      new Promise<void>((resolve) => (held >= n ? resolve() : waiters.push({ n, resolve }))),
    release: () => open(),
  };
}

describe('overload shedding at the Gate', () => {
  it('past max_inflight calls are shed with ERR_OVERLOADED before any work; the rest succeed', async () => {
    const cp = heldDecisions();
    const h = await startHarness({ decide: cp.decide, extra: { maxInflight: 4, timeouts } });
    harnesses.push(h);
    const admitted = Array.from({ length: 4 }, () => h.post(h.request()));
    await cp.reached(4);
    const shed = await Promise.all(Array.from({ length: 6 }, () => h.post(h.request())));
    for (const r of shed) {
      expect(r.status).toBe(503);
      expect(r.body['code']).toBe('ERR_OVERLOADED');
    }
    // None of the shed calls reached the Control Plane, let alone the Execution Layer.
    expect(h.cpCalls).toHaveLength(4);
    cp.release();
    for (const r of await Promise.all(admitted)) expect(r.status).toBe(200);
    expect(h.execCalls).toHaveLength(4);
    expect(h.failedCodes().filter((c) => c === 'ERR_OVERLOADED')).toHaveLength(6);
    const ready = await fetch(`${h.url}/readyz`);
    expect(((await ready.json()) as { shed_calls: number }).shed_calls).toBe(6);
    // With capacity back, a call is admitted again.
    expect((await h.post(h.request())).status).toBe(200);
  });

  it('shed calls are recorded only within the unauthenticated record budget', async () => {
    const cp = heldDecisions();
    const h = await startHarness({
      decide: cp.decide,
      extra: { maxInflight: 1, unauthenticatedRecordsPerSecond: 2, timeouts },
    });
    harnesses.push(h);
    const first = h.post(h.request());
    await cp.reached(1);
    const shed = await Promise.all(Array.from({ length: 5 }, () => h.post(h.request())));
    expect(shed.map((r) => r.body['code'])).toEqual(Array(5).fill('ERR_OVERLOADED'));
    cp.release();
    expect((await first).status).toBe(200);
    expect(h.failedCodes().filter((c) => c === 'ERR_OVERLOADED')).toHaveLength(2);
    const body = (await (await fetch(`${h.url}/readyz`)).json()) as Record<string, number>;
    expect(body['suppressed_ingress_records']).toBe(3);
    expect(body['shed_calls']).toBe(5);
  });
});
