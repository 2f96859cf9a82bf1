/**
 * The bytes the browser signs, built in the browser from the statement it shows (OE-INV-019,
 * docs/approvals.md "The signed approval"): the same context strings and RFC 8785 canonical JSON
 * as `approvalSigningInput`, `breakGlassSigningInput` and `reviewSigningInput` in
 * src/kernel/approval.ts, compared byte for
 * byte by test/console/statement.test.ts. Pure: no DOM, no network.
 */

/** A JSON value as statements use it. */
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };

/** Context string of an approval signature (src/kernel/approval.ts APPROVAL_SIGNING_CONTEXT). */
export const APPROVAL_CONTEXT = 'failclosed-approval-v1\n';
/** Context string of a break-glass signature (src/kernel/approval.ts BREAK_GLASS_SIGNING_CONTEXT). */
export const BREAK_GLASS_CONTEXT = 'failclosed-break-glass-v1\n';
/** Context string of a review closing signature (src/kernel/approval.ts REVIEW_SIGNING_CONTEXT). */
export const REVIEW_CONTEXT = 'failclosed-review-v1\n';
/** Context string of a console sign-in signature (src/console/service.ts SIGN_IN_CONTEXT). */
export const SIGN_IN_CONTEXT = 'failclosed-console-sign-in-v1\n';

/** The approval statement: exactly these members. */
export interface ApprovalStatement {
  readonly decision_id: string;
  readonly intent_sha256: string;
  readonly preview_sha256: string | null;
  readonly verdict: 'approve' | 'reject';
  readonly justification: string;
  readonly timestamp: string;
  readonly approver: string;
}

/** A break-glass request (L7 Break-glass): exactly these members. */
export interface BreakGlassStatement {
  readonly approver: string;
  /** The tenant the grant is scoped to. */
  readonly tenant: string;
  /** The tool the grant is scoped to. */
  readonly tool: string;
  readonly reason_category: string;
  readonly reason: string;
  readonly ttl_sec: number;
  readonly timestamp: string;
}

/** Closing a post-incident review item (L7 Break-glass): exactly these members. */
export interface ReviewStatement {
  readonly review_id: string;
  readonly reviewer: string;
  readonly notes: string;
  readonly timestamp: string;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(s: string): string {
  // A lone surrogate has no UTF-8 form: refused, as the kernel refuses it.
  if (LONE_SURROGATE.test(s)) throw new TypeError('a string holds a lone surrogate');
  // RFC 8785 §3.2.2.2 is ECMAScript's JSON.stringify for well-formed strings.
  return JSON.stringify(s);
}

/**
 * RFC 8785 canonical JSON of `value`: members sorted by UTF-16 code units, minimal escaping, no
 * whitespace. Numbers: only safe integers by default (what is signed here carries no other), or,
 * with `numbers: 'finite'` (re-hashing ledger records), any finite number as ECMAScript writes
 * it (RFC 8785 §3.2.2.3). Throws `TypeError` otherwise.
 */
export function canonicalJson(value: Json, options: { readonly numbers?: 'safe' | 'finite' } = {}): string {
  const finite = options.numbers === 'finite';
  const encode = (v: Json): string => canonicalJson(v, options);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (finite ? !Number.isFinite(value) : !Number.isSafeInteger(value))
        throw new TypeError('this number is not encoded here');
      return String(value);
    default:
      break;
  }
  if (Array.isArray(value)) return `[${(value as readonly Json[]).map(encode).join(',')}]`;
  const o = value as { readonly [key: string]: Json };
  // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks.
  const keys = Object.keys(o).sort();
  return `{${keys.map((k) => `${encodeString(k)}:${encode(o[k] ?? null)}`).join(',')}}`;
}

