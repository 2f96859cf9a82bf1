/**
 * The decision record (OE-INV-014, SPEC §2 step 3–4) and the envelope's `constraints` claim
 * (SPEC §3, OE-INV-006/007/024). Both are pure functions of the request, the bundle and the
 * policy decision, so equal inputs give byte-identical ledger payloads (GEI Determinism).
 */
import { deny, isDeny, MAX_OUTPUT_BYTES } from '../kernel/index.js';
import type { DenialCode, Deny, EnvelopeConstraints, JsonObject, JsonValue } from '../kernel/index.js';
import { MAX_BACKGROUND_TIMEOUT_MS, MAX_TOOL_TIMEOUT_MS } from '../policy/index.js';
import type { Obligations, RiskClass, ToolSpec } from '../policy/index.js';
import { usdToCents } from './breakers.js';

/** Limits granted when a tool's adapter declares none (`adapter.limits`). */
export const DEFAULT_CONSTRAINTS: EnvelopeConstraints = Object.freeze({
  timeout_ms: 10_000,
  max_output_bytes: MAX_OUTPUT_BYTES,
  memory_bytes: 256 * 1024 * 1024,
  network: false,
  egress: Object.freeze([]),
  fs_read: Object.freeze([]),
  fs_write: Object.freeze([]),
  max_cost_cents: null,
});

/** Decision outcomes as recorded (OE-INV-014 "decision type"). */
export type RecordedOutcome = 'allow' | 'escalate' | 'deny';

/** What the pipeline knows when it records a decision. */
export interface DecisionFacts {
  readonly decision_id: string;
  readonly outcome: RecordedOutcome;
  /** Null for an allow; the denial code otherwise (`ERR_APPROVAL_REQUIRED` for escalate). */
  readonly code: DenialCode | null;
  readonly policy_bundle: string | null;
  readonly constitution_version: string | null;
  readonly rules_fired: readonly string[];
  readonly rationale: string;
  readonly risk: RiskClass | null;
  readonly obligations: Obligations | null;
  readonly params_sha256: string | null;
  readonly tool: string;
  readonly client: string;
  readonly session: string | null;
  readonly request_sha256: string;
  /** A scheduled run's schedule and the decision of its creation (docs/schedules.md). */
  readonly schedule_id?: string;
  readonly schedule_decision_id?: string;
}

/**
 * The `decision` entry payload: exactly the OE-INV-014 fields plus the request's identity and
 * evidence reference, all on the ledger's allowlist. A deny before policy evaluation carries
 * empty `rules_fired`, `null` risk and obligations, and its code (FC-INV-5).
 */
export function decisionPayload(f: DecisionFacts): JsonObject {
  return {
    decision_id: f.decision_id,
    outcome: f.outcome,
    code: f.code,
    policy_bundle: f.policy_bundle,
    constitution_version: f.constitution_version,
    rules_fired: [...f.rules_fired],
    rationale: f.rationale,
    risk: f.risk,
    obligations: f.obligations === null ? null : obligationsJson(f.obligations),
    params_sha256: f.params_sha256,
    tool: f.tool,
    client: f.client,
    session: f.session,
    request_sha256: f.request_sha256,
    ...(f.schedule_id === undefined ? {} : { schedule_id: f.schedule_id }),
    ...(f.schedule_decision_id === undefined ? {} : { schedule_decision_id: f.schedule_decision_id }),
  };
}

/**
 * How many approvals an escalated call waits for: the policy's `@approvals`, and at least one (a
 * preview obligation alone still needs one human to look at it). Shared by the pipeline and the
 * forensic replay. (OE-INV-019, OE-INV-020)
 */
export function approvalsRequired(obligations: Obligations): number {
  return Math.max(1, obligations.approvals);
}

function obligationsJson(o: Obligations): JsonObject {
  return {
    approvals: o.approvals,
    approver_roles: [...o.approver_roles],
    preview: o.preview,
    max_cost_usd: o.max_cost_usd,
  };
}

const LIST_LIMITS = ['egress', 'fs_read', 'fs_write'] as const;
const COUNT_LIMITS = ['timeout_ms', 'max_output_bytes', 'memory_bytes'] as const;
export { MAX_TOOL_TIMEOUT_MS };
const KNOWN_LIMITS: ReadonlySet<string> = new Set([
  ...LIST_LIMITS,
  ...COUNT_LIMITS,
  'network',
  'background_timeout_ms',
]);

