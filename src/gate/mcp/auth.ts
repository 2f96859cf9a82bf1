/**
 * Bearer authentication of the MCP endpoint as an OAuth 2.1 resource server (MCP authorization,
 * RFC 9068 JWT access tokens, RFC 8707 audience; SPEC §2 step 1, FC-INV-3). Two kinds of token:
 *
 * - `oauth`: a JWT from the configured issuer, verified against its JWKS with the algorithms
 *   pinned in configuration; `aud` must name this resource; `exp` and `iat` are required. The
 *   principal is `sub`, the tenant and roles come from the configured claims.
 * - `client_key`: a short-lived JWT (`typ: failclosed-client+jwt`, EdDSA) a registered client
 *   signs with its own key (the stdio bridge, `failclosed mcp`); tenant and roles come from the
 *   client's registration.
 *
 * The token is never stored or logged, and passed on only where asked (`forwardCredential`: a
 * keyless Gate's, to its Control Plane process): otherwise only the principal leaves this module.
 */
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { deny, sha256Hex } from '../../kernel/index.js';
import type { Clock, Deny } from '../../kernel/index.js';
import type { Principal } from '../principal.js';
import { CLIENT_ROLE_RE, MAX_CLIENT_ROLES } from '../state.js';
import type { ClientRegistry, RequestReplayStore } from '../types.js';
import { withDeadline } from '../deadline.js';

/** The JWT `typ` of a client-key token. */
export const CLIENT_TOKEN_TYPE = 'failclosed-client+jwt';
/** Longest life (`exp - iat`) of a client-key token, in seconds. */
export const MAX_CLIENT_TOKEN_SEC = 300;
export { OAUTH_ALGORITHMS } from '../bounds.js';

/** The OAuth authorization server this resource trusts (`failclosed.json` `mcp.oauth`). */
export interface OAuthIssuerConfig {
  /** Exact `iss` of its tokens. */
  readonly issuer: string;
  /** Where its signing keys are published. */
  readonly jwks_uri: string;
  /** Accepted JWS algorithms (a subset of {@link OAUTH_ALGORITHMS}). */
  readonly algorithms: readonly string[];
  /** Claim naming the principal's tenant (string). */
  readonly tenant_claim: string;
  /** Claim naming the principal's roles (array of strings, or absent for none). */
  readonly roles_claim: string;
  /**
   * Claim naming the human on whose behalf the agent acts: the owner that may never approve the
   * agent's escalated calls (OE-INV-002). Unset, or absent from a token: the principal has no
   * owner and nobody may approve its calls (fail closed).
   */
  readonly owner_claim?: string;
}

/** What {@link createMcpAuthenticator} needs. */
export interface McpAuthOptions {
  /** This resource's identifier: the required `aud`. */
  readonly resource: string;
  readonly oauth?: OAuthIssuerConfig;
  readonly clients: ClientRegistry;
  readonly clock: Clock;
  /** Accepted clock skew for `exp`/`iat`/`nbf` (seconds). */
  readonly clockToleranceSec: number;
  /** Deadline of a client registry lookup (ms). Default 5000. */
  readonly lookupMs?: number;
  /**
   * Where a client-key token's `jti` is claimed once (the Gate's request-replay store): a token
   * seen before is refused. Required for client-key tokens: without it they are refused.
   */
  readonly replay?: Pick<RequestReplayStore, 'claimNonce'>;
  /** Deadline (ms) of a fetch of the OAuth issuer's keys. Default 5000. */
  readonly jwksTimeoutMs?: number;
  /**
   * Keep the token on the principal it authenticates (`Principal.credential`): a keyless Gate's,
   * which forwards it to its Control Plane process to be authenticated again. Default false.
   */
  readonly forwardCredential?: boolean;
}

/**
 * The identity of an OAuth principal: `oauth:<issuer tag>:<sub>`, the tag the first 8 hex
 * digits of SHA-256 over the issuer. Registered clients may not take names beginning `oauth:`,
 * so a token's `sub` never names a registered client (its approvals, owner, retries, replay
 * memory and breakers), and two issuers' equal `sub`s stay two principals.
 */
export function oauthIdentity(issuer: string, sub: string): string {
  return `${OAUTH_IDENTITY_PREFIX}${sha256Hex(Buffer.from(issuer, 'utf8')).slice(0, 8)}:${sub}`;
}

/** The prefix reserved for OAuth principals' identities (see {@link oauthIdentity}). */
export const OAUTH_IDENTITY_PREFIX = 'oauth:';

/**
 * Authenticates one `Authorization` header value; a deny otherwise: `ERR_UNAUTHENTICATED` (none),
 * `ERR_TOKEN_INVALID`, or `ERR_CLIENT_REGISTRY_UNAVAILABLE` (a client-key token could not be checked).
 */
export type McpAuthenticator = (authorization: string | undefined) => Promise<Principal | Deny>;

const IDENTITY = /^[A-Za-z0-9._:@|-]{1,128}$/;
/** An owner names a human as approvers are named (a registered approver, or an OIDC `sub`). */
const OWNER = /^[A-Za-z0-9._:@|-]{1,128}$/;
const TENANT = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_TOKEN_CHARS = 8192;
/** Deadline of a client registry lookup (ms), as the Gate's own ledger-class deadline. */
const LOOKUP_MS = 5_000;

const invalid = (): Deny => deny('ERR_TOKEN_INVALID', 'the bearer token does not verify');

function rolesOf(v: unknown): readonly string[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_CLIENT_ROLES) return undefined;
  const roles: string[] = [];
  for (const r of v as unknown[]) {
    if (typeof r !== 'string' || !CLIENT_ROLE_RE.test(r)) return undefined;
    roles.push(r);
  }
  return Object.freeze([...new Set(roles)].sort());
}