function concat(context: string, text: string): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder();
  const a = enc.encode(context);
  const b = enc.encode(text);
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The bytes an approver signs: context || RFC 8785 of exactly the statement's members. */
export function approvalSigningInput(s: ApprovalStatement): Uint8Array<ArrayBuffer> {
  return concat(
    APPROVAL_CONTEXT,
    canonicalJson({
      decision_id: s.decision_id,
      intent_sha256: s.intent_sha256,
      preview_sha256: s.preview_sha256,
      verdict: s.verdict,
      justification: s.justification,
      timestamp: s.timestamp,
      approver: s.approver,
    }),
  );
}

/**
 * The bytes a reviewer signs to close a review item: context || RFC 8785 of exactly the
 * statement's members, what `failclosed reviews close` signs (L7 "mandatory post-incident review").
 */
export function reviewSigningInput(s: ReviewStatement): Uint8Array<ArrayBuffer> {
  return concat(
    REVIEW_CONTEXT,
    canonicalJson({ review_id: s.review_id, reviewer: s.reviewer, notes: s.notes, timestamp: s.timestamp }),
  );
}

/**
 * The bytes an approver signs to break glass: context || RFC 8785 of exactly the statement's
 * members, what `failclosed break-glass` signs (L7 Break-glass).
 */
export function breakGlassSigningInput(s: BreakGlassStatement): Uint8Array<ArrayBuffer> {
  return concat(
    BREAK_GLASS_CONTEXT,
    canonicalJson({
      approver: s.approver,
      tenant: s.tenant,
      tool: s.tool,
      reason_category: s.reason_category,
      reason: s.reason,
      ttl_sec: s.ttl_sec,
      timestamp: s.timestamp,
    }),
  );
}

/** The bytes a device key signs to sign in: context || RFC 8785 `{challenge, name}`. */
export function signInInput(name: string, challenge: string): Uint8Array<ArrayBuffer> {
  return concat(SIGN_IN_CONTEXT, canonicalJson({ challenge, name }));
}

/** base64url without padding (RFC 4648 §5). */
export function toBase64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `intent_sha256` of a call, as src/kernel/approval.ts `intentSha256` computes it. */
export function intentDigest(intent: {
  readonly tool: string;
  readonly tenant: string;
  readonly params_sha256: string;
}): Promise<string> {
  return sha256Hex(
    canonicalJson({ tool: intent.tool, tenant: intent.tenant, params_sha256: intent.params_sha256 }),
  );
}

/** `preview_sha256` of a preview, as src/control-plane/approvals/preview.ts `previewDigest` computes it. */
export function previewDigest(preview: { readonly [key: string]: Json }): Promise<string> {
  return sha256Hex(canonicalJson(preview, { numbers: 'finite' }));
}

/**
 * Why the shown approval must not be signed, or undefined: the `intent_sha256` and
 * `preview_sha256` a statement carries are recomputed here from the tool, tenant, parameter hash
 * and preview the page shows; a statement whose digests are not those of what is shown is never
 * signed (the approver signs what they read, OE-INV-018/019).
 */
export async function shownMismatch(item: { readonly [key: string]: unknown }): Promise<string | undefined> {
  const { tool, tenant, params_sha256: params, intent_sha256: intent } = item;
  if (typeof tool !== 'string' || typeof tenant !== 'string' || typeof params !== 'string')
    return 'the tool, tenant or parameter hash is missing';
  if (typeof intent !== 'string' || (await intentDigest({ tool, tenant, params_sha256: params })) !== intent)
    return 'intent_sha256 is not the digest of the shown tool, tenant and parameters';
  const preview = item['preview'];
  const digest = item['preview_sha256'];
  if (preview === null || preview === undefined)
    return digest === null || digest === undefined ? undefined : 'a preview digest without a preview';
  if (typeof preview !== 'object' || Array.isArray(preview)) return 'the preview is malformed';
  const p = preview as { readonly [key: string]: Json };
  if (p['tool'] !== tool || p['tenant'] !== tenant || p['params_sha256'] !== params)
    return 'the preview is of another call than the one shown';
  let computed: string;
  try {
    computed = await previewDigest(p);
  } catch {
    return 'the preview cannot be hashed';
  }
  return computed === digest ? undefined : 'preview_sha256 is not the digest of the shown preview';
}
