/**
 * Step 9 of the decision pipeline (OE-INV-019/020, L7 Break-glass): an escalated decision opens
 * a pending approval; it is issued only once the approvals are finalised (or a break-glass grant
 * in scope stands in for them), exactly once, within the approval window, under the same active
 * policy bundle and within the spend limits. Also multi-party approval of policy activation
 * (OE-INV-020). See docs/approvals.md.
 */
import { computeParamsSha256, deny, isDeny } from '../kernel/index.js';
import type { Deny, EnvelopeConstraints, JsonValue } from '../kernel/index.js';
import type { PolicyDecision } from '../policy/index.js';
import type { ApprovalService, PendingRecord, Preview } from './approvals/index.js';
import { approvalsRequired, issuedConstraints } from './decision-record.js';
import type { ActivationApproval, ActivationResult, BundleStore } from './bundle-store.js';
import type { Ctx } from './control-plane.js';
import { deriveId } from './derive.js';
import { GLOBAL_TENANT, type Actor, type LedgerRef } from './ledger-port.js';
import type { PolicyRuntime } from './ports.js';
import { creationSpec } from './schedule-step.js';
import type { ControlPlaneResult } from './types.js';

const withId = (d: Deny, decision_id: string): Deny & { readonly decision_id: string } =>
  Object.freeze({ outcome: 'deny', code: d.code, reason: d.reason, decision_id });

/** Opens the pending approval of an escalated call (ledgers `approval.requested`). */
export function openApproval(
  approvals: ApprovalService,
  ctx: Ctx,
  input: {
    readonly decision: Extract<PolicyDecision, { outcome: 'allow' | 'escalate' }>;
    readonly preview: Preview | null;
    readonly constraints: EnvelopeConstraints;
    readonly decisionRef: LedgerRef;
    readonly ttlSec: number | undefined;
  },
): Promise<PendingRecord | Deny> {
  const { req } = ctx;
  const { decision } = input;
  return approvals.open({
    decision_id: ctx.decisionId,
    kind: 'call',
    request_id: req.request_id,
    trace_id: req.trace_id,
    identity: req.identity,
    ...(req.owner === undefined ? {} : { owner: req.owner }),
    tenant: req.tenant,
    tool: req.tool,
    session: req.session,
    params: req.params,
    params_sha256: ctx.paramsSha256,
    preview: input.preview,
    risk: decision.risk,
    required: approvalsRequired(decision.obligations),
    roles: decision.obligations.approver_roles,
    policy_bundle: ctx.runtime?.hash ?? null,
    decision_ref: input.decisionRef,
    constraints: {
      ...input.constraints,
      egress: [...input.constraints.egress],
      fs_read: [...input.constraints.fs_read],
      fs_write: [...input.constraints.fs_write],
    },
    ...(input.ttlSec === undefined ? {} : { ttlSec: input.ttlSec }),
  });
}

/** What issuance needs from the pipeline. */
export interface IssueHooks {
  now(): number;
  /** Records a deny after the decision (`denial`, stage `approval`). */
  abandon(d: Deny): Promise<ControlPlaneResult>;
  active(): PolicyRuntime | Deny;
  /**
   * The governance checks again (kill switch, lockdown, quarantine), right before issuance: a
   * long-poll may have waited while an operator halted the tenant. A deny when halted or unsure.
   */
  halted(): Promise<Deny | undefined>;
  /** Declared cost in cents; null when none, NaN when malformed. */
  costOf(params: JsonValue): number | null;
  /** Reserves the spend; rejects when the breaker state does not answer. */
  reserve(
    cost: number | null,
    cap: number | null,
  ): Promise<{ tripped: true; breaker: string } | { tripped: false; release: () => void }>;
  issue(
    bundleHash: string,
    ref: LedgerRef,
    approvals: readonly string[],
    constraints: EnvelopeConstraints,
    release: () => void,
  ): Promise<ControlPlaneResult>;
}

