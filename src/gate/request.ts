/**
 * The signed request format (docs/request-format.md, SPEC §2 step 1, FC-INV-3): parsing the
 * untrusted body into a frozen {@link SignedRequest} and rebuilding the exact bytes the client
 * signed. Everything here runs before the client is even looked up.
 */
import {
  decodeBase64url,
  deny,
  denyFromError,
  parseJson,
  REQUEST_FIELDS,
  REQUEST_SIGNING_CONTEXT,
  requestSigningInput,
  requestTraceId,
  REQUEST_NAME,
} from '../kernel/index.js';
import type { Deny, JsonObject, JsonValue, SignedRequest } from '../kernel/index.js';

/** Re-exported: the one request format (src/kernel/request.ts). */
export { REQUEST_SIGNING_CONTEXT, requestSigningInput };

/** Largest accepted request body in bytes, checked before parsing (256 KiB). */
export const MAX_REQUEST_BYTES = 256 * 1024;

/** Deepest accepted nesting of the body (the request object is level 1). */
export const MAX_REQUEST_DEPTH = 32;

/** A signed request as parsed from the wire: every field present, exactly typed, nothing else. */
export type { SignedRequest };

/** A parsed request with the values the Gate derives from it. */
export interface ParsedRequest {
  readonly request: SignedRequest;
  /** `timestamp` as milliseconds since the epoch. */
  readonly timestampMs: number;
  /** The raw signature bytes (64). */
  readonly signatureBytes: Buffer;
  /** First 32 hex characters of SHA-256 over the canonical signed request (signature included). */
  readonly trace_id: string;
}

const FIELDS = REQUEST_FIELDS;
const FIELD_SET: ReadonlySet<string> = new Set(FIELDS);

const ID = /^[A-Za-z0-9._:-]{1,128}$/;
/**
 * The prefix of the ids the Gate records a request under when its own id holds a secret
 * (`redactedId` in gate.ts): no client may use it, so no request is ever read as another's.
 */
export const REDACTED_ID_PREFIX = 'redacted-';
const IDENTITY = /^[A-Za-z0-9._:@-]{1,128}$/;
const NAME = REQUEST_NAME;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MIN_NONCE_BYTES = 16;
const MAX_NONCE_BYTES = 64;
const SIGNATURE_BYTES = 64;

/** `trace_id` of a request: the first 32 hex characters of SHA-256 over its canonical form (signature included). */
export function traceIdOf(request: SignedRequest): string {
  return requestTraceId(request);
}

/** Parses an RFC 3339 UTC timestamp with exactly three fractional digits and `Z`; undefined otherwise. */
export function parseRequestTimestamp(text: string): number | undefined {
  if (!TIMESTAMP.test(text)) return undefined;
  const ms = Date.parse(text);
  // Round-trip so that 2024-02-30 and 24:00:00 are refused rather than normalised.
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== text) return undefined;
  return ms;
}

/**
 * Parses an untrusted request body. Denies with `ERR_REQUEST_TOO_LARGE` (over
 * {@link MAX_REQUEST_BYTES}), the strict parser's `ERR_JSON_*` codes (duplicate keys, unsafe
 * numbers, invalid UTF-8, depth), and `ERR_REQUEST_MALFORMED` for a missing, extra or mistyped
 * field (FC-INV-3). Signature, client and freshness are checked by the Gate afterwards.
 */
export function parseSignedRequest(body: Uint8Array): ParsedRequest | Deny {
  if (body.byteLength > MAX_REQUEST_BYTES) return deny('ERR_REQUEST_TOO_LARGE', 'request body too large');
  let value: JsonValue;
  try {
    // Attacker-controlled bytes: the strict parser rejects duplicate keys and ambiguous numbers.
    value = parseJson(body, { maxBytes: MAX_REQUEST_BYTES, maxDepth: MAX_REQUEST_DEPTH });
  } catch (err) {
    // The strict parser throws its ERR_JSON_* codes (never ERR_JSON_TOO_LARGE: the size was
    // checked above against the same bound); anything else is a malformed request.
    // Stryker disable next-line StringLiteral: equivalent, parseJson throws only FailclosedError, so the fallback is never used
    return denyFromError(err, 'ERR_REQUEST_MALFORMED');
  }
  return parseRequestValue(value);
}

/** Checks the shape of an already strictly parsed body. Denies with `ERR_REQUEST_MALFORMED` (FC-INV-3). */
export function parseRequestValue(value: JsonValue): ParsedRequest | Deny {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return deny('ERR_REQUEST_MALFORMED', 'request is not an object');
  const obj = value as JsonObject;
  for (const key of Object.keys(obj))
    if (!FIELD_SET.has(key)) return deny('ERR_REQUEST_MALFORMED', 'request holds an unknown field');
  for (const key of FIELDS)
    // Stryker disable next-line ConditionalExpression: equivalent, a missing field is undefined and fails its type check below
    if (!Object.prototype.hasOwnProperty.call(obj, key))
      return deny('ERR_REQUEST_MALFORMED', `request lacks ${key}`);
  const { request_id, identity, tenant, action, parameters, timestamp, nonce, session, signature } = obj;
  if (typeof request_id !== 'string' || !ID.test(request_id) || request_id.startsWith(REDACTED_ID_PREFIX))
    return deny('ERR_REQUEST_MALFORMED', 'request_id is malformed');
  if (typeof identity !== 'string' || !IDENTITY.test(identity))
    return deny('ERR_REQUEST_MALFORMED', 'identity is malformed');
  if (typeof tenant !== 'string' || !NAME.test(tenant))
    return deny('ERR_REQUEST_MALFORMED', 'tenant is malformed');
  if (typeof action !== 'string' || !NAME.test(action))
    return deny('ERR_REQUEST_MALFORMED', 'action is malformed');
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters))
    return deny('ERR_REQUEST_MALFORMED', 'parameters is not an object');
  // Stryker disable next-line ConditionalExpression: equivalent, the TIMESTAMP pattern refuses every non-string
  if (typeof timestamp !== 'string') return deny('ERR_REQUEST_MALFORMED', 'timestamp is not a string');
  const timestampMs = parseRequestTimestamp(timestamp);
  if (timestampMs === undefined)
    return deny('ERR_REQUEST_MALFORMED', 'timestamp is not RFC 3339 UTC with milliseconds');
  if (typeof nonce !== 'string') return deny('ERR_REQUEST_MALFORMED', 'nonce is not a string');
  const nonceBytes = decodeBase64url(nonce);
  if (nonceBytes === undefined || nonceBytes.length < MIN_NONCE_BYTES || nonceBytes.length > MAX_NONCE_BYTES)
    return deny('ERR_REQUEST_MALFORMED', 'nonce is not base64url of 16 to 64 bytes');
  if (session !== null && (typeof session !== 'string' || !ID.test(session)))
    return deny('ERR_REQUEST_MALFORMED', 'session is malformed');
  if (typeof signature !== 'string') return deny('ERR_REQUEST_MALFORMED', 'signature is not a string');
  const signatureBytes = decodeBase64url(signature);
  if (signatureBytes === undefined || signatureBytes.length !== SIGNATURE_BYTES)
    return deny('ERR_REQUEST_MALFORMED', 'signature is not base64url of 64 bytes');
  const request: SignedRequest = Object.freeze({
    request_id,
    identity,
    tenant,
    action,
    parameters: parameters as JsonObject,
    timestamp,
    nonce,
    session,
    signature,
  });
  return Object.freeze({ request, timestampMs, signatureBytes, trace_id: traceIdOf(request) });
}
