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
 * load generator's CPU per governed call went from 1.26 ms to 0.46–0.60 ms. A caller may still
 * pass a `fetch` of its own (a custom dispatcher or TLS setup, a test's fault injection): it is
 * then used as given.
 *
 * An answer body is read up to `MAX_ANSWER_BYTES` (`kernel/answer-limits.ts`): a result at the
 * largest output limit a tool may be granted and what the answer carries beside it, so every
 * result the executor lets through reaches the caller. A Gate (or anything at its address) that
 * sends more is cut off there instead of filling the agent's memory first; the answer is then
 * unreadable. The audit-bundle export, which may be larger than memory, is streamed to a file
 * instead (`download.ts`).
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import { MAX_ANSWER_BYTES, parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';

/**
 * Failures that can only come before a request is written: a connection that could not be made
 * (the `connect` system call, or resolving the name), a certificate the TLS handshake refused
 * (verification ends the handshake before any byte of the request is sent), and a URL the client
 * refuses to use. Judged by where the error arose, not by its code alone: a refusal or an
 * unreachable host reported on an established socket (`read`, `write`), any other TLS error (an
 * alert or a bad record can come mid-answer) and any reset or timeout may come after the Gate read
 * the call.
 */
const CONNECT_CODES =
  /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN|EAI_NONAME)$/;
const CERTIFICATE_CODES =
  /^(ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|CERT_(HAS_EXPIRED|NOT_YET_VALID|REVOKED|UNTRUSTED|REJECTED|SIGNATURE_FAILURE))$/;

/**
 * True when `err` (a `node:http` error, or a `fetch` failure and its causes) says the request was
 * never sent, so the call cannot have run. A caller's own `fetch` must not retry a request on its
 * own: a retry's failure would speak for an attempt that may have reached the Gate.
 */
export function neverSent(err: unknown): boolean {
  for (let e = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth += 1) {
    // Every address of a name tried and failed (Node's `autoSelectFamily`): never sent only when
    // none of the attempts can have carried the request.
    const { errors } = e as { errors?: unknown };
    if (Array.isArray(errors)) return errors.length > 0 && errors.every((x) => neverSent(x));
    const { code, syscall } = e as { code?: unknown; syscall?: unknown };
    if (typeof code === 'string') {
      if (code === 'ERR_INVALID_URL' || CERTIFICATE_CODES.test(code)) return true;
      if (CONNECT_CODES.test(code) && (syscall === 'connect' || syscall === 'getaddrinfo')) return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

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

/**
 * After this long without an answer from an origin, a request waits one timer turn before it is
 * sent. The agent hands out a kept-alive connection synchronously, so a process whose event loop
 * was blocked past the Gate's keep-alive timeout (a synchronous child process, a suspended
 * machine) would otherwise write its call on a connection the Gate closed meanwhile: its idle
 * timer and the Gate's FIN are only seen on the next turn. One turn drops such a connection first.
 */
const STALE_AFTER_MS = 1000;
/** When each origin last answered (bounded: cleared when it grows past this many origins). */
const lastAnswer = new Map<string, number>();
const MAX_ORIGINS = 256;

function answered(origin: string): void {
  if (lastAnswer.size >= MAX_ORIGINS && !lastAnswer.has(origin)) lastAnswer.clear();
  lastAnswer.set(origin, performance.now());
}

/**
 * Aborts are heard through one listener per signal, however many calls share it (a listener per
 * call warned past ten concurrent calls on one signal).
 */
const aborting = new WeakMap<AbortSignal, Set<() => void>>();

function onAbort(signal: AbortSignal, f: () => void): () => void {
  let waiting = aborting.get(signal);
  if (waiting === undefined) {
    const set = new Set<() => void>();
    waiting = set;
    aborting.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        for (const g of [...set]) g();
        set.clear();
      },
      { once: true },
    );
  }
  const w = waiting;
  w.add(f);
  return () => w.delete(f);
}

/** Reads a response's body as it arrives; settles once, on its end or its failure. */
function collect(res: IncomingMessage): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    res.on('data', (c: Buffer) => {
      total += c.length;
      if (total > MAX_ANSWER_BYTES) {
        reject(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
        res.destroy();
        return;
      }
      chunks.push(c);
    });
    res.once('end', () => {
      // A body too large to join (past the largest Buffer) is an unreadable answer, not a crash.
      try {
        const b = Buffer.concat(chunks);
        resolve(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
      } catch (err) {
        reject(err instanceof Error ? err : new Error('the answer could not be read'));
      }
    });
    res.once('error', reject);
    // Closed before its end: the connection was cut (or destroyed by an abort, whose reason the
    // exchange rejects with first).
    res.once('close', () => {
      if (!res.complete) reject(new Error('the connection closed before the answer ended'));
    });
  });
}

/** Sends one request now (see {@link nodeExchange}). */
function sendNow(url: URL, init: HttpRequestInit): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
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
      // Nothing is sent: the code says so (a caller tells a deny from a lost answer by it).
      reject(
        Object.assign(new TypeError(`unsupported URL scheme ${url.protocol}`), { code: 'ERR_INVALID_URL' }),
      );
      return;
    }
    // As `fetch` refuses them: credentials in the Gate's address are never sent.
    if (url.username !== '' || url.password !== '') {
      reject(
        Object.assign(new TypeError('the Gate URL must not carry credentials'), { code: 'ERR_INVALID_URL' }),
      );
      return;
    }
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
    const req = send(url, { method: init.method, headers });
    /** Why the exchange failed, once it did (an abort's reason may be any value, even null). */
    let failure: { readonly reason: unknown } | undefined;
    let responded = false;
    const fail = (reason: unknown): void => {
      failure ??= { reason };
      req.destroy();
      // An abort's reason as given (above); otherwise an Error of the socket or the timeout.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      reject(failure.reason);
    };
    const stopListening = signal === undefined ? () => true : onAbort(signal, () => fail(signal.reason));
    const done = (): void => {
      stopListening();
      answered(url.origin);
    };
    req.setTimeout(IDLE_TIMEOUT_MS, () => fail(new Error('the Gate did not answer in time')));
    req.once('error', (err) => {
      done();
      fail(err);
    });
    // Closed with neither an answer nor an error: a `101` (no upgrade is taken, so Node drops the
    // socket and emits only this). Without it the exchange would wait for ever.
    req.once('close', () => {
      if (responded) return;
      done();
      fail(new Error('the connection closed without an answer'));
    });
    req.once('response', (res) => {
      responded = true;
      // Read whether or not the caller asks for it: an unread body would hold the connection.
      const body = collect(res).then(
        (b) => {
          done();
          return b;
        },
        (err: unknown) => {
          done();
          // An abort or timeout is the reason the body ended early.
          throw failure === undefined ? err : failure.reason;
        },
      );
      body.catch(() => undefined);
      resolve({ status: res.statusCode ?? 0, bytes: () => body });
    });
    req.end(init.body);
  });
}

