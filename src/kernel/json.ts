/**
 * Strict JSON (RFC 8259) for everything that is signed or hashed, stricter than RFC 8259 where
 * ambiguity could let two parties see different values (I-JSON, RFC 7493): duplicate keys,
 * unsafe numbers, unpaired surrogates and invalid UTF-8 are rejected, never "fixed".
 * See docs/json.md. (SPEC §3 "rejects duplicate keys", SPEC §8 JSON numbers, FC-INV-3, OE-INV-003)
 */
import { isUtf8 } from 'node:buffer';
import { FailclosedError } from './errors.js';

/** A JSON value as parsed by {@link parseJson}. */
export type JsonValue =
  null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { readonly [key: string]: JsonValue };

/** Limits applied before and during parsing. */
export interface JsonLimits {
  /** Maximum input size in bytes (UTF-8). Default 1 MiB. */
  readonly maxBytes?: number;
  /** Maximum nesting depth of arrays and objects. Default 64, at most 1000. */
  readonly maxDepth?: number;
}

/** Default {@link JsonLimits.maxBytes}: 1 MiB. */
export const JSON_DEFAULT_MAX_BYTES = 1024 * 1024;
/** Default {@link JsonLimits.maxDepth}. */
export const JSON_DEFAULT_MAX_DEPTH = 64;
/** Highest accepted {@link JsonLimits.maxDepth}: the parser recurses once per level. */
export const JSON_MAX_DEPTH_CEILING = 1000;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Escape letter → character, for the two-character escapes of RFC 8259 §7. */
const SIMPLE_ESCAPES: Readonly<Record<number, string>> = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};

/**
 * Parses `input` as strict JSON. Bytes must be UTF-8 without a byte order mark; a string must be
 * well-formed UTF-16. The result is a fresh tree of plain objects (with `Object.prototype`; a
 * `__proto__` member is an own data property) and arrays. It is not frozen: the `readonly`
 * types forbid mutation at compile time, and freezing every node would cost the hot path.
 * `-0` parses as `0`.
 *
 * Denies (throws {@link FailclosedError}) with:
 * - `ERR_JSON_TOO_LARGE`: more than `maxBytes` UTF-8 bytes, checked before any parsing;
 * - `ERR_JSON_INVALID_UTF8`: bytes that are not UTF-8 (overlongs, encoded surrogates, > U+10FFFF);
 * - `ERR_JSON_SYNTAX`: anything outside the RFC 8259 grammar, including a leading BOM;
 * - `ERR_JSON_DUPLICATE_KEY`: an object names a member twice (compared after unescaping);
 * - `ERR_JSON_UNSAFE_NUMBER`: an integer literal outside ±(2^53−1), any number whose value is an
 *   integer between 2^53 and 1e21 (RFC 8785 would write it as such an integer), a literal that
 *   overflows to Infinity, or a non-zero literal that underflows to 0 (SPEC §8 JSON numbers);
 * - `ERR_JSON_LONE_SURROGATE`: an unpaired surrogate, written as `\u` escapes or raw in a string;
 * - `ERR_JSON_TOO_DEEP`: arrays and objects nested deeper than `maxDepth`.
 *
 * A `TypeError` means the caller's mistake: `input` of another type or invalid limits.
 */
export function parseJson(input: string | Uint8Array, limits?: JsonLimits): JsonValue {
  const maxBytes = limitOf(limits?.maxBytes, JSON_DEFAULT_MAX_BYTES, Number.MAX_SAFE_INTEGER, 'maxBytes');
  const maxDepth = limitOf(limits?.maxDepth, JSON_DEFAULT_MAX_DEPTH, JSON_MAX_DEPTH_CEILING, 'maxDepth');
  let text: string;
  if (typeof input === 'string') {
    if (utf8LengthExceeds(input, maxBytes))
      throw new FailclosedError('ERR_JSON_TOO_LARGE', 'JSON input too large');
    text = input;
  } else if (input instanceof Uint8Array) {
    if (input.byteLength > maxBytes) throw new FailclosedError('ERR_JSON_TOO_LARGE', 'JSON input too large');
    // Attacker-controlled bytes: validate all of them before decoding, so no replacement character
    // can ever stand in for an invalid sequence.
    if (!isUtf8(input)) throw new FailclosedError('ERR_JSON_INVALID_UTF8', 'JSON input is not valid UTF-8');
    text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  } else {
    throw new TypeError('parseJson: input must be a string or a Uint8Array');
  }
  // A leading BOM (U+FEFF) is not JSON whitespace: the grammar rejects it as ERR_JSON_SYNTAX.
  return new Parser(text, maxDepth).document();
}

