/**
 * The raw signed request as the offline verifier reads it from bundle evidence (docs/request-format.md,
 * FC-INV-3): its fields, the exact bytes the client signed and the trace id the Gate derives from
 * it, from the kernel's one definition of the request format (src/kernel/request.ts).
 */
import {
  decodeBase64url,
  parseJson,
  MINTED_CALL_FORMAT,
  REQUEST_FIELDS,
  sha256Hex,
  REQUEST_SIGNING_CONTEXT,
  requestSigningInput as kernelSigningInput,
  requestTraceId as kernelTraceId,
  type JsonObject,
  type JsonValue,
  type SignedRequest,
} from '../kernel/index.js';

/** Domain separator the client prefixes to the canonical fields before signing (same as the Gate's). */
export { REQUEST_SIGNING_CONTEXT };

/** Largest raw request the Gate accepts (256 KiB); larger evidence cannot be a request it accepted. */
const MAX_REQUEST_BYTES = 256 * 1024;
const FIELDS = REQUEST_FIELDS;

/** A signed request from evidence: every field present and typed. */
export type EvidenceRequest = SignedRequest;

/**
 * Parses raw request bytes (strict JSON, exactly the nine fields, typed) or returns the reason
 * they are not a signed request. Syntax details the Gate also checks (identifier patterns) are
 * not repeated: the signature binds whatever the fields hold.
 */
export function parseEvidenceRequest(body: Buffer): EvidenceRequest | string {
  if (body.length > MAX_REQUEST_BYTES) return 'larger than any request the Gate accepts';
  let v: JsonValue;
  try {
    // Attacker-controlled: evidence bytes from the bundle.
    v = parseJson(body, { maxBytes: MAX_REQUEST_BYTES, maxDepth: 32 });
  } catch {
    return 'not strict JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as JsonObject;
  if (Object.keys(o).length !== FIELDS.length || !FIELDS.every((f) => f in o))
    return 'does not hold exactly the signed request fields';
  const { request_id, identity, tenant, action, parameters, timestamp, nonce, session, signature } = o;
  if (
    typeof request_id !== 'string' ||
    typeof identity !== 'string' ||
    typeof tenant !== 'string' ||
    typeof action !== 'string'
  )
    return 'a field is mistyped';
  if (typeof timestamp !== 'string' || typeof nonce !== 'string' || typeof signature !== 'string')
    return 'a field is mistyped';
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters))
    return 'parameters is not an object';
  if (session !== null && typeof session !== 'string') return 'session is mistyped';
  return {
    request_id,
    identity,
    tenant,
    action,
    parameters: parameters as JsonObject,
    timestamp,
    nonce,
    session,
    signature,
  };
}

/** The bytes the client signed (the kernel's one definition of the request format). */
export function requestSigningInput(r: Omit<EvidenceRequest, 'signature'>): Buffer {
  return kernelSigningInput(r);
}

/** The 64 signature bytes, or undefined when `signature` is not strict base64url of 64 bytes. */
export function requestSignatureBytes(r: EvidenceRequest): Buffer | undefined {
  const sig = decodeBase64url(r.signature);
  return sig !== undefined && sig.length === 64 ? sig : undefined;
}

/** The trace id the Gate derives: the first 32 hex characters of SHA-256 over the canonical signed request. */
export function requestTraceId(r: EvidenceRequest): string {
  return kernelTraceId(r);
}

/** The evidence of a call of an MCP principal: the Gate minted its id and nonce (docs/mcp.md "Evidence"). */
export interface MintedEvidence {
  /** The call in the signed request's shape, with an empty signature (none exists). */
  readonly request: EvidenceRequest;
  readonly auth_method: string;
  readonly issuer: string;
  readonly roles: readonly string[];
  /** The human owner the OAuth token named (docs/mcp.md "Approvals"), when it named one. */
  readonly owner?: string;
  /** The trace id the Gate derives for it: the first 32 hex characters of SHA-256 over the bytes. */
  readonly trace_id: string;
}

const MINTED_FIELDS = [
  'format',
  'request_id',
  'nonce',
  'identity',
  'tenant',
  'roles',
  'auth_method',
  'issuer',
  'tool',
  'parameters',
  'session',
  'timestamp',
];

/** Parses minted-call evidence, or returns why the bytes are not one (undefined: another format). */
export function parseMintedEvidence(body: Buffer): MintedEvidence | string | undefined {
  if (body.length > MAX_REQUEST_BYTES) return undefined;
  let v: JsonValue;
  try {
    // Attacker-controlled: evidence bytes from the bundle.
    v = parseJson(body, { maxBytes: MAX_REQUEST_BYTES, maxDepth: 32 });
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as JsonObject;
  if (o['format'] !== MINTED_CALL_FORMAT) return undefined;
  // `owner` is the one optional field: present only when the principal's token named one.
  const hasOwner = 'owner' in o;
  if (
    Object.keys(o).length !== MINTED_FIELDS.length + (hasOwner ? 1 : 0) ||
    !MINTED_FIELDS.every((f) => f in o)
  )
    return 'does not hold exactly the minted call fields';
  if (hasOwner && typeof o['owner'] !== 'string') return 'owner is mistyped';
  const {
    request_id,
    nonce,
    identity,
    tenant,
    roles,
    auth_method,
    issuer,
    tool,
    parameters,
    session,
    timestamp,
  } = o;
  for (const s of [request_id, nonce, identity, tenant, auth_method, issuer, tool, timestamp])
    if (typeof s !== 'string') return 'a field is mistyped';
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) return 'roles is mistyped';
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters))
    return 'parameters is not an object';
  if (session !== null && typeof session !== 'string') return 'session is mistyped';
  return {
    request: {
      request_id: request_id as string,
      identity: identity as string,
      tenant: tenant as string,
      action: tool as string,
      parameters: parameters as JsonObject,
      timestamp: timestamp as string,
      nonce: nonce as string,
      session,
      signature: '',
    },
    auth_method: auth_method as string,
    issuer: issuer as string,
    roles: roles,
    ...(hasOwner ? { owner: o['owner'] as string } : {}),
    trace_id: sha256Hex(body).slice(0, 32),
  };
}
