/**
 * Fault injection on the embedded deployment's shared commits (`src/kernel/sqlite-commit.ts`):
 * each of a governed call's three durable commits made to fail on the real SQLite file. The
 * fault is real SQLite: a test-only trigger adds, when armed, a row that violates a deferred
 * foreign key, so the COMMIT itself fails (SQLITE_CONSTRAINT) and rolls back everything in the
 * transaction. It fires once per arming, so what the gate does after the failure (voiding the
 * envelope) commits as it would. Each failure denies with its code, the tool never runs where the
 * commit precedes it, no envelope outlives a failed call in use (none issued, or voided), and the
 * next call succeeds. (FC-INV-4, GEI "If the ledger write fails, the tool does not
 * run", OE-INV-015, OE-INV-017, L7 degraded mode)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { SqliteLedgerStore } from '../../src/ledger/index.js';

let dir: string;
let instance: EmbeddedInstance;
let runs = 0;

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'fc-commit-faults-')), 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0, onToolRun: () => void (runs += 1) });
  const db = (instance.core.ledger.store as SqliteLedgerStore).database;
  db.pragma('foreign_keys = ON');
  // Fires once per arming: the state is the test's, not the transaction's, so the rollback of the
  // failed commit does not re-arm it, and what the gate does next (voiding) commits as usual.
  db.function('fault_fires', (target: unknown) => {
    if (armed === undefined || target !== armed) return 0;
    armed = undefined;
    return 1;
  });
  // Test-only schema, of this connection only (TEMP): the armed trigger makes the transaction
  // holding its row uncommittable.
  db.exec(`
    CREATE TEMP TABLE fault_parent (id INTEGER PRIMARY KEY);
    CREATE TEMP TABLE fault_child (parent INTEGER REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TEMP TRIGGER fault_on_entry AFTER INSERT ON main.entries
      WHEN fault_fires(NEW.type) = 1
      BEGIN INSERT INTO fault_child (parent) VALUES (-1); END;
    CREATE TEMP TRIGGER fault_on_nonce AFTER INSERT ON main.envelope_nonces
      WHEN NEW.voided = 0 AND fault_fires('envelope_nonces') = 1
      BEGIN INSERT INTO fault_child (parent) VALUES (-1); END;
  `);
});

afterAll(async () => {
  await instance.close();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

/** The write whose commit fails next (once). */
let armed: string | undefined;
function arm(target: string | undefined): void {
  armed = target;
}

function client() {
  const f = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
}

describe('a failed shared commit denies, and nothing leaves before its commit', () => {
  it.each([
    // The decision group: no envelope leaves the Control Plane, the tool never runs.
    ['decision', 'ERR_LEDGER_UNAVAILABLE', false],
    // The envelope nonce: its consumption is not durable, the tool never runs.
    ['envelope_nonces', 'ERR_NONCE_STORE_UNAVAILABLE', false],
    // The receipt group: the tool ran, its result is withheld.
    ['gateway.completed', 'ERR_LEDGER_UNAVAILABLE', true],
  ] as const)('commit holding %s fails → deny %s (tool ran: %s)', async (target, code, ran) => {
    const agent = client();
    expect((await agent.call('echo', { message: `before ${target}` })).outcome).toBe('executed');
    const sizeBefore = instance.core.ledger.size();
    const runsBefore = runs;
    arm(target);
    const r = await agent.call('echo', { message: `fault ${target}` });
    expect(armed).toBeUndefined();
    expect(r.outcome).toBe('deny');
    expect(r.outcome === 'deny' && r.code).toBe(code);
    expect(runs - runsBefore).toBe(ran ? 1 : 0);
    // The envelope: none issued when the decision's commit failed; one whose consumption failed is
    // voided (out of use for ever) before the answer says so; one consumed by the run is not.
    const db0 = (instance.core.ledger.store as SqliteLedgerStore).database;
    const issued = db0
      .prepare<[string], { body: string }>(
        "SELECT body FROM entries WHERE request_id = ? AND type = 'envelope.issued'",
      )
      .all(r.request_id ?? '');
    const nonces = db0
      .prepare<[string], { voided: number }>('SELECT voided FROM envelope_nonces WHERE decision_id = ?')
      .all(r.outcome === 'deny' ? (r.decision_id ?? '') : '');
    if (target === 'decision') {
      expect(issued).toEqual([]);
      expect(r.outcome === 'deny' && r.envelope_voided).toBeFalsy();
    } else {
      expect(issued).toHaveLength(1);
      expect(nonces).toEqual([{ voided: target === 'envelope_nonces' ? 1 : 0 }]);
      expect(r.outcome === 'deny' && r.envelope_voided).toBe(target === 'envelope_nonces');
    }
    // The denial is recorded; a tool that ran keeps its receipt, written again on its own.
    await instance.core.ledger.settled();
    const db = (instance.core.ledger.store as SqliteLedgerStore).database;
    const types = db
      .prepare<[string], { type: string }>('SELECT type FROM entries WHERE request_id = ? ORDER BY idx')
      .all(r.request_id ?? '')
      .map((e) => e.type);
    expect(types).toContain('gateway.failed');
    expect(types.includes('execution.receipt')).toBe(ran);
    expect(types).not.toContain('gateway.completed');
    // The ledger continues: the next call runs and the chain verifies at reopen (below).
    const after = await agent.call('echo', { message: `after ${target}` });
    expect(after.outcome).toBe('executed');
    expect(instance.core.ledger.size()).toBeGreaterThan(sizeBefore);
  });

  it('the ledger written around the failures reopens: its chain and tree verify', async () => {
    const size = instance.core.ledger.size();
    await instance.close();
    instance = await startEmbedded(dir, { port: 0, executionPort: 0, onToolRun: () => void (runs += 1) });
    expect(instance.core.ledger.size()).toBeGreaterThanOrEqual(size);
    expect((await client().call('echo', { message: 'reopened' })).outcome).toBe('executed');
  });
});
