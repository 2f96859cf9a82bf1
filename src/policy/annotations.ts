/**
 * Obligations declared on policies as Cedar annotations, checked at bundle load and merged over
 * the policies that determine a decision. A closed set: an unknown or misspelled annotation would
 * silently drop an obligation, so it invalidates the bundle. See docs/policy.md.
 * (SPEC §6 "Policy as code", OE-INV-014/018/019/020)
 */
import { RISK_CLASSES } from './types.js';
import type { Obligations, RiskClass } from './types.js';

/** The annotations a policy may carry. */
export const ANNOTATION_KEYS = [
  'reason',
  'risk',
  'approvals',
  'approver_role',
  'preview',
  'max_cost_usd',
] as const;

/** Upper bound on `@approvals`. */
export const MAX_APPROVALS = 10;

const ROLE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const COST_RE = /^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$/;
const MAX_REASON_LENGTH = 500;

/** One policy's annotations after checking. */
export interface PolicyAnnotations {
  readonly effect: 'permit' | 'forbid';
  readonly reason: string | null;
  readonly risk: RiskClass | null;
  readonly approvals: number;
  readonly approver_roles: readonly string[];
  readonly preview: boolean;
  readonly max_cost_usd: string | null;
}

/** No obligations. */
export const NO_OBLIGATIONS: Obligations = Object.freeze({
  approvals: 0,
  approver_roles: Object.freeze([]),
  preview: false,
  max_cost_usd: null,
});

/**
 * Checks one policy's annotations. Throws a plain `Error` with a reason on an unknown key or a
 * malformed value, and on obligations attached to a `forbid` (they could never apply); the
 * bundle loader turns that into `ERR_POLICY_BUNDLE_INVALID`.
 */
export function parseAnnotations(
  effect: 'permit' | 'forbid',
  raw: { readonly [key: string]: string } | undefined,
): PolicyAnnotations {
  const a = raw ?? {};
  for (const key of Object.keys(a)) {
    if (!(ANNOTATION_KEYS as readonly string[]).includes(key)) throw new Error(`unknown annotation @${key}`);
  }
  const reason = a['reason'] ?? null;
  if (reason !== null && (reason.length === 0 || reason.length > MAX_REASON_LENGTH))
    throw new Error('@reason must be 1..500 characters');
  const riskText = a['risk'];
  let risk: RiskClass | null = null;
  if (riskText !== undefined) {
    const found = RISK_CLASSES.find((r) => r === riskText);
    if (found === undefined) throw new Error('@risk must be low, medium, high or critical');
    risk = found;
  }
  const approvalsText = a['approvals'];
  let approvals = 0;
  if (approvalsText !== undefined) {
    if (!/^[0-9]{1,2}$/.test(approvalsText) || Number(approvalsText) > MAX_APPROVALS)
      throw new Error(`@approvals must be an integer 0..${MAX_APPROVALS}`);
    approvals = Number(approvalsText);
  }
  const rolesText = a['approver_role'];
  let roles: string[] = [];
  if (rolesText !== undefined) {
    roles = rolesText.split(',').map((r) => r.trim());
    if (roles.some((r) => !ROLE_RE.test(r)))
      throw new Error('@approver_role must be a comma list of role names');
    if (approvals === 0) throw new Error('@approver_role needs @approvals of at least 1');
    roles = [...new Set(roles)].sort();
  }
  const previewText = a['preview'];
  if (previewText !== undefined && previewText !== 'true' && previewText !== 'false')
    throw new Error('@preview must be "true" or "false"');
  const cost = a['max_cost_usd'] ?? null;
  if (cost !== null && !COST_RE.test(cost))
    throw new Error('@max_cost_usd must be a decimal with at most 4 fraction digits');
  const obligations = approvals > 0 || previewText !== undefined || cost !== null;
  if (effect === 'forbid' && (obligations || risk !== null))
    throw new Error('a forbid policy may carry only @reason');
  return Object.freeze({
    effect,
    reason,
    risk,
    approvals,
    approver_roles: Object.freeze(roles),
    preview: previewText === 'true',
    max_cost_usd: cost,
  });
}

/** Scales a checked `@max_cost_usd` to an integer of 1/10000 USD for exact comparison. */
function costUnits(cost: string): bigint {
  const [whole = '0', frac = ''] = cost.split('.');
  return BigInt(whole) * 10000n + BigInt(frac.padEnd(4, '0'));
}

/** True when `a` is below `b`, or equal in value and spelled first (keeps merging order-independent). */
function lowerCost(a: string, b: string): boolean {
  const ua = costUnits(a);
  const ub = costUnits(b);
  return ua < ub || (ua === ub && a < b);
}

/** Index of a risk class in ascending order. */
export function riskRank(risk: RiskClass): number {
  return RISK_CLASSES.indexOf(risk);
}

/**
 * Merges the obligations of several permits that determined one allow: the most approvals, the
 * union of approver roles, preview if any asks for it, the lowest cost cap. Order-independent.
 */
export function mergeObligations(items: readonly PolicyAnnotations[]): Obligations {
  let approvals = 0;
  const roles = new Set<string>();
  let preview = false;
  let cost: string | null = null;
  for (const a of items) {
    approvals = Math.max(approvals, a.approvals);
    for (const r of a.approver_roles) roles.add(r);
    preview ||= a.preview;
    if (a.max_cost_usd !== null && (cost === null || lowerCost(a.max_cost_usd, cost))) cost = a.max_cost_usd;
  }
  return Object.freeze({
    approvals,
    approver_roles: Object.freeze([...roles].sort()),
    preview,
    max_cost_usd: cost,
  });
}

/** The highest of a tool's risk and the `@risk` of the determining policies. */
export function mergeRisk(base: RiskClass, items: readonly PolicyAnnotations[]): RiskClass {
  let rank = riskRank(base);
  for (const a of items) if (a.risk !== null) rank = Math.max(rank, riskRank(a.risk));
  return RISK_CLASSES[rank] ?? 'critical';
}
