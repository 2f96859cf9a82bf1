/**
 * The Execution Layer's own listener, `POST /v1/execute` (SPEC §1, §7 scenario 3).
 *
 * Without TLS (the embedded default) the Gate calls the executor in-process; this plain HTTP
 * listener binds to loopback only and exists so that a direct call that bypasses the Gate can be
 * made, and is denied by the executor itself (`ERR_ENVELOPE_MISSING` without an envelope).
 *
 * With `tls` (docs/deployment.md "Mutual TLS", FC-INV-6) it serves HTTPS with mutual TLS and
 * admits only peers whose certificate names the `gate` role: every other peer is refused at the
 * TLS handshake or right after it, before a request is read (`src/transport/server.ts`), and the
 * refusal is handed to `tls.onRefused`. Only then is `POST /v1/void` served too: voiding takes an
 * envelope out of use, which only the Gate may ask for.
 *
 * An answer is sent only within `EXECUTION_ANSWER_LIMITS` (what the Gate's remote port accepts):
 * a result beyond them is answered `ERR_TOOL_OUTPUT_LIMIT` and recorded as a `denial` (the tool
 * ran, its receipt is written, the result is withheld), so the Gate never denies a call whose
 * result the Execution Layer reported as delivered.
 *
 * Over mutual TLS, a call whose request asks for the relay is answered as a stream of its
 * guarded notices and requests to the caller's client, then the same answer
 * ({@link RELAY_CONTENT_TYPE}); `POST /v1/execute/answer` and `POST /v1/execute/cancel` reach a
 * relayed call still running, by the ids the stream named.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  FailclosedError,
  isDenialCode,
  MAX_ANSWER_BYTES,
  parseJson,
  statusOf,
  withDeadline,
} from '../kernel/index.js';
import type { DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import { AskNotSent } from '../execution/index.js';
import type { CallRelay, ExecutionInput, ExecutionLedger, Executor } from '../execution/index.js';
import { createMtlsServer, readCapped } from '../transport/index.js';
import type { MtlsServer, Refusal, RefusalReason, TlsFiles } from '../transport/index.js';

const MAX_BODY = 256 * 1024;

/**
 * The largest execution answer carried between the Execution Layer and the Gate's remote port
 * (bytes of its JSON, nesting depth): the listener refuses to send more, the port to read more.
 * The same bound as the client's (`kernel/answer-limits.ts`): every result the executor lets
 * through fits, so a withheld answer here means a listener or port configured below it.
 */
export const EXECUTION_ANSWER_LIMITS = Object.freeze({ maxBytes: MAX_ANSWER_BYTES, maxDepth: 64 });

/**
 * The relayed form of `POST /v1/execute` (docs/deployment.md "The relay between the Gate and the
 * Execution Layer"). A request whose body carries `relay: {progress, ask}` (booleans) is answered
 * `200` with `content-type: application/x-ndjson`: one JSON object a line, first
 * `{"event":"call","call":ID}`, then `{"event":"notice","notice":N}` for each notice the
 * executor's guard relayed and `{"event":"ask","ask":ID,"method":M,"params":P}` for each request
 * to the caller's client, and last the execution answer itself, the same object as the plain
 * answer, then the end of the stream. The Gate answers an ask with `POST /v1/execute/answer`
 * (`{call, ask, result}` or `{call, ask, error}`) and cancels with `POST /v1/execute/cancel`
 * (`{call}`); the EL's ids are 128 random bits. A request without `relay` is answered as before.
 */
export const RELAY_CONTENT_TYPE = 'application/x-ndjson';

/** Bytes a relayed answer may carry beyond its last line: its event lines (notices, requests). */
export const RELAY_EVENT_BYTES = 1024 * 1024;

/** A listening Execution Layer endpoint. */
export interface ExecutionServer {
  readonly server: Server;
  readonly url: string;
  /** With TLS: re-reads the certificate, key, CA and revocations without closing (see `MtlsServer.reload`). */
  reload(): Promise<void>;
  /** With TLS: refusals so far by reason; without, undefined. */
  refusals(): Readonly<Record<RefusalReason, number>> | undefined;
  close(): Promise<void>;
}

/** Mutual TLS of the listener. */
export interface ExecutionTls {
  readonly files: TlsFiles;
  /** Told of every refused peer (the composition records it, rate-limited). */
  readonly onRefused?: (r: Refusal) => void;
  /** Clock (ms) of validity and CRL checks. */
  readonly now?: () => number;
}

