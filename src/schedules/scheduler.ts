/**
 * The Gate's scheduler (docs/schedules.md, FC-INV-6 "All scheduled tasks MUST use an approval
 * envelope with explicit expiry"). It never decides and never executes:
 *
 * - A schedule exists once the Control Plane allowed its `schedule.create` call (the scheduled call
 *   under policy, with its approvals): the Gate hands the allowed call to this module in place of
 *   a tool run, which stores the schedule, ledgers `schedule.created` in the creation's request,
 *   and answers with the schedule as the call's result.
 * - Each due slot is taken by one process (a compare-and-set on the stored next slot) and
 *   submitted through the Gate's own entry for authenticated principals (`callAs`) as a background
 *   call of the schedule's creator (`auth_method: schedule`): recorded, decided by the Control
 *   Plane against the schedule's approved creation and the slot (kill switch, lockdown,
 *   quarantine, breakers and policy all apply), enveloped with an `exp` at the slot's end at the
 *   latest, and run by the Execution Layer through the job queue, which verifies that envelope.
 *   A slot taken after its end (the clock jumped past it) is still submitted, and denied
 *   `ERR_SCHEDULE_SLOT_MISSED` with its ledger records; the slots wholly skipped meanwhile are not.
 * - Operators list, pause, resume and remove schedules; each change is ledgered before it applies.
 */
import { createHash } from 'node:crypto';
import {
  canonicalize,
  deny,
  isDeny,
  isLedgerRef,
  nextSlot,
  parseScheduleSpec,
  SCHEDULE_CREATE_ACTION,
  sha256Hex,
} from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue, ScheduleSpec } from '../kernel/index.js';
import type {
  ClientRegistry,
  ExecutionCall,
  ExecutionResult,
  Gate,
  GateExecutor,
  LedgerRef,
  OperatorTenants,
  VoidCall,
  VoidResult,
} from '../gate/index.js';
import { decodeEnvelopeClaims, operatorCovers } from '../gate/index.js';
import type { ScheduleRecord, ScheduleStatus, ScheduleStore } from './store.js';

/** Entry types the scheduler appends. */
export type ScheduleEntryType =
  'schedule.created' | 'schedule.paused' | 'schedule.resumed' | 'schedule.removed';

/** The ledger as the scheduler needs it: a confirmed append. */
export interface ScheduleLedger {
  append(entry: {
    readonly type: ScheduleEntryType;
    readonly trace_id: string;
    readonly request_id: string;
    readonly tenant: string;
    readonly actor: { readonly id: string; readonly role: string };
    readonly payload: JsonObject;
  }): Promise<unknown>;
}

/** Dependencies of {@link createScheduler}. */
export interface SchedulerDeps {
  readonly store: ScheduleStore;
  readonly ledger: ScheduleLedger;
  /** The registered clients: a run's principal has its creator's roles as registered now. */
  readonly clients: ClientRegistry;
  readonly clock: Clock;
  /** Deadline of one store or ledger step (ms, default 5,000). */
  readonly timeoutMs?: number;
}

/** How one due slot was submitted. */
export interface RunReport {
  readonly schedule_id: string;
  readonly slot_start: number;
  readonly request_id: string | null;
  /** `queued` once decided and handed to the job queue; `deny` (with its code) otherwise. */
  readonly outcome: string;
  readonly code: string | null;
}

/** A schedule as operators see it. */
export interface ScheduleView {
  readonly id: string;
  readonly tenant: string;
  readonly client: string;
  readonly tool: string;
  readonly status: ScheduleStatus;
  readonly cron: string | null;
  readonly at: string | null;
  readonly until: string | null;
  readonly window_seconds: number;
  readonly next_run: string | null;
  readonly decision_id: string;
  readonly last_run: JsonObject | null;
}

/** The result of an operator change: the schedule after it, or a deny. */
export type ScheduleChange = { readonly outcome: 'ok'; readonly schedule: ScheduleView } | Deny;

