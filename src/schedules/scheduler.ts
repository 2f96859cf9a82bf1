/**
 * The Gate's scheduler (docs/schedules.md, FC-INV-6 "All scheduled tasks MUST use an approval
 * envelope with explicit expiry"). It never decides and never executes:
 *
 * - A schedule exists once the Control Plane allowed its `schedule.create` call (the scheduled call
 *   under policy, with its approvals): the Gate hands the allowed call to this module in place of
 *   a tool run, which stores the schedule, ledgers `schedule.created` in the creation's request,
 *   and answers with the schedule as the call's result.
 * - Each due slot is taken by one process (a compare-and-set on the stored next slot), once its
 *   creator's registration has been read (a registry that does not answer within the deadline
 *   leaves the slot due rather than take a slot it could not submit), and
 *   submitted through the Gate's own entry for authenticated principals (`callAs`) as a background
 *   call of the schedule's creator (`auth_method: schedule`): recorded, decided by the Control
 *   Plane against the schedule's approved creation and the slot (kill switch, lockdown,
 *   quarantine, breakers and policy all apply), enveloped with an `exp` at the slot's end at the
 *   latest, and run by the Execution Layer through the job queue, which verifies that envelope.
 *   A slot taken after its end (the clock jumped past it) is still submitted, and denied
 *   `ERR_SCHEDULE_SLOT_MISSED` with its ledger records; the slots wholly skipped meanwhile are not.
 * - Operators list, pause, resume and remove schedules; each change is ledgered before it applies.
 */
import { isDeny, nextSlot, parseScheduleSpec, SCHEDULE_CREATE_ACTION } from '../kernel/index.js';
import type { Clock, ScheduleSpec } from '../kernel/index.js';
import type {
  ClientRegistry,
  ExecutionCall,
  RegisteredClient,
  Gate,
  GateExecutor,
  OperatorTenants,
  VoidCall,
  VoidResult,
} from '../gate/index.js';
import { createChanges } from './changes.js';
import type { ChangeDeps, ScheduleChange, ScheduleView } from './changes.js';
import { createCreation } from './creation.js';
import { confirmedAppend, GATE_ACTOR, TimedOut, within } from './port.js';
import type { Actor, ScheduleLedger } from './port.js';
import type { ScheduleRecord, ScheduleStore } from './store.js';

