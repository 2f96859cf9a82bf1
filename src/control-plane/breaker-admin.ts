/**
 * Operator reset of the circuit breakers (OE-INV-021, OE-INV-025): closes the breaker of one
 * principal (an agent session, or `client:NAME` for a client's sessionless calls) or clears one
 * tenant's rate and spend counts. The reset is ledgered first (`admin.breaker_reset`) and applied
 * only after the ledger confirmed it, like every other incident-response action; a failed write
 * changes nothing. A reset does not lift a quarantine: that stays an explicit `admin.quarantine`.
 */
import { deny, isDeny } from '../kernel/index.js';
import type { Clock, Deny, JsonObject } from '../kernel/index.js';
import type { BreakerName, CircuitBreakers } from './breakers.js';
import type { AdminResult } from './governance-admin.js';
import { adminRequestId, appendConfirmed, GLOBAL_TENANT } from './ledger-port.js';
import type { Actor, LedgerAppender } from './ledger-port.js';

/** What to reset: a session, a client's sessionless calls, or a tenant. */
export type BreakerResetScope =
  | { readonly scope: 'session'; readonly session: string }
  | { readonly scope: 'client'; readonly client: string }
  | { readonly scope: 'tenant'; readonly tenant: string };

/** A confirmed reset: the ledger entry and the breaker that was open (null: none was). */
export type BreakerResetResult =
  (AdminResult & { readonly outcome: 'ok'; readonly breaker: BreakerName | null }) | Deny;

/** The breaker key a principal form maps to: the session id, or `client:NAME` without a session. */
export const CLIENT_PRINCIPAL_PREFIX = 'client:';

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 256;

/**
 * Resets breakers for `target`: ledgers `admin.breaker_reset` (`breaker`, `scope`, `client`,
 * `session`, `reason`), then applies. Denies `ERR_LEDGER_UNAVAILABLE` when the ledger does not
 * confirm (nothing reset); throws `TypeError` for a malformed target (a caller error).
 */
export async function resetBreaker(
  deps: {
    readonly ledger: LedgerAppender;
    readonly breakers: CircuitBreakers;
    readonly now: Clock;
    readonly ledgerTimeoutMs: number;
  },
  target: BreakerResetScope,
  actor: Actor,
  reason: string,
): Promise<BreakerResetResult> {
  const at = deps.now();
  let key: string | null = null;
  let tenant = GLOBAL_TENANT;
  if (target.scope === 'session') {
    if (!isName(target.session) || target.session.startsWith(CLIENT_PRINCIPAL_PREFIX))
      throw new TypeError('session must be a session id');
    key = target.session;
  } else if (target.scope === 'client') {
    if (!isName(target.client)) throw new TypeError('client must be a client name');
    key = `${CLIENT_PRINCIPAL_PREFIX}${target.client}`;
  } else {
    if (!isName(target.tenant)) throw new TypeError('tenant must be a tenant name');
    tenant = target.tenant;
  }
  let breaker: BreakerName | null = null;
  try {
    breaker = key === null ? null : await deps.breakers.openBreaker(key, at);
  } catch {
    return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the breaker state did not answer');
  }
  const payload: JsonObject = {
    breaker,
    scope: target.scope,
    client: target.scope === 'client' ? target.client : null,
    session: target.scope === 'session' ? target.session : null,
    reason,
  };
  const id = adminRequestId('admin.breaker_reset', tenant, payload, at);
  const ref = await appendConfirmed(
    deps.ledger,
    { type: 'admin.breaker_reset', trace_id: id, request_id: id, tenant, actor, payload },
    deps.ledgerTimeoutMs,
  );
  if (isDeny(ref)) return ref;
  try {
    await deps.breakers.reset(key === null ? { tenant } : { principal: key });
  } catch {
    return deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the breaker reset was recorded but not applied');
  }
  return { outcome: 'ok', ledger: ref, breaker };
}
