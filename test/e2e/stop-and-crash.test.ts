/**
 * A stop or a crash never breaks the record (SPEC §5, FC-INV-5; issue 8 "Why" 3), with real
 * processes: `failclosed up` stopped by SIGTERM while a sandboxed tool runs drains the call (the
 * client gets the real result) or, past its grace period, records `request.abandoned` (the
 * client gets `ERR_SHUTTING_DOWN`); killed with SIGKILL under concurrent load, it records on the
 * next start an outcome for every request left open, voiding or reporting each envelope, and
 * `failclosed verify` holds on the export. No acknowledged entry is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { CallResult, FailclosedClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile } from '../../src/embedded/index.js';
import {
  isRunningUnder,
  ledgerEntries,
  napPolicyDir,
  requestsWithoutOutcome,
  runCli,
  startUp,
  until,
  type UpProcess,
} from './processes.js';

let work: string;
let dir: string;

function clientOf(up: UpProcess): FailclosedClient {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url: up.url, identity: file.identity, tenant: file.tenant, key: file.key });
}

let sessions = 0;
const session = (): string => `stop-test-${(sessions += 1)}`;

/** Exports the whole ledger with the CLI (no server running) and verifies it: exit code and report. */
function exportAndVerify(name: string): { code: number | null; out: string } {
  const file = join(work, `${name}.json`);
  const exported = runCli('ledger', 'export', '--out', file, '--data', dir);
  expect(exported.code, exported.err).toBe(0);
  // The auditor pins the deployment's trust roots (docs/COMPLIANCE.md), taken out of band.
  const trust = join(work, `${name}.trust.json`);
  const roots = runCli('trust-roots', '--out', trust, '--data', dir);
  expect(roots.code, roots.err).toBe(0);
  const verified = runCli('verify', file, '--trust', trust);
  return { code: verified.code, out: verified.out + verified.err };
}

/**
 * Starts a `nap` call and resolves once its sandboxed `sleep` runs under `up`, with the call's
 * pending result (wrapped: an async function would otherwise wait for it).
 */
async function napRunning(up: UpProcess, seconds: number): Promise<{ result: Promise<CallResult> }> {
  const result = clientOf(up).call('nap', { seconds: String(seconds) }, { session: session() });
  const argv = ['/usr/bin/sleep', String(seconds)];
  await until(() => isRunningUnder(up.child.pid ?? -1, argv), 'the nap tool to run');
  return { result };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-stop-'));
  dir = join(work, 'data');
  await initDataDir(dir, { policyDir: napPolicyDir(work) });
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe.sequential('graceful stop (SIGTERM/SIGINT) and crash recovery', () => {
  it('SIGTERM while a tool runs: the call finishes with its real result, then up exits 0; new connections are refused', async () => {
    const up = await startUp(dir, 30);
    const call = await napRunning(up, 1);
    up.child.kill('SIGTERM');
    await until(() => up.out().includes('stopping'), 'up to start stopping');
    // The listener is closed: a new call is refused (or, on a kept-alive socket, answered 503).
    const late = await fetch(`${up.url}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);
    const r = await call.result;
    expect(r.outcome).toBe('executed');
    expect(await up.exited).toBe(0);
    expect(up.out()).toContain('stopped');
    const entries = ledgerEntries(dir);
    const id = r.outcome === 'executed' ? r.request_id : '';
    expect(entries.filter((e) => e.request_id === id).map((e) => e.type)).toContain('gateway.completed');
    expect(requestsWithoutOutcome(entries)).toEqual([]);
    expect(exportAndVerify('after-sigterm').code).toBe(0);
  }, 60_000);

  it('past the grace period a running call is recorded abandoned (may have run), its client gets ERR_SHUTTING_DOWN, up exits 0', async () => {
    const up = await startUp(dir, 1);
    const call = await napRunning(up, 6);
    up.child.kill('SIGTERM');
    const r = await call.result;
    expect(r.outcome).toBe('deny');
    expect(r.outcome === 'deny' ? r.code : '').toBe('ERR_SHUTTING_DOWN');
    expect(await up.exited).toBe(0);
    expect(up.out()).toContain('1 call(s) recorded as abandoned, 1 of them may have run');
    const entries = ledgerEntries(dir);
    const abandoned = entries.filter((e) => e.type === 'request.abandoned');
    expect(abandoned).toHaveLength(1);
    expect(abandoned[0]?.payload).toMatchObject({
      code: 'ERR_ABANDONED',
      outcome: 'abandoned',
      envelope_consumed: true,
      tool: 'nap',
    });
    // Nothing is written after the abandonment for that request: it is the last word.
    const last = entries.filter((e) => e.request_id === abandoned[0]?.request_id).at(-1);
    expect(last?.type).toBe('request.abandoned');
    expect(requestsWithoutOutcome(entries)).toEqual([]);
    const v = exportAndVerify('after-grace');
    expect(v.code).toBe(0);
    expect(v.out).toContain('1 request(s) abandoned');
  }, 60_000);

  it('kill -9 under concurrent load: the restart records every open request before serving, verify exits 0, no acknowledged entry lost', async () => {
    const up = await startUp(dir, 30);
    const client = clientOf(up);
    // One call is surely in flight at the kill: its tool is running.
    const nap = await napRunning(up, 9);
    const acknowledged: string[] = [];
    let killed = false;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        const r = await client.call('echo', { message: `load ${w}-${i}` }, { session: session() });
        if (r.outcome !== 'executed') {
          if (!killed) throw new Error(`load call failed: ${JSON.stringify(r)}`);
          return;
        }
        acknowledged.push(r.request_id);
        if (acknowledged.length >= 25 && !killed) {
          killed = true;
          up.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    // The running call's answer died with the process: it may have run, so the client says
    // `unknown`, not deny (docs/client.md "Outcomes").
    expect((await nap.result).outcome).toBe('unknown');
    expect(await up.exited).toBe('SIGKILL');
    const before = ledgerEntries(dir);
    const open = requestsWithoutOutcome(before);
    expect(open.length).toBeGreaterThanOrEqual(1);

    // Restart: recovery runs before the Gate listens.
    const again = await startUp(dir, 30);
    expect(again.out()).toMatch(new RegExp(`recovered: ${open.length} request\\(s\\) recorded as abandoned`));
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);

    const after = ledgerEntries(dir);
    expect(requestsWithoutOutcome(after)).toEqual([]);
    // Every acknowledged call kept its records, in the same place.
    for (const id of acknowledged)
      expect(after.some((e) => e.request_id === id && e.type === 'gateway.completed')).toBe(true);
    expect(after.slice(0, before.length)).toEqual(before);
    const napAbandoned = after.find(
      (e) => e.type === 'request.abandoned' && e.payload['tool'] === 'nap' && e.index >= before.length,
    );
    expect(napAbandoned?.payload['envelope_consumed']).toBe(true);
    const v = exportAndVerify('after-kill');
    expect(v.code, v.out).toBe(0);
    expect(v.out).toMatch(/request\(s\) abandoned/);
  }, 60_000);
});
