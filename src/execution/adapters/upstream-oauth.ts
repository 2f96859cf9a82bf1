/**
 * OAuth 2.1 client credentials to an upstream (RFC 6749 §4.4, RFC 8707 resource indicators): a
 * bundle spec may declare `oauth: { token_url, client_id, client_secret_ref, scope?, audience?,
 * resource?, ca? }`; before it reaches the upstream, the Execution Layer obtains an access token
 * for it from the token endpoint (the client authenticated with HTTP Basic, RFC 6749 §2.3.1;
 * `resource` = the upstream url unless the spec names another) and sends it as the upstream's
 * bearer. The agent's own token never reaches an upstream (docs/mcp.md).
 *
 * The token endpoint is an egress destination like the upstream: on the envelope's allowlist,
 * a public address (a literal loopback one only when the embedding admits it), `https` (plain
 * `http` only to such a loopback address), its certificate verified against Node's trusted roots
 * or `oauth.ca` before the client secret is written; no redirect is followed. Anything but a 200
 * JSON answer with a bearer `access_token` is `ERR_UPSTREAM_TOKEN` and nothing is sent upstream.
 *
 * Tokens are cached per Execution Layer process ({@link createUpstreamTokenCache}), keyed by the
 * spec's OAuth declaration and the digest of the client secret, until shortly before `expires_in`
 * runs out (not at all without it), or until the upstream answers 401; the cache also tells the redactor every token it handed out,
 * so an upstream that echoes its bearer does not hand it to the agent. (OE-INV-009/010/011)
 */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { canonicalize, deny, FailclosedError } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import type { SecretResolver } from '../secrets.js';
import { SECRET_NAME } from '../secrets.js';
import { isLoopbackAddress, isNonPublicAddress, resolveDestination } from '../sandbox/egress.js';
import { checkDestination, parseHttpUrlTemplate } from './http.js';
import type { HttpUrlTemplate } from './http.js';
import type { ExecutionConstraints } from './types.js';
import { connectVerifiedTls, parseCaPem } from './upstream-tls.js';

/** Largest token endpoint answer read. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/** A token is renewed this long before it expires (or at half its life when that is shorter). */
export const TOKEN_RENEW_MARGIN_MS = 30_000;
/** Tokens the cache remembers for the redactor after they left the cache. */
const REMEMBERED_TOKENS = 256;

/** The `oauth` member of an upstream spec. */
export interface UpstreamOAuthSpec {
  readonly token_url: string;
  readonly client_id: string;
  readonly client_secret_ref: string;
  readonly scope?: string;
  /** Sent as `audience` (identity providers that name the API that way). */
  readonly audience?: string;
  /** RFC 8707 `resource`; default the upstream url. */
  readonly resource?: string;
  /** PEM CA the token endpoint's certificate must chain to; default Node's trusted roots. */
  readonly ca?: string;
}

const OAUTH_KEYS = new Set([
  'token_url',
  'client_id',
  'client_secret_ref',
  'scope',
  'audience',
  'resource',
  'ca',
]);
const PRINTABLE = /^[\x20-\x7e]{1,1024}$/;

/** The `oauth` member of a spec: absent → null; malformed → undefined. */
export function parseUpstreamOAuth(raw: unknown): UpstreamOAuthSpec | null | undefined {
  if (raw === undefined) return null;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const r = raw as Record<string, unknown>;
  if (!Object.keys(r).every((k) => OAUTH_KEYS.has(k))) return undefined;
  const url = parseHttpUrlTemplate(r['token_url']);
  if (url === undefined || /[{}]/.test(url.rest)) return undefined;
  if (typeof r['client_id'] !== 'string' || !PRINTABLE.test(r['client_id'])) return undefined;
  if (typeof r['client_secret_ref'] !== 'string' || !SECRET_NAME.test(r['client_secret_ref']))
    return undefined;
  for (const k of ['scope', 'audience', 'resource'])
    if (r[k] !== undefined && (typeof r[k] !== 'string' || !PRINTABLE.test(r[k]))) return undefined;
  if (r['ca'] !== undefined && parseCaPem(r['ca']) === undefined) return undefined;
  return Object.freeze({ ...(r as unknown as UpstreamOAuthSpec) });
}

/** A process's cache of upstream access tokens. */
export interface UpstreamTokenCache {
  /** The cached token for `key`, when it is not within its renewal margin. */
  get(key: string): string | undefined;
  /** Caches `token` for `key` until `expiresInSec` less the margin (not at all without it). */
  put(key: string, token: string, expiresInSec: number | undefined): void;
  /**
   * The token request for `key` already in flight, or `start()` as that request: calls that miss
   * the cache together share one request to the token endpoint.
   */
  join(key: string, start: () => Promise<string | Deny>): Promise<string | Deny>;
  /** Forgets `token` (an upstream refused it): the next call asks the token endpoint again. */
  drop(token: string): void;
  /** Every token handed out lately, for the redactor (OE-INV-010). */
  knownValues(): readonly string[];
}

