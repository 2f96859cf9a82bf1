/**
 * The client library's HTTP exchanges with the Gate, and one JSON exchange shared by the operator
 * and approver clients. A JSON exchange never rejects: an unreachable Gate is status 0, an answer
 * that is not strict JSON is the status with an `ERR_INTERNAL` body, so a caller can never mistake
 * a failure for a success.
 *
 * By default an exchange goes through `node:http` / `node:https` and their global keep-alive
 * agents (LIFO; an idle connection is dropped a second before the `Keep-Alive: timeout` the Gate
 * announces). The global `fetch` did the same work at several times the CPU (its web streams, a
 * clone of each request): measured here on a JSON round trip over loopback, with a bare server
 * in the same process, 0.33–0.47 ms of CPU per exchange against 0.08 ms; in `bench:e2e`, the
 * load generator's CPU per governed call went from 1.26 ms to 0.46–0.56 ms. A caller may still
 * pass a `fetch` of its own (a custom dispatcher or TLS setup, a test's fault injection): it is
 * then used as given.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';

/** An HTTP answer from the Gate: its status (0: unreachable) and JSON body. */
export interface GateHttpAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/** What an exchange sends. */
export interface HttpRequestInit {
  readonly method: 'GET' | 'POST';
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Aborting closes the connection: the exchange (or the body's read) rejects with its reason. */
  readonly signal?: AbortSignal;
}

/** An answer whose head arrived; its body is read by `bytes`, which rejects when it cannot be. */
export interface HttpResponse {
  readonly status: number;
  bytes(): Promise<Uint8Array>;
}

/** One HTTP exchange: rejects when no answer arrived (unreachable, reset, aborted, timed out). */
export type HttpExchange = (url: URL, init: HttpRequestInit) => Promise<HttpResponse>;

/**
 * Longest silence of the Gate before an exchange gives up, as `fetch` did (its headers and body
 * timeouts): a call held for approvals (`Prefer: wait=N`) answers well within it.
 */
const IDLE_TIMEOUT_MS = 300_000;

/** Reads a response's body as it arrives; settles once, on its end or its failure. */
function collect(res: IncomingMessage): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => {
      const b = Buffer.concat(chunks);
      resolve(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    });
    res.once('error', reject);
    // Closed before its end: the connection was cut (or destroyed by an abort, whose reason the
    // exchange rejects with first).
    res.once('close', () => {
      if (!res.complete) reject(new Error('the connection closed before the answer ended'));
    });
  });
}

/** The default exchange: `node:http` or `node:https`, by the URL's scheme, over the global agents. */
export const nodeExchange: HttpExchange = (url, init) =>
  new Promise<HttpResponse>((resolve, reject) => {
    const { signal } = init;
    if (signal?.aborted === true) {
      // The signal's own reason, whatever it is, as `fetch` rejects with it.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      reject(signal.reason);
      return;
    }
    const send =
      url.protocol === 'http:' ? httpRequest : url.protocol === 'https:' ? httpsRequest : undefined;
    if (send === undefined) {
      reject(new TypeError(`unsupported URL scheme ${url.protocol}`));
      return;
    }
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
    const req = send(url, { method: init.method, headers });
    let failed: unknown;
    const fail = (err: unknown): void => {
      failed ??= err;
      req.destroy();
      // An abort's reason as given (above); otherwise an Error of the socket or the timeout.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      reject(failed);
    };
    const onAbort = (): void => fail(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => signal?.removeEventListener('abort', onAbort);
    req.setTimeout(IDLE_TIMEOUT_MS, () => fail(new Error('the Gate did not answer in time')));
    req.once('error', (err) => {
      done();
      fail(err);
    });
    req.once('response', (res) => {
      // Read whether or not the caller asks for it: an unread body would hold the connection.
      const body = collect(res).then(
        (b) => {
          done();
          return b;
        },
        (err: unknown) => {
          done();
          // An abort or timeout is the reason the body ended early.
          throw failed ?? err;
        },
      );
      body.catch(() => undefined);
      resolve({ status: res.statusCode ?? 0, bytes: () => body });
    });
    req.end(init.body);
  });

/** A caller's `fetch` as an exchange. */
export function fetchExchange(doFetch: typeof fetch): HttpExchange {
  return async (url, init) => {
    const res = await doFetch(url, {
      method: init.method,
      headers: init.headers,
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal === undefined ? {} : { signal: init.signal }),
    });
    return { status: res.status, bytes: async () => new Uint8Array(await res.arrayBuffer()) };
  };
}

/** The exchange of a client: its own `fetch` when given, else {@link nodeExchange}. */
export const exchangeOf = (doFetch: typeof fetch | undefined): HttpExchange =>
  doFetch === undefined ? nodeExchange : fetchExchange(doFetch);

/** Sends `body` (JSON) to `path` of the Gate at `url` and reads the JSON answer. */
export async function sendJson(
  exchange: HttpExchange,
  url: string,
  method: 'GET' | 'POST',
  path: string,
  authorization: string | undefined,
  body?: JsonValue,
): Promise<GateHttpAnswer> {
  let res: HttpResponse;
  try {
    res = await exchange(new URL(path, url), {
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
    return { status: res.status, body: parseJson(await res.bytes()) };
  } catch {
    return {
      status: res.status,
      body: { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'the Gate answer could not be interpreted' },
    };
  }
}
