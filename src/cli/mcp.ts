/**
 * `failclosed mcp [--client NAME] [--gate URL]`: MCP over stdio for local clients (docs/mcp.md "stdio"). A
 * relay, not a second gate: every JSON-RPC message read from stdin is posted to the Gate's MCP
 * endpoint (the running server, or an instance started for the session) with a fresh token signed
 * by the client's key, and the answer is written back to stdout. The Gate authenticates, lists,
 * decides, ledgers and executes; nothing is decided here.
 */
import type { Readable, Writable } from 'node:stream';
import { format } from 'node:util';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { createParser } from 'eventsource-parser';
import { neverSent, signClientToken } from '../client/index.js';
import { MAX_OUTPUT_BYTES, parseJson } from '../kernel/index.js';
import { importSigningKeyJwk } from '../kernel/signing/index.js';
import { connect, readClientFile } from '../embedded/index.js';

/**
 * Largest answer read from the Gate (bytes): a tool's result (at most `MAX_OUTPUT_BYTES`, 1 MiB,
 * `kernel/answer-limits.ts`) is answered both as JSON text, whose escapes can double it again
 * inside the answer, and as `structuredContent`: at most three times the result, with room for
 * the notices relayed before it.
 */
const MAX_ANSWER_BYTES = 4 * MAX_OUTPUT_BYTES;
/** The 2026-07-28 per-request protocol version (`_meta`), and the 2025 header. */
const PROTOCOL_META = 'io.modelcontextprotocol/protocolVersion';

/** Streams of the relay (the process's stdin and stdout). */
export interface StdioStreams {
  readonly stdin: Readable;
  readonly stdout: Writable;
}

type Raw = Record<string, unknown>;

/**
 * The messages of one answer of the Gate, each handed to `each` as soon as it is complete: a
 * `text/event-stream` answer is read event by event, so what the Gate sends while a call runs
 * (progress, log messages, a request the client must answer before the call can end) reaches the
 * client then, not with the call's answer. The whole answer is bounded by MAX_ANSWER_BYTES, and so
 * is what the parser may hold of one event; anything not strict JSON (or not UTF-8) throws.
 */
async function readAnswer(res: Response, each: (v: Raw) => Promise<void>): Promise<void> {
  const sse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const events: string[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    maxBufferSize: MAX_ANSWER_BYTES,
    onEvent: (e) => {
      // An event without data (a priming event that only carries an id) has no message.
      if (e.data.length > 0) events.push(e.data);
    },
    // Unknown fields and malformed `retry:` lines are ignored, as an EventSource would.
    onError: (e) => {
      if (e.type === 'max-buffer-size-exceeded') failure = new Error('answer event too large');
    },
  });
  const chunks: Uint8Array[] = [];
  let total = 0;
  const feed = async (text: string): Promise<void> => {
    parser.feed(text);
    if (failure !== undefined) throw failure;
    for (const data of events.splice(0)) await each(parseJson(data, { maxBytes: MAX_ANSWER_BYTES }) as Raw);
  };
  const reader = (res.body as ReadableStream<Uint8Array> | null)?.getReader();
  try {
    for (let r = await reader?.read(); r !== undefined && !r.done; r = await reader?.read()) {
      total += r.value.byteLength;
      if (total > MAX_ANSWER_BYTES) throw new Error('answer too large');
      if (sse) await feed(decoder.decode(r.value, { stream: true }));
      else chunks.push(r.value);
    }
  } catch (e) {
    // The rest of an answer given up on is not read: the exchange is closed.
    await reader?.cancel().catch(() => undefined);
    throw e;
  }
  if (sse) {
    // A last event the stream ends without its blank line is still read, as the relay always did.
    await feed(`${decoder.decode()}\n\n`);
    return;
  }
  const bytes = Buffer.concat(chunks);
  if (bytes.byteLength > 0) await each(parseJson(bytes, { maxBytes: MAX_ANSWER_BYTES }) as Raw);
}

