/** The GovernanceState contract for the memory and SQLite backends, plus the admin functions (OE-INV-025). */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createGovernanceAdmin,
  createMemoryGovernanceState,
  createSqliteGovernanceState,
  type LedgerAppend,
  type SqliteGovernanceState,
} from '../../src/control-plane/index.js';
import { runGovernanceStateContract } from './governance-state.contract.js';
import { faultyLedger, OPERATOR, settableClock, tempDir } from './support.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

runGovernanceStateContract('memory', () => {
  // Every handle of the memory backend is the same object.
  const s = createMemoryGovernanceState();
  return Promise.resolve({ open: () => Promise.resolve(s), destroy: () => Promise.resolve() });
});

runGovernanceStateContract('sqlite', () => {
  const { dir, cleanup } = tempDir();
  const handles: SqliteGovernanceState[] = [];
  return Promise.resolve({
    open: () => {
      const s = createSqliteGovernanceState(join(dir, 'state.db'));
      handles.push(s);
      return Promise.resolve(s);
    },
    destroy: () => {
      for (const s of handles) s.close();
      cleanup();
      return Promise.resolve();
    },
  });
});

describe('SQLite governance state', () => {
  it('persists across reopen', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const path = join(dir, 'state.db');
    const a = createSqliteGovernanceState(path);
    await a.apply({ kind: 'kill_switch', on: true });
    await a.apply({ kind: 'quarantine', session: 's', on: true });
    await a.apply({ kind: 'taint', session: 's', on: true });
    a.close();
    const b = createSqliteGovernanceState(path);
    expect(await b.check('t', 's')).toEqual({
      kill_switch: true,
      tenant_locked: false,
      session_quarantined: true,
      session_tainted: true,
    });
    expect(await b.check('t', 'other')).toMatchObject({ session_tainted: false });
    b.close();
  });

  it('a closed database rejects reads (the pipeline then denies)', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const s = createSqliteGovernanceState(join(dir, 'state.db'));
    s.close();
    await expect(s.check('t', null)).rejects.toThrow('The database connection is not open');
  });
});

describe('governance admin: ledger first, then apply (OE-INV-025)', () => {
  function setup() {
    const recorded: LedgerAppend[] = [];
    const inner = {
      append: (e: LedgerAppend) => {
        recorded.push(e);
        return Promise.resolve({ index: recorded.length - 1, entry_hash: 'a'.repeat(64) });
      },
    };
    const ledger = faultyLedger(inner);
    const state = createMemoryGovernanceState();
    const admin = createGovernanceAdmin({
      ledger,
      state,
      now: settableClock(),
      ledgerTimeoutMs: 100,
      stateTimeoutMs: 100,
    });
    return { recorded, ledger, state, admin };
  }

  it('records each change with its payload and actor', async () => {
    const { recorded, admin } = setup();
    await admin.setKillSwitch(true, OPERATOR, 'incident');
    await admin.setTenantLockdown('acme', true, OPERATOR, 'breach');
    await admin.setSessionQuarantine('sess-1', true, OPERATOR, 'odd');
    expect(recorded.map((e) => [e.type, e.tenant, e.payload])).toEqual([
      ['admin.kill_switch', '*', { engaged: true, scope: 'global', reason: 'incident' }],
      ['admin.lockdown', 'acme', { engaged: true, reason: 'breach' }],
      ['admin.quarantine', '*', { engaged: true, session: 'sess-1', reason: 'odd' }],
    ]);
    expect(recorded.every((e) => e.actor === OPERATOR)).toBe(true);
  });

  it.each(['fail', 'hang', 'garbage'] as const)(
    'ledger %s → ERR_LEDGER_UNAVAILABLE and the state is unchanged',
    async (mode) => {
      const { ledger, state, admin } = setup();
      ledger.mode = mode;
      expect(await admin.setTenantLockdown('acme', true, OPERATOR, 'x')).toMatchObject({
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect((await state.snapshot()).locked_tenants).toEqual([]);
    },
  );
});
