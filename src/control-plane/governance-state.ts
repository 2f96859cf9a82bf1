/**
 * Incident-response state (SPEC §6, OE-INV-025): the kill switch, locked-down tenants and
 * quarantined agent sessions. The Control Plane reads it first on every decision; a read that
 * fails or times out is a deny (fail closed). Changes go through `createGovernanceAdmin`, which
 * ledgers each change before applying it.
 */

/** What the Control Plane needs to know about one request's scope. */
export interface GovernanceCheck {
  readonly kill_switch: boolean;
  readonly tenant_locked: boolean;
  readonly session_quarantined: boolean;
  /** The session has received output from a tool marked `untrusted_output` (OE-INV-013). */
  readonly session_tainted: boolean;
}

/** The whole state, for operators and the console. Lists are sorted. */
export interface GovernanceSnapshot {
  readonly kill_switch: boolean;
  readonly locked_tenants: readonly string[];
  readonly quarantined_sessions: readonly string[];
}

/** One change of the governance state. `on: false` lifts it. */
export type GovernanceChange =
  | { readonly kind: 'kill_switch'; readonly on: boolean }
  | { readonly kind: 'lockdown'; readonly tenant: string; readonly on: boolean }
  | { readonly kind: 'quarantine'; readonly session: string; readonly on: boolean }
  | { readonly kind: 'taint'; readonly session: string; readonly on: boolean };

/**
 * The governance state store. Implementations: {@link createMemoryGovernanceState},
 * `createSqliteGovernanceState` and `createPostgresGovernanceState` (storage/postgres). Every
 * method may reject; callers treat a rejection as a deny.
 * (OE-INV-025, SPEC §7 scenario 15)
 */
export interface GovernanceState {
  /**
   * Reads the kill switch, the tenant's lockdown, the session's quarantine and the taint of
   * `taintKey` (default: the session) together.
   */
  check(tenant: string, session: string | null, taintKey?: string | null): Promise<GovernanceCheck>;
  /** Applies a change durably. Only the admin functions call it, after ledgering the change. */
  apply(change: GovernanceChange): Promise<void>;
  /** The whole state. */
  snapshot(): Promise<GovernanceSnapshot>;
}

/** Throws `TypeError` for a change that is not well formed (a caller error). */
export function assertGovernanceChange(change: GovernanceChange): void {
  if (typeof change.on !== 'boolean') throw new TypeError('change.on must be a boolean');
  if (change.kind === 'lockdown' && !isName(change.tenant))
    throw new TypeError('tenant must be a non-empty string');
  if ((change.kind === 'quarantine' || change.kind === 'taint') && !isName(change.session))
    throw new TypeError('session must be a non-empty string');
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 512;
}

/** An in-memory {@link GovernanceState}, for tests and ephemeral embedded runs. */
export function createMemoryGovernanceState(): GovernanceState {
  let killSwitch = false;
  const tenants = new Set<string>();
  const sessions = new Set<string>();
  const tainted = new Set<string>();
  return Object.freeze({
    check(
      tenant: string,
      session: string | null,
      taintKey: string | null = session,
    ): Promise<GovernanceCheck> {
      return Promise.resolve({
        kill_switch: killSwitch,
        tenant_locked: tenants.has(tenant),
        session_quarantined: session !== null && sessions.has(session),
        session_tainted: taintKey !== null && tainted.has(taintKey),
      });
    },
    apply(change: GovernanceChange): Promise<void> {
      try {
        assertGovernanceChange(change);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new TypeError('malformed change'));
      }
      if (change.kind === 'kill_switch') killSwitch = change.on;
      else if (change.kind === 'lockdown') toggle(tenants, change.tenant, change.on);
      else if (change.kind === 'taint') toggle(tainted, change.session, change.on);
      else toggle(sessions, change.session, change.on);
      return Promise.resolve();
    },
    snapshot(): Promise<GovernanceSnapshot> {
      return Promise.resolve({
        kill_switch: killSwitch,
        locked_tenants: [...tenants].sort(),
        quarantined_sessions: [...sessions].sort(),
      });
    },
  });
}

function toggle(set: Set<string>, name: string, on: boolean): void {
  if (on) set.add(name);
  else set.delete(name);
}