/** The scheduler. */
export interface Scheduler {
  /**
   * The Execution Layer port as the Gate uses it, with `schedule.create` turned into a schedule
   * instead of a tool run (everything else passes through). A void of a creation removes its
   * schedule first: a creation the Gate denies after all never fires.
   */
  executor(inner: GateExecutor): GateExecutor;
  /** The Gate whose `callAs` submits the runs; set once, before {@link Scheduler.tick} runs. */
  attach(gate: Pick<Gate, 'callAs'>): void;
  /** Submits every due slot once; what it did, schedule by schedule. Never rejects. */
  tick(): Promise<readonly RunReport[]>;
  /** Ticks every `intervalMs` (default 1,000) until {@link Scheduler.stop}. */
  start(intervalMs?: number): void;
  stop(): Promise<void>;
  /** The schedules of `tenants` (an operator's scope). */
  list(tenants: OperatorTenants): Promise<readonly ScheduleView[]>;
  pause(id: string, actor: Actor, tenants: OperatorTenants, reason: string): Promise<ScheduleChange>;
  resume(id: string, actor: Actor, tenants: OperatorTenants, reason: string): Promise<ScheduleChange>;
  remove(id: string, actor: Actor, tenants: OperatorTenants, reason: string): Promise<ScheduleChange>;
}

/** Who changes a schedule (recorded as the entry's actor). */
export interface Actor {
  readonly id: string;
  readonly role: string;
}

/** The actor of `schedule.created`: the Gate, which recorded the allowed creation. */
const GATE_ACTOR: Actor = Object.freeze({ id: 'scheduler', role: 'gate' });

async function within<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The schedule id of a creation decision: one schedule per approved creation. */
export function scheduleIdOf(decisionId: string): string {
  return `sch-${createHash('sha256').update(decisionId).digest('hex').slice(0, 24)}`;
}

function viewOf(r: ScheduleRecord): ScheduleView {
  const s = r.spec;
  return Object.freeze({
    id: r.id,
    tenant: r.tenant,
    client: r.identity,
    tool: r.tool,
    status: r.status,
    cron: typeof s['cron'] === 'string' ? s['cron'] : null,
    at: typeof s['at'] === 'string' ? s['at'] : null,
    until: typeof s['until'] === 'string' ? s['until'] : null,
    window_seconds: typeof s['window_seconds'] === 'number' ? s['window_seconds'] : 300,
    next_run: r.status === 'active' ? iso(r.next_slot) : null,
    decision_id: r.decision_id,
    last_run:
      r.last_run === null
        ? null
        : {
            request_id: r.last_run.request_id,
            slot: new Date(r.last_run.slot_start).toISOString(),
            outcome: r.last_run.outcome,
            code: r.last_run.code,
          },
  });
}

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
    execute: (call: ExecutionCall, writes?: Parameters<GateExecutor['execute']>[1], signal?: AbortSignal) =>
      call.tool === SCHEDULE_CREATE_ACTION
        ? Promise.resolve(deny('ERR_SCHEDULE_UNAVAILABLE', 'this deployment has no schedule store'))
        : inner.execute(call, writes, signal),
    void: (call: VoidCall, signal?: AbortSignal) => inner.void(call, signal),
  });
}

