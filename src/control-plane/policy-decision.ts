/**
 * Checks what the policy engine returned before the pipeline trusts it: an engine that answers
 * garbage, a decision for another bundle or a deny with an unknown code is `ERR_POLICY_ERROR`,
 * never an allow (FC-INV-4, OE-INV-003, OE-INV-014).
 */
import { deny, isDenialCode, isDeny } from '../kernel/index.js';
import type { Deny } from '../kernel/index.js';
import { RISK_CLASSES } from '../policy/index.js';
import type { Obligations, PolicyDecision, RiskClass } from '../policy/index.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

function parseObligations(v: unknown): Obligations | undefined {
  if (!isObj(v)) return undefined;
  const { approvals, approver_roles, preview, max_cost_usd } = v;
  if (!Number.isSafeInteger(approvals) || (approvals as number) < 0) return undefined;
  if (!isStringList(approver_roles) || typeof preview !== 'boolean') return undefined;
  if (max_cost_usd !== null && typeof max_cost_usd !== 'string') return undefined;
  return Object.freeze({
    approvals: approvals as number,
    approver_roles: Object.freeze([...approver_roles]),
    preview,
    max_cost_usd,
  });
}

/**
 * Parses an engine answer for the bundle `bundleHash`: a full {@link PolicyDecision} (copied and
 * frozen), or a deny. A plain deny keeps its code when it is a catalog code; a decision whose
 * `bundle_hash` is not `bundleHash`, a deny decision with a code other than `ERR_POLICY_DENY` or
 * `ERR_POLICY_ERROR`, or anything malformed is `ERR_POLICY_ERROR`.
 */
export function parsePolicyAnswer(answer: unknown, bundleHash: string): PolicyDecision | Deny {
  const garbage = deny('ERR_POLICY_ERROR', 'the policy engine returned a malformed answer');
  if (!isObj(answer)) return garbage;
  const outcome = answer.outcome;
  if (outcome !== 'allow' && outcome !== 'escalate' && outcome !== 'deny') return garbage;
  // Stryker disable next-line ConditionalExpression: equivalent, an allow or escalate without rules_fired is garbage on either path
  if (outcome === 'deny' && !('rules_fired' in answer)) {
    // A plain deny (tool unknown, parameters invalid, evaluation error).
    if (!isDeny(answer) || !isDenialCode(answer.code)) return garbage;
    return deny(
      answer.code,
      typeof answer.reason === 'string' ? answer.reason : 'denied by the policy engine',
    );
  }
  const { bundle_hash, rules_fired, rationale, risk } = answer;
  const obligations = parseObligations(answer.obligations);
  if (bundle_hash !== bundleHash) return deny('ERR_POLICY_ERROR', 'the decision names another policy bundle');
  if (!isStringList(rules_fired) || typeof rationale !== 'string' || obligations === undefined)
    return garbage;
  if (!(RISK_CLASSES as readonly unknown[]).includes(risk)) return garbage;
  const fields = {
    bundle_hash,
    rules_fired: Object.freeze([...rules_fired]),
    obligations,
    rationale,
    risk: risk as RiskClass,
  };
  // Defence in depth: an "allow" that still carries approval or preview obligations is an escalation.
  if (outcome === 'allow' && (obligations.approvals > 0 || obligations.preview))
    return Object.freeze({ ...fields, outcome: 'escalate' });
  if (outcome !== 'deny') return Object.freeze({ ...fields, outcome });
  const code = answer.code === 'ERR_POLICY_DENY' ? 'ERR_POLICY_DENY' : 'ERR_POLICY_ERROR';
  return Object.freeze({ ...fields, outcome, code, reason: rationale });
}
