import { hash, timingSafeEqual } from 'node:crypto';

/** SHA-256 of `data` (strings are UTF-8). */
export function sha256(data: Uint8Array | string): Buffer {
  // One-shot crypto.hash (Node ≥ 20.12): cheaper than a createHash object per call.
  return hash('sha256', data, 'buffer');
}

/** Lower-case hex SHA-256 of `data`. */
export function sha256Hex(data: Uint8Array | string): string {
  return hash('sha256', data, 'hex');
}

/**
 * Constant-time comparison of two digests or MACs. Different lengths compare unequal
 * (length is not secret for digests). Use for every digest comparison.
 */
export function digestEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Constant-time comparison of two lower-case hex digests. Malformed hex compares unequal. */
export function hexDigestEquals(a: string, b: string): boolean {
  if (a.length !== b.length || !/^[0-9a-f]*$/.test(a) || !/^[0-9a-f]*$/.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
