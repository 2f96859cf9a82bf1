/**
 * The MCP Streamable HTTP endpoint on the Gate's listener (docs/mcp.md): an OAuth 2.1 resource
 * server (MCP authorization; RFC 9728 metadata, RFC 6750 challenges) in front of the official
 * SDK's per-request handler, which speaks 2026-07-28 and, statelessly, the 2025 revisions.
 * Checks, in order, before any MCP message is looked at: Host and Origin against the allowlist
 * (DNS-rebinding protection, 403), the bearer token (401 with `WWW-Authenticate`), the method
 * (POST only, 405), the media type (415), the body size (413), strict JSON (-32700) and a single
 * JSON-RPC message (batches and anything else: -32600). Every refusal is a deny with a code;
 * unauthenticated ones are recorded within the Gate's per-second budget (FC-INV-5).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createMcpHandler } from '@modelcontextprotocol/server';
import { deny, parseJson, sha256Hex, statusOf } from '../../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import type { Gate } from '../gate.js';
import { MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH } from '../request.js';
import type { McpAuthenticator } from './auth.js';
import type { Principal } from '../principal.js';
import { createPrincipalServer, ownerOf } from './tools.js';
import type { ClientAnswers } from './tools.js';
import { createInputRounds } from './rounds.js';

/** Where the RFC 9728 protected-resource metadata is served (also with the resource path appended). */
export const PROTECTED_RESOURCE_PATH = '/.well-known/oauth-protected-resource';

/** The resolved settings of the endpoint (docs/mcp.md "Configuration"). */
export interface McpEndpointSettings {
  /** The resource identifier (RFC 8707): the required token audience; its path is the endpoint path. */
  readonly resource: string;
  /** Accepted `Host` header values (`host[:port]`, compared case-insensitively). */
  readonly allowedHosts: readonly string[];
  /** Accepted `Origin` header values; a request without `Origin` (not a browser) passes. */
  readonly allowedOrigins: readonly string[];
  /** Authorization servers announced in the metadata (the configured OAuth issuer, if any). */
  readonly authorizationServers: readonly string[];
  /**
   * How long an escalated `tools/call` with a `progressToken` may wait for its approval (ms),
   * sending progress meanwhile; 0 (absent): answer pending at once. docs/mcp.md "Approvals".
   */
  readonly approvalWaitMs?: number;
}

