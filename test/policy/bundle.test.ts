/**
 * Hash-addressed bundles: hashing, tamper detection, and everything loadBundle must reject.
 * (SPEC §6 "Policy as code", §7 scenario 13, OE-INV-005/014, L7 policy tampering)
 */
import { describe, expect, it } from 'vitest';
import { canonicalize, sha256Hex } from '../../src/kernel/index.js';
import { hashBundle, loadBundle } from '../../src/policy/index.js';
import { ECHO_TOOL, PAY_TOOL, SCHEMA, baseDoc, mustLoad } from './fixtures.js';

function codeOf(doc: unknown): string | undefined {
  const r = loadBundle(JSON.stringify(doc));
  return 'outcome' in r ? r.code : undefined;
}

describe('bundle hash (OE-INV-014, SPEC §6)', () => {
  it('is lower-hex SHA-256 of the canonical bytes', () => {
    const doc = baseDoc();
    const b = mustLoad(doc);
    expect(b.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.hash).toBe(sha256Hex(canonicalize(doc as never)));
    expect(hashBundle(doc as never)).toBe(b.hash);
  });

  it('does not depend on whitespace or member order', () => {
    const doc = baseDoc();
    const reordered = Object.fromEntries(Object.entries(doc).reverse());
    const a = loadBundle(JSON.stringify(doc));
    const b = loadBundle(JSON.stringify(reordered, null, 2));
    expect('hash' in a && 'hash' in b && a.hash === b.hash).toBe(true);
  });

  it('loads with the matching expected hash', () => {
    const doc = baseDoc();
    const h = mustLoad(doc).hash;
    const again = loadBundle(JSON.stringify(doc), h);
    expect('hash' in again && again.hash).toBe(h);
  });

  it('denies a tampered bundle against its pinned hash (scenario 13)', () => {
    const doc = baseDoc();
    const pinned = mustLoad(doc).hash;
    const tampered = baseDoc();
    const policies = tampered['policies'] as Record<string, string>;
    policies['pay-small'] = policies['pay-small']!.replace('"100.0"', '"1000.0"');
    expect(mustLoad(tampered).hash).not.toBe(pinned);
    const r = loadBundle(JSON.stringify(tampered), pinned);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_BUNDLE_INVALID' });
  });

  it('a bundle loaded again is the one loaded before, for the same options only; a wrong pinned hash still denies', () => {
    const text = JSON.stringify(baseDoc());
    const first = mustLoad(baseDoc());
    expect(loadBundle(text)).toBe(first);
    expect(loadBundle(text, first.hash)).toBe(first);
    expect(loadBundle(text, '0'.repeat(64))).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    // The options are part of what loading checks: the same bytes against other builtins.
    expect(loadBundle(text, undefined, { builtins: ['pay', 'echo'] })).not.toBe(first);
    expect(loadBundle(text, undefined, { builtins: ['echo'] })).toMatchObject({
      code: 'ERR_POLICY_BUNDLE_INVALID',
      reason: expect.stringContaining('pay'),
    });
  });

  it('keeps the four bundles loaded last: a fifth evicts the least recently loaded, not one used since', () => {
    const texts = [0, 1, 2, 3, 4].map((i) => JSON.stringify({ ...baseDoc(), name: `cache-${i}` }));
    const loaded = texts.slice(0, 4).map((t) => loadBundle(t));
    expect(loadBundle(texts[0]!)).toBe(loaded[0]); // used again: now the most recent
    loadBundle(texts[4]!); // evicts cache-1, the least recently loaded
    expect(loadBundle(texts[0]!)).toBe(loaded[0]);
    expect(loadBundle(texts[1]!)).not.toBe(loaded[1]);
  });

  it('denies a malformed expected hash', () => {
    expect(loadBundle(JSON.stringify(baseDoc()), 'ABC')).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });
});

