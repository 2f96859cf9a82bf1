/**
 * Fault injection over HTTP (SPEC §7 scenarios 5, 8, 9; FC-INV-4; STYLE "throws, hangs past
 * timeout, returns garbage → deny, and the tool adapter was never called"). Each dependency of
 * the enforcement path (Control Plane, policy engine, ledger, nonce store) misbehaves in each
 * way on a running deployment; the call is denied with the dependency's code, no tool runs, and
 * once the fault is cleared the same kind of call executes again.
 *
 * In both topologies (harness.ts). `distributed`: the Control Plane, the policy engine and the
 * ledger writer stay in the Gate process, where the faults are injected; the separate Execution
 * Layer reaches that faulty ledger writer over mutual TLS (its decision lookup and its receipt
 * included), so scenarios 5 and 9 run there too. Scenario 8's decorated nonce store is the
 * embedded one only: a separate Execution Layer has its own SQLite nonce store, which another
 * writer holding its write lock makes unavailable instead (a real fault, the `throw` kind; its
 * hang and garbage kinds are not reproduced there).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import { noFaults } from '../support/faults.js';
import { exportAndVerify } from './topology.js';
import type { FaultMode } from '../support/faults.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, expectDenied, session, startE2e } from './harness.js';

/** A suite that does not apply to this topology: declared nowhere. */
const notInThisTopology = (_name: string, _body: () => void): void => undefined;

