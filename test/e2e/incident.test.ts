/**
 * SPEC §7 scenario 15 end to end (OE-INV-025 incident response, OE-INV-021 breakers): the kill
 * switch, a tenant lockdown and a quarantined agent session each deny over HTTP with their code,
 * nothing runs, the denial is recorded as the request's decision, and releasing restores service.
 * In both topologies (harness.ts): the switches act in the Gate process, before an envelope
 * exists; `distributed` shows that service resumes through a separate Execution Layer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, expectDenied, session, startE2e } from './harness.js';

describe.each(ALL_TOPOLOGIES)('%s topology', (topology) => {
  let e2e: E2e;

  beforeAll(async () => {
    e2e = await startE2e({ topology, embedded: { breakers: { loopThreshold: 3 } } });
    await e2e.addClient('globex-agent', 'globex');
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
  });

  async function admin(action: string, body: Record<string, unknown>): Promise<number> {
    const res = await fetch(`${e2e.instance.url}/v1/admin/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(e2e.dir)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, reason: 'incident drill' }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** The decision recorded for a request: its outcome and code. */
  async function recordedDecision(
    requestId: string,
  ): Promise<{ outcome?: unknown; code?: unknown } | undefined> {
    const view = await e2e.evidence(requestId);
    const records = view.body['records'] as { entry: { type: string; payload: Record<string, unknown> } }[];
    return records.find((r) => r.entry.type === 'decision')?.entry.payload;
  }

  describe('scenario 15: incident response denies and is recorded', () => {
    it('scenario 15: kill switch on → ERR_KILL_SWITCH for every tenant, nothing runs; off → service resumes', async () => {
      expect(await admin('kill-switch', { on: true })).toBe(200);
      try {
        const r = await expectDenied(e2e, 'ERR_KILL_SWITCH', () =>
          e2e.client().call('echo', { message: 'during incident' }, { session: session() }),
        );
        expect(await recordedDecision(r.request_id ?? '')).toMatchObject({
          outcome: 'deny',
          code: 'ERR_KILL_SWITCH',
        });
        await expectDenied(e2e, 'ERR_KILL_SWITCH', () =>
          e2e
            .client({ name: 'globex-agent' })
            .call('echo', { message: 'other tenant' }, { session: session() }),
        );
      } finally {
        expect(await admin('kill-switch', { on: false })).toBe(200);
      }
      expect(await e2e.client().call('echo', { message: 'after' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
    });

    it('scenario 15: tenant lockdown → ERR_TENANT_LOCKDOWN for that tenant only; release restores it', async () => {
      expect(await admin('lockdown', { tenant: 'acme', on: true })).toBe(200);
      try {
        const r = await expectDenied(e2e, 'ERR_TENANT_LOCKDOWN', () =>
          e2e.client().call('echo', { message: 'locked' }, { session: session() }),
        );
        expect(await recordedDecision(r.request_id ?? '')).toMatchObject({
          outcome: 'deny',
          code: 'ERR_TENANT_LOCKDOWN',
        });
        const before = e2e.totalRuns();
        expect(
          await e2e
            .client({ name: 'globex-agent' })
            .call('echo', { message: 'unaffected' }, { session: session() }),
        ).toMatchObject({ outcome: 'executed' });
        expect(e2e.totalRuns()).toBe(before + 1);
      } finally {
        expect(await admin('lockdown', { tenant: 'acme', on: false })).toBe(200);
      }
      expect(await e2e.client().call('echo', { message: 'released' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
    });

    it('scenario 15: a looping session trips the breaker and is quarantined; other sessions are not', async () => {
      const s = session();
      const c = e2e.client();
      for (let i = 0; i < 3; i++) {
        expect(await c.call('echo', { message: 'loop' }, { session: s })).toMatchObject({
          outcome: 'executed',
        });
      }
      await expectDenied(e2e, 'ERR_CIRCUIT_OPEN', () => c.call('echo', { message: 'loop' }, { session: s }));
      // Quarantined: even a different, harmless call from that session is refused.
      const q = await expectDenied(e2e, 'ERR_SESSION_QUARANTINED', () =>
        c.call('math.add', { a: 1, b: 2 }, { session: s }),
      );
      expect(await recordedDecision(q.request_id ?? '')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_SESSION_QUARANTINED',
      });
      expect(await c.call('math.add', { a: 1, b: 2 }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
    });

    it('scenario 15: an operator quarantines a session → ERR_SESSION_QUARANTINED; release restores it', async () => {
      const s = session();
      expect(await admin('quarantine', { session: s, on: true })).toBe(200);
      await expectDenied(e2e, 'ERR_SESSION_QUARANTINED', () =>
        e2e.client().call('echo', { message: 'q' }, { session: s }),
      );
      expect(await admin('quarantine', { session: s, on: false })).toBe(200);
      expect(await e2e.client().call('echo', { message: 'q' }, { session: s })).toMatchObject({
        outcome: 'executed',
      });
    });

    it('quarantine works for client:NAME (a client’s sessionless calls): set, deny, lift', async () => {
      expect(await admin('quarantine', { session: 'client:globex-agent', on: true })).toBe(200);
      const c = e2e.client({ name: 'globex-agent' });
      const before = e2e.totalRuns();
      await expectDenied(e2e, 'ERR_SESSION_QUARANTINED', () => c.call('echo', { message: 'sessionless' }));
      expect(e2e.totalRuns()).toBe(before);
      expect(await admin('quarantine', { session: 'client:globex-agent', on: false })).toBe(200);
      expect(await c.call('echo', { message: 'sessionless' })).toMatchObject({ outcome: 'executed' });
    });

    it('an operator resets a tripped breaker through the operator endpoint (ledgered)', async () => {
      const c = e2e.client({ name: 'globex-agent' });
      for (let i = 0; i < 3; i++)
        expect(await c.call('echo', { message: 'loop-sessionless' })).toMatchObject({ outcome: 'executed' });
      await expectDenied(e2e, 'ERR_CIRCUIT_OPEN', () => c.call('echo', { message: 'loop-sessionless' }));
      await expectDenied(e2e, 'ERR_CIRCUIT_OPEN', () => c.call('math.add', { a: 1, b: 2 }));
      expect(await admin('breaker-reset', { client: 'globex-agent' })).toBe(200);
      expect(await c.call('math.add', { a: 1, b: 2 })).toMatchObject({ outcome: 'executed' });
      expect(await admin('breaker-reset', { client: 'globex-agent', session: 'x' })).toBe(400);
    });
  });
});
