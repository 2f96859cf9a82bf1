/**
 * The Gate's HTTP listener on bare `node:http` (SPEC §8 HTTP: keep hops few). Limits apply before
 * anything is parsed: header size, body size, time. Errors never carry stacks or causes
 * (STYLE.md, hono's default handler).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FailclosedError, parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import type { Gate } from './gate.js';
import { MAX_REQUEST_BYTES } from './request.js';
import { isApprovalPath } from './approval-routes.js';
import type { McpEndpoint } from './mcp/endpoint.js';

/** `Prefer: wait=N` (RFC 7240): seconds an escalated call may wait for its approvals. */
function preferWaitMs(header: string | string[] | undefined): number {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const m = /(?:^|[,;\s])wait=(\d{1,4})(?:$|[,;\s])/.exec(text);
  return m?.[1] === undefined ? 0 : Number(m[1]) * 1000;
}

/** RFC 7240 `Prefer: respond-async`: the client asks for a background call (docs/jobs.md). */
function preferAsync(header: string | string[] | undefined): boolean {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return /(?:^|[,;\s])respond-async(?:$|[,;\s])/i.test(text);
}

async function readJsonBody(
  req: IncomingMessage,
): Promise<{ value: JsonValue } | { status: number; body: JsonValue; close?: boolean }> {
  const body = await readBody(req, MAX_REQUEST_BYTES);
  if (body.overflow)
    return {
      status: 413,
      body: { outcome: 'deny', code: 'ERR_REQUEST_TOO_LARGE', reason: 'too large' },
      close: true,
    };
  try {
    return {
      value:
        body.bytes.length === 0 ? {} : parseJson(body.bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: 32 }),
    };
  } catch (err) {
    const code = err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED';
    return { status: 400, body: { outcome: 'deny', code, reason: 'malformed JSON' } };
  }
}

/** Where {@link createGateServer} listens. Port 0 picks a free port. */
export interface GateServerOptions {
  readonly host: string;
  readonly port: number;
  /** The MCP endpoint (docs/mcp.md), built once the listener's URL is known; absent: not served. */
  readonly mcp?: (url: string) => McpEndpoint;
  /** The browser console under `/console/` (docs/console.md), built once the URL is known; absent: not served. */
  readonly console?: (url: string) => PathEndpoint;
  /**
   * Whether `POST /v1/calls` is served (default true). False on the Control Plane process's
   * client listener (`serve control-plane`): a call there is 404, never run or recorded.
   */
  readonly calls?: boolean;
}

/** An endpoint that answers the paths it matches on its own (the console). */
export interface PathEndpoint {
  matches(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

/** A listening Gate. */
export interface GateServer {
  readonly server: Server;
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  /**
   * Graceful stop, step 1: closes the listener (new connections are refused) and answers any
   * request still arriving on an open keep-alive connection `503 ERR_SHUTTING_DOWN` with
   * `connection: close`, before reading it. Requests already in flight continue.
   */
  stopAccepting(): void;
  /** Step 2: resolves true once no request is in flight, false when `graceMs` passed first. */
  drain(graceMs: number): Promise<boolean>;
  /** Closes every connection; a request still unanswered gets `503 ERR_SHUTTING_DOWN` first. */
  close(): Promise<void>;
}

/** Largest accepted header block (bytes). */
export const MAX_HEADER_BYTES = 16 * 1024;

type Body = { readonly bytes: Buffer; readonly overflow: boolean };

/** Reads at most `limit + 1` bytes; stops reading once over the limit. */
function readBody(req: IncomingMessage, limit: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ bytes: Buffer.alloc(0), overflow: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        resolve({ bytes: Buffer.alloc(0), overflow: true });
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve({ bytes: Buffer.concat(chunks, size), overflow: false }));
    req.once('error', reject);
  });
}

/**
 * Streams lines (an audit-bundle export) with backpressure. A failure mid-stream destroys the
 * response: the receiver sees a cut body, never a well-formed end.
 */