function limitOf(value: number | undefined, fallback: number, ceiling: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0 || value > ceiling) {
    throw new TypeError(`parseJson: ${name} must be an integer from 0 to ${ceiling}`);
  }
  return value;
}

/** Whether the UTF-8 encoding of `s` is longer than `max`, counting only when it must. */
function utf8LengthExceeds(s: string, max: number): boolean {
  // Every UTF-16 code unit takes 1 to 3 UTF-8 bytes.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return Buffer.byteLength(s, 'utf8') > max;
}

function syntax(what: string, at: number): FailclosedError {
  return new FailclosedError('ERR_JSON_SYNTAX', `JSON syntax error: ${what} at offset ${at}`);
}

function loneSurrogate(at: number): FailclosedError {
  return new FailclosedError('ERR_JSON_LONE_SURROGATE', `unpaired surrogate at offset ${at}`);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Value of one hex digit, or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x57;
  return -1;
}

/** A single-use recursive-descent parser over UTF-16 code units. */
class Parser {
  private readonly s: string;
  private readonly n: number;
  private readonly maxDepth: number;
  private i = 0;

  constructor(s: string, maxDepth: number) {
    this.s = s;
    this.n = s.length;
    this.maxDepth = maxDepth;
  }

  document(): JsonValue {
    this.skipWs();
    const value = this.value(0);
    this.skipWs();
    if (this.i !== this.n) throw syntax('trailing data', this.i);
    return value;
  }

  private skipWs(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  private value(depth: number): JsonValue {
    const c = this.s.charCodeAt(this.i);
    switch (c) {
      case 0x22:
        return this.string();
      case 0x7b:
        return this.object(depth + 1);
      case 0x5b:
        return this.array(depth + 1);
      case 0x74:
        return this.literal('true', true);
      case 0x66:
        return this.literal('false', false);
      case 0x6e:
        return this.literal('null', null);
      default:
        if (c === 0x2d || isDigit(c)) return this.number();
        throw syntax(this.i >= this.n ? 'unexpected end' : 'unexpected character', this.i);
    }
  }

  private literal<T extends JsonValue>(word: string, value: T): T {
    if (!this.s.startsWith(word, this.i)) throw syntax('invalid literal', this.i);
    this.i += word.length;
    return value;
  }

  private object(depth: number): JsonObject {
    if (depth > this.maxDepth) throw new FailclosedError('ERR_JSON_TOO_DEEP', 'JSON nested too deeply');
    const s = this.s;
    const obj: Record<string, JsonValue> = {};
    this.i++;
    this.skipWs();
    if (s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return obj;
    }
    for (;;) {
      if (s.charCodeAt(this.i) !== 0x22) throw syntax('expected member name', this.i);
      const keyAt = this.i;
      const key = this.string();
      if (Object.hasOwn(obj, key)) {
        throw new FailclosedError('ERR_JSON_DUPLICATE_KEY', `duplicate member name at offset ${keyAt}`);
      }
      this.skipWs();
      if (s.charCodeAt(this.i) !== 0x3a) throw syntax("expected ':'", this.i);
      this.i++;
      this.skipWs();
      const value = this.value(depth);
      if (key === '__proto__') {
        // Plain assignment would replace the prototype; an own data property is what JSON means.
        Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        obj[key] = value;
      }
      this.skipWs();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 0x2c) this.skipWs();
      else if (c === 0x7d) return obj;
      else throw syntax("expected ',' or '}'", this.i - 1);
    }
  }

