const B64URL = /^[A-Za-z0-9_-]*$/;

/** Encodes bytes as unpadded base64url (RFC 4648 §5). */
export function encodeBase64url(data: Uint8Array | string): string {
  return Buffer.from(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64url');
}

/**
 * Decodes strict unpadded base64url. Returns undefined for any other alphabet, padding, or a
 * non-canonical final character (so one value has exactly one spelling).
 */
export function decodeBase64url(text: string): Buffer | undefined {
  // Attacker-controlled: Buffer.from is lenient, so check alphabet, length and canonical form.
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  const out = Buffer.from(text, 'base64url');
  if (out.toString('base64url') !== text) return undefined;
  return out;
}
