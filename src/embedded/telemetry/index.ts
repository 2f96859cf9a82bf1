/** Logs, metrics and traces of a composition (docs/deployment.md "Observability"). */
export { createTelemetry } from './telemetry.js';
export type { Telemetry, TelemetryOptions } from './telemetry.js';
export { createLogger, isLogLevel, LOG_LEVELS } from './log.js';
export type { LogDestination, LogLevel, Logger } from './log.js';
export { createMetrics, ledgerProcessMetrics } from './metrics.js';
export type { LedgerProcessMetrics, Metrics } from './metrics.js';
export { createTracing, parseTraceparent, rootSpanIdOf, tracingWanted } from './tracing.js';
export type { Tracing, TracingEnv } from './tracing.js';
export { serveMetrics } from './metrics-server.js';
export type { MetricsServer } from './metrics-server.js';
export { parseListen, parseLogConfig, parseMetricsConfig, resolveTelemetrySettings } from './config.js';
export type { LogConfig, MetricsConfig } from './config.js';
