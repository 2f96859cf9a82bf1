/**
 * Rows of the approval state read back as untrusted input (STYLE "Untrusted input", OE-INV-019/020):
 * a database file or server is a trust boundary, so every backend parses what it reads through
 * these functions into frozen, typed records. Anything malformed throws `TypeError`; the store
 * then rejects and the callers deny (fail closed). Integer columns arrive as numbers (SQLite) or
 * decimal strings (PostgreSQL `bigint`); both are accepted only as safe integers.
 */
import { isLedgerRef, parseJson, parsePublicJwk } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import type { KeyObject } from 'node:crypto';
import type {
  ApproverRecord,
  ApproverTenants,
  BreakGlassGrant,
  PendingRecord,
  PendingStatus,
  ReviewRecord,
  VoteRecord,
} from './store.js';
import { TENANT_NAME } from './store.js';
import type { ActivityRecord, ApproverActivity, FlagReason } from './watch.js';

/** Largest stored JSON document read back (a pending body holds the redacted parameters). */
const MAX_JSON_BYTES = 8 * 1024 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;
const STATUSES: readonly PendingStatus[] = ['pending', 'approved', 'rejected', 'expired', 'issued'];

/** A column or member that is not what it should be. */
function bad(what: string): TypeError {
  return new TypeError(`stored approval state: ${what} is malformed`);
}

/** A safe integer from a number or a canonical decimal string. */
export function intOf(v: unknown, what: string): number {
  const n = typeof v === 'string' && /^-?(0|[1-9][0-9]{0,15})$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw bad(what);
  return n;
}

/** A string. */
export function textOf(v: unknown, what: string): string {
  if (typeof v !== 'string') throw bad(what);
  return v;
}

function textOrNull(v: unknown, what: string): string | null {
  return v === null ? null : textOf(v, what);
}

function hexOf(v: unknown, what: string): string {
  if (typeof v !== 'string' || !HEX64.test(v)) throw bad(what);
  return v;
}

function objectOf(v: unknown, what: string): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what);
  return v as JsonObject;
}

function objectOrNull(v: unknown, what: string): JsonObject | null {
  return v === null ? null : objectOf(v, what);
}

function stringsOf(v: unknown, what: string): readonly string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(what);
  return Object.freeze([...v]);
}

/** Parses stored JSON text (size and depth bounded). */
export function jsonOf(v: unknown, what: string): JsonValue {
  try {
    return parseJson(textOf(v, what), { maxBytes: MAX_JSON_BYTES });
  } catch {
    throw bad(what);
  }
}

/** The columns of an `approval_approvers` row. */
export interface ApproverColumns {
  readonly name: unknown;
  readonly roles: unknown;
  /** JSON: a list of tenants, or `"*"` (every tenant). */
  readonly tenants: unknown;
  readonly kid: unknown;
  readonly jwk: unknown;
  readonly status: unknown;
  readonly registered_at: unknown;
}

/** The stored text of an approver's tenants. */
export function tenantsText(tenants: ApproverTenants): string {
  return JSON.stringify(tenants === '*' ? '*' : [...new Set(tenants)].sort());
}

function tenantsOf(v: unknown): ApproverTenants {
  const t = jsonOf(v, 'approver tenants');
  if (t === '*') return '*';
  const list = stringsOf(t, 'approver tenants');
  // An empty scope is never stored: it would read as "no tenant", never as "every tenant"; and
  // a listed name is a tenant's, never `*` (every tenant) or anything else a row was altered to.
  if (list.length === 0 || !list.every((n) => TENANT_NAME.test(n))) throw bad('approver tenants');
  return list;
}

/** Parses an approver row without its key. */
export function parseApproverRow(r: ApproverColumns): ApproverRecord {
  const status = r.status;
  if (status !== 'active' && status !== 'revoked') throw bad('approver status');
  return Object.freeze({
    name: textOf(r.name, 'approver name'),
    roles: stringsOf(jsonOf(r.roles, 'approver roles'), 'approver roles'),
    tenants: tenantsOf(r.tenants),
    kid: textOf(r.kid, 'approver kid'),
    status,
    registered_at: intOf(r.registered_at, 'approver registered_at'),
  });
}

/**
 * Parses an approver row with its public key, checked again by `parsePublicJwk` (the stored
 * JWK is as untrusted as any other) and bound to the row's kid.
 */
export function parseApproverKey(r: ApproverColumns): ReturnType<typeof parsePublicJwk> {
  let key;
  try {
    key = parsePublicJwk(jsonOf(r.jwk, 'approver jwk'));
  } catch {
    throw bad('approver jwk');
  }
  if (key.kid !== r.kid) throw bad('approver kid');
  return key;
}

