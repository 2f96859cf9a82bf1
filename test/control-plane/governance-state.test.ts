/** One contract suite for every GovernanceState backend, plus the admin functions (OE-INV-025). */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createGovernanceAdmin,
  createMemoryGovernanceState,
  createSqliteGovernanceState,
  type GovernanceState,
  type LedgerAppend,
} from '../../src/control-plane/index.js';
import { faultyLedger, OPERATOR, settableClock, tempDir } from './support.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const backends: [string, () => GovernanceState][] = [
  ['memory', () => createMemoryGovernanceState()],
  [
    'sqlite',
    () => {
      const { dir, cleanup } = tempDir();
      const s = createSqliteGovernanceState(join(dir, 'state.db'));
      cleanups.push(() => {
        s.close();
        cleanup();
      });
      return s;
    },
  ],
];

describe.each(backends)('GovernanceState contract: %s', (_name, make) => {
  it('starts all clear', async () => {
    const s = make();
    expect(await s.check('acme', 'sess-1')).toEqual({
      kill_switch: false,
      tenant_locked: false,
      session_quarantined: false,
      session_tainted: false,
    });
    expect(await s.snapshot()).toEqual({ kill_switch: false, locked_tenants: [], quarantined_sessions: [] });
  });

  it('applies and lifts each change, scoped to its tenant or session', async () => {
    const s = make();
    await s.apply({ kind: 'lockdown', tenant: 'acme', on: true });
    await s.apply({ kind: 'quarantine', session: 'sess-1', on: true });
    expect(await s.check('acme', 'sess-1')).toEqual({
      kill_switch: false,
      tenant_locked: true,
      session_quarantined: true,
      session_tainted: false,
    });
    expect(await s.check('other', 'sess-2')).toEqual({
      kill_switch: false,
      tenant_locked: false,
      session_quarantined: false,
      session_tainted: false,
    });
    expect(await s.check('other', null)).toMatchObject({
      session_quarantined: false,
      session_tainted: false,
    });
    await s.apply({ kind: 'taint', session: 'sess-2', on: true });
    expect(await s.check('other', 'sess-2')).toMatchObject({
      session_quarantined: false,
      session_tainted: true,
    });
    expect(await s.check('other', 'sess-1')).toMatchObject({ session_tainted: false });
    // A call without a session carries its client's taint, read in the same check.
    await s.apply({ kind: 'taint', session: 'client:bot', on: true });
    expect(await s.check('other', null, 'client:bot')).toMatchObject({
      session_quarantined: false,
      session_tainted: true,
    });
    expect(await s.check('other', null, 'client:other')).toMatchObject({ session_tainted: false });
    await s.apply({ kind: 'kill_switch', on: true });
    expect((await s.check('other', null)).kill_switch).toBe(true);
    await s.apply({ kind: 'lockdown', tenant: 'acme', on: false });
    await s.apply({ kind: 'kill_switch', on: false });
    expect(await s.snapshot()).toEqual({
      kill_switch: false,
      locked_tenants: [],
      quarantined_sessions: ['sess-1'],
    });
  });

  it('refuses malformed changes', async () => {
    const s = make();
    await expect(s.apply({ kind: 'lockdown', tenant: '', on: true })).rejects.toThrow(TypeError);
    await expect(s.apply({ kind: 'kill_switch', on: 'yes' as never })).rejects.toThrow(TypeError);
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
