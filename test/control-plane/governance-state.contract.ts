/**
 * The one contract suite every GovernanceState backend must pass (memory, SQLite, PostgreSQL):
 * each change applied and lifted in its scope, malformed changes refused, and a change made
 * through one handle seen by every other handle on its next check (OE-INV-025).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { GovernanceState } from '../../src/control-plane/index.js';

/** A backend under test: every `open` is a new handle on the same backing state. */
export interface GovernanceStateBackend {
  /** Opens a new handle (connection, replica) on the same state. */
  open(): Promise<GovernanceState>;
  /** Closes every handle and drops the backing state after a test. */
  destroy(): Promise<void>;
}

/** Registers the contract suite for one backend. `factory` is called once per test. */
export function runGovernanceStateContract(
  name: string,
  factory: () => Promise<GovernanceStateBackend>,
): void {
  describe(`GovernanceState contract: ${name}`, () => {
    let backend: GovernanceStateBackend | undefined;
    afterEach(async () => {
      await backend?.destroy();
      backend = undefined;
    });
    const make = async (): Promise<GovernanceState> => {
      backend = await factory();
      return backend.open();
    };

    it('starts all clear', async () => {
      const s = await make();
      expect(await s.check('acme', 'sess-1')).toEqual({
        kill_switch: false,
        tenant_locked: false,
        session_quarantined: false,
        session_tainted: false,
      });
      expect(await s.snapshot()).toEqual({
        kill_switch: false,
        locked_tenants: [],
        quarantined_sessions: [],
      });
    });

    it('applies and lifts each change, scoped to its tenant or session', async () => {
      const s = await make();
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

    it('lists locked tenants and quarantined sessions sorted, each once', async () => {
      const s = await make();
      for (const tenant of ['zeta', 'acme', 'mid', 'acme'])
        await s.apply({ kind: 'lockdown', tenant, on: true });
      for (const session of ['s-2', 's-1', 's-2']) await s.apply({ kind: 'quarantine', session, on: true });
      expect(await s.snapshot()).toEqual({
        kill_switch: false,
        locked_tenants: ['acme', 'mid', 'zeta'],
        quarantined_sessions: ['s-1', 's-2'],
      });
    });

    it('OE-INV-025: a change made through one handle holds on every other handle at its next check', async () => {
      const a = await make();
      const b = await backend!.open();
      expect((await b.check('acme', 'sess-1')).kill_switch).toBe(false);
      await a.apply({ kind: 'kill_switch', on: true });
      await a.apply({ kind: 'lockdown', tenant: 'acme', on: true });
      await a.apply({ kind: 'quarantine', session: 'sess-1', on: true });
      await a.apply({ kind: 'taint', session: 'sess-1', on: true });
      expect(await b.check('acme', 'sess-1')).toEqual({
        kill_switch: true,
        tenant_locked: true,
        session_quarantined: true,
        session_tainted: true,
      });
      await b.apply({ kind: 'kill_switch', on: false });
      await b.apply({ kind: 'lockdown', tenant: 'acme', on: false });
      await b.apply({ kind: 'quarantine', session: 'sess-1', on: false });
      await b.apply({ kind: 'taint', session: 'sess-1', on: false });
      expect(await a.check('acme', 'sess-1')).toEqual({
        kill_switch: false,
        tenant_locked: false,
        session_quarantined: false,
        session_tainted: false,
      });
    });

    it('refuses malformed changes', async () => {
      const s = await make();
      await expect(s.apply({ kind: 'lockdown', tenant: '', on: true })).rejects.toThrow(TypeError);
      await expect(s.apply({ kind: 'kill_switch', on: 'yes' as never })).rejects.toThrow(TypeError);
      await expect(s.apply({ kind: 'taint', session: 'x'.repeat(513), on: true })).rejects.toThrow(TypeError);
      expect(await s.snapshot()).toEqual({
        kill_switch: false,
        locked_tenants: [],
        quarantined_sessions: [],
      });
    });
  });
}
