/**
 * The records that follow from a decision, re-derived from it: the approval thresholds and roles
 * of `approval.*` (OE-INV-019/020) and the claims recorded at issuance (`envelope.issued`, SPEC §3,
 * OE-INV-006/017), compared byte for byte with the ledger. Shared code: the threshold is
 * `approvalsRequired`, the intent `intentSha256`, the claims' shape `issuedPayload`, as the
 * Control Plane records them. (GEI Determinism "forensic replay")
 */
import { intentSha256, isDeny, issuedPayload } from '../kernel/index.js';
import type { EnvelopeClaims, JsonObject, JsonValue } from '../kernel/index.js';
import { approvalsRequired, issuedConstraints } from '../control-plane/index.js';
import { diffFields } from './diff.js';
import type { ReplayEntry } from './read-bundle.js';
import type { Rederived } from './rederive.js';
import type { ReplayFinding } from './types.js';

const APPROVAL_TYPES: ReadonlySet<string> = new Set([
  'approval.requested',
  'approval.added',
  'approval.rejected',
  'approval.flagged',
  'approval.finalized',
]);

/** The records of decision `d` (approvals and issuances, in any trace: a retry is another trace). */
export function recordsOf(entries: readonly ReplayEntry[], d: ReplayEntry): ReplayEntry[] {
  const id = d.payload['decision_id'];
  return entries.filter(
    (e) =>
      e.index > d.index &&
      e.payload['decision_id'] === id &&
      (APPROVAL_TYPES.has(e.type) || e.type === 'envelope.issued'),
  );
}

const idOf = (e: ReplayEntry): string =>
  typeof e.payload['decision_id'] === 'string' ? e.payload['decision_id'] : '';

function finding(
  e: ReplayEntry,
  field: string,
  recorded: JsonValue | undefined,
  rederived: JsonValue | undefined,
) {
  const show = (v: JsonValue | undefined) => (v === undefined ? '(absent)' : JSON.stringify(v));
  const f: ReplayFinding = {
    code: 'REPLAY_MISMATCH',
    index: e.index,
    type: e.type,
    trace_id: e.trace_id,
    decision_id: idOf(e),
    field,
    ...(recorded === undefined ? {} : { recorded }),
    ...(rederived === undefined ? {} : { rederived }),
    message: `entry #${e.index} (${e.type}) records ${field} = ${show(recorded)}; replay derives ${show(rederived)}`,
  };
  return f;
}

function compare(e: ReplayEntry, rederived: Record<string, JsonValue>): ReplayFinding[] {
  return diffFields(e.payload, rederived).map((x) => finding(e, x.field, x.recorded, x.rederived));
}

function unexpected(e: ReplayEntry, outcome: string): ReplayFinding {
  return {
    code: 'REPLAY_UNEXPECTED_RECORD',
    index: e.index,
    type: e.type,
    trace_id: e.trace_id,
    decision_id: idOf(e),
    message: `entry #${e.index} (${e.type}) follows a decision that re-derives as ${outcome}`,
  };
}

/**
 * Compares the records that follow decision `d` with what its re-derived outcome implies. Only
 * for a re-derived decision (`r.outcome` set); the time-dependent members (`expires_at`, `iat`,
 * `exp`), the keyed ones (`jti`, `decision_id`) and the signing key (`kid`, `envelope_sha256`)
 * are not re-derivable and are left as recorded. `background` holds the traces of calls asked in
 * the background: an envelope issued in one grants the tool's background time limit.
 */