/** Creates the scheduler over its store and ledger. */
export function createScheduler(deps: SchedulerDeps): Scheduler {
  const ms = deps.timeoutMs ?? 5_000;
  let gate: Pick<Gate, 'callAs'> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<readonly RunReport[]> | undefined;

  const append = async (entry: Parameters<ScheduleLedger['append']>[0]): Promise<LedgerRef | undefined> => {
    try {
      const ref = await within(() => deps.ledger.append(entry), ms);
      return isLedgerRef(ref) ? { index: ref.index, entry_hash: ref.entry_hash } : undefined;
    } catch {
      return undefined;
    }
  };

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
    const ref = await append({
      type: 'schedule.created',
      trace_id: call.trace_id,
      request_id: call.request_id,
      tenant: call.tenant,
      actor: GATE_ACTOR,
      payload: {
        schedule_id: id,
        client: sub,
        decision_id: decisionId,
        approvals: Array.isArray(approvals) ? (approvals as JsonValue[]) : [],
        next_slot: new Date(first.start).toISOString(),
        ...specPayload(call.params, spec),
      },
    });
    if (ref === undefined) {
      await deps.store.setStatus(id, ['pending'], 'removed').catch(() => false);
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
    const removed = await deps.store
      .setStatus(id, ['pending', 'active', 'paused'], 'removed')
      .catch(() => false);
    if (removed)
      await append({
        type: 'schedule.removed',
        trace_id: call.trace_id,
        request_id: call.request_id,
        tenant: call.tenant,
        actor: GATE_ACTOR,
        payload: {
          schedule_id: id,
          decision_id: decisionId,
          status: 'removed',
          reason: `creation denied: ${call.code}`,
        },
      });
  };

  /** Submits one due slot of `s` (taken by this process) through the Gate. */
  const fire = async (s: ScheduleRecord, spec: ScheduleSpec, slotStart: number): Promise<RunReport> => {
    const report = (request_id: string | null, outcome: string, code: string | null): RunReport =>
      Object.freeze({ schedule_id: s.id, slot_start: slotStart, request_id, outcome, code });
    const g = gate;
    if (g === undefined) return report(null, 'deny', 'ERR_SCHEDULE_UNAVAILABLE');
    // The creator's roles as registered now; a client revoked since gets no more runs.
    let roles: readonly string[] = [];
    try {
      const c = await deps.clients.lookup(s.identity);
      if (c !== undefined && c.status !== 'active') {
        await changeStatus(
          s,
          ['active'],
          'paused',
          'schedule.paused',
          GATE_ACTOR,
          'the creator client is revoked',
        );
        return report(null, 'deny', 'ERR_CLIENT_REVOKED');
      }
      roles = c?.roles ?? [];
    } catch {
      return report(null, 'deny', 'ERR_CLIENT_REGISTRY_UNAVAILABLE');
    }
    const answer = await g.callAs(
      { identity: s.identity, tenant: s.tenant, roles, auth_method: 'schedule', issuer: s.id },
      { tool: spec.tool, params: spec.params, session: null },
      {
        background: true,
        schedule: { id: s.id, decision_id: s.decision_id, spec: s.spec, slot_start: slotStart },
      },
    );
    const b = answer.body;
    return report(b.request_id, b.outcome, b.outcome === 'deny' || b.outcome === 'pending' ? b.code : null);
  };

  const tickOnce = async (): Promise<readonly RunReport[]> => {
    const out: RunReport[] = [];
    const now = deps.clock();
    let due: readonly ScheduleRecord[];
    try {
      due = await within(() => deps.store.due(now), ms);
    } catch {
      return out;
    }
    for (const s of due) {
      try {
        const slotStart = s.next_slot;
        if (slotStart === null) continue;
        const spec = parseScheduleSpec(s.spec);
        if (isDeny(spec)) {
          await changeStatus(
            s,
            ['active'],
            'paused',
            'schedule.paused',
            GATE_ACTOR,
            'the stored schedule is malformed',
          );
          continue;
        }
        // The following slot; slots that ended before now are skipped, not submitted one by one.
        let following = nextSlot(spec.timing, slotStart + 1, spec.windowMs);
        if (following !== undefined && following.end <= now)
          following = nextSlot(spec.timing, now, spec.windowMs);
        const claimed = await within(
          () => deps.store.claimSlot(s.id, slotStart, following?.start ?? null),
          ms,
        );
        if (!claimed) continue;
        const r = await fire(s, spec, slotStart);
        out.push(r);
        await deps.store
          .noteRun(s.id, {
            request_id: r.request_id,
            slot_start: slotStart,
            outcome: r.outcome,
            code: r.code,
          })
          .catch(() => undefined);
      } catch {
        // The next tick tries again: a slot not claimed is still due; one claimed was submitted.
      }
    }
    return out;
  };

  /** One round at a time: a slow round is joined, not doubled. */
  const tick = (): Promise<readonly RunReport[]> => {
    ticking ??= tickOnce().finally(() => (ticking = undefined));
    return ticking;
  };

  /** Ledgers a status change, then applies it. */
  async function changeStatus(
    s: ScheduleRecord,
    from: readonly ScheduleStatus[],
    to: ScheduleStatus,
    type: Exclude<ScheduleEntryType, 'schedule.created'>,
    actor: Actor,
    reason: string,
    nextSlotMs?: number | null,
  ): Promise<ScheduleChange> {
    if (!from.includes(s.status)) return deny('ERR_REQUEST_MALFORMED', `the schedule is ${s.status}`);
    const at = deps.clock();
    const id = `${s.id}`;
    const ref = await append({
      type,
      trace_id: sha256Hex(canonicalize({ type, id, at })).slice(0, 32),
      request_id: id,
      tenant: s.tenant,
      actor,
      payload: {
        schedule_id: s.id,
        decision_id: s.decision_id,
        status: to,
        reason: reason.slice(0, 500),
        ...(nextSlotMs === undefined || nextSlotMs === null
          ? {}
          : { next_slot: new Date(nextSlotMs).toISOString() }),
      },
    });
    if (ref === undefined) return deny('ERR_LEDGER_UNAVAILABLE', `${type} not confirmed`);
    const applied = await within(() => deps.store.setStatus(s.id, from, to, nextSlotMs), ms).catch(
      () => false,
    );
    if (!applied)
      return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule changed meanwhile or the store did not answer');
    const after = await deps.store.get(s.id);
    return after === undefined
      ? deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule store did not answer')
      : { outcome: 'ok', schedule: viewOf(after) };
  }

  const mine = async (id: string, tenants: OperatorTenants): Promise<ScheduleRecord | Deny> => {
    let s: ScheduleRecord | undefined;
    try {
      s = await within(() => deps.store.get(id), ms);
    } catch {
      return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule store did not answer');
    }
    if (s === undefined || s.status === 'removed' || !operatorCovers(tenants, s.tenant))
      return deny('ERR_REQUEST_MALFORMED', 'no such schedule');
    return s;
  };

  return Object.freeze({
    executor(inner: GateExecutor): GateExecutor {
      return Object.freeze({
        execute: (
          call: ExecutionCall,
          writes?: Parameters<GateExecutor['execute']>[1],
          signal?: AbortSignal,
        ) => (call.tool === SCHEDULE_CREATE_ACTION ? create(call) : inner.execute(call, writes, signal)),
        async void(call: VoidCall, signal?: AbortSignal): Promise<VoidResult> {
          if (call.tool === SCHEDULE_CREATE_ACTION) await undoCreation(call).catch(() => undefined);
          return inner.void(call, signal);
        },
      });
    },
    attach(g: Pick<Gate, 'callAs'>) {
      gate = g;
    },
    tick,
    start(intervalMs = 1_000) {
      if (timer !== undefined) return;
      timer = setInterval(() => void tick(), intervalMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await ticking?.catch(() => undefined);
    },
    async list(tenants: OperatorTenants) {
      const all = await within(() => deps.store.list(), ms);
      return all.filter((s) => operatorCovers(tenants, s.tenant)).map(viewOf);
    },
    async pause(id: string, actor: Actor, tenants: OperatorTenants, reason: string) {
      const s = await mine(id, tenants);
      if (isDeny(s)) return s;
      return changeStatus(s, ['active'], 'paused', 'schedule.paused', actor, reason);
    },
    async resume(id: string, actor: Actor, tenants: OperatorTenants, reason: string) {
      const s = await mine(id, tenants);
      if (isDeny(s)) return s;
      const spec = parseScheduleSpec(s.spec);
      if (isDeny(spec)) return spec;
      // No catch-up: the slots that passed while paused are not run.
      const next = nextSlot(spec.timing, deps.clock(), spec.windowMs);
      return changeStatus(s, ['paused'], 'active', 'schedule.resumed', actor, reason, next?.start ?? null);
    },
    async remove(id: string, actor: Actor, tenants: OperatorTenants, reason: string) {
      const s = await mine(id, tenants);
      if (isDeny(s)) return s;
      return changeStatus(s, ['active', 'paused'], 'removed', 'schedule.removed', actor, reason);
    },
  });
}
