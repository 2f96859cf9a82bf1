/**
 * The policy engine: evaluates one proposed call against a loaded bundle with Cedar and turns
 * the answer into a decision (allow, escalate or deny) with the rules fired, obligations,
 * rationale and risk class. Fails closed: Cedar errors, a failed request validation, or any
 * exception are a deny. Deterministic for a given bundle and input. See docs/policy.md.
 * (SPEC §2 step 3, §6 "Policy as code", §8 Cedar row, OE-INV-004/005/014, FC-INV-4)
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { deny, FailclosedError } from '../kernel/index.js';
import type { Deny } from '../kernel/index.js';
import { mergeObligations, mergeRisk, NO_OBLIGATIONS } from './annotations.js';
import type { PolicyAnnotations } from './annotations.js';
import { compiledOf } from './bundle.js';
import { createToolCatalog } from './catalog.js';
import type { ToolCatalog } from './catalog.js';
import { preparseBundle, preparsedName } from './cedar.js';
import { CedarCallExpired, CedarThreadUnavailable } from './cedar-thread.js';
import type { CedarThread } from './cedar-thread.js';
import { toCedarValue } from './cedar-values.js';
import type {
  EvaluationInput,
  LoadedBundle,
  PolicyDecision,
  PolicyDecisionFields,
  RiskClass,
  ToolSpec,
} from './types.js';

/** Evaluates calls against one bundle. (SPEC §2 step 3) */
export interface PolicyEngine {
  readonly bundleHash: string;
  readonly catalog: ToolCatalog;
  /**
   * Decides one call. Returns a {@link PolicyDecision} (a deny decision is also a `Deny` with
   * `ERR_POLICY_DENY` or `ERR_POLICY_ERROR`), or a plain `Deny`: `ERR_TOOL_UNKNOWN`,
   * `ERR_PARAMS_INVALID` (schema or number mapping), `ERR_POLICY_ERROR` (malformed input,
   * anything thrown). Never throws.
   */
  evaluate(input: EvaluationInput): PolicyDecision | Deny;
  /**
   * {@link evaluate}, with Cedar's evaluation on `thread` (`cedar-thread.ts`); everything else,
   * and every check of Cedar's answer, as in {@link evaluate}. A thread that is not there to
   * answer (not started, closed, exited, stalled; or it reached the call past its `expiresAt`)
   * is `ERR_POLICY_UNAVAILABLE`; one that throws or answers what nobody asked for is
   * `ERR_POLICY_ERROR`. Never rejects.
   */
  evaluateOn(thread: CedarThread, input: EvaluationInput): Promise<PolicyDecision | Deny>;
}

const MAX_ID_LENGTH = 256;

function validId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_LENGTH;
}

