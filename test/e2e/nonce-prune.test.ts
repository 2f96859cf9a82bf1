/**
 * Envelope-nonce pruning is safe against a clock set back (OE-INV-017, SPEC §7 scenario 6): an
 * executed envelope whose nonce row was pruned while the clock ran a day ahead is still refused
 * when the clock comes back and the envelope looks unexpired again; the tool does not run twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2e } from './harness.js';
import { expectDenied, session, startE2e } from './harness.js';

let e2e: E2e;
beforeAll(async () => {
  e2e = await startE2e();
});
afterAll(async () => {
  await e2e?.close();
});

const DAY = 86_400_000;

describe('envelope-nonce pruning and clock jumps (OE-INV-017)', () => {
  it('a pruned jti is never consumable again, even after the clock jumps back', async () => {
    const params = { message: 'prune-then-jump-back' };
    const first = await e2e.client().call('echo', params, { session: session() });
    expect(first.outcome).toBe('executed');
    const envelope = await e2e.envelopeOf(first.request_id ?? '');

    // A day ahead: traffic goes on, and the store prunes past every envelope's life.
    e2e.clock.set(DAY);
    const later = await e2e.client().call('echo', { message: 'a day later' }, { session: session() });
    expect(later.outcome).toBe('executed');
    const { config } = e2e.instance.core;
    const pruned = await e2e.instance.core.nonces.prune({
      nowSec: Math.floor(e2e.clock.now() / 1000),
      toleranceSec: config.clock_tolerance_sec + config.max_envelope_lifetime_sec,
    });
    expect(pruned).toBeGreaterThanOrEqual(1);

    // The clock comes back: the first envelope is unexpired again, its nonce row is gone.
    e2e.clock.set(0);
    const before = e2e.runs.get('echo') ?? 0;
    await expectDenied(e2e, 'ERR_NONCE_REPLAYED', () =>
      e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
    );
    expect(e2e.runs.get('echo') ?? 0).toBe(before);
  });
});
