/**
 * Declarative HTTP tool adapter (`type: 'http'`): one HTTP request made by the Execution Layer
 * itself, after envelope verification and nonce consumption like every adapter (SPEC §6,
 * OE-INV-011 egress, OE-INV-009 secrets, OE-INV-010 redaction by the executor).
 *
 * Spec: `{ type: 'http', method, url, headers?, body?, limits }`.
 * - `url`: `http://HOST[:PORT]/path?query` or `https://…`. Scheme, host and port are literal
 *   (fixed by the bundle); `{param}` placeholders may appear only in the path and query, and are
 *   filled with the parameter's value percent-encoded (`encodeURIComponent`): a parameter can
 *   never change the scheme, host, port or add a path segment separator of its own.
 * - `headers`: name → template; a template may hold `{param}` (scalar values, no CR/LF) and
 *   `{secret:NAME}` (resolved by the `SecretResolver`, never in the URL).
 * - `body`: a JSON value; a string leaf that is exactly `{param}` becomes the parameter's value
 *   (any JSON), other strings get `{param}` / `{secret:NAME}` substituted; sent as
 *   `application/json`.
 * - The destination `HOST:PORT` must be on the envelope's `egress` allowlist with `network`
 *   granted; a name is resolved once and refused when it resolves to a non-public address
 *   (`resolveDestination`, the egress proxy's own check) → `ERR_EGRESS_DENIED`.
 * - `tls` (only with `https`): `{ ca?, client_cert_ref?, client_key_ref? }`, the CA (PEM) the
 *   certificate must chain to instead of Node's trusted roots, and a client certificate and key
 *   by secret reference for mutual TLS. The certificate is verified (chain, the url's host, its
 *   validity) before anything is written to the connection → `ERR_UPSTREAM_TLS` (upstream-tls.ts).
 * - No redirects are followed; the response is capped at `max_output_bytes`
 *   (`ERR_TOOL_OUTPUT_LIMIT`), the request at `timeout_ms` and the abort signal
 *   (`ERR_TOOL_TIMEOUT`); a non-2xx status is `ERR_TOOL_FAILED`, output withheld.
 *
 * Result: `{ status, body }`, `body` parsed JSON when the response says `application/json`,
 * else UTF-8 text.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { deny, FailclosedError, parseEgressDestination } from '../../kernel/index.js';
import type { Deny, EgressDestination, JsonValue } from '../../kernel/index.js';
import type { SecretResolver } from '../secrets.js';
import { checkNetworkGrant } from '../sandbox/bwrap.js';
import { parseEgressAllowlist, resolveDestination } from '../sandbox/egress.js';
import type { ExecutionConstraints, ToolAdapter } from './types.js';
import {
  connectVerifiedTls,
  parseUpstreamTls,
  resolveTlsMaterial,
  tlsFailureAfterHandshake,
} from './upstream-tls.js';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
const PLACEHOLDER = /\{(?:secret:([A-Z][A-Z0-9_]{0,63})|([A-Za-z_][A-Za-z0-9_]{0,63}))\}/g;
/** A header name a bundle may set. */
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
/** Headers failclosed sets itself; a bundle may not. */
export const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
]);

/** A parsed URL template: the fixed origin and the templated rest. */
export interface HttpUrlTemplate {
  readonly scheme: 'http' | 'https';
  readonly destination: EgressDestination;
  /** `host[:port]` as written, for the Host header. */
  readonly authority: string;
  /** Path and query template, starting with `/`. */
  readonly rest: string;
}

