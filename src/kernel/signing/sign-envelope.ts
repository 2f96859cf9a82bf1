/**
 * Approval envelope issuance: a compact JWS over the canonical claims (SPEC §3). Only the
 * Control Plane's issuer calls this.
 */
import { sign as cryptoSign } from 'node:crypto';
import {
  encodeBase64url,
  encodeEnvelopeClaims,
  envelopeHeaderText,
  FailclosedError,
  isEnvelopeClaims,
  type EnvelopeClaims,
} from '../index.js';
import type { SigningKey } from './signing-key.js';

// The encoded header depends only on the key, so it is built once per key.
const headerSegments = new WeakMap<SigningKey, string>();

function headerSegment(key: SigningKey): string {
  let segment = headerSegments.get(key);
  if (segment === undefined) {
    segment = encodeBase64url(envelopeHeaderText(key.kid));
    headerSegments.set(key, segment);
  }
  return segment;
}

/**
 * Signs `claims` as an approval envelope: header `{"alg":"EdDSA","kid":…,"typ":"fc-envelope+jwt"}`,
 * payload the RFC 8785 canonical claims, Ed25519 signature. Deterministic: the same claims and
 * key give the same string (SPEC §3 Determinism, GEI). Claims that fail the verifier's typing
 * throw `FailclosedError('ERR_ENVELOPE_CLAIMS')`, so nothing unverifiable is ever issued.
 */
export function signEnvelope(claims: EnvelopeClaims, key: SigningKey): string {
  if (!isEnvelopeClaims(claims)) throw new FailclosedError('ERR_ENVELOPE_CLAIMS', 'claims are not issuable');
  const signingInput = `${headerSegment(key)}.${encodeBase64url(encodeEnvelopeClaims(claims))}`;
  // Stryker disable next-line StringLiteral: equivalent, the signing input is ASCII (base64url and '.'), so latin1 and the UTF-8 default give the same bytes
  const signature = cryptoSign(null, Buffer.from(signingInput, 'latin1'), key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}