describe('loadBundle rejects (SPEC §6, OE-INV-005)', () => {
  const cases: [string, (d: Record<string, unknown>) => unknown][] = [
    ['an unknown top-level field', (d) => ({ ...d, extra: 1 })],
    ['a missing field', (d) => ({ ...d, schema: undefined })],
    ['a wrong format', (d) => ({ ...d, format: 'failclosed.policy-bundle/v2' })],
    ['an unknown tool field', (d) => ({ ...d, tools: [{ ...ECHO_TOOL, timeout: 5 }, PAY_TOOL] })],
    ['an unknown settings field', (d) => ({ ...d, settings: { approval_ttl: 5 } })],
    [
      'an unknown preview field',
      (d) => ({ ...d, tools: [{ ...ECHO_TOOL, preview: { irreversible: true, x: 1 } }, PAY_TOOL] }),
    ],
    ['a bad risk class', (d) => ({ ...d, tools: [{ ...ECHO_TOOL, risk: 'extreme' }, PAY_TOOL] })],
    [
      'an adapter without a type',
      (d) => ({ ...d, tools: [{ ...ECHO_TOOL, adapter: { name: 'echo' } }, PAY_TOOL] }),
    ],
    ['a duplicate tool name', (d) => ({ ...d, tools: [ECHO_TOOL, ECHO_TOOL, PAY_TOOL] })],
    ['no policies', (d) => ({ ...d, policies: {} })],
    ['invalid Cedar', (d) => ({ ...d, policies: { x: 'permit (principal, action, resource' } })],
    [
      'two policies under one id',
      (d) => ({
        ...d,
        policies: { x: 'permit(principal,action,resource);forbid(principal,action,resource);' },
      }),
    ],
    ['a template', (d) => ({ ...d, policies: { x: 'permit(principal == ?principal, action, resource);' } })],
    ['a bad policy id', (d) => ({ ...d, policies: { '../x': 'permit(principal,action,resource);' } })],
    ['an invalid Cedar schema', (d) => ({ ...d, schema: 'entity Agent in [Nope] {' })],
    [
      'a schema without the entity model',
      (d) => ({ ...d, schema: SCHEMA.replace('entity Agent in [Tenant]', 'entity Agent') }),
    ],
    [
      'a tool with no Cedar action',
      (d) => ({ ...d, tools: [ECHO_TOOL, PAY_TOOL, { ...ECHO_TOOL, name: 'other' }] }),
    ],
    [
      'a policy that fails validation (unknown attribute)',
      (d) => ({
        ...d,
        policies: {
          x: 'permit(principal, action == Action::"echo", resource) when { context.params.nope == 1 };',
        },
      }),
    ],
    [
      'a policy comparing incompatible types',
      (d) => ({
        ...d,
        policies: {
          x: 'forbid(principal, action == Action::"echo", resource) when { context.params.message == 1 };',
        },
      }),
    ],
    [
      'a policy that can never fire (validation warning)',
      (d) => ({
        ...d,
        policies: { x: 'forbid(principal, action == Action::"echo", resource) when { false };' },
      }),
    ],
    [
      'an unknown annotation',
      (d) => ({ ...d, policies: { x: '@approval("2") permit(principal, action, resource);' } }),
    ],
    [
      'a bad @approvals value',
      (d) => ({ ...d, policies: { x: '@approvals("two") permit(principal, action, resource);' } }),
    ],
    [
      'too many approvals',
      (d) => ({ ...d, policies: { x: '@approvals("11") permit(principal, action, resource);' } }),
    ],
    [
      'a bad @preview value',
      (d) => ({ ...d, policies: { x: '@preview("yes") permit(principal, action, resource);' } }),
    ],
    [
      'a bad @max_cost_usd',
      (d) => ({ ...d, policies: { x: '@max_cost_usd("1e3") permit(principal, action, resource);' } }),
    ],
    [
      '@approver_role without approvals',
      (d) => ({ ...d, policies: { x: '@approver_role("t") permit(principal, action, resource);' } }),
    ],
    [
      'obligations on a forbid',
      (d) => ({ ...d, policies: { x: '@approvals("1") forbid(principal, action, resource);' } }),
    ],
  ];
  for (const [name, edit] of cases) {
    it(name, () => {
      expect(codeOf(edit(baseDoc()))).toBe('ERR_POLICY_BUNDLE_INVALID');
    });
  }

  it('a policy with the id "__proto__": refused; its forbid is in the hashed text, so it must not vanish', () => {
    const forbid = 'forbid (principal, action, resource);';
    const text = JSON.stringify(baseDoc()).replace(
      '"policies":{',
      `"policies":{"__proto__":${JSON.stringify(forbid)},`,
    );
    expect(text).toContain('"__proto__"');
    expect(loadBundle(text)).toMatchObject({
      code: 'ERR_POLICY_BUNDLE_INVALID',
      reason: expect.stringContaining('__proto__'),
    });
  });

  it('duplicate JSON keys and non-JSON input', () => {
    const text = JSON.stringify(baseDoc()).replace('"name":"test"', '"name":"test","name":"evil"');
    expect(loadBundle(text)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    expect(loadBundle('not json')).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    expect(loadBundle('[]')).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });
});

describe('tool parameter schemas are closed JSON Schemas (OE-INV-004)', () => {
  function withParams(parameters: unknown, extra: Record<string, unknown> = {}): string | undefined {
    const d = baseDoc();
    d['tools'] = [{ ...ECHO_TOOL, parameters: { ...(parameters as object), ...extra } }, PAY_TOOL];
    return codeOf(d);
  }
  const p = ECHO_TOOL.parameters;

  it('accepts the base schema (control)', () => {
    expect(withParams(p)).toBeUndefined();
  });
  it('rejects an open top-level object', () => {
    expect(withParams({ ...p, additionalProperties: true })).toBe('ERR_POLICY_BUNDLE_INVALID');
    const { additionalProperties: _, ...open } = p;
    expect(withParams(open)).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('rejects a non-object schema', () => {
    expect(withParams({ type: 'string' })).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('rejects an open nested object', () => {
    const nested = {
      ...p,
      properties: { message: { type: 'object', properties: { a: { type: 'string' } } } },
    };
    expect(withParams(nested)).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('rejects unknown keywords (ajv strict) and unknown formats', () => {
    expect(withParams(p, { maxLenght: 3 })).toBe('ERR_POLICY_BUNDLE_INVALID');
    const fmt = { ...p, properties: { message: { type: 'string', format: 'no-such-format' } } };
    expect(withParams(fmt)).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('rejects an unsupported $schema and an unresolvable $ref', () => {
    expect(withParams(p, { $schema: 'http://json-schema.org/draft-04/schema#' })).toBe(
      'ERR_POLICY_BUNDLE_INVALID',
    );
    const ref = { ...p, properties: { message: { $ref: 'https://example.com/x.json' } } };
    expect(withParams(ref)).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('rejects a schema its draft’s meta-schema refuses, in either draft', () => {
    const negative = { ...p, properties: { message: { type: 'string', maxLength: -1 } } };
    for (const $schema of [
      'http://json-schema.org/draft-07/schema#',
      'https://json-schema.org/draft/2020-12/schema',
    ]) {
      const d = baseDoc();
      d['tools'] = [{ ...ECHO_TOOL, parameters: { ...negative, $schema } }, PAY_TOOL];
      expect(loadBundle(JSON.stringify(d))).toMatchObject({
        code: 'ERR_POLICY_BUNDLE_INVALID',
        reason: expect.stringContaining('schema is invalid'),
      });
    }
    expect(withParams(negative)).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
  it('accepts draft-07 and draft 2020-12 explicitly', () => {
    expect(withParams(p, { $schema: 'http://json-schema.org/draft-07/schema#' })).toBeUndefined();
    expect(withParams(p, { $schema: 'https://json-schema.org/draft/2020-12/schema' })).toBeUndefined();
  });
  it('rejects a JSON Schema whose properties differ from the Cedar params record', () => {
    const more = { ...p, properties: { ...p.properties, extra: { type: 'string' } } };
    expect(withParams(more)).toBe('ERR_POLICY_BUNDLE_INVALID');
    expect(withParams({ ...p, required: [] })).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
});
