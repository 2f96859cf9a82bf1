/**
 * Scheduled calls end to end (docs/schedules.md; FC-INV-6 "All scheduled tasks MUST use an
 * approval envelope with explicit expiry"): a nightly schedule is a governed `schedule.create`
 * call that waits for an approval (nothing exists, nothing runs before it); once approved, each
 * slot is submitted through the Gate as a background call of the creator, decided again by the
 * Control Plane and run by the Execution Layer under an envelope that expires at the slot's end.
 * A clock jump past a slot, the kill switch, a pause and a removal each stop a run, with a code
 * and a ledger record where a run was submitted; the exported ledger verifies offline. The clock
 * is injected and moved; the scheduler is ticked by the test, never by real minutes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import type { RunReport, Scheduler } from '../../src/schedules/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { startRig } from '../approvals/support.js';
import { openBundle, renderBundle, resignWithDeploymentKeys } from '../e2e/forge-ledger.js';
import { TINY_LIMITS } from '../verify/v2.js';
import type { Rec } from '../e2e/forge-ledger.js';
import type { Rig } from '../approvals/support.js';

let rig: Rig;
let scheduler: Scheduler;
let aliceKey: SigningKey;
let bobKey: SigningKey;
const NIGHTLY = { tool: 'get_time', params: {}, cron: '30 2 * * *', window_seconds: 120 };
const DAY = 24 * 3600 * 1000;

/** Sets the injected clock to `ms` since the epoch. */
function setClock(ms: number): void {
  rig.advance(ms - rig.now());
}

interface Entry {
  readonly type: string;
  readonly payload: Record<string, unknown>;
  readonly actor: { readonly id: string; readonly role: string };
}

async function records(requestId: string): Promise<Entry[]> {
  const a = await rig.instance.core.gate.evidence(requestId, `Bearer ${readOperatorToken(rig.dir)}`);
  expect(a.status).toBe(200);
  return ((a.body as unknown as { records: { entry: Entry }[] }).records ?? []).map((r) => r.entry);
}

