/**
 * Strict JSON parser (SPEC §3 "rejects duplicate keys", SPEC §8 JSON numbers, scenario 10),
 * replayed against JSONTestSuite (`VECTORS_DIR/json`). Decisions are documented in docs/json.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { parseJson } from '../../src/kernel/json.js';
import type { JsonLimits, JsonValue } from '../../src/kernel/json.js';
import { canonicalize } from '../../src/kernel/canonical.js';
import { FailclosedError } from '../../src/kernel/errors.js';
import type { DenialCode } from '../../src/kernel/errors.js';
import { VECTORS_DIR } from '../support/paths.js';

type Outcome = 'accept' | DenialCode;

/** Runs the parser and reports the outcome; anything but a FailclosedError fails the test. */
function outcome(input: string | Uint8Array, limits?: JsonLimits): Outcome {
  try {
    parseJson(input, limits);
    return 'accept';
  } catch (err) {
    if (err instanceof FailclosedError) return err.code;
    throw err;
  }
}

const PARSING_DIR = join(VECTORS_DIR, 'json', 'test_parsing');
const TRANSFORM_DIR = join(VECTORS_DIR, 'json', 'test_transform');
const parsingFiles = readdirSync(PARSING_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();
const read = (dir: string, f: string): Buffer => readFileSync(join(dir, f));

/** Every `i_` file and its decided outcome (docs/json.md): all are rejected. */
const I_DECISIONS: Readonly<Record<string, Outcome>> = {
  'i_number_double_huge_neg_exp.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_huge_exp.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_neg_int_huge_exp.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_pos_double_huge_exp.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_real_neg_overflow.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_real_pos_overflow.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_real_underflow.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_too_big_neg_int.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_too_big_pos_int.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_number_very_big_negative_int.json': 'ERR_JSON_UNSAFE_NUMBER',
  'i_object_key_lone_2nd_surrogate.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_1st_surrogate_but_2nd_missing.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_1st_valid_surrogate_2nd_invalid.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_UTF-16LE_with_BOM.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_UTF-8_invalid_sequence.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_UTF8_surrogate_U+D800.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_incomplete_surrogate_and_escape_valid.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_incomplete_surrogate_pair.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_incomplete_surrogates_escape_valid.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_invalid_lonely_surrogate.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_invalid_surrogate.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_invalid_utf-8.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_inverted_surrogates_U+1D11E.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_iso_latin_1.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_lone_second_surrogate.json': 'ERR_JSON_LONE_SURROGATE',
  'i_string_lone_utf8_continuation_byte.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_not_in_unicode_range.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_overlong_sequence_2_bytes.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_overlong_sequence_6_bytes.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_overlong_sequence_6_bytes_null.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_truncated-utf-8.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_utf16BE_no_BOM.json': 'ERR_JSON_INVALID_UTF8',
  'i_string_utf16LE_no_BOM.json': 'ERR_JSON_INVALID_UTF8',
  'i_structure_500_nested_arrays.json': 'ERR_JSON_TOO_DEEP',
  'i_structure_UTF-8_BOM_empty_object.json': 'ERR_JSON_SYNTAX',
};

/** `y_` files that RFC 8259 allows but the strict parser denies (I-JSON, SPEC §3/§8). */
const Y_EXCEPTIONS: Readonly<Record<string, Outcome>> = {
  'y_object_duplicated_key.json': 'ERR_JSON_DUPLICATE_KEY',
  'y_object_duplicated_key_and_value.json': 'ERR_JSON_DUPLICATE_KEY',
};

/** Every `test_transform` file: the outcome, and the canonical text when accepted. */
const TRANSFORM_DECISIONS: Readonly<Record<string, Outcome | { canonical: string }>> = {
  'number_-9223372036854775808.json': 'ERR_JSON_UNSAFE_NUMBER',
  'number_-9223372036854775809.json': 'ERR_JSON_UNSAFE_NUMBER',
  'number_1.0.json': { canonical: '[1]' },
  'number_1.000000000000000005.json': { canonical: '[1]' },
  'number_1000000000000000.json': { canonical: '[1000000000000000]' },
  'number_10000000000000000999.json': 'ERR_JSON_UNSAFE_NUMBER',
  'number_1e-999.json': 'ERR_JSON_UNSAFE_NUMBER',
  'number_1e6.json': { canonical: '[1000000]' },
  'number_9223372036854775807.json': 'ERR_JSON_UNSAFE_NUMBER',
  'number_9223372036854775808.json': 'ERR_JSON_UNSAFE_NUMBER',
  // No Unicode normalisation: NFC and NFD names are two distinct members, "e\u0301" < "\u00e9".
  'object_key_nfc_nfd.json': { canonical: '{"e\u0301":"NFD","\u00e9":"NFC"}' },
  'object_key_nfd_nfc.json': { canonical: '{"e\u0301":"NFD","\u00e9":"NFC"}' },
  'object_same_key_different_values.json': 'ERR_JSON_DUPLICATE_KEY',
  'object_same_key_same_value.json': 'ERR_JSON_DUPLICATE_KEY',
  'object_same_key_unclear_values.json': 'ERR_JSON_DUPLICATE_KEY',
  'string_1_escaped_invalid_codepoint.json': 'ERR_JSON_LONE_SURROGATE',
  'string_1_invalid_codepoint.json': 'ERR_JSON_INVALID_UTF8',
  'string_2_escaped_invalid_codepoints.json': 'ERR_JSON_LONE_SURROGATE',
  'string_2_invalid_codepoints.json': 'ERR_JSON_INVALID_UTF8',
  'string_3_escaped_invalid_codepoints.json': 'ERR_JSON_LONE_SURROGATE',
  'string_3_invalid_codepoints.json': 'ERR_JSON_INVALID_UTF8',
  'string_with_escaped_NULL.json': { canonical: '["A\\u0000B"]' },
};

/** JSON.parse as the oracle for accepted input, with -0 read as 0 like the strict parser. */
const oracle = (text: string): unknown => JSON.parse(text, (_k, v: unknown) => (Object.is(v, -0) ? 0 : v));

describe('JSONTestSuite test_parsing (SPEC §3, scenario 10)', () => {
  it('holds 318 files and a decision for every i_ file', () => {
    expect(parsingFiles).toHaveLength(318);
    const iFiles = parsingFiles.filter((f) => f.startsWith('i_'));
    expect(Object.keys(I_DECISIONS).sort()).toEqual(iFiles);
    for (const f of Object.keys(Y_EXCEPTIONS)) expect(parsingFiles).toContain(f);
  });

  it.each(parsingFiles.filter((f) => f.startsWith('y_')))('%s is accepted and equals JSON.parse', (f) => {
    const bytes = read(PARSING_DIR, f);
    const expected = Y_EXCEPTIONS[f];
    if (expected !== undefined) {
      expect(outcome(bytes)).toBe(expected);
      return;
    }
    expect(parseJson(bytes)).toEqual(oracle(bytes.toString('utf8')));
  });

  it.each(parsingFiles.filter((f) => f.startsWith('n_')))('%s is rejected', (f) => {
    const result = outcome(read(PARSING_DIR, f));
    expect(result).toMatch(/^ERR_JSON_/);
    expect(result).not.toBe('ERR_JSON_TOO_LARGE');
  });

  it.each(Object.entries(I_DECISIONS))('%s is decided: %s', (f, expected) => {
    expect(outcome(read(PARSING_DIR, f))).toBe(expected);
  });

  it.each(parsingFiles.filter((f) => isUtf8(read(PARSING_DIR, f))))(
    '%s: a JS string gives the same outcome as its UTF-8 bytes',
    (f) => {
      const bytes = read(PARSING_DIR, f);
      expect(outcome(bytes.toString('utf8'))).toBe(outcome(bytes));
    },
  );
});

describe('JSONTestSuite test_transform', () => {
  it('has a decision for every file', () => {
    expect(Object.keys(TRANSFORM_DECISIONS).sort()).toEqual(readdirSync(TRANSFORM_DIR).sort());
  });

  it.each(Object.entries(TRANSFORM_DECISIONS))('%s', (f, decision) => {
    const bytes = read(TRANSFORM_DIR, f);
    if (typeof decision === 'string') expect(outcome(bytes)).toBe(decision);
    else expect(canonicalize(parseJson(bytes))).toBe(decision.canonical);
  });
});

describe('parseJson strictness', () => {
  it('parses every kind of value', () => {
    expect(parseJson(' {"a":[1,-2.5,true,false,null,"x"],"b":{}} ')).toEqual({
      a: [1, -2.5, true, false, null, 'x'],
      b: {},
    });
    expect(parseJson('"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude02"')).toBe('"\\/\b\f\n\r\té😂');
    expect(parseJson(new Uint8Array([0x22, 0xc3, 0xa9, 0x22]))).toBe('é');
  });

  it('rejects what RFC 8259 does not allow', () => {
    for (const bad of [
      '',
      ' ',
      '{',
      '[1,]',
      '{"a":1,}',
      '01',
      '1.',
      '.5',
      '+1',
      '1e',
      '-',
      'tru',
      'nul',
      "'a'",
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_SYNTAX');
    }
    for (const bad of ['"\t"', '"\n"', '"\\x41"', '"\\u12"', '[1]\u00a0', '\u00a0[1]', '[1] x', '"abc']) {
      expect(outcome(bad), JSON.stringify(bad)).toBe('ERR_JSON_SYNTAX');
    }
  });

  it('rejects a byte order mark, as bytes and as a string', () => {
    expect(outcome(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toBe('ERR_JSON_SYNTAX');
    expect(outcome('\ufeff{}')).toBe('ERR_JSON_SYNTAX');
  });

  it('rejects duplicate member names, also when spelled differently or nested', () => {
    expect(outcome('{"a":1,"a":1}')).toBe('ERR_JSON_DUPLICATE_KEY');
    expect(outcome('{"a":1,"\\u0061":2}')).toBe('ERR_JSON_DUPLICATE_KEY');
    expect(outcome('[{"x":{"b":1,"c":2,"b":3}}]')).toBe('ERR_JSON_DUPLICATE_KEY');
    expect(outcome('{"__proto__":1,"__proto__":2}')).toBe('ERR_JSON_DUPLICATE_KEY');
    expect(outcome('{"toString":1,"constructor":2}')).toBe('accept');
  });

  it('makes __proto__ an own data property and never touches a prototype', () => {
    const value = parseJson('{"__proto__":{"polluted":true},"a":1}') as Record<string, JsonValue>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(canonicalize(value)).toBe('{"__proto__":{"polluted":true},"a":1}');
  });

  it('applies the number policy (SPEC §8)', () => {
    expect(outcome('9007199254740993')).toBe('ERR_JSON_UNSAFE_NUMBER');
    expect(outcome('-9007199254740993')).toBe('ERR_JSON_UNSAFE_NUMBER');
    expect(outcome('9007199254740992')).toBe('ERR_JSON_UNSAFE_NUMBER');
    expect(outcome('{"a":9007199254740993}')).toBe('ERR_JSON_UNSAFE_NUMBER');
    expect(outcome('1e20')).toBe('ERR_JSON_UNSAFE_NUMBER');
    expect(parseJson('1.5e300')).toBe(1.5e300);
    expect(parseJson('1E22')).toBe(1e22);
    for (const bad of ['1e400', '-1e400', '1e-400', '-1.0e-999999', '0.1e-400', '0.00001e-320']) {
      expect(outcome(bad), bad).toBe('ERR_JSON_UNSAFE_NUMBER');
    }
    expect(parseJson('9007199254740991')).toBe(9007199254740991);
    expect(parseJson('-9007199254740991')).toBe(-9007199254740991);
    expect(parseJson('123456789012345')).toBe(123456789012345);
    expect(parseJson('1234567890123456')).toBe(1234567890123456);
    expect(parseJson('4.9e-324')).toBe(5e-324);
    expect(parseJson('0.1')).toBe(0.1);
    expect(parseJson('1E+2')).toBe(100);
    expect(Object.is(parseJson('-0'), 0)).toBe(true);
    expect(Object.is(parseJson('0e-999999'), 0)).toBe(true);
    expect(Object.is(parseJson('-0.0e5'), 0)).toBe(true);
  });

  it('rejects unpaired surrogates, escaped or raw in a JS string', () => {
    for (const bad of ['"\\ud800"', '"\\udc00"', '"\\ud800\\ud800"', '"\\udc00\\ud800"', '"\\ud800x"']) {
      expect(outcome(bad), bad).toBe('ERR_JSON_LONE_SURROGATE');
    }
    for (const bad of [
      '"\ud800"',
      '"\udc00"',
      '"a\ud800b"',
      '"\udc00\ud800"',
      '{"\ud800":1}',
      '"\\n\ud800"',
    ]) {
      expect(outcome(bad), JSON.stringify(bad)).toBe('ERR_JSON_LONE_SURROGATE');
    }
    // Half raw, half escaped: the input text itself is not well-formed.
    expect(outcome('"\ud83d\\ude02"')).toBe('ERR_JSON_LONE_SURROGATE');
    expect(outcome('"\\ud83d\ude02"')).toBe('ERR_JSON_LONE_SURROGATE');
    expect(parseJson('"\ud83d\ude02"')).toBe('😂');
  });

  it('rejects bytes that are not UTF-8: overlongs, encoded surrogates, beyond U+10FFFF', () => {
    for (const bytes of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80]]) {
      expect(outcome(new Uint8Array([0x22, ...bytes, 0x22]))).toBe('ERR_JSON_INVALID_UTF8');
    }
    expect(parseJson(new Uint8Array([0x22, 0xf0, 0x9f, 0x98, 0x82, 0x22]))).toBe('😂');
  });

  it('reads a Uint8Array view at its own offset', () => {
    const backing = Buffer.from('xx[1,2]yy');
    expect(parseJson(backing.subarray(2, 7))).toEqual([1, 2]);
  });
});

describe('parseJson limits', () => {
  const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);

  it('allows maxDepth levels and denies one more (default 64)', () => {
    expect(outcome(nested(64))).toBe('accept');
    expect(outcome(nested(65))).toBe('ERR_JSON_TOO_DEEP');
    expect(outcome('{"a":'.repeat(65) + '1' + '}'.repeat(65))).toBe('ERR_JSON_TOO_DEEP');
    expect(outcome(nested(3), { maxDepth: 2 })).toBe('ERR_JSON_TOO_DEEP');
    expect(outcome('1', { maxDepth: 0 })).toBe('accept');
    expect(outcome('[]', { maxDepth: 0 })).toBe('ERR_JSON_TOO_DEEP');
    expect(outcome(nested(1000), { maxDepth: 1000 })).toBe('accept');
    expect(outcome('['.repeat(100_000))).toBe('ERR_JSON_TOO_DEEP');
  });

  it('checks maxBytes in UTF-8 bytes before parsing (default 1 MiB)', () => {
    const mib = 1024 * 1024;
    expect(outcome(' '.repeat(mib - 2) + '{}')).toBe('accept');
    // Too large is reported even for input that would fail to parse.
    expect(outcome('{'.repeat(mib + 1))).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome(new Uint8Array(mib + 1).fill(0xff))).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome('"éé"', { maxBytes: 5 })).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome('"éé"', { maxBytes: 6 })).toBe('accept');
    expect(outcome('"😂"', { maxBytes: 5 })).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome(Buffer.from('"éé"'), { maxBytes: 5 })).toBe('ERR_JSON_TOO_LARGE');
  });

  it("treats the caller's mistakes as TypeError", () => {
    expect(() => parseJson('1', { maxDepth: 1001 })).toThrow(TypeError);
    expect(() => parseJson('1', { maxDepth: -1 })).toThrow(TypeError);
    expect(() => parseJson('1', { maxBytes: 1.5 })).toThrow(TypeError);
    expect(() => parseJson(42 as unknown as string)).toThrow(TypeError);
  });
});