  private array(depth: number): JsonValue[] {
    if (depth > this.maxDepth) throw new FailclosedError('ERR_JSON_TOO_DEEP', 'JSON nested too deeply');
    const s = this.s;
    const arr: JsonValue[] = [];
    this.i++;
    this.skipWs();
    if (s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return arr;
    }
    for (;;) {
      arr.push(this.value(depth));
      this.skipWs();
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c === 0x2c) this.skipWs();
      else if (c === 0x5d) return arr;
      else throw syntax("expected ',' or ']'", this.i - 1);
    }
  }

  /** Fast path: a string without escapes is a slice of the input. */
  private string(): string {
    const s = this.s;
    const n = this.n;
    const start = this.i + 1;
    for (let i = start; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return s.slice(start, i);
      }
      if (c === 0x5c) return this.escapedString(start, i);
      if (c < 0x20) throw syntax('control character in string', i);
      if (c >= 0xd800 && c <= 0xdfff) {
        if (c > 0xdbff || !isLowSurrogate(s.charCodeAt(i + 1))) throw loneSurrogate(i);
        i++;
      }
    }
    throw syntax('unterminated string', n);
  }

  /** Slow path from the first backslash at `i`: builds the string chunk by chunk. */
  private escapedString(start: number, i: number): string {
    const s = this.s;
    const n = this.n;
    let out = s.slice(start, i);
    let chunk = i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return out + s.slice(chunk, i);
      }
      if (c === 0x5c) {
        out += s.slice(chunk, i);
        const e = s.charCodeAt(i + 1);
        const simple = SIMPLE_ESCAPES[e];
        if (simple !== undefined) {
          out += simple;
        } else if (e === 0x75) {
          const unit = this.hex4(i + 2);
          if (unit >= 0xd800 && unit <= 0xdfff) {
            // A high surrogate must be followed at once by an escaped low surrogate.
            const low =
              unit <= 0xdbff && s.charCodeAt(i + 6) === 0x5c && s.charCodeAt(i + 7) === 0x75
                ? this.hex4(i + 8)
                : -1;
            if (!isLowSurrogate(low)) throw loneSurrogate(i);
            out += String.fromCharCode(unit, low);
            i += 6;
          } else {
            out += String.fromCharCode(unit);
          }
          i += 4;
        } else {
          throw syntax('invalid escape', i);
        }
        i += 2;
        chunk = i;
        continue;
      }
      if (c < 0x20) throw syntax('control character in string', i);
      if (c >= 0xd800 && c <= 0xdfff) {
        if (c > 0xdbff || !isLowSurrogate(s.charCodeAt(i + 1))) throw loneSurrogate(i);
        i++;
      }
      i++;
    }
    throw syntax('unterminated string', n);
  }

  private hex4(at: number): number {
    const s = this.s;
    const a = hexDigit(s.charCodeAt(at));
    const b = hexDigit(s.charCodeAt(at + 1));
    const c = hexDigit(s.charCodeAt(at + 2));
    const d = hexDigit(s.charCodeAt(at + 3));
    if ((a | b | c | d) < 0) throw syntax('invalid \\u escape', at - 2);
    return (a << 12) | (b << 8) | (c << 4) | d;
  }

  private number(): number {
    const s = this.s;
    const start = this.i;
    let i = start;
    let c = s.charCodeAt(i);
    const negative = c === 0x2d;
    if (negative) c = s.charCodeAt(++i);
    const intStart = i;
    if (c === 0x30) c = s.charCodeAt(++i);
    else if (c >= 0x31 && c <= 0x39) while (isDigit((c = s.charCodeAt(++i))));
    else throw syntax('invalid number', i);
    const intEnd = i;
    if (c === 0x2e) {
      if (!isDigit((c = s.charCodeAt(++i)))) throw syntax('invalid number', i);
      while (isDigit((c = s.charCodeAt(++i))));
    }
    if (c === 0x65 || c === 0x45) {
      c = s.charCodeAt(++i);
      if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++i);
      if (!isDigit(c)) throw syntax('invalid number', i);
      while (isDigit((c = s.charCodeAt(++i))));
    }
    this.i = i;
    let value: number;
    if (i === intEnd && intEnd - intStart <= 15) {
      // Up to 15 decimal digits fit a double exactly: no string round trip needed.
      let acc = 0;
      for (let k = intStart; k < intEnd; k++) acc = acc * 10 + (s.charCodeAt(k) - 0x30);
      value = negative ? -acc : acc;
    } else {
      value = Number(s.slice(start, i));
    }
    if (value === 0) {
      if (hasNonZeroDigit(s, intStart, i)) throw unsafeNumber(start, 'underflows to 0');
      return 0;
    }
    if (!Number.isFinite(value)) throw unsafeNumber(start, 'overflows');
    // An integer literal past 2^53−1 may already have been rounded (9007199254740993 reads as
    // ...992): deny it. Integral values below 1e21 are written as integers by RFC 8785, so they
    // are denied in any spelling too; from 1e21 up JCS writes exponent form, which is exact.
    const magnitude = Math.abs(value);
    if (magnitude > MAX_SAFE && (i === intEnd || magnitude < 1e21)) {
      throw unsafeNumber(start, 'is an integer outside ±(2^53−1)');
    }
    return value;
  }
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Whether the significand (integer and fraction digits, before any exponent) is non-zero. */
function hasNonZeroDigit(s: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x65 || c === 0x45) return false;
    if (c >= 0x31 && c <= 0x39) return true;
  }
  return false;
}

function unsafeNumber(at: number, why: string): FailclosedError {
  return new FailclosedError('ERR_JSON_UNSAFE_NUMBER', `number at offset ${at} ${why}`);
}