/** Creates an {@link UpstreamTokenCache}; `now` in ms (default `Date.now`). */
export function createUpstreamTokenCache(now: () => number = Date.now): UpstreamTokenCache {
  const cached = new Map<string, { token: string; renewAt: number }>();
  const inFlight = new Map<string, Promise<string | Deny>>();
  const remembered: string[] = [];
  return {
    join(key, start) {
      const running = inFlight.get(key);
      if (running !== undefined) return running;
      const started = start()
        .catch(() => deny('ERR_UPSTREAM_TOKEN', 'the token request failed'))
        .finally(() => inFlight.delete(key));
      inFlight.set(key, started);
      return started;
    },
    get(key) {
      const hit = cached.get(key);
      if (hit === undefined) return undefined;
      if (now() >= hit.renewAt) {
        cached.delete(key);
        return undefined;
      }
      return hit.token;
    },
    put(key, token, expiresInSec) {
      if (!remembered.includes(token)) {
        remembered.push(token);
        if (remembered.length > REMEMBERED_TOKENS) remembered.shift();
      }
      if (expiresInSec === undefined) return;
      const lifeMs = expiresInSec * 1000;
      const renewAt = now() + lifeMs - Math.min(TOKEN_RENEW_MARGIN_MS, lifeMs / 2);
      cached.set(key, { token, renewAt });
    },
    drop(token) {
      for (const [key, hit] of cached) if (hit.token === token) cached.delete(key);
    },
    knownValues: () => [...remembered],
  };
}

/** What {@link obtainUpstreamToken} needs besides the spec. */
export interface TokenRequestContext {
  /** The upstream's url: the default RFC 8707 `resource`. */
  readonly upstreamUrl: string;
  readonly constraints: ExecutionConstraints;
  readonly secrets: SecretResolver | undefined;
  readonly cache: UpstreamTokenCache;
  readonly allowLoopback: boolean;
  readonly signal: AbortSignal;
}

/**
 * The bearer for the upstream: from the cache, or from the token endpoint. Denies with
 * `ERR_ADAPTER_UNAVAILABLE` (the client secret reference), `ERR_EGRESS_DENIED` (the endpoint not
 * allowlisted, not public, plain http to a non-loopback address, a redirect), `ERR_UPSTREAM_TLS`
 * (its certificate) and `ERR_UPSTREAM_TOKEN` (unreachable, refusing, garbage).
 */
export async function obtainUpstreamToken(
  spec: UpstreamOAuthSpec,
  ctx: TokenRequestContext,
): Promise<string | Deny> {
  const url = parseHttpUrlTemplate(spec.token_url);
  if (url === undefined) return deny('ERR_ADAPTER_UNAVAILABLE', 'oauth.token_url is malformed');
  let secret: string;
  try {
    if (ctx.secrets === undefined)
      return deny('ERR_ADAPTER_UNAVAILABLE', 'secret reference cannot be resolved');
    secret = ctx.secrets.resolve(spec.client_secret_ref);
  } catch (err) {
    if (err instanceof FailclosedError) return deny(err.code, err.message);
    return deny('ERR_ADAPTER_UNAVAILABLE', 'the client secret cannot be resolved');
  }
  const resource = spec.resource ?? ctx.upstreamUrl;
  const key = createHash('sha256')
    .update(
      canonicalize({
        token_url: spec.token_url,
        client_id: spec.client_id,
        scope: spec.scope ?? null,
        audience: spec.audience ?? null,
        resource,
        ca: spec.ca ?? null,
        secret: createHash('sha256').update(secret).digest('hex'),
      }),
    )
    .digest('hex');
  const hit = ctx.cache.get(key);
  if (hit !== undefined) return hit;
  const refused = checkDestination(ctx.constraints, url.destination);
  if (refused !== undefined) return refused;
  const resolved = await resolveDestination(url.destination);
  if ('outcome' in resolved) return resolved;
  const address = resolved.address;
  const loopback = ctx.allowLoopback && isLoopbackAddress(address);
  if (isNonPublicAddress(address) && !loopback)
    return deny(
      'ERR_EGRESS_DENIED',
      `egress to ${url.destination.key}: a token endpoint must have a public address`,
    );
  // The client secret crosses the network only inside verified TLS (or to this host itself).
  if (url.scheme === 'http' && !loopback)
    return deny(
      'ERR_EGRESS_DENIED',
      `egress to ${url.destination.key}: a token endpoint is reached over https only`,
    );
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (spec.scope !== undefined) form.set('scope', spec.scope);
  if (spec.audience !== undefined) form.set('audience', spec.audience);
  form.set('resource', resource);
  const shared = ctx.cache.join(key, async () => {
    const answer = await post(url, address, spec, secret, form.toString(), ctx.constraints.timeout_ms);
    if ('outcome' in answer) return answer;
    const parsed = parseTokenAnswer(answer.status, answer.body, url);
    if ('outcome' in parsed) return parsed;
    ctx.cache.put(key, parsed.token, parsed.expiresIn);
    return parsed.token;
  });
  return untilAborted(shared, ctx.signal);
}

