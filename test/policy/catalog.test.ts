/** Tool catalog: lookup and parameter validation that never changes the value. (OE-INV-004/005) */
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { createToolCatalog } from '../../src/policy/index.js';
import type { LoadedBundle } from '../../src/policy/index.js';
import { baseDoc, mustLoad, PAY_TOOL } from './fixtures.js';

describe('tool catalog (OE-INV-004/005)', () => {
  const catalog = createToolCatalog(mustLoad());

  it('finds declared tools and nothing else', () => {
    expect(catalog.getTool('echo')?.adapter).toEqual({ type: 'builtin', function: 'echo' });
    expect(catalog.getTool('nope')).toBeUndefined();
    expect(catalog.getTool('constructor')).toBeUndefined();
    expect(catalog.listTools()).toEqual(['echo', 'pay']);
  });

  it('accepts valid params', () => {
    expect(catalog.validateParams('echo', { message: 'hi' })).toEqual({ outcome: 'ok' });
  });

  const bad: [string, string, JsonValue][] = [
    ['an extra property', 'echo', { message: 'hi', extra: 1 }],
    ['a missing property', 'echo', {}],
    ['a wrong type', 'echo', { message: 5 }],
    ['a string for an integer (no coercion)', 'pay', { amount: 1, count: '2' }],
    ['a too-long string', 'echo', { message: 'x'.repeat(101) }],
    ['an array instead of an object', 'echo', ['hi']],
    ['null', 'echo', null],
    ['a __proto__ member', 'echo', JSON.parse('{"message":"hi","__proto__":{"admin":true}}') as JsonValue],
  ];
  for (const [name, tool, params] of bad) {
    it(`denies ${name} with ERR_PARAMS_INVALID`, () => {
      expect(catalog.validateParams(tool, params)).toMatchObject({
        outcome: 'deny',
        code: 'ERR_PARAMS_INVALID',
      });
    });
  }

  it('denies an unknown tool with ERR_TOOL_UNKNOWN', () => {
    expect(catalog.validateParams('nope', {})).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
  });

  it('never changes the params (no defaults, no removal): the hash is unchanged', () => {
    const doc = baseDoc();
    const withDefault = {
      ...PAY_TOOL,
      parameters: {
        ...PAY_TOOL.parameters,
        properties: { ...PAY_TOOL.parameters.properties, count: { type: 'integer', default: 7 } },
      },
    };
    doc['tools'] = [(doc['tools'] as unknown[])[0], withDefault];
    const c = createToolCatalog(mustLoad(doc));
    const params = { amount: 5 };
    const before = canonicalize(params);
    expect(c.validateParams('pay', params)).toEqual({ outcome: 'ok' });
    expect(canonicalize(params)).toBe(before);
    const extra = { amount: 5, extra: true };
    expect(c.validateParams('pay', extra)).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_INVALID' });
    expect(extra).toEqual({ amount: 5, extra: true });
  });

  it('accepts only bundles made by loadBundle', () => {
    const forged = { hash: 'x', document: mustLoad().document } as LoadedBundle;
    expect(() => createToolCatalog(forged)).toThrow(TypeError);
  });
});
