/**
 * The part of the ledger the Control Plane writes to, and the one helper that writes with a
 * deadline. The ledger acknowledges an append only once it is durable; anything else (rejection,
 * timeout, malformed acknowledgement) is `ERR_LEDGER_UNAVAILABLE` (GEI "If the ledger write
 * fails, the tool does not run", L7 degraded mode: deny, SPEC §7 scenario 9).
 */
import { deny, sha256Hex, canonicalize, isDeny } from '../kernel/index.js';
import type { Deny, DurableWrites, JsonObject } from '../kernel/index.js';
import { withDeadline } from './deadline.js';

/** Entry types the Control Plane appends (a subset of the ledger's types, SPEC §4). */
export type ControlPlaneEntryType =
  | 'decision'
  | 'denial'
  | 'envelope.issued'
  | 'admin.policy_activated'
  | 'admin.kill_switch'
  | 'admin.lockdown'
  | 'admin.quarantine'
  | 'admin.breaker_reset'
  | 'session.tainted'
  | 'admin.key_rotated'
  | 'admin.key_revoked'
  | 'admin.client_registered'
  | 'approval.requested'
  | 'approval.added'
  | 'approval.rejected'
  | 'approval.finalized'
  | 'approval.flagged'
  | 'break_glass.used'
  | 'review.opened'
  | 'review.closed';

/** Who caused an entry. */
export interface Actor {
  readonly id: string;
  readonly role: string;
}

/** One append, as the ledger's `append` takes it. */
export interface LedgerAppend {
  readonly type: ControlPlaneEntryType;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly actor: Actor;
  readonly payload: JsonObject;
}

/** A confirmed entry: its index and hash (the envelope's `ledger` claim, L7 Boundary B). */
export interface LedgerRef {
  readonly index: number;
  readonly entry_hash: string;
}

/** The ledger as the Control Plane needs it: a durable, acknowledged append. */
export interface LedgerAppender {
  /**
   * With `writes`, may resolve before the commit, which it registers there (`durability.ts`).
   * With `ifOpen`, the entry lands only while the attempt whose `gateway.accepted` is at that
   * index is open; otherwise it rejects `ERR_LEDGER_REQUEST_CLOSED` (the ledger's `AppendOptions`).
   */
  append(
    entry: LedgerAppend,
    writes?: DurableWrites,
    options?: { readonly ifOpen?: number },
  ): Promise<LedgerRef>;
  /**
   * Appends `entry`, then the entry `next` builds from its index and hash, in the same commit: both
   * durable or neither (the ledger's `appendThen`). The continued entry's own refusal (its attempt
   * closed, a malformed entry) is in `next`; undefined when `build` returned undefined. Where the
   * ledger cannot (a ledger in another process), the port has no such method and the Control Plane
   * appends the two one after the other.
   */
  appendThen?(
    entry: LedgerAppend,
    next: LedgerContinuation,
    writes?: DurableWrites,
  ): Promise<{ readonly first: LedgerRef; readonly next: LedgerRef | Error | undefined }>;
}

/** The entry {@link LedgerAppender.appendThen} appends after the first, built from its index and hash. */
export interface LedgerContinuation {
  readonly type: ControlPlaneEntryType;
  /** Appended only while the attempt whose `gateway.accepted` is at this index is open. */
  readonly ifOpen?: number;
  /**
   * Called synchronously when the first entry is sealed, again each time it is sealed again (only
   * the last call's entry is stored). Never throws: undefined appends nothing after the first.
   */
  build(first: LedgerRef): LedgerAppend | undefined;
}

/** The tenant recorded on entries that concern the whole deployment (kill switch, keys, policy). */
export const GLOBAL_TENANT = '*';

/** The actor the Control Plane records for its own entries (decisions, envelopes, breakers). */
export const CONTROL_PLANE_ACTOR: Actor = Object.freeze({ id: 'control-plane', role: 'control-plane' });

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Appends `entry` and waits for the ledger's confirmation for at most `timeoutMs`. Resolves to
 * the confirmed {@link LedgerRef}, or to a deny `ERR_LEDGER_UNAVAILABLE` on rejection, timeout or
 * an acknowledgement that is not `{index, entry_hash}`. Never rejects. (GEI, SPEC §2 step 4)
 */
