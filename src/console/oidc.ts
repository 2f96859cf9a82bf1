/**
 * The console's OpenID Connect relying party (docs/console.md "OIDC sign-in"; OE-INV-020
 * "distinct humans", L7 Identity & Signing): the authorization code flow with PKCE (RFC 7636,
 * S256), `state` and `nonce`, the issuer's metadata from its discovery document (OIDC Discovery
 * 1.0 §4), the code exchanged server-side at the token endpoint, and the ID token validated (OIDC
 * Core §3.1.3.7): signature under the issuer's JWKS, `iss`, `aud`, `azp`, `exp`/`iat` on the
 * gate's injected clock, `nonce`. Built on `jose` alone (docs/DEPENDENCIES.md).
 *
 * What a sign-in needs between the redirect to the issuer and the return is sealed in a cookie
 * (AES-256-GCM under a key of this process, bound to the console session that started it, 10
 * minutes), so an unauthenticated visitor costs no state; its `state` is recorded as used once
 * (`useState`). Every failure is a deny: `ERR_OIDC_UNAVAILABLE` when the issuer does not answer,
 * `ERR_OIDC_INVALID` for anything else; nothing here allows on error.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { decodeBase64url, deny, encodeBase64url, isDeny } from '../kernel/index.js';
import type { Clock, Deny } from '../kernel/index.js';
import { isIssuerUrl } from './issuer-url.js';

export { isIssuerUrl };

/** `failclosed.json` `console.oidc`, parsed. */
export interface OidcConfig {
  /** The issuer (exact `iss`): https, or http on loopback only. */
  readonly issuer: string;
  readonly client_id: string;
  /** Present: a confidential client (`client_secret_basic`); absent: a public client (PKCE only). */
  readonly client_secret?: string;
  /** Registered at the issuer: exactly `<the console's origin>/console/`. */
  readonly redirect_uri: string;
  /** True: every invitation must be bound to an OIDC subject. Default false. */
  readonly required?: boolean;
}

/** An identity the issuer asserted in a validated ID token. */
export interface OidcIdentity {
  readonly issuer: string;
  readonly subject: string;
}

/** The callback parameters the browser hands back (`?code=…&state=…&iss=…`). */
export interface OidcCallback {
  readonly code: unknown;
  readonly state: unknown;
  readonly iss?: unknown;
}

/** What the relying party needs. */
export interface OidcDeps {
  readonly config: OidcConfig;
  readonly now: Clock;
  /** Records a state id as used until `expiresAt`; true exactly once per id. */
  readonly useState: (id: string, expiresAt: number, atMs: number) => Promise<boolean>;
  /** Outgoing HTTP (discovery and token endpoint); default the global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Seals the pending sign-in; default 32 random bytes of this process. */
  readonly sealKey?: Buffer;
  /** Per request to the issuer (ms). Default 5000. */
  readonly timeoutMs?: number;
}

/** The relying party. */
export interface OidcRelyingParty {
  readonly config: OidcConfig;
  /** The authorization URL to send the browser to, and the sealed pending sign-in for its cookie. */
  begin(binding: string): Promise<{ url: string; pending: string } | Deny>;
  /** Checks the callback against the pending sign-in of `binding`, exchanges the code, validates the ID token. */
  finish(pending: string | undefined, binding: string, callback: OidcCallback): Promise<OidcIdentity | Deny>;
}

/**
 * Where the issuer sends an operator back: the operator page next to the approvers' redirect URI
 * (`<origin>/console/operator.html`), registered at the issuer as well. The operators' relying
 * party is this module's with that one setting changed (docs/console.md "Operator sign-in").
 */
export function operatorRedirectUri(config: OidcConfig): string {
  return `${config.redirect_uri}operator.html`;
}

/** The pending sign-in's lifetime (ms). */
export const OIDC_PENDING_MS = 10 * 60_000;
/** Accepted skew between the issuer's clock and the gate's for `iat`/`exp` (s). */
export const OIDC_CLOCK_TOLERANCE_SEC = 30;
/** Asymmetric algorithms only: never `none`, never an HMAC keyed with the client secret. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
const MAX_ANSWER = 64 * 1024;
const CODE = /^[\x21-\x7e]{1,2048}$/;
const STATE = /^[A-Za-z0-9_-]{43}$/;

interface Metadata {
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri: string;
  readonly iss_parameter: boolean;
}

interface Pending {
  readonly b: string;
  readonly s: string;
  readonly n: string;
  readonly v: string;
  readonly e: number;
}

const invalid = (reason: string): Deny => deny('ERR_OIDC_INVALID', reason);
const unavailable = (reason: string): Deny => deny('ERR_OIDC_UNAVAILABLE', reason);

const same = (a: string, b: string): boolean => {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
};

/** Seals a pending sign-in (AES-256-GCM; `iv ‖ ciphertext ‖ tag`, base64url). */
export function sealPending(key: Buffer, p: Pending): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([c.update(JSON.stringify(p), 'utf8'), c.final()]);
  return encodeBase64url(Buffer.concat([iv, body, c.getAuthTag()]));
}

