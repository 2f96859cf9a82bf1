/**
 * Observability of a separate Execution Layer (docs/deployment.md "Observability"; issue: one
 * governed call gives one trace with spans from every role): a Gate process with `executor_url`
 * and a `serve executor` composition (started in this process through the same entry point the
 * CLI uses, each with its own telemetry) export to one real OTLP/HTTP receiver. The call's trace
 * id is the ledger's `trace_id`; the Gate's root span `execute_tool echo` and the Execution
 * Layer's stage spans (resource `failclosed.role` = `executor`) are in it, the latter parented to
 * the root span derived from the trace id. The executor logs each execution (ids and code, never
 * parameters) and serves its own `/metrics`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  startEmbedded,
  startExecutorNode,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode } from '../../src/embedded/index.js';
import { createTelemetry, rootSpanIdOf } from '../../src/embedded/telemetry/index.js';
import type { Telemetry } from '../../src/embedded/telemetry/index.js';
import { until } from './processes.js';
import { startOtlpReceiver } from '../support/otlp-receiver.js';
import type { OtlpReceiver } from '../support/otlp-receiver.js';
import { separateExecutorLayout } from './topology.js';

describe('a separate Execution Layer joins the call trace and reports its own logs and metrics', () => {
  let work: string;
  let receiver: OtlpReceiver;
  const executorLogs: string[] = [];
  let gateTelemetry: Telemetry;
  let instance: EmbeddedInstance;
  let node: ExecutorNode;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();

    work = mkdtempSync(join(tmpdir(), 'fc-exec-telemetry-'));
    const dir = join(work, 'gate');
    await initDataDir(dir);
    const layout = await separateExecutorLayout(work, dir);
    gateTelemetry = await createTelemetry({
      logLevel: 'silent',
      role: 'gate',
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint },
    });
    instance = await startEmbedded(dir, { port: 0, telemetry: gateTelemetry });
    const execConfig = layout.executorConfig(join(work, 'executor'), { metrics: { listen: '127.0.0.1:0' } });
    node = await startExecutorNode(execConfig, {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint },
      logDestination: { write: (line: string) => void executorLogs.push(line) },
    });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await instance?.close();
    await gateTelemetry?.close();
    await receiver.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('one call: one trace, the ledger trace id, with the Gate root span and the Execution Layer stage spans under it', async () => {
    const f = readClientFile(instance.core.dir, DEMO_CLIENT.identity);
    const client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    const r = await client.call('echo', { message: 'traced' }, { session: 'telemetry' });
    expect(r).toMatchObject({ outcome: 'executed' });
    if (r.outcome !== 'executed') return;
    await gateTelemetry.tracing?.flush();
    await until(
      () =>
        receiver.spans.some(
          (s) => s.traceId === r.trace_id && s.role === 'executor' && s.name === 'failclosed.tool',
        ),
      'the executor spans',
      20_000,
    );
    const mine = receiver.spans.filter((s) => s.traceId === r.trace_id);
    const root = mine.find((s) => s.name === 'execute_tool echo');
    expect(root).toMatchObject({ spanId: rootSpanIdOf(r.trace_id), role: 'gate' });
    const executor = mine.filter((s) => s.role === 'executor').map((s) => s.name);
    expect(executor).toEqual(
      expect.arrayContaining(['failclosed.envelope_verify', 'failclosed.nonce', 'failclosed.tool']),
    );
    for (const s of mine.filter((x) => x.role === 'executor'))
      expect(s.parentSpanId).toBe(rootSpanIdOf(r.trace_id));
    // No other trace: every span of the call carries the ledger's trace id.
    expect(mine.length).toBeGreaterThanOrEqual(4);

    // Its log line names the call by ids and code only: never the parameters.
    const line = executorLogs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['msg'] === 'execute');
    expect(line).toMatchObject({
      role: 'executor',
      request_id: r.request_id,
      trace_id: r.trace_id,
      tool: 'echo',
      outcome: 'executed',
      code: null,
    });
    expect(executorLogs.join('\n')).not.toContain('traced');

    // Its own metrics: the stages it ran.
    expect(node.metricsUrl).toBeDefined();
    const metrics = await (await fetch(`${node.metricsUrl ?? ''}/metrics`)).text();
    expect(metrics).toMatch(/failclosed_stage_duration_seconds_count\{stage="tool"\} [1-9]/);
    expect(metrics).toMatch(/failclosed_nonce_store_duration_seconds_count [1-9]/);
  }, 60_000);
});
