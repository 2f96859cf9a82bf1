/**
 * The pure parts of a decision: the check of what the policy engine answered (FC-INV-4,
 * OE-INV-003, OE-INV-014), the decision record payload (OE-INV-014, FC-INV-5) and the envelope's
 * `constraints` claim (SPEC §3, OE-INV-006/007).
 */
import { describe, expect, it } from 'vitest';
import {
  constraintsFor,
  decisionPayload,
  DEFAULT_CONSTRAINTS,
  issuedConstraints,
} from '../../src/control-plane/index.js';
import type { DecisionFacts } from '../../src/control-plane/decision-record.js';
import { MAX_TOOL_TIMEOUT_MS } from '../../src/control-plane/decision-record.js';
import { parsePolicyAnswer } from '../../src/control-plane/policy-decision.js';
import type { Obligations, ToolSpec } from '../../src/policy/index.js';
import { MAX_OUTPUT_BYTES } from '../../src/kernel/index.js';

const HASH = 'a'.repeat(64);
const OBLIGATIONS = { approvals: 0, approver_roles: [], preview: false, max_cost_usd: null };
const decision = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  outcome: 'allow',
  bundle_hash: HASH,
  rules_fired: ['r1'],
  rationale: 'because',
  risk: 'low',
  obligations: { ...OBLIGATIONS },
  ...over,
});
const code = (v: unknown): string =>
  typeof v === 'object' && v !== null && 'code' in v ? String(v.code) : 'NONE';

describe('FC-INV-4: an engine answer the pipeline cannot trust is ERR_POLICY_ERROR, never an allow', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'allow'],
    ['an array', [decision()]],
    ['an unknown outcome', decision({ outcome: 'permit' })],
    ['rules_fired not a list', decision({ rules_fired: 'r1' })],
    ['rules_fired with a number', decision({ rules_fired: ['r1', 2] })],
    ['a non-string rationale', decision({ rationale: 7 })],
    ['obligations missing', decision({ obligations: undefined })],
    ['obligations an array', decision({ obligations: [] })],
    ['a negative approval count', decision({ obligations: { ...OBLIGATIONS, approvals: -1 } })],
    ['a fractional approval count', decision({ obligations: { ...OBLIGATIONS, approvals: 1.5 } })],
    ['approver roles not a list', decision({ obligations: { ...OBLIGATIONS, approver_roles: 'ops' } })],
    ['approver roles with a number', decision({ obligations: { ...OBLIGATIONS, approver_roles: [1] } })],
    ['a non-boolean preview', decision({ obligations: { ...OBLIGATIONS, preview: 'yes' } })],
    ['a numeric cost cap', decision({ obligations: { ...OBLIGATIONS, max_cost_usd: 5 } })],
    ['an unknown risk', decision({ risk: 'extreme' })],
    ['a non-string risk', decision({ risk: 1 })],
    ['a plain deny without a code', { outcome: 'deny', reason: 'x' }],
    ['a plain deny with an unknown code', { outcome: 'deny', code: 'ERR_NOPE', reason: 'x' }],
    ['a decision for another bundle', decision({ bundle_hash: 'b'.repeat(64) })],
    ['a deny decision for another bundle', decision({ outcome: 'deny', bundle_hash: 'b'.repeat(64) })],
  ])('%s → ERR_POLICY_ERROR', (_name, answer) => {
    const parsed = parsePolicyAnswer(answer, HASH);
    expect(parsed).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_ERROR' });
    expect(parsed).not.toHaveProperty('rules_fired');
  });

  it('a plain deny with a catalog code keeps its code (OE-INV-005 unknown tool)', () => {
    expect(parsePolicyAnswer({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN', reason: 'x' }, HASH)).toEqual({
      outcome: 'deny',
      code: 'ERR_TOOL_UNKNOWN',
      reason: 'x',
    });
    const noReason = parsePolicyAnswer({ outcome: 'deny', code: 'ERR_PARAMS_INVALID', reason: 3 }, HASH);
    expect(noReason).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_INVALID' });
    expect(typeof (noReason as { reason: unknown }).reason).toBe('string');
  });

  it('a well-formed allow is copied and frozen, with its risk, rules and obligations (OE-INV-014)', () => {
    const roles = ['ops'];
    const answer = decision({
      rules_fired: ['r1', 'r2'],
      risk: 'medium',
      obligations: { ...OBLIGATIONS, approver_roles: roles, max_cost_usd: '5.10' },
    });
    const parsed = parsePolicyAnswer(answer, HASH);
    expect(parsed).toEqual({
      outcome: 'allow',
      bundle_hash: HASH,
      rules_fired: ['r1', 'r2'],
      rationale: 'because',
      risk: 'medium',
      obligations: { approvals: 0, approver_roles: ['ops'], preview: false, max_cost_usd: '5.10' },
    });
    expect(Object.isFrozen(parsed)).toBe(true);
    const p = parsed as unknown as { rules_fired: readonly string[]; obligations: Obligations };
    expect(Object.isFrozen(p.rules_fired)).toBe(true);
    expect(Object.isFrozen(p.obligations)).toBe(true);
    expect(Object.isFrozen(p.obligations.approver_roles)).toBe(true);
    roles.push('later');
    expect(p.obligations.approver_roles).toEqual(['ops']);
    for (const risk of ['low', 'high', 'critical']) {
      expect(parsePolicyAnswer(decision({ risk }), HASH)).toMatchObject({ outcome: 'allow', risk });
    }
  });

  it('OE-INV-019: an allow that still carries approval or preview obligations is an escalation', () => {
    expect(
      parsePolicyAnswer(decision({ obligations: { ...OBLIGATIONS, approvals: 1 } }), HASH),
    ).toMatchObject({ outcome: 'escalate', obligations: { approvals: 1 } });
    expect(
      parsePolicyAnswer(decision({ obligations: { ...OBLIGATIONS, preview: true } }), HASH),
    ).toMatchObject({ outcome: 'escalate', obligations: { preview: true } });
    expect(parsePolicyAnswer(decision({ outcome: 'escalate' }), HASH)).toMatchObject({
      outcome: 'escalate',
    });
  });

  it('a policy deny keeps ERR_POLICY_DENY and its rationale; any other code is ERR_POLICY_ERROR', () => {
    const deny = parsePolicyAnswer(decision({ outcome: 'deny', code: 'ERR_POLICY_DENY' }), HASH);
    expect(deny).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_DENY',
      reason: 'because',
      rules_fired: ['r1'],
    });
    expect(Object.isFrozen(deny)).toBe(true);
    expect(parsePolicyAnswer(decision({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' }), HASH)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_ERROR',
      rules_fired: ['r1'],
    });
    // A deny decision with approval obligations stays a deny.
    expect(
      parsePolicyAnswer(
        decision({ outcome: 'deny', code: 'ERR_POLICY_DENY', obligations: { ...OBLIGATIONS, approvals: 2 } }),
        HASH,
      ),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
  });
});

