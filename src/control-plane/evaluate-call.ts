/**
 * The policy part of the decision pipeline, as one function shared by `decide` and the dry run
 * (`failclosed policy test`), so a dry run cannot disagree with the real gate: known tool
 * (OE-INV-005), parameters against the tool's schema (OE-INV-004), Cedar evaluation bounded by a
 * deadline and checked (SPEC §2 step 3, FC-INV-4), and the envelope constraints the decision
 * would grant (SPEC §3, OE-INV-006). Pure: no ledger, no state, no envelope. (OE-INV-014)
 */
import { deny, isDeny } from '../kernel/index.js';
import type { DenialCode, Deny, EnvelopeConstraints, JsonValue } from '../kernel/index.js';
import { sharedNow } from '../policy/index.js';
import type { Obligations, PolicyPermit, RiskClass, ToolSpec } from '../policy/index.js';
import { withDeadline } from './deadline.js';
import { constraintsFor } from './decision-record.js';
import type { DecisionFacts } from './decision-record.js';
import { parsePolicyAnswer } from './policy-decision.js';
import type { PolicyRuntime } from './ports.js';

/** One proposed call as policy sees it. */
export interface CallToEvaluate {
  /** Client (agent) id: Cedar's `principal`. */
  readonly identity: string;
  /** The client's tenant, also the tenant the call acts on. */
  readonly tenant: string;
  /** The client's registered roles: `principal.roles`. */
  readonly roles: readonly string[];
  readonly tool: string;
  readonly params: JsonValue;
  /** The session (or sessionless client) has received untrusted output (OE-INV-013). */
  readonly tainted: boolean;
  /** A background call (docs/jobs.md): the tool's `background_timeout_ms` is granted. */
  readonly background?: boolean;
}

/** What policy determined, as recorded with the decision (OE-INV-014). */
export interface PolicyFacts {
  readonly rules_fired: readonly string[];
  readonly risk: RiskClass;
  readonly obligations: Obligations;
  /** Present for a deny decided by the policies themselves. */
  readonly rationale?: string;
}

/** The outcome of {@link evaluateCall}. */
export type CallEvaluation =
  | {
      readonly outcome: 'deny';
      readonly denial: Deny;
      /** Set once the policies decided (a policy deny, or constraints the bundle cannot grant). */
      readonly facts?: PolicyFacts;
    }
  | {
      readonly outcome: 'allow' | 'escalate';
      readonly decision: PolicyPermit;
      readonly tool: ToolSpec;
      /** The envelope's `constraints` claim this decision would grant. */
      readonly constraints: EnvelopeConstraints;
      readonly facts: PolicyFacts;
    };

/**
 * Evaluates `call` against `runtime`. Denies with `ERR_TOOL_UNKNOWN`, `ERR_PARAMS_INVALID`,
 * `ERR_POLICY_UNAVAILABLE` (evaluation past `policyMs`, or its Cedar thread not there to answer),
 * `ERR_POLICY_ERROR` (evaluation threw or answered garbage), `ERR_POLICY_DENY`, or `ERR_POLICY_BUNDLE_INVALID` (limits the tool cannot
 * be granted). Never throws.
 */
export async function evaluateCall(
  runtime: PolicyRuntime,
  call: CallToEvaluate,
  policyMs: number,
): Promise<CallEvaluation> {
  const refused = (d: Deny, facts?: PolicyFacts): CallEvaluation =>
    Object.freeze({ outcome: 'deny', denial: d, ...(facts === undefined ? {} : { facts }) });
  // Known tool (OE-INV-005), then parameters matching its schema (OE-INV-004).
  const tool = runtime.getTool(call.tool);
  if (tool === undefined) return refused(deny('ERR_TOOL_UNKNOWN', 'the tool is not in the active catalog'));
  const valid = runtime.validateParams(call.tool, call.params);
  if (valid.outcome !== 'ok')
    return refused(deny('ERR_PARAMS_INVALID', 'the parameters fail the tool schema'));

  // Policy evaluation, bounded and checked (SPEC §2 step 3). A Cedar thread that reaches the
  // call past the deadline skips it.
  const expiresAt = sharedNow() + policyMs;
  const evaluated = await withDeadline(
    () =>
      runtime.evaluate({
        principal: { id: call.identity, tenant: call.tenant, roles: call.roles },
        tenant: call.tenant,
        tool: call.tool,
        params: call.params,
        tainted: call.tainted,
        expiresAt,
      }),
    policyMs,
  );
  if (evaluated.status === 'timeout')
    return refused(deny('ERR_POLICY_UNAVAILABLE', 'policy evaluation timed out'));
  if (evaluated.status === 'error') return refused(deny('ERR_POLICY_ERROR', 'policy evaluation failed'));
  const decision = parsePolicyAnswer(evaluated.value, runtime.hash);
  if (!('rules_fired' in decision)) return refused(decision);
  const facts: PolicyFacts = {
    rules_fired: decision.rules_fired,
    risk: decision.risk,
    obligations: decision.obligations,
  };
  if (decision.outcome === 'deny') return refused(decision, { ...facts, rationale: decision.rationale });

  // The constraints the envelope would carry: a tool the bundle cannot grant is refused.
  const constraints = constraintsFor(
    tool,
    decision.obligations,
    call.background === true ? { background: true } : {},
  );
  if (isDeny(constraints)) return refused(constraints, facts);
  return Object.freeze({ outcome: decision.outcome, decision, tool, constraints, facts });
}

/** The members of a decision record that policy evaluation determines. */
export type EvaluatedFields = Pick<
  DecisionFacts,
  'outcome' | 'code' | 'rationale' | 'rules_fired' | 'risk' | 'obligations'
>;

/**
 * The decision record's policy members for `evaluation`, exactly as the pipeline records them:
 * a deny with its code and reason (the policies' rationale when they decided), an escalation with
 * `ERR_APPROVAL_REQUIRED`, an allow with no code. Shared by the Control Plane and the forensic
 * replay (`src/replay/`), so a replay cannot drift from what the gate records. (OE-INV-014, GEI
 * Determinism)
 */
export function evaluatedFields(evaluation: CallEvaluation): EvaluatedFields {
  if (evaluation.outcome === 'deny') {
    const code: DenialCode = evaluation.denial.code;
    return {
      rules_fired: [],
      risk: null,
      obligations: null,
      outcome: 'deny',
      code,
      rationale: evaluation.denial.reason,
      ...(evaluation.facts ?? {}),
    };
  }
  return {
    ...evaluation.facts,
    outcome: evaluation.decision.outcome,
    code: evaluation.decision.outcome === 'escalate' ? 'ERR_APPROVAL_REQUIRED' : null,
    rationale: evaluation.decision.rationale,
  };
}