/** Dependencies of {@link createScheduler}. */
export interface SchedulerDeps {
  readonly store: ScheduleStore;
  readonly ledger: ScheduleLedger;
  /** The registered clients: a run's principal has its creator's roles as registered now. */
  readonly clients: ClientRegistry;
  readonly clock: Clock;
  /** The ledger's entries of one request id: a resume reads the schedule's recorded changes. */
  readonly recorded: ChangeDeps['recorded'];
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

/** Creates the scheduler over its store and ledger. */
export function createScheduler(deps: SchedulerDeps): Scheduler {
  const ms = deps.timeoutMs ?? 5_000;
  let gate: Pick<Gate, 'callAs'> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<readonly RunReport[]> | undefined;
  const append = confirmedAppend(deps.ledger, ms);
  const { create, undoCreation } = createCreation({ store: deps.store, append, clock: deps.clock, ms });
  const changes = createChanges({
    store: deps.store,
    append,
    clock: deps.clock,
    ms,
    recorded: deps.recorded,
  });
  const changeStatus = changes.changeStatus;

  /**
   * The creator's registration as it is now, read before its slot is taken, for one round:
   * `undefined` when the registry failed or did not answer within the deadline (the slot stays
   * due). A registry that did not answer in time is not asked again in that round (every slot
   * left stays due, and the round waits for it once, however many schedules are due); one that
   * failed for one creator is still asked for the next (a bad row stops only its own schedules).
   */
  const registrations = () => {
    let down = false;
    return async (identity: string): Promise<RegisteredClient | null | undefined> => {
      if (down) return undefined;
      try {
        return (await within(async () => deps.clients.lookup(identity), ms)) ?? null;
      } catch (e) {
        if (e instanceof TimedOut) down = true;
        return undefined;
      }
    };
  };

  /** Submits one due slot of `s` (taken by this process) through the Gate, as its creator. */
  const fire = async (
    g: Pick<Gate, 'callAs'>,
    s: ScheduleRecord,
    spec: ScheduleSpec,
    roles: readonly string[],
    slotStart: number,
  ): Promise<RunReport> => {
    const answer = await g.callAs(
      { identity: s.identity, tenant: s.tenant, roles, auth_method: 'schedule', issuer: s.id },
      { tool: spec.tool, params: spec.params, session: null },
      {
        background: true,
        schedule: { id: s.id, decision_id: s.decision_id, spec: s.spec, slot_start: slotStart },
      },
    );
    const b = answer.body;
    return Object.freeze({
      schedule_id: s.id,
      slot_start: slotStart,
      request_id: b.request_id,
      outcome: b.outcome,
      code: b.outcome === 'deny' || b.outcome === 'pending' ? b.code : null,
    });
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
    const registration = registrations();
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
        // A slot is taken only once it could be submitted: with no Gate to submit through, or
        // the creator's registration unreadable, it stays due (docs/schedules.md).
        const g = gate;
        if (g === undefined) continue;
        const c = await registration(s.identity);
        if (c === undefined) continue;
        const claimed = await within(
          () => deps.store.claimSlot(s.id, slotStart, following?.start ?? null),
          ms,
        );
        if (!claimed) continue;
        // A creator revoked since gets no more runs: the process that took the slot pauses the
        // schedule (ledgered; when the ledger refuses the pause, the slot is spent unsubmitted
        // and the next one meets the same check) and submits nothing.
        const r =
          c !== null && c.status !== 'active'
            ? await changeStatus(
                s,
                ['active'],
                'paused',
                'schedule.paused',
                GATE_ACTOR,
                'the creator client is revoked',
              ).then(() =>
                Object.freeze({
                  schedule_id: s.id,
                  slot_start: slotStart,
                  request_id: null,
                  outcome: 'deny',
                  code: 'ERR_CLIENT_REVOKED',
                }),
              )
            : await fire(g, s, spec, c?.roles ?? [], slotStart);
        out.push(r);
        await within(
          () =>
            deps.store.noteRun(s.id, {
              request_id: r.request_id,
              slot_start: slotStart,
              outcome: r.outcome,
              code: r.code,
            }),
          ms,
        ).catch(() => undefined);
      } catch {
        // The next round tries again: a slot not taken is still due. A slot whose claim failed
        // late (committed after its deadline) or whose submission failed is gone unsubmitted:
        // docs/schedules.md says when that happens.
      }
    }
    return out;
  };

  /** One round at a time: a slow round is joined, not doubled. */
  const tick = (): Promise<readonly RunReport[]> => {
    ticking ??= tickOnce().finally(() => (ticking = undefined));
    return ticking;
  };

  return Object.freeze({
    executor(inner: GateExecutor): GateExecutor {
      return Object.freeze({
        execute: (
          call: ExecutionCall,
          writes?: Parameters<GateExecutor['execute']>[1],
          signal?: AbortSignal,
          relay?: Parameters<GateExecutor['execute']>[3],
        ) =>
          call.tool === SCHEDULE_CREATE_ACTION ? create(call) : inner.execute(call, writes, signal, relay),
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
    list: (tenants: OperatorTenants) => changes.list(tenants),
    pause: (id: string, actor: Actor, tenants: OperatorTenants, reason: string) =>
      changes.pause(id, actor, tenants, reason),
    resume: (id: string, actor: Actor, tenants: OperatorTenants, reason: string) =>
      changes.resume(id, actor, tenants, reason),
    remove: (id: string, actor: Actor, tenants: OperatorTenants, reason: string) =>
      changes.remove(id, actor, tenants, reason),
  });
}
