/**
 * OpenTelemetry traces of governed calls (docs/deployment.md "Observability"), exported over
 * OTLP/HTTP only when the standard variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, not `OTEL_SDK_DISABLED=true`, not
 * `OTEL_TRACES_EXPORTER=none`); otherwise there is no tracer and nothing is done per call.
 *
 * A call's trace id is the ledger's `trace_id` of the call, so a trace and the evidence name each
 * other. Its root span, `execute_tool {tool}` (OpenTelemetry GenAI conventions:
 * `gen_ai.operation.name` = `execute_tool`, `gen_ai.tool.name`), has a span id derived from the
 * trace id (its low 64 bits), so that every role can parent its stage spans to it from the trace
 * id alone, in this process or another one. Spans are recorded when their stage ends, with the
 * times measured, so no context is carried through the hot path. A W3C `traceparent` the caller
 * sent is kept as a link of the root span (the caller's trace is not adopted: the ledger's
 * trace id is bound to the signed request, and the verifier checks it offline); an invalid one
 * is ignored.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Link, SpanContext, Tracer } from '@opentelemetry/api';
import type { IdGenerator } from '@opentelemetry/sdk-trace-node';
import { observedToolName } from '../../kernel/index.js';
import type { CallEnd, CallStage } from '../../kernel/index.js';

/** The traces of one composition. */
export interface Tracing {
  stage(stage: CallStage, traceId: string, startMs: number, endMs: number): void;
  callEnded(end: CallEnd): void;
  /** Exports every finished span now. */
  flush(): Promise<void>;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

/** The environment variables read (`process.env` by default). */
export type TracingEnv = Readonly<Record<string, string | undefined>>;

const TRACE_ID = /^[0-9a-f]{32}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** W3C Trace Context `traceparent`: version 00 exactly, or a later version's leading fields. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** True when the variables ask for traces to be exported. */
export function tracingWanted(env: TracingEnv): boolean {
  if ((env['OTEL_SDK_DISABLED'] ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env['OTEL_TRACES_EXPORTER'] ?? 'otlp').split(',').map((s) => s.trim().toLowerCase());
  if (!exporters.includes('otlp')) return false;
  const nonEmpty = (k: string): boolean => (env[k] ?? '').trim().length > 0;
  return nonEmpty('OTEL_EXPORTER_OTLP_ENDPOINT') || nonEmpty('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
}

/**
 * The span context a W3C `traceparent` header names; undefined when absent or invalid (W3C Trace
 * Context §3.2: version `ff`, all-zero ids, a version-00 header with extra fields).
 */
export function parseTraceparent(header: string | undefined): SpanContext | undefined {
  if (header === undefined || header.length > 512) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
}

/**
 * The traces endpoint: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else
 * `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/traces` appended (OTLP exporter specification).
 */
function tracesUrl(env: TracingEnv): string {
  const signal = (env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? '').trim();
  if (signal.length > 0) return signal;
  const base = (env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? '').trim();
  return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
}

/** The root span id of the call whose trace id is `traceId`: its low 64 bits (never all zero). */
export function rootSpanIdOf(traceId: string): string {
  const low = traceId.slice(16);
  return low === ZERO_SPAN ? '0000000000000001' : low;
}

/**
 * The SDK and the OTLP exporter, loaded only by a composition that exports traces: together
 * about 0.3 s of CPU at every process start (the CLI, `up`, each `serve`) that asks for none.
 */
async function loadSdk() {
  const [sdk, exporter, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  return { ...sdk, ...exporter, ...resources };
}

/** Random ids, except for the one root span being started with the ids it must have. */
class CallIds implements IdGenerator {
  constructor(private readonly random: IdGenerator) {}
  next: { readonly traceId: string; readonly spanId: string } | undefined;
  generateTraceId(): string {
    return this.next?.traceId ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.next?.spanId ?? this.random.generateSpanId();
  }
}

/**
 * The tracer of one composition, or undefined when the variables do not ask for traces.
 * `serviceName` is used when `OTEL_SERVICE_NAME` is unset.
 */
export async function createTracing(
  env: TracingEnv,
  options: { readonly serviceName: string; readonly role: string },
): Promise<Tracing | undefined> {
  if (!tracingWanted(env)) return undefined;
  const sdk = await loadSdk();
  const { AlwaysOnSampler, BatchSpanProcessor, NodeTracerProvider, OTLPTraceExporter } = sdk;
  const ids = new CallIds(new sdk.RandomIdGenerator());
  const serviceName = (env['OTEL_SERVICE_NAME'] ?? '').trim() || options.serviceName;
  const provider = new NodeTracerProvider({
    resource: sdk.resourceFromAttributes({ 'service.name': serviceName, 'failclosed.role': options.role }),
    idGenerator: ids,
    // Every call is traced when traces are exported: the root span's id is fixed, so its stage
    // spans are recorded before it, and a sampling decision could not be shared with them.
    sampler: new AlwaysOnSampler(),
    // The exporter reads headers and timeout from the OTEL_EXPORTER_OTLP_* variables itself.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(env) }))],
  });
  // Not registered globally: several compositions in one process keep their own providers.
  const tracer: Tracer = provider.getTracer('failclosed');
  const parentOf = (traceId: string) =>
    trace.setSpanContext(ROOT_CONTEXT, {
      traceId,
      spanId: rootSpanIdOf(traceId),
      traceFlags: TraceFlags.SAMPLED,
      isRemote: false,
    });
  return {
    stage(stage, traceId, startMs, endMs) {
      if (stage === 'call' || !TRACE_ID.test(traceId) || traceId === ZERO_TRACE) return;
      tracer
        .startSpan(
          `failclosed.${stage}`,
          { kind: SpanKind.INTERNAL, startTime: startMs, attributes: { 'failclosed.stage': stage } },
          parentOf(traceId),
        )
        .end(endMs);
    },
    callEnded(end) {
      const traceId = end.trace_id;
      if (!TRACE_ID.test(traceId) || traceId === ZERO_TRACE) return;
      const caller = parseTraceparent(end.traceparent);
      const links: Link[] = caller === undefined ? [] : [{ context: caller }];
      // An MCP tool name is unchecked: only one of the request name syntax names a span.
      const tool = observedToolName(end.tool);
      ids.next = { traceId, spanId: rootSpanIdOf(traceId) };
      let span;
      try {
        span = tracer.startSpan(
          tool === null ? 'execute_tool' : `execute_tool ${tool}`,
          {
            kind: SpanKind.INTERNAL,
            startTime: end.startMs,
            links,
            attributes: {
              'gen_ai.operation.name': 'execute_tool',
              ...(tool === null ? {} : { 'gen_ai.tool.name': tool }),
              'failclosed.request_id': end.request_id ?? '',
              'failclosed.outcome': end.outcome,
              'failclosed.ingress': end.ingress,
              'http.response.status_code': end.status,
              ...(end.code === null ? {} : { 'error.type': end.code }),
            },
          },
          ROOT_CONTEXT,
        );
      } finally {
        ids.next = undefined;
      }
      if (end.outcome === 'deny') span.setStatus({ code: SpanStatusCode.ERROR, message: end.code ?? 'deny' });
      span.end(end.endMs);
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
