/**
 * Approval envelope verification at the Execution Layer, in SPEC §3's order up to the policy
 * bundle check. Ledger confirmation and nonce consumption follow in the Execution Layer.
 * Needs public keys only; imports nothing that signs (SPEC §1, GEI).
 */
import type { KeyObject } from 'node:crypto';
import { canonicalize } from '../canonical.js';
import type { Clock } from '../clock.js';
import { deny, FailclosedError, type Deny } from '../errors.js';
import { decodeBase64url } from '../base64url.js';
import { hexDigestEquals } from '../hash.js';
import { parseJson, type JsonValue } from '../json.js';
import { verifyEd25519, verifyEd25519Async, type KeyRing } from '../keys.js';
import {
  computeParamsSha256,
  encodeEnvelopeClaims,
  ENVELOPE_ALG,
  ENVELOPE_MAX_LENGTH,
  ENVELOPE_TYP,
  CLAIM_MAX_STRING,
  freezeClaims,
  isEnvelopeClaims,
  type EnvelopeClaims,
  type EnvelopeHeader,
} from './claims.js';

/** What the verifier checks an envelope against. */
export interface VerifyEnvelopeContext {
  /** Pinned issuer keys with their revocations. */
  readonly keys: KeyRing;
  /** This executor's identity; `aud` must equal it. */
  readonly audience: string;
  readonly now: Clock;
  /** Allowed clock skew for `iat` and `exp`, whole seconds ≥ 0. */
  readonly clockToleranceSec: number;
  /** Longest allowed `exp − iat`, whole seconds > 0. */
  readonly maxLifetimeSec: number;
  /** The call about to run. */
  readonly call: { readonly tool: string; readonly tenant: string; readonly params: JsonValue };
  /** True only for a policy bundle hash this executor knows. */
  readonly isKnownPolicyBundle: (hash: string) => boolean;
}

/** A verified envelope: header and frozen claims. */
export interface VerifiedEnvelope {
  readonly outcome: 'allow';
  readonly header: EnvelopeHeader;
  readonly claims: EnvelopeClaims;
}

interface CompactParts {
  readonly headerSegment: string;
  readonly headerBytes: Buffer;
  readonly payloadBytes: Buffer;
  readonly signature: Buffer;
  readonly signingInput: Buffer;
}

const ALLOWED_HEADER = new Set(['alg', 'kid', 'typ']);
const HEADER_CACHE_MAX = 256;
// Header validity is a pure function of the segment text, so validated segments are cached.
const validHeaders = new Map<string, EnvelopeHeader>();

/**
 * Test-only: the validated-header cache's size and its bound, so a test can check that a cache
 * an attacker can feed distinct valid headers stays bounded. Not exported from the kernel index.
 */
export function headerCacheStateForTesting(): { readonly size: number; readonly max: number } {
  return { size: validHeaders.size, max: HEADER_CACHE_MAX };
}

/** Step 1: a well-formed compact JWS, length-limited before any decoding. */
function splitCompact(token: unknown): CompactParts | Deny {
  if (token === undefined || token === null || token === '')
    return deny('ERR_ENVELOPE_MISSING', 'no envelope');
  if (typeof token !== 'string') return deny('ERR_ENVELOPE_MALFORMED', 'envelope is not a string');
  if (token.length > ENVELOPE_MAX_LENGTH) return deny('ERR_ENVELOPE_MALFORMED', 'envelope too long');
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first <= 0 || second <= first + 1 || token.indexOf('.', second + 1) !== -1) {
    return deny('ERR_ENVELOPE_MALFORMED', 'not three compact JWS segments');
  }
  // Attacker-controlled: every segment must be strict unpadded base64url.
  const headerSegment = token.slice(0, first);
  const headerBytes = decodeBase64url(headerSegment);
  const payloadBytes = decodeBase64url(token.slice(first + 1, second));
  const signature = decodeBase64url(token.slice(second + 1));
  if (headerBytes === undefined || payloadBytes === undefined || signature === undefined) {
    return deny('ERR_ENVELOPE_MALFORMED', 'a segment is not strict base64url');
  }
  // Stryker disable next-line StringLiteral: equivalent, the segments passed strict base64url, so the input is ASCII and latin1 equals the UTF-8 default
  const signingInput = Buffer.from(token.slice(0, second), 'latin1');
  return { headerSegment, headerBytes, payloadBytes, signature, signingInput };
}

