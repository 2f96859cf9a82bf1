/**
 * SPEC §7 adversarial scenarios end to end, over HTTP, in every topology (harness.ts): every role
 * in one process (`embedded`); the Gate process with a separate Execution Layer (`distributed`:
 * `startExecutorNode`, its own nonce store, public keys only, reached over mutual TLS); and the
 * most separated shape (`keyless`: the Control Plane process on PostgreSQL with `internal_gates`,
 * the separate Execution Layer, and a Gate holding no key, `startGateNode` on its own
 * least-privilege database role, which clients call), one deployment of each per run. Every
 * attack is a real request or a real envelope (issued by the Control Plane and read back from the
 * ledger), and every test asserts the denial code AND that no tool ran. In `distributed` and
 * `keyless` the attacks reach the Execution Layer over mutual TLS with a `gate` certificate: the
 * transport admits the caller, so each verdict is the Execution Layer's own envelope check
 * (FC-INV-6). Clock steps go through `e2e.setClock`: in `keyless` the Control Plane follows its
 * PostgreSQL backend and would otherwise read a step as having lost track of the policy.
 * Scenarios 1, 2, 3, 4, 6, 7, 18 here, all three ways; 10 in envelope-attacks.test.ts, 5/8/9 in
 * faults.test.ts, 15 in incident.test.ts, 16 in secrets.test.ts, 17 in sandbox.test.ts and the
 * unknown-bundle envelope of 13 in policy-bundle.test.ts, in all three too; 12 in
 * ledger-tampering.test.ts and 13's other cases, embedded only (docs/COMPLIANCE.md says why).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { readClientFile, readConfig } from '../../src/embedded/index.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, expectDenied, session, startE2e } from './harness.js';
import { flipBit, partsOf, signRaw } from './forge.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

describe.each(ALL_TOPOLOGIES)('%s topology', (topology) => {
  let e2e: E2e;

  beforeAll(async () => {
    e2e = await startE2e({ topology });
    await e2e.addClient('globex-agent', 'globex');
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
  });

  describe('the governed path works (FC-INV-6)', () => {
    it('an allowed call (echo) runs exactly once and leaves Gate, Control Plane and executor records', async () => {
      const before = e2e.runs.get('echo') ?? 0;
      const r = await e2e.client().call('echo', { message: 'hello' }, { session: session() });
      expect(r).toMatchObject({ outcome: 'executed', result: { message: 'hello' } });
      expect(e2e.runs.get('echo')).toBe(before + 1);
      const view = await e2e.evidence(r.request_id ?? '');
      const types = (view.body['records'] as { entry: { type: string } }[]).map((x) => x.entry.type);
      expect(types).toEqual(
        expect.arrayContaining([
          'gateway.accepted',
          'decision',
          'envelope.issued',
          'execution.receipt',
          'gateway.completed',
        ]),
      );
    });

    it('the demo tools agree with the builtins and the sandboxed command', async () => {
      const c = e2e.client();
      expect(await c.call('math.add', { a: 2, b: 40 }, { session: session() })).toMatchObject({
        outcome: 'executed',
        result: { sum: 42 },
      });
      expect(await c.call('get_time', {}, { session: session() })).toMatchObject({ outcome: 'executed' });
      const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 12.5, currency: 'USD' };
      expect(await c.call('transfer_funds', transfer, { session: session() })).toMatchObject({
        outcome: 'executed',
        result: { amount: 12.5 },
      });
      expect(
        await c.call('send_email', { to: 'a@example.com', subject: 's', body: 'b' }, { session: session() }),
      ).toMatchObject({ outcome: 'executed' });
      expect(await c.call('list_files', { path: '.' }, { session: session() })).toMatchObject({
        outcome: 'executed',
        result: { exit_code: 0 },
      });
    });

    it('policy denies a transfer above the hard cap and email for tenant globex (ERR_POLICY_DENY)', async () => {
      const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 60000, currency: 'USD' };
      await expectDenied(e2e, 'ERR_POLICY_DENY', () =>
        e2e.client().call('transfer_funds', transfer, { session: session() }),
      );
      const email = { to: 'a@example.com', subject: 's', body: 'b' };
      await expectDenied(e2e, 'ERR_POLICY_DENY', () =>
        e2e.client({ name: 'globex-agent' }).call('send_email', email, { session: session() }),
      );
    });
  });

  describe('scenario 1: forged or corrupted envelope signature', () => {
    it('scenario 1: a flipped signature, header or payload bit is denied and the envelope stays usable', async () => {
      const params = { message: 's1' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      const call = (env: string) => () =>
        e2e.execute({ envelope: env, tool: 'echo', tenant: 'acme', params });
      await expectDenied(e2e, 'ERR_ENVELOPE_SIGNATURE', call(flipBit(envelope, 2)));
      await expectDenied(e2e, 'ERR_ENVELOPE_SIGNATURE', call(flipBit(envelope, 1, 3)));
      const runsBefore = e2e.totalRuns();
      const header = await call(flipBit(envelope, 0, 1))();
      expect(header.body['outcome']).toBe('deny');
      expect(String(header.body['code'])).toMatch(/^ERR_ENVELOPE_/);
      expect(e2e.totalRuns()).toBe(runsBefore);
      // None of the forgeries consumed the nonce: the genuine envelope still runs once.
      const before = e2e.totalRuns();
      expect((await call(envelope)()).body).toMatchObject({ outcome: 'executed' });
      expect(e2e.totalRuns()).toBe(before + 1);
    });

    it('scenario 1: an envelope signed by another key under the issuer kid is denied', async () => {
      const params = { message: 's1b' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      const { header, payload } = partsOf(envelope);
      const forged = signRaw(header, payload, generateSigningKey());
      await expectDenied(e2e, 'ERR_ENVELOPE_SIGNATURE', () =>
        e2e.execute({ envelope: forged, tool: 'echo', tenant: 'acme', params }),
      );
    });
  });

  describe('scenario 2: parameters changed after approval', () => {
    it('scenario 2: a real envelope presented with changed parameters → ERR_ENVELOPE_PARAMS_MISMATCH', async () => {
      const params = { from_account: 'acct_a', to_account: 'acct_b', amount: 10, currency: 'USD' };
      const { envelope } = await e2e.unusedEnvelope('transfer_funds', params);
      for (const changed of [
        { ...params, amount: 10000 },
        { ...params, to_account: 'acct_evil' },
        { ...params, memo: 'x' },
      ]) {
        await expectDenied(e2e, 'ERR_ENVELOPE_PARAMS_MISMATCH', () =>
          e2e.execute({ envelope, tool: 'transfer_funds', tenant: 'acme', params: changed }),
        );
      }
    });
  });

  describe('scenario 3: direct call to the Execution Layer', () => {
    it('scenario 3: no envelope, an empty one, or a junk one → denied, nothing runs', async () => {
      await expectDenied(e2e, 'ERR_ENVELOPE_MISSING', () =>
        e2e.execute({ tool: 'echo', tenant: 'acme', params: { message: 'x' } }),
      );
      await expectDenied(e2e, 'ERR_ENVELOPE_MISSING', () =>
        e2e.execute({ envelope: '', tool: 'echo', tenant: 'acme', params: { message: 'x' } }),
      );
      await expectDenied(e2e, 'ERR_ENVELOPE_MALFORMED', () =>
        e2e.execute({ envelope: 'a.b', tool: 'echo', tenant: 'acme', params: { message: 'x' } }),
      );
    });
  });

  describe('scenario 6: replay of a used envelope', () => {
    it('scenario 6: presenting an executed envelope again → ERR_NONCE_REPLAYED', async () => {
      const params = { message: 's6' };
      const r = await e2e.client().call('echo', params, { session: session() });
      expect(r.outcome).toBe('executed');
      const envelope = await e2e.envelopeOf(r.request_id ?? '');
      await expectDenied(e2e, 'ERR_NONCE_REPLAYED', () =>
        e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
      );
    });

    it('scenario 6: 32 concurrent replays of one unused envelope over HTTP → exactly one execution', async () => {
      const params = { message: 's6-race' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      const before = e2e.runs.get('echo') ?? 0;
      const answers = await Promise.all(
        Array.from({ length: 32 }, () => e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params })),
      );
      const executed = answers.filter((a) => a.body['outcome'] === 'executed');
      const replayed = answers.filter((a) => a.body['code'] === 'ERR_NONCE_REPLAYED');
      expect(executed).toHaveLength(1);
      expect(replayed).toHaveLength(31);
      expect(e2e.runs.get('echo')).toBe(before + 1);
    });
  });

  describe('scenario 7: envelope for one tool or tenant used for another', () => {
    it('scenario 7: an echo envelope presented for send_email → ERR_ENVELOPE_TOOL_MISMATCH', async () => {
      const params = { message: 's7' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      await expectDenied(e2e, 'ERR_ENVELOPE_TOOL_MISMATCH', () =>
        e2e.execute({ envelope, tool: 'send_email', tenant: 'acme', params }),
      );
    });

    it('scenario 7: an acme envelope presented for tenant globex → ERR_ENVELOPE_TENANT_MISMATCH', async () => {
      const params = { message: 's7t' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      await expectDenied(e2e, 'ERR_ENVELOPE_TENANT_MISMATCH', () =>
        e2e.execute({ envelope, tool: 'echo', tenant: 'globex', params }),
      );
    });

    it('scenario 7: a client asking to act on another tenant → ERR_REQUEST_TENANT at the Gate', async () => {
      const globex = e2e.client({ name: 'globex-agent' });
      expect(await globex.call('echo', { message: 'x' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
      // The demo agent signing a request for tenant globex: authenticated, wrong tenant.
      const demo = readClientFile(e2e.dir, 'demo-agent');
      const cross = createClient({
        url: e2e.url,
        identity: demo.identity,
        tenant: 'globex',
        key: demo.key,
        now: e2e.clock.now,
      });
      await expectDenied(e2e, 'ERR_REQUEST_TENANT', () =>
        cross.call('echo', { message: 'x' }, { session: session() }),
      );
    });
  });

  describe('scenarios 4 and 18: expiry and clock skew (injected clock)', () => {
    it('scenario 4: an unused envelope presented after exp + tolerance → ERR_ENVELOPE_EXPIRED', async () => {
      const cfg = readConfig(e2e.dir);
      const params = { message: 's4' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      try {
        await e2e.setClock((cfg.envelope_ttl_sec + cfg.clock_tolerance_sec + 5) * 1000);
        await expectDenied(e2e, 'ERR_ENVELOPE_EXPIRED', () =>
          e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
        );
      } finally {
        await e2e.setClock(0);
      }
      // Within its lifetime the same envelope still runs: the expiry alone made the difference.
      expect((await e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params })).body).toMatchObject({
        outcome: 'executed',
      });
    });

    it('scenario 18: a request timestamp beyond the tolerance either way → ERR_REQUEST_TIMESTAMP', async () => {
      const tol = readConfig(e2e.dir).timestamp_tolerance_ms;
      for (const skew of [tol + 5_000, -(tol + 5_000)]) {
        const skewed = e2e.client({ now: () => Date.now() + skew });
        await expectDenied(e2e, 'ERR_REQUEST_TIMESTAMP', () =>
          skewed.call('echo', { message: 'x' }, { session: session() }),
        );
      }
      // Inside the tolerance it passes.
      const near = e2e.client({ now: () => Date.now() + tol / 2 });
      expect(await near.call('echo', { message: 'near' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
    });

    it('scenario 18: an envelope issued by a clock ahead of the executor → ERR_ENVELOPE_NOT_YET_VALID', async () => {
      const cfg = readConfig(e2e.dir);
      const params = { message: 's18' };
      let issued: { envelope: string };
      try {
        await e2e.setClock((cfg.clock_tolerance_sec + 60) * 1000);
        issued = await e2e.unusedEnvelope('echo', params);
      } finally {
        await e2e.setClock(0);
      }
      await expectDenied(e2e, 'ERR_ENVELOPE_NOT_YET_VALID', () =>
        e2e.execute({ envelope: issued.envelope, tool: 'echo', tenant: 'acme', params }),
      );
    });
  });
});