export async function appendConfirmed(
  ledger: LedgerAppender,
  entry: LedgerAppend,
  timeoutMs: number,
  writes?: DurableWrites,
  ifOpen?: number,
): Promise<LedgerRef | Deny> {
  const settled = await withDeadline(
    () => ledger.append(entry, writes, ifOpen === undefined ? undefined : { ifOpen }),
    timeoutMs,
  );
  if (settled.status === 'ok' && isLedgerRef(settled.value)) {
    return Object.freeze({ index: settled.value.index, entry_hash: settled.value.entry_hash });
  }
  // A conditional append refused: the attempt was closed (recorded abandoned) meanwhile.
  if (
    ifOpen !== undefined &&
    settled.status === 'error' &&
    (settled.error as { code?: unknown } | undefined)?.code === 'ERR_LEDGER_REQUEST_CLOSED'
  )
    return deny('ERR_LEDGER_REQUEST_CLOSED', 'the request was closed before its envelope was issued');
  return deny('ERR_LEDGER_UNAVAILABLE', 'the ledger did not confirm the write');
}

/**
 * {@link LedgerAppender.appendThen} with a deadline, as {@link appendConfirmed}: resolves to both
 * confirmed references, or to a deny `ERR_LEDGER_UNAVAILABLE` when the first is not confirmed.
 * The continued entry's refusal becomes a deny: `ERR_LEDGER_REQUEST_CLOSED` when its attempt was
 * closed, else `ERR_LEDGER_UNAVAILABLE`. Never rejects. (GEI, SPEC §2 steps 4–5)
 */
export async function appendThenConfirmed(
  ledger: LedgerAppender,
  entry: LedgerAppend,
  next: LedgerContinuation,
  timeoutMs: number,
  writes?: DurableWrites,
): Promise<{ readonly first: LedgerRef; readonly next: LedgerRef | Deny | undefined } | Deny> {
  const settled = await withDeadline(
    () =>
      ledger.appendThen === undefined
        ? Promise.reject(new TypeError('the ledger cannot append two entries in one commit'))
        : ledger.appendThen(entry, next, writes),
    timeoutMs,
  );
  if (settled.status !== 'ok' || typeof settled.value !== 'object' || settled.value === null)
    return deny('ERR_LEDGER_UNAVAILABLE', 'the ledger did not confirm the write');
  const { first, next: continued } = settled.value;
  if (!isLedgerRef(first)) return deny('ERR_LEDGER_UNAVAILABLE', 'the ledger did not confirm the write');
  const ref = Object.freeze({ index: first.index, entry_hash: first.entry_hash });
  if (continued === undefined) return { first: ref, next: undefined };
  if (isLedgerRef(continued))
    return {
      first: ref,
      next: Object.freeze({ index: continued.index, entry_hash: continued.entry_hash }),
    };
  if (
    next.ifOpen !== undefined &&
    continued instanceof Error &&
    (continued as { code?: unknown }).code === 'ERR_LEDGER_REQUEST_CLOSED'
  )
    return {
      first: ref,
      next: deny('ERR_LEDGER_REQUEST_CLOSED', 'the request was closed before its envelope was issued'),
    };
  return { first: ref, next: deny('ERR_LEDGER_UNAVAILABLE', 'the ledger did not confirm the write') };
}

/** True when `ref` is a confirmed {@link LedgerRef}. */
export function isLedgerRef(ref: unknown): ref is LedgerRef {
  if (typeof ref !== 'object' || ref === null || isDeny(ref)) return false;
  const r = ref as Record<string, unknown>;
  return (
    Number.isSafeInteger(r.index) &&
    (r.index as number) >= 0 &&
    typeof r.entry_hash === 'string' &&
    HEX64.test(r.entry_hash)
  );
}

/**
 * Deterministic `request_id`/`trace_id` for an admin action that no request carries: a hash of
 * the action's type, payload, tenant and time, prefixed `admin-`. (GEI Determinism)
 */
export function adminRequestId(
  type: ControlPlaneEntryType,
  tenant: string,
  payload: JsonObject,
  at: number,
): string {
  return `admin-${sha256Hex(canonicalize({ type, tenant, payload, at })).slice(0, 32)}`;
}