/** Step 2: exactly `alg`, `kid`, `typ`, canonically encoded; no `crit`, `jku`, `x5u`, `jwk`, `b64`. */
function checkHeader(segment: string, bytes: Buffer): EnvelopeHeader | Deny {
  const cached = validHeaders.get(segment);
  if (cached !== undefined) return cached;
  let parsed: JsonValue;
  try {
    // Attacker-controlled: the strict parser refuses duplicate keys (SPEC §8, jose pitfall).
    parsed = parseJson(bytes, { maxBytes: 1024, maxDepth: 4 });
  } catch (err) {
    const duplicate = err instanceof FailclosedError && err.code === 'ERR_JSON_DUPLICATE_KEY';
    return duplicate
      ? deny('ERR_ENVELOPE_NONCANONICAL', 'header repeats a member')
      : deny('ERR_ENVELOPE_MALFORMED', 'header is not strict JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return deny('ERR_ENVELOPE_MALFORMED', 'header is not an object');
  }
  const header = parsed as Readonly<Record<string, JsonValue>>;
  if (header.alg !== ENVELOPE_ALG) return deny('ERR_ENVELOPE_ALG', 'alg is not EdDSA');
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADER.has(name)) return deny('ERR_ENVELOPE_HEADER_FORBIDDEN', 'forbidden header parameter');
  }
  if (header.typ !== ENVELOPE_TYP) return deny('ERR_ENVELOPE_TYP', 'typ is not the envelope type');
  const kid = header.kid;
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > CLAIM_MAX_STRING) {
    return deny('ERR_ENVELOPE_KID_UNKNOWN', 'header kid is missing or malformed');
  }
  // Stryker disable next-line StringLiteral: equivalent, Buffer.from(string, '') encodes UTF-8, the default
  if (!Buffer.from(canonicalize(header), 'utf8').equals(bytes)) {
    return deny('ERR_ENVELOPE_NONCANONICAL', 'header bytes are not canonical');
  }
  const result: EnvelopeHeader = Object.freeze({ alg: ENVELOPE_ALG, kid, typ: ENVELOPE_TYP });
  if (validHeaders.size >= HEADER_CACHE_MAX) validHeaders.clear();
  validHeaders.set(segment, result);
  return result;
}

/**
 * Steps 5 and 6: the payload bytes are exactly the canonical encoding of the parsed payload, and
 * the payload is typed claims. Valid claims take the fixed-order encoder; anything else the
 * generic one, so the outcome is the same as canonicalize-then-type-check.
 */
function parsePayload(bytes: Buffer): EnvelopeClaims | Deny {
  let parsed: unknown;
  // Stryker disable next-line BooleanLiteral: equivalent, always reassigned unless JSON.parse throws, and then canonical stays false and denies first
  let typed = false;
  let canonical = false;
  try {
    // Attacker-controlled but signed. JSON.parse keeps the last duplicate and rounds big numbers;
    // either makes the re-encoding differ from the bytes, so the byte comparison refuses both.
    parsed = JSON.parse(bytes.toString('utf8'));
    typed = isEnvelopeClaims(parsed);
    const encoded = typed
      ? encodeEnvelopeClaims(parsed as EnvelopeClaims)
      : canonicalize(parsed as JsonValue);
    // Stryker disable next-line StringLiteral: equivalent, Buffer.from(string, '') encodes UTF-8, the default
    canonical = Buffer.from(encoded, 'utf8').equals(bytes);
  } catch {
    // Not JSON, or not encodable: not canonical.
  }
  if (!canonical) return deny('ERR_ENVELOPE_NONCANONICAL', 'payload bytes are not canonical');
  if (!typed) return deny('ERR_ENVELOPE_CLAIMS', 'claims are missing, unexpected or mistyped');
  return parsed as EnvelopeClaims;
}