/**
 * The `constraints` claim for a call: `adapter.limits` of the tool spec (any of `timeout_ms`,
 * `max_output_bytes` (at most `MAX_OUTPUT_BYTES`), `memory_bytes`: positive integers; `network`: boolean; `egress`,
 * `fs_read`, `fs_write`: string lists) over {@link DEFAULT_CONSTRAINTS}, and `max_cost_cents`
 * from the obligations' `max_cost_usd`. A malformed or unknown limit is
 * `ERR_POLICY_BUNDLE_INVALID`; an unreadable cost cap `ERR_POLICY_ERROR`. (SPEC §3, OE-INV-006)
 * For a background call (`options.background`), `background_timeout_ms` (up to an hour), when the
 * tool names one, is the `timeout_ms` granted: no caller waits on the run (docs/jobs.md).
 */
export function constraintsFor(
  tool: ToolSpec,
  obligations: Obligations,
  options: { readonly background?: boolean } = {},
): EnvelopeConstraints | Deny {
  const maxCost = usdToCents(obligations.max_cost_usd);
  if (Number.isNaN(maxCost))
    return deny('ERR_POLICY_ERROR', 'the max_cost_usd obligation is not a decimal amount');
  const limits: JsonValue | undefined = tool.adapter['limits'];
  if (limits === undefined) return Object.freeze({ ...DEFAULT_CONSTRAINTS, max_cost_cents: maxCost });
  return parseLimits(limits, maxCost, options.background === true);
}

/**
 * The constraints an approved escalation is issued with: those granted at its decision, with the
 * time limit of the call that issues it. The decision may have been asked in the background and
 * retried synchronously once approved, or the reverse; the caller of a synchronous retry waits at
 * the Gate, so its envelope must grant the tool's synchronous `timeout_ms`, never the background
 * limit (docs/jobs.md "Time limits"). Shared with the forensic replay, which derives it from
 * whether the issuing trace was queued. A tool whose limits the bundle cannot grant is
 * `ERR_POLICY_BUNDLE_INVALID`. (SPEC §3, OE-INV-006)
 */
export function issuedConstraints(
  granted: EnvelopeConstraints,
  tool: ToolSpec,
  background: boolean,
): EnvelopeConstraints | Deny {
  const limits: JsonValue | undefined = tool.adapter['limits'];
  const own =
    limits === undefined ? DEFAULT_CONSTRAINTS : parseLimits(limits, granted.max_cost_cents, background);
  if (isDeny(own)) return own;
  return Object.freeze({ ...granted, timeout_ms: own.timeout_ms });
}

function parseLimits(
  limits: JsonValue,
  maxCost: number | null,
  background: boolean,
): EnvelopeConstraints | Deny {
  const bad = deny('ERR_POLICY_BUNDLE_INVALID', 'the tool adapter limits are malformed');
  // Bundle content the policy layer does not interpret: checked member by member here.
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) return bad;
  const l = limits as JsonObject;
  for (const name of Object.keys(l)) if (!KNOWN_LIMITS.has(name)) return bad;
  const count = (name: (typeof COUNT_LIMITS)[number]): number | undefined => {
    const v = l[name] ?? DEFAULT_CONSTRAINTS[name];
    // Stryker disable next-line ConditionalExpression: equivalent, Number.isSafeInteger is false for every non-number
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined;
  };
  const list = (name: (typeof LIST_LIMITS)[number]): readonly string[] | undefined => {
    const v = l[name] ?? DEFAULT_CONSTRAINTS[name];
    return Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0)
      ? Object.freeze([...(v as readonly string[])])
      : undefined;
  };
  const network = l['network'] ?? DEFAULT_CONSTRAINTS.network;
  const timeout_ms = count('timeout_ms');
  const max_output_bytes = count('max_output_bytes');
  const memory_bytes = count('memory_bytes');
  const egress = list('egress');
  const fs_read = list('fs_read');
  const fs_write = list('fs_write');
  if (timeout_ms === undefined || max_output_bytes === undefined || memory_bytes === undefined) return bad;
  // The Gate waits 30 s for the Execution Layer; a longer tool could finish after the caller was
  // told "denied". Tools are bounded well inside that window (docs/adapters.md).
  if (timeout_ms > MAX_TOOL_TIMEOUT_MS) return bad;
  // No answer carries a larger result (kernel/answer-limits.ts): the executor withholds it anyway.
  if (max_output_bytes > MAX_OUTPUT_BYTES) return bad;
  const long = l['background_timeout_ms'];
  if (long !== undefined && !(typeof long === 'number' && Number.isSafeInteger(long) && long > 0)) return bad;
  if (typeof long === 'number' && long > MAX_BACKGROUND_TIMEOUT_MS) return bad;
  if (egress === undefined || fs_read === undefined || fs_write === undefined || typeof network !== 'boolean')
    return bad;
  return Object.freeze({
    timeout_ms: background && typeof long === 'number' ? long : timeout_ms,
    max_output_bytes,
    memory_bytes,
    network,
    egress,
    fs_read,
    fs_write,
    max_cost_cents: maxCost,
  });
}
