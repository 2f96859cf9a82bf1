/**
 * One governed call through a keyless Gate is one trace across the role processes
 * (docs/deployment.md "Observability" and "Separate Gate"; issue "the four roles as separate
 * processes": one trace with spans from every role). A `serve gate` composition, the Control
 * Plane process (`up` with `internal_gates`, which also holds the ledger writer) and a `serve
 * executor` composition, each started in this process through the entry point the CLI uses and
 * each with its own telemetry, export to one real OTLP/HTTP receiver. The trace id is the
 * ledger's `trace_id`; the Gate's root span `execute_tool echo` (GenAI conventions), the Control
 * Plane's decision spans and the ledger's decision write, and the Execution Layer's stage spans
 * are all in it, each resource naming its role.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  startGateNode,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode, GateNode } from '../../src/embedded/index.js';
import { createTelemetry, rootSpanIdOf } from '../../src/embedded/telemetry/index.js';
import type { Telemetry } from '../../src/embedded/telemetry/index.js';
import { pkiPaths } from '../../src/transport/index.js';
import { createRoleWith, nextSchema, useTestDatabase } from '../support/postgres.js';
import type { TestRole } from '../support/postgres.js';
import { REPO_ROOT } from '../support/paths.js';
import { until } from './processes.js';
import { startOtlpReceiver } from '../support/otlp-receiver.js';
import type { OtlpReceiver, ReceivedSpan } from '../support/otlp-receiver.js';
import { freePort, KEYLESS_GATE_CERT, separateExecutorLayout } from './topology.js';

const pgdb = useTestDatabase('fc_e2e_gate_trace');

describe('a call through a keyless Gate is one trace across the Gate, Control Plane and Execution Layer processes', () => {
  let work: string;
  let receiver: OtlpReceiver;
  let cpTelemetry: Telemetry;
  let cp: EmbeddedInstance;
  let executor: ExecutorNode;
  let gate: GateNode;
  let gateRole: TestRole | undefined;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    };

    work = mkdtempSync(join(tmpdir(), 'fc-gate-trace-'));
    const dir = join(work, 'cp');
    const schema = nextSchema();
    const state = `${pgdb.url}?schema=${schema}`;
    await initDataDir(dir, { backend: state });
    const layout = await separateExecutorLayout(work, dir, { internal_gates: true });
    cpTelemetry = await createTelemetry({ logLevel: 'silent', role: 'control-plane', env });
    cp = await startEmbedded(dir, { port: 0, telemetry: cpTelemetry });
    executor = await startExecutorNode(layout.executorConfig(join(work, 'executor')), {
      env,
      defaultLogLevel: 'silent',
    });
    gateRole = await createRoleWith(
      'fc_gate',
      join(REPO_ROOT, 'deploy/postgres/gate-role.sql'),
      pgdb.url,
      schema,
    );
    const pki = pkiPaths(layout.pki);
    writeFileSync(
      join(work, 'gate.json'),
      JSON.stringify({
        listen: { host: '127.0.0.1', port: await freePort() },
        control_plane_url: `https://127.0.0.1:${layout.internalPort}`,
        executor_url: `https://127.0.0.1:${layout.execPort}`,
        tls: { ca: pki.caCert, cert: pki.cert(KEYLESS_GATE_CERT), key: pki.key(KEYLESS_GATE_CERT) },
        state: gateRole.url(state),
      }),
    );
    gate = await startGateNode(join(work, 'gate.json'), { env, defaultLogLevel: 'silent' });
  }, 60_000);

  afterAll(async () => {
    await gate?.close();
    await executor?.close();
    await cp?.close();
    await cpTelemetry?.close();
    await gateRole?.drop(pgdb.url);
    await receiver.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('carries the ledger trace id, the GenAI root span at the Gate, and stage spans of every process under it', async () => {
    const f = readClientFile(cp.core.dir, DEMO_CLIENT.identity);
    const client = createClient({ url: gate.url, identity: f.identity, tenant: f.tenant, key: f.key });
    const r = await client.call('echo', { message: 'traced' }, { session: 'keyless-trace' });
    expect(r).toMatchObject({ outcome: 'executed' });
    if (r.outcome !== 'executed') return;
    // Its evidence names the same trace id.
    expect(
      (await cp.core.ledger.store.readByRequest(r.request_id)).every((e) => e.trace_id === r.trace_id),
    ).toBe(true);
    await cpTelemetry.tracing?.flush();
    const roles = (): Set<string> =>
      new Set(receiver.spans.filter((s) => s.traceId === r.trace_id).map((s) => s.role));
    await until(
      () => ['gate', 'control-plane', 'executor'].every((role) => roles().has(role)),
      'spans of the three processes',
      20_000,
    );
    await until(
      () => receiver.spans.some((s) => s.traceId === r.trace_id && s.name === 'execute_tool echo'),
      'the root span',
      20_000,
    );
    const mine = receiver.spans.filter((s) => s.traceId === r.trace_id);
    const root = mine.find((s) => s.name === 'execute_tool echo');
    expect(root).toMatchObject({ spanId: rootSpanIdOf(r.trace_id), role: 'gate' });
    const attr = (s: ReceivedSpan | undefined, k: string) =>
      s?.attributes.find((a) => a.key === k)?.value.stringValue;
    expect(attr(root, 'gen_ai.operation.name')).toBe('execute_tool');
    expect(attr(root, 'gen_ai.tool.name')).toBe('echo');
    const names = (role: string) => mine.filter((s) => s.role === role).map((s) => s.name);
    expect(names('gate')).toEqual(expect.arrayContaining(['failclosed.authenticate', 'failclosed.decide']));
    expect(names('control-plane')).toEqual(
      expect.arrayContaining([
        'failclosed.policy',
        'failclosed.ledger_decision',
        'failclosed.envelope_issue',
      ]),
    );
    expect(names('executor')).toEqual(
      expect.arrayContaining(['failclosed.envelope_verify', 'failclosed.tool']),
    );
    for (const s of mine.filter((x) => x !== root)) expect(s.parentSpanId).toBe(rootSpanIdOf(r.trace_id));
  }, 60_000);
});
