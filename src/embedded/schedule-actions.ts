/**
 * The operator's schedule actions (`POST /v1/admin/schedules-{list,pause,resume,remove}`,
 * `failclosed schedules …`, docs/schedules.md): over the scheduler, within the operator's tenant
 * scope, each change ledgered (`schedule.paused`, `schedule.resumed`, `schedule.removed`) with the
 * operator as actor before it applies (FC-INV-6, OE-INV-025).
 */
import { deny, isDeny, statusOf } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { OperatorActions, OperatorAnswer, OperatorIdentity } from '../gate/index.js';
import type { ScheduleChange, Scheduler } from '../schedules/index.js';
import { operatorActor } from './admin.js';

const ID = /^sch-[0-9a-f]{24}$/;

function obj(body: JsonValue): JsonObject {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as JsonObject) : {};
}

function answer(r: ScheduleChange): OperatorAnswer {
  if (isDeny(r))
    return { status: statusOf(r.code), body: { outcome: 'deny', code: r.code, reason: r.reason } };
  return { status: 200, body: { outcome: 'ok', schedule: { ...r.schedule } as unknown as JsonObject } };
}

/** `inner` with the schedule actions in front; without a scheduler they deny `ERR_SCHEDULE_UNAVAILABLE`. */
export function withScheduleActions(
  inner: OperatorActions,
  scheduler: Scheduler | undefined,
): OperatorActions {
  return Object.freeze({
    async run(action: string, body: JsonValue, who: OperatorIdentity): Promise<OperatorAnswer> {
      if (!action.startsWith('schedules-')) return inner.run(action, body, who);
      if (scheduler === undefined)
        return answer(deny('ERR_SCHEDULE_UNAVAILABLE', 'this deployment has no schedule store'));
      if (action === 'schedules-list') {
        try {
          const list = await scheduler.list(who.tenants);
          return { status: 200, body: { schedules: list.map((s) => ({ ...s })) } };
        } catch {
          return answer(deny('ERR_SCHEDULE_UNAVAILABLE', 'the schedule store did not answer'));
        }
      }
      const o = obj(body);
      const id = o['id'];
      const reason = o['reason'];
      if (typeof id !== 'string' || !ID.test(id))
        return answer(deny('ERR_REQUEST_MALFORMED', 'id must name a schedule (sch-…)'));
      if (typeof reason !== 'string' || reason.trim().length === 0 || reason.length > 500)
        return answer(deny('ERR_REQUEST_MALFORMED', 'a reason (1-500 characters) is required'));
      const actor = operatorActor(who);
      if (action === 'schedules-pause') return answer(await scheduler.pause(id, actor, who.tenants, reason));
      if (action === 'schedules-resume')
        return answer(await scheduler.resume(id, actor, who.tenants, reason));
      if (action === 'schedules-remove')
        return answer(await scheduler.remove(id, actor, who.tenants, reason));
      return inner.run(action, body, who);
    },
  });
}
