/**
 * The telemetry of one composition (docs/deployment.md "Observability"): JSON logs, a Prometheus
 * registry of its own and, when the `OTEL_*` variables ask for it, an OTLP trace exporter; and
 * the {@link Observer} the roles report to. Built once per composition and handed to each role,
 * so that a role process (Gate, Control Plane, Execution Layer) gets the same pieces.
 */
import { observedToolName } from '../../kernel/index.js';
import type { CallEnd, CallStage, Observer } from '../../kernel/index.js';
import { createLogger, flushLogger } from './log.js';
import type { LogDestination, LogLevel, Logger } from './log.js';
import { createMetrics } from './metrics.js';
import type { Metrics } from './metrics.js';
import { createTracing } from './tracing.js';
import type { Tracing, TracingEnv } from './tracing.js';

/** Options of {@link createTelemetry}. */
export interface TelemetryOptions {
  /** Default `info`. */
  readonly logLevel?: LogLevel;
  /** Default: standard output. */
  readonly logDestination?: LogDestination;
  /** Where `OTEL_*` are read; default `process.env`. */
  readonly env?: TracingEnv;
  /** The role this composition plays, as traces and logs name it (`embedded`, `gate`, ...). */
  readonly role?: string;
  /** Node's process metrics (heap, event loop delay, CPU) in the registry too. */
  readonly processMetrics?: boolean;
}

/** Logs, metrics and traces of one composition. */
export interface Telemetry {
  /** What the roles report to. */
  readonly observer: Observer;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Present only when traces are exported. */
  readonly tracing: Tracing | undefined;
  /** Exports what traces remain and flushes the logs. */
  close(): Promise<void>;
}

/** Builds the telemetry of one composition (loading the tracing SDK only when traces are exported). */
export async function createTelemetry(options: TelemetryOptions = {}): Promise<Telemetry> {
  const role = options.role ?? 'embedded';
  const logger = createLogger(options.logLevel ?? 'info', options.logDestination).child({ role });
  const metrics = createMetrics(options.processMetrics === true ? { processMetrics: true } : {});
  const tracing = await createTracing(options.env ?? process.env, { serviceName: 'failclosed', role });
  const logCalls = logger.isLevelEnabled('info');
  const observer: Observer = Object.freeze({
    stage(stage: CallStage, traceId: string, startMs: number, endMs: number) {
      metrics.stage(stage, (endMs - startMs) / 1000);
      if (tracing !== undefined) guard(() => tracing.stage(stage, traceId, startMs, endMs));
    },
    callEnded(end: CallEnd) {
      metrics.callEnded(end);
      metrics.stage('call', (end.endMs - end.startMs) / 1000);
      // Identifiers, names and codes only: never parameters, results or credentials (OE-INV-009).
      if (logCalls)
        logger.info(
          {
            request_id: end.request_id,
            trace_id: end.trace_id,
            tool: observedToolName(end.tool),
            outcome: end.outcome,
            code: end.code,
            status: end.status,
            ingress: end.ingress,
            duration_ms: Math.round((end.endMs - end.startMs) * 1000) / 1000,
          },
          'call',
        );
      if (tracing !== undefined) guard(() => tracing.callEnded(end));
    },
    ledgerBatch(size: number, seconds: number, failed: boolean) {
      metrics.ledgerBatch(size, seconds, failed);
      if (failed) logger.error({ size }, 'ledger batch not confirmed');
    },
    nonceStore(seconds: number) {
      metrics.nonceStore(seconds);
    },
    breakerTrip(breaker: string) {
      metrics.breakerTrip(breaker);
      logger.warn({ breaker }, 'circuit breaker tripped');
    },
  });
  return Object.freeze({
    observer,
    logger,
    metrics,
    tracing,
    async close() {
      try {
        await tracing?.shutdown();
      } catch {
        // An unreachable collector must not hold a stop.
      }
      flushLogger(logger);
    },
  });
}

/** Telemetry never fails a call: a throwing exporter is ignored. */
function guard(fn: () => void): void {
  try {
    fn();
  } catch {
    // Nothing to do: the call's outcome does not depend on its telemetry.
  }
}
