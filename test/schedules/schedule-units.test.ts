/**
 * The Control Plane's schedule steps on their own (docs/schedules.md, FC-INV-6 scheduled tasks):
 * the `schedule.create` parameters, a run's slot and call checked against its approved spec, and
 * when a creation's approvals stand behind a run. Pure functions, fed with values built here.
 */
import { describe, expect, it } from 'vitest';
import {
  approvalsCover,
  checkRun,
  creationApproval,
  creationSpec,
  runSlot,
} from '../../src/control-plane/schedule-step.js';
import type { PendingRecord } from '../../src/control-plane/approvals/index.js';
import type { GovernedRequest, ScheduledRun } from '../../src/control-plane/index.js';
import { computeParamsSha256, isDeny, parseScheduleSpec, runRequestId } from '../../src/kernel/index.js';
import type { JsonObject, ScheduleSpec } from '../../src/kernel/index.js';

const SPEC: JsonObject = { tool: 'get_time', params: {}, cron: '30 2 * * *', window_seconds: 60 };
const SLOT = Date.parse('2026-12-05T02:30:00Z');
const run: ScheduledRun = { id: 'sch-1', decision_id: 'dec-create', spec: SPEC, slot_start: SLOT };
const req: GovernedRequest = {
  request_id: 'run-sch-1-20261205T023000.000Z',
  trace_id: 't'.repeat(32),
  identity: 'demo-agent',
  tenant: 'acme',
  tool: 'get_time',
  params: {},
  timestamp: SLOT,
  session: null,
  request_sha256: 'a'.repeat(64),
  schedule: run,
};
const PARAMS_SHA = computeParamsSha256({});

const codeOf = (r: unknown): string | undefined => (isDeny(r) ? (r as { code: string }).code : undefined);

describe('schedule.create parameters', () => {
  it('only schedule.create carries a spec; a bad one is ERR_PARAMS_INVALID', () => {
    expect(creationSpec({ tool: 'get_time', params: SPEC })).toBeUndefined();
    expect(isDeny(creationSpec({ tool: 'schedule.create', params: SPEC }) as never)).toBe(false);
    for (const params of [
      { ...SPEC, cron: '99 * * * *' },
      { ...SPEC, at: '2027-01-01T00:00:00Z' },
      { tool: 'get_time', params: {}, at: 'tomorrow' },
      { tool: 'get_time', params: {}, at: '2027-01-01T00:00:00Z', until: '2028-01-01T00:00:00Z' },
      { ...SPEC, window_seconds: 5 },
      { ...SPEC, window_seconds: 3601 },
      { ...SPEC, params: [] },
      { ...SPEC, tool: 'schedule.create' },
      { ...SPEC, surprise: true },
      [],
    ])
      expect(codeOf(creationSpec({ tool: 'schedule.create', params: params }))).toBe('ERR_PARAMS_INVALID');
  });

  it('a one-shot schedule: at, RFC 3339 UTC', () => {
    const s = parseScheduleSpec({ tool: 'get_time', params: {}, at: '2027-01-05T02:30:00Z' }) as ScheduleSpec;
    expect(s.timing).toEqual({ kind: 'at', at: Date.parse('2027-01-05T02:30:00Z') });
    expect(s.windowMs).toBe(300_000);
  });
});