/** Options of {@link createExecutionServer}. */
export interface ExecutionServerOptions {
  readonly host: string;
  readonly port: number;
  /**
   * Where an exception caught at this listener's edge is recorded (a `denial` entry with the
   * request id the call named, FC-INV-5), with the executor's identity as its actor.
   */
  readonly ledger?: Pick<ExecutionLedger, 'append'>;
  readonly audience?: string;
  /** Deadline (ms) of that record; default 2000. */
  readonly ledgerMs?: number;
  /** Serve HTTPS with mutual TLS to the `gate` role only. */
  readonly tls?: ExecutionTls;
  /** Largest answer (bytes) sent; default `EXECUTION_ANSWER_LIMITS.maxBytes`. Must match the Gate's port. */
  readonly maxAnswerBytes?: number;
}

/** An execution request as the Execution Layer reads it from the wire: untrusted, checked by the executor. */
export function executionInputOf(o: JsonObject): ExecutionInput {
  return {
    envelope: o['envelope'],
    tool: typeof o['tool'] === 'string' ? o['tool'] : '',
    tenant: typeof o['tenant'] === 'string' ? o['tenant'] : '',
    params: o['params'] ?? null,
    ...(typeof o['trace_id'] === 'string' ? { trace_id: o['trace_id'] } : {}),
    ...(typeof o['request_id'] === 'string' ? { request_id: o['request_id'] } : {}),
  };
}

/**
 * Starts `POST /v1/execute` on `host:port` over `executor`. Every failure answers a deny; an
 * exception caught at the edge is also recorded in `options.ledger` (best effort).
 */
export async function createExecutionServer(
  executor: Executor,
  options: ExecutionServerOptions,
): Promise<ExecutionServer> {
  /** The relayed calls running: their cancellation and their requests waiting for an answer. */
  const running = new Map<string, RunningCall>();
  const handler = (req: IncomingMessage, res: ServerResponse, gate: boolean): void => {
    // Until a relayed answer starts streaming, the plain answer; after, its last line.
    let finish: (status: number, body: JsonValue) => void;
    const send = (status: number, body: JsonValue): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    finish = send;
    // What the call named, for the record of an exception caught at the edge.
    let named: JsonObject = {};
    const handle = async (): Promise<void> => {
      const route = req.url === '/v1/execute' ? 'execute' : gate ? GATE_ROUTES.get(req.url ?? '') : undefined;
      if (req.method !== 'POST' || route === undefined) {
        req.resume();
        return send(404, { error: 'not_found' });
      }
      const body = await readCapped(req, MAX_BODY);
      if (body === null)
        return send(413, { outcome: 'deny', code: 'ERR_REQUEST_TOO_LARGE', reason: 'too large' });
      let v: JsonValue;
      try {
        v = parseJson(body, { maxBytes: MAX_BODY, maxDepth: 32 });
      } catch (err) {
        const code = err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED';
        return send(400, { outcome: 'deny', code, reason: 'malformed JSON' });
      }
      const o = (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}) as JsonObject;
      if (route === 'answer' || route === 'cancel') {
        const taken = route === 'answer' ? answerAsk(running, o) : cancelCall(running, o);
        return taken
          ? send(200, { accepted: true })
          : send(400, {
              outcome: 'deny',
              code: 'ERR_REQUEST_MALFORMED',
              reason: 'no such running call or pending request',
            });
      }
      named = o;
      if (route === 'void') {
        const code = o['code'];
        if (!isDenialCode(code) || typeof o['stage'] !== 'string')
          return send(400, {
            outcome: 'deny',
            code: 'ERR_REQUEST_MALFORMED',
            reason: 'void needs code and stage',
          });
        const r = await executor.void({ ...executionInputOf(o), code, stage: o['stage'].slice(0, 64) });
        return send(r.outcome === 'deny' ? statusOf(r.code) : 200, { ...r });
      }
      const wanted = o['relay'];
      if (wanted !== undefined && !(gate && isRelayAsked(wanted)))
        return send(400, {
          outcome: 'deny',
          code: 'ERR_REQUEST_MALFORMED',
          reason: 'relay must be { progress, ask } (booleans), over mutual TLS',
        });
      let relay: CallRelay | undefined;
      let done = (): void => undefined;
      if (wanted !== undefined) {
        const streaming = streamCall(res, running, wanted);
        relay = streaming.relay;
        done = streaming.done;
        finish = streaming.finish;
      }
      // The caller gone before its answer (the Gate's deadline cancels its request): the call is
      // not started, or is ended (Executor.execute's `signal`).
      const gone = new AbortController();
      if (res.destroyed || req.socket.destroyed) gone.abort();
      res.once('close', () => {
        if (!res.writableFinished) gone.abort();
      });
      let r: Awaited<ReturnType<Executor['execute']>>;
      try {
        r = await executor.execute(executionInputOf(o), undefined, relay, gone.signal);
      } finally {
        // The call has ended (its receipt written): nothing more is relayed or awaited.
        done();
      }
      if (r.outcome === 'deny')
        return finish(statusOf(r.code), { outcome: 'deny', code: r.code, reason: r.reason });
      const executed = { outcome: 'executed', result: r.result, receipt: { ...r.receipt } };
      if (!withinAnswerLimits(executed, options.maxAnswerBytes ?? EXECUTION_ANSWER_LIMITS.maxBytes)) {
        // The tool ran (its receipt is written); the Gate could not take the result, so it is withheld.
        await recordDenial(options, o, {
          code: 'ERR_TOOL_OUTPUT_LIMIT',
          reason: 'the result exceeds what an answer to the Gate may carry; the tool ran',
        });
        return finish(statusOf('ERR_TOOL_OUTPUT_LIMIT'), {
          outcome: 'deny',
          code: 'ERR_TOOL_OUTPUT_LIMIT',
          reason: 'the result exceeds what an answer to the Gate may carry',
        });
      }
      return finish(200, executed);
    };
    handle().catch(async () => {
      // Recorded first (bounded), then answered: the deny stands either way.
      await recordDenial(options, named, {
        code: 'ERR_INTERNAL',
        reason: 'the execution listener failed unexpectedly',
      });
      try {
        // A relayed answer already streaming ends with the deny as its last line.
        if (!res.headersSent || finish !== send)
          finish(500, { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'internal failure' });
      } catch {
        res.destroy();
      }
    });
  };
  if (options.tls !== undefined) return listenMtls(handler, options, options.tls);
  const server = createServer((req, res) => handler(req, res, false));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://${options.host}:${port}`,
    reload: () => Promise.resolve(),
    refusals: () => undefined,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The listener over mutual TLS: only peers holding a `gate` certificate reach `handler`. */