describe.each(ALL_TOPOLOGIES)('%s topology', (topology) => {
  let e2e: E2e;
  const MODES: readonly Exclude<FaultMode, 'off'>[] = ['throw', 'hang', 'garbage'];

  beforeAll(async () => {
    e2e = await startE2e({
      topology,
      // Distributed: the Execution Layer waits on the Gate's ledger writer less than the Gate waits on it.
      executor: { gate_timeout_ms: 500 },
      // Keyless: the Gate gives up on a hung Control Plane process sooner than the harness's 10 s.
      gate: { control_plane_timeout_ms: 2500 },
      embedded: {
        // Short deadlines so that "hang" is observed quickly; the Gate waits longer for the
        // Execution Layer and the Control Plane than they wait for their own dependencies.
        deadlines: {
          gate: { controlPlaneMs: 800, executionMs: 3000, ledgerMs: 300 },
          controlPlane: { ledgerMs: 200, policyMs: 200, stateMs: 200 },
          executor: { ledgerMs: 300, nonceMs: 200 },
        },
      },
    });
  }, 60_000);

  function reset(): void {
    Object.assign(e2e.faults, noFaults());
  }

  afterEach(reset);

  afterAll(async () => {
    await e2e?.close();
  });

  let n = 0;
  const echo = () => e2e.client().call('echo', { message: `fault ${(n += 1)}` }, { session: session() });

  /**
   * Clears the faults and shows the same kind of call runs again: the fault alone caused the deny.
   * The deadlines above are short (a "hang" is seen quickly), so on a loaded machine a healthy
   * PostgreSQL append can miss one (keyless: the ledger is PostgreSQL). A few tries then: each one
   * denied ran nothing, and one executes.
   */
  async function recovers(): Promise<void> {
    reset();
    const before = e2e.totalRuns();
    let r = await echo();
    for (let tries = 1; r.outcome !== 'executed' && tries < 3; tries += 1) {
      // Only a dependency's deadline missed: a refusal of any other kind fails here.
      expect(r.outcome === 'deny' ? r.code : r.outcome).toMatch(/^ERR_[A-Z_]+_UNAVAILABLE$/);
      expect(e2e.totalRuns()).toBe(before);
      await new Promise((resolve) => setTimeout(resolve, 250));
      r = await echo();
    }
    expect(r).toMatchObject({ outcome: 'executed' });
    expect(e2e.totalRuns()).toBe(before + 1);
  }

  describe('scenario 5: Control Plane unavailable', () => {
    it.each(MODES)(
      'scenario 5: the Control Plane %s → ERR_CONTROL_PLANE_UNAVAILABLE, tool never ran',
      async (mode) => {
        e2e.faults.controlPlane = mode;
        await expectDenied(e2e, 'ERR_CONTROL_PLANE_UNAVAILABLE', echo);
        await recovers();
      },
    );
  });

  describe('policy engine faults', () => {
    const expected: Record<Exclude<FaultMode, 'off'>, string> = {
      throw: 'ERR_POLICY_ERROR',
      hang: 'ERR_POLICY_UNAVAILABLE',
      garbage: 'ERR_POLICY_ERROR',
    };
    it.each(MODES)('the policy engine %s → deny, tool never ran', async (mode) => {
      e2e.faults.policyEngine = mode;
      await expectDenied(e2e, expected[mode], echo);
      await recovers();
    });
  });

  // Distributed and keyless: the separate Execution Layer has its own nonce store, out of the
  // decorators' reach; there another writer holding its SQLite file's write lock makes it
  // unavailable (below). Not declared at all in those topologies (never a skipped test).
  (topology === 'embedded' ? describe : notInThisTopology)('scenario 8: nonce store unavailable', () => {
    it.each(MODES)(
      'scenario 8: the nonce store %s → ERR_NONCE_STORE_UNAVAILABLE, tool never ran',
      async (mode) => {
        e2e.faults.nonceStore = mode;
        await expectDenied(e2e, 'ERR_NONCE_STORE_UNAVAILABLE', echo);
        await recovers();
      },
    );
  });

  (topology !== 'embedded' ? describe : notInThisTopology)(
    'scenario 8: the separate Execution Layer’s nonce store',
    () => {
      it('scenario 8: its nonce store locked by another writer → ERR_NONCE_STORE_UNAVAILABLE, tool never ran', async () => {
        // A real fault: another connection holds the write lock of its SQLite file past its busy timeout.
        const lock = new Database(join(e2e.nodeDir ?? '', 'nonces.db'), { fileMustExist: true });
        try {
          lock.prepare('BEGIN IMMEDIATE').run();
          await expectDenied(e2e, 'ERR_NONCE_STORE_UNAVAILABLE', echo);
        } finally {
          if (lock.inTransaction) lock.prepare('ROLLBACK').run();
          lock.close();
        }
        await recovers();
      }, 20_000);
    },
  );

  describe('scenario 9: ledger write fails', () => {
    it.each(MODES)(
      'scenario 9: every ledger write and lookup %s → ERR_LEDGER_UNAVAILABLE, tool never ran',
      async (mode) => {
        e2e.faults.ledger = mode;
        await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', echo);
        await recovers();
      },
    );

    it.each(MODES)(
      'scenario 9: only the decision record write %s → ERR_LEDGER_UNAVAILABLE, tool never ran',
      async (mode) => {
        e2e.faults.ledger = mode;
        e2e.faults.ledgerTypes = ['decision'];
        await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', echo);
        await recovers();
      },
    );

    it.each(MODES)(
      'scenario 9: only the gateway.accepted write %s → ERR_LEDGER_UNAVAILABLE, tool never ran',
      async (mode) => {
        e2e.faults.ledger = mode;
        e2e.faults.ledgerTypes = ['gateway.accepted'];
        await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', echo);
        await recovers();
      },
    );

    it('scenario 9: the envelope issuance record fails → ERR_LEDGER_UNAVAILABLE, tool never ran', async () => {
      e2e.faults.ledger = 'throw';
      e2e.faults.ledgerTypes = ['envelope.issued'];
      await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', echo);
    });

    it('scenario 9: the executor cannot confirm the decision in the ledger → ERR_LEDGER_UNAVAILABLE, tool never ran', async () => {
      const params = { message: 'unconfirmed' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      e2e.faults.ledger = 'hang';
      e2e.faults.ledgerTypes = ['decision'];
      await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', () =>
        e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
      );
    });

    // The decision and its envelope.issued share one commit (the Control Plane's `appendThen`).
    // Keyless: the Control Plane process keeps its own deadlines, out of this suite's reach.
    (topology === 'keyless' ? notInThisTopology : describe)('a late joint append', () => {
      it('scenario 9: the decision and its issuance commit only after the Control Plane gave up → ERR_LEDGER_UNAVAILABLE, the tool never runs, not even once the late commit lands', async () => {
        let late: Promise<unknown> | undefined;
        // Past the Control Plane's 200 ms ledger deadline, well inside the Gate's 800 ms.
        e2e.faults.ledgerLate = { type: 'decision', ms: 500, made: (p) => void (late = p) };
        const before = e2e.totalRuns();
        const r = await expectDenied(e2e, 'ERR_LEDGER_UNAVAILABLE', echo);
        // The late append is made after the deny, as asked; whatever it commits, the envelope it
        // names never left the Control Plane.
        await expect.poll(() => late !== undefined, { timeout: 5_000 }).toBe(true);
        await (late as Promise<unknown>).then(
          () => undefined,
          () => undefined,
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(e2e.totalRuns()).toBe(before);
        const view = await e2e.evidence(r.request_id ?? '');
        expect(view.status).toBe(200);
        const types = (view.body['records'] as { entry: { type: string } }[]).map((x) => x.entry.type);
        // The Gate recorded the deny; the late commit may add the decision and the issuance after
        // it (docs/control-plane.md), never a consumption or an outcome, and the ledger verifies.
        expect(types.slice(0, 2)).toEqual(['gateway.accepted', 'gateway.failed']);
        expect(types).not.toContain('execution.receipt');
        expect(types).not.toContain('gateway.completed');
        const { code } = await exportAndVerify(e2e.instance.url, readOperatorToken(e2e.dir), e2e.dir);
        expect(code).toBe(0);
        await recovers();
      }, 20_000);
    });

    it('the execution receipt cannot be written → the result is withheld (ERR_LEDGER_UNAVAILABLE)', async () => {
      e2e.faults.ledger = 'throw';
      e2e.faults.ledgerTypes = ['execution.receipt'];
      const r = await echo();
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
      expect(JSON.stringify(r)).not.toContain('"result"');
    });
  });
});
