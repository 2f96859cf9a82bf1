/**
 * PostgreSQL {@link GovernanceState} (distributed deployment, SPEC §1): the kill switch, tenant
 * lockdowns, session quarantines and taints live in the shared database, and every `check` reads
 * them there (no cache), so a change made through any replica holds on every replica's next
 * decision (OE-INV-025, SPEC §7 scenario 15).
 */
import {
  assertGovernanceChange,
  type GovernanceChange,
  type GovernanceCheck,
  type GovernanceSnapshot,
  type GovernanceState,
} from '../../control-plane/index.js';
import type { PostgresPool } from './pool.js';
import { rowBool, rowText } from './rows.js';

/** A {@link GovernanceState} over PostgreSQL, with `close()`. */
export interface PostgresGovernanceState extends GovernanceState {
  /** Later calls reject; waits for none and does NOT end the shared pool (its opener does). */
  close(): Promise<void>;
}

// $1 tenant, $2 session (or null), $3 taint key (or null). One statement, one snapshot.
const CHECK = `SELECT
  (SELECT engaged FROM governance_kill_switch WHERE id = 1) AS kill_switch,
  EXISTS (SELECT 1 FROM governance_tenant_lockdown WHERE tenant = $1::text) AS tenant_locked,
  EXISTS (SELECT 1 FROM governance_session_quarantine WHERE session = $2::text) AS session_quarantined,
  EXISTS (SELECT 1 FROM governance_session_taint WHERE session = $3::text) AS session_tainted`;

const SNAPSHOT = `SELECT
  (SELECT engaged FROM governance_kill_switch WHERE id = 1) AS kill_switch,
  ARRAY(SELECT tenant FROM governance_tenant_lockdown) AS locked_tenants,
  ARRAY(SELECT session FROM governance_session_quarantine) AS quarantined_sessions`;

const SET_KILL = `INSERT INTO governance_kill_switch (id, engaged) VALUES (1, $1::boolean)
  ON CONFLICT (id) DO UPDATE SET engaged = EXCLUDED.engaged`;

/** The statement that applies `change` and its parameter. */
function statementFor(change: GovernanceChange): readonly [string, unknown] {
  switch (change.kind) {
    case 'kill_switch':
      return [SET_KILL, change.on];
    case 'lockdown':
      return change.on
        ? [
            'INSERT INTO governance_tenant_lockdown (tenant) VALUES ($1::text) ON CONFLICT DO NOTHING',
            change.tenant,
          ]
        : ['DELETE FROM governance_tenant_lockdown WHERE tenant = $1::text', change.tenant];
    case 'quarantine':
      return change.on
        ? [
            'INSERT INTO governance_session_quarantine (session) VALUES ($1::text) ON CONFLICT DO NOTHING',
            change.session,
          ]
        : ['DELETE FROM governance_session_quarantine WHERE session = $1::text', change.session];
    case 'taint':
      return change.on
        ? [
            'INSERT INTO governance_session_taint (session) VALUES ($1::text) ON CONFLICT DO NOTHING',
            change.session,
          ]
        : ['DELETE FROM governance_session_taint WHERE session = $1::text', change.session];
  }
}

/** The single row of a statement (database row: anything else rejects). */
function onlyRow(rows: readonly unknown[]): Record<string, unknown> {
  const row = rows.length === 1 ? rows[0] : undefined;
  if (typeof row !== 'object' || row === null) throw new TypeError('governance state returned no row');
  return row as Record<string, unknown>;
}

/** A missing kill-switch row reads as engaged: an unreadable state never reads as "all clear". */
function killSwitch(v: unknown): boolean {
  return v === null ? true : rowBool(v, 'governance_kill_switch.engaged');
}

function textList(v: unknown, column: string): string[] {
  if (!Array.isArray(v)) throw new TypeError(`column ${column} is not an array`);
  return v.map((x) => rowText(x, column)).sort();
}

/**
 * A {@link GovernanceState} over the `governance_*` tables of `db` (schema migration v1).
 * `check` is one statement (one round trip, one snapshot) and rejects when the database is
 * unreachable, slow past the pool's statement deadline or answers an unexpected row: the
 * Control Plane then denies (OE-INV-025, FC-INV-4). `apply` rejects with `TypeError` for a
 * malformed change.
 */
export function createPostgresGovernanceState(db: PostgresPool): PostgresGovernanceState {
  let closed = false;
  const open = (): void => {
    if (closed) throw new Error('governance state closed');
  };
  return Object.freeze({
    async check(
      tenant: string,
      session: string | null,
      taintKey: string | null = session,
    ): Promise<GovernanceCheck> {
      open();
      const r = onlyRow((await db.pool.query(CHECK, [tenant, session, taintKey])).rows);
      return {
        kill_switch: killSwitch(r.kill_switch),
        tenant_locked: rowBool(r.tenant_locked, 'tenant_locked'),
        session_quarantined: rowBool(r.session_quarantined, 'session_quarantined'),
        session_tainted: rowBool(r.session_tainted, 'session_tainted'),
      };
    },
    async apply(change: GovernanceChange): Promise<void> {
      open();
      assertGovernanceChange(change);
      const [sql, param] = statementFor(change);
      await db.pool.query(sql, [param]);
    },
    async snapshot(): Promise<GovernanceSnapshot> {
      open();
      const r = onlyRow((await db.pool.query(SNAPSHOT)).rows);
      return {
        kill_switch: killSwitch(r.kill_switch),
        locked_tenants: textList(r.locked_tenants, 'governance_tenant_lockdown.tenant'),
        quarantined_sessions: textList(r.quarantined_sessions, 'governance_session_quarantine.session'),
      };
    },
    close(): Promise<void> {
      closed = true;
      return Promise.resolve();
    },
  });
}