async function listenMtls(
  handler: (req: IncomingMessage, res: ServerResponse, gate: boolean) => void,
  options: ExecutionServerOptions,
  tls: ExecutionTls,
): Promise<ExecutionServer> {
  const m: MtlsServer = await createMtlsServer((req, res) => handler(req, res, true), {
    files: tls.files,
    allow: ['gate'],
    host: options.host,
    port: options.port,
    ...(tls.now === undefined ? {} : { now: tls.now }),
    ...(tls.onRefused === undefined ? {} : { onRefused: tls.onRefused }),
  });
  return {
    server: m.server,
    url: m.url,
    reload: () => m.reload(),
    refusals: () => m.refusals(),
    close: () => m.close(),
  };
}

/** The routes only the Gate reaches (over mutual TLS). */
const GATE_ROUTES: ReadonlyMap<string, 'void' | 'answer' | 'cancel'> = new Map([
  ['/v1/void', 'void'],
  ['/v1/execute/answer', 'answer'],
  ['/v1/execute/cancel', 'cancel'],
] as const);

/** A relayed call running: how to cancel it, and its requests waiting for the caller's answer. */
interface RunningCall {
  readonly cancel: () => void;
  readonly pending: Map<string, { resolve(v: unknown): void; reject(e: Error): void }>;
}

/** An id the Execution Layer chooses: 128 random bits, base64url. */
const freshId = (): string => randomBytes(16).toString('base64url');

const ID_RE = /^[A-Za-z0-9_-]{22}$/;

function isRelayAsked(v: JsonValue): v is { readonly progress: boolean; readonly ask: boolean } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as JsonObject;
  return Object.keys(o).length === 2 && typeof o['progress'] === 'boolean' && typeof o['ask'] === 'boolean';
}

/**
 * Starts the relayed answer of a call: its first line names the call; the relay handed to the
 * executor writes each guarded notice and each request to the caller's client as a line. The
 * call is cancelled when the Gate asks (`POST /v1/execute/cancel`) or goes away (the connection
 * closes before the last line). `done()` ends it: its requests still waiting are refused, and
 * nothing more is written but the last line, `finish`.
 */
