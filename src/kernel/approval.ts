/**
 * Signed human statements (OE-INV-019/020, L7 Identity & Signing, L7 Break-glass): the approval
 * an approver signs over a decision, the break-glass request of an L4/L5 role, and the closing
 * of a post-incident review. Each is an RFC 8785 canonical JSON object signed with Ed25519
 * behind its own context string, so no statement can ever pass for a request, an envelope or
 * another kind of statement. Shared by the approver client, the Control Plane and the offline
 * verifier; pure, no I/O. See docs/approvals.md.
 */
import { canonicalBytes, canonicalize } from './canonical.js';
import { sha256Hex } from './hash.js';
import type { JsonObject, JsonValue } from './json.js';

/** Context string of an approval signature (L7 "approver signs decision_id + intent + timestamp"). */
export const APPROVAL_SIGNING_CONTEXT = 'failclosed-approval-v1\n';
/** Context string of a break-glass request signature (L7 Break-glass). */
export const BREAK_GLASS_SIGNING_CONTEXT = 'failclosed-break-glass-v1\n';
/** Context string of a review closing signature (L7 "mandatory post-incident review"). */
export const REVIEW_SIGNING_CONTEXT = 'failclosed-review-v1\n';

/** What an approver says about a decision. */
export type ApprovalVerdict = 'approve' | 'reject';

/** The approval statement (OE-INV-019): exactly these members. */
export interface ApprovalStatement {
  readonly decision_id: string;
  /** {@link intentSha256} of the call's tool, tenant and parameter hash. */
  readonly intent_sha256: string;
  /** SHA-256 of the canonical preview shown to approvers (OE-INV-018), or null without one. */
  readonly preview_sha256: string | null;
  readonly verdict: ApprovalVerdict;
  readonly justification: string;
  /** RFC 3339 UTC with milliseconds, when the approver signed. */
  readonly timestamp: string;
  /** The approver's name (registered) or `oidc:<sub>`. */
  readonly approver: string;
}

/** A break-glass request (L7): an L4/L5 role, a structured reason, a short TTL, one target and action class. */
export interface BreakGlassStatement {
  readonly approver: string;
  /** The target: the tenant the grant is scoped to. */
  readonly tenant: string;
  /** The action class: the tool the grant is scoped to. */
  readonly tool: string;
  readonly reason_category: string;
  readonly reason: string;
  readonly ttl_sec: number;
  readonly timestamp: string;
}

/** Closing a post-incident review item (L7 Break-glass "Review"). */
export interface ReviewStatement {
  readonly review_id: string;
  readonly reviewer: string;
  readonly notes: string;
  readonly timestamp: string;
}

/** Longest justification, reason or notes text (UTF-16 code units). */
export const STATEMENT_TEXT_MAX = 1000;

const HEX64 = /^[0-9a-f]{64}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * SHA-256 (lower hex) of the canonical `{tool, tenant, params_sha256}`: what an approval binds
 * to, so an approval for one call can never count for another tool, tenant or parameter set.
 */
export function intentSha256(intent: {
  readonly tool: string;
  readonly tenant: string;
  readonly params_sha256: string;
}): string {
  return sha256Hex(
    canonicalize({ tool: intent.tool, tenant: intent.tenant, params_sha256: intent.params_sha256 }),
  );
}

function input(context: string, value: JsonValue): Buffer {
  return Buffer.concat([Buffer.from(context, 'utf8'), canonicalBytes(value)]);
}

/** The bytes an approver signs: {@link APPROVAL_SIGNING_CONTEXT} || RFC 8785 of the statement. */
export function approvalSigningInput(s: ApprovalStatement): Buffer {
  return input(APPROVAL_SIGNING_CONTEXT, { ...s });
}

/** The bytes a break-glass requester signs. */
export function breakGlassSigningInput(s: BreakGlassStatement): Buffer {
  return input(BREAK_GLASS_SIGNING_CONTEXT, { ...s });
}

/** The bytes a reviewer signs. */
export function reviewSigningInput(s: ReviewStatement): Buffer {
  return input(REVIEW_SIGNING_CONTEXT, { ...s });
}

