/**
 * How a scheduled run links to its schedule offline (docs/schedules.md, FC-INV-6 scheduled tasks):
 * the run's decision names `schedule_decision_id`, the decision of the schedule's creation; the
 * Gate's `schedule.created` record (seen by every request group, like key records) names that
 * decision and the scheduled call (creator, tenant, tool, parameter hash). The creation's own
 * approvals are checked in its request by the `schedules` check; a run's escalated decision stands
 * on them only through such a record, earlier than the run's envelope.
 */
import type { Linkage, View } from './linkage.js';

/** Every `schedule.created` record of the bundle part being checked, in order. */
export function scheduleCreations(l: Linkage): readonly View[] {
  return l.views.filter((v) => v.entry.type === 'schedule.created');
}

/**
 * The `schedule.created` record an escalated run decision `d` stands on: it names the decision's
 * `schedule_decision_id`, lies before `before`, and schedules exactly the decided call. Undefined
 * when the decision names no schedule or none matches.
 */
export function standingCreation(l: Linkage, d: View, before: number): View | undefined {
  const p = d.entry.payload;
  const id = p['schedule_decision_id'];
  if (typeof id !== 'string') return undefined;
  return scheduleCreations(l).find((s) => {
    const q = s.entry.payload;
    return (
      s.entry.index < before &&
      q['decision_id'] === id &&
      s.entry.tenant === d.entry.tenant &&
      q['client'] === p['client'] &&
      q['tool'] === p['tool'] &&
      q['params_sha256'] === p['params_sha256'] &&
      (p['schedule_id'] === undefined || q['schedule_id'] === p['schedule_id'])
    );
  });
}