function streamCall(
  res: ServerResponse,
  running: Map<string, RunningCall>,
  wanted: { readonly progress: boolean; readonly ask: boolean },
): {
  readonly relay: CallRelay;
  readonly done: () => void;
  readonly finish: (status: number, body: JsonValue) => void;
} {
  const call = freshId();
  const cancelled = new AbortController();
  const pending: RunningCall['pending'] = new Map();
  let open = true;
  running.set(call, { cancel: () => cancelled.abort(), pending });
  res.writeHead(200, { 'content-type': `${RELAY_CONTENT_TYPE}; charset=utf-8`, 'cache-control': 'no-store' });
  /**
   * Writes one event; false when it was not written: the stream has ended, or the line is one the
   * Gate would refuse (its nesting is checked as the Gate parses it: a notice nested near the limit
   * plus its event wrapper would otherwise cut the whole call there). Not written is not relayed.
   */
  const line = (v: JsonValue): boolean => {
    if (!open || res.destroyed) return false;
    const text = JSON.stringify(v);
    try {
      parseJson(Buffer.from(text, 'utf8'), {
        maxBytes: EXECUTION_ANSWER_LIMITS.maxBytes,
        maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth,
      });
    } catch {
      return false;
    }
    res.write(`${text}\n`);
    return true;
  };
  // The Gate gone before the last line: the call is cancelled as if it had asked.
  res.once('close', () => {
    if (!res.writableFinished) cancelled.abort();
  });
  line({ event: 'call', call });
  const ask: CallRelay['ask'] = (a, signal) =>
    new Promise<unknown>((resolve, reject) => {
      if (!open || signal.aborted) return reject(new Error('the call has ended'));
      const id = freshId();
      pending.set(id, { resolve, reject });
      signal.addEventListener(
        'abort',
        () => {
          if (pending.delete(id)) reject(new Error('the call has ended'));
        },
        { once: true },
      );
      if (!line({ event: 'ask', ask: id, method: a.method, params: a.params })) {
        pending.delete(id);
        reject(new AskNotSent('the request could not be sent to the Gate'));
      }
    });
  const relay: CallRelay = {
    progress: wanted.progress,
    cancelled: cancelled.signal,
    notify: (notice) => line({ event: 'notice', notice: notice as unknown as JsonValue }),
    ...(wanted.ask ? { ask } : {}),
  };
  return {
    relay,
    done: () => {
      open = false;
      running.delete(call);
      for (const p of pending.values()) p.reject(new Error('the call has ended'));
      pending.clear();
    },
    finish: (_status, body) => {
      open = false;
      if (!res.destroyed && !res.writableEnded) res.end(`${JSON.stringify(body)}\n`);
    },
  };
}

/** The `error` of an answer whose request the Gate could not send on to the client. */
export const NOT_SENT = 'not sent';

/** `POST /v1/execute/answer`: hands the answer to the call's own pending request; false when there is none. */
function answerAsk(running: ReadonlyMap<string, RunningCall>, o: JsonObject): boolean {
  const call = o['call'];
  const ask = o['ask'];
  if (typeof call !== 'string' || typeof ask !== 'string' || !ID_RE.test(call) || !ID_RE.test(ask))
    return false;
  const hasResult = 'result' in o;
  const error = o['error'];
  if (hasResult === (error !== undefined) || (error !== undefined && typeof error !== 'string')) return false;
  const pending = running.get(call)?.pending;
  const waiting = pending?.get(ask);
  if (pending === undefined || waiting === undefined) return false;
  pending.delete(ask);
  if (hasResult) waiting.resolve(o['result']);
  // The Gate could not send it on (the client's capabilities, no stream): never relayed.
  else if (error === NOT_SENT) waiting.reject(new AskNotSent('the request never reached the client'));
  else waiting.reject(new Error('the client answered an error'));
  return true;
}

/** `POST /v1/execute/cancel`: cancels a running relayed call; false when there is none. */
function cancelCall(running: ReadonlyMap<string, RunningCall>, o: JsonObject): boolean {
  const call = o['call'];
  const found = typeof call === 'string' && Object.keys(o).length === 1 ? running.get(call) : undefined;
  if (found === undefined) return false;
  found.cancel();
  return true;
}

const namedString = (o: JsonObject, key: string): string => {
  const v = o[key];
  return typeof v === 'string' ? v.slice(0, 256) : '';
};

/** True when `answer` is within what the Gate's remote port parses (the same strict parser). */
function withinAnswerLimits(answer: JsonValue, maxBytes: number): boolean {
  try {
    parseJson(Buffer.from(JSON.stringify(answer)), { maxBytes, maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth });
    return true;
  } catch {
    return false;
  }
}

/**
 * The `denial` record of a failure at the listener's edge (an exception caught, a result too
 * large to answer), carrying the ids the call named (as the executor records its own denials).
 * Best effort; never throws.
 */
async function recordDenial(
  options: ExecutionServerOptions,
  o: JsonObject,
  what: { readonly code: DenialCode; readonly reason: string },
): Promise<void> {
  const ledger = options.ledger;
  if (ledger === undefined) return;
  try {
    await withDeadline(
      () =>
        ledger.append({
          type: 'denial',
          trace_id: namedString(o, 'trace_id'),
          request_id: namedString(o, 'request_id'),
          tenant: namedString(o, 'tenant'),
          actor: { id: options.audience ?? 'execution', role: 'executor' },
          payload: {
            code: what.code,
            stage: 'execution',
            reason: what.reason,
            tool: namedString(o, 'tool'),
          },
        }),
      options.ledgerMs ?? 2000,
    );
  } catch {
    // Best effort: the deny has been answered whatever happens here.
  }
}
