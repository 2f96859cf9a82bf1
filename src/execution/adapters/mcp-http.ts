/**
 * MCP tool adapter for **Streamable HTTP** upstream servers (`type: 'mcp'` with `url` instead of
 * `command`; docs/adapters.md "MCP tools", docs/mcp.md "Upstream servers"). The Execution Layer
 * itself is the MCP client: per call, only after the executor verified the envelope and consumed
 * its nonce, it connects to the server with the official SDK client's
 * `StreamableHTTPClientTransport`, compares the listed definition with the pinned SHA-256 before
 * anything is called, calls the tool with the envelope's exact parameters and ends the session
 * (`callPinnedTool`, shared with the stdio adapter: the same pin check, the same result checks).
 *
 * Destination rules, each a deny before or instead of a connection (OE-INV-011):
 * - the url's `host:port` must be on the envelope's egress allowlist with network granted
 *   (`checkDestination`, the HTTP tool's own check) → `ERR_EGRESS_DENIED`;
 * - a name is resolved once and the connection goes to that address (`resolveDestination`); the
 *   address must be public: loopback, private, link-local, shared, multicast and reserved
 *   addresses are refused (`ERR_EGRESS_DENIED`), listed as literals or not. Only a literal
 *   loopback address is admitted, and only when the embedding sets `allowLoopback` (tests and
 *   development; off by default);
 * - every request goes to the url's origin, none follows a redirect (a 3xx answer ends the call,
 *   `ERR_EGRESS_DENIED`), and a call makes at most {@link MAX_UPSTREAM_REQUESTS} HTTP requests
 *   (`ERR_EGRESS_LIMIT`).
 *
 * The upstream is untrusted (OE-INV-013): the bodies of all its answers together are capped at
 * `max_output_bytes` plus {@link PROTOCOL_BUDGET_BYTES} (`ERR_TOOL_OUTPUT_LIMIT`), the whole
 * exchange at `timeout_ms` and the executor's abort (`ERR_TOOL_TIMEOUT`); a server that cannot be
 * reached or answers outside MCP is `ERR_TOOL_FAILED`. Its output is redacted by the executor and
 * taints the session like any upstream's (the bundle check requires `untrusted_output: true`).
 *
 * Headers: the bundle's `headers` only, each a literal or a `{ secret, prefix? }` reference
 * resolved by the Execution Layer's `SecretResolver` at the call (OE-INV-009), and with `oauth`
 * the access token the Execution Layer obtained by client credentials (upstream-oauth.ts).
 * Nothing of the agent's request reaches the upstream: not its bearer token, not its headers.
 *
 * An `https` url is reached with its certificate verified (Node's trusted roots, or only the
 * bundle's `tls.ca`; a client certificate by secret reference for mutual TLS; upstream-tls.ts)
 * before any request is written: `ERR_UPSTREAM_TLS` otherwise.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { deny, FailclosedError, isDeny } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import type { SecretResolver } from '../secrets.js';
import { isLoopbackAddress, isNonPublicAddress, resolveDestination } from '../sandbox/egress.js';
import { FORBIDDEN_HEADERS, HEADER_NAME, checkDestination, parseHttpUrlTemplate } from './http.js';
import type { HttpUrlTemplate } from './http.js';
import { createUpstreamFetch } from './mcp-http-fetch.js';
import { createUpstreamTokenCache, obtainUpstreamToken, parseUpstreamOAuth } from './upstream-oauth.js';
import type { UpstreamOAuthSpec, UpstreamTokenCache } from './upstream-oauth.js';
import { parseUpstreamTls, resolveTlsMaterial } from './upstream-tls.js';
import type { UpstreamTlsSpec } from './upstream-tls.js';
import { listCatalog, parsePinnedEntry, runPinnedEntry } from './mcp-entries.js';
import type { McpListing, PinnedMcpEntry } from './mcp-entries.js';
import { PROTOCOL_BUDGET_BYTES, isObject, listTools, parseClientRequests } from './mcp-session.js';
import type { Upstream } from './mcp-session.js';
import type { ExecutionConstraints, ToolAdapter } from './types.js';
import type { ClientRequestKind } from '../relay.js';

/** HTTP requests one call may make to its upstream (handshake, listing, call, stream, end). */
export const MAX_UPSTREAM_REQUESTS = 32;

/** Headers the MCP transport manages itself: a bundle may not set them. */
const TRANSPORT_HEADERS = new Set([
  'accept',
  'content-type',
  'last-event-id',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
]);

