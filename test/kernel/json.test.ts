/**
 * Strict JSON parser (SPEC §3 "rejects duplicate keys", SPEC §8 JSON numbers, scenario 10),
 * replayed against JSONTestSuite (`VECTORS_DIR/json`). Decisions are documented in docs/json.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import {
  JSON_DEFAULT_MAX_BYTES,
  JSON_DEFAULT_MAX_DEPTH,
  JSON_MAX_DEPTH_CEILING,
  parseJson,
} from '../../src/kernel/json.js';
import type { JsonValue } from '../../src/kernel/json.js';
import { canonicalize } from '../../src/kernel/canonical.js';
import {
  JSON_TEST_SUITE_PARSING_DIR,
  JSON_TEST_SUITE_TRANSFORM_DIR,
  jsonParseOracle,
  outcome,
} from '../support/json-outcome.js';
import type { Outcome } from '../support/json-outcome.js';

const parsingFiles = readdirSync(JSON_TEST_SUITE_PARSING_DIR)
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

describe('JSONTestSuite test_parsing (SPEC §3, scenario 10)', () => {
  it('holds 318 files and a decision for every i_ file', () => {
    expect(parsingFiles).toHaveLength(318);
    const iFiles = parsingFiles.filter((f) => f.startsWith('i_'));
    expect(Object.keys(I_DECISIONS).sort()).toEqual(iFiles);
    for (const f of Object.keys(Y_EXCEPTIONS)) expect(parsingFiles).toContain(f);
  });

  it.each(parsingFiles.filter((f) => f.startsWith('y_')))('%s is accepted and equals JSON.parse', (f) => {
    const bytes = read(JSON_TEST_SUITE_PARSING_DIR, f);
    const expected = Y_EXCEPTIONS[f];
    if (expected !== undefined) {
      expect(outcome(bytes)).toBe(expected);
      return;
    }
    expect(parseJson(bytes)).toEqual(jsonParseOracle(bytes.toString('utf8')));
  });

  it.each(parsingFiles.filter((f) => f.startsWith('n_')))('%s is rejected', (f) => {
    const result = outcome(read(JSON_TEST_SUITE_PARSING_DIR, f));
    expect(result).toMatch(/^ERR_JSON_/);
    expect(result).not.toBe('ERR_JSON_TOO_LARGE');
  });

  it.each(Object.entries(I_DECISIONS))('%s is decided: %s', (f, expected) => {
    expect(outcome(read(JSON_TEST_SUITE_PARSING_DIR, f))).toBe(expected);
  });

  it.each(parsingFiles.filter((f) => isUtf8(read(JSON_TEST_SUITE_PARSING_DIR, f))))(
    '%s: a JS string gives the same outcome as its UTF-8 bytes',
    (f) => {
      const bytes = read(JSON_TEST_SUITE_PARSING_DIR, f);
      expect(outcome(bytes.toString('utf8'))).toBe(outcome(bytes));
    },
  );
});

describe('JSONTestSuite test_transform', () => {
  it('has a decision for every file', () => {
    expect(Object.keys(TRANSFORM_DECISIONS).sort()).toEqual(
      readdirSync(JSON_TEST_SUITE_TRANSFORM_DIR).sort(),
    );
  });

  it.each(Object.entries(TRANSFORM_DECISIONS))('%s', (f, decision) => {
    const bytes = read(JSON_TEST_SUITE_TRANSFORM_DIR, f);
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

describe('SPEC §3 strict JSON (no alternate spellings): every grammar check is load-bearing', () => {
  it('denies a container closed by the wrong bracket, and a malformed member name or literal', () => {
    for (const bad of [
      '{"a":1]',
      '[1}',
      '[1,2}',
      '{"a":[1}]',
      '[{"a":1]]',
      '[trux]',
      'fals',
      'nulL',
      '{xa":1}',
      '{a:1}',
      '{"a":1,b":2}',
      '{"a" 1}',
      '{"a"=1}',
      '[1 2]',
      '{"a":1 "b":2}',
      '[]]',
      '{}}',
      '[1]1',
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_SYNTAX');
    }
    expect(parseJson('{"a":[1,{}],"b":{"c":[]}}')).toEqual({ a: [1, {}], b: { c: [] } });
  });

  it('allows exactly the four RFC 8259 whitespace characters, between every token', () => {
    for (const ws of [' ', '\t', '\n', '\r']) {
      const text = `${ws}{${ws}"a"${ws}:${ws}[${ws}1${ws},${ws}true${ws}]${ws},${ws}"b"${ws}:${ws}{${ws}}${ws}}${ws}`;
      expect(parseJson(text), JSON.stringify(ws)).toEqual({ a: [1, true], b: {} });
      expect(parseJson(`[${ws}]`), JSON.stringify(ws)).toEqual([]);
    }
    for (const ws of ['\f', '\v', '\u0000', '\u00a0', '\u2028', '\u3000', '\ufeff']) {
      expect(outcome(`[${ws}1]`), JSON.stringify(ws)).toBe('ERR_JSON_SYNTAX');
      expect(outcome(`[1${ws}]`), JSON.stringify(ws)).toBe('ERR_JSON_SYNTAX');
    }
  });

  it('decodes every \\u hex digit, upper and lower case, and denies any other character', () => {
    expect(parseJson('"\\u0123\\u4567\\u89ab\\uCDEF\\uabcd\\uABCD\\ueF01\\u0000"')).toBe(
      '\u0123\u4567\u89ab\ucdef\uabcd\uabcd\uef01\u0000',
    );
    expect(parseJson('"x\\u0041\\u005A\\u0061\\u007a\\u0030\\u0039"')).toBe('xAZaz09');
    for (const bad of ['g', 'G', '`', '@', '/', ':', ' ', '-']) {
      for (const at of [0, 1, 2, 3]) {
        const hex = '0041'.slice(0, at) + bad + '0041'.slice(at + 1);
        expect(outcome(`"\\u${hex}"`), hex).toBe('ERR_JSON_SYNTAX');
      }
    }
    expect(outcome('"\\u"')).toBe('ERR_JSON_SYNTAX');
    expect(outcome('"\\u004')).toBe('ERR_JSON_SYNTAX');
    expect(outcome('"\\U0041"')).toBe('ERR_JSON_SYNTAX');
  });

  it('denies a control character in a string, also after an escape, and allows U+0020 and U+007F', () => {
    for (const c of ['\u0000', '\u0001', '\u001f', '\n', '\t']) {
      expect(outcome(`"${c}"`), JSON.stringify(c)).toBe('ERR_JSON_SYNTAX');
      expect(outcome(`"\\n${c}"`), JSON.stringify(c)).toBe('ERR_JSON_SYNTAX');
      expect(outcome(`"\\u0041x${c}"`), JSON.stringify(c)).toBe('ERR_JSON_SYNTAX');
      expect(outcome(new Uint8Array([0x22, 0x5c, 0x74, c.charCodeAt(0), 0x22])), JSON.stringify(c)).toBe(
        'ERR_JSON_SYNTAX',
      );
    }
    expect(parseJson('" \u007f"')).toBe(' \u007f');
    expect(parseJson('"\\t \u007f"')).toBe('\t \u007f');
    expect(parseJson('"a\\"b\\\\c\\/d"')).toBe('a"b\\c/d');
  });

  it('denies every escape letter outside RFC 8259 §7, and an escape cut short', () => {
    for (const e of ['a', 'x', 'v', '0', "'", 'U', 'B', 'N', ' ']) {
      expect(outcome(`"\\${e}"`), e).toBe('ERR_JSON_SYNTAX');
      expect(outcome(`"ab\\${e}cd"`), e).toBe('ERR_JSON_SYNTAX');
    }
    expect(outcome('"\\')).toBe('ERR_JSON_SYNTAX');
    expect(outcome('"\\"')).toBe('ERR_JSON_SYNTAX');
    expect(outcome('"\\n')).toBe('ERR_JSON_SYNTAX');
  });

  it('reads a string with escapes exactly: chunks before, between and after escapes', () => {
    expect(parseJson('"ab\\ncd\\u00e9ef\\tgh"')).toBe('ab\ncdéef\tgh');
    expect(parseJson('["\\n",1,"x\\\\"]')).toEqual(['\n', 1, 'x\\']);
    expect(parseJson('{"k\\u0031":"v\\"","k2":"\\r"}')).toEqual({ k1: 'v"', k2: '\r' });
  });
});

describe('SPEC §3 strict JSON: unpaired surrogates are denied (ERR_JSON_LONE_SURROGATE), pairs kept', () => {
  it('escaped: a reversed pair, a lone half, a high surrogate followed by anything but an escaped low one', () => {
    for (const bad of [
      '"\\udc00\\ud800"',
      '"\\ude02\\ud83d"',
      '"\\udbff"',
      '"\\udfff"',
      '"\\ud800\\ue000"',
      '"\\ud800\\udbff"',
      '"\\ud800\\u0041"',
      '"\\ud800XXdc00"',
      '"\\ud800\\\\dc00"',
      '"\\ud800\\n\\udc00"',
      '"\\ud800\\"',
      '"\\ud800',
      '"\\ud800\\ud800\\udc00"',
      '"a\\udc00"',
      '{"\\ud800":1}',
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_LONE_SURROGATE');
    }
    expect(parseJson('"\\ud800\\udc00\\udbff\\udfff\\ud83d\\ude02"')).toBe('\u{10000}\u{10ffff}😂');
    expect(parseJson('"\\uD83D\\uDE02"')).toBe('😂');
    expect(parseJson('"\\ud7ff\\ue000\\uffff"')).toBe('\ud7ff\ue000\uffff');
  });

  it('raw in a JS string: before and after an escape, a reversed pair, each half alone', () => {
    for (const prefix of ['', 'a', '\\n', '\\u0041']) {
      for (const bad of [
        '\ud800',
        '\udc00',
        '\udbff',
        '\udfff',
        '\udc00\ud800',
        '\ud800\ue000',
        '\ud800\ud800',
      ]) {
        expect(outcome(`"${prefix}${bad}x"`), JSON.stringify(prefix + bad)).toBe('ERR_JSON_LONE_SURROGATE');
        expect(outcome(`"${prefix}${bad}"`), JSON.stringify(prefix + bad)).toBe('ERR_JSON_LONE_SURROGATE');
      }
      const ok = '\ud800\udc00\udbff\udfff\ud83d\ude02\ud7ff\ue000';
      expect(parseJson(`"${prefix}${ok}"`), prefix).toBe(JSON.parse(`"${prefix}"`) + ok);
    }
  });
});

describe('SPEC §8 JSON numbers: every spelling RFC 8259 allows, nothing else, and the safe range', () => {
  it('reads every first digit and every spelling of fraction and exponent', () => {
    for (const text of [
      '0',
      '1',
      '5',
      '9',
      '-0',
      '-1',
      '-9',
      '10',
      '90',
      '19',
      '1.5',
      '-9.25',
      '0.5',
      '1e2',
      '1E2',
    ]) {
      expect(parseJson(text), text).toBe(Number(text) === 0 ? 0 : Number(text));
      expect(parseJson(`[${text}]`), text).toEqual([Number(text) === 0 ? 0 : Number(text)]);
    }
    for (const text of ['1e+2', '1E+2', '1e-2', '1E-2', '2.5e3', '2.5E-3', '0e0', '0E1', '0.0e-5', '-0E+3']) {
      expect(parseJson(text), text).toBe(Number(text) === 0 ? 0 : Number(text));
    }
    expect(parseJson('[123456789012345,-123456789012345,9876543210]')).toEqual([
      123456789012345, -123456789012345, 9876543210,
    ]);
    for (const bad of [
      '-',
      '-a',
      '-.5',
      '1.e5',
      '1.',
      '1e+',
      '1e-',
      '1E',
      '1ea',
      '00',
      '-01',
      '0x10',
      '1_0',
      'Infinity',
      'NaN',
      '-Infinity',
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_SYNTAX');
    }
  });

  it('denies a non-zero literal that underflows to 0 whatever its digits, and accepts a zero one', () => {
    for (const bad of [
      '9e-400',
      '-9e-400',
      '0.9e-400',
      '0.000009E-400',
      '5e-325',
      '2e-324',
      '0.00000000000000000001e-310',
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_UNSAFE_NUMBER');
    }
    for (const zero of ['0e-400', '0.0000e-400', '-0.0E-400', '0E9', '0e9', '0.0']) {
      expect(Object.is(parseJson(zero), 0), zero).toBe(true);
    }
  });

  it('draws the integer line at 2^53−1, and at 1e21 only for exponent or fraction spellings', () => {
    expect(parseJson('[9007199254740991,-9007199254740991]')).toEqual([9007199254740991, -9007199254740991]);
    expect(parseJson('9007199254740991.0')).toBe(9007199254740991);
    expect(parseJson('9.007199254740991e15')).toBe(9007199254740991);
    for (const bad of [
      '9007199254740992',
      '-9007199254740992',
      '9007199254740992.0',
      '9.007199254740992e15',
      '-9.007199254740992E15',
      '999999999999999999999',
      '-999999999999999999999',
      '9.99e20',
      '1000000000000000000000',
      '-1000000000000000000000',
      '12345678901234567890123',
    ]) {
      expect(outcome(bad), bad).toBe('ERR_JSON_UNSAFE_NUMBER');
    }
    expect(parseJson('1e21')).toBe(1e21);
    expect(parseJson('-1e21')).toBe(-1e21);
    expect(parseJson('1.0E21')).toBe(1e21);
    expect(parseJson('1.5e21')).toBe(1.5e21);
  });
});

describe('SPEC §3 strict JSON limits: exact boundaries (maxBytes before parsing, maxDepth while parsing)', () => {
  it('maxBytes: exactly max is parsed, max+1 denied, for a string and for bytes', () => {
    const text = '["' + 'a'.repeat(96) + '"]'; // 100 bytes
    const multi = '["' + 'é'.repeat(48) + '"]'; // 100 bytes in 52 code units
    for (const t of [text, multi]) {
      expect(outcome(t, { maxBytes: 100 })).toBe('accept');
      expect(outcome(t, { maxBytes: 99 })).toBe('ERR_JSON_TOO_LARGE');
      expect(outcome(Buffer.from(t), { maxBytes: 100 })).toBe('accept');
      expect(outcome(Buffer.from(t), { maxBytes: 99 })).toBe('ERR_JSON_TOO_LARGE');
      expect(outcome(new Uint8Array(Buffer.from(t)), { maxBytes: 100 })).toBe('accept');
    }
    // Three UTF-8 bytes per code unit: exactly 3 × length is within the limit.
    expect(outcome('"€€"', { maxBytes: 8 })).toBe('accept');
    expect(outcome('"€€"', { maxBytes: 7 })).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome('"\u0800"', { maxBytes: 5 })).toBe('accept');
    expect(outcome('"\u0800"', { maxBytes: 4 })).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome('"\u0800\u0800"', { maxBytes: 12 })).toBe('accept');
    expect(outcome('1', { maxBytes: 1 })).toBe('accept');
    expect(outcome('1', { maxBytes: 0 })).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome('', { maxBytes: 0 })).toBe('ERR_JSON_SYNTAX');
    expect(outcome(new Uint8Array(0), { maxBytes: 0 })).toBe('ERR_JSON_SYNTAX');
    expect(outcome('1', { maxBytes: Number.MAX_SAFE_INTEGER })).toBe('accept');
    expect(outcome(JSON.stringify('x'.repeat(JSON_DEFAULT_MAX_BYTES - 2)))).toBe('accept');
    expect(outcome(JSON.stringify('x'.repeat(JSON_DEFAULT_MAX_BYTES - 1)))).toBe('ERR_JSON_TOO_LARGE');
    expect(outcome(new Uint8Array(JSON_DEFAULT_MAX_BYTES).fill(0x20))).toBe('ERR_JSON_SYNTAX');
    expect(outcome(new Uint8Array(JSON_DEFAULT_MAX_BYTES + 1).fill(0x20))).toBe('ERR_JSON_TOO_LARGE');
  });

  it('maxDepth: exactly maxDepth levels of arrays or objects are parsed, one more is denied', () => {
    const arrays = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    const objects = (n: number): string => '{"a":'.repeat(n) + '0' + '}'.repeat(n);
    const emptyObjects = (n: number): string => '{"a":'.repeat(n - 1) + '{}' + '}'.repeat(n - 1);
    const mixed = (n: number): string => '[{"a":'.repeat(n / 2) + '1' + '}]'.repeat(n / 2);
    for (const depth of [1, 2, 10, JSON_DEFAULT_MAX_DEPTH]) {
      const limits = depth === JSON_DEFAULT_MAX_DEPTH ? undefined : { maxDepth: depth };
      for (const build of [arrays, objects, emptyObjects]) {
        expect(outcome(build(depth), limits), `${depth}`).toBe('accept');
        expect(outcome(build(depth + 1), limits), `${depth}`).toBe('ERR_JSON_TOO_DEEP');
      }
      if (depth % 2 === 0) {
        expect(outcome(mixed(depth), limits)).toBe('accept');
        expect(outcome('[' + mixed(depth) + ']', limits)).toBe('ERR_JSON_TOO_DEEP');
      }
    }
    expect(outcome('{}', { maxDepth: 0 })).toBe('ERR_JSON_TOO_DEEP');
    expect(outcome('"s"', { maxDepth: 0 })).toBe('accept');
    expect(outcome(arrays(JSON_MAX_DEPTH_CEILING), { maxDepth: JSON_MAX_DEPTH_CEILING })).toBe('accept');
    expect(outcome(arrays(JSON_MAX_DEPTH_CEILING + 1), { maxDepth: JSON_MAX_DEPTH_CEILING })).toBe(
      'ERR_JSON_TOO_DEEP',
    );
    // Siblings do not add depth.
    expect(outcome('[[],[1],{"a":1},{}]', { maxDepth: 2 })).toBe('accept');
    expect(outcome('[[],[1],{"a":[]},{}]', { maxDepth: 2 })).toBe('ERR_JSON_TOO_DEEP');
  });

  it("input that is not a string or a Uint8Array is the caller's mistake (TypeError), even another typed array", () => {
    expect(() => parseJson(new Uint16Array([0x5b5b, 0x5d5d]) as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => parseJson(Buffer.from('[1]').buffer as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => parseJson(null as unknown as string)).toThrow(TypeError);
    expect(() => parseJson('1', { maxDepth: 1.5 })).toThrow(TypeError);
    expect(() => parseJson('1', { maxBytes: -1 })).toThrow(TypeError);
    expect(() => parseJson('1', { maxBytes: Number.MAX_SAFE_INTEGER + 1 })).toThrow(TypeError);
    expect(() => parseJson('1', { maxBytes: Infinity })).toThrow(TypeError);
    expect(() => parseJson('1', { maxDepth: NaN })).toThrow(TypeError);
    expect(parseJson('1', { maxDepth: JSON_MAX_DEPTH_CEILING })).toBe(1);
  });
});
