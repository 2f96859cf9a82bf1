/**
 * Deterministic identifiers (GEI Determinism, SPEC §3): `decision_id` and `jti` are keyed hashes
 * of the canonical request fields, so an identical request under identical keys yields identical
 * identifiers and therefore byte-identical decision records and envelopes. The key is secret, so
 * nobody outside the Control Plane can predict a `jti` before it is issued.
 */
import { createHmac } from 'node:crypto';
import { canonicalBytes, encodeBase64url } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import type { GovernedRequest } from './types.js';

/** Domain separators: one per derived value, so a `decision_id` can never equal a `jti`. */
export type DerivationDomain = 'decision' | 'jti' | 'admin';

/** Minimum length of the derivation key in bytes (256 bits). */
export const MIN_DERIVATION_KEY_BYTES = 32;

/**
 * HMAC-SHA256 under `key` of `"<domain>:"` followed by the RFC 8785 canonical bytes of `value`,
 * as unpadded base64url (43 characters). A key shorter than 32 bytes is a caller error
 * (`TypeError`). (GEI Determinism)
 */
export function deriveId(key: Uint8Array, domain: DerivationDomain, value: JsonValue): string {
  if (key.length < MIN_DERIVATION_KEY_BYTES) throw new TypeError('derivation key must be at least 32 bytes');
  const mac = createHmac('sha256', key);
  mac.update(`${domain}:`, 'utf8');
  mac.update(canonicalBytes(value));
  return encodeBase64url(mac.digest());
}

/** The request fields an id is derived from (a retry differs in the others). */
export type IdentifyingFields = Pick<
  GovernedRequest,
  'request_id' | 'identity' | 'tenant' | 'tool' | 'session'
>;

/**
 * The canonical request fields every derived identifier covers: who asks (`identity`, `tenant`,
 * `session`), under which request id, for which call (`tool`, `params_sha256`). Nonce,
 * timestamp, trace id and the raw request hash are left out on purpose: a retry of an escalated
 * call is a new signed request (fresh nonce and timestamp) with the same request id and intent,
 * and must map to the same decision (docs/approvals.md "Retries"). Request ids are unique per
 * client (the Gate refuses a reused one unless it is such a retry), so distinct calls still get
 * distinct identifiers.
 */
export function requestFields(req: IdentifyingFields, paramsSha256: string): JsonValue {
  return {
    request_id: req.request_id,
    identity: req.identity,
    tenant: req.tenant,
    tool: req.tool,
    params_sha256: paramsSha256,
    session: req.session,
  };
}

/**
 * `decision_id` of a request (GEI Determinism, OE-INV-014): `dec_` and the derived id, so it never
 * starts with `-` (approvers type it on command lines).
 */
export function deriveDecisionId(key: Uint8Array, req: IdentifyingFields, paramsSha256: string): string {
  return `dec_${deriveId(key, 'decision', requestFields(req, paramsSha256))}`;
}

/** `jti` (the single-use envelope nonce) of a request (GEI Determinism, OE-INV-017). */
export function deriveJti(key: Uint8Array, req: IdentifyingFields, paramsSha256: string): string {
  return deriveId(key, 'jti', requestFields(req, paramsSha256));
}
