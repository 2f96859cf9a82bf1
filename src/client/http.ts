/**
 * One JSON exchange with the Gate, shared by the operator and approver clients. It never
 * rejects: an unreachable Gate is status 0, an answer that is not strict JSON is the status with
 * an `ERR_INTERNAL` body, so a caller can never mistake a failure for a success.
 */
import { parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';

/** An HTTP answer from the Gate: its status (0: unreachable) and JSON body. */
export interface GateHttpAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/** Sends `body` (JSON) to `path` of the Gate at `url` and reads the JSON answer. */
export async function sendJson(
  doFetch: typeof fetch,
  url: string,
  method: 'GET' | 'POST',
  path: string,
  authorization: string | undefined,
  body?: JsonValue,
): Promise<GateHttpAnswer> {
  let res: Response;
  try {
    res = await doFetch(new URL(path, url), {
      method,
      headers: {
        ...(authorization === undefined ? {} : { authorization }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    return {
      status: 0,
      body: { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'the Gate could not be reached' },
    };
  }
  try {
    return { status: res.status, body: parseJson(new Uint8Array(await res.arrayBuffer())) };
  } catch {
    return {
      status: res.status,
      body: { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'the Gate answer could not be interpreted' },
    };
  }
}