/** Opens a sealed pending sign-in; undefined when it was not sealed by `key` or is malformed. */
export function openPending(key: Buffer, sealed: string): Pending | undefined {
  const raw = /^[A-Za-z0-9_-]{40,2048}$/.test(sealed) ? decodeBase64url(sealed) : undefined;
  if (raw === undefined || raw.length < 29) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(raw.length - 16));
    const text = Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
    const v = JSON.parse(text) as Record<string, unknown>;
    const { b, s, n, e } = v;
    const verifier = v['v'];
    if (
      typeof b !== 'string' ||
      typeof s !== 'string' ||
      typeof n !== 'string' ||
      typeof verifier !== 'string' ||
      typeof e !== 'number'
    )
      return undefined;
    return { b, s, n, v: verifier, e };
  } catch {
    return undefined;
  }
}

/** The PKCE S256 challenge of a verifier (RFC 7636 §4.2). */
export function pkceChallenge(verifier: string): string {
  return encodeBase64url(createHash('sha256').update(verifier, 'ascii').digest());
}

/** Reads at most {@link MAX_ANSWER} bytes of JSON object; undefined for anything else (hostile input). */
async function jsonObject(res: Response): Promise<Record<string, unknown> | undefined> {
  const type = res.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return undefined;
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > MAX_ANSWER) return undefined;
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Creates the console's relying party for one configured issuer. */
export function createOidcRelyingParty(deps: OidcDeps): OidcRelyingParty {
  const { config } = deps;
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const key = deps.sealKey ?? randomBytes(32);
  let metadata: { value: Metadata; at: number } | undefined;
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  const call = async (url: string, init: RequestInit = {}): Promise<Response | Deny> => {
    try {
      return await doFetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    } catch {
      return unavailable('the identity provider did not answer');
    }
  };

  /** The issuer's metadata (OIDC Discovery §4.3: `issuer` must be the configured one exactly). */
  const discover = async (): Promise<Metadata | Deny> => {
    const at = deps.now();
    if (metadata !== undefined && at - metadata.at < 3_600_000 && at >= metadata.at) return metadata.value;
    const res = await call(`${config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (isDeny(res)) return res;
    if (res.status >= 500) return unavailable('the identity provider’s discovery failed');
    const d = res.status === 200 ? await jsonObject(res) : undefined;
    if (d === undefined) return invalid('the discovery document is not a JSON object');
    if (d['issuer'] !== config.issuer) return invalid('the discovery document names another issuer');
    const urls = ['authorization_endpoint', 'token_endpoint', 'jwks_uri'].map((k) => d[k]);
    if (!urls.every((u): u is string => typeof u === 'string' && isIssuerUrl(u)))
      return invalid('an endpoint of the discovery document is not https (or loopback http)');
    const methods = d['code_challenge_methods_supported'];
    if (methods !== undefined && !(Array.isArray(methods) && methods.includes('S256')))
      return invalid('the identity provider does not support PKCE S256');
    const value: Metadata = {
      authorization_endpoint: urls[0] as string,
      token_endpoint: urls[1] as string,
      jwks_uri: urls[2] as string,
      iss_parameter: d['authorization_response_iss_parameter_supported'] === true,
    };
    if (metadata?.value.jwks_uri !== value.jwks_uri || jwks === undefined)
      jwks = createRemoteJWKSet(new URL(value.jwks_uri), { timeoutDuration: timeoutMs });
    metadata = { value, at };
    return value;
  };

  /** The code at the token endpoint (OIDC Core §3.1.3.1), with the PKCE verifier; the ID token. */
  const exchange = async (m: Metadata, code: string, verifier: string): Promise<string | Deny> => {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: config.redirect_uri,
      code_verifier: verifier,
    });
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (config.client_secret === undefined) form.set('client_id', config.client_id);
    else
      headers['authorization'] = `Basic ${Buffer.from(
        `${encodeURIComponent(config.client_id)}:${encodeURIComponent(config.client_secret)}`,
      ).toString('base64')}`;
    const res = await call(m.token_endpoint, { method: 'POST', headers, body: form.toString() });
    if (isDeny(res)) return res;
    if (res.status >= 500) return unavailable('the identity provider’s token endpoint failed');
    const body = await jsonObject(res).catch(() => undefined);
    // A replayed code, a wrong verifier or redirect URI: the issuer's `invalid_grant`.
    if (res.status !== 200 || body === undefined) {
      // The issuer's error code only when it is one (hostile text is not echoed to the browser).
      const e = body?.['error'];
      const why = typeof e === 'string' && /^[a-z_]{1,64}$/.test(e) ? e : `HTTP ${res.status}`;
      return invalid(`the token endpoint refused the code (${why})`);
    }
    const idToken = body['id_token'];
    if (typeof idToken !== 'string' || idToken.length > MAX_ANSWER)
      return invalid('the token answer carries no ID token');
    return idToken;
  };

  /** OIDC Core §3.1.3.7: signature, iss, aud, azp, exp/iat on the gate's clock, nonce, sub. */
  const validate = async (idToken: string, nonce: string): Promise<OidcIdentity | Deny> => {
    if (jwks === undefined) return invalid('no JWKS');
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(idToken, jwks, {
        issuer: config.issuer,
        audience: config.client_id,
        algorithms: ALGORITHMS,
        currentDate: new Date(deps.now()),
        clockTolerance: OIDC_CLOCK_TOLERANCE_SEC,
        maxTokenAge: OIDC_PENDING_MS / 1000,
        requiredClaims: ['sub', 'iat', 'exp', 'nonce'],
      }));
    } catch (err) {
      // A JWKS that does not answer (a timeout, or no JOSE error at all: the fetch failed).
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError))
        return unavailable('the identity provider’s JWKS did not answer');
      return invalid('the ID token does not verify (signature, issuer, audience, expiry)');
    }
    if (typeof claims['nonce'] !== 'string' || !same(claims['nonce'], nonce))
      return invalid('the ID token’s nonce is not this sign-in’s');
    const aud = claims.aud;
    const azp = claims['azp'];
    if (Array.isArray(aud) && aud.length > 1 && azp === undefined)
      return invalid('an ID token for several audiences must name its authorized party');
    if (azp !== undefined && azp !== config.client_id)
      return invalid('the ID token was issued to another party (azp)');
    const sub = claims.sub;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 255)
      return invalid('the ID token’s subject is malformed');
    return { issuer: config.issuer, subject: sub };
  };

  const rp: OidcRelyingParty = {
    config,
    async begin(binding: string) {
      const m = await discover();
      if (isDeny(m)) return m;
      const p: Pending = {
        b: binding,
        s: encodeBase64url(randomBytes(32)),
        n: encodeBase64url(randomBytes(32)),
        v: encodeBase64url(randomBytes(32)),
        e: deps.now() + OIDC_PENDING_MS,
      };
      const url = new URL(m.authorization_endpoint);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('client_id', config.client_id);
      url.searchParams.set('redirect_uri', config.redirect_uri);
      url.searchParams.set('scope', 'openid');
      url.searchParams.set('state', p.s);
      url.searchParams.set('nonce', p.n);
      url.searchParams.set('code_challenge', pkceChallenge(p.v));
      url.searchParams.set('code_challenge_method', 'S256');
      return { url: url.href, pending: sealPending(key, p) };
    },

    async finish(pending, binding, callback) {
      const { code, state, iss } = callback;
      if (typeof code !== 'string' || !CODE.test(code) || typeof state !== 'string' || !STATE.test(state))
        return invalid('code and state are required');
      const p = pending === undefined ? undefined : openPending(key, pending);
      const at = deps.now();
      // The sign-in this browser session started, unexpired, and its state (CSRF, RFC 6749 §10.12).
      if (p === undefined || !same(p.b, binding) || p.e <= at)
        return invalid('no sign-in of this session is pending, or it expired');
      if (!same(p.s, state)) return invalid('the state is not this sign-in’s');
      const m = await discover();
      if (isDeny(m)) return m;
      // RFC 9207: the issuer that answered is the configured one (mix-up defence).
      if (iss !== undefined ? iss !== config.issuer : m.iss_parameter)
        return invalid('the authorization answer names another issuer');
      // Single use, recorded before the code is spent: a replayed callback is refused here.
      if (!(await deps.useState(`oidc:${p.s}`, p.e, at))) return invalid('the sign-in was completed already');
      const idToken = await exchange(m, code, p.v);
      if (isDeny(idToken)) return idToken;
      return validate(idToken, p.n);
    },
  };
  return Object.freeze(rp);
}
