/**
 * Schedules in the decision pipeline (docs/schedules.md, FC-INV-6 "All scheduled tasks MUST use an
 * approval envelope with explicit expiry"). Two decisions concern a schedule:
 *
 * - Its creation, a call of the reserved action `schedule.create`: the Control Plane decides the
 *   scheduled call itself (tool, parameters, the creator as principal) with the active policy,
 *   so a schedule can never be granted what one call could not; and a creation always escalates,
 *   to the policy's `@approvals` for that call or at least one approval: a standing authority to
 *   act later, unattended, is reviewed by a person first.
 * - Each run, a call of the scheduled tool minted for the creator: decided again in full
 *   (governance state, breakers, policy) and bound to its slot: decided outside the slot it
 *   denies `ERR_SCHEDULE_SLOT_MISSED`, and its envelope expires at the slot's end at the latest,
 *   so the Execution Layer refuses it after the slot whatever the scheduler does. A run whose
 *   policy escalates needs no fresh approval when the creation's finalised approvals cover it
 *   (as many approvals, of the roles asked now); otherwise it denies `ERR_SCHEDULE_NOT_APPROVED`.
 */
import {
  computeParamsSha256,
  deny,
  isDeny,
  nextSlot,
  parseScheduleSpec,
  runRequestId,
  SCHEDULE_CREATE_ACTION,
} from '../kernel/index.js';
import type { Deny, JsonObject, ScheduleSpec, Slot } from '../kernel/index.js';
import type { PendingRecord } from './approvals/index.js';
import { approvalsRequired } from './decision-record.js';
import { evaluateCall } from './evaluate-call.js';
import type { CallEvaluation, CallToEvaluate } from './evaluate-call.js';
import type { PolicyRuntime } from './ports.js';
import type { GovernedRequest, ScheduledRun } from './types.js';

/** The spec of a `schedule.create` request, or a deny (`ERR_PARAMS_INVALID`). */
export function creationSpec(req: Pick<GovernedRequest, 'tool' | 'params'>): ScheduleSpec | Deny | undefined {
  if (req.tool !== SCHEDULE_CREATE_ACTION) return undefined;
  return parseScheduleSpec(req.params);
}

/**
 * Evaluates a schedule's creation: the scheduled call under the active policy, escalated to at
 * least one approval when the policy allows it outright. A policy deny stays a deny.
 */
export async function evaluateCreation(
  runtime: PolicyRuntime,
  call: CallToEvaluate,
  spec: ScheduleSpec,
  policyMs: number,
): Promise<CallEvaluation> {
  const inner = await evaluateCall(runtime, { ...call, tool: spec.tool, params: spec.params }, policyMs);
  if (inner.outcome === 'deny' || inner.outcome === 'escalate') return inner;
  const o = inner.decision.obligations;
  return Object.freeze({
    ...inner,
    outcome: 'escalate',
    decision: Object.freeze({
      ...inner.decision,
      outcome: 'escalate',
      obligations: Object.freeze({ ...o, approvals: approvalsRequired(o) }),
      rationale: `${inner.decision.rationale}; a schedule needs approval`,
    }),
  });
}

/**
 * The policy part of a decision, as the pipeline and the forensic replay both evaluate it: a
 * `schedule.create` call through {@link evaluateCreation} (`ERR_PARAMS_INVALID` for a malformed
 * spec), any other call through `evaluateCall`. Never throws.
 */
export async function evaluateGoverned(
  runtime: PolicyRuntime,
  call: CallToEvaluate,
  policyMs: number,
): Promise<CallEvaluation> {
  const spec = creationSpec(call);
  if (spec === undefined) return evaluateCall(runtime, call, policyMs);
  if (isDeny(spec)) return Object.freeze({ outcome: 'deny', denial: spec });
  return evaluateCreation(runtime, call, spec, policyMs);
}

/** The slot a run names, checked against its schedule's spec: it must be one the spec fires. */
export function runSlot(run: ScheduledRun, spec: ScheduleSpec): Slot | Deny {
  const slot = nextSlot(spec.timing, run.slot_start, spec.windowMs);
  if (slot === undefined || slot.start !== run.slot_start)
    return deny('ERR_SCHEDULE_SLOT_MISSED', 'the run names no slot of its schedule');
  return slot;
}

/**
 * Parses a run's schedule against the run: the spec must schedule this tool with these
 * parameters, the request id must be the slot's ({@link runRequestId}), and `at` must lie within
 * the slot. `ERR_SCHEDULE_NOT_APPROVED` /
 * `ERR_SCHEDULE_SLOT_MISSED` otherwise.
 */
export function checkRun(
  req: GovernedRequest,
  run: ScheduledRun,
  paramsSha256: string,
  at: number,
): { readonly spec: ScheduleSpec; readonly slot: Slot } | Deny {
  const spec = parseScheduleSpec(run.spec);
  if (isDeny(spec)) return deny('ERR_SCHEDULE_NOT_APPROVED', 'the run names a malformed schedule');
  let hash: string;
  try {
    hash = computeParamsSha256(spec.params);
  } catch {
    return deny('ERR_SCHEDULE_NOT_APPROVED', 'the scheduled parameters cannot be encoded');
  }
  if (spec.tool !== req.tool || hash !== paramsSha256)
    return deny('ERR_SCHEDULE_NOT_APPROVED', 'the run is not the call its schedule names');
  const slot = runSlot(run, spec);
  if (isDeny(slot)) return slot;
  // One request id per slot, so one decision id and one derived `jti`: whoever hands a slot out
  // twice, its envelope runs at most once.
  if (req.request_id !== runRequestId(run.id, slot.start))
    return deny('ERR_SCHEDULE_NOT_APPROVED', 'the run’s request id is not its slot’s');
  if (at < slot.start || at >= slot.end)
    return deny('ERR_SCHEDULE_SLOT_MISSED', 'the run is outside its slot');
  return { spec, slot };
}

/**
 * The creation's approval record when it stands behind this run: the creation of exactly this
 * schedule spec by the same principal and tenant, issued (its schedule was created), its
 * approvals still valid. Undefined otherwise.
 */
export function creationApproval(
  req: GovernedRequest,
  run: ScheduledRun,
  p: PendingRecord | undefined,
): PendingRecord | undefined {
  if (p === undefined) return undefined;
  let hash: string;
  try {
    hash = computeParamsSha256(run.spec);
  } catch {
    return undefined;
  }
  const ok =
    p.kind === 'call' &&
    p.status === 'issued' &&
    p.tool === SCHEDULE_CREATE_ACTION &&
    p.identity === req.identity &&
    p.tenant === req.tenant &&
    p.params_sha256 === hash;
  return ok ? p : undefined;
}

/**
 * True when the creation's finalised approvals cover what the run's policy asks now: at least as
 * many approvals, and, when the policy names approver roles, the creation asked only roles it
 * names (each counted approval came from a holder of one of them).
 */
export function approvalsCover(p: PendingRecord, required: number, roles: readonly string[]): boolean {
  if (p.approvals.length < required || p.required < required) return false;
  if (roles.length === 0) return true;
  return p.roles.length > 0 && p.roles.every((r) => roles.includes(r));
}

/** The scheduled run as recorded with its decision. */
export function runFacts(run: ScheduledRun): JsonObject {
  return { schedule_id: run.id, schedule_decision_id: run.decision_id };
}
