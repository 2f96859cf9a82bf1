/**
 * The signed request format shared by the client that signs it, the Gate that verifies it and
 * the offline verifier that re-checks it from evidence (docs/request-format.md, SPEC §2 step 1,
 * FC-INV-3): one definition of the fields, the exact signing bytes and the derived trace id.
 */
import { canonicalBytes, canonicalize } from './canonical.js';
import { sha256Hex } from './hash.js';
import type { JsonObject, JsonValue } from './json.js';

/** Domain separator prefixed to the canonical fields before signing. */
export const REQUEST_SIGNING_CONTEXT = 'failclosed-request-v1\n';

/** The fields of a signed request, in the order they are documented; nothing else is accepted. */
/**
 * `format` of the evidence the Gate stores for a call of an MCP principal: it mints the request id
 * and nonce itself (SPEC §2 step 1), so there is no client signature (docs/mcp.md "Evidence").
 */
export const MINTED_CALL_FORMAT = 'failclosed.mcp-call/v1';

export const REQUEST_FIELDS = [
  'request_id',
  'identity',
  'tenant',
  'action',
  'parameters',
  'timestamp',
  'nonce',
  'session',
  'signature',
] as const;

/** A signed request: every field present and exactly typed. */
export interface SignedRequest {
  readonly request_id: string;
  readonly identity: string;
  readonly tenant: string;
  readonly action: string;
  readonly parameters: JsonObject;
  readonly timestamp: string;
  readonly nonce: string;
  readonly session: string | null;
  readonly signature: string;
}

/** The bytes a client signs: the context string followed by the canonical fields (all but `signature`). */
export function requestSigningInput(fields: Omit<SignedRequest, 'signature'>): Buffer {
  const unsigned: Record<string, JsonValue> = {
    request_id: fields.request_id,
    identity: fields.identity,
    tenant: fields.tenant,
    action: fields.action,
    parameters: fields.parameters,
    timestamp: fields.timestamp,
    nonce: fields.nonce,
    session: fields.session,
  };
  // Stryker disable next-line StringLiteral: equivalent, Buffer.from reads an empty encoding name as UTF-8
  return Buffer.concat([Buffer.from(REQUEST_SIGNING_CONTEXT, 'utf8'), canonicalBytes(unsigned)]);
}

/** `trace_id` of a request: the first 32 hex characters of SHA-256 over its canonical form (signature included). */
export function requestTraceId(request: SignedRequest): string {
  return sha256Hex(canonicalize(request as unknown as JsonValue)).slice(0, 32);
}