/** Resolves when `res` can take more, or is closed (a receiver that went away must not hold the export). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

async function sendStream(res: ServerResponse, lines: AsyncIterable<string>): Promise<void> {
  res.writeHead(200, {
    'content-type': 'application/x-ndjson; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  try {
    for await (const l of lines) {
      if (res.destroyed) return;
      if (!res.write(l)) await drained(res);
    }
    res.end();
  } catch {
    res.destroy();
  }
}

function send(res: ServerResponse, status: number, body: JsonValue, close = false): void {
  // A call answered at the end of a stop's grace period may still finish later: say nothing twice.
  if (res.headersSent || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

const SHUTTING_DOWN: JsonValue = {
  outcome: 'deny',
  code: 'ERR_SHUTTING_DOWN',
  reason: 'the Gate is stopping and accepts no new calls',
};
const ABANDONED_ANSWER: JsonValue = {
  outcome: 'deny',
  code: 'ERR_SHUTTING_DOWN',
  reason:
    'the Gate stopped before the call finished; its outcome is recorded as request.abandoned (the evidence view says whether the tool may have run)',
};

const REQUEST_PATH = /^\/v1\/requests\/([A-Za-z0-9._:-]{1,128})$/;
const JOB_PATH = /^\/v1\/jobs\/([A-Za-z0-9._:-]{1,128})$/;
const ADMIN_PATH = /^\/v1\/admin\/([a-z][a-z0-9-]{0,63})$/;

/**
 * An abort signal for `res`'s connection closing before its answer was written (a client that
 * cancelled or went away); `release` stops listening once the answer is out.
 */
export function abortOnClose(res: ServerResponse): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onClose = (): void => {
    if (!res.writableEnded) controller.abort();
  };
  res.once('close', onClose);
  return { signal: controller.signal, release: () => res.off('close', onClose) };
}

async function route(
  gate: Gate,
  req: IncomingMessage,
  res: ServerResponse,
  mcp: McpEndpoint | undefined,
  consoleEndpoint: PathEndpoint | undefined,
  calls: boolean,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method ?? 'GET';
  if (mcp?.matches(path) === true) return mcp.handle(req, res, path);
  if (consoleEndpoint?.matches(path) === true) return consoleEndpoint.handle(req, res, path);
  if (calls && method === 'POST' && path === '/v1/calls') {
    const body = await readBody(req, MAX_REQUEST_BYTES);
    const waitMs = preferWaitMs(req.headers.prefer);
    // A client that goes away while its call waits for approvals stops the wait: the call does
    // not run unseen (docs/approvals.md "Retries and waiting"). Only a call that may wait listens.
    const gone = waitMs > 0 ? abortOnClose(res) : undefined;
    try {
      // An oversized body reaches the Gate as null, so it is denied and recorded there.
      const traceparent = req.headers.traceparent;
      const a = await gate.call(body.overflow ? null : body.bytes, {
        waitMs,
        ...(gone === undefined ? {} : { signal: gone.signal }),
        ...(preferAsync(req.headers.prefer) ? { background: true } : {}),
        // W3C Trace Context: one header; several, or none, leave the call unlinked.
        ...(typeof traceparent === 'string' ? { traceparent } : {}),
      });
      send(res, a.status, a.body as unknown as JsonValue, body.overflow);
    } finally {
      gone?.release();
    }
    return;
  }
  if (method === 'GET' && path === '/healthz') return send(res, 200, { ok: true });
  if (method === 'GET' && path === '/readyz') {
    const a = await gate.ready();
    return send(res, a.status, a.body);
  }
  if (method === 'GET' && path === '/v1/jwks') {
    const a = await gate.jwks();
    return send(res, a.status, a.body);
  }
  // Public keys only: no token, like the JWKS (SPEC §5 "Trust roots out of band").
  if (method === 'GET' && path === '/v1/trust-roots') {
    const a = await gate.trustRoots();
    return send(res, a.status, a.body);
  }
  if (isApprovalPath(path) && (method === 'GET' || method === 'POST')) {
    let value: JsonValue = {};
    if (method === 'POST') {
      const read = await readJsonBody(req);
      if (!('value' in read)) return send(res, read.status, read.body, read.close === true);
      value = read.value;
    } else req.resume();
    const a = await gate.approvalRoute(method, path, value, req.headers.authorization);
    return send(res, a?.status ?? 404, a?.body ?? { error: 'not_found' });
  }
  const requestMatch = method === 'GET' ? REQUEST_PATH.exec(path) : null;
  if (requestMatch?.[1] !== undefined) {
    const a = await gate.evidence(requestMatch[1], req.headers.authorization);
    return send(res, a.status, a.body);
  }
  const jobMatch = method === 'GET' ? JOB_PATH.exec(path) : null;
  if (jobMatch?.[1] !== undefined) {
    const a = await gate.job(jobMatch[1], req.headers.authorization);
    return send(res, a.status, a.body);
  }
  const adminMatch = method === 'POST' ? ADMIN_PATH.exec(path) : null;
  if (adminMatch?.[1] !== undefined) {
    if ((await gate.operatorOf(req.headers.authorization)) === undefined) {
      req.resume();
      return send(res, 401, {
        outcome: 'deny',
        code: 'ERR_UNAUTHENTICATED',
        reason: 'operator token required',
      });
    }
    const body = await readBody(req, MAX_REQUEST_BYTES);
    if (body.overflow)
      return send(res, 413, { outcome: 'deny', code: 'ERR_REQUEST_TOO_LARGE', reason: 'too large' }, true);
    let value: JsonValue;
    try {
      value =
        body.bytes.length === 0 ? {} : parseJson(body.bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: 32 });
    } catch (err) {
      const code = err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED';
      return send(res, 400, { outcome: 'deny', code, reason: 'malformed JSON' });
    }
    const a = await gate.admin(adminMatch[1], value, req.headers.authorization);
    if (a.stream !== undefined && a.status === 200) return sendStream(res, a.stream);
    return send(res, a.status, a.body);
  }
  req.resume();
  send(res, 404, { error: 'not_found' });
}

