/**
 * The Gate's Execution Layer port over the network (SPEC §2 step 6, FC-INV-6): `POST
 * /v1/execute` and `POST /v1/void` to an Execution Layer at `executor_url`, over mutual TLS with
 * the Gate's certificate, to a server whose certificate names the `executor` role
 * (`src/transport/client.ts`). The answer is untrusted input: size-bounded, parsed strictly, and
 * anything that is not a well-formed answer (no answer, a transport error, a refused server,
 * garbage) is `ERR_EXECUTION_UNAVAILABLE`; the Gate then parses the execution answer again
 * (`parseExecutionAnswer`). The Execution Layer writes its receipt itself before answering: the
 * Gate's shared commit (`DurableWrites`) stays in-process and is not passed on.
 *
 * Bounds agree with the other side: the Execution Layer's listener refuses to send an answer the
 * Gate would not accept (`EXECUTION_ANSWER_LIMITS`, `ERR_TOOL_OUTPUT_LIMIT`, recorded there), and
 * the request is cancelled when the Gate's execute deadline passes (its `signal`), with a socket
 * timeout below that deadline: no answer arrives after the Gate has denied.
 *
 * A call with a `CallRelay` (the MCP ingress, never a background call) is relayed across the
 * connection ({@link postRelayed}; docs/deployment.md "The relay between the Gate and the
 * Execution Layer"): notices and requests to the client stream back as lines, each checked here
 * again, and a cancellation is sent to the Execution Layer.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { canonicalize, deny, isDenialCode, parseJson } from '../kernel/index.js';
import type { ClientRequestKind, JsonObject, JsonValue } from '../kernel/index.js';
import {
  AskNotSent,
  CLIENT_REQUEST_METHODS,
  MAX_ASK_BYTES,
  MAX_RELAYED_ASKS,
  MAX_RELAYED_BYTES,
  MAX_RELAYED_NOTICES,
  parseRelayedNotice,
  screenAnswer,
  screenAsk,
} from '../execution/index.js';
import type { CallRelay, RelayedAsk } from '../execution/index.js';
import { MAX_BACKGROUND_TIMEOUT_MS } from '../policy/index.js';
import type { ExecutionCall, ExecutionResult, GateExecutor, VoidCall, VoidResult } from '../gate/index.js';
import { readCapped } from '../transport/index.js';
import type { MtlsAgent } from '../transport/index.js';
import {
  EXECUTION_ANSWER_LIMITS,
  NOT_SENT,
  RELAY_CONTENT_TYPE,
  RELAY_EVENT_BYTES,
} from './execution-server.js';

/** Options of {@link createRemoteExecutor}. */
export interface RemoteExecutorOptions {
  /** `https://HOST:PORT` of the Execution Layer. */
  readonly url: string;
  /** The Gate's mutual-TLS Agent, expecting the `executor` role. */
  readonly agent: MtlsAgent;
  /**
   * Socket idle deadline (ms) of one call; keep it below the Gate's execute deadline
   * (`GateTimeouts.executionMs`, default 30 000). Default 25 000. The Gate's deadline also cancels
   * the request through its `signal`.
   */
  readonly timeoutMs?: number;
  /** Largest answer (bytes) accepted; default and what the listener enforces: `EXECUTION_ANSWER_LIMITS`. */
  readonly maxAnswerBytes?: number;
}

/** Default socket deadline: below the Gate's default execute deadline of 30 s. */
export const REMOTE_EXECUTOR_TIMEOUT_MS = 25_000;

/** Beyond a background call's longest run: the receipt's ledger rounds and the answer. */
export const BACKGROUND_GRACE_MS = 60_000;

const unavailable = (why: string) => deny('ERR_EXECUTION_UNAVAILABLE', why);

/**
 * A W3C `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header) carrying the
 * call's `trace_id` when it is one (32 lowercase hex, not all zero), so the Execution Layer's
 * records join the same trace; none otherwise.
 */