/**
 * Waits (up to `waitMs`) and issues an approved decision once. Answers `ERR_APPROVAL_PENDING`
 * (not recorded: the Gate records it) while approvals are missing, and when `signal` aborted
 * during the wait (the caller cancelled or went away: nobody would see the result, so nothing
 * runs; the decision stays pending and an explicit retry may still resume it); `ERR_APPROVAL_REJECTED`,
 * `ERR_APPROVAL_EXPIRED`, `ERR_REQUEST_REPLAYED` (already issued), `ERR_POLICY_UNAVAILABLE` (the
 * active bundle changed since the decision), `ERR_CIRCUIT_OPEN` (spend) are recorded denials.
 */
export async function issueApproved(
  approvals: ApprovalService,
  ctx: Ctx,
  pending: PendingRecord,
  waitMs: number,
  hooks: IssueHooks,
  signal?: AbortSignal,
): Promise<ControlPlaneResult> {
  const id = ctx.decisionId;
  let p = (await approvals.settle(id)) ?? pending;
  if (p.status === 'pending') {
    const used = await approvals.useBreakGlass(p);
    if (used !== undefined && isDeny(used)) return withId(used, id);
    p = (await approvals.get(id)) ?? p;
  }
  if (p.status === 'pending' && waitMs > 0) {
    // One waiting slot per call of this principal, at most `maxWaitingPerPrincipal` at once: a
    // call beyond them is answered pending at once (it may be retried), never run.
    const waited = await approvals.waitFor(id, waitMs, signal, `${p.tenant}\u0000${p.identity}`);
    if (!waited)
      return withId(
        deny(
          'ERR_APPROVAL_PENDING',
          'waiting for approvals (too many calls of this client are waiting already)',
        ),
        id,
      );
    // A caller that cancelled or went away while waiting is never answered: an approval that
    // came meanwhile must not make the call run unseen (docs/mcp.md "Approvals").
    if (signal?.aborted === true)
      return withId(deny('ERR_APPROVAL_PENDING', 'the caller stopped waiting for approvals'), id);
    p = (await approvals.settle(id)) ?? p;
  }
  if (p.status === 'pending') return withId(deny('ERR_APPROVAL_PENDING', 'waiting for approvals'), id);
  if (p.status === 'rejected')
    return hooks.abandon(deny('ERR_APPROVAL_REJECTED', 'a required approver rejected the call'));
  if (p.status === 'expired' || hooks.now() >= p.expires_at)
    return hooks.abandon(deny('ERR_APPROVAL_EXPIRED', 'the approval window expired'));
  if (p.status === 'issued')
    return hooks.abandon(deny('ERR_REQUEST_REPLAYED', 'the approved call was already issued'));
  if (p.kind !== 'call' || p.decision_ref === null || p.constraints === null || p.policy_bundle === null) {
    return hooks.abandon(deny('ERR_APPROVAL_INVALID', 'the approved decision is not a call'));
  }
  const halted = await hooks.halted();
  if (halted !== undefined) return hooks.abandon(halted);
  if (!(await approvals.stillApproved(p)))
    return hooks.abandon(deny('ERR_APPROVER_UNKNOWN', 'an approver of this call was removed since'));
  const active = hooks.active();
  if (isDeny(active) || active.hash !== p.policy_bundle)
    return hooks.abandon(deny('ERR_POLICY_UNAVAILABLE', 'the active policy changed since the decision'));
  // The limits granted at the decision, with the time limit of this call: a synchronous retry of
  // a call asked in the background gets the tool's synchronous limit (docs/jobs.md "Time limits").
  // The tool is the one policy decided: for a schedule's creation, the call it schedules (the
  // request's own parameters: the pending record keeps a redacted view; the decision id binds
  // them).
  const spec = creationSpec(ctx.req);
  const tool =
    spec === undefined ? active.getTool(p.tool) : isDeny(spec) ? undefined : active.getTool(spec.tool);
  const constraints =
    tool === undefined
      ? deny('ERR_TOOL_UNKNOWN', 'the approved tool is not in the active catalog')
      : issuedConstraints(p.constraints as unknown as EnvelopeConstraints, tool, ctx.req.background === true);
  if (isDeny(constraints)) return hooks.abandon(constraints);
  const cost = hooks.costOf(ctx.req.params);
  if (cost !== null && Number.isNaN(cost))
    return hooks.abandon(deny('ERR_PARAMS_INVALID', 'the declared cost is not an amount'));
  let spend: Awaited<ReturnType<IssueHooks['reserve']>>;
  try {
    spend = await hooks.reserve(cost, constraints.max_cost_cents);
  } catch {
    return hooks.abandon(deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the spend state did not answer'));
  }
  if (spend.tripped)
    return hooks.abandon(deny('ERR_CIRCUIT_OPEN', `circuit breaker ${spend.breaker} is open`));
  // Single issuance: only the call that moves `approved` to `issued` signs an envelope, on any
  // replica sharing the approval state. A store that fails releases the spend and denies (edge).
  let issued: boolean;
  try {
    issued = await approvals.markIssued(id);
  } catch (err) {
    spend.release();
    throw err;
  }
  if (!issued) {
    spend.release();
    return hooks.abandon(deny('ERR_REQUEST_REPLAYED', 'the approved call was already issued'));
  }
  return hooks.issue(p.policy_bundle, p.decision_ref, p.approvals, constraints, spend.release);
}

/**
 * Activates a bundle, through multi-party approval when the settings require it (OE-INV-020):
 * the first request opens a pending approval and answers `ERR_APPROVAL_PENDING` with its
 * decision id; once approved, the same request activates, ledgering the decision and its
 * approvals in `admin.policy_activated`.
 */
export async function activateWithApprovals(
  deps: {
    readonly approvals: ApprovalService | undefined;
    readonly bundles: BundleStore;
    readonly derivationKey: Uint8Array;
    readonly now: () => number;
  },
  hash: string,
  actor: Actor,
  activate: (approval?: ActivationApproval) => Promise<ActivationResult>,
): Promise<ActivationResult | (Deny & { readonly decision_id: string })> {
  const { approvals, bundles } = deps;
  const pa = approvals?.settings.policyActivation;
  if (approvals === undefined || pa === undefined || pa.approvals < 1) return activate();
  const target = bundles.get(hash);
  if (isDeny(target)) return target;
  const current = bundles.active();
  const params = { bundle: hash, previous: isDeny(current) ? null : current.hash };
  const decision_id = deriveId(deps.derivationKey, 'decision', { kind: 'policy_activation', ...params });
  let p = await approvals.settle(decision_id);
  if (p === undefined) {
    const rid = `activation-${decision_id.slice(0, 32)}`;
    const opened = await approvals.open({
      decision_id,
      kind: 'policy_activation',
      request_id: rid,
      trace_id: rid,
      identity: actor.id,
      owner: actor.id,
      tenant: GLOBAL_TENANT,
      tool: 'policy.activate',
      session: null,
      params,
      params_sha256: computeParamsSha256(params),
      preview: null,
      risk: 'critical',
      required: pa.approvals,
      roles: pa.roles,
      policy_bundle: hash,
      decision_ref: null,
      constraints: null,
    });
    if (isDeny(opened)) return opened;
    p = opened;
  }
  if (p.status === 'pending')
    return withId(deny('ERR_APPROVAL_PENDING', 'the activation waits for approvals'), decision_id);
  if (p.status === 'rejected')
    return withId(deny('ERR_APPROVAL_REJECTED', 'an approver rejected the activation'), decision_id);
  if (p.status === 'expired' || deps.now() >= p.expires_at)
    return withId(deny('ERR_APPROVAL_EXPIRED', 'the approval window expired'), decision_id);
  // As for a call (OE-INV-020): an approver removed since the finalisation no longer stands behind it.
  if (!(await approvals.stillApproved(p)))
    return withId(
      deny('ERR_APPROVER_UNKNOWN', 'an approver of this activation was removed since'),
      decision_id,
    );
  if (!(await approvals.markIssued(decision_id)))
    return withId(deny('ERR_REQUEST_REPLAYED', 'the activation was already carried out'), decision_id);
  return activate({ decision_id, approvals: p.approvals });
}