function checkContext(ctx: VerifyEnvelopeContext): boolean {
  return (
    Number.isSafeInteger(ctx.clockToleranceSec) &&
    ctx.clockToleranceSec >= 0 &&
    Number.isSafeInteger(ctx.maxLifetimeSec) &&
    ctx.maxLifetimeSec > 0 &&
    typeof ctx.audience === 'string' &&
    ctx.audience.length > 0
  );
}

/** Steps 7-11 on typed claims: audience, time, tool, tenant, parameters, policy bundle. */
function checkBinding(claims: EnvelopeClaims, ctx: VerifyEnvelopeContext): Deny | undefined {
  if (claims.aud !== ctx.audience) return deny('ERR_ENVELOPE_AUDIENCE', 'envelope is for another executor');
  const nowMs = ctx.now();
  if (!Number.isFinite(nowMs)) return deny('ERR_INTERNAL', 'clock returned no time');
  const toleranceMs = ctx.clockToleranceSec * 1000;
  if (claims.iat * 1000 > nowMs + toleranceMs)
    return deny('ERR_ENVELOPE_NOT_YET_VALID', 'iat is in the future');
  if (nowMs >= claims.exp * 1000 + toleranceMs) return deny('ERR_ENVELOPE_EXPIRED', 'envelope expired');
  const lifetime = claims.exp - claims.iat;
  if (lifetime <= 0 || lifetime > ctx.maxLifetimeSec)
    return deny('ERR_ENVELOPE_LIFETIME', 'lifetime out of range');
  if (claims.tool !== ctx.call.tool)
    return deny('ERR_ENVELOPE_TOOL_MISMATCH', 'envelope is for another tool');
  if (claims.tenant !== ctx.call.tenant)
    return deny('ERR_ENVELOPE_TENANT_MISMATCH', 'envelope is for another tenant');
  let paramsHash: string;
  try {
    paramsHash = computeParamsSha256(ctx.call.params);
  } catch {
    return deny('ERR_ENVELOPE_PARAMS_MISMATCH', 'parameters cannot be canonicalized');
  }
  if (!hexDigestEquals(paramsHash, claims.params_sha256)) {
    return deny('ERR_ENVELOPE_PARAMS_MISMATCH', 'parameters differ from the approved ones');
  }
  if (ctx.isKnownPolicyBundle(claims.policy_bundle) !== true) {
    return deny('ERR_ENVELOPE_POLICY_UNKNOWN', 'unknown policy bundle');
  }
  return undefined;
}

/** What the steps before the signature found: the parts, the header and the pinned key. */
interface Signed {
  readonly parts: CompactParts;
  readonly header: EnvelopeHeader;
  readonly key: KeyObject;
}

/** Step 3: the key `kid` names, pinned and unrevoked. */
function pinnedKey(ctx: VerifyEnvelopeContext, kid: string): KeyObject | Deny {
  const found = ctx.keys.lookup(kid);
  if (found.status === 'revoked') return deny('ERR_ENVELOPE_KID_REVOKED', 'issuer key is revoked');
  if (found.status !== 'active') return deny('ERR_ENVELOPE_KID_UNKNOWN', 'issuer key is not pinned');
  return found.key;
}

/** Steps 1-3: the context, the compact form, the header, the pinned and unrevoked key. */
function beforeSignature(token: unknown, ctx: VerifyEnvelopeContext): Signed | Deny {
  if (!checkContext(ctx)) return deny('ERR_INTERNAL', 'verifier is misconfigured');
  const parts = splitCompact(token);
  if ('outcome' in parts) return parts;
  const header = checkHeader(parts.headerSegment, parts.headerBytes);
  if ('outcome' in header) return header;
  const key = pinnedKey(ctx, header.kid);
  if ('outcome' in key) return key;
  return { parts, header, key };
}