/** The denial code of a refusal of the Gate (its own shape, or a JSON-RPC error's), else the HTTP status. */
function refusalCode(v: Raw, status: number): string | number {
  if (typeof v['code'] === 'string') return v['code'];
  const data = (v['error'] as { data?: { code?: unknown } } | undefined)?.data;
  return typeof data?.code === 'string' ? data.code : status;
}

function idOf(m: JSONRPCMessage): string | number | undefined {
  const id = (m as { id?: unknown }).id;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

/**
 * Runs the relay until stdin closes or `signal` aborts. Resolves with the exit code. Never writes
 * anything but MCP messages to stdout; diagnostics go to `err`.
 */
export async function runMcpStdio(
  dir: string,
  clientName: string,
  streams: StdioStreams,
  err: (text: string) => void,
  signal?: AbortSignal,
  /** A Gate of its own (`failclosed serve gate` with `mcp`) instead of `dir`'s: only the client key is `dir`'s. */
  gateUrl?: string,
): Promise<number> {
  const file = readClientFile(dir, clientName);
  const key = importSigningKeyJwk(file.key);
  // stdout is the JSON-RPC channel. When the Gate runs in this process, so does everything it
  // runs (the SDK client that speaks to upstream MCP servers, libraries that log): their console
  // output goes to stderr for the life of the relay, never between two MCP messages.
  const restore = routeConsole((text) => err(text));
  let conn: Awaited<ReturnType<typeof connect>>;
  try {
    conn =
      gateUrl === undefined
        ? await connect(dir)
        : { url: gateUrl, token: '', inProcess: false, close: () => Promise.resolve() };
  } catch (e) {
    restore();
    throw e;
  }
  try {
    // Redirects are not followed, here or below: the signed call goes to the Gate named, or nowhere.
    const meta = await fetch(new URL('/.well-known/oauth-protected-resource', conn.url), {
      redirect: 'manual',
    });
    const body = new Uint8Array(await meta.arrayBuffer());
    const resource =
      meta.status === 200 ? (parseJson(body) as { resource?: unknown } | null)?.resource : undefined;
    if (typeof resource !== 'string') {
      err('the Gate does not serve MCP\n');
      return 1;
    }
    const endpoint = new URL(new URL(resource).pathname, conn.url);
    // The 2025 revisions carry the negotiated version in a header after `initialize`.
    let negotiated: string | undefined;
    const transport = new StdioServerTransport(streams.stdin, streams.stdout);
    // The requests under way, by id: a client's `notifications/cancelled` closes that request's
    // exchange with the Gate (its cancellation signal), and stdin closing closes them all, so a
    // call waiting for its approvals does not run once nobody reads its answer.
    const underWay = new Map<string | number, AbortController>();

    const relay = async (m: JSONRPCMessage): Promise<void> => {
      const method = (m as { method?: unknown }).method;
      // Only a request is answered (and can be cancelled): a notification is not, and neither is a
      // response, the client's answer to a request the Gate sent it (its id is the Gate's).
      const id = typeof method === 'string' ? idOf(m) : undefined;
      const params = (m as { params?: { _meta?: Record<string, unknown>; name?: unknown } }).params;
      const perRequest = params?._meta?.[PROTOCOL_META];
      const version = typeof perRequest === 'string' ? perRequest : negotiated;
      // 2026-07-28 requests name their method (and tool) in headers as well as in the body.
      const routing =
        typeof perRequest === 'string' && typeof method === 'string'
          ? {
              'mcp-method': method,
              ...(method === 'tools/call' && typeof params?.name === 'string'
                ? { 'mcp-name': params.name }
                : {}),
            }
          : {};
      if (method === 'notifications/cancelled') {
        const named = (m as { params?: { requestId?: unknown } }).params?.requestId;
        if (typeof named === 'string' || typeof named === 'number') underWay.get(named)?.abort();
      }
      const exchange = new AbortController();
      if (id !== undefined) underWay.set(id, exchange);
      let answer: JSONRPCMessage | undefined;
      // The token is bound to these exact bytes (`body_sha256`): the call is the client's.
      const body = Buffer.from(JSON.stringify(m), 'utf8');
      try {
        const res = await fetch(endpoint, {
          signal: exchange.signal,
          redirect: 'manual',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${signClientToken(key, file.identity, resource, Date.now(), 60, body)}`,
            ...(version === undefined ? {} : { 'mcp-protocol-version': version }),
            ...routing,
          },
          body,
        });
        // A redirect is no Gate's answer: the call was sent, so it may have run (as the client says).
        if (res.status >= 300 && res.status < 400) {
          await res.body?.cancel().catch(() => undefined);
          throw new Error(`the Gate answered ${res.status} (a redirect, not followed)`);
        }
        await readAnswer(res, async (v) => {
          // A notification or a response is no request: what the Gate answers to one (`202`, or a
          // refusal, the Gate's JSON-RPC error with `id: null` included) answers nothing the client
          // asked, so none of it goes to stdout; a refusal is a diagnostic.
          if (id === undefined) {
            if (res.status >= 300 || v['jsonrpc'] !== '2.0' || 'error' in v)
              err(
                `mcp: the Gate refused a ${method === undefined ? 'response' : 'notification'} (${refusalCode(v, res.status)})\n`,
              );
            return;
          }
          if (v['jsonrpc'] !== '2.0') {
            answer = {
              jsonrpc: '2.0',
              id,
              error: { code: -32001, message: `refused by the Gate (${refusalCode(v, res.status)})` },
            };
            return;
          }
          const msg = v as unknown as JSONRPCMessage;
          // The request's own answer goes last; everything else on its stream (notifications, and
          // requests the Gate sends the client, which may carry the same id) goes out at once.
          if (idOf(msg) === id && !('method' in msg)) answer = msg;
          else if (!exchange.signal.aborted) await transport.send(msg);
        });
      } catch (e) {
        // A cancelled request is not answered (MCP cancellation).
        if (exchange.signal.aborted) return;
        err(`mcp: ${e instanceof Error ? e.message : 'relay failed'}\n`);
        // Never sent: it cannot have run. Sent, and no answer came back whole: it may have run
        // (docs/client.md "Outcomes"). The message says which, since an agent reads it.
        if (id !== undefined)
          answer = {
            jsonrpc: '2.0',
            id,
            error: {
              code: -32603,
              message: neverSent(e)
                ? 'the Gate could not be reached: the call was not sent'
                : 'the answer of the Gate was lost or unreadable: the call may have run',
            },
          };
      } finally {
        if (id !== undefined && underWay.get(id) === exchange) underWay.delete(id);
      }
      if (exchange.signal.aborted) return;
      if (answer === undefined || id === undefined) return;
      const result = (answer as { result?: { protocolVersion?: unknown } }).result;
      if (method === 'initialize' && typeof result?.protocolVersion === 'string')
        negotiated = result.protocolVersion;
      await transport.send(answer);
    };

    return await new Promise<number>((resolve) => {
      const done = (): void => {
        for (const c of underWay.values()) c.abort();
        resolve(0);
      };
      transport.onclose = done;
      transport.onerror = (e) => err(`mcp: ${e.message}\n`);
      transport.onmessage = (m) => {
        relay(m).catch((e: unknown) => err(`mcp: ${e instanceof Error ? e.message : 'relay failed'}\n`));
      };
      signal?.addEventListener('abort', () => void transport.close(), { once: true });
      transport.start().catch(() => resolve(1));
    });
  } finally {
    await conn.close();
    restore();
  }
}

/** Sends console.log/info/debug/warn/trace/dir to `write` until the returned function is called. */
function routeConsole(write: (text: string) => void): () => void {
  const names = ['log', 'info', 'debug', 'warn', 'trace', 'dir'] as const;
  const saved = names.map((n) => [n, Reflect.get(console, n) as unknown] as const);
  for (const n of names) console[n] = (...args: unknown[]) => write(`${format(...args)}\n`);
  return () => {
    for (const [n, fn] of saved) Reflect.set(console, n, fn);
  };
}
