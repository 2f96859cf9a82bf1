/**
 * kill -9 of the Execution Layer process under load (FC-INV-4 fail closed, FC-INV-5 every request
 * has its outcome, FC-INV-6): a Gate process with `executor_url` and a real `failclosed serve
 * executor` child of the built CLI, four clients calling without pause. The executor is killed
 * with SIGKILL mid-load: every call answered meanwhile is a deny with a code (never an
 * `executed` without its receipt), and every request the Gate accepted has its outcome record
 * (`verify`: attributable-outcome, trace linkage; a call whose envelope the dead process had
 * consumed says `envelope_consumed: true`). The executor restarts on the same port and calls
 * succeed again; the exported ledger verifies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { CallResult, FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { until } from './processes.js';
import { exportAndVerify, separateExecutorLayout, spawnExecutor, stopProcess } from './topology.js';
import type { ExecutorProcess } from './topology.js';

describe('kill -9 of the Execution Layer process under load', () => {
  let work: string;
  let dir: string;
  let config: string;
  let instance: EmbeddedInstance;
  let client: FailclosedClient;
  let executor: ExecutorProcess | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-exec-kill-'));
    dir = join(work, 'gate');
    await initDataDir(dir);
    const layout = await separateExecutorLayout(work, dir);
    // Short Gate deadlines: a call to a dead process is denied quickly.
    instance = await startEmbedded(dir, {
      port: 0,
      deadlines: { gate: { executionMs: 5000, voidMs: 2000 } },
    });
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    config = layout.executorConfig(join(work, 'executor'), {
      keys_max_age_ms: 600_000,
      gate_timeout_ms: 10_000,
    });
    executor = await spawnExecutor(config, { FAILCLOSED_LOG_LEVEL: 'silent' });
  }, 60_000);

  afterAll(async () => {
    await stopProcess(executor);
    await instance?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('denies while it is dead, records every outcome, runs again once restarted, and the ledger verifies', async () => {
    const answers: CallResult[] = [];
    let stop = false;
    let n = 0;
    const loop = async (): Promise<void> => {
      while (!stop) {
        n += 1;
        answers.push(await client.call('echo', { message: `load ${n}` }, { session: 'kill' }));
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await until(
      () => answers.filter((a) => a.outcome === 'executed').length >= 20,
      'calls under load',
      30_000,
    );
    await stopProcess(executor, 'SIGKILL');
    const atKill = answers.length;
    await until(() => answers.length >= atKill + 8, 'calls while the executor is dead', 30_000);
    stop = true;
    await Promise.all(loops);
    // While it was dead: denies with a code, never an execution.
    const whileDead = answers.slice(atKill + 4);
    expect(whileDead.length).toBeGreaterThan(0);
    for (const a of whileDead)
      expect(a).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    // Every answer is an execution with its receipt or a deny with a code.
    for (const a of answers) {
      if (a.outcome === 'executed') expect(a.receipt.entry_hash).toMatch(/^[0-9a-f]{64}$/);
      else expect(a).toMatchObject({ outcome: 'deny', code: expect.stringMatching(/^ERR_/) as unknown });
    }

    executor = await spawnExecutor(config, { FAILCLOSED_LOG_LEVEL: 'silent' });
    await until(
      async () =>
        (await client.call('echo', { message: 'back' }, { session: 'kill' })).outcome === 'executed',
      'a call after the restart',
      30_000,
    );

    const { code, report } = await exportAndVerify(instance.url, readOperatorToken(dir), work, ['--json']);
    // Every accepted request has its outcome record (FC-INV-5), every receipt its Gate records (FC-INV-6).
    expect(report).not.toMatch(/OUTCOME_MISSING|TRACE_COMPLETION_MISSING|TRACE_GATE_MISSING/);
    expect(code).toBe(0);
  }, 120_000);
});
