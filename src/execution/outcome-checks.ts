/**
 * Parsers for what dependencies answer on the enforcement path. A dependency's answer is
 * untrusted input: anything other than the exact expected shape is treated as a failure of
 * that dependency (FC-INV-4, OE-INV-003).
 */
import { deny } from '../kernel/index.js';
import type { DenialCode, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import type { LedgerRef } from './ledger.js';

/**
 * True for the codes an adapter may answer with; any other code from an adapter becomes
 * `ERR_TOOL_FAILED`. The list is built per call, not held in a module-level constant, so that
 * mutation testing exercises it per test (a module-level value is fixed at the first import).
 */
export function isAdapterCode(code: unknown): code is DenialCode {
  const codes: readonly DenialCode[] = [
    'ERR_TOOL_FAILED',
    'ERR_TOOL_TIMEOUT',
    'ERR_TOOL_OUTPUT_LIMIT',
    'ERR_SANDBOX_UNAVAILABLE',
    'ERR_ADAPTER_UNAVAILABLE',
    'ERR_PARAMS_INVALID',
    'ERR_TOOL_DEFINITION_CHANGED',
    'ERR_EGRESS_DENIED',
    'ERR_EGRESS_LIMIT',
    'ERR_UPSTREAM_TLS',
    'ERR_UPSTREAM_TOKEN',
  ];
  return (codes as readonly unknown[]).includes(code);
}

/**
 * True for the codes whose adapter reason is evidence for the receipt: the egress proxy's
 * (the refused destination, or the limit) and an upstream's TLS or token failure (the
 * destination and which check failed). Those reasons are built by failclosed from its own
 * vocabulary and the checked destination, never from what an upstream said.
 */
export function hasEvidenceReason(code: DenialCode): boolean {
  return (
    code === 'ERR_EGRESS_DENIED' ||
    code === 'ERR_EGRESS_LIMIT' ||
    code === 'ERR_UPSTREAM_TLS' ||
    code === 'ERR_UPSTREAM_TOKEN'
  );
}

/** The ledger reference in an append answer, or `undefined` when it is malformed. */
export function parseLedgerRef(value: unknown): LedgerRef | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { index, entry_hash } = value as { index?: unknown; entry_hash?: unknown };
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) return undefined;
  if (typeof entry_hash !== 'string' || !/^[0-9a-f]{64}$/.test(entry_hash)) return undefined;
  return Object.freeze({ index, entry_hash });
}

/** An adapter's answer as `{ result }` or a deny with an adapter code. */
export function parseAdapterOutput(value: unknown): { readonly result: JsonValue } | Deny {
  if (typeof value !== 'object' || value === null) return deny('ERR_TOOL_FAILED', 'adapter answered garbage');
  const v = value as { outcome?: unknown; result?: unknown; code?: unknown; reason?: unknown };
  if (v.outcome === 'deny') {
    const code = isAdapterCode(v.code) ? v.code : 'ERR_TOOL_FAILED';
    // An evidence reason (the refused destination, the limit, the failed TLS or token check)
    // goes into the receipt; it holds only printable ASCII. Other adapter reasons stay out.
    const reason =
      hasEvidenceReason(code) && typeof v.reason === 'string' && /^[ -~]{1,400}$/.test(v.reason)
        ? v.reason
        : 'the tool adapter denied';
    return deny(code, reason);
  }
  if (v.outcome !== 'ok' || !('result' in v)) return deny('ERR_TOOL_FAILED', 'adapter answered garbage');
  return { result: v.result as JsonValue };
}

/**
 * Whether `value` nests arrays and objects more than `max` levels deep (a top-level array or
 * object is one level); stops at the first level past `max`.
 */
export function nestedDeeperThan(value: JsonValue, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max <= 0) return true;
  const members: readonly JsonValue[] = Array.isArray(value) ? value : Object.values(value as JsonObject);
  for (const v of members) if (nestedDeeperThan(v, max - 1)) return true;
  return false;
}

/** Deep-freezes a JSON value parsed from our own canonical text. */
export function deepFreeze<T extends JsonValue>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Occurrences of the redaction marker in `text`. */
export function countRedactions(text: string): number {
  return text.split('[REDACTED').length - 1;
}