/** Parses a URL template, or undefined when its origin is not literal and well-formed. */
export function parseHttpUrlTemplate(url: unknown): HttpUrlTemplate | undefined {
  if (typeof url !== 'string' || url.length > 2048) return undefined;
  const m = /^(https?):\/\/([^/?#{}@]+)(\/[^#\s]*)$/.exec(url);
  if (m === null) return undefined;
  const scheme = m[1] as 'http' | 'https';
  const authority = (m[2] ?? '').toLowerCase();
  const rest = m[3] ?? '/';
  const hasPort = /:\d+$/.test(authority) && !authority.endsWith(']');
  const destination = parseEgressDestination(
    hasPort ? authority : `${authority}:${scheme === 'http' ? 80 : 443}`,
  );
  if (destination === undefined) return undefined;
  // Placeholders only in the path and the query; never a `{secret:…}` there.
  for (const p of rest.matchAll(PLACEHOLDER)) if (p[1] !== undefined) return undefined;
  return { scheme, destination, authority, rest };
}

function scalar(params: Readonly<Record<string, JsonValue>>, name: string): string {
  const v = params[name];
  if (typeof v === 'string' && !v.includes('\0')) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  throw new FailclosedError('ERR_PARAMS_INVALID', `parameter ${name} must be a string or an integer`);
}

function render(
  template: string,
  params: Readonly<Record<string, JsonValue>>,
  secrets: SecretResolver | undefined,
  encode: (s: string) => string,
): string {
  return template.replace(PLACEHOLDER, (_, secret: string | undefined, name: string | undefined) => {
    if (secret !== undefined) {
      if (secrets === undefined)
        throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'secret reference cannot be resolved');
      return secrets.resolve(secret);
    }
    return encode(scalar(params, name ?? ''));
  });
}

/**
 * Renders the path and query. A path placeholder's value may not be empty or only dots, and the
 * rendered path may hold no `.` / `..` segment: a value cannot climb out of the template
 * (`/api/users/{id}` with `..`) → `ERR_PARAMS_INVALID`.
 */
function renderPath(
  rest: string,
  params: Readonly<Record<string, JsonValue>>,
  secrets: SecretResolver | undefined,
): string {
  const q = rest.indexOf('?');
  const pathPart = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : render(rest.slice(q), params, secrets, encodeURIComponent);
  const path = render(pathPart, params, secrets, (v) => {
    if (/^\.*$/.test(v))
      throw new FailclosedError('ERR_PARAMS_INVALID', 'a path parameter is empty or only dots');
    return encodeURIComponent(v);
  });
  if (path.split('/').some((seg) => seg === '.' || seg === '..'))
    throw new FailclosedError('ERR_PARAMS_INVALID', 'the rendered path holds a dot segment');
  return `${path}${query}`;
}

function renderBody(
  node: JsonValue,
  params: Readonly<Record<string, JsonValue>>,
  secrets: SecretResolver | undefined,
  depth: number,
): JsonValue {
  if (depth > 32) throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'body template too deep');
  if (typeof node === 'string') {
    const whole = /^\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$/.exec(node);
    if (whole !== null) {
      const v = params[whole[1] ?? ''];
      if (v === undefined) throw new FailclosedError('ERR_PARAMS_INVALID', 'a body parameter is missing');
      return v;
    }
    return render(node, params, secrets, (s) => s);
  }
  if (Array.isArray(node))
    return (node as readonly JsonValue[]).map((n) => renderBody(n, params, secrets, depth + 1));
  if (typeof node === 'object' && node !== null) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(node)) out[k] = renderBody(v, params, secrets, depth + 1);
    return out;
  }
  return node;
}

/**
 * Whether the envelope lets the Execution Layer itself reach `to` (the HTTP tool, an HTTP
 * upstream MCP server): network granted and `to` on the egress allowlist, the same rule as for
 * sandboxed tools (OE-INV-011); else `ERR_EGRESS_DENIED` (`ERR_SANDBOX_UNAVAILABLE` for a
 * malformed grant). The address is checked after resolution, by the caller.
 */
export function checkDestination(c: ExecutionConstraints, to: EgressDestination): Deny | undefined {
  const grant = checkNetworkGrant(c);
  if (grant !== undefined) return grant;
  if (!c.network) return deny('ERR_EGRESS_DENIED', 'network is not granted');
  const allow = parseEgressAllowlist(c.egress);
  if (allow === undefined || !allow.has(to.key))
    return deny('ERR_EGRESS_DENIED', `egress to ${to.key} is not on the allowlist`);
  return undefined;
}