/**
 * Starts the Gate's HTTP listener: `POST /v1/calls`, `GET /v1/requests/{id}`, `GET /v1/jwks`,
 * `GET /v1/trust-roots`, `GET /v1/jobs/{id}`,
 * `GET /healthz`, `GET /readyz`, `POST /v1/admin/{action}`, the console under `/console/`, and the approval API
 * (`/v1/approvals`, `/v1/break-glass`, `/v1/reviews`, docs/approvals.md). `POST /v1/calls` honours
 * `Prefer: wait=N` (long-poll for approvals) and `Prefer: respond-async` (a background call). Any unexpected failure answers 500
 * `ERR_INTERNAL` without details (FC-INV-4).
 */
export async function createGateServer(gate: Gate, options: GateServerOptions): Promise<GateServer> {
  const inflight = new Set<ServerResponse>();
  let stopping = false;
  // Set once listening: requests cannot arrive before.
  const mcp: { endpoint?: McpEndpoint; console?: PathEndpoint } = {};
  let onIdle: (() => void) | undefined;
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      requestTimeout: 120_000,
      headersTimeout: 10_000,
      keepAliveTimeout: 5_000,
    },
    (req, res) => {
      if (stopping) {
        req.resume();
        return send(res, 503, SHUTTING_DOWN, true);
      }
      // In flight until its handler settles (not the socket's 'close': a client may half-close early).
      inflight.add(res);
      route(gate, req, res, mcp.endpoint, mcp.console, options.calls !== false)
        .catch(() => {
          if (!res.headersSent)
            send(res, 500, { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'internal failure' }, true);
          else res.destroy();
        })
        .finally(() => {
          inflight.delete(res);
          if (inflight.size === 0) onIdle?.();
          // A body left unread after an early answer must not hold the socket open.
          if (!req.complete && res.getHeader('connection') === 'close')
            res.once('finish', () => req.destroy());
        });
    },
  );
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  try {
    if (options.mcp !== undefined) mcp.endpoint = options.mcp(`http://${host}:${port}`);
    if (options.console !== undefined) mcp.console = options.console(`http://${host}:${port}`);
  } catch (err) {
    // An endpoint that cannot be built (a setting that does not fit this listener): no listener left.
    server.close();
    throw err;
  }
  return Object.freeze({
    server,
    url: `http://${host}:${port}`,
    port,
    stopAccepting() {
      stopping = true;
      server.close();
      server.closeIdleConnections();
      // Answers still to come close their connection.
      for (const res of inflight) res.shouldKeepAlive = false;
    },
    drain: (graceMs: number) =>
      new Promise<boolean>((resolve) => {
        if (inflight.size === 0) return resolve(true);
        const timer = setTimeout(() => resolve(false), Math.max(0, graceMs));
        onIdle = () => {
          clearTimeout(timer);
          resolve(true);
        };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        for (const res of inflight) send(res, 503, ABANDONED_ANSWER, true);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}
