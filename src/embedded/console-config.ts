/**
 * The `console` member of `failclosed.json` (docs/console.md "OIDC sign-in"), parsed strictly like
 * the rest of the file. Without it (or without `console.oidc`) the console signs in locally only:
 * the enrolment code, then the device key.
 */
import { isIssuerUrl } from '../console/lean.js';
import type { OidcConfig, SignInLimits } from '../console/index.js';

/** `failclosed.json` `console`. */
export interface ConsoleConfig {
  /** The OpenID Connect issuer whose identities invitations can be bound to. */
  readonly oidc?: OidcConfig;
  /** `sign_in_limit` `{failures, window_sec}`: failed sign-ins per name and per address. */
  readonly sign_in_limit?: SignInLimits;
}

function bad(message: string): TypeError {
  return new TypeError(`failclosed.json: console: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const CLIENT_ID = /^[\x21-\x7e]{1,255}$/;

/** `sign_in_limit`: `failures` 1 .. 1000 in `window_sec` 1 .. 86400 (no setting turns the limit off). */
function parseSignInLimit(v: unknown): SignInLimits {
  if (!isObject(v)) throw bad('sign_in_limit must be an object');
  for (const k of Object.keys(v))
    if (k !== 'failures' && k !== 'window_sec') throw bad(`unknown field sign_in_limit.${k}`);
  const { failures, window_sec } = v;
  if (typeof failures !== 'number' || !Number.isInteger(failures) || failures < 1 || failures > 1000)
    throw bad('sign_in_limit.failures must be an integer 1 .. 1000');
  if (
    typeof window_sec !== 'number' ||
    !Number.isInteger(window_sec) ||
    window_sec < 1 ||
    window_sec > 86_400
  )
    throw bad('sign_in_limit.window_sec must be an integer 1 .. 86400');
  return Object.freeze({ failures, window_ms: window_sec * 1000 });
}

/** Parses `failclosed.json` `console`; `TypeError` on anything unknown or malformed. */
export function parseConsoleConfig(v: unknown): ConsoleConfig {
  if (!isObject(v)) throw bad('must be an object');
  for (const k of Object.keys(v)) if (k !== 'oidc' && k !== 'sign_in_limit') throw bad(`unknown field ${k}`);
  const limit = v.sign_in_limit === undefined ? {} : { sign_in_limit: parseSignInLimit(v.sign_in_limit) };
  if (v.oidc === undefined) return Object.freeze(limit);
  const o = v.oidc;
  if (!isObject(o)) throw bad('oidc must be an object');
  const keys = ['issuer', 'client_id', 'client_secret', 'redirect_uri', 'required'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`unknown field oidc.${k}`);
  // https only, http on loopback: no setting relaxes this (an issuer reached in clear is anyone's).
  if (typeof o.issuer !== 'string' || !isIssuerUrl(o.issuer))
    throw bad('oidc.issuer must be an https URL (http only on loopback)');
  if (typeof o.client_id !== 'string' || !CLIENT_ID.test(o.client_id))
    throw bad('oidc.client_id must be 1 .. 255 printable ASCII characters');
  if (o.client_secret !== undefined && (typeof o.client_secret !== 'string' || o.client_secret.length === 0))
    throw bad('oidc.client_secret must be a non-empty string');
  if (
    typeof o.redirect_uri !== 'string' ||
    !isIssuerUrl(o.redirect_uri) ||
    !/\/console\/$/.test(o.redirect_uri)
  )
    throw bad('oidc.redirect_uri must be the console’s URL, ending /console/ (https, or http on loopback)');
  if (o.required !== undefined && typeof o.required !== 'boolean')
    throw bad('oidc.required must be a boolean');
  return Object.freeze({
    ...limit,
    oidc: Object.freeze({
      issuer: o.issuer,
      client_id: o.client_id,
      redirect_uri: o.redirect_uri,
      ...(o.client_secret === undefined ? {} : { client_secret: o.client_secret }),
      ...(o.required === undefined ? {} : { required: o.required }),
    }),
  });
}