/**
 * The default exchange: `node:http` or `node:https`, by the URL's scheme, over the global agents;
 * after a pause of the origin, one timer turn first ({@link STALE_AFTER_MS}).
 */
export const nodeExchange: HttpExchange = async (url, init) => {
  const last = lastAnswer.get(url.origin);
  if (last !== undefined && performance.now() - last >= STALE_AFTER_MS)
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  return sendNow(url, init);
};

/** A caller's `fetch` as an exchange; it follows no redirect either (a `3xx` is the answer). */
export function fetchExchange(doFetch: typeof fetch): HttpExchange {
  return async (url, init) => {
    const res = await doFetch(url.href, {
      method: init.method,
      headers: init.headers,
      redirect: 'manual',
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal === undefined ? {} : { signal: init.signal }),
    });
    return { status: res.status, bytes: () => readCapped(res) };
  };
}

/** A `fetch` answer's body, refused past {@link MAX_ANSWER_BYTES} (the stream is cancelled there). */
async function readCapped(res: Response): Promise<Uint8Array> {
  if (res.body === null) return new Uint8Array(0);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The exchange of a client: its own `fetch` when given, else {@link nodeExchange}. */
export const exchangeOf = (doFetch: typeof fetch | undefined): HttpExchange =>
  doFetch === undefined ? nodeExchange : fetchExchange(doFetch);

/**
 * Sends `body` (JSON) to `path` of the Gate at `url` and reads the JSON answer. Never rejects: a
 * failure is `ERR_INTERNAL` whose `sent` (and reason) says whether the request was never sent
 * (`false`, status 0, "could not be reached") or may have reached the Gate (`true`; a `POST`:
 * "may have taken effect").
 */
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
  } catch (err) {
    const sent = !neverSent(err);
    return {
      status: 0,
      body: {
        outcome: 'deny',
        code: 'ERR_INTERNAL',
        reason: sent
          ? lost(method, 'no answer came back')
          : 'the Gate could not be reached: nothing was sent',
        sent,
      },
    };
  }
  try {
    return { status: res.status, body: parseJson(await res.bytes(), { maxBytes: MAX_ANSWER_BYTES }) };
  } catch {
    return {
      status: res.status,
      body: {
        outcome: 'deny',
        code: 'ERR_INTERNAL',
        reason: lost(method, 'the Gate answer could not be interpreted'),
        sent: true,
      },
    };
  }
}

/**
 * The reason of a failure after the request may have reached the Gate: a `POST` (an operator's
 * action, an approver's vote) may have taken effect, so the caller reads the state before sending
 * it again; a `GET` changed nothing.
 */
function lost(method: 'GET' | 'POST', what: string): string {
  return method === 'POST'
    ? `${what}: the request may have taken effect; read its state before sending it again`
    : what;
}
