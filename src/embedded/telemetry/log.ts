/**
 * Structured logs (docs/deployment.md "Observability"): one JSON object per line on standard
 * output (pino). A governed call's line holds its request id, the ledger's trace id, the tool,
 * outcome, denial code, HTTP status and duration; never parameters, results, tokens or keys
 * (OE-INV-009): the observer hands this module nothing else.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from './levels.js';

export type { Logger } from 'pino';
export { isLogLevel, LOG_LEVELS } from './levels.js';
export type { LogLevel } from './levels.js';

/** Where lines go: standard output (default) or any writable stream (tests). */
export interface LogDestination {
  write(line: string): unknown;
}

/**
 * A JSON logger at `level`. On standard output the writes are asynchronous (the hot path does not
 * wait for the terminal or pipe); {@link flushLogger} before exiting.
 */
export function createLogger(level: LogLevel, destination?: LogDestination): Logger {
  const options = {
    level,
    base: { service: 'failclosed' },
    // Nothing that could hold a secret is ever logged, and these keys never are, whatever a caller passes.
    redact: { paths: ['parameters', 'params', 'result', 'authorization', 'token'], remove: true },
  };
  if (destination !== undefined) return pino(options, destination);
  return pino(options, pino.destination({ dest: 1, sync: false }));
}

/** Writes out what the logger still holds (best effort). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // A closed or broken stream: nothing more can be written.
  }
}