/** An approver with its checked public key. */
export function parseApproverWithKey(r: ApproverColumns): ApproverRecord & { readonly publicKey: KeyObject } {
  const rec = parseApproverRow(r);
  return Object.freeze({ ...rec, publicKey: parseApproverKey(r).keyObject });
}

/** The columns of an `approval_pending` row. */
export interface PendingColumns {
  readonly decision_id: unknown;
  readonly body: unknown;
  readonly status: unknown;
  readonly approvals: unknown;
  readonly grant_id: unknown;
}

/** Parses a pending approval row: the body's every member, and the row's state columns. */
export function parsePendingRow(r: PendingColumns): PendingRecord {
  const id = textOf(r.decision_id, 'pending decision_id');
  const b = objectOf(jsonOf(r.body, 'pending body'), 'pending body');
  const kind = b['kind'];
  if (kind !== 'call' && kind !== 'policy_activation') throw bad('pending kind');
  const status = r.status;
  if (typeof status !== 'string' || !STATUSES.includes(status as PendingStatus)) throw bad('pending status');
  if (textOf(b['decision_id'], 'pending body decision_id') !== id) throw bad('pending body decision_id');
  const required = intOf(b['required'], 'pending required');
  if (required < 1) throw bad('pending required');
  const ref = b['decision_ref'];
  if (ref !== null && !isLedgerRef(ref)) throw bad('pending decision_ref');
  const created_at = intOf(b['created_at'], 'pending created_at');
  const expires_at = intOf(b['expires_at'], 'pending expires_at');
  if (expires_at < created_at) throw bad('pending expires_at');
  const params_view = b['params_view'];
  if (params_view === undefined) throw bad('pending params_view');
  return Object.freeze({
    decision_id: id,
    kind: kind,
    request_id: textOf(b['request_id'], 'pending request_id'),
    trace_id: textOf(b['trace_id'], 'pending trace_id'),
    identity: textOf(b['identity'], 'pending identity'),
    owner: textOrNull(b['owner'], 'pending owner'),
    tenant: textOf(b['tenant'], 'pending tenant'),
    tool: textOf(b['tool'], 'pending tool'),
    session: textOrNull(b['session'], 'pending session'),
    params_sha256: hexOf(b['params_sha256'], 'pending params_sha256'),
    intent_sha256: hexOf(b['intent_sha256'], 'pending intent_sha256'),
    params_view,
    preview: objectOrNull(b['preview'], 'pending preview'),
    preview_sha256:
      b['preview_sha256'] === null ? null : hexOf(b['preview_sha256'], 'pending preview_sha256'),
    risk: textOf(b['risk'], 'pending risk'),
    required,
    roles: stringsOf(b['roles'], 'pending roles'),
    policy_bundle: textOrNull(b['policy_bundle'], 'pending policy_bundle'),
    decision_ref: ref === null ? null : Object.freeze({ index: ref.index, entry_hash: ref.entry_hash }),
    constraints: objectOrNull(b['constraints'], 'pending constraints'),
    created_at,
    expires_at,
    status: status as PendingStatus,
    approvals: stringsOf(jsonOf(r.approvals, 'pending approvals'), 'pending approvals'),
    grant_id: textOrNull(r.grant_id ?? null, 'pending grant_id'),
  });
}

/** The stored body of a pending approval (everything but its state columns). */
export function pendingBody(rec: PendingRecord): string {
  const { status: _s, approvals: _a, grant_id: _g, ...body } = rec;
  return JSON.stringify(body);
}

/** The columns of an `approval_votes` row. */
export interface VoteColumns {
  readonly decision_id: unknown;
  readonly approver: unknown;
  readonly verdict: unknown;
  readonly role: unknown;
  readonly method: unknown;
  readonly approval_sha256: unknown;
  readonly at: unknown;
  readonly ledger_index: unknown;
  readonly candidate: unknown;
}

/** Parses a vote row. */
export function parseVoteRow(r: VoteColumns): VoteRecord {
  const verdict = r.verdict;
  if (verdict !== 'approve' && verdict !== 'reject') throw bad('vote verdict');
  const method = r.method;
  if (method !== 'key' && method !== 'oidc') throw bad('vote method');
  const ledger_index = intOf(r.ledger_index, 'vote ledger_index');
  if (ledger_index < 0) throw bad('vote ledger_index');
  return Object.freeze({
    decision_id: textOf(r.decision_id, 'vote decision_id'),
    approver: textOf(r.approver, 'vote approver'),
    verdict,
    role: textOf(r.role, 'vote role'),
    method,
    approval_sha256: hexOf(r.approval_sha256, 'vote approval_sha256'),
    at: intOf(r.at, 'vote at'),
    ledger_index,
    candidate: objectOf(jsonOf(r.candidate, 'vote candidate'), 'vote candidate'),
  });
}

