/**
 * Which tools a principal could be allowed to call: Cedar's partial evaluation with the call's
 * parameters and the session's taint unknown (MCP `tools/list`, docs/mcp.md "Which tools are
 * listed"). A tool is listed when the policies allow it outright, or leave a residual in which
 * some permit may still hold and no forbid already holds. Deny by default: a Cedar failure, an
 * errored policy or any exception lists nothing for that tool. Listing grants nothing: every call
 * is decided in full by the engine (OE-INV-004/005/014).
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { LoadedBundle, PrincipalInput, ToolSpec } from './types.js';

const UNKNOWN = (name: string): cedar.CedarValueJson => ({ __extn: { fn: 'unknown', arg: name } });

function couldAllow(bundle: LoadedBundle, principal: PrincipalInput, tool: ToolSpec): boolean {
  const roles = [...new Set(principal.roles ?? [])].sort();
  const answer = cedar.isAuthorizedPartial({
    principal: { type: 'Agent', id: principal.id },
    action: { type: 'Action', id: tool.name },
    // The Gate only accepts calls on the principal's own tenant.
    resource: { type: 'Tenant', id: principal.tenant },
    context: { params: UNKNOWN('params'), risk: tool.risk, tainted: UNKNOWN('tainted') },
    policies: { staticPolicies: { ...bundle.document.policies } },
    entities: [
      {
        uid: { type: 'Agent', id: principal.id },
        attrs: { roles },
        parents: [{ type: 'Tenant', id: principal.tenant }],
      },
      { uid: { type: 'Tenant', id: principal.tenant }, attrs: {}, parents: [] },
    ],
  });
  if (answer.type !== 'residuals') return false;
  const r = answer.response;
  if (r.errored.length > 0) return false;
  if (r.decision === 'allow') return true;
  if (r.decision === 'deny') return false;
  // Undecided: some permit must still be possible (satisfied or a residual).
  const possible = new Set([...r.satisfied, ...r.nontrivialResiduals]);
  return [...possible].some((id) => r.residuals[id]?.effect === 'permit');
}

/**
 * The bundle's tools `principal` could be allowed to call on its own tenant, in catalog order.
 * Never throws: a tool whose evaluation fails is left out.
 */
export function callableTools(bundle: LoadedBundle, principal: PrincipalInput): readonly ToolSpec[] {
  return bundle.document.tools.filter((tool) => {
    try {
      return couldAllow(bundle, principal, tool);
    } catch {
      return false;
    }
  });
}

/**
 * Whether any rule of `bundle` could ever permit `tool` (docs/inventory.md, FC-INV-6): Cedar's
 * partial evaluation with the principal, the tenant, the parameters and the session's taint all
 * unknown. `possible` when the policies allow it outright or leave a permit that may hold;
 * `never` when no permit can (no rule names the action, or a forbid always holds); `unknown`
 * when evaluation fails (the engine then denies every call). Never throws.
 */
export function permitReach(bundle: LoadedBundle, tool: ToolSpec): 'possible' | 'never' | 'unknown' {
  // A function of the bundle alone: each loaded bundle's answers are kept beside it (the loader
  // hands the same object for the same bundle), so every start and activation does not parse the
  // whole policy set once per tool again. `unknown` is not kept.
  let known = reaches.get(bundle);
  if (known === undefined) reaches.set(bundle, (known = new Map<string, 'possible' | 'never'>()));
  const kept = known.get(tool.name);
  if (kept !== undefined) return kept;
  const r = evaluateReach(bundle, tool);
  if (r !== 'unknown') known.set(tool.name, r);
  return r;
}

const reaches = new WeakMap<LoadedBundle, Map<string, 'possible' | 'never'>>();

function evaluateReach(bundle: LoadedBundle, tool: ToolSpec): 'possible' | 'never' | 'unknown' {
  try {
    const answer = cedar.isAuthorizedPartial({
      principal: null,
      action: { type: 'Action', id: tool.name },
      resource: null,
      context: { params: UNKNOWN('params'), risk: tool.risk, tainted: UNKNOWN('tainted') },
      policies: { staticPolicies: { ...bundle.document.policies } },
      entities: [],
    });
    if (answer.type !== 'residuals') return 'unknown';
    const r = answer.response;
    if (r.decision === 'allow') return 'possible';
    if (r.decision === 'deny') return 'never';
    const possible = new Set([...r.satisfied, ...r.nontrivialResiduals]);
    if ([...possible].some((id) => r.residuals[id]?.effect === 'permit')) return 'possible';
    // A rule that errored with everything unknown cannot be judged here.
    return r.errored.length > 0 ? 'unknown' : 'never';
  } catch {
    return 'unknown';
  }
}
