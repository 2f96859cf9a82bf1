/**
 * The approval configuration file (`approvals.json` in the data directory; optional), parsed
 * strictly like any other untrusted input: unknown members and wrong types are refused
 * (`TypeError`), so a misspelled setting can never silently weaken approvals. See
 * docs/approvals.md "Configuration".
 */
import { parseJson } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import type { ApprovalSettings } from './context.js';
import type { OidcConfig } from './oidc.js';
import { DEFAULT_WATCH_SETTINGS, type WatchSettings } from './watch.js';

/** Parsed configuration. */
export interface ApprovalConfig {
  readonly settings: Partial<ApprovalSettings>;
  readonly oidc?: OidcConfig;
}

const TOP = [
  'wait_max_ms',
  'wait_per_principal_max',
  'default_ttl_sec',
  'statement_max_age_sec',
  'break_glass_roles',
  'break_glass_max_ttl_sec',
  'review_due_sec',
  'policy_activation',
  'oidc',
  'watch',
];

function bad(what: string): TypeError {
  return new TypeError(`approvals.json: ${what}`);
}

function obj(v: JsonValue | undefined, what: string, allowed: readonly string[]): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw bad(`unknown member ${what}.${k}`);
  return v as JsonObject;
}

function int(v: JsonValue | undefined, what: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(`${what} must be an integer ${min}..${max}`);
  return v;
}

function roles(v: JsonValue | undefined, what: string): readonly string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((r) => typeof r === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(r)))
    throw bad(`${what} must be a list of role names`);
  return Object.freeze([...(v as string[])]);
}

function str(v: JsonValue | undefined, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048)
    throw bad(`${what} must be a non-empty string`);
  return v;
}

/** `watch`: rate limits and anomaly flags; a member left out keeps its default. */
function parseWatch(v: JsonValue): WatchSettings {
  const w = obj(v, 'watch', ['rate_limit', 'quick_approval_sec', 'burst', 'usual_min_history', 'on_flag']);
  const d = DEFAULT_WATCH_SETTINGS;
  const rl =
    w['rate_limit'] === undefined ? {} : obj(w['rate_limit'], 'watch.rate_limit', ['max', 'window_sec']);
  const b = w['burst'] === undefined ? {} : obj(w['burst'], 'watch.burst', ['count', 'window_sec']);
  const onFlag = w['on_flag'];
  if (onFlag !== undefined && onFlag !== 'flag' && onFlag !== 'require_extra')
    throw bad('watch.on_flag must be "flag" or "require_extra"');
  return Object.freeze({
    rateLimit: Object.freeze({
      max: int(rl['max'], 'watch.rate_limit.max', 1, 100_000) ?? d.rateLimit.max,
      windowSec: int(rl['window_sec'], 'watch.rate_limit.window_sec', 1, 86_400) ?? d.rateLimit.windowSec,
    }),
    quickSec: int(w['quick_approval_sec'], 'watch.quick_approval_sec', 0, 86_400) ?? d.quickSec,
    burst: Object.freeze({
      count: int(b['count'], 'watch.burst.count', 2, 100_000) ?? d.burst.count,
      windowSec: int(b['window_sec'], 'watch.burst.window_sec', 1, 86_400) ?? d.burst.windowSec,
    }),
    minHistory: int(w['usual_min_history'], 'watch.usual_min_history', 1, 1_000_000) ?? d.minHistory,
    onFlag: onFlag ?? d.onFlag,
  });
}

/** Parses `approvals.json`. Throws `TypeError` naming the offending member. */
export function parseApprovalConfig(bytes: Uint8Array): ApprovalConfig {
  const o = obj(parseJson(bytes, { maxBytes: 64 * 1024, maxDepth: 6 }), 'approvals.json', TOP);
  const settings: { -readonly [K in keyof ApprovalSettings]?: ApprovalSettings[K] } = {};
  const set = <K extends keyof ApprovalSettings>(k: K, v: ApprovalSettings[K] | undefined): void => {
    if (v !== undefined) settings[k] = v;
  };
  set('maxWaitMs', int(o['wait_max_ms'], 'wait_max_ms', 0, 120_000));
  set('maxWaitingPerPrincipal', int(o['wait_per_principal_max'], 'wait_per_principal_max', 0, 4096));
  set('defaultTtlSec', int(o['default_ttl_sec'], 'default_ttl_sec', 1, 2_592_000));
  set('statementMaxAgeSec', int(o['statement_max_age_sec'], 'statement_max_age_sec', 1, 86_400));
  set('breakGlassRoles', roles(o['break_glass_roles'], 'break_glass_roles'));
  set('breakGlassMaxTtlSec', int(o['break_glass_max_ttl_sec'], 'break_glass_max_ttl_sec', 1, 86_400));
  set('reviewDueSec', int(o['review_due_sec'], 'review_due_sec', 1, 31_536_000));
  if (o['policy_activation'] !== undefined) {
    const pa = obj(o['policy_activation'], 'policy_activation', ['approvals', 'roles']);
    set('policyActivation', {
      approvals: int(pa['approvals'], 'policy_activation.approvals', 0, 10) ?? 0,
      roles: roles(pa['roles'], 'policy_activation.roles') ?? [],
    });
  }
  if (o['watch'] !== undefined) set('watch', parseWatch(o['watch']));
  if (o['oidc'] === undefined) return { settings };
  const c = obj(o['oidc'], 'oidc', [
    'issuer',
    'audience',
    'jwks_uri',
    'roles_claim',
    'tenants_claim',
    'algorithms',
  ]);
  const algorithms = c['algorithms'];
  if (
    algorithms !== undefined &&
    (!Array.isArray(algorithms) || !algorithms.every((a) => typeof a === 'string'))
  )
    throw bad('oidc.algorithms must be a list');
  const oidc: OidcConfig = {
    issuer: str(c['issuer'], 'oidc.issuer'),
    audience: str(c['audience'], 'oidc.audience'),
    jwksUri: str(c['jwks_uri'], 'oidc.jwks_uri'),
    ...(c['roles_claim'] === undefined ? {} : { rolesClaim: str(c['roles_claim'], 'oidc.roles_claim') }),
    ...(c['tenants_claim'] === undefined
      ? {}
      : { tenantsClaim: str(c['tenants_claim'], 'oidc.tenants_claim') }),
    ...(algorithms === undefined ? {} : { algorithms }),
  };
  return { settings, oidc };
}