describe('a run against its schedule and slot', () => {
  it('within the slot, the call its spec names → the slot', () => {
    expect(checkRun(req, run, PARAMS_SHA, SLOT)).toMatchObject({ slot: { start: SLOT, end: SLOT + 60_000 } });
    expect(checkRun(req, run, PARAMS_SHA, SLOT + 59_999)).toMatchObject({ slot: { start: SLOT } });
  });

  it('before the slot or from its end on → ERR_SCHEDULE_SLOT_MISSED', () => {
    expect(codeOf(checkRun(req, run, PARAMS_SHA, SLOT - 1))).toBe('ERR_SCHEDULE_SLOT_MISSED');
    expect(codeOf(checkRun(req, run, PARAMS_SHA, SLOT + 60_000))).toBe('ERR_SCHEDULE_SLOT_MISSED');
    expect(codeOf(checkRun(req, run, PARAMS_SHA, SLOT + 86_400_000))).toBe('ERR_SCHEDULE_SLOT_MISSED');
  });

  it('a slot start the schedule never fires → ERR_SCHEDULE_SLOT_MISSED, whatever the clock', () => {
    const odd = { ...run, slot_start: SLOT + 60_000 };
    expect(codeOf(runSlot(odd, parseScheduleSpec(SPEC) as ScheduleSpec))).toBe('ERR_SCHEDULE_SLOT_MISSED');
    expect(codeOf(checkRun(req, odd, PARAMS_SHA, SLOT + 61_000))).toBe('ERR_SCHEDULE_SLOT_MISSED');
  });

  it('a request id that is not the slot’s → ERR_SCHEDULE_NOT_APPROVED: one slot, one request id, one jti', () => {
    expect(runRequestId('sch-1', SLOT)).toBe(req.request_id);
    for (const request_id of ['run-1', runRequestId('sch-1', SLOT + 86_400_000), runRequestId('sch-2', SLOT)])
      expect(codeOf(checkRun({ ...req, request_id }, run, PARAMS_SHA, SLOT))).toBe(
        'ERR_SCHEDULE_NOT_APPROVED',
      );
  });

  it('another tool, other parameters, a malformed spec → ERR_SCHEDULE_NOT_APPROVED', () => {
    expect(codeOf(checkRun({ ...req, tool: 'echo' }, run, PARAMS_SHA, SLOT))).toBe(
      'ERR_SCHEDULE_NOT_APPROVED',
    );
    expect(codeOf(checkRun(req, run, computeParamsSha256({ x: 1 }), SLOT))).toBe('ERR_SCHEDULE_NOT_APPROVED');
    expect(codeOf(checkRun(req, { ...run, spec: { tool: 'get_time' } }, PARAMS_SHA, SLOT))).toBe(
      'ERR_SCHEDULE_NOT_APPROVED',
    );
  });
});

describe('the creation approval behind a run', () => {
  const pending = (over: Partial<PendingRecord> = {}): PendingRecord => ({
    decision_id: 'dec-create',
    kind: 'call',
    request_id: 'req-create',
    trace_id: 'x',
    identity: 'demo-agent',
    owner: 'ops',
    tenant: 'acme',
    tool: 'schedule.create',
    session: null,
    params_sha256: computeParamsSha256(SPEC),
    intent_sha256: 'i'.repeat(64),
    params_view: SPEC,
    preview: null,
    preview_sha256: null,
    risk: 'low',
    required: 2,
    roles: ['treasury'],
    policy_bundle: 'b'.repeat(64),
    decision_ref: { index: 1, entry_hash: 'c'.repeat(64) },
    constraints: null,
    created_at: 0,
    expires_at: 1,
    status: 'issued',
    approvals: ['a1', 'a2'],
    grant_id: null,
    ...over,
  });

  it('the issued creation of exactly this spec by the same principal and tenant', () => {
    expect(creationApproval(req, run, pending())).toBeDefined();
    expect(creationApproval(req, run, undefined)).toBeUndefined();
    for (const over of [
      { status: 'approved' as const },
      { status: 'pending' as const },
      { identity: 'other-agent' },
      { tenant: 'globex' },
      { tool: 'get_time' },
      { kind: 'policy_activation' as const },
      { params_sha256: computeParamsSha256({ ...SPEC, cron: '0 3 * * *' }) },
    ])
      expect(creationApproval(req, run, pending(over))).toBeUndefined();
  });

  it('covers a run when it had as many approvals, of roles the run’s policy accepts', () => {
    expect(approvalsCover(pending(), 2, ['treasury'])).toBe(true);
    expect(approvalsCover(pending(), 1, [])).toBe(true);
    expect(approvalsCover(pending(), 3, ['treasury'])).toBe(false);
    expect(approvalsCover(pending({ approvals: ['a1'] }), 2, [])).toBe(false);
    expect(approvalsCover(pending(), 2, ['finance'])).toBe(false);
    expect(approvalsCover(pending({ roles: [] }), 1, ['treasury'])).toBe(false);
    expect(approvalsCover(pending({ roles: ['treasury', 'finance'] }), 1, ['treasury'])).toBe(false);
  });
});