/** The MCP routes of the Gate's listener. */
export interface McpEndpoint {
  /** True for the endpoint path and the metadata paths. */
  matches(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

/** The metadata URL of `resource` (RFC 9728 §3.1: the well-known path inserted before its path). */
export function resourceMetadataUrl(resource: string): string {
  const u = new URL(resource);
  const suffix = u.pathname === '/' ? '' : u.pathname;
  return new URL(`${PROTECTED_RESOURCE_PATH}${suffix}`, u.origin).toString();
}

type Reply = { status: number; headers?: Record<string, string>; body: JsonValue };

function write(res: ServerResponse, r: Reply, close = false): void {
  if (res.headersSent || res.writableEnded) return;
  const text = JSON.stringify(r.body);
  res.writeHead(r.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...r.headers,
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

function rpcError(status: number, code: number, message: string, data: string): Reply {
  return { status, body: { jsonrpc: '2.0', id: null, error: { code, message, data: { code: data } } } };
}

/** The `prompts/*`, `resources/*` and `completion/*` methods governed (entries.ts); the rest of those families is not offered. */
const GOVERNED_ENTRY_METHODS = new Set([
  'completion/complete',
  'prompts/list',
  'prompts/get',
  'resources/list',
  'resources/templates/list',
  'resources/read',
]);

/**
 * MCP methods no policy governs (docs/mcp.md "Not there yet"): resource subscriptions. Refused
 * before the SDK sees them, with a denial code and a record, not left to the SDK's unrecorded
 * -32601.
 */
function notOffered(method: string): boolean {
  if (GOVERNED_ENTRY_METHODS.has(method)) return false;
  return method.startsWith('resources/') || method.startsWith('prompts/') || method.startsWith('completion/');
}

/** Reads at most `limit` bytes; undefined when the body is larger (reading stops). */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > limit) return resolve(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

/**
 * A JSON-RPC response of the gateway's own id form (the client answering a request the gateway
 * relayed to it): `id` a string, exactly one of an object `result` and an `error` with a numeric
 * code and a string message, and nothing else.
 */
function isClientAnswer(m: JsonObject): m is JsonObject & { id: string } {
  if (m['jsonrpc'] !== '2.0' || 'method' in m || typeof m['id'] !== 'string') return false;
  const keys = Object.keys(m);
  if (keys.length !== 3) return false;
  const { result, error } = m;
  if (result !== undefined) return typeof result === 'object' && result !== null && !Array.isArray(result);
  return (
    typeof error === 'object' &&
    error !== null &&
    !Array.isArray(error) &&
    typeof (error as JsonObject)['code'] === 'number' &&
    typeof (error as JsonObject)['message'] === 'string'
  );
}

function single(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? (h.length === 1 ? h[0] : '') : h;
}

/**
 * Creates the endpoint for `gate`. `refuse` records an unauthenticated refusal (the Gate's
 * bounded `gateway.failed` record); `authenticate` checks the bearer token.
 */
export function createMcpEndpoint(
  gate: Gate,
  settings: McpEndpointSettings,
  authenticate: McpAuthenticator,
  refuse: (d: Deny, requestSha256: string) => Promise<void>,
): McpEndpoint {
  const path = new URL(settings.resource).pathname;
  const metadataPaths = new Set([
    PROTECTED_RESOURCE_PATH,
    new URL(resourceMetadataUrl(settings.resource)).pathname,
  ]);
  const hosts = new Set(settings.allowedHosts.map((h) => h.toLowerCase()));
  const origins = new Set(settings.allowedOrigins.map((o) => o.toLowerCase()));
  const metadataUrl = resourceMetadataUrl(settings.resource);
  const metadata: JsonValue = {
    resource: settings.resource,
    authorization_servers: [...settings.authorizationServers],
    bearer_methods_supported: ['header'],
    resource_name: 'failclosed',
  };
  let refusals = 0;
  /**
   * The `tools/call` exchanges under way, by principal and JSON-RPC id: a 2025-revision client
   * cancels one by posting `notifications/cancelled` in a request of its own (stateless, so to
   * another server instance). Only the same principal's cancellation reaches them, and only when
   * it names exactly one exchange (ids are chosen per connection; an ambiguous one stops nothing).
   */
  const underWay = new Map<string, Set<AbortController>>();
  const exchangeKey = (principal: { tenant: string; identity: string }, id: unknown): string =>
    JSON.stringify([principal.tenant, principal.identity, id]);
  /**
   * The requests relayed to clients that wait for their answers (docs/mcp.md "Sampling and
   * elicitation"), by the gateway's id: an answer is a POST of its own, taken only from the
   * principal the request was sent to. Each entry ends with its call (the waiting side aborts).
   */
  const awaiting = new Map<string, { owner: string; take: (m: JsonObject) => void }>();
  /** The 2026-07-28 calls held between their `input_required` rounds (rounds.ts). */
  const rounds = createInputRounds();
  const answers: ClientAnswers = {
    expect: (principal, id, signal) =>
      new Promise<JsonObject>((resolve, reject) => {
        if (signal.aborted) return reject(new Error('the call has ended'));
        const onAbort = (): void => {
          awaiting.delete(id);
          reject(new Error('the call has ended'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        awaiting.set(id, {
          owner: ownerOf(principal),
          take: (m) => {
            signal.removeEventListener('abort', onAbort);
            awaiting.delete(id);
            resolve(m);
          },
        });
      }),
  };

  const denyUnauthenticated = async (d: Deny): Promise<Reply> => {
    refusals += 1;
    await refuse(d, sha256Hex(`mcp-unauthenticated:${refusals}:${d.code}`)).catch(() => undefined);
    const error = d.code === 'ERR_TOKEN_INVALID' ? ', error="invalid_token"' : '';
    const status = statusOf(d.code);
    return {
      status,
      // RFC 6750 §3 / RFC 9728 §5.1: the challenge names where the metadata is.
      ...(status === 401
        ? { headers: { 'www-authenticate': `Bearer resource_metadata="${metadataUrl}"${error}` } }
        : {}),
      body: { outcome: 'deny', code: d.code, reason: d.reason },
    };
  };

  /**
   * Records a refusal at the listener (a request that never became a call) through the Gate's
   * bounded `gateway.failed` record, then answers it: hash of what was received, or of a tag.
   */
  const refused = async (
    res: ServerResponse,
    reply: Reply,
    tag: string,
    bytes?: Uint8Array,
    close?: boolean,
  ) => {
    // The denial code: at the top of a plain answer, in `error.data` of a JSON-RPC one.
    const body = reply.body as { code?: unknown; error?: { data?: { code?: unknown } } } | null;
    const found = body?.code ?? body?.error?.data?.code;
    const code = typeof found === 'string' ? found : 'ERR_REQUEST_MALFORMED';
    refusals += 1;
    await refuse(
      deny(code as Deny['code'], tag),
      bytes === undefined ? sha256Hex(`mcp-refused:${refusals}:${tag}`) : sha256Hex(bytes),
    ).catch(() => undefined);
    write(res, reply, close);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const authenticated = await authenticate(single(req.headers.authorization));
    if ('outcome' in authenticated) {
      req.resume();
      return write(res, await denyUnauthenticated(authenticated));
    }
    if (req.method !== 'POST') {
      req.resume();
      // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
      return refused(
        res,
        {
          ...rpcError(405, -32000, 'Method not allowed', 'ERR_REQUEST_MALFORMED'),
          headers: { allow: 'POST' },
        },
        'method not allowed',
      );
    }
    const type = (single(req.headers['content-type']) ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      req.resume();
      return refused(
        res,
        rpcError(415, -32000, 'Content-Type must be application/json', 'ERR_REQUEST_MALFORMED'),
        'content type not accepted',
      );
    }
    const bytes = await readLimited(req, MAX_REQUEST_BYTES);
    if (bytes === undefined)
      return refused(
        res,
        rpcError(413, -32600, 'Request too large', 'ERR_REQUEST_TOO_LARGE'),
        'too large',
        undefined,
        true,
      );
    // A token bound to one message (`body_sha256`) serves that message only. Behind a keyless
    // Gate (`credential`) the message goes on with such a token, for the Control Plane to read
    // the call from again.
    if (authenticated.body_sha256 !== undefined && sha256Hex(bytes) !== authenticated.body_sha256)
      return write(
        res,
        await denyUnauthenticated(deny('ERR_TOKEN_INVALID', 'the token was signed for another message')),
      );
    const principal: Principal =
      authenticated.credential === undefined || authenticated.body_sha256 === undefined
        ? authenticated
        : Object.freeze({ ...authenticated, message: Buffer.from(bytes).toString('base64') });
    let value: JsonValue;
    try {
      // Untrusted bytes: strict JSON (no duplicate keys, bounded depth) before the SDK sees them.
      value = parseJson(bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: MAX_REQUEST_DEPTH });
    } catch {
      return refused(
        res,
        rpcError(400, -32700, 'Parse error', 'ERR_REQUEST_MALFORMED'),
        'parse error',
        bytes,
      );
    }
    if (Array.isArray(value))
      return refused(
        res,
        rpcError(400, -32600, 'Batches are not accepted', 'ERR_REQUEST_MALFORMED'),
        'batch',
        bytes,
      );
    const message = typeof value === 'object' && value !== null ? (value as JsonObject) : undefined;
    if (message !== undefined && isClientAnswer(message)) {
      const waiting = awaiting.get(message.id);
      // Only the principal the request was sent to answers it; anything else is refused as one
      // more malformed message (whether such a request exists is not told).
      if (waiting === undefined || waiting.owner !== ownerOf(principal))
        return refused(
          res,
          rpcError(400, -32600, 'Invalid Request', 'ERR_REQUEST_MALFORMED'),
          'an answer to no request of this client',
          bytes,
        );
      waiting.take(message);
      res.writeHead(202, { 'cache-control': 'no-store', 'content-length': 0 });
      res.end();
      return;
    }
    if (message?.['jsonrpc'] !== '2.0' || typeof message['method'] !== 'string')
      return refused(
        res,
        rpcError(400, -32600, 'Invalid Request', 'ERR_REQUEST_MALFORMED'),
        'invalid request',
        bytes,
      );

    if (notOffered(message['method'])) {
      const id = message['id'];
      const reply = rpcError(200, -32601, 'Method not found', 'ERR_MCP_NOT_OFFERED');
      // The error answers the request under its own id (a JSON-RPC error, not an HTTP one).
      const body = {
        ...(reply.body as JsonObject),
        id: typeof id === 'string' || typeof id === 'number' ? id : null,
      };
      return refused(res, { ...reply, body }, `${message['method']} not offered`, bytes);
    }

    if (message['method'] === 'notifications/cancelled') {
      const params = message['params'];
      const requestId =
        typeof params === 'object' && params !== null && !Array.isArray(params)
          ? (params as JsonObject)['requestId']
          : undefined;
      const found = underWay.get(exchangeKey(principal, requestId));
      if (found?.size === 1) for (const c of found) c.abort();
    }

    // Closing the exchange's stream is the cancellation signal of 2026-07-28 (and what a client
    // that went away does): the SDK then aborts the handler's signal, which stops a call waiting
    // for its approvals before it runs (docs/mcp.md "Approvals") and ends one that runs in an
    // in-process Execution Layer (`ERR_CALL_CANCELLED`, docs/mcp.md "While a call runs").
    const exchange = new AbortController();
    const onClose = (): void => {
      if (!res.writableEnded) exchange.abort();
    };
    res.once('close', onClose);
    const key =
      message['method'] === 'tools/call' && message['id'] !== undefined
        ? exchangeKey(principal, message['id'])
        : undefined;
    if (key !== undefined) {
      const set = underWay.get(key) ?? new Set<AbortController>();
      set.add(exchange);
      underWay.set(key, set);
    }
    const traceparent = single(req.headers.traceparent);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      // The bearer token stops here: the SDK and everything behind it never see it.
      if (k === 'authorization' || v === undefined) continue;
      headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const request = new Request(new URL(path, settings.resource), {
      method: 'POST',
      headers,
      body: bytes,
      signal: exchange.signal,
    });
    const handler = createMcpHandler(
      () =>
        createPrincipalServer(gate, principal, {
          approvalWaitMs: settings.approvalWaitMs ?? 0,
          answers,
          rounds,
          ...(traceparent === undefined ? {} : { traceparent }),
        }),
      {
        responseMode: 'auto',
        keepAliveMs: 0,
        maxRequestBodySize: MAX_REQUEST_BYTES,
      },
    );
    try {
      const answer = await handler.fetch(request, { parsedBody: value });
      const outHeaders: Record<string, string> = {};
      answer.headers.forEach((v, k) => {
        if (k !== 'content-length' && k !== 'transfer-encoding') outHeaders[k] = v;
      });
      if (
        (answer.headers.get('content-type') ?? '').startsWith('text/event-stream') &&
        answer.body !== null
      ) {
        // A call that waits for its approval streams its progress, then its result, as they come.
        res.writeHead(answer.status, {
          ...outHeaders,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        });
        for await (const chunk of answer.body) {
          // A client that went away gets nothing more. Its exchange was aborted (onClose): a call
          // waiting for approval stops, a running one is cancelled (docs/mcp.md "While a call runs");
          // one past that point goes on to its outcome.
          if (res.destroyed) continue;
          res.write(chunk);
        }
        if (!res.destroyed) res.end();
        return;
      }
      const out = Buffer.from(await answer.arrayBuffer());
      if (!res.headersSent)
        res.writeHead(answer.status, {
          ...outHeaders,
          'content-length': out.length,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        });
      res.end(out);
    } finally {
      res.off('close', onClose);
      if (key !== undefined) {
        const set = underWay.get(key);
        set?.delete(exchange);
        if (set?.size === 0) underWay.delete(key);
      }
      await handler.close();
    }
  };

  return Object.freeze({
    matches: (p: string) => p === path || metadataPaths.has(p),
    async handle(req: IncomingMessage, res: ServerResponse, p: string) {
      const host = single(req.headers.host)?.toLowerCase();
      const origin = single(req.headers.origin);
      if (
        host === undefined ||
        !hosts.has(host) ||
        (origin !== undefined && !origins.has(origin.toLowerCase()))
      ) {
        req.resume();
        return refused(
          res,
          {
            status: 403,
            body: { outcome: 'deny', code: 'ERR_ORIGIN_FORBIDDEN', reason: 'Host or Origin not allowed' },
          },
          'Host or Origin not allowed',
        );
      }
      if (p !== path) {
        req.resume();
        if (req.method !== 'GET')
          return write(res, {
            status: 405,
            headers: { allow: 'GET' },
            body: { error: 'method_not_allowed' },
          });
        return write(res, { status: 200, body: metadata });
      }
      return serve(req, res);
    },
  });
}
