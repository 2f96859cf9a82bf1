/**
 * Offline reading of a recorded approval envelope (SPEC §3, docs/envelope.md "Verification order"
 * steps 1–6), from kernel primitives only: strict compact JWS segments, the exact canonical header,
 * the Ed25519 signature under a key of the bundle's issuer JWKS, and canonical, typed claims.
 * The call-time steps (clock, call match, nonce) become linkage checks against the ledger.
 */
import {
  decodeBase64url,
  encodeEnvelopeClaims,
  envelopeHeaderText,
  ENVELOPE_MAX_LENGTH,
  isEnvelopeClaims,
  parseJson,
  verifyEd25519,
  type EnvelopeClaims,
  type PublicKey,
} from '../kernel/index.js';

/** A structurally valid envelope: its kid, claims and what the signature covers. */
export interface DecodedEnvelope {
  readonly kid: string;
  readonly claims: EnvelopeClaims;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/**
 * Decodes `token` (steps 1, 2, 5, 6 of the verification order) or returns why it is not an
 * envelope: not three strict base64url segments, a header that is not exactly
 * `{"alg":"EdDSA","kid":…,"typ":"fc-envelope+jwt"}`, payload bytes that are not the canonical
 * encoding of typed claims.
 */
export function decodeEnvelope(token: unknown): DecodedEnvelope | string {
  if (typeof token !== 'string' || token.length === 0) return 'no envelope';
  if (token.length > ENVELOPE_MAX_LENGTH) return 'longer than any envelope';
  const parts = token.split('.');
  if (parts.length !== 3) return 'not three compact JWS segments';
  // Attacker-controlled: strict base64url, one spelling per value.
  const [h, p, s] = parts.map((x) => decodeBase64url(x ?? ''));
  if (h === undefined || p === undefined || s === undefined || h.length === 0 || p.length === 0)
    return 'a segment is not strict base64url';
  let kid: unknown;
  try {
    const header = parseJson(h, { maxBytes: 1024, maxDepth: 2 });
    kid =
      typeof header === 'object' && header !== null && !Array.isArray(header)
        ? (header as { readonly kid?: unknown }).kid
        : undefined;
  } catch {
    return 'the header is not strict JSON';
  }
  if (typeof kid !== 'string' || !h.equals(Buffer.from(envelopeHeaderText(kid), 'utf8')))
    return 'the header is not exactly alg EdDSA, kid, typ fc-envelope+jwt';
  let claims: unknown;
  try {
    claims = parseJson(p, { maxBytes: ENVELOPE_MAX_LENGTH, maxDepth: 8 });
  } catch {
    return 'the payload is not strict JSON';
  }
  if (!isEnvelopeClaims(claims)) return 'the claims are missing, unexpected or mistyped';
  if (!p.equals(Buffer.from(encodeEnvelopeClaims(claims), 'utf8')))
    return 'the payload bytes are not canonical';
  const dot = token.lastIndexOf('.');
  return { kid, claims, signingInput: Buffer.from(token.slice(0, dot), 'latin1'), signature: s };
}

/** Step 4: the Ed25519 signature verifies under `key` (strict: 64 bytes, no small-order R). */
export function envelopeSignatureHolds(e: DecodedEnvelope, key: PublicKey): boolean {
  return e.signature.length === 64 && verifyEd25519(key.keyObject, e.signingInput, e.signature);
}
