/**
 * OIDC / JWT approver identity (OE-INV-019, L7 Identity & Signing "OAuth/OIDC, roles in token
 * claims"): a bearer token from the configured issuer, verified against the issuer's JWKS with
 * jose, with issuer, audience, expiry and subject required and the roles read from a configured
 * claim. For an approval the token must also be bound to the exact statement: its
 * `approval_sha256` claim equals SHA-256 of the statement's signing input (transaction binding),
 * so the IdP's signature is the approver's signature over that statement and cannot be reused
 * for any other decision.
 */
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { deny } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import { TENANT_NAME, type ApproverTenants } from './store.js';

/** Configuration of the OIDC approver identity. */
export interface OidcConfig {
  readonly issuer: string;
  readonly audience: string;
  /** The issuer's JWKS endpoint. */
  readonly jwksUri: string;
  /** Claim holding the roles: an array of strings or a space-separated string. Default `roles`. */
  readonly rolesClaim?: string;
  /**
   * Claim holding the approver's tenant scope (OE-INV-020): a list of tenant names, a
   * space-separated string of them, or `"*"` for every tenant (asked for explicitly). Default
   * `tenants`. A token without it, or with a malformed one, is scoped to no tenant: its votes
   * count for nothing and the approval API lists nothing to it.
   */
  readonly tenantsClaim?: string;
  /** Accepted algorithms. Default `EdDSA`, `ES256`, `RS256`. */
  readonly algorithms?: readonly string[];
  /** Clock tolerance in seconds. Default 30. */
  readonly clockToleranceSec?: number;
}

/** A verified approver identity. */
export interface OidcIdentity {
  /** The token's issuer (the configured one: `iss` is verified against it). */
  readonly issuer: string;
  readonly subject: string;
  readonly roles: readonly string[];
  /** The tenants the token scopes the approver to (`[]`: none; `'*'`: every tenant). */
  readonly tenants: ApproverTenants;
  /** The token's `approval_sha256` claim, when present. */
  readonly approval_sha256: string | undefined;
}

/** Verifies approver bearer tokens. */
export interface OidcVerifier {
  /** Never rejects: an invalid, expired or foreign token is `ERR_APPROVER_UNKNOWN`. */
  verify(token: string, nowMs: number): Promise<OidcIdentity | Deny>;
}

const SUBJECT = /^[A-Za-z0-9._:@-]{1,120}$/;
const ROLE = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * A claim holding a list of names (an array, or a space-separated string), sorted without
 * duplicates; undefined when absent or when any name does not match `pattern`.
 */
function namesOf(payload: JWTPayload, claim: string, pattern: RegExp): readonly string[] | undefined {
  const v = payload[claim];
  const list = typeof v === 'string' ? v.split(' ').filter((s) => s.length > 0) : v;
  if (
    !Array.isArray(list) ||
    list.length > 64 ||
    !list.every((r): r is string => typeof r === 'string' && pattern.test(r))
  )
    return undefined;
  return Object.freeze([...new Set(list)].sort());
}

const NO_TENANT: ApproverTenants = Object.freeze([]);

/** The tenant scope a token's claim gives; anything absent or malformed scopes to no tenant. */
export function tenantsOf(payload: JWTPayload, claim: string): ApproverTenants {
  return payload[claim] === '*' ? '*' : (namesOf(payload, claim, TENANT_NAME) ?? NO_TENANT);
}

/**
 * Creates the verifier over a remote JWKS (`createRemoteJWKSet`, cached and rate-limited by jose),
 * or over `getKey` when given (tests, pinned keys). Throws `TypeError` for a malformed configuration.
 */
export function createOidcVerifier(config: OidcConfig, getKey?: JWTVerifyGetKey): OidcVerifier {
  if (config.issuer.length === 0 || config.audience.length === 0)
    throw new TypeError('oidc issuer and audience are required');
  const keys = getKey ?? createRemoteJWKSet(new URL(config.jwksUri), { timeoutDuration: 2000 });
  const claim = config.rolesClaim ?? 'roles';
  const tenantsClaim = config.tenantsClaim ?? 'tenants';
  const algorithms = [...(config.algorithms ?? ['EdDSA', 'ES256', 'RS256'])];
  return Object.freeze({
    async verify(token: string, nowMs: number): Promise<OidcIdentity | Deny> {
      const refused = deny('ERR_APPROVER_UNKNOWN', 'the approver token does not verify');
      if (typeof token !== 'string' || token.length > 16_384) return refused;
      try {
        const { payload } = await jwtVerify(token, keys, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms,
          requiredClaims: ['exp', 'iat', 'sub'],
          clockTolerance: config.clockToleranceSec ?? 30,
          currentDate: new Date(nowMs),
        });
        const roles = namesOf(payload, claim, ROLE);
        if (typeof payload.sub !== 'string' || !SUBJECT.test(payload.sub) || roles === undefined)
          return refused;
        const bound = payload['approval_sha256'];
        return Object.freeze({
          issuer: config.issuer,
          subject: payload.sub,
          roles,
          tenants: tenantsOf(payload, tenantsClaim),
          approval_sha256: typeof bound === 'string' ? bound : undefined,
        });
      } catch {
        return refused;
      }
    },
  });
}