/** Parses a stored break-glass grant body. */
export function parseGrantBody(text: unknown): BreakGlassGrant {
  const g = objectOf(jsonOf(text, 'grant body'), 'grant body');
  const created_at = intOf(g['created_at'], 'grant created_at');
  const expires_at = intOf(g['expires_at'], 'grant expires_at');
  if (expires_at < created_at) throw bad('grant expires_at');
  return Object.freeze({
    grant_id: textOf(g['grant_id'], 'grant grant_id'),
    approver: textOf(g['approver'], 'grant approver'),
    role: textOf(g['role'], 'grant role'),
    tenant: textOf(g['tenant'], 'grant tenant'),
    tool: textOf(g['tool'], 'grant tool'),
    reason_category: textOf(g['reason_category'], 'grant reason_category'),
    reason: textOf(g['reason'], 'grant reason'),
    created_at,
    expires_at,
    ledger_index: intOf(g['ledger_index'], 'grant ledger_index'),
    statement_sha256: hexOf(g['statement_sha256'], 'grant statement_sha256'),
  });
}

/** Parses a stored review body; its status must agree with the row's status column. */
export function parseReviewBody(text: unknown, statusColumn?: unknown): ReviewRecord {
  const r = objectOf(jsonOf(text, 'review body'), 'review body');
  const status = r['status'];
  if (status !== 'open' && status !== 'closed') throw bad('review status');
  if (statusColumn !== undefined && statusColumn !== status) throw bad('review status');
  const closed_at = r['closed_at'] === null ? null : intOf(r['closed_at'], 'review closed_at');
  return Object.freeze({
    review_id: textOf(r['review_id'], 'review review_id'),
    grant_id: textOf(r['grant_id'], 'review grant_id'),
    decision_id: textOf(r['decision_id'], 'review decision_id'),
    opened_for: textOf(r['opened_for'], 'review opened_for'),
    opened_at: intOf(r['opened_at'], 'review opened_at'),
    status,
    closed_by: textOrNull(r['closed_by'], 'review closed_by'),
    closed_at,
    notes: textOrNull(r['notes'], 'review notes'),
  });
}

/** Columns of an `approval_activity` row. */
export interface ActivityColumns {
  readonly decision_id: unknown;
  readonly approver: unknown;
  readonly tenant: unknown;
  readonly at: unknown;
  readonly flags: unknown;
  readonly extra: unknown;
}

const FLAG_REASONS: readonly FlagReason[] = ['unviewed_quick', 'burst', 'new_tenant', 'unusual_hour'];

/** Parses an `approval_activity` row. */
export function parseActivityRow(r: ActivityColumns): ActivityRecord {
  const flags = jsonOf(r.flags, 'approval_activity.flags');
  if (!Array.isArray(flags) || !flags.every((f) => FLAG_REASONS.includes(f as FlagReason)))
    throw bad('approval_activity.flags');
  const extra = intOf(r.extra, 'approval_activity.extra');
  if (extra !== 0 && extra !== 1) throw bad('approval_activity.extra');
  return Object.freeze({
    decision_id: textOf(r.decision_id, 'approval_activity.decision_id'),
    approver: textOf(r.approver, 'approval_activity.approver'),
    tenant: textOf(r.tenant, 'approval_activity.tenant'),
    at: intOf(r.at, 'approval_activity.at'),
    flags: Object.freeze(flags as FlagReason[]),
    extra: extra === 1,
  });
}

/** An approver's activity from its query results (counts, distinct tenants, distinct hours). */
export function parseActivity(
  total: unknown,
  recent: unknown,
  tenants: unknown[],
  hours: unknown[],
): ApproverActivity {
  const hs = hours.map((h) => intOf(h, 'approval_activity.hour'));
  if (!hs.every((h) => h >= 0 && h <= 23)) throw bad('approval_activity.hour');
  return Object.freeze({
    total: intOf(total, 'approval_activity count'),
    recent: intOf(recent, 'approval_activity count'),
    tenants: Object.freeze(tenants.map((t) => textOf(t, 'approval_activity.tenant'))),
    hours: Object.freeze(hs),
  });
}
