/**
 * Policy engine decisions: allow / deny / escalate, obligations from annotations, merging,
 * fail-closed on Cedar errors, number mapping, determinism.
 * (SPEC §2 step 3, §6 "Policy as code", §8 Cedar row, OE-INV-004/005/014, FC-INV-4)
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isDeny } from '../../src/kernel/index.js';
import { isPermit, toCedarDecimal } from '../../src/policy/index.js';
import { baseDoc, call, mustEngine, mustLoad } from './fixtures.js';

const engine = mustEngine();

describe('decisions (SPEC §2 step 3, OE-INV-014)', () => {
  it('allows with the determining rule, rationale and tool risk', () => {
    const d = engine.evaluate(call('echo', { message: 'hi' }));
    expect(d).toMatchObject({
      outcome: 'allow',
      rules_fired: ['echo-ok'],
      rationale: 'echo is fine',
      risk: 'low',
      bundle_hash: engine.bundleHash,
      obligations: { approvals: 0, approver_roles: [], preview: false, max_cost_usd: null },
    });
    expect(isPermit(d)).toBe(true);
  });

  it('escalates with obligations read from annotations', () => {
    const d = engine.evaluate(call('pay', { amount: 150.25 }));
    expect(d).toMatchObject({
      outcome: 'escalate',
      rules_fired: ['pay-big'],
      obligations: {
        approvals: 2,
        approver_roles: ['finance', 'treasury'],
        preview: false,
        max_cost_usd: '500',
      },
      risk: 'medium',
    });
  });

  it('denies by forbid with ERR_POLICY_DENY and names the forbid (OE-INV-008)', () => {
    const d = engine.evaluate(call('echo', { message: 'hi' }, { tenant: 'globex' }));
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY', rules_fired: ['isolation'] });
    expect(isDeny(d)).toBe(true);
    expect(isPermit(d)).toBe(false);
  });

  it('denies by default when no permit matches, with no rules fired', () => {
    const doc = baseDoc();
    (doc['policies'] as Record<string, string>)['pay-big'] =
      '@approvals("1") permit (principal, action == Action::"pay", resource) when { principal.roles.contains("admin") };';
    const d = mustEngine(doc).evaluate(call('pay', { amount: 150 }));
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY', rules_fired: [] });
  });

  it('merges several permits: max approvals, union of roles, any preview, min cost, max risk', () => {
    const doc = baseDoc();
    const p = doc['policies'] as Record<string, string>;
    p['pay-a'] = `@approvals("1") @approver_role("ops") @preview("true") @max_cost_usd("250.5") @risk("high")
      permit (principal, action == Action::"pay", resource) when { context.tainted };`;
    p['pay-b'] = `@approvals("3") @approver_role("treasury") @max_cost_usd("900")
      permit (principal, action == Action::"pay", resource) when { context.tainted };`;
    const d = mustEngine(doc).evaluate(call('pay', { amount: 150 }, { tainted: true }));
    expect(d).toMatchObject({
      outcome: 'escalate',
      rules_fired: ['pay-a', 'pay-b', 'pay-big'],
      obligations: {
        approvals: 3,
        approver_roles: ['finance', 'ops', 'treasury'],
        preview: true,
        max_cost_usd: '250.5',
      },
      risk: 'high',
    });
  });

  it('escalates on preview alone', () => {
    const doc = baseDoc();
    (doc['policies'] as Record<string, string>)['echo-ok'] =
      '@preview("true") permit (principal, action == Action::"echo", resource);';
    expect(mustEngine(doc).evaluate(call('echo', { message: 'x' })).outcome).toBe('escalate');
  });
});

describe('fail closed (FC-INV-4, SPEC §8 Cedar row)', () => {
  it('a forbid that errors at run time is a deny, though Cedar alone would allow', () => {
    const doc = baseDoc();
    // Validates, but overflows for count >= 2: Cedar skips the erroring forbid and answers allow.
    (doc['policies'] as Record<string, string>)['overflow'] =
      `forbid (principal, action == Action::"pay", resource)
      when { context.params has count && context.params.count * 4611686018427387904 > 9 };`;
    const e = mustEngine(doc);
    expect(e.evaluate(call('pay', { amount: 5, count: 0 })).outcome).toBe('allow'); // control
    const d = e.evaluate(call('pay', { amount: 5, count: 3 }));
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_ERROR', rules_fired: ['overflow'] });
  });

  it('unknown tool → ERR_TOOL_UNKNOWN; bad params → ERR_PARAMS_INVALID', () => {
    expect(engine.evaluate(call('rm', {}))).toMatchObject({ code: 'ERR_TOOL_UNKNOWN' });
    expect(engine.evaluate(call('echo', { message: 'hi', x: 1 }))).toMatchObject({
      code: 'ERR_PARAMS_INVALID',
    });
  });

  it('reserved "__" keys cannot smuggle Cedar entities or extensions', () => {
    const doc = baseDoc();
    const tools = doc['tools'] as { parameters: { properties: Record<string, unknown> } }[];
    const entityRef = {
      type: 'object',
      additionalProperties: false,
      properties: { type: { type: 'string' }, id: { type: 'string' } },
    };
    tools[1]!.parameters.properties['tags'] = {
      type: 'array',
      items: { type: 'object', additionalProperties: false, properties: { __entity: entityRef } },
    };
    doc['schema'] = (doc['schema'] as string).replace(
      'tags?: Set<String>',
      'tags?: Set<{ __entity?: { type: String, id: String } }>',
    );
    const e = mustEngine(doc);
    expect(e.evaluate(call('pay', { amount: 5, tags: [{}] })).outcome).toBe('allow'); // control
    const d = e.evaluate(call('pay', { amount: 5, tags: [{ __entity: { type: 'Agent', id: 'root' } }] }));
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_INVALID' });
  });

  it('malformed input and thrown exceptions are denies', () => {
    expect(
      engine.evaluate(call('echo', { message: 'hi' }, { principal: { id: '', tenant: 'acme' } })),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_ERROR' });
    expect(engine.evaluate(call('echo', { message: 'hi' }, { tainted: 'no' as never }))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_ERROR',
    });
    const hostile = {
      get principal(): never {
        throw new Error('boom');
      },
    } as never;
    expect(engine.evaluate(hostile)).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_ERROR' });
  });

  it('a request that breaks the Cedar schema is ERR_POLICY_ERROR', () => {
    // JSON Schema says string, Cedar schema says Long: caught at request validation.
    const doc = baseDoc();
    doc['schema'] = (doc['schema'] as string).replace('message: String', 'message: Long');
    doc['policies'] = { p: 'permit (principal, action, resource);' };
    expect(mustEngine(doc).evaluate(call('echo', { message: 'hi' }))).toMatchObject({
      code: 'ERR_POLICY_ERROR',
    });
  });
});

describe('number mapping (SPEC §8: floats in context are rejected by Cedar)', () => {
  it('maps integers and ≤4-digit fractions to decimal where the schema says decimal', () => {
    expect(engine.evaluate(call('pay', { amount: 100 })).outcome).toBe('allow');
    expect(engine.evaluate(call('pay', { amount: 100.0001 })).outcome).toBe('escalate');
    expect(engine.evaluate(call('pay', { amount: 99.5 })).outcome).toBe('allow');
  });

  it('refuses numbers with no exact Cedar value', () => {
    for (const amount of [0.00001, 1e-7, 1.23456, 922337203685478, 2 ** 53 + 2]) {
      expect(engine.evaluate(call('pay', { amount }))).toMatchObject({ code: 'ERR_PARAMS_INVALID' });
    }
  });

  it('toCedarDecimal round-trips every value it accepts', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (n) => {
        const d = toCedarDecimal(n);
        if (d === null) return true;
        return Number(d) === n && /^-?\d+\.\d{1,4}$/.test(d);
      }),
    );
    expect(toCedarDecimal(1.5)).toBe('1.5');
    expect(toCedarDecimal(-3)).toBe('-3.0');
    expect(toCedarDecimal(0.1 + 0.2)).toBeNull();
  });
});

describe('determinism (GEI Determinism)', () => {
  it('same bundle and input → identical decisions, across engines and loads', () => {
    const a = mustEngine();
    const b = mustEngine();
    const input = call(
      'pay',
      { amount: 150.5, tags: ['b', 'a', 'b'] },
      { principal: { id: 'x', tenant: 'acme', roles: ['z', 'a'] } },
    );
    const first = JSON.stringify(a.evaluate(input));
    for (let i = 0; i < 20; i++) expect(JSON.stringify(a.evaluate(input))).toBe(first);
    expect(JSON.stringify(b.evaluate(input))).toBe(first);
    expect(mustLoad().hash).toBe(a.bundleHash);
  });

  it('decisions are frozen', () => {
    const d = engine.evaluate(call('echo', { message: 'hi' }));
    expect(Object.isFrozen(d)).toBe(true);
  });
});