function rationaleOf(
  ids: readonly string[],
  ann: ReadonlyMap<string, PolicyAnnotations>,
  fallback: string,
): string {
  const reasons = ids.map((id) => ann.get(id)?.reason ?? id);
  return reasons.length === 0 ? fallback : reasons.join('; ');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Cedar's `response`: a decision, the determining policy ids, the erroring policies. */
function isCedarResponse(r: unknown): r is cedar.Response {
  if (!isObject(r) || (r['decision'] !== 'allow' && r['decision'] !== 'deny')) return false;
  const d = r['diagnostics'];
  if (!isObject(d) || !Array.isArray(d['reason']) || !Array.isArray(d['errors'])) return false;
  return (
    (d['reason'] as unknown[]).every((id) => typeof id === 'string') &&
    (d['errors'] as unknown[]).every((e) => isObject(e) && typeof e['policyId'] === 'string')
  );
}

/** What an exception during evaluation is: a parameter that cannot be mapped, else a policy error. */
function thrown(err: unknown): Deny {
  if (err instanceof FailclosedError && err.code === 'ERR_PARAMS_INVALID') return deny(err.code, err.message);
  // The same reason as the pipeline's own deadline, whichever of the two is heard first.
  if (err instanceof CedarCallExpired) return deny('ERR_POLICY_UNAVAILABLE', 'policy evaluation timed out');
  if (err instanceof CedarThreadUnavailable)
    return deny('ERR_POLICY_UNAVAILABLE', 'the Cedar thread is not available');
  return deny('ERR_POLICY_ERROR', 'policy evaluation failed');
}

/**
 * Pre-parses the bundle's schema and policy set once (SPEC §8: ~0.25 ms per call instead of
 * 1.6–5.5 ms) and returns its engine. Denies with `ERR_POLICY_UNAVAILABLE` when pre-parsing
 * fails. Accepts only bundles returned by `loadBundle` (anything else is a `TypeError`).
 */
export function createPolicyEngine(bundle: LoadedBundle): PolicyEngine | Deny {
  const { cedar: compiled } = compiledOf(bundle);
  try {
    preparseBundle(bundle.hash, bundle.document);
  } catch {
    return deny('ERR_POLICY_UNAVAILABLE', 'the policy bundle could not be prepared');
  }
  const catalog = createToolCatalog(bundle);
  const name = preparsedName(bundle.hash);
  const ann = compiled.annotations;

  function fields(ids: readonly string[], risk: RiskClass, rationale: string): PolicyDecisionFields {
    const items = ids.map((id) => ann.get(id)).filter((a): a is PolicyAnnotations => a !== undefined);
    return {
      bundle_hash: bundle.hash,
      rules_fired: Object.freeze([...ids]),
      obligations: items.length === 0 ? NO_OBLIGATIONS : mergeObligations(items),
      rationale,
      risk: mergeRisk(risk, items),
    };
  }

  /** Everything before Cedar: the input's shape, the tool, its parameters, Cedar's request. */
  function prepare(input: EvaluationInput): Deny | { tool: ToolSpec; call: cedar.StatefulAuthorizationCall } {
    const { principal, tenant } = input;
    if (
      typeof principal !== 'object' ||
      principal === null ||
      !validId(principal.id) ||
      !validId(principal.tenant)
    )
      return deny('ERR_POLICY_ERROR', 'malformed principal');
    if (!validId(tenant) || typeof input.tainted !== 'boolean')
      return deny('ERR_POLICY_ERROR', 'malformed request');
    const roles = principal.roles ?? [];
    if (!Array.isArray(roles) || !roles.every(validId))
      return deny('ERR_POLICY_ERROR', 'malformed principal roles');
    const tool = catalog.getTool(input.tool);
    if (tool === undefined) return deny('ERR_TOOL_UNKNOWN', 'the tool is not in the active catalog');
    const valid = catalog.validateParams(tool, input.params);
    if (valid.outcome === 'deny') return valid;

    const params = toCedarValue(input.params, compiled.model.params.get(tool.name));
    const entities: cedar.EntityJson[] = [
      {
        uid: { type: 'Agent', id: principal.id },
        attrs: { roles: [...new Set(roles)].sort() },
        parents: [{ type: 'Tenant', id: principal.tenant }],
      },
      { uid: { type: 'Tenant', id: principal.tenant }, attrs: {}, parents: [] },
    ];
    if (tenant !== principal.tenant)
      entities.push({ uid: { type: 'Tenant', id: tenant }, attrs: {}, parents: [] });
    const call: cedar.StatefulAuthorizationCall = {
      principal: { type: 'Agent', id: principal.id },
      action: { type: 'Action', id: tool.name },
      resource: { type: 'Tenant', id: tenant },
      context: { params: params as cedar.CedarValueJson, risk: tool.risk, tainted: input.tainted },
      preparsedSchemaName: name,
      validateRequest: true,
      preparsedPolicySetId: name,
      entities,
    };
    return { tool, call };
  }

  /** Cedar's answer for `tool`, checked, as a decision. */
  function conclude(tool: ToolSpec, answer: cedar.AuthorizationAnswer): PolicyDecision | Deny {
    // A request that fails schema validation (e.g. a parameter typed differently in the Cedar schema).
    if (answer.type !== 'success')
      return deny('ERR_POLICY_ERROR', 'the request does not match the Cedar schema');
    // Read only what has the shape of Cedar's answer (it may have crossed from the Cedar thread).
    if (!isCedarResponse(answer.response))
      return deny('ERR_POLICY_ERROR', 'policy evaluation answered something that is not a decision');
    const { decision, diagnostics } = answer.response;
    // An erroring policy is skipped by Cedar and the answer can still be allow (SPEC §8): deny.
    if (diagnostics.errors.length > 0) {
      const errored = [...new Set(diagnostics.errors.map((e) => e.policyId))].sort();
      return Object.freeze({
        outcome: 'deny',
        code: 'ERR_POLICY_ERROR',
        reason: 'policy evaluation reported an error',
        ...fields(errored, tool.risk, `policy evaluation errored: ${errored.join(', ')}`),
        obligations: NO_OBLIGATIONS,
      });
    }
    const determining = [...diagnostics.reason].sort();
    if (decision !== 'allow') {
      const rationale = rationaleOf(determining, ann, 'no policy permits the call (default deny)');
      return Object.freeze({
        outcome: 'deny',
        code: 'ERR_POLICY_DENY',
        reason: rationale,
        ...fields(determining, tool.risk, rationale),
        obligations: NO_OBLIGATIONS,
      });
    }
    const f = fields(determining, tool.risk, rationaleOf(determining, ann, 'permitted'));
    const escalate = f.obligations.approvals > 0 || f.obligations.preview;
    return Object.freeze({ outcome: escalate ? 'escalate' : 'allow', ...f });
  }

  return Object.freeze({
    bundleHash: bundle.hash,
    catalog,
    evaluate(input: EvaluationInput): PolicyDecision | Deny {
      try {
        const p = prepare(input);
        if ('outcome' in p) return p;
        return conclude(p.tool, cedar.statefulIsAuthorized(p.call));
      } catch (err) {
        return thrown(err);
      }
    },
    async evaluateOn(thread: CedarThread, input: EvaluationInput): Promise<PolicyDecision | Deny> {
      try {
        const p = prepare(input);
        if ('outcome' in p) return p;
        return conclude(
          p.tool,
          await thread.authorize(bundle.hash, bundle.document, p.call, input.expiresAt),
        );
      } catch (err) {
        return thrown(err);
      }
    },
  });
}

/** True when a result permits the call, outright (`allow`) or once obligations are met (`escalate`). */
export function isPermit(
  result: PolicyDecision | Deny,
): result is PolicyDecision & { outcome: 'allow' | 'escalate' } {
  return result.outcome === 'allow' || result.outcome === 'escalate';
}