/** Options for {@link createMcpHttpAdapter}. */
export interface McpHttpAdapterOptions {
  /**
   * Admit a literal loopback address (`127.0.0.0/8`, `[::1]`) as upstream: for tests and
   * development only. Default false: every non-public address is refused.
   */
  readonly allowLoopback?: boolean;
  /** HTTP requests per call. Default {@link MAX_UPSTREAM_REQUESTS}. */
  readonly maxRequests?: number;
  /** Bytes of upstream answers allowed besides `max_output_bytes`. Default {@link PROTOCOL_BUDGET_BYTES}. */
  readonly protocolBudgetBytes?: number;
  /**
   * The process's cache of OAuth access tokens (its values also go to the redactor). Default: a
   * cache of this adapter's own.
   */
  readonly tokens?: UpstreamTokenCache;
}

/** A header value in a bundle: a literal, or a secret reference with an optional literal prefix. */
export type McpHeaderValue = string | { readonly secret: string; readonly prefix?: string };

/** Where an HTTP upstream is and what is sent to it besides MCP. */
export interface McpHttpUpstreamSpec {
  readonly url: string;
  readonly headers?: Readonly<Record<string, McpHeaderValue>>;
  /** Trust for an `https` url: a pinned CA, a client certificate (upstream-tls.ts). */
  readonly tls?: UpstreamTlsSpec;
  /** OAuth client credentials for the upstream's bearer (upstream-oauth.ts). */
  readonly oauth?: UpstreamOAuthSpec;
}

/** An upstream's parsed location and credentials. */
interface McpHttpTarget {
  readonly url: HttpUrlTemplate;
  /** The url as written (the default OAuth `resource`). */
  readonly href: string;
  readonly headers: Readonly<Record<string, McpHeaderValue>>;
  readonly tls: UpstreamTlsSpec;
  readonly oauth: UpstreamOAuthSpec | null;
}

interface McpHttpSpec {
  readonly entry: PinnedMcpEntry;
  readonly target: McpHttpTarget;
  readonly asks: readonly ClientRequestKind[];
}

/** The url of an HTTP upstream: `http(s)://HOST[:PORT]/path`, literal (no placeholders). */
function parseUpstreamUrl(url: unknown): HttpUrlTemplate | undefined {
  const parsed = parseHttpUrlTemplate(url);
  if (parsed === undefined || /[{}]/.test(parsed.rest)) return undefined;
  return parsed;
}

function parseHeaders(raw: unknown): Readonly<Record<string, McpHeaderValue>> | undefined {
  if (raw === undefined) return {};
  if (!isObject(raw)) return undefined;
  const out: Record<string, McpHeaderValue> = {};
  for (const [name, value] of Object.entries(raw)) {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name) || FORBIDDEN_HEADERS.has(lower) || TRANSPORT_HEADERS.has(lower))
      return undefined;
    if (typeof value === 'string') out[name] = value;
    else if (
      isObject(value) &&
      typeof value['secret'] === 'string' &&
      (value['prefix'] === undefined || typeof value['prefix'] === 'string') &&
      Object.keys(value).every((k) => k === 'secret' || k === 'prefix')
    )
      out[name] =
        value['prefix'] === undefined
          ? { secret: value['secret'] }
          : { secret: value['secret'], prefix: value['prefix'] };
    else return undefined;
  }
  return out;
}

