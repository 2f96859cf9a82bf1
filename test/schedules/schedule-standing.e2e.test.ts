/**
 * A scheduled run stands on its schedule as the ledger shows it, not only as the store says
 * (docs/schedules.md "Runs", FC-INV-6; SPEC §2 "a caller told deny never sees the effect"):
 *
 * - a creation whose `gateway.completed` was not confirmed is denied to its creator, and its
 *   schedule is removed; when that removal fails too (on SQLite and PostgreSQL the ledger and the
 *   schedule store are one database, so an outage takes both), the schedule stayed `active` and
 *   its slots ran: now each run is denied `ERR_SCHEDULE_NOT_APPROVED` and the tool never runs;
 * - a pause recorded in the ledger whose store update did not apply (changes are ledgered first)
 *   stops the runs, and a resume recorded after it lets them go on;
 * - a store that cannot be read denies `ERR_SCHEDULE_UNAVAILABLE`;
 * - a creator's registration that cannot be read leaves the slot due (before, the slot was taken
 *   and dropped with no ledger record, and a registry that never answered stopped every schedule):
 *   it runs once the registry answers, or, after the slot's end, is denied with its records;
 * - a creator revoked after the scheduler read its registration is denied `ERR_CLIENT_REVOKED` by
 *   the Control Plane (before, that run was decided and ran with the revoked client's roles).
 *
 * Faults are decorators around the real ledger port and schedule store (`test/support/faults.ts`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle } from '../../src/verify/index.js';
import { TINY_LIMITS } from '../verify/v2.js';
import { buildSignedRequest } from '../../src/client/index.js';
import { DEMO_CLIENT, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import type { ScheduleStore, Scheduler } from '../../src/schedules/index.js';
import type { ClientRegistry } from '../../src/gate/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { startRig } from '../approvals/support.js';
import type { Rig } from '../approvals/support.js';
import { faultyLedgerPort, noFaults } from '../support/faults.js';

const faults = noFaults();
/** The status change the store refuses (as a database that went down just then does). */
let refused: string | null = null;
/** The status change the store applies and then fails to confirm (an answer lost). */
let unconfirmed: string | null = null;
/** While true, the store refuses every read. */
let readsDown = false;
const runs: string[] = [];
/**
 * How the client registry answers the scheduler: as it is, failing, not at all the first time, or
 * as it was before a revocation (an answer read just before the creator was revoked).
 */
let registry: 'off' | 'throw' | 'hang-once' | 'stale' = 'off';

function faultyClients(clients: ClientRegistry): ClientRegistry {
  return {
    lookup: (identity) => {
      if (registry === 'hang-once') {
        registry = 'throw';
        return new Promise<never>(() => undefined);
      }
      if (registry === 'throw') return Promise.reject(new Error('registry down (fault injected)'));
      if (registry === 'stale')
        return Promise.resolve(clients.lookup(identity)).then((c) =>
          c === undefined ? c : { ...c, status: 'active' as const },
        );
      return clients.lookup(identity);
    },
  };
}

/** The store under the faults, for a test that changes it behind the scheduler's back. */
let rawStore: ScheduleStore | undefined;

function faultyStore(store: ScheduleStore): ScheduleStore {
  rawStore = store;
  return {
    ...store,
    get: (id) => (readsDown ? Promise.reject(new Error('store down (fault injected)')) : store.get(id)),
    setStatus: async (...args) => {
      if (args[2] === refused) throw new Error('store down (fault injected)');
      const applied = await store.setStatus(...args);
      if (args[2] === unconfirmed) throw new Error('answer lost (fault injected)');
      return applied;
    },
  };
}

let rig: Rig;
let scheduler: Scheduler;
let aliceKey: SigningKey;

async function records(requestId: string): Promise<{ type: string; payload: Record<string, unknown> }[]> {
  const a = await rig.instance.core.gate.evidence(requestId, `Bearer ${readOperatorToken(rig.dir)}`);
  return (
    (a.body as unknown as { records?: { entry: { type: string; payload: Record<string, unknown> } }[] })
      .records ?? []
  ).map((r) => r.entry);
}

/** Creates an approved schedule of `get_time` at `cron`; the creation's answer and request id. */
async function create(cron: string) {
  const agent = rig.agent();
  const spec = { tool: 'get_time', params: {}, cron, window_seconds: 600 };
  const first = await agent.call('schedule.create', spec);
  if (first.outcome !== 'pending') throw new Error(`expected pending, got ${first.outcome}`);
  expect((await rig.approver('alice', aliceKey).decide(first.decision_id, 'approve', 'ok')).status).toBe(200);
  return {
    answer: await agent.call('schedule.create', spec, { requestId: first.request_id }),
    requestId: first.request_id,
  };
}