/** Waits (real time, bounded) until the background run has its outcome record. */
async function outcomeOf(requestId: string): Promise<Entry> {
  for (let i = 0; i < 200; i += 1) {
    const end = (await records(requestId)).find(
      (e) => e.type === 'gateway.completed' || e.type === 'gateway.failed',
    );
    if (end !== undefined) return end;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no outcome for ${requestId}`);
}

async function tickAt(ms: number): Promise<readonly RunReport[]> {
  setClock(ms);
  return scheduler.tick();
}

let scheduleId = '';
let firstSlot = 0;

beforeAll(async () => {
  rig = await startRig(undefined, undefined, { scheduleTickMs: 0 });
  const s = rig.instance.core.scheduler;
  if (s === undefined) throw new Error('no scheduler');
  scheduler = s;
  const a = await rig.addApprover('alice', ['treasury']);
  expect(a.status).toBe(201);
  aliceKey = a.key;
  const b = await rig.addApprover('bob', ['treasury']);
  expect(b.status).toBe(201);
  bobKey = b.key;
}, 60_000);

afterAll(async () => {
  await rig?.close();
});

describe('scheduled calls (embedded, demo policy)', () => {
  it('a schedule waits for its approval: nothing is scheduled and nothing runs before it', async () => {
    const agent = rig.agent();
    const first = await agent.call('schedule.create', NIGHTLY);
    expect(first).toMatchObject({ outcome: 'pending', status: 202 });
    if (first.outcome !== 'pending') throw new Error('expected pending');
    expect(await scheduler.list('*')).toEqual([]);
    // Time passes without an approval: nothing fires.
    expect(await tickAt(rig.now() + 30 * 60_000)).toEqual([]);
    // Retried before the approval: still pending.
    const early = await agent.call('schedule.create', NIGHTLY, { requestId: first.request_id });
    expect(early.outcome).toBe('pending');

    const ok = await rig
      .approver('alice', aliceKey)
      .decide(first.decision_id, 'approve', 'nightly clock check');
    expect(ok.status).toBe(200);
    const made = await agent.call('schedule.create', NIGHTLY, { requestId: first.request_id });
    expect(made).toMatchObject({ outcome: 'executed' });
    if (made.outcome !== 'executed') throw new Error('expected executed');
    const result = made.result as { schedule_id: string; next_run: string };
    scheduleId = result.schedule_id;
    firstSlot = Date.parse(result.next_run);
    expect(new Date(firstSlot).toISOString()).toMatch(/T02:30:00\.000Z$/);
    const [listed] = await scheduler.list('*');
    expect(listed).toMatchObject({ id: scheduleId, status: 'active', tool: 'get_time', cron: '30 2 * * *' });
    const types = (await records(first.request_id)).map((e) => e.type);
    expect(types).toContain('approval.finalized');
    expect(types.indexOf('schedule.created')).toBeLessThan(types.lastIndexOf('gateway.completed'));
    // The operator's CLI lists it.
    const shown = await rig.cli('schedules', 'list');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.out)).toMatchObject({
      schedules: [{ id: scheduleId, status: 'active', client: 'demo-agent', next_run: result.next_run }],
    });
    // Before its slot: nothing is due.
    expect(await tickAt(firstSlot - 1000)).toEqual([]);
  }, 30_000);

  it('runs at its slot as its creator, under an envelope that expires at the slot end', async () => {
    const [run] = await tickAt(firstSlot + 5_000);
    expect(run).toMatchObject({
      schedule_id: scheduleId,
      slot_start: firstSlot,
      outcome: 'queued',
      code: null,
    });
    const end = await outcomeOf(run?.request_id ?? '');
    expect(end).toMatchObject({
      type: 'gateway.completed',
      payload: { outcome: 'executed', tool: 'get_time' },
    });
    const entries = await records(run?.request_id ?? '');
    const accepted = entries.find((e) => e.type === 'gateway.accepted');
    expect(accepted?.payload).toMatchObject({
      auth_method: 'schedule',
      issuer: scheduleId,
      client: 'demo-agent',
    });
    const decision = entries.find((e) => e.type === 'decision');
    expect(decision?.payload).toMatchObject({ outcome: 'allow', schedule_id: scheduleId });
    const issued = entries.find((e) => e.type === 'envelope.issued');
    expect(issued?.payload['exp']).toBeLessThanOrEqual((firstSlot + 120_000) / 1000);
    expect(entries.map((e) => e.type)).toContain('execution.receipt');
    // A second tick in the same slot submits nothing more.
    expect(await scheduler.tick()).toEqual([]);
  }, 30_000);

  it('a slot runs once: a resume on a clock that lags does not hand it out again, and a slot submitted twice is ERR_REQUEST_REPLAYED', async () => {
    // A schedule of its own, run at its first slot.
    const agent = rig.agent();
    const spec = { tool: 'get_time', params: {}, cron: '45 3 * * *', window_seconds: 120 };
    const first = await agent.call('schedule.create', spec);
    if (first.outcome !== 'pending') throw new Error('expected pending');
    const ok = await rig.approver('alice', aliceKey).decide(first.decision_id, 'approve', 'clock check');
    expect(ok.status).toBe(200);
    const made = await agent.call('schedule.create', spec, { requestId: first.request_id });
    if (made.outcome !== 'executed') throw new Error(`expected executed: ${JSON.stringify(made)}`);
    const { schedule_id: id, next_run } = made.result as { schedule_id: string; next_run: string };
    const slot = Date.parse(next_run);
    try {
      const [run] = await tickAt(slot + 5_000);
      expect(run).toMatchObject({ schedule_id: id, slot_start: slot, outcome: 'queued' });
      const requestId = run?.request_id ?? '';
      expect(await outcomeOf(requestId)).toMatchObject({ type: 'gateway.completed' });
      // Paused, then resumed on a clock 20 s behind the slot's start (a clock stepped back, or a
      // replica whose clock lags): "the next slot after now" would be the slot that has just run.
      expect((await rig.operator('schedules-pause', { id, reason: 'check' })).status).toBe(200);
      setClock(slot - 20_000);
      const resumed = await rig.operator('schedules-resume', { id, reason: 'resumed' });
      expect(resumed).toMatchObject({
        status: 200,
        body: { schedule: { status: 'active', next_run: new Date(slot + DAY).toISOString() } },
      });
      expect(await tickAt(slot + 30_000)).toEqual([]);
      // The slot submitted again, as a scheduler over another store or with a stale view would:
      // refused at the Gate under the slot's own request id, nothing issued or run again.
      const again = await rig.instance.core.gate.callAs(
        { identity: 'demo-agent', tenant: 'acme', roles: [], auth_method: 'schedule', issuer: id },
        { tool: 'get_time', params: {}, session: null },
        { background: true, schedule: { id, decision_id: first.decision_id, spec, slot_start: slot } },
      );
      expect(again.body).toMatchObject({
        outcome: 'deny',
        code: 'ERR_REQUEST_REPLAYED',
        request_id: requestId,
      });
      const types = (await records(requestId)).map((e) => e.type);
      expect(types.filter((t) => t === 'envelope.issued')).toHaveLength(1);
      expect(types.filter((t) => t === 'execution.receipt')).toHaveLength(1);
      expect(types.at(-1)).toBe('gateway.failed');
      // The run's request id names its slot: one slot, one request id, one derived envelope nonce.
      expect(requestId).toBe(`run-${id}-${new Date(slot).toISOString().replace(/[-:]/g, '')}`);
    } finally {
      expect((await rig.operator('schedules-remove', { id, reason: 'test over' })).status).toBe(200);
      setClock(firstSlot + 5_000);
    }
  }, 30_000);

  it('a clock jump past a slot denies that run ERR_SCHEDULE_SLOT_MISSED and records it', async () => {
    // The next slot is the following night; the clock jumps past its end.
    const [run] = await tickAt(firstSlot + DAY + 10 * 60_000);
    expect(run).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SCHEDULE_SLOT_MISSED',
      slot_start: firstSlot + DAY,
    });
    const entries = await records(run?.request_id ?? '');
    expect(entries.find((e) => e.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SCHEDULE_SLOT_MISSED',
    });
    expect(entries.find((e) => e.type === 'gateway.failed')?.payload).toMatchObject({
      code: 'ERR_SCHEDULE_SLOT_MISSED',
    });
    expect(entries.map((e) => e.type)).not.toContain('envelope.issued');
  }, 30_000);

  it('the kill switch, a lockdown, a quarantine each deny a run with their code, recorded; released, the next slot runs', async () => {
    expect((await rig.operator('kill-switch', { on: true, reason: 'incident drill' })).status).toBe(200);
    try {
      const [run] = await tickAt(firstSlot + 2 * DAY + 1_000);
      expect(run).toMatchObject({ outcome: 'deny', code: 'ERR_KILL_SWITCH' });
      const entries = await records(run?.request_id ?? '');
      expect(entries.find((e) => e.type === 'decision')?.payload).toMatchObject({ code: 'ERR_KILL_SWITCH' });
    } finally {
      expect((await rig.operator('kill-switch', { on: false, reason: 'drill over' })).status).toBe(200);
    }
    // A tenant lockdown and a quarantine of the creator's sessionless calls deny the same way.
    expect((await rig.operator('lockdown', { tenant: 'acme', on: true, reason: 'drill' })).status).toBe(200);
    try {
      const [run] = await tickAt(firstSlot + 3 * DAY + 1_000);
      expect(run).toMatchObject({ outcome: 'deny', code: 'ERR_TENANT_LOCKDOWN' });
    } finally {
      expect(
        (await rig.operator('lockdown', { tenant: 'acme', on: false, reason: 'drill over' })).status,
      ).toBe(200);
    }
    expect(
      (await rig.operator('quarantine', { session: 'client:demo-agent', on: true, reason: 'drill' })).status,
    ).toBe(200);
    try {
      const [run] = await tickAt(firstSlot + 4 * DAY + 1_000);
      expect(run).toMatchObject({ outcome: 'deny', code: 'ERR_SESSION_QUARANTINED' });
    } finally {
      expect(
        (await rig.operator('quarantine', { session: 'client:demo-agent', on: false, reason: 'drill over' }))
          .status,
      ).toBe(200);
    }
    const [next] = await tickAt(firstSlot + 5 * DAY + 1_000);
    expect(next).toMatchObject({ outcome: 'queued' });
    await outcomeOf(next?.request_id ?? '');
  }, 30_000);

  it('a paused schedule does not run; resumed, it runs from the next slot; removed, never again', async () => {
    const paused = await rig.cli('schedules', 'pause', scheduleId, '--reason', 'maintenance');
    expect(paused.code).toBe(0);
    expect(JSON.parse(paused.out)).toMatchObject({ schedule: { status: 'paused' } });
    // Paused twice: refused, nothing changes.
    expect((await rig.operator('schedules-pause', { id: scheduleId, reason: 'again' })).status).toBe(400);
    expect(await tickAt(firstSlot + 7 * DAY + 1_000)).toEqual([]);
    const resumed = await rig.operator('schedules-resume', { id: scheduleId, reason: 'maintenance done' });
    expect(resumed).toMatchObject({ status: 200, body: { schedule: { status: 'active' } } });
    // No catch-up of the slot missed while paused: the next one is the following night.
    expect(await tickAt(firstSlot + 7 * DAY + 1_000)).toEqual([]);
    const [run] = await tickAt(firstSlot + 8 * DAY + 1_000);
    expect(run).toMatchObject({ outcome: 'queued' });
    await outcomeOf(run?.request_id ?? '');
    const removed = await rig.operator('schedules-remove', { id: scheduleId, reason: 'no longer needed' });
    expect(removed).toMatchObject({ status: 200, body: { schedule: { status: 'removed' } } });
    expect(await tickAt(firstSlot + 9 * DAY + 1_000)).toEqual([]);
    expect(await scheduler.list('*')).toEqual([]);
    // Each change is ledgered with the operator as actor, under the schedule's id.
    const types = (await records(scheduleId)).map((e) => e.type);
    expect(types).toEqual(['schedule.paused', 'schedule.resumed', 'schedule.removed']);
  }, 30_000);

  it('a schedule of a call policy denies is denied; one whose policy wants two approvals waits for both', async () => {
    const agent = rig.agent();
    const denied = await agent.call('schedule.create', {
      tool: 'transfer_funds',
      params: { from_account: 'acct_a', to_account: 'acct_b', amount: 60000, currency: 'USD' },
      cron: '0 3 * * *',
    });
    expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    const big = {
      tool: 'transfer_funds',
      params: { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' },
      cron: '0 3 * * 1',
    };
    const first = await agent.call('schedule.create', big);
    if (first.outcome !== 'pending') throw new Error('expected pending');
    await rig.approver('alice', aliceKey).decide(first.decision_id, 'approve', 'weekly vendor payment');
    const half = await agent.call('schedule.create', big, { requestId: first.request_id });
    expect(half.outcome).toBe('pending');
    expect(await scheduler.list('*')).toEqual([]);
    await rig.approver('bob', bobKey).decide(first.decision_id, 'approve', 'second pair of eyes');
    const made = await agent.call('schedule.create', big, { requestId: first.request_id });
    expect(made.outcome).toBe('executed');
    const next = Date.parse((made as unknown as { result: { next_run: string } }).result.next_run);
    // Its runs stand on the creation's two treasury approvals: no fresh wait.
    const [run] = await tickAt(next + 1_000);
    expect(run).toMatchObject({ outcome: 'queued' });
    const end = await outcomeOf(run?.request_id ?? '');
    expect(end).toMatchObject({ type: 'gateway.completed', payload: { outcome: 'executed' } });
  }, 30_000);

  it('bad schedules are refused before any decision: malformed cron, unknown members', async () => {
    const agent = rig.agent();
    for (const params of [
      { tool: 'get_time', params: {}, cron: '61 * * * *' },
      { tool: 'get_time', params: {}, cron: '* * * * *', at: '2030-01-01T00:00:00Z' },
      { tool: 'get_time', params: {}, cron: '* * * * *', extra: 1 },
      { tool: 'schedule.create', params: {}, cron: '* * * * *' },
    ])
      expect(await agent.call('schedule.create', params)).toMatchObject({
        outcome: 'deny',
        code: 'ERR_PARAMS_INVALID',
      });
  });

  it('the exported ledger verifies offline', async () => {
    const out = join(rig.dir, 'audit.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(
      report.checks.filter((c) => c.status === 'fail').map((c) => [c.id, c.findings?.slice(0, 3)]),
    ).toEqual([]);
    expect(report.exitCode).toBe(0);
    expect(report.checks.find((c) => c.id === 'schedules')?.status).toBe('pass');
    // The same with the streaming reader's tiniest limits: a request's records may be checked in
    // several groups (a creation's first attempt answered pending, then a replay of its bytes
    // refused at ingress, its retry much later), and a schedule.created still finds its decision.
    const tiny = verifyBundle(readFileSync(out), { trust: readFileSync(trust), ...TINY_LIMITS });
    expect(
      tiny.checks.filter((c) => c.status === 'fail').map((c) => [c.id, c.findings?.slice(0, 3)]),
    ).toEqual([]);
    // Forensic replay re-derives the creations as the Control Plane decided them (a run, minted
    // by the Gate, is not re-derivable from a client signature and is listed as such).
    const replay = await rig.cli('replay', '--bundle', out, '--trust', trust, '--json');
    expect(replay.err).toBe('');
    expect(replay.out).not.toContain('REPLAY_MISMATCH');
    const summary = (JSON.parse(replay.out) as { summary: Record<string, number> }).summary;
    expect(summary).toMatchObject({ mismatch: 0 });
    expect(summary['match']).toBeGreaterThanOrEqual(4);
    expect(replay.code).toBe(0);
  }, 60_000);

  it('a forger holding every deployment key cannot unhook a run from its approved schedule past verify', () => {
    const out = join(rig.dir, 'audit.json');
    const trust = join(rig.dir, 'trust-roots.json');
    const original = readFileSync(out, 'utf8');
    const findingsOf = (edit: (entries: Rec[]) => void): string[] => {
      const b = openBundle(original);
      edit(b.entries);
      resignWithDeploymentKeys(b, rig.dir);
      const report = verifyBundle(Buffer.from(renderBundle(b)), { trust: readFileSync(trust) });
      expect(report.exitCode).toBe(1);
      const check = report.checks.find((c) => c.id === 'schedules');
      expect(check?.status).toBe('fail');
      return (check?.findings ?? []).map((f) => f.code);
    };
    const runDecision = (entries: Rec[]): Rec => {
      const d = entries.find(
        (e) => e['type'] === 'decision' && e['payload']['schedule_decision_id'] !== undefined,
      );
      if (d === undefined) throw new Error('no run decision');
      return d;
    };
    // A run decision pointed at a creation that made no schedule.
    expect(
      findingsOf((entries) => {
        runDecision(entries)['payload']['schedule_decision_id'] = 'dec_forged';
      }),
    ).toContain('SCHEDULE_UNBOUND');
    // A run claiming a schedule that does not exist.
    expect(
      findingsOf((entries) => {
        const a = entries.find(
          (e) => e['type'] === 'gateway.accepted' && e['payload']['auth_method'] === 'schedule',
        );
        if (a === undefined) throw new Error('no run');
        a['payload']['issuer'] = 'sch-000000000000000000000000';
      }),
    ).toContain('SCHEDULE_UNBOUND');
    // A schedule whose creation's approval is made to name another decision.
    expect(
      findingsOf((entries) => {
        const created = entries.find((e) => e['type'] === 'schedule.created');
        const fin = entries.find(
          (e) =>
            e['type'] === 'approval.finalized' &&
            e['payload']['decision_id'] === created?.['payload']['decision_id'],
        );
        if (fin === undefined) throw new Error('no finalisation');
        fin['payload']['decision_id'] = 'dec_other';
      }),
    ).toContain('SCHEDULE_UNAPPROVED');
    // A schedule.created naming a decision that does not exist, and a run standing on it: before,
    // a record whose decision was not found was skipped, and the run's escalation stood on it.
    const created = (entries: Rec[]): Rec => {
      const c = entries.find((e) => e['type'] === 'schedule.created');
      if (c === undefined) throw new Error('no schedule.created');
      return c;
    };
    expect(
      findingsOf((entries) => {
        const c = created(entries);
        const was = c['payload']['decision_id'];
        c['payload']['decision_id'] = 'dec_made_up';
        for (const e of entries)
          if (e['type'] === 'decision' && e['payload']['schedule_decision_id'] === was)
            e['payload']['schedule_decision_id'] = 'dec_made_up';
      }),
    ).toEqual(['SCHEDULE_UNAPPROVED']);
    // The same, the record naming no request and no trace (so that it joined no request's group).
    expect(
      findingsOf((entries) => {
        const c = created(entries);
        const was = c['payload']['decision_id'];
        c['payload']['decision_id'] = 'dec_made_up';
        c['request_id'] = '';
        c['trace_id'] = '';
        for (const e of entries)
          if (e['type'] === 'decision' && e['payload']['schedule_decision_id'] === was)
            e['payload']['schedule_decision_id'] = 'dec_made_up';
      }),
    ).toContain('SCHEDULE_UNAPPROVED');
    // A schedule.created borrowing another call's approved decision.
    expect(
      findingsOf((entries) => {
        const c = created(entries);
        const other = entries.find(
          (e) =>
            e['type'] === 'approval.finalized' &&
            e['payload']['verdict'] === 'approve' &&
            e['payload']['decision_id'] !== c['payload']['decision_id'],
        );
        if (other === undefined) throw new Error('no other approved decision');
        const id = other['payload']['decision_id'];
        const was = c['payload']['decision_id'];
        c['payload']['decision_id'] = id;
        for (const e of entries)
          if (e['type'] === 'decision' && e['payload']['schedule_decision_id'] === was)
            e['payload']['schedule_decision_id'] = id;
      }),
    ).toEqual(['SCHEDULE_UNAPPROVED']);
  }, 60_000);

  it('a creator revoked since gets no more runs: the schedule is paused, ledgered', async () => {
    const [weekly] = await scheduler.list('*');
    expect(weekly).toMatchObject({ tool: 'transfer_funds', status: 'active' });
    expect((await rig.operator('clients-revoke', { name: 'demo-agent', reason: 'key leaked' })).status).toBe(
      200,
    );
    const [run] = await tickAt(Date.parse(weekly?.next_run ?? '') + 1_000);
    expect(run).toMatchObject({ outcome: 'deny', code: 'ERR_CLIENT_REVOKED', request_id: null });
    expect((await scheduler.list('*'))[0]).toMatchObject({ id: weekly?.id, status: 'paused' });
    const paused = (await records(weekly?.id ?? '')).find((e) => e.type === 'schedule.paused');
    expect(paused).toMatchObject({
      actor: { role: 'gate' },
      payload: { reason: 'the creator client is revoked' },
    });
  });
});
