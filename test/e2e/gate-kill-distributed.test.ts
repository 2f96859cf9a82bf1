/**
 * kill -9 of the Gate process under load in the distributed topology (FC-INV-4 fail closed,
 * FC-INV-5 every request has its outcome, FC-INV-6 separate Execution Layer; issue "the four
 * roles as separate processes": kill -9 of each role in turn). The Gate process (`failclosed up`,
 * which holds the Gate, the Control Plane and the ledger writer) reaches a real `failclosed serve
 * executor` over mutual TLS. It is killed with SIGKILL while clients load it and while a
 * sandboxed tool runs in the Execution Layer process: that tool finishes after the Gate is gone,
 * and its receipt cannot be written. On restart, recovery records every open request before the
 * Gate serves (the running one "may have run": `envelope_consumed: true`, since only the Execution
 * Layer knows); nothing is recorded for a request after its abandonment; no acknowledged entry is
 * lost; the Execution Layer, never restarted, serves the new Gate process; the export verifies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { CallResult, FailclosedClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import {
  isRunningUnder,
  ledgerEntries,
  napPolicyDir,
  requestsWithoutOutcome,
  startUp,
  until,
  type UpProcess,
} from './processes.js';
import { exportAndVerify, separateExecutorLayout, spawnExecutor, stopProcess } from './topology.js';
import type { ExecutorProcess } from './topology.js';

describe('kill -9 of the Gate process with a separate Execution Layer', () => {
  let work: string;
  let dir: string;
  let executor: ExecutorProcess | undefined;
  let up: UpProcess | undefined;

  const clientOf = (u: UpProcess): FailclosedClient => {
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    return createClient({ url: u.url, identity: f.identity, tenant: f.tenant, key: f.key });
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-gate-kill-'));
    dir = join(work, 'gate');
    await initDataDir(dir, { policyDir: napPolicyDir(work) });
    const layout = await separateExecutorLayout(work, dir);
    up = await startUp(dir, 30);
    executor = await spawnExecutor(
      layout.executorConfig(join(work, 'executor'), { keys_max_age_ms: 600_000, gate_timeout_ms: 5_000 }),
      { FAILCLOSED_LOG_LEVEL: 'silent' },
    );
  }, 60_000);

  afterAll(async () => {
    await stopProcess(up);
    await stopProcess(executor);
    rmSync(work, { recursive: true, force: true });
  });

  it('recovers every open request, keeps every acknowledged one, serves again through the same executor, and verifies', async () => {
    const first = up!;
    const client = clientOf(first);
    // A call surely in flight in the Execution Layer process at the kill: its tool is running there.
    const nap = client.call('nap', { seconds: '3' }, { session: 'gate-kill-nap' }).catch((e: unknown) => e);
    await until(
      () => isRunningUnder(executor!.child.pid ?? -1, ['/usr/bin/sleep', '3']),
      'the nap tool to run',
    );
    const acknowledged: string[] = [];
    const answers: unknown[] = [];
    let killed = false;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        const r = await client
          .call('echo', { message: `load ${w}-${i}` }, { session: `gate-kill-${w}` })
          .catch((e: unknown) => e);
        answers.push(r);
        if ((r as CallResult).outcome !== 'executed') {
          if (!killed) throw new Error(`load call failed: ${JSON.stringify(r)}`);
          return;
        }
        acknowledged.push((r as CallResult & { request_id: string }).request_id);
        if (acknowledged.length >= 20 && !killed) {
          killed = true;
          first.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));
    expect(await first.exited).toBe('SIGKILL');
    // The nap's client never saw an execution: the Gate died before it could answer.
    expect((await nap) as CallResult).not.toMatchObject({ outcome: 'executed' });
    // The tool, already running in the other process, finishes there with the Gate gone.
    await until(
      () => !isRunningUnder(executor!.child.pid ?? -1, ['/usr/bin/sleep', '3']),
      'the nap tool to end',
      15_000,
    );
    const before = ledgerEntries(dir);
    const open = requestsWithoutOutcome(before);
    expect(open.length).toBeGreaterThanOrEqual(1);

    // Restart on the same data directory (same internal port, same executor_url).
    up = await startUp(dir, 30);
    expect(up.out()).toMatch(new RegExp(`recovered: ${open.length} request\\(s\\) recorded as abandoned`));
    // The Execution Layer, never restarted, serves the new Gate process (it refetches keys as needed).
    const again = clientOf(up);
    await until(
      async () =>
        (await again.call('echo', { message: 'back' }, { session: 'gate-kill-back' })).outcome === 'executed',
      'a call through the restarted Gate',
      30_000,
    );
    expect(executor!.child.exitCode).toBeNull();

    const after = ledgerEntries(dir);
    expect(requestsWithoutOutcome(after)).toEqual([]);
    // Every acknowledged call kept its records, in place.
    for (const id of acknowledged)
      expect(after.some((e) => e.request_id === id && e.type === 'gateway.completed')).toBe(true);
    expect(after.slice(0, before.length)).toEqual(before);
    // The running tool's request: abandoned, "may have run" (only the Execution Layer knows),
    // and nothing recorded for it after its abandonment, not the receipt it could not write.
    const napAbandoned = after.find(
      (e) => e.type === 'request.abandoned' && e.payload['tool'] === 'nap' && e.index >= before.length,
    );
    expect(napAbandoned?.payload['envelope_consumed']).toBe(true);
    for (const id of open) {
      const last = after.filter((e) => e.request_id === id).at(-1);
      expect(last?.type).toBe('request.abandoned');
    }
    const { code, report } = await exportAndVerify(up.url, readOperatorToken(dir), work, ['--json']);
    expect(report).not.toMatch(/OUTCOME_MISSING|TRACE_COMPLETION_MISSING|TRACE_GATE_MISSING/);
    expect(code, report).toBe(0);
  }, 120_000);
});