export function traceparentOf(traceId: string): string | undefined {
  if (!/^[0-9a-f]{32}$/.test(traceId) || /^0+$/.test(traceId)) return undefined;
  return `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
}

/** POSTs `body` and parses the JSON answer; rejects on anything but a parsable JSON answer. */
function post(
  options: RemoteExecutorOptions,
  path: string,
  body: JsonValue,
  traceId: string,
  signal: AbortSignal | undefined,
  idleMs = options.timeoutMs ?? REMOTE_EXECUTOR_TIMEOUT_MS,
): Promise<JsonValue> {
  const text = JSON.stringify(body);
  const traceparent = traceparentOf(traceId);
  const maxBytes = options.maxAnswerBytes ?? EXECUTION_ANSWER_LIMITS.maxBytes;
  if (signal?.aborted === true) return Promise.reject(new Error('deadline passed'));
  return new Promise((resolve, reject) => {
    const req = request(
      `${options.url}${path}`,
      {
        method: 'POST',
        agent: options.agent.current(),
        // Aborting destroys the request (and its socket): the Execution Layer sees it cut.
        ...(signal === undefined ? {} : { signal }),
        timeout: idleMs,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          ...(traceparent === undefined ? {} : { traceparent }),
        },
      },
      (res) => {
        readCapped(res, maxBytes).then((b) => {
          if (b === null) return reject(new Error('answer too large'));
          try {
            // Untrusted bytes from the wire: the strict parser (duplicate keys, depth, size).
            resolve(parseJson(b, { maxBytes, maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth }));
          } catch (err) {
            reject(err instanceof Error ? err : new Error('malformed answer'));
          }
        }, reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(text);
  });
}

const ID_RE = /^[A-Za-z0-9_-]{22}$/;

const KIND_OF: ReadonlyMap<string, ClientRequestKind> = new Map(
  Object.entries(CLIENT_REQUEST_METHODS).map(([kind, method]) => [method, kind as ClientRequestKind]),
);

/**
 * One relayed `POST /v1/execute` (execution-server.ts `RELAY_CONTENT_TYPE`): the body asks for
 * the relay, and the answer is read line by line, each line bounded (`maxBytes`) and the whole
 * (`maxBytes + RELAY_EVENT_BYTES`), each parsed strictly and checked again here: a notice in its
 * closed shape, within the guard's bounds in number and bytes, handed to `relay.notify`; a
 * request to the caller's client screened again, within its bounds, handed to `relay.ask`, whose
 * answer (or refusal) is posted back to `POST /v1/execute/answer`. The last line is the execution
 * answer, parsed as a plain answer is, and the stream must end with it. Anything else rejects
 * (`ERR_EXECUTION_UNAVAILABLE`), and nothing more is relayed. When `relay.cancelled` aborts, the
 * Execution Layer is told (`POST /v1/execute/cancel`) and its answer still awaited (a call that
 * ended first keeps its outcome); when it cannot be told, the request is cut, which cancels too.
 * An answer that is not streamed (a refusal before the call, an Execution Layer that does not
 * relay) is read as a plain one.
 */
function postRelayed(
  options: RemoteExecutorOptions,
  body: JsonObject,
  relay: CallRelay,
  traceId: string,
  signal: AbortSignal | undefined,
): Promise<JsonValue> {
  const text = JSON.stringify({
    ...body,
    relay: { progress: relay.progress, ask: relay.ask !== undefined },
  });
  const traceparent = traceparentOf(traceId);
  const maxBytes = options.maxAnswerBytes ?? EXECUTION_ANSWER_LIMITS.maxBytes;
  const parseOptions = { maxBytes, maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth };
  if (signal?.aborted === true) return Promise.reject(new Error('deadline passed'));
  // Ends the waits for the caller's answers once the exchange has ended, however it ended.
  const ended = new AbortController();
  return new Promise<JsonValue>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void): void => {
      if (settled) return;
      settled = true;
      ended.abort();
      relay.cancelled?.removeEventListener('abort', onCancel);
      f();
    };
    const fail = (why: string): void =>
      settle(() => {
        req.destroy();
        reject(new Error(why));
      });
    let call: string | undefined;
    let cancelWanted = false;
    const cancel = (): void => {
      if (call === undefined || settled) return;
      post(options, '/v1/execute/cancel', { call }, traceId, ended.signal).then(
        (v) => {
          // Not taken (the call ended meanwhile) is fine: its answer is on its way.
          if (!(isRecord(v) && (v['accepted'] === true || v['outcome'] === 'deny'))) req.destroy();
        },
        // Not told: cut the request, which the Execution Layer takes as a cancellation.
        () => req.destroy(),
      );
    };
    const onCancel = (): void => {
      cancelWanted = true;
      cancel();
    };
    const req = request(
      `${options.url}/v1/execute`,
      {
        method: 'POST',
        agent: options.agent.current(),
        ...(signal === undefined ? {} : { signal }),
        timeout: options.timeoutMs ?? REMOTE_EXECUTOR_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          accept: `${RELAY_CONTENT_TYPE}, application/json`,
          ...(traceparent === undefined ? {} : { traceparent }),
        },
      },
      (res) => {
        const type = String(res.headers['content-type'] ?? '')
          .split(';')[0]
          ?.trim();
        if (type !== RELAY_CONTENT_TYPE) {
          readCapped(res, maxBytes).then(
            (b) => {
              if (b === null) return fail('answer too large');
              try {
                const v = parseJson(b, parseOptions);
                settle(() => resolve(v));
              } catch {
                fail('malformed answer');
              }
            },
            () => fail('the answer broke off'),
          );
          return;
        }
        readLines(res, relay, {
          maxBytes,
          onCall: (id) => {
            call = id;
            if (cancelWanted || relay.cancelled?.aborted === true) cancel();
          },
          onAsk: (id, ask, kind) => {
            if (call === undefined) return;
            const answered = call;
            Promise.resolve()
              .then(() => relay.ask!(ask, ended.signal))
              .then(
                (result) => {
                  // Screened here too (the Execution Layer's guard checks it again), within its bound.
                  const checked = screenAnswer(kind, result);
                  return checked === undefined ||
                    Buffer.byteLength(canonicalize(checked), 'utf8') > MAX_ASK_BYTES
                    ? { call: answered, ask: id, error: 'the client answer is not one failclosed relays' }
                    : { call: answered, ask: id, result: checked };
                },
                (e: unknown) => ({
                  call: answered,
                  ask: id,
                  error: e instanceof AskNotSent ? NOT_SENT : 'the client did not answer',
                }),
              )
              .then(
                (answer) => {
                  // Best effort: an answer not delivered leaves the upstream unanswered until the call ends.
                  if (!settled)
                    post(options, '/v1/execute/answer', answer, traceId, ended.signal).catch(() => undefined);
                },
                () => undefined,
              );
          },
          onAnswer: (v) => settle(() => resolve(v)),
          onBad: fail,
        });
      },
    );
    relay.cancelled?.addEventListener('abort', onCancel, { once: true });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', (err) => fail(err.message));
    // Cut before its end: a failure (after whatever the answer's own end settled).
    req.once('close', () => setImmediate(() => fail('the Execution Layer closed the relayed answer early')));
    req.end(text);
  });
}

/**
 * Reads a relayed answer's lines (untrusted): each at most `maxBytes`, the whole at most
 * `maxBytes + RELAY_EVENT_BYTES`; events as described at {@link postRelayed}; `onBad` on the
 * first thing out of place, after which nothing more is read.
 */
function readLines(
  res: IncomingMessage,
  relay: CallRelay,
  h: {
    readonly maxBytes: number;
    onCall(id: string): void;
    onAsk(id: string, ask: RelayedAsk, kind: ClientRequestKind): void;
    onAnswer(v: JsonValue): void;
    onBad(why: string): void;
  },
): void {
  const lineOptions = { maxBytes: h.maxBytes, maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth };
  let chunks: Buffer[] = [];
  let size = 0;
  let total = 0;
  let call: string | undefined;
  let notices = 0;
  let noticeBytes = 0;
  const asks = new Set<string>();
  let answer: JsonValue | undefined;
  let bad = false;
  const stop = (why: string): void => {
    bad = true;
    res.destroy();
    h.onBad(why);
  };
  const event = (line: Buffer): string | undefined => {
    if (answer !== undefined) return 'a line after the answer';
    let v: JsonValue;
    try {
      v = parseJson(line, lineOptions);
    } catch {
      return 'a malformed line';
    }
    if (!isRecord(v)) return 'a line that is not an object';
    const kind = v['event'];
    if (kind === undefined) {
      if (call === undefined) return 'an answer before the call';
      // The execution answer: parsed as a plain one (the Gate checks its shape next).
      answer = v;
      return undefined;
    }
    const keys = Object.keys(v).sort().join(',');
    if (kind === 'call') {
      const id = v['call'];
      if (call !== undefined || keys !== 'call,event' || typeof id !== 'string' || !ID_RE.test(id))
        return 'a malformed call line';
      call = id;
      h.onCall(id);
      return undefined;
    }
    if (call === undefined) return 'an event before the call';
    if (kind === 'notice') {
      const notice = keys === 'event,notice' ? parseRelayedNotice(v['notice']) : undefined;
      if (notice === undefined) return 'a malformed notice';
      notices += 1;
      noticeBytes += Buffer.byteLength(canonicalize(notice), 'utf8');
      if (notices > MAX_RELAYED_NOTICES || noticeBytes > MAX_RELAYED_BYTES) return 'too many notices';
      try {
        relay.notify(notice);
      } catch {
        // The caller's sink never changes the call.
      }
      return undefined;
    }
    if (kind === 'ask') {
      const id = v['ask'];
      const method = v['method'];
      const askKind = typeof method === 'string' ? KIND_OF.get(method) : undefined;
      if (
        relay.ask === undefined ||
        keys !== 'ask,event,method,params' ||
        typeof id !== 'string' ||
        !ID_RE.test(id) ||
        asks.has(id) ||
        askKind === undefined
      )
        return 'a malformed request to the client';
      asks.add(id);
      if (asks.size > MAX_RELAYED_ASKS) return 'too many requests to the client';
      // Screened again here: only the closed shape the guard relays, within its bound.
      const params = screenAsk(askKind, v['params']);
      if (
        params === undefined ||
        canonicalize(params) !== canonicalize(v['params'] ?? null) ||
        Buffer.byteLength(canonicalize(params), 'utf8') > MAX_ASK_BYTES
      )
        return 'a malformed request to the client';
      // Requests count towards the same byte budget as the notices, as in the guard.
      noticeBytes += Buffer.byteLength(canonicalize(params), 'utf8');
      if (noticeBytes > MAX_RELAYED_BYTES) return 'too many notices and requests';
      h.onAsk(id, { method: CLIENT_REQUEST_METHODS[askKind], params }, askKind);
      return undefined;
    }
    return 'an unknown event';
  };
  res.on('data', (c: Buffer) => {
    if (bad) return;
    total += c.length;
    if (total > h.maxBytes + RELAY_EVENT_BYTES) return stop('the relayed answer is too large');
    let from = 0;
    for (let nl = c.indexOf(10, from); nl !== -1; nl = c.indexOf(10, from)) {
      const part = c.subarray(from, nl);
      from = nl + 1;
      if (size + part.length > h.maxBytes) return stop('a line too large');
      const line = chunks.length === 0 ? part : Buffer.concat([...chunks, part]);
      chunks = [];
      size = 0;
      let wrong: string | undefined;
      try {
        wrong = event(line);
      } catch {
        wrong = 'a line that could not be read';
      }
      if (wrong !== undefined) return stop(wrong);
    }
    const rest = c.subarray(from);
    size += rest.length;
    if (size > h.maxBytes) return stop('a line too large');
    if (rest.length > 0) chunks.push(rest);
  });
  res.once('end', () => {
    if (bad) return;
    if (answer === undefined || size > 0) return stop('the relayed answer ended without its answer');
    h.onAnswer(answer);
  });
  res.once('error', () => {
    if (!bad) stop('the relayed answer broke off');
  });
}

function isRecord(v: JsonValue): v is { readonly [k: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a void answer; anything else is a deny (the envelope is then not reported voided). */
function parseVoidAnswer(v: JsonValue): VoidResult {
  if (!isRecord(v)) return unavailable('the Execution Layer void answer could not be interpreted');
  if (v['outcome'] === 'voided' && typeof v['recorded'] === 'boolean')
    return { outcome: 'voided', recorded: v['recorded'] };
  if (v['outcome'] === 'consumed') return { outcome: 'consumed' };
  if (v['outcome'] === 'deny' && isDenialCode(v['code']))
    return deny(v['code'], typeof v['reason'] === 'string' ? v['reason'].slice(0, 200) : v['code']);
  return unavailable('the Execution Layer void answer could not be interpreted');
}

/** The Gate's executor port over mutual TLS to `options.url`. Never throws. */
export function createRemoteExecutor(options: RemoteExecutorOptions): GateExecutor {
  const body = (c: ExecutionCall): JsonValue => ({
    envelope: c.envelope,
    tool: c.tool,
    tenant: c.tenant,
    params: c.params,
    trace_id: c.trace_id,
    request_id: c.request_id,
  });
  return {
    async execute(
      call: ExecutionCall,
      _writes?: unknown,
      signal?: AbortSignal,
      relay?: CallRelay,
    ): Promise<ExecutionResult> {
      try {
        // A caller relaying (the MCP ingress): the streamed exchange. Background calls never relay.
        if (relay !== undefined && call.background !== true)
          return (await postRelayed(
            options,
            body(call) as JsonObject,
            relay,
            call.trace_id,
            signal,
          )) as unknown as ExecutionResult;
        // Shape checked by the Gate (parseExecutionAnswer): anything uninterpretable is a deny.
        return (await post(
          options,
          '/v1/execute',
          body(call),
          call.trace_id,
          signal,
          // A background call's tool may run up to its policy's background limit; the caller's
          // own deadline (the job queue's) still bounds the wait.
          call.background === true ? MAX_BACKGROUND_TIMEOUT_MS + BACKGROUND_GRACE_MS : undefined,
        )) as unknown as ExecutionResult;
      } catch {
        return unavailable('the Execution Layer could not be reached or answered garbage');
      }
    },
    async void(call: VoidCall, signal?: AbortSignal): Promise<VoidResult> {
      try {
        const v = await post(
          options,
          '/v1/void',
          { ...(body(call) as object), code: call.code, stage: call.stage },
          call.trace_id,
          signal,
        );
        return parseVoidAnswer(v);
      } catch {
        return unavailable('the Execution Layer could not be reached or answered garbage');
      }
    },
  };
}
