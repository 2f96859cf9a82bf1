/**
 * The `mcp` member of `failclosed.json` (docs/mcp.md "Configuration"), parsed strictly like the
 * rest of the file, and the endpoint settings it resolves to once the listener's URL is known.
 * Every member is optional: without any, the endpoint serves loopback clients that authenticate
 * with a registered client's key (the stdio bridge), and no OAuth issuer is trusted.
 */
import { MAX_CALL_WAIT_MS, OAUTH_ALGORITHMS } from '../gate/lean.js';
import type { McpEndpointSettings, OAuthIssuerConfig } from '../gate/index.js';

/** `failclosed.json` `mcp`. */
export interface McpConfig {
  /** The resource identifier and token audience (absolute URL; its path is the endpoint path). Default `<listener>/mcp`. */
  readonly resource?: string;
  /** Accepted `Host` values. Default: the listener's `host:port`, and `localhost:port` on loopback. */
  readonly allowed_hosts?: readonly string[];
  /** Accepted browser `Origin` values. Default: the listener's own origins. */
  readonly allowed_origins?: readonly string[];
  /**
   * How long an escalated `tools/call` that carries a `progressToken` may wait for its approval,
   * sending `notifications/progress` meanwhile (ms; capped by the approvals' `wait_max_ms`).
   * Default 0: answer pending at once.
   */
  readonly approval_wait_ms?: number;
  /** The OAuth 2.1 authorization server whose bearer JWTs are accepted. */
  readonly oauth?: {
    readonly issuer: string;
    readonly jwks_uri: string;
    /** Default `["RS256"]`. */
    readonly algorithms?: readonly string[];
    /** Default `"tenant"`. */
    readonly tenant_claim?: string;
    /** Default `"roles"`. */
    readonly roles_claim?: string;
    /** Claim naming the human owner of the agent (approvals); no default: without it, no owner. */
    readonly owner_claim?: string;
  };
}

function bad(message: string): TypeError {
  return new TypeError(`failclosed.json: mcp: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`unknown field ${where}${k}`);
}

function httpUrl(v: unknown, name: string, https: boolean): string {
  if (typeof v !== 'string') throw bad(`${name} must be a URL`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw bad(`${name} must be a URL`);
  }
  const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && (!https || loopback)))
    throw bad(`${name} must be https (http only on loopback)`);
  if (u.hash !== '' || u.username !== '' || u.password !== '')
    throw bad(`${name} must not carry a fragment or credentials`);
  return v;
}

function strings(v: unknown, name: string, re: RegExp): readonly string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 64) throw bad(`${name} must be a non-empty array`);
  for (const s of v as unknown[])
    if (typeof s !== 'string' || !re.test(s)) throw bad(`${name} holds a malformed entry`);
  return Object.freeze([...(v as string[])]);
}

const HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const ORIGIN = /^https?:\/\/(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const CLAIM = /^[A-Za-z0-9_.:/-]{1,128}$/;

/** Parses `failclosed.json` `mcp`; `TypeError` on anything unknown or malformed. */
export function parseMcpConfig(v: unknown): McpConfig {
  if (!isObject(v)) throw bad('must be an object');
  onlyKeys(v, ['resource', 'allowed_hosts', 'allowed_origins', 'approval_wait_ms', 'oauth'], '');
  const out: Record<string, unknown> = {};
  if (v.resource !== undefined) out.resource = httpUrl(v.resource, 'resource', true);
  if (v.allowed_hosts !== undefined) out.allowed_hosts = strings(v.allowed_hosts, 'allowed_hosts', HOST);
  if (v.allowed_origins !== undefined)
    out.allowed_origins = strings(v.allowed_origins, 'allowed_origins', ORIGIN);
  if (v.approval_wait_ms !== undefined) {
    const w = v.approval_wait_ms;
    if (typeof w !== 'number' || !Number.isSafeInteger(w) || w < 0 || w > MAX_CALL_WAIT_MS)
      throw bad(`approval_wait_ms must be an integer from 0 to ${MAX_CALL_WAIT_MS}`);
    out.approval_wait_ms = w;
  }
  if (v.oauth !== undefined) {
    const o = v.oauth;
    if (!isObject(o)) throw bad('oauth must be an object');
    onlyKeys(o, ['issuer', 'jwks_uri', 'algorithms', 'tenant_claim', 'roles_claim', 'owner_claim'], 'oauth.');
    if (typeof o.issuer !== 'string' || o.issuer.length === 0 || o.issuer.length > 512)
      throw bad('oauth.issuer must be a non-empty string');
    const oauth: Record<string, unknown> = {
      issuer: o.issuer,
      jwks_uri: httpUrl(o.jwks_uri, 'oauth.jwks_uri', true),
    };
    if (o.algorithms !== undefined) {
      const algs = strings(o.algorithms, 'oauth.algorithms', /^[A-Za-z0-9]{2,16}$/);
      for (const a of algs)
        if (!OAUTH_ALGORITHMS.includes(a))
          throw bad(`oauth.algorithms: ${a} is not an accepted asymmetric algorithm`);
      oauth.algorithms = algs;
    }
    for (const k of ['tenant_claim', 'roles_claim', 'owner_claim'] as const)
      if (o[k] !== undefined) {
        if (typeof o[k] !== 'string' || !CLAIM.test(o[k])) throw bad(`oauth.${k} must be a claim name`);
        oauth[k] = o[k];
      }
    out.oauth = Object.freeze(oauth);
  }
  return Object.freeze(out);
}

/** The endpoint settings and issuer for a listener at `url` (`http://host:port`). */
export function resolveMcpSettings(
  config: McpConfig | undefined,
  url: string,
): { readonly settings: McpEndpointSettings; readonly oauth?: OAuthIssuerConfig } {
  const listener = new URL(url);
  const loopback =
    listener.hostname === '127.0.0.1' || listener.hostname === '[::1]' || listener.hostname === 'localhost';
  const hosts = [
    listener.host,
    ...(loopback ? [`localhost:${listener.port}`, `127.0.0.1:${listener.port}`] : []),
  ];
  const origins = hosts.map((h) => `http://${h}`);
  const c = config?.oauth;
  const oauth: OAuthIssuerConfig | undefined =
    c === undefined
      ? undefined
      : {
          issuer: c.issuer,
          jwks_uri: c.jwks_uri,
          algorithms: c.algorithms ?? ['RS256'],
          tenant_claim: c.tenant_claim ?? 'tenant',
          roles_claim: c.roles_claim ?? 'roles',
          ...(c.owner_claim === undefined ? {} : { owner_claim: c.owner_claim }),
        };
  return {
    settings: {
      resource: config?.resource ?? `${listener.origin}/mcp`,
      allowedHosts: [...new Set(config?.allowed_hosts ?? hosts)],
      allowedOrigins: [...new Set(config?.allowed_origins ?? origins)],
      authorizationServers: oauth === undefined ? [] : [oauth.issuer],
      approvalWaitMs: config?.approval_wait_ms ?? 0,
    },
    ...(oauth === undefined ? {} : { oauth }),
  };
}
