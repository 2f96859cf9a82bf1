/**
 * Building signed requests on the client side (docs/request-format.md, SPEC §2 step 1,
 * FC-INV-3). The signing input is the context string `failclosed-request-v1\n` followed by the
 * RFC 8785 canonical JSON of every field except `signature`; the signature is Ed25519, base64url.
 */
import { randomBytes } from 'node:crypto';
import { encodeBase64url, REQUEST_SIGNING_CONTEXT, requestSigningInput } from '../kernel/index.js';
import type { JsonObject, SignedRequest } from '../kernel/index.js';
import { signEd25519 } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';

/** Domain separator prefixed to the canonical fields before signing (same as the Gate's). */
export const REQUEST_CONTEXT = REQUEST_SIGNING_CONTEXT;

/** A signed request body as sent to `POST /v1/calls` (the kernel's one request format). */
export type SignedRequestBody = SignedRequest;

/** Input of {@link buildSignedRequest}; `requestId`, `nonce` and `timestampMs` default to fresh values. */
export interface BuildRequestInput {
  readonly key: SigningKey;
  readonly identity: string;
  readonly tenant: string;
  readonly action: string;
  readonly parameters: JsonObject;
  readonly timestampMs: number;
  readonly session?: string | null;
  readonly requestId?: string;
  /** base64url of at least 16 bytes; default 16 fresh random bytes. */
  readonly nonce?: string;
}

/** The exact bytes a client signs for `fields` (all request fields but `signature`). */
export function requestSigningBytes(fields: Omit<SignedRequestBody, 'signature'>): Buffer {
  return requestSigningInput(fields);
}

/** A fresh request id: `req_` and 16 random bytes in base64url. */
export function newRequestId(): string {
  return `req_${encodeBase64url(randomBytes(16))}`;
}

/**
 * Builds and signs a request. The result is frozen; tests may copy and alter it to show that the
 * Gate denies tampering (`ERR_REQUEST_SIGNATURE`) and replay (`ERR_REQUEST_REPLAYED`). Throws
 * the kernel's `ERR_JSON_*` errors for parameters that cannot be canonicalised.
 */
export function buildSignedRequest(input: BuildRequestInput): SignedRequestBody {
  const fields: Omit<SignedRequestBody, 'signature'> = {
    request_id: input.requestId ?? newRequestId(),
    identity: input.identity,
    tenant: input.tenant,
    action: input.action,
    parameters: input.parameters,
    timestamp: new Date(input.timestampMs).toISOString(),
    nonce: input.nonce ?? encodeBase64url(randomBytes(16)),
    session: input.session ?? null,
  };
  const signature = encodeBase64url(signEd25519(input.key, requestSigningBytes(fields)));
  return Object.freeze({ ...fields, signature });
}
