/**
 * The Execution Layer's own reading of the ledger before it consumes a nonce (L7 Boundary B,
 * SPEC §3 verification order "ledger decision matches → issuance recorded → nonce consumed").
 * A valid signature is not enough: the entry the envelope's `ledger` claim names must be the
 * allow (or fully approved) decision for exactly this call, and the issuance of exactly this
 * JWS must have been recorded. The ledger's answer is untrusted input: anything malformed is a
 * mismatch, never an allow (FC-INV-4).
 */
import { deny, hexDigestEquals } from '../kernel/index.js';
import type { Deny, EnvelopeClaims, JsonValue } from '../kernel/index.js';
import type { EnvelopeLedgerContext, LedgerRecord } from './ledger.js';

const isRecord = (v: unknown): v is LedgerRecord => {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<Record<keyof LedgerRecord, unknown>>;
  return (
    Number.isSafeInteger(r.index) &&
    typeof r.entry_hash === 'string' &&
    typeof r.type === 'string' &&
    typeof r.tenant === 'string' &&
    typeof r.trace_id === 'string' &&
    typeof r.request_id === 'string' &&
    typeof r.payload === 'object' &&
    r.payload !== null
  );
};

const records = (v: unknown): readonly LedgerRecord[] | undefined =>
  Array.isArray(v) && v.every(isRecord) ? v : undefined;

/** The creation decision a scheduled run's escalated decision stands on, or undefined (docs/schedules.md). */
export function standingDecisionOf(ctx: EnvelopeLedgerContext): string | undefined {
  const d = ctx.decision;
  if (d === undefined || d.type !== 'decision' || field(d, 'outcome') !== 'escalate') return undefined;
  const s = field(d, 'schedule_decision_id');
  return typeof s === 'string' && s.length > 0 ? s : undefined;
}

/** The ledger's answer in the expected shape, or undefined (the ledger is then unavailable). */
export function parseEnvelopeContext(v: unknown): EnvelopeLedgerContext | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const c = v as { decision?: unknown; issued?: unknown; finalized?: unknown };
  const issued = records(c.issued);
  const finalized = records(c.finalized);
  if (issued === undefined || finalized === undefined) return undefined;
  if (c.decision !== undefined && !isRecord(c.decision)) return undefined;
  return { decision: c.decision, issued, finalized };
}

const field = (r: LedgerRecord, name: string): JsonValue | undefined => r.payload[name];

/** True when an approval of `decisionId` was finalised as approved (or by break-glass) before `before`. */
function approvedBefore(
  finalized: readonly LedgerRecord[],
  c: EnvelopeClaims,
  before: number,
  decisionId: string = c.decision_id,
): boolean {
  return finalized.some(
    (f) =>
      f.type === 'approval.finalized' &&
      f.tenant === c.tenant &&
      f.index < before &&
      field(f, 'decision_id') === decisionId &&
      (field(f, 'verdict') === 'approve' || field(f, 'verdict') === 'break_glass'),
  );
}

/**
 * The `envelope.issued` record of this envelope: same jti, decision and tenant, and the digest
 * of exactly this JWS. Undefined when the issuance was never recorded.
 */
function issuedRecord(
  ctx: EnvelopeLedgerContext,
  c: EnvelopeClaims,
  digest: string,
): LedgerRecord | undefined {
  return ctx.issued.find((r) => {
    const sha = field(r, 'envelope_sha256');
    return (
      r.type === 'envelope.issued' &&
      r.tenant === c.tenant &&
      field(r, 'jti') === c.jti &&
      field(r, 'decision_id') === c.decision_id &&
      typeof sha === 'string' &&
      hexDigestEquals(sha, digest)
    );
  });
}

/**
 * Checks the envelope's claims against what the ledger holds, in order:
 * 1. the entry at `ledger.index` exists with `ledger.entry_hash` (`ERR_ENVELOPE_LEDGER_UNCONFIRMED`);
 * 2. it is the `decision` for the same decision id, request, tool, tenant, subject, parameter
 *    hash and policy bundle, with outcome `allow`, or `escalate` finalised as approved (or by
 *    break-glass) before the issuance (`ERR_ENVELOPE_DECISION_MISMATCH`);
 * 3. an `envelope.issued` record names this jti, decision and JWS digest, after the decision
 *    (`ERR_ENVELOPE_NOT_ISSUED`).
 * A scheduled run's escalated decision stands on its schedule's creation instead
 * (`schedule_decision_id`, docs/schedules.md): `standing` holds that creation's
 * `approval.finalized` entries, and one of them must approve before the issuance (FC-INV-6).
 * Undefined when every check holds (L7 Boundary B, FC-INV-4, OE-INV-017).
 */
export function checkEnvelopeLedger(
  ctx: EnvelopeLedgerContext,
  c: EnvelopeClaims,
  digest: string,
  standing: readonly LedgerRecord[] = [],
): Deny | undefined {
  const d = ctx.decision;
  if (d === undefined || d.index !== c.ledger.index || !hexDigestEquals(d.entry_hash, c.ledger.entry_hash))
    return deny('ERR_ENVELOPE_LEDGER_UNCONFIRMED', 'no confirmed decision entry');
  const mismatch = deny(
    'ERR_ENVELOPE_DECISION_MISMATCH',
    'the ledger entry is not the decision for this call',
  );
  if (
    d.type !== 'decision' ||
    field(d, 'decision_id') !== c.decision_id ||
    d.request_id !== c.request_id ||
    d.tenant !== c.tenant ||
    field(d, 'tool') !== c.tool ||
    field(d, 'client') !== c.sub ||
    field(d, 'policy_bundle') !== c.policy_bundle ||
    field(d, 'params_sha256') !== c.params_sha256
  )
    return mismatch;
  const issued = issuedRecord(ctx, c, digest);
  const outcome = field(d, 'outcome');
  const before = issued?.index ?? Number.MAX_SAFE_INTEGER;
  const schedule = field(d, 'schedule_decision_id');
  const approved =
    outcome === 'escalate' &&
    (approvedBefore(ctx.finalized, c, before) ||
      (typeof schedule === 'string' && approvedBefore(standing, c, before, schedule)));
  if (outcome !== 'allow' && !approved) return mismatch;
  if (issued === undefined || issued.index <= d.index)
    return deny('ERR_ENVELOPE_NOT_ISSUED', 'the issuance of this envelope was never recorded');
  return undefined;
}