/** The steps after a verified signature: payload, claims, binding. */
function afterSignature(s: Signed, ctx: VerifyEnvelopeContext): VerifiedEnvelope | Deny {
  const payload = parsePayload(s.parts.payloadBytes);
  if ('outcome' in payload) return payload;
  const failed = checkBinding(payload, ctx);
  if (failed !== undefined) return failed;
  return Object.freeze({ outcome: 'allow', header: s.header, claims: freezeClaims(payload) });
}

const BAD_SIGNATURE = (): Deny => deny('ERR_ENVELOPE_SIGNATURE', 'signature does not verify');

function verifySteps(token: unknown, ctx: VerifyEnvelopeContext): VerifiedEnvelope | Deny {
  const s = beforeSignature(token, ctx);
  if ('outcome' in s) return s;
  if (!verifyEd25519(s.key, s.parts.signingInput, s.parts.signature)) return BAD_SIGNATURE();
  return afterSignature(s, ctx);
}

/**
 * Verifies an approval envelope against the call about to run, in SPEC §3's order: well-formed
 * compact JWS (`ERR_ENVELOPE_MISSING`, `ERR_ENVELOPE_MALFORMED`) → header exactly
 * `alg`/`kid`/`typ`, canonical (`ERR_ENVELOPE_ALG`, `ERR_ENVELOPE_HEADER_FORBIDDEN`,
 * `ERR_ENVELOPE_TYP`, `ERR_ENVELOPE_NONCANONICAL`) → pinned, unrevoked kid
 * (`ERR_ENVELOPE_KID_UNKNOWN`, `ERR_ENVELOPE_KID_REVOKED`) → Ed25519 signature
 * (`ERR_ENVELOPE_SIGNATURE`) → canonical payload bytes (`ERR_ENVELOPE_NONCANONICAL`) → claims
 * present and typed (`ERR_ENVELOPE_CLAIMS`) → `aud` (`ERR_ENVELOPE_AUDIENCE`) → `iat`/`exp`
 * and lifetime (`ERR_ENVELOPE_NOT_YET_VALID`, `ERR_ENVELOPE_EXPIRED`, `ERR_ENVELOPE_LIFETIME`) →
 * tool, tenant (`ERR_ENVELOPE_TOOL_MISMATCH`, `ERR_ENVELOPE_TENANT_MISMATCH`) → parameter hash,
 * constant time (`ERR_ENVELOPE_PARAMS_MISMATCH`) → policy bundle (`ERR_ENVELOPE_POLICY_UNKNOWN`).
 * Never throws: anything unexpected is `ERR_INTERNAL`. (SPEC §3, FC-INV-4, OE-INV-003, GEI)
 */
export function verifyEnvelope(token: unknown, ctx: VerifyEnvelopeContext): VerifiedEnvelope | Deny {
  try {
    return verifySteps(token, ctx);
  } catch {
    return deny('ERR_INTERNAL', 'envelope verification failed unexpectedly');
  }
}

/**
 * {@link verifyEnvelope}, in the same order with the same codes, the signature checked on libuv's
 * thread pool ({@link verifyEd25519Async}): the executor's hot path. The clock is read after the
 * signature, as in the synchronous form, and so is the key's status once more: a kid revoked (or
 * no longer known) while the signature was being checked denies, as it would have a moment later
 * in the synchronous form. Never rejects: anything unexpected is `ERR_INTERNAL`.
 */
export async function verifyEnvelopeAsync(
  token: unknown,
  ctx: VerifyEnvelopeContext,
): Promise<VerifiedEnvelope | Deny> {
  try {
    const s = beforeSignature(token, ctx);
    if ('outcome' in s) return s;
    if (!(await verifyEd25519Async(s.key, s.parts.signingInput, s.parts.signature))) return BAD_SIGNATURE();
    // Step 3 again: the status may have changed while the signature was on the pool.
    const still = pinnedKey(ctx, s.header.kid);
    if ('outcome' in still) return still;
    return afterSignature(s, ctx);
  } catch {
    return deny('ERR_INTERNAL', 'envelope verification failed unexpectedly');
  }
}
