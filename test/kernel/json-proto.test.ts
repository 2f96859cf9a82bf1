/**
 * A `"__proto__"` member (SPEC §3 strict JSON: the parsed value is exactly what the text says):
 * the parser must define it as an ordinary own data property, with the same attributes plain
 * assignment gives every other member, so code reading the parsed tree sees no difference.
 */
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/kernel/json.js';

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