/** A signed `schedule.create` of `spec`, kept as bytes, and a sender that posts those exact bytes. */
function keptCreation(spec: Record<string, unknown>, requestId?: string) {
  const f = readClientFile(rig.dir, DEMO_CLIENT.identity);
  const body = JSON.stringify(
    buildSignedRequest({
      key: importSigningKeyJwk(f.key),
      identity: f.identity,
      tenant: f.tenant,
      action: 'schedule.create',
      parameters: spec as JsonObject,
      timestampMs: rig.now(),
      ...(requestId === undefined ? {} : { requestId }),
    }),
  );
  return async () =>
    (await fetch(`${rig.instance.url}/v1/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    }).then((r) => r.json())) as {
      outcome: string;
      code?: string;
      request_id: string;
      decision_id: string;
      result?: { schedule_id: string };
    };
}

/** The next slot of the schedule `id` as the store has it. */
async function slotOf(id: string): Promise<number> {
  const [s] = (await scheduler.list('*')).filter((x) => x.id === id);
  if (s?.next_run === undefined || s.next_run === null) throw new Error(`no next run for ${id}`);
  return Date.parse(s.next_run);
}

beforeAll(async () => {
  rig = await startRig(undefined, undefined, {
    scheduleTickMs: 0,
    decorate: {
      ledgerPort: (port) => faultyLedgerPort(port, faults),
      scheduleStore: faultyStore,
      scheduleClients: faultyClients,
    },
    onToolRun: ({ tool }) => runs.push(tool),
  });
  const s = rig.instance.core.scheduler;
  if (s === undefined) throw new Error('no scheduler');
  scheduler = s;
  const a = await rig.addApprover('alice', ['treasury']);
  expect(a.status).toBe(201);
  aliceKey = a.key;
}, 60_000);

afterAll(async () => {
  await rig?.close();
});

describe('a scheduled run stands on its schedule as the ledger shows it', () => {
  it('a creation denied to its creator never runs, even when its removal failed', async () => {
    // The completion is refused, and so is everything the Gate tries after it (an outage).
    faults.ledger = 'throw';
    faults.ledgerTypes = ['gateway.completed', 'gateway.failed', 'schedule.removed'];
    refused = 'removed';
    let made;
    try {
      made = await create('0 3 * * *');
    } finally {
      faults.ledger = 'off';
      faults.ledgerTypes = null;
      refused = null;
    }
    expect(made.answer).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    // The store still holds the schedule active: its removal failed with the outage.
    const [s] = (await scheduler.list('*')).filter((x) => x.status === 'active');
    expect(s).toBeDefined();
    const before = runs.length;
    rig.advance((await slotOf(s!.id)) + 1000 - rig.now());
    const reports = await scheduler.tick();
    expect(reports).toEqual([
      expect.objectContaining({ schedule_id: s!.id, outcome: 'deny', code: 'ERR_SCHEDULE_NOT_APPROVED' }),
    ]);
    const denied = (await records(reports[0]!.request_id!)).find((e) => e.type === 'decision');
    expect(denied?.payload).toMatchObject({ outcome: 'deny', code: 'ERR_SCHEDULE_NOT_APPROVED' });
    expect(runs.length).toBe(before);
  }, 30_000);

  it('a pause in the ledger stops the runs although the store missed it; a resume lets them go on', async () => {
    const made = await create('0 4 * * *');
    expect(made.answer).toMatchObject({ outcome: 'executed' });
    const id = (made.answer as unknown as { result: { schedule_id: string } }).result.schedule_id;
    // The pause is recorded, then its store update fails: the store still says active.
    refused = 'paused';
    const paused = await rig.operator('schedules-pause', { id, reason: 'maintenance' });
    refused = null;
    expect(paused).toMatchObject({ status: 503, body: { code: 'ERR_SCHEDULE_UNAVAILABLE' } });
    expect((await scheduler.list('*')).find((x) => x.id === id)?.status).toBe('active');
    const before = runs.length;
    rig.advance((await slotOf(id)) + 1000 - rig.now());
    expect((await scheduler.tick()).filter((r) => r.schedule_id === id)).toEqual([
      expect.objectContaining({ schedule_id: id, outcome: 'deny', code: 'ERR_SCHEDULE_NOT_APPROVED' }),
    ]);
    expect(runs.length).toBe(before);
    // Paused for real, then resumed, the store's confirmation of the resume lost: the answer reads
    // the schedule back and says it applied (it said 503 before), and the next slot runs.
    expect((await rig.operator('schedules-pause', { id, reason: 'again' })).status).toBe(200);
    unconfirmed = 'active';
    const resumed = await rig.operator('schedules-resume', { id, reason: 'done' });
    unconfirmed = null;
    expect(resumed).toMatchObject({
      status: 200,
      body: { outcome: 'ok', schedule: { id, status: 'active' } },
    });
    rig.advance((await slotOf(id)) + 1000 - rig.now());
    const run = (await scheduler.tick()).find((r) => r.schedule_id === id);
    expect(run).toMatchObject({ schedule_id: id, outcome: 'queued', code: null });
  }, 30_000);

  it('a removal in the ledger is final although the store missed it: a resume is refused and no run is decided', async () => {
    const made = await create('30 4 * * *');
    expect(made.answer).toMatchObject({ outcome: 'executed' });
    const id = (made.answer as unknown as { result: { schedule_id: string } }).result.schedule_id;
    const slot = await slotOf(id);
    expect((await rig.operator('schedules-pause', { id, reason: 'maintenance' })).status).toBe(200);
    // The removal is recorded, then its store update fails: the store still says paused.
    refused = 'removed';
    const removed = await rig.operator('schedules-remove', { id, reason: 'not needed' });
    refused = null;
    expect(removed).toMatchObject({ status: 503, body: { code: 'ERR_SCHEDULE_UNAVAILABLE' } });
    expect((await scheduler.list('*')).find((x) => x.id === id)?.status).toBe('paused');
    // Resumed by any operator of its tenant: refused, nothing recorded.
    const resumed = await rig.operator('schedules-resume', { id, reason: 'back on' });
    expect(resumed).toMatchObject({ status: 400, body: { code: 'ERR_REQUEST_MALFORMED' } });
    expect((await records(id)).map((e) => e.type)).toEqual(['schedule.paused', 'schedule.removed']);
    // Had a resume got through (an earlier version's, or the store set active by hand), the
    // Control Plane would still refuse every run: the removal rules once recorded.
    expect(await rawStore?.setStatus(id, ['paused'], 'active', slot)).toBe(true);
    const before = runs.length;
    rig.advance(slot + 1000 - rig.now());
    expect((await scheduler.tick()).filter((r) => r.schedule_id === id)).toEqual([
      expect.objectContaining({ schedule_id: id, outcome: 'deny', code: 'ERR_SCHEDULE_NOT_APPROVED' }),
    ]);
    expect(runs.length).toBe(before);
    // Removed again, the store follows.
    expect((await rig.operator('schedules-remove', { id, reason: 'again' })).status).toBe(200);
    expect((await scheduler.list('*')).find((x) => x.id === id)).toBeUndefined();
  }, 30_000);

  it('a schedule store that cannot be read denies the run ERR_SCHEDULE_UNAVAILABLE', async () => {
    const made = await create('0 5 * * *');
    expect(made.answer).toMatchObject({ outcome: 'executed' });
    const id = (made.answer as unknown as { result: { schedule_id: string } }).result.schedule_id;
    rig.advance((await slotOf(id)) + 1000 - rig.now());
    const before = runs.length;
    // The due list and the slot's claim are read; the Control Plane's read of the schedule fails.
    readsDown = true;
    let reports;
    try {
      reports = await scheduler.tick();
    } finally {
      readsDown = false;
    }
    expect(reports.filter((r) => r.schedule_id === id)).toEqual([
      expect.objectContaining({ schedule_id: id, outcome: 'deny', code: 'ERR_SCHEDULE_UNAVAILABLE' }),
    ]);
    expect(runs.length).toBe(before);
  }, 30_000);

  it("a creator's registration that cannot be read leaves the slot due: it runs once read, or is denied ERR_SCHEDULE_SLOT_MISSED with its records after its end", async () => {
    const made = await create('0 8 * * *');
    expect(made.answer).toMatchObject({ outcome: 'executed' });
    const id = (made.answer as unknown as { result: { schedule_id: string } }).result.schedule_id;
    const slot = await slotOf(id);
    rig.advance(slot + 1000 - rig.now());
    const tickWith = async (mode: typeof registry) => {
      registry = mode;
      try {
        return (await scheduler.tick()).filter((r) => r.schedule_id === id);
      } finally {
        registry = 'off';
      }
    };
    // Before, the slot was taken and dropped: ERR_CLIENT_REGISTRY_UNAVAILABLE, no ledger record.
    expect(await tickWith('throw')).toEqual([]);
    expect(await slotOf(id)).toBe(slot);
    expect(await tickWith('off')).toEqual([expect.objectContaining({ outcome: 'queued', code: null })]);
    // A registry that never answers: the round ends at the scheduler's deadline (before, it never
    // ended, and no schedule ran again), and the slot is still due.
    const next = await slotOf(id);
    expect(next).toBeGreaterThan(slot);
    rig.advance(next + 1000 - rig.now());
    expect(await tickWith('hang-once')).toEqual([]);
    expect(await slotOf(id)).toBe(next);
    // The outage outlasted the slot (window 600 s): taken now, denied with its records.
    rig.advance(600_000);
    const before = runs.length;
    const [late] = await tickWith('off');
    expect(late).toMatchObject({ outcome: 'deny', code: 'ERR_SCHEDULE_SLOT_MISSED' });
    const recorded = await records(late!.request_id!);
    expect(recorded.find((e) => e.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SCHEDULE_SLOT_MISSED',
    });
    expect(recorded.map((e) => e.type)).toContain('gateway.failed');
    expect(runs.length).toBe(before);
  }, 30_000);

  it("a replay of the creation's bytes, refused at ingress in its trace, does not stop the schedule", async () => {
    const spec = { tool: 'get_time', params: {}, cron: '0 6 * * *', window_seconds: 600 };
    const agent = rig.agent();
    const first = await agent.call('schedule.create', spec);
    if (first.outcome !== 'pending') throw new Error(`expected pending, got ${first.outcome}`);
    expect((await rig.approver('alice', aliceKey).decide(first.decision_id, 'approve', 'ok')).status).toBe(
      200,
    );
    // The approved retry, sent as bytes kept by the test, then sent again: a replay.
    const send = keptCreation(spec, first.request_id);
    const made = await send();
    expect(made).toMatchObject({ outcome: 'executed' });
    expect(await send()).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    const id = made.result!.schedule_id;
    rig.advance((await slotOf(id)) + 1000 - rig.now());
    const run = (await scheduler.tick()).find((r) => r.schedule_id === id);
    // Before, the replay's ingress record counted as undoing the creation: ERR_SCHEDULE_NOT_APPROVED.
    expect(run).toMatchObject({ schedule_id: id, outcome: 'queued', code: null });
  }, 30_000);

  it('verify, reading with its tiniest limits, keeps a creation whose first attempt was replayed together with its retry', async () => {
    const spec = { tool: 'get_time', params: {}, cron: '0 7 * * *', window_seconds: 600 };
    // The first attempt, sent as bytes the test keeps: pending; then replayed: refused at ingress.
    const send = keptCreation(spec);
    const first = await send();
    expect(first).toMatchObject({ outcome: 'pending' });
    expect(await send()).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    // Other requests' records in between, more than the reader's lag.
    for (let i = 0; i < 4; i += 1)
      expect((await rig.agent().call('echo', { message: `between ${i}` })).outcome).toBe('executed');
    expect((await rig.approver('alice', aliceKey).decide(first.decision_id, 'approve', 'ok')).status).toBe(
      200,
    );
    expect(await rig.agent().call('schedule.create', spec, { requestId: first.request_id })).toMatchObject({
      outcome: 'executed',
    });
    const out = join(rig.dir, 'standing-audit.jsonl');
    const trust = join(rig.dir, 'standing-trust.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    // The ingress refusal must not settle the request's group while its attempt awaits approval:
    // the retry's schedule.created is checked with the decision of the first attempt.
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust), ...TINY_LIMITS });
    expect(report.checks.find((c) => c.id === 'schedules')).toMatchObject({ status: 'pass' });
  }, 30_000);

  // Last: it revokes the agent every test above calls as.
  it('a creator revoked after the scheduler read its registration: the Control Plane denies the run ERR_CLIENT_REVOKED, nothing runs', async () => {
    const made = await create('0 9 * * *');
    expect(made.answer).toMatchObject({ outcome: 'executed' });
    const id = (made.answer as unknown as { result: { schedule_id: string } }).result.schedule_id;
    rig.advance((await slotOf(id)) + 1000 - rig.now());
    expect(
      (await rig.operator('clients-revoke', { name: DEMO_CLIENT.identity, reason: 'key leaked' })).status,
    ).toBe(200);
    const before = runs.length;
    registry = 'stale';
    const ran = await scheduler.tick().finally(() => (registry = 'off'));
    const run = ran.find((r) => r.schedule_id === id);
    expect(run).toMatchObject({ outcome: 'deny', code: 'ERR_CLIENT_REVOKED' });
    const recorded = await records(run?.request_id ?? '');
    expect(recorded.find((e) => e.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_CLIENT_REVOKED',
    });
    expect(runs.length).toBe(before);
  }, 30_000);
});
