/**
 * Maps JSON parameters to Cedar values, guided by the action's declared `params` type.
 * Numbers are mapped deliberately (see docs/policy.md "Numbers"): integers → Long; where the
 * schema declares `decimal`, any number whose shortest decimal spelling has at most 4 fraction
 * digits → `decimal("…")`; anything else (other fractions, exponents, null, reserved `__` keys)
 * is refused with `ERR_PARAMS_INVALID` rather than approximated. (OE-INV-004, SPEC §8 Cedar row)
 */
import { FailclosedError } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import type { CedarType } from './cedar-model.js';

/** A value in Cedar's JSON value format. */
export type CedarJson =
  | boolean
  | number
  | string
  | readonly CedarJson[]
  | { readonly __extn: { readonly fn: string; readonly arg: string } }
  | { readonly [key: string]: CedarJson };

const MAX_DEPTH = 32;
// Cedar decimal: i64 scaled by 10^4, so the whole part is at most 922337203685477.
const DECIMAL_RE = /^-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$/;
const DECIMAL_MAX_WHOLE = 922337203685477n;

function invalid(reason: string): never {
  throw new FailclosedError('ERR_PARAMS_INVALID', reason);
}

/** The Cedar `decimal` spelling of `n`, or null when `n` has no exact one. */
export function toCedarDecimal(n: number): string | null {
  if (!Number.isFinite(n)) return null;
  // String(n) is the shortest round-trip spelling, the one RFC 8785 hashes.
  const s = Number.isInteger(n) ? (Number.isSafeInteger(n) ? `${String(n)}.0` : '') : String(n);
  if (!DECIMAL_RE.test(s)) return null;
  const whole = BigInt(s.replace(/^-/, '').split('.')[0] ?? '0');
  if (whole > DECIMAL_MAX_WHOLE) return null;
  return Object.is(n, -0) ? '0.0' : s;
}

function convertNumber(n: number, type: CedarType | undefined): CedarJson {
  if (type?.kind === 'decimal' || (type === undefined && !Number.isInteger(n))) {
    const d = toCedarDecimal(n);
    if (d === null) invalid('number has no exact Cedar decimal (at most 4 fraction digits)');
    return { __extn: { fn: 'decimal', arg: d } };
  }
  if (!Number.isSafeInteger(n)) invalid('a Long parameter must be an integer within ±(2^53−1)');
  return Object.is(n, -0) ? 0 : n;
}

/**
 * Converts one JSON value. Throws {@link FailclosedError} `ERR_PARAMS_INVALID` for null, numbers
 * without an exact Cedar value, object keys starting with `__` (Cedar reads `__entity`/`__extn`
 * as entity references and extension calls: a parameter must never smuggle one in) and nesting
 * deeper than 32.
 */
export function toCedarValue(value: JsonValue, type: CedarType | undefined, depth = 0): CedarJson {
  if (depth > MAX_DEPTH) invalid('parameters nested too deeply');
  if (value === null) invalid('null has no Cedar value');
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return convertNumber(value, type);
  if (Array.isArray(value)) {
    const element = type?.kind === 'set' ? type.element : undefined;
    return (value as readonly JsonValue[]).map((v) => toCedarValue(v, element, depth + 1));
  }
  const out: Record<string, CedarJson> = {};
  const attrs = type?.kind === 'record' ? type.attrs : undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith('__')) invalid('parameter names starting with "__" are reserved');
    out[k] = toCedarValue(v, attrs?.get(k)?.type, depth + 1);
  }
  return out;
}
