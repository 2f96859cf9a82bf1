/**
 * edwards25519 point decoding and small-order detection with BigInt arithmetic, for the key
 * checks node:crypto does not make (SPEC §8). Slow by design and only used when a key is
 * registered; signatures use the constant blocklist {@link isSmallOrderEncoding}.
 * RFC 8032 §5.1.3 (decoding), §5.1.4 (point doubling).
 */

const P = 2n ** 255n - 19n;
const D = mod(-121665n * inverse(121666n));
const SQRT_M1 = modPow(2n, (P - 1n) / 4n);

function mod(a: bigint): bigint {
  const r = a % P;
  return r >= 0n ? r : r + P;
}

function modPow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

function inverse(a: bigint): bigint {
  return modPow(a, P - 2n);
}

function decodeLittleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

/** Extended coordinates (X:Y:Z:T); only X, Y, Z are needed for doubling. */
interface Point {
  readonly x: bigint;
  readonly y: bigint;
  readonly z: bigint;
}

/** RFC 8032 §5.1.3 with the strict rules: y < p, and x = 0 must not carry the sign bit. */
function decodePoint(encoded: Uint8Array): Point | undefined {
  if (encoded.length !== 32) return undefined;
  const n = decodeLittleEndian(encoded);
  const sign = n >> 255n;
  const y = n & ((1n << 255n) - 1n);
  if (y >= P) return undefined;
  const y2 = (y * y) % P;
  const u = mod(y2 - 1n);
  const v = mod(D * y2 + 1n);
  const v3 = (v * v * v) % P;
  let x = (u * v3 * modPow(u * v3 * v3 * v, (P - 5n) / 8n)) % P;
  const vx2 = (v * x * x) % P;
  if (vx2 === u) {
    // x is a root.
  } else if (vx2 === mod(-u)) {
    x = (x * SQRT_M1) % P;
  } else {
    return undefined;
  }
  if (x === 0n && sign === 1n) return undefined;
  if ((x & 1n) !== sign) x = P - x;
  return { x, y, z: 1n };
}

function double(p: Point): Point {
  const a = (p.x * p.x) % P;
  const b = (p.y * p.y) % P;
  const c = (2n * p.z * p.z) % P;
  const h = (a + b) % P;
  const e = mod(h - (((p.x + p.y) * (p.x + p.y)) % P));
  const g = mod(a - b);
  const f = (c + g) % P;
  return { x: (e * f) % P, y: (g * h) % P, z: (f * g) % P };
}

/**
 * True when `encoded` is the canonical encoding of a curve point whose order is not a divisor of
 * 8 (i.e. [8]A is not the identity). False for y ≥ p, x = −0, points off the curve and the eight
 * small-order points.
 */
export function isCanonicalLargeOrderPoint(encoded: Uint8Array): boolean {
  const point = decodePoint(encoded);
  if (point === undefined) return false;
  const eight = double(double(double(point)));
  const isIdentity = eight.x === 0n && eight.y === eight.z;
  return !isIdentity;
}

/**
 * The 14 encodings of the 8 small-order points, canonical and not (C2SP CCTV ed25519 README).
 * A signature whose R is one of them is refused (dalek `verify_strict` behaviour).
 */
const SMALL_ORDER_ENCODINGS: ReadonlySet<string> = new Set([
  '0000000000000000000000000000000000000000000000000000000000000000',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
]);

/** True when the 32 bytes are one of the 14 small-order point encodings. */
export function isSmallOrderEncoding(encoded: Uint8Array): boolean {
  return SMALL_ORDER_ENCODINGS.has(
    Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).toString('hex'),
  );
}
