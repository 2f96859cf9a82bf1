/**
 * Rows of the console store read back from a database, parsed as untrusted input by every
 * backend's store alike: a malformed row throws (the caller refuses, fail closed).
 */
import type { JsonObject } from '../kernel/index.js';
import type { ApproverTenants } from '../control-plane/index.js';
import type { ConsoleSession, InvitedPerson, OperatorSession } from './store.js';

function malformed(column: string): never {
  throw new TypeError(`malformed console row (${column})`);
}

const str = (r: Record<string, unknown>, c: string): string => {
  const v = r[c];
  return typeof v === 'string' ? v : malformed(c);
};

/** An integer column: a number (SQLite) or its decimal text (PostgreSQL `bigint`). */
const int = (r: Record<string, unknown>, c: string): number => {
  const raw = r[c];
  const v = typeof raw === 'string' && /^-?(?:0|[1-9]\d{0,15})$/.test(raw) ? Number(raw) : raw;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : malformed(c);
};

const orNull = <T>(
  r: Record<string, unknown>,
  c: string,
  f: (r: Record<string, unknown>, c: string) => T,
): T | null => (r[c] === null ? null : f(r, c));

function json(r: Record<string, unknown>, c: string): unknown {
  try {
    return JSON.parse(str(r, c));
  } catch {
    return malformed(c);
  }
}

function tenants(r: Record<string, unknown>): ApproverTenants {
  const v = json(r, 'tenants');
  if (v === '*') return '*';
  if (Array.isArray(v) && v.every((t) => typeof t === 'string')) return Object.freeze([...v]);
  return malformed('tenants');
}

/** An invited person's row. */
export function parsePersonRow(r: Record<string, unknown>): InvitedPerson {
  const roles = json(r, 'roles');
  if (!Array.isArray(roles) || !roles.every((x) => typeof x === 'string')) malformed('roles');
  const jwk = r['public_jwk'] === null ? null : json(r, 'public_jwk');
  if (jwk !== null && (typeof jwk !== 'object' || Array.isArray(jwk))) malformed('public_jwk');
  return Object.freeze({
    name: str(r, 'name'),
    roles: Object.freeze([...roles]),
    tenants: tenants(r),
    code_sha256: orNull(r, 'code_sha256', str),
    invited_at: int(r, 'invited_at'),
    code_expires_at: int(r, 'code_expires_at'),
    public_jwk: jwk as JsonObject | null,
    kid: orNull(r, 'kid', str),
    enrolled_at: orNull(r, 'enrolled_at', int),
    confirmed_at: orNull(r, 'confirmed_at', int),
    oidc_issuer: orNull(r, 'oidc_issuer', str),
    oidc_subject: orNull(r, 'oidc_subject', str),
  });
}

/** A session's row. */
export function parseSessionRow(r: Record<string, unknown>): ConsoleSession {
  const method = r['method'];
  if (method !== 'code' && method !== 'key' && method !== 'code+oidc' && method !== 'key+oidc')
    return malformed('method');
  return Object.freeze({
    id_sha256: str(r, 'id_sha256'),
    name: str(r, 'name'),
    method,
    created_at: int(r, 'created_at'),
    last_seen: int(r, 'last_seen'),
  });
}

/** An operator session's row. */
export function parseOperatorSessionRow(r: Record<string, unknown>): OperatorSession {
  const method = r['method'];
  if (method !== 'token' && method !== 'oidc') return malformed('method');
  return Object.freeze({
    id_sha256: str(r, 'id_sha256'),
    name: str(r, 'name'),
    method,
    credential: str(r, 'credential'),
    created_at: int(r, 'created_at'),
    last_seen: int(r, 'last_seen'),
  });
}
