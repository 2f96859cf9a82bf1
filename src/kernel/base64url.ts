// Stryker disable next-line Regex: equivalent, a fast pre-check: the round trip in decodeBase64url rejects every character outside the alphabet too
const B64URL = /^[A-Za-z0-9_-]*$/;

/** Encodes bytes as unpadded base64url (RFC 4648 §5). */
export function encodeBase64url(data: Uint8Array | string): string {
  // Buffer.from copies a Uint8Array's bytes and encodes a string as UTF-8.
  return Buffer.from(data).toString('base64url');
}

/**
 * Decodes strict unpadded base64url. Returns undefined for any other alphabet, padding, or a
 * non-canonical final character (so one value has exactly one spelling).
 */
export function decodeBase64url(text: string): Buffer | undefined {
  // Attacker-controlled: Buffer.from is lenient, so check alphabet, length and canonical form.
  // Stryker disable next-line ConditionalExpression,LogicalOperator,ArithmeticOperator: equivalent, a fast pre-check: no text outside the alphabet or of length 4n+1 survives the round trip below
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  const out = Buffer.from(text, 'base64url');
  if (out.toString('base64url') !== text) return undefined;
  return out;
}
