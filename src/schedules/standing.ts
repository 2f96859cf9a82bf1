/**
 * Whether a schedule still stands when the Control Plane decides one of its runs (docs/schedules.md
 * "Runs", FC-INV-6), read from the ledger as well as from the store, since the store alone can
 * say `active` when the truth is otherwise:
 *
 * - its creation was confirmed to its creator: the creation's trace holds the Gate's
 *   `gateway.completed` after its `schedule.created`, and no `gateway.failed`,
 *   `request.abandoned` or `schedule.removed` after it. A creation the Gate denied after all
 *   (its completion not confirmed) removes its schedule, but that removal can fail with the same
 *   store (on SQLite and PostgreSQL the ledger and the schedule store are one database): its
 *   schedule stayed `active` and fired although its creator was told deny;
 * - no removal is recorded for it (final, whatever was recorded after it), and the last operator
 *   change recorded for it (`schedule.paused`, `schedule.resumed`, `schedule.removed`, request
 *   id: the schedule's id) is not a pause: changes are ledgered before they are applied, so a
 *   slot taken in between would have run after the record;
 * - the store holds it `active`, for the same creation decision;
 * - its creator, when a registered client, is not revoked (`ERR_CLIENT_REVOKED`): the scheduler reads
 *   the registration before it takes a slot, and a revocation after that read would otherwise
 *   get one more run, decided with the revoked client's roles.
 *
 * Anything unreadable within the deadline denies (`ERR_SCHEDULE_UNAVAILABLE`).
 */
import { deny, settlesAttempt } from '../kernel/index.js';
import type { Deny, JsonObject } from '../kernel/index.js';
import type { ClientRegistry } from '../gate/index.js';
import { within } from './port.js';
import type { ScheduleStore } from './store.js';

/** A ledger entry as the check reads it. */
export interface StandingEntry {
  readonly index: number;
  readonly type: string;
  readonly request_id: string;
  readonly trace_id: string;
  readonly payload: JsonObject;
}

/** What {@link createScheduleStanding} reads. */
export interface StandingDeps {
  readonly store: ScheduleStore;
  /** The registered clients: a schedule's creator revoked since runs nothing more. */
  readonly clients: ClientRegistry;
  /** The ledger's entries of one request, ascending by index. */
  readonly entriesOf: (requestId: string) => Promise<readonly StandingEntry[]>;
  /** Deadline of the whole check (ms). */
  readonly ms: number;
}

/** The run as the check needs it: its schedule and the creation decision it names. */
export interface StandingRun {
  readonly id: string;
  readonly decision_id: string;
}

/**
 * A record undoing the creation: an outcome that settles its attempt (not a refusal before
 * acceptance, such as a replay of the creation's bytes, which lands in the same trace), or the
 * removal of its schedule.
 */
const undoes = (e: StandingEntry): boolean =>
  e.type === 'schedule.removed' ||
  ((e.type === 'gateway.failed' || e.type === 'request.abandoned') && settlesAttempt(e));
const CHANGES: ReadonlySet<string> = new Set(['schedule.paused', 'schedule.resumed', 'schedule.removed']);

/** The check: undefined when the schedule stands, else the deny its run gets. */
export function createScheduleStanding(deps: StandingDeps): (run: StandingRun) => Promise<Deny | undefined> {
  const standing = async (run: StandingRun): Promise<Deny | undefined> => {
    const refused = (reason: string): Deny => deny('ERR_SCHEDULE_NOT_APPROVED', reason);
    const s = await deps.store.get(run.id);
    if (s === undefined || s.decision_id !== run.decision_id) return refused('no such schedule');
    if (s.status !== 'active') return refused(`the schedule is ${s.status}`);
    // Read together: both within the one deadline of the check.
    const [creator, creation] = await Promise.all([
      deps.clients.lookup(s.identity),
      deps.entriesOf(s.request_id),
    ]);
    // A creator that is no registered client (an MCP OAuth principal) runs with no roles.
    if (creator !== undefined && creator.status !== 'active')
      return deny('ERR_CLIENT_REVOKED', 'the schedule’s creator is revoked');
    const created = creation.find(
      (e) =>
        e.type === 'schedule.created' &&
        e.payload['schedule_id'] === s.id &&
        e.payload['decision_id'] === s.decision_id,
    );
    if (created === undefined) return refused('the schedule’s creation is not recorded');
    const after = creation.filter((e) => e.trace_id === created.trace_id && e.index > created.index);
    const completed = after.some(
      (e) =>
        e.type === 'gateway.completed' &&
        e.payload['decision_id'] === s.decision_id &&
        e.payload['outcome'] === 'executed',
    );
    if (!completed || after.some(undoes))
      return refused('the schedule’s creation was not confirmed to its creator');
    const changes = (await deps.entriesOf(s.id)).filter(
      (e) => CHANGES.has(e.type) && e.payload['schedule_id'] === s.id,
    );
    // A removal is final: no resume recorded after it brings the schedule back.
    if (changes.some((e) => e.type === 'schedule.removed')) return refused('the schedule is removed');
    const last = changes.at(-1);
    if (last !== undefined && last.type !== 'schedule.resumed')
      return refused(`the schedule is ${last.type === 'schedule.paused' ? 'paused' : 'removed'}`);
    return undefined;
  };
  return async (run) => {
    try {
      return await within(() => standing(run), deps.ms);
    } catch {
      return deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule or its records could not be read');
    }
  };
}
