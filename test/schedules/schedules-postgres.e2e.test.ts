/**
 * Schedules over two gates on one PostgreSQL database (docs/schedules.md, FC-INV-6 scheduled
 * tasks): a schedule created and approved through one gate is known to both; when both
 * schedulers look for due slots at once, exactly one submits the slot (the compare-and-set on
 * the shared next slot), and the run executes once. The clock is injected and shared; the
 * schedulers are ticked by the test.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApproverClient, createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';

const db = useTestDatabase('fc_e2e_pg_sched');

let work: string;
let dirA: string;
let a: EmbeddedInstance;
let b: EmbeddedInstance;
let offset = 0;
const now = (): number => Date.now() + offset;
let runs = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pg-sched-'));
  dirA = join(work, 'a');
  const dirB = join(work, 'b');
  await initDataDir(dirA, { backend: `${db.url}?schema=${nextSchema()}` });
  cpSync(dirA, dirB, { recursive: true });
  const onToolRun = (): void => void (runs += 1);
  const common = { port: 0, executionPort: 0, clock: now, onToolRun, scheduleTickMs: 0 };
  a = await startEmbedded(dirA, common);
  b = await startEmbedded(dirB, common);
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('schedules on two gates over one PostgreSQL database (FC-INV-6)', () => {
  it('a slot is submitted by exactly one gate and runs once', async () => {
    const token = `Bearer ${readOperatorToken(dirA)}`;
    const key = generateSigningKey();
    const added = await a.core.gate.admin(
      'approvers-add',
      { name: 'alice', roles: ['treasury'], tenants: '*', public_jwk: { ...key.publicJwk } },
      token,
    );
    expect(added.status).toBe(201);
    const f = readClientFile(dirA, DEMO_CLIENT.identity);
    const agent = createClient({ url: a.url, identity: f.identity, tenant: f.tenant, key: f.key, now });
    const spec = { tool: 'get_time', params: {}, cron: '15 4 * * *' };
    const first = await agent.call('schedule.create', spec);
    if (first.outcome !== 'pending') throw new Error(`expected pending: ${JSON.stringify(first)}`);
    const approver = createApproverClient({ url: a.url, name: 'alice', key, authorization: token, now });
    expect((await approver.decide(first.decision_id, 'approve', 'daily clock')).status).toBe(200);
    const made = await agent.call('schedule.create', spec, { requestId: first.request_id });
    expect(made.outcome).toBe('executed');
    const id = (made as unknown as { result: { schedule_id: string; next_run: string } }).result;
    // The other gate knows it.
    const sb = b.core.scheduler;
    const sa = a.core.scheduler;
    if (sa === undefined || sb === undefined) throw new Error('no scheduler');
    expect((await sb.list('*')).map((s) => s.id)).toEqual([id.schedule_id]);

    offset = Date.parse(id.next_run) + 2_000 - Date.now();
    // Each replica follows the shared state on the moved clock (a jump is otherwise staleness).
    expect(await a.core.follower?.round()).toBe(true);
    expect(await b.core.follower?.round()).toBe(true);
    const before = runs;
    const [ra, rb] = await Promise.all([sa.tick(), sb.tick()]);
    const reports = [...ra, ...rb];
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ schedule_id: id.schedule_id, outcome: 'queued' });
    // Again, both: nothing more in this slot.
    expect([...(await sa.tick()), ...(await sb.tick())]).toEqual([]);
    const requestId = reports[0]?.request_id ?? '';
    for (let i = 0; i < 200 && runs === before; i += 1) await new Promise((r) => setTimeout(r, 25));
    expect(runs).toBe(before + 1);
    // The run's outcome, recorded once, whichever gate ran it.
    let types: string[] = [];
    for (let i = 0; i < 200; i += 1) {
      const view = await a.core.gate.evidence(requestId, token);
      types = ((view.body as { records?: { entry: { type: string } }[] }).records ?? []).map(
        (r) => r.entry.type,
      );
      if (types.includes('gateway.completed')) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(types.filter((t) => t === 'gateway.completed')).toHaveLength(1);
    expect(types).toContain('execution.receipt');
  }, 60_000);
});
