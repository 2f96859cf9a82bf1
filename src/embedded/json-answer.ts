/**
 * Answers of the internal mutual-TLS listeners (the Control Plane process's internal listener,
 * the ledger process): JSON (or stored JSON bytes), never cached, and a deny as
 * `{outcome, code, reason}` under the code's HTTP status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FailclosedError, parseJson, statusOf } from '../kernel/index.js';
import type { DenialCode, JsonValue } from '../kernel/index.js';
import { readCapped } from '../transport/index.js';

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

/**
 * Reads a request body of at most `maxBytes` as strict JSON; on anything else answers the deny
 * (`ERR_REQUEST_TOO_LARGE`, the parser's code or `ERR_REQUEST_MALFORMED`) and resolves undefined.
 */
export async function readJsonBody(
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
  maxDepth: number,
): Promise<JsonValue | undefined> {
  const body = await readCapped(req, maxBytes);
  if (body === null) {
    answerDeny(res, 'ERR_REQUEST_TOO_LARGE', 'too large');
    return undefined;
  }
  try {
    return parseJson(body, { maxBytes, maxDepth });
  } catch (err) {
    answerDeny(res, err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED', 'malformed JSON');
    return undefined;
  }
}
