/**
 * Creating a schedule (docs/schedules.md "Creating a schedule", FC-INV-6): the Gate hands an
 * allowed `schedule.create` call here in place of a tool run. The schedule is stored pending,
 * ledgered `schedule.created` in the creation's request, then made active; a creation the Gate
 * denies after all removes its schedule (`schedule.removed`) before the envelope is voided.
 */
import {
  canonicalize,
  deny,
  isDeny,
  nextSlot,
  parseScheduleSpec,
  SCHEDULE_CREATE_ACTION,
  sha256Hex,
} from '../kernel/index.js';
import type { Clock, JsonObject, JsonValue, ScheduleSpec } from '../kernel/index.js';
import type { ExecutionCall, ExecutionResult, GateExecutor, VoidCall } from '../gate/index.js';
import { decodeEnvelopeClaims } from '../gate/index.js';
import { GATE_ACTOR, scheduleIdOf, within } from './port.js';
import type { Append, ScheduleEntryType } from './port.js';
import type { ScheduleRecord, ScheduleStore } from './store.js';

/** The payload naming what a schedule is (its spec's timing and the call it runs, by digest). */
function specPayload(spec: JsonObject, parsed: ScheduleSpec): JsonObject {
  return {
    tool: parsed.tool,
    params_sha256: sha256Hex(canonicalize(parsed.params)),
    spec_sha256: sha256Hex(canonicalize(spec)),
    ...(typeof spec['cron'] === 'string' ? { cron: spec['cron'] } : {}),
    ...(typeof spec['at'] === 'string' ? { at: spec['at'] } : {}),
    ...(typeof spec['until'] === 'string' ? { until: spec['until'] } : {}),
    window_seconds: parsed.windowMs / 1000,
  };
}

/**
 * The Execution Layer port for a deployment without a schedule store: `schedule.create` denies
 * `ERR_SCHEDULE_UNAVAILABLE` (the Gate voids its envelope), everything else passes through.
 */
export function withoutSchedules(inner: GateExecutor): GateExecutor {
  return Object.freeze({
    execute: (
      call: ExecutionCall,
      writes?: Parameters<GateExecutor['execute']>[1],
      signal?: AbortSignal,
      relay?: Parameters<GateExecutor['execute']>[3],
    ) =>
      call.tool === SCHEDULE_CREATE_ACTION
        ? Promise.resolve(deny('ERR_SCHEDULE_UNAVAILABLE', 'this deployment has no schedule store'))
        : inner.execute(call, writes, signal, relay),
    void: (call: VoidCall, signal?: AbortSignal) => inner.void(call, signal),
  });
}

/** What creation needs. */
export interface CreationDeps {
  readonly store: ScheduleStore;
  readonly append: Append;
  readonly clock: Clock;
  readonly ms: number;
}

/** The creation steps over `deps`. */
export function createCreation(deps: CreationDeps): {
  readonly create: (call: ExecutionCall) => Promise<ExecutionResult>;
  readonly undoCreation: (call: VoidCall) => Promise<void>;
} {
  const { append, ms } = deps;
  /** Appends a Gate record of `type` in the trace and request of `call`. */
  const recordIn = (call: ExecutionCall | VoidCall, type: ScheduleEntryType, payload: JsonObject) =>
    append({
      type,
      trace_id: call.trace_id,
      request_id: call.request_id,
      tenant: call.tenant,
      actor: GATE_ACTOR,
      payload,
    });
  /** Turns an allowed `schedule.create` call into a schedule (docs/schedules.md "Creating"). */
  const create = async (call: ExecutionCall): Promise<ExecutionResult> => {
    const claims = decodeEnvelopeClaims(call.envelope) as Record<string, unknown> | undefined;
    const sub = claims?.['sub'];
    const decisionId = claims?.['decision_id'];
    const approvals = claims?.['approvals'];
    if (
      typeof sub !== 'string' ||
      typeof decisionId !== 'string' ||
      claims?.['tool'] !== SCHEDULE_CREATE_ACTION ||
      claims['tenant'] !== call.tenant ||
      claims['request_id'] !== call.request_id
    )
      return deny('ERR_ENVELOPE_CLAIMS', 'the creation envelope does not name this call');
    const spec = parseScheduleSpec(call.params);
    if (isDeny(spec)) return spec;
    const now = deps.clock();
    const first = nextSlot(spec.timing, now, spec.windowMs);
    if (first === undefined) return deny('ERR_PARAMS_INVALID', 'schedule: it would never fire');
    const id = scheduleIdOf(decisionId);
    const rec: ScheduleRecord = {
      id,
      tenant: call.tenant,
      identity: sub,
      tool: spec.tool,
      spec: call.params,
      decision_id: decisionId,
      request_id: call.request_id,
      status: 'pending',
      next_slot: first.start,
      created_at: now,
      last_run: null,
    };
    let inserted: boolean;
    try {
      inserted = await within(() => deps.store.insert(rec), ms);
    } catch {
      return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule store did not answer');
    }
    if (!inserted) return deny('ERR_REQUEST_REPLAYED', 'this creation already made its schedule');
    // Ledgered before it can fire: a pending row never fires, and stays pending if this fails.
    const ref = await recordIn(call, 'schedule.created', {
      schedule_id: id,
      client: sub,
      decision_id: decisionId,
      approvals: Array.isArray(approvals) ? (approvals as JsonValue[]) : [],
      next_slot: new Date(first.start).toISOString(),
      ...specPayload(call.params, spec),
    });
    if (ref === undefined) {
      await within(() => deps.store.setStatus(id, ['pending'], 'removed'), ms).catch(() => false);
      return deny('ERR_LEDGER_UNAVAILABLE', 'schedule.created not confirmed');
    }
    let activated = false;
    try {
      activated = await within(() => deps.store.setStatus(id, ['pending'], 'active'), ms);
    } catch {
      activated = false;
    }
    if (!activated) return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule store did not answer');
    return {
      outcome: 'executed',
      result: { schedule_id: id, tool: spec.tool, next_run: new Date(first.start).toISOString() },
      receipt: ref,
    };
  };

  /** Removes a creation's schedule before its envelope is voided (the Gate denies the creation). */
  const undoCreation = async (call: VoidCall): Promise<void> => {
    const claims = decodeEnvelopeClaims(call.envelope) as Record<string, unknown> | undefined;
    const decisionId = claims?.['decision_id'];
    if (typeof decisionId !== 'string') return;
    const id = scheduleIdOf(decisionId);
    const s = await within(() => deps.store.get(id), ms).catch(() => 'unknown' as const);
    // Nothing was stored (the creation failed before it), or it is removed already: nothing to do.
    if (s === undefined || (s !== 'unknown' && s.status === 'removed')) return;
    // Recorded first: the record alone stops the runs (a run's check reads it, `standing.ts`),
    // whether or not the store update below applies; either one is enough.
    await recordIn(call, 'schedule.removed', {
      schedule_id: id,
      decision_id: decisionId,
      status: 'removed',
      reason: `creation denied: ${call.code}`,
    });
    await within(() => deps.store.setStatus(id, ['pending', 'active', 'paused'], 'removed'), ms).catch(
      () => false,
    );
  };

  return { create, undoCreation };
}
