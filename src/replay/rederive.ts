/**
 * Re-derives one recorded decision from its recorded inputs (the raw signed request, the client's
 * ledgered registration, the session's taint records) and the policy bundle it names, through the
 * Control Plane's own evaluation (`evaluateCall`, `evaluatedFields`, `decisionPayload`), and
 * compares the result byte for byte with the ledger (GEI Determinism "forensic replay",
 * OE-INV-014). What cannot be re-derived is said so, never passed silently.
 */
import { canonicalBytes, computeParamsSha256 } from '../kernel/index.js';
import type { DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import {
  CLIENT_PRINCIPAL_PREFIX,
  compilePolicyBundle,
  decisionPayload,
  evaluateGoverned,
  evaluatedFields,
} from '../control-plane/index.js';
import type { CallEvaluation, EvaluatedFields, PolicyRuntime } from '../control-plane/index.js';
import { parseEvidenceRequest } from '../verify/index.js';
import type { EvidenceRequest } from '../verify/index.js';
import { diffJson } from './diff.js';
import type { ReplayEntry, ReplayInput } from './read-bundle.js';
import type { ReplayFinding, ReplayStatus } from './types.js';

/** Policy evaluation bound for a replay: generous, the replay is not on a request's path. */
const REPLAY_POLICY_MS = 10_000;

/** Denials decided before any policy bundle was consulted, from governance state at the time. */
const GOVERNANCE_CODES: ReadonlySet<string> = new Set([
  'ERR_KILL_SWITCH',
  'ERR_TENANT_LOCKDOWN',
  'ERR_SESSION_QUARANTINED',
  'ERR_CIRCUIT_OPEN',
  'ERR_CONTROL_PLANE_UNAVAILABLE',
  'ERR_POLICY_UNAVAILABLE',
]);

/** Denials after a permitting evaluation, from spend, breaker or preview state at the time. */
const AFTER_POLICY_CODES: ReadonlySet<string> = new Set([
  'ERR_CIRCUIT_OPEN',
  'ERR_CONTROL_PLANE_UNAVAILABLE',
  'ERR_PARAMS_INVALID',
  'ERR_PREVIEW_UNAVAILABLE',
]);

/** What a decision's replay established, for the records that follow from it. */
export interface Rederived {
  readonly status: ReplayStatus;
  readonly reason?: string;
  readonly findings: ReplayFinding[];
  /** The request, the evaluation and its fields, when the policy was re-evaluated. */
  readonly request?: EvidenceRequest;
  readonly paramsSha256?: string;
  readonly evaluation?: CallEvaluation;
  /** The outcome the follow-up records must agree with (`deny` for a state-decided deny). */
  readonly outcome?: 'allow' | 'escalate' | 'deny';
}

/** Compiled policy runtimes by hash, shared over one replay. */
export type RuntimeCache = Map<string, PolicyRuntime | string>;

const str = (v: JsonValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

function runtimeFor(input: ReplayInput, cache: RuntimeCache, hash: string): PolicyRuntime | string {
  const cached = cache.get(hash);
  if (cached !== undefined) return cached;
  const doc = input.policies.get(hash);
  let made: PolicyRuntime | string;
  if (doc === undefined) made = 'the policy bundle the decision names is not in the bundle';
  else {
    try {
      // The Control Plane's own loader: the same hash check, catalog and pre-parsed Cedar engine.
      made = compilePolicyBundle(canonicalBytes(doc), hash);
    } catch {
      made = 'the policy bundle the decision names does not load';
    }
  }
  cache.set(hash, made);
  return made;
}

/** The input records of decisions (registrations, taint), filtered once per bundle. */
interface InputRecords {
  registrations: ReplayEntry[];
  taints: ReplayEntry[];
  /**
   * Traces of calls asked in the background: their `gateway.accepted` says so, or (in a ledger
   * written before acceptances recorded it) the Gate queued them (`gateway.queued`).
   */
  background: ReadonlySet<string>;
}

const inputRecords = new WeakMap<ReplayInput, InputRecords>();

function recordsFor(input: ReplayInput): InputRecords {
  let r = inputRecords.get(input);
  if (r === undefined) {
    r = {
      registrations: input.entries.filter((e) => e.type === 'admin.client_registered'),
      taints: input.entries.filter((e) => e.type === 'session.tainted'),
      background: new Set(
        input.entries
          .filter(
            (e) =>
              e.type === 'gateway.queued' ||
              (e.type === 'gateway.accepted' && e.payload['background'] === true),
          )
          .map((e) => e.trace_id),
      ),
    };
    inputRecords.set(input, r);
  }
  return r;
}

/** The traces of calls asked in the background in `input` (see {@link InputRecords.background}). */
export function backgroundTraces(input: ReplayInput): ReadonlySet<string> {
  return recordsFor(input).background;
}

/** The client's roles from its latest `admin.client_registered` (request key) before `at`. */
function rolesOf(input: ReplayInput, identity: string, tenant: string, at: number): string[] | undefined {
  let roles: string[] | undefined;
  for (const e of recordsFor(input).registrations) {
    if (e.index >= at) break;
    if (e.type !== 'admin.client_registered' || e.payload['key_use'] !== 'request') continue;
    if (e.payload['client'] !== identity || e.tenant !== tenant) continue;
    const r = e.payload['roles'];
    roles = Array.isArray(r) ? r.filter((x): x is string => typeof x === 'string') : [];
  }
  return roles;
}

/** Whether a `session.tainted` record for the call's principal precedes `at` (OE-INV-013). */
function taintedBefore(input: ReplayInput, req: EvidenceRequest, at: number): boolean {
  const key = req.session ?? `${CLIENT_PRINCIPAL_PREFIX}${req.identity}`;
  return recordsFor(input).taints.some((e) => e.index < at && e.payload['session'] === key);
}

function mismatches(d: ReplayEntry, recorded: JsonValue, rederived: JsonValue, prefix = ''): ReplayFinding[] {
  return diffJson(recorded, rederived, prefix).map((x) => ({
    code: 'REPLAY_MISMATCH',
    index: d.index,
    type: d.type,
    trace_id: d.trace_id,
    decision_id: str(d.payload['decision_id']) ?? '',
    field: x.field,
    ...(x.recorded === undefined ? {} : { recorded: x.recorded }),
    ...(x.rederived === undefined ? {} : { rederived: x.rederived }),
    message: `entry #${d.index} (${d.type}) records ${x.field} = ${show(x.recorded)}; replay derives ${show(x.rederived)}`,
  }));
}

const show = (v: JsonValue | undefined): string => (v === undefined ? '(absent)' : JSON.stringify(v));

function missing(d: ReplayEntry, field: string, message: string): ReplayFinding {
  return {
    code: 'REPLAY_INPUT_MISSING',
    index: d.index,
    type: d.type,
    trace_id: d.trace_id,
    decision_id: str(d.payload['decision_id']) ?? '',
    field,
    message: `entry #${d.index} (${d.type}): ${message}`,
  };
}

/**
 * Re-derives the `decision` entry `d`. Never throws: an input that is missing or unusable is a
 * `REPLAY_INPUT_MISSING` finding (or, for an MCP principal or a partial export, `not-rederivable`).
 */
export async function rederiveDecision(
  input: ReplayInput,
  cache: RuntimeCache,
  d: ReplayEntry,
): Promise<Rederived> {
  const p = d.payload;
  const sha = str(p['request_sha256']);
  const raw = sha === undefined ? undefined : input.requests.get(sha);
  if (raw === undefined)
    return {
      status: 'mismatch',
      findings: [missing(d, 'request_sha256', 'its raw signed request is not in the bundle')],
    };
  const req = parseEvidenceRequest(raw);
  if (typeof req === 'string')
    return {
      status: 'not-rederivable',
      reason:
        'the request is not a client-signed request (an MCP principal: its roles and tenant came from a token the ledger does not hold)',
      findings: [],
    };
  let paramsSha256: string;
  try {
    paramsSha256 = computeParamsSha256(req.parameters);
  } catch {
    return {
      status: 'mismatch',
      findings: [missing(d, 'params_sha256', 'its parameters cannot be encoded')],
    };
  }
  const base = {
    decision_id: str(p['decision_id']) ?? '',
    params_sha256: paramsSha256,
    tool: req.action,
    client: req.identity,
    session: req.session,
    request_sha256: sha ?? '',
  };
  // The entry's own request fields come from the same signed request.
  const entryFindings = mismatches(
    d,
    { tenant: d.tenant, request_id: d.request_id },
    { tenant: req.tenant, request_id: req.request_id },
    'entry',
  );
  const recordedCode = str(p['code']);
  const bundleHash = p['policy_bundle'];

  // Decided before any bundle was consulted: by governance state at the time.
  if (bundleHash === null && p['outcome'] === 'deny' && GOVERNANCE_CODES.has(recordedCode ?? '')) {
    const expected = decisionPayload({
      ...base,
      outcome: 'deny',
      code: recordedCode as DenialCode,
      rationale: str(p['rationale']) ?? '',
      policy_bundle: null,
      constitution_version: null,
      rules_fired: [],
      risk: null,
      obligations: null,
    });
    const findings = [...entryFindings, ...mismatches(d, p, expected)];
    return {
      status: findings.length > 0 ? 'mismatch' : 'not-rederivable',
      reason: `decided by governance state at the time (${recordedCode ?? ''}: kill switch, lockdown, quarantine, breakers or no active bundle), not by policy; only the request-derived members were re-derived`,
      findings,
      request: req,
      paramsSha256,
      outcome: 'deny',
    };
  }
  if (typeof bundleHash !== 'string')
    return {
      status: 'mismatch',
      findings: [
        ...entryFindings,
        missing(d, 'policy_bundle', `a decision with outcome ${show(p['outcome'])} names no policy bundle`),
      ],
    };
  const runtime = runtimeFor(input, cache, bundleHash);
  if (typeof runtime === 'string')
    return { status: 'mismatch', findings: [...entryFindings, missing(d, 'policy_bundle', runtime)] };
  const roles = rolesOf(input, req.identity, req.tenant, d.index);
  if (roles === undefined) {
    if (!input.complete)
      return {
        status: 'not-rederivable',
        reason: "the client's registration (its roles) is outside this partial export",
        findings: entryFindings,
      };
    return {
      status: 'mismatch',
      findings: [
        ...entryFindings,
        missing(d, 'client', "the client's registration (its roles) is not in the bundle"),
      ],
    };
  }
  // A schedule.create is evaluated as the call it schedules, exactly as the Control Plane does.
  // A background call was granted the tool's background time limit: its trace asked for it.
  const background = recordsFor(input).background.has(d.trace_id);
  const evaluate = (tainted: boolean) =>
    evaluateGoverned(
      runtime,
      {
        identity: req.identity,
        tenant: req.tenant,
        roles,
        tool: req.action,
        params: req.parameters,
        tainted,
        ...(background ? { background: true } : {}),
      },
      REPLAY_POLICY_MS,
    );
  const tainted = taintedBefore(input, req, d.index);
  const evaluation = await evaluate(tainted);
  const fields = evaluatedFields(evaluation);
  const expectedOf = (f: EvaluatedFields): JsonObject =>
    decisionPayload({
      ...base,
      policy_bundle: runtime.hash,
      constitution_version: runtime.constitutionVersion,
      ...f,
    });
  const recordedState = {
    outcome: 'deny' as const,
    code: recordedCode as DenialCode,
    rationale: str(p['rationale']) ?? '',
  };
  const common = { request: req, paramsSha256, evaluation };

  // The evaluation timed out at the time: an environmental condition, not a policy answer.
  if (
    p['outcome'] === 'deny' &&
    recordedCode === 'ERR_POLICY_UNAVAILABLE' &&
    fields.code !== 'ERR_POLICY_UNAVAILABLE'
  ) {
    const findings = [
      ...entryFindings,
      ...mismatches(d, p, expectedOf({ ...recordedState, rules_fired: [], risk: null, obligations: null })),
    ];
    return {
      ...common,
      status: findings.length > 0 ? 'mismatch' : 'not-rederivable',
      reason:
        'the policy evaluation timed out, or found its Cedar thread down, at the time (an environmental condition the ledger does not record)',
      findings,
      outcome: 'deny',
    };
  }
  // Permitted by policy, then denied by spend, breaker or preview state at the time.
  if (p['outcome'] === 'deny' && fields.outcome !== 'deny' && AFTER_POLICY_CODES.has(recordedCode ?? '')) {
    const findings = [...entryFindings, ...mismatches(d, p, expectedOf({ ...fields, ...recordedState }))];
    return {
      ...common,
      status: findings.length > 0 ? 'mismatch' : 'partial',
      reason: `the policy's rules, risk and obligations re-derive; the outcome (${recordedCode ?? ''}) depended on spend, breaker or preview state at the time, which the ledger does not record as an input`,
      findings,
      outcome: 'deny',
    };
  }
  const findings = [...entryFindings, ...mismatches(d, p, expectedOf(fields))];
  // Taint recorded outside a partial export may have changed the answer.
  if (findings.length > 0 && !tainted && !input.complete) {
    const asTainted = await evaluate(true);
    if (mismatches(d, p, expectedOf(evaluatedFields(asTainted))).length === 0)
      return {
        status: 'not-rederivable',
        reason:
          "the decision matches only with the session tainted, and the session's taint records are outside this partial export",
        findings: entryFindings,
      };
  }
  return {
    ...common,
    status: findings.length > 0 ? 'mismatch' : 'match',
    findings,
    outcome: fields.outcome,
  };
}
