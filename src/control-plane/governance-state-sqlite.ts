/**
 * SQLite {@link GovernanceState} (embedded deployment, SPEC §1): one small database file, every
 * write committed with `synchronous=FULL` before it returns, every read straight from the file so
 * several processes sharing it see one state (OE-INV-025).
 */
import Database from 'better-sqlite3';
import { openStoreConnection, type SchemaMigration, type SqliteCommitUnit } from '../kernel/index.js';
import {
  assertGovernanceChange,
  type GovernanceChange,
  type GovernanceCheck,
  type GovernanceSnapshot,
  type GovernanceState,
} from './governance-state.js';

/** A {@link GovernanceState} backed by a SQLite file, with `close()`. */
export interface SqliteGovernanceState extends GovernanceState {
  /** Closes the database; later calls reject. */
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kill_switch (id INTEGER PRIMARY KEY CHECK (id = 1), engaged INTEGER NOT NULL CHECK (engaged IN (0, 1)));
INSERT OR IGNORE INTO kill_switch (id, engaged) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS tenant_lockdown (tenant TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_quarantine (session TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_taint (session TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
`;

/** Schema versions of the governance state (store `governance`; append-only): 1 is the pre-versioning schema. */
const MIGRATIONS: readonly SchemaMigration[] = [
  { version: 1, name: 'kill switch, tenant lockdowns, session quarantines and taints', up: SCHEMA },
];

/**
 * Opens (creating if needed) the governance state at `path` (`':memory:'` for a private
 * in-memory database). A missing or malformed kill-switch row reads as engaged: an unreadable
 * state never reads as "all clear"; a file recording a newer schema than this build throws at
 * open (`SchemaVersionError`). (OE-INV-025, FC-INV-4)
 */
export function createSqliteGovernanceState(
  path: string,
  options: {
    /**
     * The deployment's shared connection (`sqlite-commit.ts`): a change commits on its own
     * before `apply` resolves (`writeNow`), so no check ever reads one that is not durable.
     */
    readonly unit?: SqliteCommitUnit;
  } = {},
): SqliteGovernanceState {
  const unit = options.unit;
  const db = openStoreConnection(() => new Database(path), {
    unit,
    store: 'governance',
    migrations: MIGRATIONS,
  });

  const readKill = db.prepare<[], { engaged: unknown }>('SELECT engaged FROM kill_switch WHERE id = 1');
  const readTenant = db.prepare<[string], { one: number }>(
    'SELECT 1 AS one FROM tenant_lockdown WHERE tenant = ?',
  );
  const readSession = db.prepare<[string], { one: number }>(
    'SELECT 1 AS one FROM session_quarantine WHERE session = ?',
  );
  const setKill = db.prepare<[number]>('UPDATE kill_switch SET engaged = ? WHERE id = 1');
  const lockTenant = db.prepare<[string]>('INSERT OR IGNORE INTO tenant_lockdown (tenant) VALUES (?)');
  const unlockTenant = db.prepare<[string]>('DELETE FROM tenant_lockdown WHERE tenant = ?');
  const quarantine = db.prepare<[string]>('INSERT OR IGNORE INTO session_quarantine (session) VALUES (?)');
  const release = db.prepare<[string]>('DELETE FROM session_quarantine WHERE session = ?');
  const readTaint = db.prepare<[string], { one: number }>(
    'SELECT 1 AS one FROM session_taint WHERE session = ?',
  );
  const taint = db.prepare<[string]>('INSERT OR IGNORE INTO session_taint (session) VALUES (?)');
  const untaint = db.prepare<[string]>('DELETE FROM session_taint WHERE session = ?');
  const listTenants = db.prepare<[], { tenant: string }>(
    'SELECT tenant FROM tenant_lockdown ORDER BY tenant',
  );
  const listSessions = db.prepare<[], { session: string }>(
    'SELECT session FROM session_quarantine ORDER BY session',
  );

  // Database row: anything but exactly 0 reads as engaged.
  const killEngaged = (): boolean => readKill.get()?.engaged !== 0;

  const check = db.transaction(
    (tenant: string, session: string | null, taintKey: string | null): GovernanceCheck => ({
      kill_switch: killEngaged(),
      tenant_locked: readTenant.get(tenant) !== undefined,
      session_quarantined: session !== null && readSession.get(session) !== undefined,
      session_tainted: taintKey !== null && readTaint.get(taintKey) !== undefined,
    }),
  );
  const snapshot = db.transaction((): GovernanceSnapshot => ({
    kill_switch: killEngaged(),
    locked_tenants: listTenants.all().map((r) => r.tenant),
    quarantined_sessions: listSessions.all().map((r) => r.session),
  }));

  return Object.freeze({
    check(
      tenant: string,
      session: string | null,
      taintKey: string | null = session,
    ): Promise<GovernanceCheck> {
      return attempt(() => check(tenant, session, taintKey));
    },
    apply(change: GovernanceChange): Promise<void> {
      const write = (): void => {
        assertGovernanceChange(change);
        if (change.kind === 'kill_switch') setKill.run(change.on ? 1 : 0);
        else if (change.kind === 'lockdown') (change.on ? lockTenant : unlockTenant).run(change.tenant);
        else if (change.kind === 'taint') (change.on ? taint : untaint).run(change.session);
        else (change.on ? quarantine : release).run(change.session);
      };
      return attempt(() => (unit === undefined ? write() : unit.writeNow(write)));
    },
    snapshot(): Promise<GovernanceSnapshot> {
      return attempt(() => snapshot());
    },
    close(): void {
      if (unit === undefined) db.close();
    },
  });
}

function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error('governance state failure'));
  }
}