/** Creates the MCP endpoint's bearer authenticator. See the module comment. */
export function createMcpAuthenticator(options: McpAuthOptions): McpAuthenticator {
  const { oauth } = options;
  const jwks: JWTVerifyGetKey | undefined =
    oauth === undefined
      ? undefined
      : createRemoteJWKSet(new URL(oauth.jwks_uri), {
          timeoutDuration: options.jwksTimeoutMs ?? 5_000,
          cooldownDuration: 30_000,
        });

  const verifyOAuth = async (token: string): Promise<Principal | Deny> => {
    if (oauth === undefined || jwks === undefined) return invalid();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: oauth.issuer,
        audience: options.resource,
        algorithms: [...oauth.algorithms],
        requiredClaims: ['exp', 'iat', 'sub'],
        clockTolerance: options.clockToleranceSec,
        currentDate: new Date(options.clock()),
      }));
    } catch {
      // Includes an issuer whose keys cannot be fetched: no principal either way.
      return invalid();
    }
    const tenant = payload[oauth.tenant_claim];
    const roles = rolesOf(payload[oauth.roles_claim]);
    if (typeof payload.sub !== 'string' || !IDENTITY.test(payload.sub)) return invalid();
    if (typeof tenant !== 'string' || !TENANT.test(tenant) || roles === undefined) return invalid();
    const identity = oauthIdentity(oauth.issuer, payload.sub);
    if (!IDENTITY.test(identity)) return invalid();
    // Absent: no owner (its calls cannot be approved); present but malformed: not a token we accept.
    const owner = oauth.owner_claim === undefined ? undefined : payload[oauth.owner_claim];
    if (owner !== undefined && (typeof owner !== 'string' || !OWNER.test(owner))) return invalid();
    return Object.freeze({
      identity,
      tenant,
      roles,
      auth_method: 'oauth',
      issuer: oauth.issuer,
      ...(owner === undefined ? {} : { owner }),
    });
  };

  const verifyClientKey = async (token: string, identity: unknown): Promise<Principal | Deny> => {
    if (typeof identity !== 'string' || !IDENTITY.test(identity)) return invalid();
    const found = await withDeadline(() => options.clients.lookup(identity), options.lookupMs ?? LOOKUP_MS);
    // A registry that does not answer in time is no principal (fail closed), not a bad token.
    if (found.status !== 'ok') return deny('ERR_CLIENT_REGISTRY_UNAVAILABLE', 'client registry unavailable');
    const client = found.value;
    if (client === undefined || client.status !== 'active') return invalid();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, client.publicKey, {
        issuer: identity,
        subject: identity,
        audience: options.resource,
        algorithms: ['EdDSA'],
        typ: CLIENT_TOKEN_TYPE,
        requiredClaims: ['exp', 'iat', 'jti'],
        // Also refuses an `iat` in the future: a token minted ahead of time never becomes usable.
        maxTokenAge: MAX_CLIENT_TOKEN_SEC,
        clockTolerance: options.clockToleranceSec,
        currentDate: new Date(options.clock()),
      }));
    } catch {
      return invalid();
    }
    // Bound to one message (`signClientToken`'s `body`): checked by the ingress against the bytes.
    const bound = payload['body_sha256'];
    if (bound !== undefined && (typeof bound !== 'string' || !/^[0-9a-f]{64}$/.test(bound))) return invalid();
    const nowSec = Math.floor(options.clock() / 1000);
    if ((payload.exp ?? 0) - (payload.iat ?? 0) > MAX_CLIENT_TOKEN_SEC) return invalid();
    if ((payload.iat ?? Infinity) > nowSec + options.clockToleranceSec) return invalid();
    // Single use: the relay signs a token per message; one seen before is a replay.
    const jti = payload.jti;
    const claimNonce = options.replay?.claimNonce?.bind(options.replay);
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 128 || claimNonce === undefined)
      return invalid();
    const claimed = await withDeadline(
      () =>
        claimNonce({
          identity: client.identity,
          nonce: `mcp-token:${jti}`,
          atMs: options.clock(),
        }),
      options.lookupMs ?? LOOKUP_MS,
    );
    if (claimed.status !== 'ok') return deny('ERR_NONCE_STORE_UNAVAILABLE', 'token replay store unavailable');
    if (claimed.value !== 'fresh') return invalid();
    return Object.freeze({
      identity: client.identity,
      tenant: client.tenant,
      roles: Object.freeze([...(client.roles ?? [])]),
      auth_method: 'client_key',
      issuer: client.identity,
      ...(bound === undefined ? {} : { body_sha256: bound }),
    });
  };

  return async (authorization) => {
    if (authorization === undefined || authorization.length === 0)
      return deny('ERR_UNAUTHENTICATED', 'a bearer token is required');
    // RFC 6750 §2.1 (the scheme is case-insensitive, RFC 9110 §11.1).
    const m = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization);
    if (m?.[1] === undefined || m[1].length > MAX_TOKEN_CHARS) return invalid();
    const token = m[1];
    try {
      // Routing only: nothing read here is trusted until the signature verifies below.
      const header = decodeProtectedHeader(token);
      const claims = decodeJwt(token);
      const p =
        header.typ === CLIENT_TOKEN_TYPE
          ? await verifyClientKey(token, claims.iss)
          : await verifyOAuth(token);
      return 'outcome' in p || options.forwardCredential !== true
        ? p
        : Object.freeze({ ...p, credential: token });
    } catch {
      return invalid();
    }
  };
}
