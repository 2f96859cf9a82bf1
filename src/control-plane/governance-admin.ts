/**
 * Incident-response actions (SPEC §6, OE-INV-025, scenario 15): the kill switch, tenant lockdown
 * and session quarantine. Each change is ledgered first (`admin.kill_switch`, `admin.lockdown`,
 * `admin.quarantine`) and applied only after the ledger confirmed it, so the state never holds a
 * change the evidence does not show. A failed ledger write leaves the state unchanged.
 */
import { deny, isDeny } from '../kernel/index.js';
import type { Clock, Deny, JsonObject } from '../kernel/index.js';
import { withDeadline } from './deadline.js';
import type { GovernanceChange, GovernanceState } from './governance-state.js';
import {
  adminRequestId,
  appendConfirmed,
  GLOBAL_TENANT,
  type Actor,
  type ControlPlaneEntryType,
  type LedgerAppender,
  type LedgerRef,
} from './ledger-port.js';

/** The result of an admin action: the confirmed ledger entry, or a deny. */
export type AdminResult = { readonly outcome: 'ok'; readonly ledger: LedgerRef } | Deny;

/** Links a breaker-triggered quarantine to the request that tripped it. */
export interface QuarantineContext {
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly client: string;
  readonly breaker: string;
}

/** What a taint is recorded with: the call that brought untrusted output into the session. */
export interface TaintContext {
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly client: string;
  readonly tool: string;
  readonly decision_id: string;
}

/** The admin functions over a {@link GovernanceState}. */
export interface GovernanceAdmin {
  /** Engages (`on`) or releases the kill switch: every decision then denies `ERR_KILL_SWITCH`. */
  setKillSwitch(on: boolean, actor: Actor, reason: string): Promise<AdminResult>;
  /** Locks down (`on`) or releases a tenant: its decisions deny `ERR_TENANT_LOCKDOWN`. */
  setTenantLockdown(tenant: string, on: boolean, actor: Actor, reason: string): Promise<AdminResult>;
  /** Quarantines (`on`) or releases a session: its decisions deny `ERR_SESSION_QUARANTINED`. */
  setSessionQuarantine(
    session: string,
    on: boolean,
    actor: Actor,
    reason: string,
    context?: QuarantineContext,
  ): Promise<AdminResult>;
  /**
   * Marks a session tainted (OE-INV-013): it received output from a tool marked
   * `untrusted_output`, so policy sees `context.tainted` on its later calls. Ledgered first.
   */
  taintSession(session: string, actor: Actor, context: TaintContext): Promise<AdminResult>;
}

/** Dependencies of {@link createGovernanceAdmin}. */
export interface GovernanceAdminDeps {
  readonly ledger: LedgerAppender;
  readonly state: GovernanceState;
  readonly now: Clock;
  readonly ledgerTimeoutMs: number;
  readonly stateTimeoutMs: number;
}

/**
 * Creates the admin functions. Each returns `ERR_LEDGER_UNAVAILABLE` when the ledger does not
 * confirm (state unchanged) and `ERR_CONTROL_PLANE_UNAVAILABLE` when the state store fails after
 * the ledger confirmed (the entry stands; retry the action). (OE-INV-025)
 */
export function createGovernanceAdmin(deps: GovernanceAdminDeps): GovernanceAdmin {
  const { ledger, state, now, ledgerTimeoutMs, stateTimeoutMs } = deps;

  async function change(
    type: ControlPlaneEntryType,
    tenant: string,
    actor: Actor,
    payload: JsonObject,
    applied: GovernanceChange,
    link?: { readonly trace_id: string; readonly request_id: string },
  ): Promise<AdminResult> {
    const id = adminRequestId(type, tenant, payload, now());
    const ref = await appendConfirmed(
      ledger,
      { type, trace_id: link?.trace_id ?? id, request_id: link?.request_id ?? id, tenant, actor, payload },
      ledgerTimeoutMs,
    );
    if (isDeny(ref)) return ref;
    const settled = await withDeadline(() => state.apply(applied), stateTimeoutMs);
    if (settled.status !== 'ok')
      return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the governance state did not apply the change');
    return { outcome: 'ok', ledger: ref };
  }

  return Object.freeze({
    setKillSwitch(on: boolean, actor: Actor, reason: string): Promise<AdminResult> {
      return change(
        'admin.kill_switch',
        GLOBAL_TENANT,
        actor,
        { engaged: on, scope: 'global', reason },
        { kind: 'kill_switch', on },
      );
    },
    setTenantLockdown(tenant: string, on: boolean, actor: Actor, reason: string): Promise<AdminResult> {
      return change(
        'admin.lockdown',
        tenant,
        actor,
        { engaged: on, reason },
        { kind: 'lockdown', tenant, on },
      );
    },
    setSessionQuarantine(
      session: string,
      on: boolean,
      actor: Actor,
      reason: string,
      context?: QuarantineContext,
    ): Promise<AdminResult> {
      const payload: JsonObject =
        context === undefined
          ? { engaged: on, session, reason }
          : { engaged: on, session, client: context.client, breaker: context.breaker, reason };
      return change(
        'admin.quarantine',
        context?.tenant ?? GLOBAL_TENANT,
        actor,
        payload,
        { kind: 'quarantine', session, on },
        context,
      );
    },
    taintSession(session: string, actor: Actor, context: TaintContext): Promise<AdminResult> {
      const payload: JsonObject = {
        session,
        client: context.client,
        tool: context.tool,
        decision_id: context.decision_id,
        reason: 'untrusted tool output',
      };
      return change(
        'session.tainted',
        context.tenant,
        actor,
        payload,
        { kind: 'taint', session, on: true },
        context,
      );
    },
  });
}
