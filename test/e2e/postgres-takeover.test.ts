/**
 * kill -9 of one replica under load, on PostgreSQL, with real processes (SPEC §4 "one writer",
 * per transaction; FC-INV-5; L7 ledger protection): two `failclosed up` over copies of one data
 * directory share a ledger schema and both serve. SIGKILL of A while concurrent clients load
 * both: B serves on without a single failed call, its sweep finds A's instance gone and records
 * `request.abandoned` for every request A left open, and the hash chain stays one. No acknowledged
 * entry is lost, no accepted request stays without an outcome or gets two, and
 * `failclosed verify` holds on the export.
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

describe('kill -9 of one replica under load (SPEC §4, FC-INV-5, L7 ledger protection)', () => {
  it('the other replica serves on: 0 acknowledged entries lost, the dead one’s calls recorded abandoned, verify holds', async () => {
    const dirA = join(work, 'replica-a');
    const dirB = join(work, 'replica-b');
    const dirC = join(work, 'replica-c');
    await initDataDir(dirA, { backend: `${db.url}?schema=${nextSchema()}`, policyDir: napPolicyDir(work) });
    // B and C are A's copies: the same keys and configuration, other hosts' data directories.
    cpSync(dirA, dirB, { recursive: true });
    cpSync(dirA, dirC, { recursive: true });

    const a = spawnTracked(dirA);
    const b = spawnTracked(dirB);
    const [urlA, urlB] = await Promise.all([a.listening, b.listening]);

    // Every gate on PostgreSQL serves: a standby is refused, with the reason.
    const c = spawnTracked(dirC, ['--standby']);
    expect(await c.exited).toBe(1);
    expect(c.out()).toMatch(/standby applies to SQLite only/);
    expect(c.out()).not.toMatch(/listening on/);

    const clients = [clientOf(dirA, urlA), clientOf(dirB, urlB)];
    const acknowledged: string[] = [];
    const unacknowledged: string[] = [];
    let killed = false;
    let stop = false;
    let loadError: Error | undefined;
    // Even workers call A, odd ones B: B's must all succeed, before and after A dies.
    const worker = async (w: number): Promise<void> => {
      const onA = w % 2 === 0;
      for (let i = 0; !stop && !(onA && killed) && loadError === undefined; i++) {
        const r = await clients[w % 2]!.call(
          'echo',
          { message: `load ${w}-${i}` },
          { session: `kill-${w}-${i}` },
        );
        if (r.outcome === 'executed') acknowledged.push(r.request_id);
        else if (onA && killed) {
          if (r.request_id !== null) unacknowledged.push(r.request_id);
        } else loadError = new Error(`load call failed on ${onA ? 'A' : 'B'}: ${JSON.stringify(r)}`);
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    await until(() => acknowledged.length >= 40 || loadError !== undefined, '40 acknowledged calls', 120_000);
    if (loadError !== undefined) throw loadError;
    // One more call surely in flight on A at the kill: its sandboxed tool is running.
    const nap = clients[0]!.call('nap', { seconds: '9' }, { session: 'kill-nap' });
    await until(
      () => isRunningUnder(a.child.pid ?? -1, ['/usr/bin/sleep', '9']),
      'the nap tool to run',
      60_000,
    );
    killed = true;
    const atKill = acknowledged.length;
    a.child.kill('SIGKILL');
    expect(await a.exited).toBe('SIGKILL');
    // B serves on through A's death.
    await until(
      () => acknowledged.length >= atKill + 20 || loadError !== undefined,
      '20 more calls on B',
      120_000,
    );
    stop = true;
    await load;
    expect(loadError).toBeUndefined();
    const napResult = await nap;
    // Its answer died with A while the tool ran: `unknown` (it may have run), never a deny.
    expect(napResult.outcome).toBe('unknown');
    if (napResult.request_id !== null) unacknowledged.push(napResult.request_id);

    // B's sweep finds A gone and records its open requests as abandoned (every 5 s).
    let exported: { entries: ExportedEntry[]; code: number | null } = { entries: [], code: null };
    await until(
      async () => {
        exported = await exportAndVerify(dirB, urlB);
        return requestsWithoutOutcome(exported.entries).length === 0;
      },
      'every accepted request to have an outcome',
      60_000,
    );
    const { entries, code } = exported;
    expect(code).toBe(0);

    // 0 acknowledged entries lost: each acknowledged call's decision, receipt and completion.
    expect(acknowledged.length).toBeGreaterThanOrEqual(60);
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
    // The nap call at least was accepted by A and left open by the kill; B's sweep closed it.
    expect(inFlight).toContain(napResult.request_id);
    for (const id of inFlight)
      expect(
        entries.some(
          (e) => e.request_id === id && (e.type === 'request.abandoned' || e.type === 'gateway.completed'),
        ),
        id,
      ).toBe(true);
    // Only calls A never answered were abandoned, and the nap's tool may have run.
    for (const e of abandoned) expect(unacknowledged).toContain(e.request_id);
    expect(abandoned.find((e) => e.request_id === napResult.request_id)?.payload['envelope_consumed']).toBe(
      true,
    );
    // Each request has exactly one outcome: no replica recorded a second one.
    const outcomes = entries.filter((e) =>
      ['gateway.completed', 'gateway.failed', 'request.abandoned'].includes(e.type),
    );
    expect(new Set(outcomes.map((e) => `${e.request_id}/${e.trace_id}`)).size).toBe(outcomes.length);

    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 240_000);
});
