/**
 * Observability of the embedded deployment (docs/deployment.md "Observability"): JSON logs that
 * name the call and never its parameters or result (OE-INV-009), Prometheus metrics in a registry
 * of the composition's own, served only on the metrics listener, and one OpenTelemetry trace per
 * governed call whose id is the ledger's `trace_id`, exported over OTLP/HTTP to a real receiver.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  createMetrics,
  createTelemetry,
  initDataDir,
  parseTraceparent,
  readClientFile,
  serveMetrics,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, Telemetry } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';

/** A value that must never reach a log line, a metric or a span. */
const CANARY = 'canary-7f3b9e-parameter-value';
/** A secret-looking parameter (an AWS access key id shape): refused at the Gate, never logged. */
const SECRET = 'AKIAIOSFODNN7CANARY7';
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
  links?: { traceId: string; spanId: string }[];
}

let dir: string;
let instance: EmbeddedInstance;
let telemetry: Telemetry;
let receiver: Server;
const logLines: string[] = [];
const spans: ExportedSpan[] = [];
const bodies: string[] = [];

beforeAll(async () => {
  // A real OTLP/HTTP receiver: the exporter posts JSON (`ExportTraceServiceRequest`) to /v1/traces.
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      bodies.push(text);
      const body = JSON.parse(text) as {
        resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const port = (receiver.address() as AddressInfo).port;
  telemetry = await createTelemetry({
    logLevel: 'info',
    logDestination: { write: (line: string) => logLines.push(line) },
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'fc-test' },
  });
  dir = join(mkdtempSync(join(tmpdir(), 'fc-telemetry-')), 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0, telemetry });
});

afterAll(async () => {
  await instance.close();
  await telemetry.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

/** Posts one signed call of the demo client, with `headers`. */
async function call(
  tool: string,
  parameters: Record<string, string>,
  headers: Record<string, string> = {},
  ids: { readonly requestId?: string; readonly session?: string } = {},
): Promise<{
  status: number;
  body: { outcome: string; code?: string; trace_id: string; request_id: string };
}> {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const request = buildSignedRequest({
    identity: file.identity,
    tenant: file.tenant,
    action: tool,
    parameters,
    timestampMs: Date.now(),
    key: importSigningKeyJwk(file.key),
    ...ids,
  });
  const res = await fetch(`${instance.url}/v1/calls`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(request),
  });
  return { status: res.status, body: (await res.json()) as never };
}

const attr = (s: ExportedSpan, key: string): string | number | undefined => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

describe('telemetry of governed calls', () => {
  let executed: Awaited<ReturnType<typeof call>>;
  let secret: Awaited<ReturnType<typeof call>>;

  beforeAll(async () => {
    executed = await call(
      'echo',
      { message: CANARY },
      { traceparent: `00-${CALLER_TRACE}-00f067aa0ba902b7-01` },
    );
    // The secret in the request id and the session as well: the Gate answers the client with its
    // own id, but no log line or span may name it (scenario 16, OE-INV-009).
    secret = await call(
      'echo',
      { message: SECRET },
      { traceparent: 'not-a-traceparent' },
      { requestId: `id-${SECRET}`, session: `s-${SECRET}` },
    );
    await telemetry.tracing?.flush();
  });

  it('the calls are decided as without telemetry: an invalid traceparent changes nothing', () => {
    expect(executed.status).toBe(200);
    expect(executed.body.outcome).toBe('executed');
    expect(secret.body.outcome).toBe('deny');
    expect(secret.body.code).toBe('ERR_PARAMS_SECRET');
  });

  it('logs one JSON line per call with its ids, outcome and code, never a parameter or result', () => {
    const calls = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['msg'] === 'call');
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      request_id: executed.body.request_id,
      trace_id: executed.body.trace_id,
      tool: 'echo',
      outcome: 'executed',
      code: null,
      status: 200,
    });
    expect(calls[1]).toMatchObject({
      trace_id: secret.body.trace_id,
      outcome: 'deny',
      code: 'ERR_PARAMS_SECRET',
    });
    // Logged under the id its record names, never the client's own.
    expect(secret.body.request_id).toBe(`id-${SECRET}`);
    expect(calls[1]?.['request_id']).toMatch(/^redacted-[0-9a-f]{32}$/);
    const all = logLines.join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(CANARY);
  });

  it('counts decisions by outcome and code and times each stage, without tenants or parameters', async () => {
    const text = await telemetry.metrics.text();
    expect(text).toContain('failclosed_calls_total{outcome="executed",code="none",ingress="http"} 1');
    expect(text).toContain(
      'failclosed_calls_total{outcome="deny",code="ERR_PARAMS_SECRET",ingress="http"} 1',
    );
    for (const stage of [
      'call',
      'authenticate',
      'policy',
      'ledger_decision',
      'envelope_issue',
      'tool',
      'nonce',
    ])
      expect(text).toContain(`failclosed_stage_duration_seconds_count{stage="${stage}"}`);
    expect(text).toMatch(/failclosed_ledger_batch_size_count [1-9]/);
    expect(text).toMatch(/failclosed_nonce_store_duration_seconds_count 1\b/);
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(DEMO_CLIENT.tenant);
    expect(text).not.toContain(DEMO_CLIENT.identity);
  });

  it('exports one trace per call whose id is the ledger trace_id, with GenAI tool-call attributes', async () => {
    const entries = await instance.core.ledger.store.readByTrace(executed.body.trace_id);
    expect(entries.map((e) => e.type)).toContain('execution.receipt');
    const trace = spans.filter((s) => s.traceId === executed.body.trace_id);
    const root = trace.find((s) => s.parentSpanId === undefined || s.parentSpanId === '');
    expect(root).toBeDefined();
    expect(root?.name).toBe('execute_tool echo');
    expect(attr(root as ExportedSpan, 'gen_ai.operation.name')).toBe('execute_tool');
    expect(attr(root as ExportedSpan, 'gen_ai.tool.name')).toBe('echo');
    expect(attr(root as ExportedSpan, 'failclosed.request_id')).toBe(executed.body.request_id);
    // The caller's trace is linked, not adopted: the ledger's trace id is bound to the signed request.
    expect(root?.links?.map((l) => l.traceId)).toEqual([CALLER_TRACE]);
    const stages = trace.filter((s) => s !== root);
    expect(stages.every((s) => s.parentSpanId === root?.spanId)).toBe(true);
    expect(stages.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'failclosed.policy',
        'failclosed.ledger_decision',
        'failclosed.envelope_issue',
        'failclosed.execute',
        'failclosed.tool',
      ]),
    );
    // The denied call is a trace of its own, marked with its code; nothing exported holds a parameter.
    const denied = spans.find(
      (s) => s.traceId === secret.body.trace_id && attr(s, 'error.type') !== undefined,
    );
    expect(denied === undefined ? undefined : attr(denied, 'error.type')).toBe('ERR_PARAMS_SECRET');
    expect(denied?.links ?? []).toEqual([]);
    expect(bodies.join('')).not.toContain(CANARY);
    expect(bodies.join('')).not.toContain(SECRET);
  });
});

