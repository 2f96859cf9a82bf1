/**
 * What dependencies answer on the enforcement path is untrusted input: anything but the exact
 * expected shape is a failure of that dependency, never an allow (FC-INV-4, OE-INV-003). The
 * receipt reference must be a real ledger position (OE-INV-015), and an adapter may only deny
 * with the adapter codes.
 */
import { describe, expect, it } from 'vitest';
import {
  countRedactions,
  deepFreeze,
  isAdapterCode,
  parseAdapterOutput,
  parseLedgerRef,
} from '../../src/execution/outcome-checks.js';
import { sha256Hex } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';

const HASH = sha256Hex('entry');

describe('OE-INV-015: a receipt reference is a real ledger position or nothing', () => {
  it('reads a well-formed reference back, frozen', () => {
    const ref = parseLedgerRef({ index: 0, entry_hash: HASH });
    expect(ref).toEqual({ index: 0, entry_hash: HASH });
    expect(Object.isFrozen(ref)).toBe(true);
    expect(parseLedgerRef({ index: Number.MAX_SAFE_INTEGER, entry_hash: HASH })).toBeDefined();
  });

  const broken: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['a number', 7],
    ['no index', { entry_hash: HASH }],
    ['a string index', { index: '1', entry_hash: HASH }],
    ['a fractional index', { index: 1.5, entry_hash: HASH }],
    ['an unsafe index', { index: 2 ** 53, entry_hash: HASH }],
    ['a negative index', { index: -1, entry_hash: HASH }],
    ['no entry hash', { index: 1 }],
    ['a numeric entry hash', { index: 1, entry_hash: 1 }],
    ['an entry hash object that prints as hex', { index: 1, entry_hash: { toString: () => HASH } }],
    ['an upper-case entry hash', { index: 1, entry_hash: HASH.toUpperCase() }],
    ['a short entry hash', { index: 1, entry_hash: HASH.slice(1) }],
    ['a long entry hash', { index: 1, entry_hash: `${HASH}0` }],
    ['an entry hash with a prefix', { index: 1, entry_hash: `x${HASH.slice(1)}` }],
    ['an entry hash with a suffix', { index: 1, entry_hash: `${HASH.slice(0, -1)}x` }],
  ];
  for (const [name, value] of broken) {
    it(`${name} → undefined (the executor denies ERR_LEDGER_UNAVAILABLE)`, () => {
      expect(parseLedgerRef(value)).toBeUndefined();
    });
  }
});

describe('FC-INV-4: an adapter answer of any other shape is ERR_TOOL_FAILED', () => {
  it('an ok answer gives its result, null included', () => {
    expect(parseAdapterOutput({ outcome: 'ok', result: { a: 1 } })).toEqual({ result: { a: 1 } });
    expect(parseAdapterOutput({ outcome: 'ok', result: null })).toEqual({ result: null });
  });

  for (const code of [
    'ERR_TOOL_FAILED',
    'ERR_TOOL_TIMEOUT',
    'ERR_TOOL_OUTPUT_LIMIT',
    'ERR_SANDBOX_UNAVAILABLE',
    'ERR_ADAPTER_UNAVAILABLE',
    'ERR_PARAMS_INVALID',
  ]) {
    it(`an adapter may deny with ${code}`, () => {
      expect(isAdapterCode(code)).toBe(true);
      expect(parseAdapterOutput({ outcome: 'deny', code, reason: 'r' })).toMatchObject({
        outcome: 'deny',
        code,
      });
    });
  }

  const garbage: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['a string', 'ok'],
    ['a deny with a code adapters may not use', { outcome: 'deny', code: 'ERR_ENVELOPE_SIGNATURE' }],
    ['a deny with an unknown code', { outcome: 'deny', code: 'ERR_WHATEVER' }],
    ['a deny with no code', { outcome: 'deny' }],
    ['a deny with a code that is not a string', { outcome: 'deny', code: ['ERR_TOOL_TIMEOUT'] }],
    ['another outcome', { outcome: 'maybe', result: 1 }],
    ['an ok without a result', { outcome: 'ok' }],
  ];
  for (const [name, value] of garbage) {
    it(`${name} → ERR_TOOL_FAILED`, () => {
      expect(parseAdapterOutput(value)).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    });
  }
});

describe('SPEC §2 step 7: the parameters that run are a deep-frozen copy', () => {
  it('freezes every level, and leaves scalars as they are', () => {
    const inner = { c: 'd' };
    const list: JsonValue[] = [1, inner];
    const mid = { b: list };
    const v = deepFreeze({ a: mid });
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(mid)).toBe(true);
    expect(Object.isFrozen(list)).toBe(true);
    expect(Object.isFrozen(inner)).toBe(true);
    expect(deepFreeze('s')).toBe('s');
    expect(deepFreeze(null)).toBeNull();
  });
});

describe('OE-INV-010: the receipt counts the redaction markers in the result', () => {
  it('counts every marker, and none in clean text', () => {
    expect(countRedactions('{"a":"clean"}')).toBe(0);
    expect(countRedactions('["[REDACTED]","[REDACTED:secret]","x[REDACTED"]')).toBe(3);
  });
});
