/**
 * Schedules (docs/schedules.md, FC-INV-6 "All scheduled tasks MUST use an approval envelope with
 * explicit expiry"): every `schedule.created` follows an approval of its creation decision
 * finalised as approved (checked where the creation's records are); every scheduled run (a
 * request whose `gateway.accepted` says `auth_method: schedule`) names, as its issuer, a schedule
 * created earlier for the same creator, tenant and tool; and every decision of a run that names
 * its schedule's creation has a matching earlier `schedule.created` (`schedule-links.ts`). The
 * run's envelope window itself is checked by receipt linkage like any other.
 */
import { SCHEDULE_CREATE_ACTION } from '../../kernel/index.js';
import { linkageOf } from '../linkage.js';
import { scheduleCreations, standingCreation } from '../schedule-links.js';
import type { Finding, VerifyCheck } from '../types.js';
import { entryFinding } from './util.js';

export const schedulesCheck: VerifyCheck = {
  id: 'schedules',
  title:
    'schedules are created only once approved, and each run belongs to an earlier schedule of its creator',
  requirements: ['FC-INV-6'],
  unit: 'requests',
  run: (ctx) => {
    const out: Finding[] = [];
    const l = linkageOf(ctx);
    const created = scheduleCreations(l);
    for (const s of created) {
      const id = s.entry.payload['decision_id'];
      if (typeof id !== 'string') {
        out.push(entryFinding(s, 'SCHEDULE_UNAPPROVED', 'schedule.created names no decision'));
        continue;
      }
      // Checked with its own request's records (`ctx.owns`), where its decision must be: a record
      // naming a decision its request does not hold (made up) stands on nothing.
      const d = l.decisions.get(id);
      if (d === undefined) {
        if (ctx.owns(s.position))
          out.push({
            ...entryFinding(s, 'SCHEDULE_UNAPPROVED', `its request holds no decision ${id}`),
            // The decision may lie before a range or trace export.
            partial: true,
          });
        continue;
      }
      // The decision must be this schedule's creation: not another call's approved decision.
      const dp = d.entry.payload;
      const sp = s.entry.payload;
      if (
        dp['tool'] !== SCHEDULE_CREATE_ACTION ||
        d.entry.request_id !== s.entry.request_id ||
        d.entry.tenant !== s.entry.tenant ||
        dp['client'] !== sp['client'] ||
        typeof sp['spec_sha256'] !== 'string' ||
        dp['params_sha256'] !== sp['spec_sha256']
      ) {
        out.push(
          entryFinding(
            s,
            'SCHEDULE_UNAPPROVED',
            `decision ${id} is not the creation of this schedule (another call, client, tenant or spec)`,
          ),
        );
        continue;
      }
      const approved = l
        .find('approval.finalized', id)
        .some((f) => f.entry.index < s.entry.index && f.entry.payload['verdict'] === 'approve');
      if (d.entry.index > s.entry.index || d.entry.payload['outcome'] !== 'escalate' || !approved)
        out.push(
          entryFinding(
            s,
            'SCHEDULE_UNAPPROVED',
            `the schedule was created without an earlier approval of decision ${id} finalised as approved`,
          ),
        );
    }
    for (const v of l.views) {
      const p = v.entry.payload;
      if (v.entry.type === 'gateway.accepted' && p['auth_method'] === 'schedule') {
        const ok = created.some(
          (s) =>
            s.entry.index < v.entry.index &&
            s.entry.payload['schedule_id'] === p['issuer'] &&
            s.entry.tenant === v.entry.tenant &&
            s.entry.payload['client'] === p['client'] &&
            s.entry.payload['tool'] === p['tool'],
        );
        if (!ok)
          out.push(
            entryFinding(
              v,
              'SCHEDULE_UNBOUND',
              `the scheduled run names no earlier schedule ${JSON.stringify(p['issuer'] ?? null)} of its client and tool`,
            ),
          );
      }
      if (v.entry.type === 'decision' && typeof p['schedule_decision_id'] === 'string') {
        if (standingCreation(l, v, v.entry.index) === undefined)
          out.push(
            entryFinding(
              v,
              'SCHEDULE_UNBOUND',
              'the run decision names a schedule creation with no earlier matching schedule.created',
              // The creation may lie before a range or trace export.
            ),
          );
      }
    }
    return out;
  },
};
