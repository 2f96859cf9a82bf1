/**
 * Edge cases of the strict parser that the broader suites leave open.
 *
 * A `"__proto__"` member (SPEC §3 strict JSON: the parsed value is exactly what the text says):
 * the parser must define it as an ordinary own data property, with the same attributes plain
 * assignment gives every other member, so code reading the parsed tree sees no difference.
 */
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/kernel/json.js';
import { outcome } from '../support/json-outcome.js';

describe('SPEC §3 strict JSON: "__proto__" is a member like any other', () => {
  it('is an own data property that is writable, enumerable and configurable, as "a" is', () => {
    const value = parseJson('{"__proto__":[1],"a":2}') as Record<string, unknown>;
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')).toEqual({
      value: [1],
      writable: true,
      enumerable: true,
      configurable: true,
    });
    expect(Object.getOwnPropertyDescriptor(value, 'a')).toEqual({
      value: 2,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  });
});

describe('SPEC §3 strict JSON: a low surrogate never opens a pair (ERR_JSON_LONE_SURROGATE)', () => {
  it('escaped: a low surrogate followed by an escaped low one, and a high one followed by a lookalike of \\u', () => {
    for (const bad of ['"\\udc00\\udc00"', '"\\udfff\\udfff"', '"a\\udc00\\udfffb"', '"\\ud800Xudc00"']) {
      expect(outcome(bad), bad).toBe('ERR_JSON_LONE_SURROGATE');
    }
  });

  it('raw in a JS string: a low surrogate followed by a low one, with and without an escape before it', () => {
    for (const prefix of ['', 'a', '\\n', '\\u0041']) {
      for (const bad of ['\udc00\udc00', '\udfff\udc00']) {
        expect(outcome(`"${prefix}${bad}"`), JSON.stringify(prefix + bad)).toBe('ERR_JSON_LONE_SURROGATE');
      }
    }
  });
});