describe('OE-INV-014: the decision record payload', () => {
  const facts: DecisionFacts = {
    decision_id: 'd'.repeat(64),
    outcome: 'escalate',
    code: 'ERR_APPROVAL_REQUIRED',
    policy_bundle: HASH,
    constitution_version: 'v1',
    rules_fired: ['r1'],
    rationale: 'why',
    risk: 'high',
    obligations: { approvals: 2, approver_roles: ['ops'], preview: true, max_cost_usd: '1' },
    params_sha256: 'e'.repeat(64),
    tool: 'wire',
    client: 'agent-1',
    session: 'sess-1',
    request_sha256: 'f'.repeat(64),
  };

  it('carries exactly the recorded fields, obligations included', () => {
    expect(decisionPayload(facts)).toEqual({ ...facts, obligations: { ...facts.obligations } });
  });

  it('FC-INV-5: a deny before policy evaluation records null policy facts', () => {
    const early = {
      ...facts,
      outcome: 'deny' as const,
      code: 'ERR_KILL_SWITCH' as const,
      policy_bundle: null,
      constitution_version: null,
      rules_fired: [],
      risk: null,
      obligations: null,
      session: null,
    };
    expect(decisionPayload(early)).toEqual(early);
  });
});

describe('SPEC §3 / OE-INV-006: the constraints claim', () => {
  const tool = (limits?: unknown): ToolSpec =>
    ({
      name: 't',
      description: 't',
      parameters: {},
      risk: 'low',
      adapter: limits === undefined ? { type: 'builtin' } : { type: 'builtin', limits },
    }) as unknown as ToolSpec;
  const obligations = (max_cost_usd: string | null = null): Obligations => ({
    approvals: 0,
    approver_roles: [],
    preview: false,
    max_cost_usd,
  });

  it('a tool without limits gets the defaults and the cost cap in cents', () => {
    expect(constraintsFor(tool(), obligations())).toEqual(DEFAULT_CONSTRAINTS);
    expect(constraintsFor(tool(), obligations('12.5'))).toEqual({
      ...DEFAULT_CONSTRAINTS,
      max_cost_cents: 1250,
    });
    expect(constraintsFor(tool({}), obligations('3'))).toEqual({
      ...DEFAULT_CONSTRAINTS,
      max_cost_cents: 300,
    });
    expect(DEFAULT_CONSTRAINTS).toEqual({
      timeout_ms: 10_000,
      max_output_bytes: 1024 * 1024,
      memory_bytes: 256 * 1024 * 1024,
      network: false,
      egress: [],
      fs_read: [],
      fs_write: [],
      max_cost_cents: null,
    });
  });

  it('an unreadable cost cap is ERR_POLICY_ERROR', () => {
    expect(code(constraintsFor(tool(), obligations('ten')))).toBe('ERR_POLICY_ERROR');
    expect(code(constraintsFor(tool({ timeout_ms: 5 }), obligations('1.234')))).toBe('ERR_POLICY_ERROR');
  });

  it('a background call is granted the tool background_timeout_ms; a synchronous call never is (docs/jobs.md)', () => {
    const limits = { timeout_ms: 20_000, background_timeout_ms: 1_800_000 };
    expect(constraintsFor(tool(limits), obligations())).toMatchObject({ timeout_ms: 20_000 });
    expect(constraintsFor(tool(limits), obligations(), { background: true })).toMatchObject({
      timeout_ms: 1_800_000,
    });
    // Without one, a background call gets timeout_ms as any call does.
    expect(constraintsFor(tool({ timeout_ms: 20_000 }), obligations(), { background: true })).toMatchObject({
      timeout_ms: 20_000,
    });
    for (const bad of [0, -1, 1.5, '60000', 3_600_001])
      expect(
        code(constraintsFor(tool({ background_timeout_ms: bad }), obligations(), { background: true })),
      ).toBe('ERR_POLICY_BUNDLE_INVALID');
  });

  it('an approved escalation is issued with the limit of the call that issues it, the rest as decided (docs/jobs.md)', () => {
    const limits = { timeout_ms: 20_000, background_timeout_ms: 1_800_000, network: true };
    const decided = constraintsFor(tool(limits), obligations('5.00'), { background: true });
    if ('code' in decided) throw new Error('not granted');
    // A synchronous retry of a call decided in the background: the synchronous limit, never more.
    expect(issuedConstraints(decided, tool(limits), false)).toEqual({ ...decided, timeout_ms: 20_000 });
    const sync = constraintsFor(tool(limits), obligations('5.00'));
    if ('code' in sync) throw new Error('not granted');
    expect(issuedConstraints(sync, tool(limits), true)).toEqual({ ...sync, timeout_ms: 1_800_000 });
    // A tool without limits: the default limit either way.
    expect(issuedConstraints(decided, tool(), false)).toMatchObject({
      timeout_ms: DEFAULT_CONSTRAINTS.timeout_ms,
    });
    expect(code(issuedConstraints(sync, tool({ background_timeout_ms: 0 }), true))).toBe(
      'ERR_POLICY_BUNDLE_INVALID',
    );
  });

  it('every declared limit is granted as declared', () => {
    const limits = {
      timeout_ms: MAX_TOOL_TIMEOUT_MS,
      max_output_bytes: 1,
      memory_bytes: 2,
      network: true,
      egress: ['a.example'],
      fs_read: ['/r'],
      fs_write: ['/w'],
    };
    const c = constraintsFor(tool(limits), obligations('1'));
    expect(c).toEqual({ ...limits, max_cost_cents: 100 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen((c as { egress: unknown }).egress)).toBe(true);
    expect(constraintsFor(tool({ network: false }), obligations())).toEqual(DEFAULT_CONSTRAINTS);
    expect(constraintsFor(tool({ max_output_bytes: MAX_OUTPUT_BYTES }), obligations())).toMatchObject({
      max_output_bytes: MAX_OUTPUT_BYTES,
    });
  });

  it.each<[string, unknown]>([
    ['limits not an object', 5],
    ['limits null', null],
    ['limits a list', [1]],
    ['an unknown limit', { cpu: 1 }],
    ['a zero timeout', { timeout_ms: 0 }],
    ['a negative output cap', { max_output_bytes: -1 }],
    ['a fractional memory cap', { memory_bytes: 1.5 }],
    ['a string timeout', { timeout_ms: '100' }],
    ['a timeout past the Gate window', { timeout_ms: MAX_TOOL_TIMEOUT_MS + 1 }],
    ['an output cap past what an answer carries', { max_output_bytes: MAX_OUTPUT_BYTES + 1 }],
    ['egress not a list', { egress: 'a.example' }],
    ['an empty egress host', { egress: [''] }],
    ['an egress host inside a list', { egress: [['a.example']] }],
    ['a non-string read path', { fs_read: [1] }],
    ['write paths not a list', { fs_write: {} }],
    ['a non-boolean network', { network: 'yes' }],
  ])('%s → ERR_POLICY_BUNDLE_INVALID', (_name, limits) => {
    expect(code(constraintsFor(tool(limits), obligations()))).toBe('ERR_POLICY_BUNDLE_INVALID');
  });
});
