/**
 * kill -9 of the writing replica under load, on PostgreSQL, with real processes (SPEC §4 "one
 * writer", FC-INV-5, L7 ledger protection): two `failclosed up` over copies of one data
 * directory share a ledger schema. While the writer lives, a third `up` refuses and the standby
 * (`up --standby`) only waits. SIGKILL of the writer while concurrent clients load it: the
 * standby takes the writer lock, records `request.abandoned` for every request the dead writer
 * left open before it serves, and continues the hash chain. No acknowledged entry is lost, no
 * accepted request stays without an outcome, and `failclosed verify` holds on its export.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveTrustRoots } from '../../src/cli/trust-file.js';
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import {
  isRunningUnder,
  napPolicyDir,
  requestsWithoutOutcome,
  runCli,
  spawnUp,
  until,
  type ExportedEntry,
  type SpawnedUp,
} from './processes.js';

const db = useTestDatabase('fc_e2e_pg_kill');
let work: string;
const children: SpawnedUp[] = [];

/** Spawns `up` and remembers it, so that `afterAll` ends it whatever the test did. */
function spawnTracked(dir: string, extraArgs: readonly string[] = []): SpawnedUp {
  const up = spawnUp(dir, 30, extraArgs);
  children.push(up);
  return up;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pg-kill-'));
});

afterAll(async () => {
  for (const up of children)
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL');
  await Promise.all(children.map((up) => up.exited));
  rmSync(work, { recursive: true, force: true });
}, 30_000);

function clientOf(dir: string, url: string): FailclosedClient {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url, identity: file.identity, tenant: file.tenant, key: file.key });
}

/** The whole ledger, exported through `url`'s admin endpoint; and whether `verify` accepts it. */
async function exportAndVerify(
  dir: string,
  url: string,
): Promise<{ entries: ExportedEntry[]; code: number | null }> {
  const res = await fetch(`${url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: '{}',
  });
  expect(res.status).toBe(200);
  const text = await res.text();
  const bundle = join(work, 'takeover-bundle.jsonl');
  writeFileSync(bundle, text);
  // The auditor pins the deployment's trust roots, taken out of band.
  const trust = join(work, 'takeover-trust.json');
  expect(await saveTrustRoots(url, trust)).toBe(true);
  const verified = runCli('verify', bundle, '--trust', trust);
  // JSON Lines: one record a line; the ledger entries are the `entry` records, in index order.
  const entries = text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as { record: string; entry?: ExportedEntry })
    .flatMap((r) => (r.record === 'entry' && r.entry !== undefined ? [r.entry] : []));
  return { entries, code: verified.code };
}

describe('kill -9 of the writing replica under load (SPEC §4, FC-INV-5, L7 ledger protection)', () => {
  it('the standby takes over: 0 acknowledged entries lost, every accepted request has an outcome, verify holds', async () => {
    const dirA = join(work, 'replica-a');
    const dirB = join(work, 'replica-b');
    const dirC = join(work, 'replica-c');
    await initDataDir(dirA, { backend: `${db.url}?schema=${nextSchema()}`, policyDir: napPolicyDir(work) });
    // B and C are A's copies: the same keys and configuration, other hosts' data directories.
    cpSync(dirA, dirB, { recursive: true });
    cpSync(dirA, dirC, { recursive: true });

    const a = spawnTracked(dirA);
    const urlA = await a.listening;
    const b = spawnTracked(dirB, ['--standby']);
    await until(() => b.out().includes('standby: waiting'), 'the standby to wait', 60_000);

    // One writer: a third gate on the same schema, not a standby, refuses and exits 1.
    const c = spawnTracked(dirC);
    expect(await c.exited).toBe(1);
    expect(c.out()).toMatch(/writer lock/);
    expect(c.out()).not.toMatch(/listening on/);

    const client = clientOf(dirA, urlA);
    const acknowledged: string[] = [];
    const unacknowledged: string[] = [];
    let killed = false;
    let loadError: Error | undefined;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !killed && loadError === undefined; i++) {
        const r = await client.call('echo', { message: `load ${w}-${i}` }, { session: `takeover-${w}-${i}` });
        if (r.outcome === 'executed') acknowledged.push(r.request_id);
        else if (!killed) loadError = new Error(`load call failed before the kill: ${JSON.stringify(r)}`);
        else if (r.request_id !== null) unacknowledged.push(r.request_id);
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    await until(() => acknowledged.length >= 40 || loadError !== undefined, '40 acknowledged calls', 120_000);
    if (loadError !== undefined) throw loadError;
    // One more call surely in flight at the kill: its sandboxed tool is running.
    const nap = client.call('nap', { seconds: '9' }, { session: 'takeover-nap' });
    await until(
      () => isRunningUnder(a.child.pid ?? -1, ['/usr/bin/sleep', '9']),
      'the nap tool to run',
      60_000,
    );
    // The standby never served while the writer lived.
    expect(b.out()).not.toMatch(/listening on/);
    killed = true;
    a.child.kill('SIGKILL');
    await load;
    expect(loadError).toBeUndefined();
    const napResult = await nap;
    expect(napResult.outcome).toBe('deny');
    if (napResult.request_id !== null) unacknowledged.push(napResult.request_id);
    expect(await a.exited).toBe('SIGKILL');

    // The standby takes over once the dead writer's session is gone, and serves.
    const urlB = await b.listening;
    const clientB = clientOf(dirB, urlB);
    for (let i = 0; i < 3; i++) {
      const r = await clientB.call('echo', { message: `on b ${i}` }, { session: 'takeover-b' });
      expect(r.outcome).toBe('executed');
      if (r.outcome === 'executed') acknowledged.push(r.request_id);
    }

    const { entries, code } = await exportAndVerify(dirB, urlB);
    expect(code).toBe(0);

    // 0 acknowledged entries lost: each acknowledged call's decision, receipt and completion.
    expect(acknowledged.length).toBeGreaterThanOrEqual(43);
    for (const id of acknowledged) {
      const types = entries.filter((e) => e.request_id === id).map((e) => e.type);
      expect(types, id).toEqual(
        expect.arrayContaining(['gateway.accepted', 'decision', 'execution.receipt', 'gateway.completed']),
      );
      expect(types, id).not.toContain('request.abandoned');
    }

    // FC-INV-5: no accepted request without an outcome record, across the kill.
    expect(requestsWithoutOutcome(entries)).toEqual([]);
    const accepted = new Set(entries.filter((e) => e.type === 'gateway.accepted').map((e) => e.request_id));
    const inFlight = unacknowledged.filter((id) => accepted.has(id));
    const abandoned = entries.filter((e) => e.type === 'request.abandoned');
    // The nap call at least was accepted and left open by the kill; B's recovery closed it.
    expect(inFlight).toContain(napResult.request_id);
    for (const id of inFlight)
      expect(
        entries.some(
          (e) => e.request_id === id && (e.type === 'request.abandoned' || e.type === 'gateway.completed'),
        ),
        id,
      ).toBe(true);
    // Only calls the dead writer never answered were abandoned, and the nap's tool may have run.
    for (const e of abandoned) expect(unacknowledged).toContain(e.request_id);
    expect(abandoned.find((e) => e.request_id === napResult.request_id)?.payload['envelope_consumed']).toBe(
      true,
    );
    expect(b.out()).toMatch(
      new RegExp(`recovered: ${abandoned.length} request\\(s\\) recorded as abandoned`),
    );

    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 180_000);
});