/** Parses an RFC 3339 millisecond UTC timestamp that round-trips exactly; undefined otherwise. */
export function parseStatementTimestamp(v: unknown): number | undefined {
  if (typeof v !== 'string' || !TIMESTAMP.test(v)) return undefined;
  const ms = Date.parse(v);
  return Number.isFinite(ms) && new Date(ms).toISOString() === v ? ms : undefined;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function exactly(o: JsonObject, names: readonly string[]): boolean {
  const keys = Object.keys(o);
  return keys.length === names.length && names.every((n) => Object.hasOwn(o, n));
}

const text = (v: unknown): v is string =>
  typeof v === 'string' && v.trim().length > 0 && v.length <= STATEMENT_TEXT_MAX;

/** Parses an untrusted approval statement: exactly its members, each well formed; undefined otherwise. */
export function parseApprovalStatement(v: unknown): ApprovalStatement | undefined {
  // Attacker-controlled: the body of an approval submission or a bundle's evidence.
  if (
    !isObject(v) ||
    !exactly(v, [
      'decision_id',
      'intent_sha256',
      'preview_sha256',
      'verdict',
      'justification',
      'timestamp',
      'approver',
    ])
  ) {
    return undefined;
  }
  const { decision_id, intent_sha256, preview_sha256, verdict, justification, timestamp, approver } = v;
  if (typeof decision_id !== 'string' || !ID.test(decision_id)) return undefined;
  if (typeof intent_sha256 !== 'string' || !HEX64.test(intent_sha256)) return undefined;
  if (preview_sha256 !== null && (typeof preview_sha256 !== 'string' || !HEX64.test(preview_sha256)))
    return undefined;
  if (verdict !== 'approve' && verdict !== 'reject') return undefined;
  if (!text(justification) || parseStatementTimestamp(timestamp) === undefined) return undefined;
  if (typeof approver !== 'string' || !NAME.test(approver)) return undefined;
  return Object.freeze({
    decision_id,
    intent_sha256,
    preview_sha256,
    verdict,
    justification,
    timestamp: timestamp as string,
    approver,
  });
}

/** Parses an untrusted break-glass statement; undefined when a member is missing, extra or malformed. */
export function parseBreakGlassStatement(v: unknown): BreakGlassStatement | undefined {
  if (
    !isObject(v) ||
    !exactly(v, ['approver', 'tenant', 'tool', 'reason_category', 'reason', 'ttl_sec', 'timestamp'])
  )
    return undefined;
  const { approver, tenant, tool, reason_category, reason, ttl_sec, timestamp } = v;
  if (typeof approver !== 'string' || !NAME.test(approver)) return undefined;
  if (typeof tenant !== 'string' || !ID.test(tenant) || typeof tool !== 'string' || !ID.test(tool))
    return undefined;
  if (typeof reason_category !== 'string' || !/^[a-z][a-z0-9_-]{0,63}$/.test(reason_category))
    return undefined;
  if (!text(reason) || typeof ttl_sec !== 'number' || !Number.isSafeInteger(ttl_sec)) return undefined;
  if (parseStatementTimestamp(timestamp) === undefined) return undefined;
  return Object.freeze({
    approver,
    tenant,
    tool,
    reason_category,
    reason,
    ttl_sec,
    timestamp: timestamp as string,
  });
}

/** Parses an untrusted review statement. */
export function parseReviewStatement(v: unknown): ReviewStatement | undefined {
  if (!isObject(v) || !exactly(v, ['review_id', 'reviewer', 'notes', 'timestamp'])) return undefined;
  const { review_id, reviewer, notes, timestamp } = v;
  if (typeof review_id !== 'string' || !ID.test(review_id)) return undefined;
  if (typeof reviewer !== 'string' || !NAME.test(reviewer) || !text(notes)) return undefined;
  if (parseStatementTimestamp(timestamp) === undefined) return undefined;
  return Object.freeze({ review_id, reviewer, notes, timestamp: timestamp as string });
}
