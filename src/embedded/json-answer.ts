/**
 * Answers of the internal mutual-TLS listeners (the Control Plane process's internal listener,
 * the ledger process): JSON (or stored JSON bytes), never cached, and a deny as
 * `{outcome, code, reason}` under the code's HTTP status.
 */
import type { ServerResponse } from 'node:http';
import { statusOf } from '../kernel/index.js';
import type { DenialCode, JsonValue } from '../kernel/index.js';

/** Writes `body` (a JSON value, or bytes already JSON) with `status`. */
export function answerJson(res: ServerResponse, status: number, body: JsonValue | Buffer): void {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': bytes.length,
    'cache-control': 'no-store',
  });
  res.end(bytes);
}

/** Writes a deny with `code` and `reason`, under the code's status. */
export function answerDeny(res: ServerResponse, code: DenialCode, reason: string): void {
  answerJson(res, statusOf(code), { outcome: 'deny', code, reason });
}