/** Creates the HTTP adapter. */
export function createHttpAdapter(): ToolAdapter {
  return {
    async run(call) {
      const spec = call.spec;
      const c = call.constraints;
      const url = parseHttpUrlTemplate(spec['url']);
      const method = spec['method'];
      const tlsSpec = parseUpstreamTls(spec['tls']);
      if (
        url === undefined ||
        typeof method !== 'string' ||
        !METHODS.has(method) ||
        tlsSpec === undefined ||
        (spec['tls'] !== undefined && url.scheme !== 'https')
      )
        return deny('ERR_ADAPTER_UNAVAILABLE', 'http spec is malformed');
      const refused = checkDestination(c, url.destination);
      if (refused !== undefined) return refused;
      if (typeof call.params !== 'object' || call.params === null || Array.isArray(call.params))
        return deny('ERR_PARAMS_INVALID', 'http tool parameters must be an object');
      const params = call.params as Readonly<Record<string, JsonValue>>;
      let path: string;
      const headers: Record<string, string> = {};
      let body: Buffer | undefined;
      try {
        path = renderPath(url.rest, params, call.secrets);
        const hs = spec['headers'] ?? {};
        if (typeof hs !== 'object' || hs === null || Array.isArray(hs))
          return deny('ERR_ADAPTER_UNAVAILABLE', 'http headers must map names to templates');
        for (const [name, template] of Object.entries(hs as Record<string, unknown>)) {
          if (
            !HEADER_NAME.test(name) ||
            FORBIDDEN_HEADERS.has(name.toLowerCase()) ||
            typeof template !== 'string'
          )
            return deny('ERR_ADAPTER_UNAVAILABLE', 'http header is not allowed');
          const value = render(template, params, call.secrets, (s) => s);
          if (/[\r\n\0]/.test(value)) return deny('ERR_PARAMS_INVALID', 'a header value holds a line break');
          headers[name] = value;
        }
        if (spec['body'] !== undefined) {
          body = Buffer.from(JSON.stringify(renderBody(spec['body'] as JsonValue, params, call.secrets, 0)));
          headers['content-type'] = 'application/json';
          headers['content-length'] = String(body.length);
        }
      } catch (err) {
        if (err instanceof FailclosedError) return deny(err.code, err.message);
        return deny('ERR_ADAPTER_UNAVAILABLE', 'http spec is malformed');
      }
      const tls = resolveTlsMaterial(tlsSpec, call.secrets);
      if ('outcome' in tls) return tls;
      const resolved = await resolveDestination(url.destination);
      if ('outcome' in resolved) return resolved;
      const address = resolved.address;
      const family = isIP(address) === 6 ? 6 : 4;
      // The connection goes to the address resolved above; nothing resolves the name again.
      const lookup = ((_h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
        if (opts?.all === true) cb(null, [{ address, family }]);
        else cb(null, address, family);
      }) as unknown as LookupFunction;
      const timeout = AbortSignal.timeout(c.timeout_ms);
      const options: RequestOptions = {
        host: url.destination.host,
        port: url.destination.port,
        method,
        path,
        headers: { ...headers, host: url.authority },
        signal: call.signal,
      };
      let connect: RequestOptions;
      if (url.scheme === 'http') connect = { lookup, agent: false };
      else {
        // https: the request is written only to a connection whose certificate verified.
        const socket = await connectVerifiedTls({
          to: url.destination,
          address,
          material: tls,
          signal: AbortSignal.any([call.signal, timeout]),
        });
        if ('outcome' in socket)
          return socket.code === 'ERR_TOOL_TIMEOUT' && !call.signal.aborted
            ? deny('ERR_TOOL_TIMEOUT', 'the request exceeded the time limit')
            : socket;
        connect = { createConnection: () => socket };
      }
      return new Promise((resolve) => {
        let done = false;
        const finish = (r: { readonly outcome: 'ok'; readonly result: JsonValue } | Deny): void => {
          if (done) return;
          done = true;
          resolve(r);
        };
        const req = httpRequest({ ...options, ...connect }, (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let used = 0;
          res.on('data', (chunk: Buffer) => {
            used += chunk.length;
            if (used > c.max_output_bytes) {
              finish(deny('ERR_TOOL_OUTPUT_LIMIT', 'the response exceeded the output limit'));
              req.destroy();
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', () => finish(deny('ERR_TOOL_FAILED', 'the response was cut')));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) {
              finish(deny('ERR_TOOL_FAILED', `the service answered HTTP ${status}`));
              return;
            }
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: JsonValue = text;
            if (/^application\/(?:[a-z.+-]*\+)?json\b/i.test(res.headers['content-type'] ?? '')) {
              try {
                parsed = JSON.parse(text) as JsonValue;
              } catch {
                finish(deny('ERR_TOOL_FAILED', 'the service answered malformed JSON'));
                return;
              }
            }
            finish({ outcome: 'ok', result: { status, body: parsed } });
          });
        });
        req.on('error', (err) =>
          finish(
            call.signal.aborted
              ? deny('ERR_TOOL_TIMEOUT', 'aborted')
              : url.scheme === 'https'
                ? tlsFailureAfterHandshake(err, url.destination)
                : deny('ERR_TOOL_FAILED', 'the request failed'),
          ),
        );
        // One time limit for the handshake and the request together.
        const onTimeout = (): void => {
          finish(deny('ERR_TOOL_TIMEOUT', 'the request exceeded the time limit'));
          req.destroy();
        };
        if (timeout.aborted) onTimeout();
        else timeout.addEventListener('abort', onTimeout, { once: true });
        req.on('close', () => timeout.removeEventListener('abort', onTimeout));
        req.end(body);
      });
    },
  };
}
