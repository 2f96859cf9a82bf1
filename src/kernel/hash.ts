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

/**
 * Constant-time comparison of two lower-case hex digests: equal only when both are lower-case
 * hex of the same length and every character matches. Malformed hex compares unequal. A single
 * pass over the characters (no RegExp, no allocation): it runs once per entry in verification.
 */
export function hexDigestEquals(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  let bad = 0;
  // Stryker disable next-line EqualityOperator: equivalent, one step past the end reads NaN, which every bitwise operation below treats as 0
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    diff |= x ^ b.charCodeAt(i);
    // Not in 0-9 or a-f: (x - 48) outside 0..9 and (x - 97) outside 0..5 sets the sign bit of both.
    // Checking `a` alone suffices: the result needs diff === 0, i.e. `b` equal to `a` throughout.
    bad |= ((x - 48) | (57 - x)) & ((x - 97) | (102 - x));
  }
  return diff === 0 && bad >= 0;
}
