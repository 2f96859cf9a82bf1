/**
 * Operating schedules (docs/schedules.md "Operating schedules"): the operator's view of a schedule,
 * and pause, resume and remove, each ledgered (`schedule.paused`, `schedule.resumed`,
 * `schedule.removed`) before it applies, within the operator's tenant scope (OE-INV-025).
 */
import { canonicalize, deny, isDeny, nextSlot, parseScheduleSpec, sha256Hex } from '../kernel/index.js';
import type { Clock, Deny, JsonObject } from '../kernel/index.js';
import type { OperatorTenants } from '../gate/index.js';
import { operatorCovers } from '../gate/index.js';
import { iso, within } from './port.js';
import type { Actor, Append, ScheduleEntryType } from './port.js';
import type { ScheduleRecord, ScheduleStatus, ScheduleStore } from './store.js';

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

/** A stored schedule as operators see it. */
export function viewOf(r: ScheduleRecord): ScheduleView {
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

/** What the changes need. */
export interface ChangeDeps {
  readonly store: ScheduleStore;
  readonly append: Append;
  readonly clock: Clock;
  readonly ms: number;
  /** The ledger's entries of one request id (a schedule's changes are recorded under its id). */
  readonly recorded: (requestId: string) => Promise<readonly RecordedChange[]>;
}

/** A ledger entry as a change reads it. */
export interface RecordedChange {
  readonly type: string;
  readonly payload: JsonObject;
}

/** The operator changes over `deps`; `changeStatus` also serves the scheduler's own pauses. */
export function createChanges(deps: ChangeDeps) {
  const { append, ms } = deps;
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
    // The record rules from here on (a run's check reads it: `standing.ts`); the store follows.
    const applied = await within(() => deps.store.setStatus(s.id, from, to, nextSlotMs), ms).catch(
      () => undefined,
    );
    // Read back: an update that timed out may have committed since, and the answer says so.
    const after = await within(() => deps.store.get(s.id), ms).catch(() => undefined);
    if (applied === true || after?.status === to)
      return after === undefined
        ? deny(
            'ERR_SCHEDULE_UNAVAILABLE',
            `${type} is recorded and applied; the store did not answer its read-back`,
          )
        : { outcome: 'ok', schedule: viewOf(after) };
    return deny(
      'ERR_SCHEDULE_UNAVAILABLE',
      applied === false
        ? `${type} is recorded, but the schedule changed meanwhile`
        : `${type} is recorded, but the store did not confirm it: it may still apply`,
    );
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

  return {
    changeStatus,
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
      // A removal is final from the moment it is recorded, applied to the store or not (its
      // update failed): a resume would otherwise bring back what an operator removed.
      let changes: readonly RecordedChange[];
      try {
        changes = await within(() => deps.recorded(s.id), ms);
      } catch {
        return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule’s records could not be read');
      }
      if (changes.some((e) => e.type === 'schedule.removed' && e.payload['schedule_id'] === s.id))
        return deny(
          'ERR_REQUEST_MALFORMED',
          'the schedule is removed (recorded; remove it again to apply that to the store)',
        );
      const spec = parseScheduleSpec(s.spec);
      if (isDeny(spec)) return spec;
      // No catch-up: the slots that passed while paused are not run. Nor one taken before the
      // pause, on a clock that lags (set back, or another replica's): never before the stored
      // next slot, nor at or before the last slot run (a one-shot's next slot is none).
      const from = Math.max(
        deps.clock(),
        s.next_slot ?? -Infinity,
        (s.last_run?.slot_start ?? -Infinity) + 1,
      );
      const next = nextSlot(spec.timing, from, spec.windowMs);
      return changeStatus(s, ['paused'], 'active', 'schedule.resumed', actor, reason, next?.start ?? null);
    },
    async remove(id: string, actor: Actor, tenants: OperatorTenants, reason: string) {
      const s = await mine(id, tenants);
      if (isDeny(s)) return s;
      return changeStatus(s, ['active', 'paused'], 'removed', 'schedule.removed', actor, reason);
    },
  };
}
