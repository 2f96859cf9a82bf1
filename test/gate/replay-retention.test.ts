/**
 * The request-replay memory survives clock jumps (FC-INV-3): rows are pruned by count and age,
 * age measured against the latest time seen, never by the wall clock alone. A request replayed
 * after the clock jumped 8 days ahead (and other clients' traffic pruned meanwhile) and came back
 * is refused by the Gate itself with ERR_REQUEST_REPLAYED; the Control Plane never sees it.
 * The pruning rules themselves are in the GateStateStore contract (gate-state.contract.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteGateState } from '../../src/gate/index.js';
import type { GateStateStore } from '../../src/gate/index.js';
import { startHarness, T0 } from './harness.js';
import type { Harness } from './harness.js';

const DAY = 86_400_000;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function openState(): GateStateStore {
  const dir = mkdtempSync(join(tmpdir(), 'fc-replay-'));
  const state = createSqliteGateState({ path: join(dir, 'state.db'), replayRetentionMs: 7 * DAY });
  cleanups.push(async () => {
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return state;
}

/** 1000 claims of another client at `atMs`: enough to run the store's own prune. */
async function trafficAt(state: GateStateStore, atMs: number, identity = 'agent-9'): Promise<void> {
  const claims = [];
  for (let i = 0; i < 1000; i++)
    claims.push(state.claim({ identity, nonce: `n-${atMs}-${i}`, requestId: `r-${atMs}-${i}`, atMs }));
  expect(new Set(await Promise.all(claims))).toEqual(new Set(['fresh']));
}

describe('request-replay retention (FC-INV-3)', () => {
  it('a request replayed after a +8-day clock jump is refused by the Gate with ERR_REQUEST_REPLAYED', async () => {
    const replay = openState();
    const h: Harness = await startHarness({ extra: { replay } });
    cleanups.push(() => h.close());
    const original = h.request({ requestId: 'req-before-jump' });
    expect((await h.post(original)).status).toBe(200);
    expect(h.cpCalls).toHaveLength(1);

    // The clock jumps 8 days ahead; other clients' traffic runs the prune at that time.
    await trafficAt(replay, T0 + 8 * DAY);
    // The clock comes back: the original request is within its timestamp tolerance again.
    h.clock.now = T0 + 1000;
    const again = await h.post(original);
    expect(again.status).toBe(409);
    expect(again.body['code']).toBe('ERR_REQUEST_REPLAYED');
    expect(h.cpCalls).toHaveLength(1);
    expect(h.execCalls).toHaveLength(1);
    expect(h.failedCodes()).toContain('ERR_REQUEST_REPLAYED');
  });
});