describe('metrics registry and listener', () => {
  it('each composition has its own registry: two never collide', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.breakerTrip('rate');
    expect(await a.text()).toContain('failclosed_breaker_trips_total{breaker="rate"} 1');
    expect(await b.text()).not.toContain('breaker="rate"');
  });

  it('serves GET /metrics only, on its own listener', async () => {
    const server = await serveMetrics(telemetry.metrics, '127.0.0.1', 0);
    try {
      const ok = await fetch(`${server.url}/metrics`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('failclosed_calls_total');
      expect((await fetch(`${server.url}/`)).status).toBe(404);
      expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.close();
    }
    // Not on the Gate's client listener.
    expect((await fetch(`${instance.url}/metrics`)).status).toBe(404);
  });
});

describe('traceparent', () => {
  it('accepts W3C version 00 and ignores anything invalid', () => {
    expect(parseTraceparent(`00-${CALLER_TRACE}-00f067aa0ba902b7-01`)?.traceId).toBe(CALLER_TRACE);
    for (const bad of [
      undefined,
      '',
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-${CALLER_TRACE}-${'0'.repeat(16)}-01`,
      `ff-${CALLER_TRACE}-00f067aa0ba902b7-01`,
      `00-${CALLER_TRACE}-00f067aa0ba902b7-01-extra`,
      `00-${CALLER_TRACE.toUpperCase()}-00f067aa0ba902b7-01`,
    ])
      expect(parseTraceparent(bad)).toBeUndefined();
  });
});

describe('tool names in logs and traces', () => {
  it('a tool name outside the request name syntax is logged and traced as invalid', async () => {
    const lines: string[] = [];
    const port = (receiver.address() as AddressInfo).port;
    const t = await createTelemetry({
      logLevel: 'info',
      logDestination: { write: (line: string) => lines.push(line) },
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'fc-test' },
    });
    const traceId = 'abcdefabcdefabcdefabcdefabcdef01';
    const hostile = 'evil\ntool {"x":1}';
    t.observer.callEnded({
      outcome: 'deny',
      code: 'ERR_TOOL_UNKNOWN',
      status: 403,
      trace_id: traceId,
      request_id: 'r-1',
      tool: hostile,
      ingress: 'mcp',
      startMs: 0,
      endMs: 1,
    });
    await t.tracing?.flush();
    await t.close();
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'call');
    expect(line?.['tool']).toBe('invalid');
    const root = spans.find((s) => s.traceId === traceId);
    expect(root?.name).toBe('execute_tool invalid');
    expect(attr(root as ExportedSpan, 'gen_ai.tool.name')).toBe('invalid');
    expect(lines.join('') + bodies.join('')).not.toContain('evil');
  });
});

describe('a failing observer', () => {
  it('never changes a call: a telemetry whose every method throws leaves the call executed, once', async () => {
    const base = await createTelemetry({ logLevel: 'silent' });
    const boom = (): never => {
      throw new Error('telemetry down');
    };
    const failing: Telemetry = {
      ...base,
      observer: { stage: boom, callEnded: boom, ledgerBatch: boom, nonceStore: boom, breakerTrip: boom },
    };
    const d = join(mkdtempSync(join(tmpdir(), 'fc-telemetry-fail-')), 'data');
    await initDataDir(d);
    const other = await startEmbedded(d, { port: 0, executionPort: 0, telemetry: failing });
    try {
      const file = readClientFile(d, DEMO_CLIENT.identity);
      const request = buildSignedRequest({
        identity: file.identity,
        tenant: file.tenant,
        action: 'echo',
        parameters: { message: 'still runs' },
        timestampMs: Date.now(),
        key: importSigningKeyJwk(file.key),
      });
      const res = await fetch(`${other.url}/v1/calls`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ outcome: 'executed' });
    } finally {
      await other.close();
      await base.close();
      rmSync(join(d, '..'), { recursive: true, force: true });
    }
  });
});
