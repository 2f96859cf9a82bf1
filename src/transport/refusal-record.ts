/**
 * The ledger record of refusals at a mutual-TLS listener (FC-INV-5, FC-INV-6). A refusal at the
 * TLS handshake carries no request id, and anyone can provoke one: each reason is recorded as a
 * `transport.refused` entry at most once per window, the next entry counting the refusals of that
 * reason left out in between (`suppressed`). Every refusal is counted by the listener itself.
 */
import type { JsonObject } from '../kernel/index.js';
import type { Refusal, RefusalReason } from './peer.js';

/** The entry appended for a refusal. */
export interface RefusalEntry {
  readonly type: 'transport.refused';
  readonly trace_id: '';
  readonly request_id: '';
  readonly tenant: '';
  readonly actor: { readonly id: string; readonly role: string };
  readonly payload: JsonObject;
}

/** Options of {@link createRefusalRecorder}. */
export interface RefusalRecorderOptions {
  /** Appends the entry (the role's ledger port); a failure is swallowed (the refusal stands). */
  readonly append: (entry: RefusalEntry) => Promise<unknown>;
  /** The listener's name in the record (e.g. `execution`). */
  readonly listener: string;
  /** The actor of the entries: the listening role's identity. */
  readonly actor: { readonly id: string; readonly role: string };
  readonly now: () => number;
  /** At most one entry per reason per window (ms); default 10 000. */
  readonly windowMs?: number;
}

/** Returns the `onRefused` hook of a listener that records refusals, rate-limited per reason. */
export function createRefusalRecorder(options: RefusalRecorderOptions): (r: Refusal) => void {
  const windowMs = options.windowMs ?? 10_000;
  const last = new Map<RefusalReason, number>();
  const suppressed = new Map<RefusalReason, number>();
  return (r) => {
    const now = options.now();
    const at = last.get(r.reason);
    if (at !== undefined && now - at < windowMs) {
      suppressed.set(r.reason, (suppressed.get(r.reason) ?? 0) + 1);
      return;
    }
    last.set(r.reason, now);
    const left = suppressed.get(r.reason) ?? 0;
    suppressed.delete(r.reason);
    const payload: JsonObject = {
      listener: options.listener,
      reason: r.reason,
      suppressed: left,
      ...Object.fromEntries(
        (['detail', 'peer_role', 'serial', 'fingerprint', 'address'] as const)
          .filter((k) => r[k] !== undefined)
          .map((k) => [k, r[k] as string]),
      ),
    };
    options
      .append({
        type: 'transport.refused',
        trace_id: '',
        request_id: '',
        tenant: '',
        actor: options.actor,
        payload,
      })
      .catch(() => undefined);
  };
}
