/**
 * Parsing what the Control Plane and the Execution Layer answer. The Gate trusts neither answer's
 * shape: anything it cannot interpret is the dependency being unavailable, a deny (FC-INV-4,
 * SPEC §7 scenario 5).
 */
import { canonicalize, deny, isDenialCode } from '../kernel/index.js';
import type { Deny, JsonValue } from '../kernel/index.js';
import type { LedgerRef } from './types.js';

/** An allow decision from the Control Plane, as the Gate uses it. */
export interface AllowAnswer {
  readonly outcome: 'allow';
  readonly decision_id: string;
  readonly envelope: string;
  readonly decision_ref: LedgerRef;
}

/** A deny from another role, with its decision id when the Control Plane recorded one. */
export type DenyAnswer = Deny & { readonly decision_id?: string };

/** An executed call. */
export interface ExecutedAnswer {
  readonly outcome: 'executed';
  readonly result: JsonValue;
  readonly receipt: LedgerRef;
}

const MAX_REASON = 200;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseLedgerRef(v: unknown): LedgerRef | undefined {
  if (!isRecord(v)) return undefined;
  const { index, entry_hash } = v;
  if (!Number.isSafeInteger(index) || (index as number) < 0) return undefined;
  if (typeof entry_hash !== 'string' || entry_hash.length === 0 || entry_hash.length > 128) return undefined;
  return Object.freeze({ index: index as number, entry_hash });
}

function parseDeny(v: Record<string, unknown>): DenyAnswer | undefined {
  if (!isDenialCode(v.code)) return undefined;
  const reason = typeof v.reason === 'string' ? v.reason.slice(0, MAX_REASON) : v.code;
  const d = deny(v.code, reason);
  return typeof v.decision_id === 'string' ? Object.freeze({ ...d, decision_id: v.decision_id }) : d;
}

/** Parses a Control Plane answer; anything uninterpretable → `ERR_CONTROL_PLANE_UNAVAILABLE`. */
export function parseDecisionAnswer(v: unknown): AllowAnswer | DenyAnswer {
  const garbage = deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the Control Plane answer could not be interpreted');
  if (!isRecord(v)) return garbage;
  if (v.outcome === 'deny') return parseDeny(v) ?? garbage;
  if (v.outcome !== 'allow') return garbage;
  const ref = parseLedgerRef(v.decision_ref);
  if (typeof v.decision_id !== 'string' || v.decision_id.length === 0) return garbage;
  if (typeof v.envelope !== 'string' || !COMPACT_JWS.test(v.envelope) || ref === undefined) return garbage;
  return Object.freeze({
    outcome: 'allow',
    decision_id: v.decision_id,
    envelope: v.envelope,
    decision_ref: ref,
  });
}

/** Parses an Execution Layer answer; anything uninterpretable → `ERR_EXECUTION_UNAVAILABLE`. */
export function parseExecutionAnswer(v: unknown): ExecutedAnswer | DenyAnswer {
  const garbage = deny('ERR_EXECUTION_UNAVAILABLE', 'the Execution Layer answer could not be interpreted');
  if (!isRecord(v)) return garbage;
  if (v.outcome === 'deny') {
    const d = parseDeny(v);
    return d === undefined ? garbage : deny(d.code, d.reason);
  }
  if (v.outcome !== 'executed') return garbage;
  const receipt = parseLedgerRef(v.receipt);
  if (receipt === undefined || !('result' in v)) return garbage;
  try {
    // The result must be plain JSON the client can receive unchanged.
    canonicalize(v.result as JsonValue);
  } catch {
    return garbage;
  }
  return Object.freeze({ outcome: 'executed', result: v.result as JsonValue, receipt });
}
