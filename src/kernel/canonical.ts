/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte encoding of a value that failclosed
 * hashes and signs (`params_sha256`, envelope payloads, ledger entries). Values that JSON cannot
 * carry exactly are refused rather than encoded, so nothing ambiguous is ever hashed or signed.
 * See docs/json.md. (SPEC §3 params_sha256 and Determinism (GEI), SPEC §8 JSON numbers)
 */
import { FailclosedError } from './errors.js';
import type { JsonValue } from './json.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Nesting guard. Deeper than any value {@link parseJson} returns (its ceiling is 1000 too); a
 * cyclic value ends here instead of overflowing the stack.
 */
const MAX_DEPTH = 1000;

type WellFormed = { isWellFormed(): boolean };

/**
 * RFC 8785 (JCS) canonical JSON text of `value`: members sorted by the UTF-16 code units of their
 * names (§3.2.3), numbers in ECMAScript Number-to-String form with `-0` as `0` (§3.2.2.3),
 * strings with the minimal escaping of §3.2.2.2, no whitespace.
 *
 * Denies (throws {@link FailclosedError}) with:
 * - `ERR_JSON_UNSAFE_NUMBER`: NaN, ±Infinity, or a value that RFC 8785 writes as an integer
 *   outside ±(2^53−1), i.e. an integral magnitude in (2^53−1, 1e21) (SPEC §8);
 * - `ERR_JSON_LONE_SURROGATE`: a string or member name holding an unpaired surrogate;
 * - `ERR_JSON_TOO_DEEP`: nesting deeper than 1000 (or a cycle).
 *
 * Throws `TypeError` for anything that is not JSON: `undefined` (also as a member value or an
 * array hole), functions, bigints, symbols, and objects other than arrays and plain objects
 * (prototype `Object.prototype` or `null`). Symbol-keyed and non-enumerable properties are not
 * part of the value and are ignored.
 */
export function canonicalize(value: JsonValue): string {
  return encode(value, 0);
}

/** UTF-8 bytes of {@link canonicalize}: the exact bytes to hash or sign. Denies as it does. */
export function canonicalBytes(value: JsonValue): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

/**
 * ECMAScript Number-to-String of a finite double, the number form of RFC 8785 §3.2.2.3, without
 * the safe-integer policy of {@link canonicalize}. Kernel-internal (for the ES6 number vectors);
 * throws `ERR_JSON_UNSAFE_NUMBER` for NaN and ±Infinity.
 */
export function formatJcsNumber(n: number): string {
  if (!Number.isFinite(n)) throw new FailclosedError('ERR_JSON_UNSAFE_NUMBER', 'number is not finite');
  // Number::toString is exactly the JCS algorithm, and gives "0" for -0.
  return String(n);
}

function encode(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new FailclosedError('ERR_JSON_UNSAFE_NUMBER', 'number is not finite');
      // Below 1e21 an integral value is written as an integer: past 2^53−1 that text would not
      // read back as the same integer in other parsers, so it is never hashed or signed.
      if ((value > MAX_SAFE || value < -MAX_SAFE) && value < 1e21 && value > -1e21) {
        throw new FailclosedError('ERR_JSON_UNSAFE_NUMBER', 'integer outside ±(2^53−1)');
      }
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) throw new FailclosedError('ERR_JSON_TOO_DEEP', 'value nested too deeply');
      if (Array.isArray(value)) return encodeArray(value, depth + 1);
      return encodeObject(value, depth + 1);
    default:
      throw new TypeError(`canonicalize: a ${typeof value} is not a JSON value`);
  }
}

function encodeString(s: string): string {
  if (!(s as unknown as WellFormed).isWellFormed()) {
    throw new FailclosedError('ERR_JSON_LONE_SURROGATE', 'string holds an unpaired surrogate');
  }
  // For well-formed strings JSON.stringify escapes exactly as RFC 8785 §3.2.2.2 prescribes:
  // \b \t \n \f \r \" \\, other controls as lower-case \u00xx, everything else literal.
  return JSON.stringify(s);
}

function encodeArray(arr: readonly unknown[], depth: number): string {
  const n = arr.length;
  if (n === 0) return '[]';
  let out = '[' + encode(arr[0], depth);
  for (let i = 1; i < n; i++) out += ',' + encode(arr[i], depth);
  return out + ']';
}

function encodeObject(obj: object, depth: number): string {
  const proto: unknown = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('canonicalize: only arrays and plain objects are JSON values');
  }
  // The default sort compares UTF-16 code unit sequences, which is RFC 8785 §3.2.3's order.
  const keys = Object.keys(obj).sort();
  const n = keys.length;
  if (n === 0) return '{}';
  const record = obj as Record<string, unknown>;
  let out = '{';
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    if (i > 0) out += ',';
    out += encodeString(key) + ':' + encode(record[key], depth);
  }
  return out + '}';
}