/** `p`, unless `signal` aborts first (the shared request goes on for the other callers). */
function untilAborted(p: Promise<string | Deny>, signal: AbortSignal): Promise<string | Deny> {
  if (signal.aborted) return Promise.resolve(deny('ERR_TOOL_TIMEOUT', 'aborted before the token arrived'));
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(deny('ERR_TOOL_TIMEOUT', 'aborted before the token arrived'));
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then((r) => {
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    });
  });
}

/** RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic. */
function basic(id: string, secret: string): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

function post(
  url: HttpUrlTemplate,
  address: string,
  spec: UpstreamOAuthSpec,
  secret: string,
  body: string,
  timeoutMs: number,
): Promise<{ readonly status: number; readonly body: Buffer } | Deny> {
  const to = url.destination;
  // Bounded by time only: the request may be shared by several calls (UpstreamTokenCache.join).
  const signal = AbortSignal.timeout(timeoutMs);
  const options: RequestOptions = {
    host: to.host,
    port: to.port,
    method: 'POST',
    path: url.rest,
    headers: {
      host: url.authority,
      authorization: basic(spec.client_id, secret),
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
      accept: 'application/json',
    },
    signal,
  };
  const unreachable = deny('ERR_UPSTREAM_TOKEN', `the token endpoint ${to.key} could not be reached`);
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: { readonly status: number; readonly body: Buffer } | Deny): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    // The time limit ends the exchange wherever it is (connecting, waiting, reading).
    const onAbort = (): void => finish(deny('ERR_TOOL_TIMEOUT', 'the token request timed out'));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const send = (o: RequestOptions): void => {
      const req = httpRequest(o, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status <= 399) {
          res.destroy();
          finish(
            deny('ERR_EGRESS_DENIED', `the token endpoint ${to.key} answered a redirect, never followed`),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let used = 0;
        res.on('data', (chunk: Buffer) => {
          used += chunk.length;
          if (used > MAX_TOKEN_RESPONSE_BYTES) {
            res.destroy();
            finish(deny('ERR_UPSTREAM_TOKEN', `the token endpoint ${to.key} answered too much`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish({ status, body: Buffer.concat(chunks) }));
        res.on('error', () => finish(unreachable));
      });
      req.on('error', () => finish(unreachable));
      req.end(body);
    };
    if (url.scheme === 'http') {
      const family = isIP(address) === 6 ? 6 : 4;
      const lookup = ((_h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
        if (opts?.all === true) cb(null, [{ address, family }]);
        else cb(null, address, family);
      }) as unknown as LookupFunction;
      send({ ...options, lookup, agent: false });
      return;
    }
    const ca = spec.ca === undefined ? undefined : parseCaPem(spec.ca);
    void connectVerifiedTls({ to, address, material: ca === undefined ? {} : { ca }, signal }).then(
      (socket) => {
        if ('outcome' in socket) {
          finish(socket.code === 'ERR_TOOL_FAILED' ? unreachable : socket);
          return;
        }
        send({ ...options, createConnection: () => socket });
      },
    );
  });
}

/** RFC 6749 §5.1: a 200 JSON object with a bearer `access_token` (untrusted input, parsed here). */
function parseTokenAnswer(
  status: number,
  body: Buffer,
  url: HttpUrlTemplate,
): { readonly token: string; readonly expiresIn: number | undefined } | Deny {
  const bad = (why: string): Deny =>
    deny('ERR_UPSTREAM_TOKEN', `the token endpoint ${url.destination.key} ${why}`);
  if (status !== 200) return bad(`answered HTTP ${status}`);
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return bad('answered something other than JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('answered no token object');
  const o = v as Record<string, unknown>;
  const token = o['access_token'];
  // A header value: visible ASCII only, bounded (RFC 6750 §2.1 b64token and then some).
  if (typeof token !== 'string' || !/^[\x21-\x7e]{1,8192}$/.test(token))
    return bad('answered no usable access_token');
  if (typeof o['token_type'] !== 'string' || o['token_type'].toLowerCase() !== 'bearer')
    return bad('answered a token that is not a bearer token');
  const exp = o['expires_in'];
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isSafeInteger(exp) || exp <= 0))
    return bad('answered a malformed expires_in');
  return { token, expiresIn: exp };
}
