/**
 * The telemetry settings of `failclosed.json` and the environment (docs/deployment.md
 * "Observability"): `log.level` (`FAILCLOSED_LOG_LEVEL` over it) and `metrics.listen`
 * (`FAILCLOSED_METRICS_LISTEN` over it), `host:port` of the separate metrics listener.
 */
import { isLogLevel, LOG_LEVELS } from './levels.js';
import type { LogLevel } from './levels.js';

/** `failclosed.json` `log`. */
export interface LogConfig {
  readonly level?: LogLevel;
}

/** `failclosed.json` `metrics`. */
export interface MetricsConfig {
  /** `host:port` (`[v6]:port`) where `GET /metrics` is served; absent: not served. */
  readonly listen?: string;
}

/** Parses `log`; throws a TypeError naming the problem. */
export function parseLogConfig(v: unknown): LogConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError('log must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'level') throw new TypeError(`log: unknown field ${k}`);
  if (o['level'] !== undefined && !isLogLevel(o['level']))
    throw new TypeError(`log.level must be one of ${LOG_LEVELS.join(', ')}`);
  return Object.freeze(o['level'] === undefined ? {} : { level: o['level'] });
}

/** Parses `metrics`; throws a TypeError naming the problem. */
export function parseMetricsConfig(v: unknown): MetricsConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new TypeError('metrics must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'listen') throw new TypeError(`metrics: unknown field ${k}`);
  if (o['listen'] === undefined) return Object.freeze({});
  if (typeof o['listen'] !== 'string' || parseListen(o['listen']) === undefined)
    throw new TypeError('metrics.listen must be host:port');
  return Object.freeze({ listen: o['listen'] });
}

/** `host:port` or `[v6]:port` (port 0 to 65535); undefined when malformed. */
export function parseListen(text: string): { readonly host: string; readonly port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

/** The effective settings: the environment over the file; `defaultLevel` when neither says. */
export function resolveTelemetrySettings(
  config: { readonly log?: LogConfig; readonly metrics?: MetricsConfig },
  env: Readonly<Record<string, string | undefined>>,
  defaultLevel: LogLevel,
): {
  readonly logLevel: LogLevel;
  readonly metricsListen?: { readonly host: string; readonly port: number };
} {
  const envLevel = env['FAILCLOSED_LOG_LEVEL']?.trim();
  if (envLevel !== undefined && envLevel !== '' && !isLogLevel(envLevel))
    throw new TypeError(`FAILCLOSED_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const logLevel =
    envLevel !== undefined && isLogLevel(envLevel) ? envLevel : (config.log?.level ?? defaultLevel);
  const envListen = env['FAILCLOSED_METRICS_LISTEN']?.trim();
  const listenText = envListen !== undefined && envListen !== '' ? envListen : config.metrics?.listen;
  if (listenText === undefined) return { logLevel };
  const listen = parseListen(listenText);
  if (listen === undefined) throw new TypeError('FAILCLOSED_METRICS_LISTEN must be host:port');
  return { logLevel, metricsListen: listen };
}