/** The url, headers, tls and oauth of an upstream spec, or undefined when any is malformed. */
function parseTarget(spec: Readonly<Record<string, unknown>>): McpHttpTarget | undefined {
  const url = parseUpstreamUrl(spec['url']);
  const headers = parseHeaders(spec['headers']);
  const tls = parseUpstreamTls(spec['tls']);
  const oauth = parseUpstreamOAuth(spec['oauth']);
  if (url === undefined || headers === undefined || tls === undefined || oauth === undefined)
    return undefined;
  // TLS trust only for an https url; the OAuth bearer is the only Authorization header.
  if (url.scheme !== 'https' && spec['tls'] !== undefined) return undefined;
  if (oauth !== null && Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
    return undefined;
  return { url, href: spec['url'] as string, headers, tls, oauth };
}

function parseSpec(spec: Readonly<Record<string, unknown>>): McpHttpSpec | undefined {
  if (spec['command'] !== undefined) return undefined;
  const target = parseTarget(spec);
  const entry = parsePinnedEntry(spec);
  const asks = parseClientRequests(spec);
  if (target === undefined || entry === undefined || asks === undefined) return undefined;
  return { entry, target, asks };
}

/** The header values to send, secrets resolved; a deny names the reference, never a value. */
function resolveHeaders(
  headers: Readonly<Record<string, McpHeaderValue>>,
  secrets: SecretResolver | undefined,
): Record<string, string> | Deny {
  const out: Record<string, string> = {};
  try {
    for (const [name, value] of Object.entries(headers)) {
      let text: string;
      if (typeof value === 'string') text = value;
      else {
        if (secrets === undefined)
          return deny('ERR_ADAPTER_UNAVAILABLE', 'secret reference cannot be resolved');
        text = `${value.prefix ?? ''}${secrets.resolve(value.secret)}`;
      }
      if (/[\r\n\0]/.test(text)) return deny('ERR_ADAPTER_UNAVAILABLE', `header ${name} holds a line break`);
      out[name] = text;
    }
  } catch (err) {
    if (err instanceof FailclosedError) return deny(err.code, err.message);
    return deny('ERR_ADAPTER_UNAVAILABLE', 'a header cannot be resolved');
  }
  return out;
}

/**
 * Checks the destination, then opens the SDK's Streamable HTTP transport over a fetch that
 * connects only to the resolved address, counts requests and answer bytes, refuses redirects,
 * and ends everything at the first fault or the call's time limit.
 */
async function connectUpstream(
  target: McpHttpTarget,
  c: ExecutionConstraints,
  signal: AbortSignal,
  secrets: SecretResolver | undefined,
  options: McpHttpAdapterOptions & { readonly tokens: UpstreamTokenCache },
): Promise<Upstream | Deny> {
  const { url } = target;
  const refused = checkDestination(c, url.destination);
  if (refused !== undefined) return refused;
  const sent = resolveHeaders(target.headers, secrets);
  if (isDeny(sent)) return sent;
  const tls = resolveTlsMaterial(target.tls, secrets);
  if (isDeny(tls)) return tls;
  if (signal.aborted) return deny('ERR_TOOL_TIMEOUT', 'aborted before start');
  const resolved = await resolveDestination(url.destination);
  if ('outcome' in resolved) return resolved;
  const address = resolved.address;
  if (isNonPublicAddress(address) && !(options.allowLoopback === true && isLoopbackAddress(address)))
    return deny(
      'ERR_EGRESS_DENIED',
      `egress to ${url.destination.key}: an MCP upstream must have a public address`,
    );
  // The bearer first: a token endpoint that fails ends the call before the upstream is reached.
  let bearer: string | undefined;
  if (target.oauth !== null) {
    const token = await obtainUpstreamToken(target.oauth, {
      upstreamUrl: target.href,
      constraints: c,
      secrets,
      cache: options.tokens,
      allowLoopback: options.allowLoopback === true,
      signal,
    });
    if (typeof token !== 'string') return token;
    bearer = token;
    sent['authorization'] = `Bearer ${token}`;
  }
  const cap = c.max_output_bytes + (options.protocolBudgetBytes ?? PROTOCOL_BUDGET_BYTES);
  const maxRequests = options.maxRequests ?? MAX_UPSTREAM_REQUESTS;
  const ended = new AbortController();
  let first: Deny | undefined;
  let resolveFault: (d: Deny) => void = () => undefined;
  const faulted = new Promise<Deny>((r) => (resolveFault = r));

  const fetchPinned = createUpstreamFetch({
    url,
    address,
    cap,
    maxRequests,
    tls,
    // A refused token is not used again: the next call asks the token endpoint.
    ...(bearer === undefined ? {} : { onUnauthorized: () => options.tokens.drop(bearer) }),
    ended: ended.signal,
    fault: () => first,
    fail: (d) => fail(d),
  });

  const transport = new StreamableHTTPClientTransport(
    new URL(`${url.scheme}://${url.authority}${url.rest}`),
    {
      fetch: fetchPinned,
      requestInit: { headers: sent },
      // A lost stream is not reopened: a call is one short session.
      reconnectionOptions: {
        maxRetries: 0,
        initialReconnectionDelay: 1000,
        maxReconnectionDelay: 1000,
        reconnectionDelayGrowFactor: 1,
      },
    },
  );
  const fail = (d: Deny): void => {
    if (first !== undefined) return;
    first = d;
    resolveFault(d);
    ended.abort();
    void transport.close().catch(() => undefined);
  };
  const timer = setTimeout(
    () => fail(deny('ERR_TOOL_TIMEOUT', 'the upstream exceeded the time limit')),
    c.timeout_ms,
  );
  const onAbort = (): void => fail(deny('ERR_TOOL_TIMEOUT', 'aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  let killed: Promise<void> | undefined;
  return {
    transport,
    fault: () => first,
    faulted,
    fail,
    kill() {
      killed ??= (async () => {
        // A healthy session is ended as MCP asks (DELETE), still bounded by the call's time limit.
        if (first === undefined && transport.sessionId !== undefined)
          await transport.terminateSession().catch(() => undefined);
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        ended.abort();
        await transport.close().catch(() => undefined);
      })();
      return killed;
    },
  };
}

/**
 * The tools an HTTP upstream lists, each as listed (for `failclosed policy pin-mcp --url`),
 * under the same destination rules as a call. Denies as the adapter does.
 */
export async function listMcpHttpTools(
  upstream: McpHttpUpstreamSpec,
  constraints: ExecutionConstraints,
  secrets?: SecretResolver,
  options: McpHttpAdapterOptions = {},
): Promise<readonly Readonly<Record<string, unknown>>[] | Deny> {
  const connected = await connectSpec(upstream, constraints, secrets, options);
  if ('outcome' in connected) return connected;
  return listTools(connected, constraints.timeout_ms);
}

/** Connects to `upstream` as declared (for listing), under the same destination rules as a call. */
async function connectSpec(
  upstream: McpHttpUpstreamSpec,
  constraints: ExecutionConstraints,
  secrets: SecretResolver | undefined,
  options: McpHttpAdapterOptions,
): ReturnType<typeof connectUpstream> {
  const target = parseTarget(upstream as unknown as Readonly<Record<string, unknown>>);
  if (target === undefined)
    return deny('ERR_ADAPTER_UNAVAILABLE', 'the upstream url, headers, tls or oauth are malformed');
  return connectUpstream(target, constraints, new AbortController().signal, secrets, {
    ...options,
    tokens: options.tokens ?? createUpstreamTokenCache(),
  });
}

/**
 * What an HTTP upstream lists (for `failclosed policy pin-mcp --url --prompt/--resource`): its
 * tools, and its prompts and resources when asked, under the same destination rules as a call.
 */
export async function listMcpHttpCatalog(
  upstream: McpHttpUpstreamSpec,
  constraints: ExecutionConstraints,
  want: { readonly prompts: boolean; readonly resources: boolean },
  secrets?: SecretResolver,
  options: McpHttpAdapterOptions = {},
): Promise<McpListing | Deny> {
  const connected = await connectSpec(upstream, constraints, secrets, options);
  if ('outcome' in connected) return connected;
  return listCatalog(connected, constraints.timeout_ms, want);
}

/**
 * Creates the MCP adapter for Streamable HTTP upstreams (a pinned tool called, prompt got or
 * resource read, mcp-entries.ts). Denies with `ERR_ADAPTER_UNAVAILABLE`
 * (malformed spec or an unresolvable secret reference), `ERR_PARAMS_INVALID`, `ERR_UPSTREAM_TLS`
 * (the certificate did not verify), `ERR_UPSTREAM_TOKEN` (no access token),
 * `ERR_EGRESS_DENIED` (destination not allowlisted, not public, a redirect), `ERR_EGRESS_LIMIT`
 * (too many requests), `ERR_TOOL_DEFINITION_CHANGED` (nothing is called), `ERR_TOOL_TIMEOUT`,
 * `ERR_TOOL_OUTPUT_LIMIT` and `ERR_TOOL_FAILED` (unreachable, not MCP, tool error).
 */
export function createMcpHttpAdapter(options: McpHttpAdapterOptions = {}): ToolAdapter {
  const withTokens = { ...options, tokens: options.tokens ?? createUpstreamTokenCache() };
  return {
    async run(call) {
      const spec = parseSpec(call.spec);
      if (spec === undefined) return deny('ERR_ADAPTER_UNAVAILABLE', 'MCP spec is malformed');
      const params = call.params;
      if (!isObject(params)) return deny('ERR_PARAMS_INVALID', 'MCP tool arguments must be an object');
      const upstream = await connectUpstream(
        spec.target,
        call.constraints,
        call.signal,
        call.secrets,
        withTokens,
      );
      if ('outcome' in upstream) return upstream;
      return runPinnedEntry(upstream, spec.entry, params, call.constraints.timeout_ms, {
        signal: call.signal,
        asks: spec.asks,
        ...(call.notices === undefined ? {} : { notices: call.notices }),
      });
    },
  };
}

/**
 * The `mcp` adapter type over both kinds of upstream: a spec with `url` goes to `http`, one with
 * `command` to `stdio`; one with both or neither is `ERR_ADAPTER_UNAVAILABLE`.
 */
export function routeMcpAdapter(stdio: ToolAdapter, http: ToolAdapter): ToolAdapter {
  return {
    run(call) {
      const hasUrl = call.spec['url'] !== undefined;
      const hasCommand = call.spec['command'] !== undefined;
      if (hasUrl === hasCommand)
        return Promise.resolve(
          deny('ERR_ADAPTER_UNAVAILABLE', 'MCP spec needs exactly one of command and url'),
        );
      return hasUrl ? http.run(call) : stdio.run(call);
    },
  };
}
