/**
 * The log levels `failclosed.json` and `FAILCLOSED_LOG_LEVEL` may name, apart from the logger so
 * that reading a configuration does not load it.
 */

/** Log levels, `silent` turning logs off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** True when `v` names a log level. */
export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v);
}