export function rederiveRecords(
  d: ReplayEntry,
  r: Rederived,
  records: readonly ReplayEntry[],
  background: ReadonlySet<string>,
): ReplayFinding[] {
  const outcome = r.outcome;
  const req = r.request;
  if (outcome === undefined || req === undefined || r.paramsSha256 === undefined) return [];
  if (outcome === 'deny') return records.map((e) => unexpected(e, 'deny'));
  const evaluation = r.evaluation;
  if (evaluation === undefined || evaluation.outcome === 'deny') return [];
  const findings: ReplayFinding[] = [];
  const obligations = evaluation.facts.obligations;
  const base = approvalsRequired(obligations);
  const roles = [...obligations.approver_roles].sort();
  const intent = intentSha256({ tool: req.action, tenant: req.tenant, params_sha256: r.paramsSha256 });
  const extra = records.some((e) => e.type === 'approval.flagged' && e.payload['policy'] === 'require_extra');
  let granted: JsonValue[] | undefined = outcome === 'allow' ? [] : undefined;
  for (const e of records) {
    if (outcome === 'allow' && APPROVAL_TYPES.has(e.type)) {
      findings.push(unexpected(e, 'allow'));
      continue;
    }
    switch (e.type) {
      case 'approval.requested':
        findings.push(
          ...compare(e, { required: base, roles, intent_sha256: intent, code: 'ERR_APPROVAL_REQUIRED' }),
        );
        break;
      case 'approval.added':
      case 'approval.rejected':
        findings.push(...compare(e, { required: base, intent_sha256: intent }));
        break;
      case 'approval.flagged':
        findings.push(...compare(e, { required: base + (e.payload['policy'] === 'require_extra' ? 1 : 0) }));
        break;
      case 'approval.finalized': {
        const verdict = e.payload['verdict'];
        const counted = verdict === 'approve' || verdict === 'reject';
        // A `require_extra` flag on a counted approver raises the threshold by one (docs/approvals.md).
        const required = counted && extra && e.payload['required'] === base + 1 ? base + 1 : base;
        findings.push(...compare(e, counted ? { required, roles } : { required }));
        if (verdict === 'approve') {
          const approvers = Array.isArray(e.payload['approvers']) ? e.payload['approvers'] : [];
          granted = records
            .filter(
              (a) =>
                a.type === 'approval.added' &&
                a.index < e.index &&
                approvers.includes(a.payload['approver'] as JsonValue),
            )
            .map((a) => a.payload['approval_sha256'] as JsonValue);
        } else if (verdict === 'break_glass') granted = [e.payload['approval_sha256'] as JsonValue];
        break;
      }
      case 'envelope.issued': {
        if (granted === undefined) {
          findings.push(unexpected(e, 'escalate without a finalised approval'));
          break;
        }
        findings.push(...compareIssued(e, d, r, granted, background.has(e.trace_id)));
        break;
      }
    }
  }
  return findings;
}

function compareIssued(
  e: ReplayEntry,
  d: ReplayEntry,
  r: Rederived,
  approvals: JsonValue[],
  background: boolean,
): ReplayFinding[] {
  const evaluation = r.evaluation;
  const req = r.request;
  if (evaluation === undefined || evaluation.outcome === 'deny' || req === undefined) return [];
  const p = e.payload;
  // The time limit is that of the call that issued the envelope: a retry of an approved
  // escalation may run in the background or not, whatever its first ask was (docs/jobs.md).
  const constraints = issuedConstraints(evaluation.constraints, evaluation.tool, background);
  // Members replay cannot derive are taken as recorded (time, keyed nonce, configured issuer).
  const claims = {
    sub: req.identity,
    tenant: req.tenant,
    tool: req.action,
    params_sha256: r.paramsSha256,
    jti: p['jti'],
    decision_id: d.payload['decision_id'],
    request_id: req.request_id,
    trace_id: e.trace_id,
    policy_bundle: d.payload['policy_bundle'],
    ledger: { index: d.index, entry_hash: d.entry_hash },
    approvals,
    constraints: isDeny(constraints) ? null : constraints,
    iss: p['iss'],
    aud: p['aud'],
    iat: p['iat'],
    exp: p['exp'],
  } as unknown as EnvelopeClaims;
  const expected: JsonObject = issuedPayload(claims, p['kid'] as string, p['envelope_sha256'] as string);
  return [
    ...diffFields(
      { tenant: e.tenant, request_id: e.request_id },
      { tenant: req.tenant, request_id: req.request_id },
    ).map((x) => finding(e, `entry.${x.field}`, x.recorded, x.rederived)),
    ...compare(e, expected),
  ];
}
