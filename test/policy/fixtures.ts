/** A small bundle document for policy tests, and helpers to vary and load it. */
import { createPolicyEngine, loadBundle } from '../../src/policy/index.js';
import type { EvaluationInput, LoadedBundle, PolicyEngine } from '../../src/policy/index.js';

export const SCHEMA = `
entity Tenant;
entity Agent in [Tenant] { roles: Set<String> };
action "echo" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { message: String }, risk: String, tainted: Bool } };
action "pay" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { amount: decimal, count?: Long, tags?: Set<String> }, risk: String, tainted: Bool } };
`;

export const ECHO_TOOL = {
  name: 'echo',
  description: 'Echo.',
  risk: 'low',
  adapter: { type: 'builtin', function: 'echo' },
  parameters: {
    type: 'object',
    properties: { message: { type: 'string', maxLength: 100 } },
    required: ['message'],
    additionalProperties: false,
  },
};

export const PAY_TOOL = {
  name: 'pay',
  description: 'Pay.',
  risk: 'medium',
  adapter: { type: 'builtin', function: 'pay' },
  parameters: {
    type: 'object',
    properties: {
      amount: { type: 'number' },
      count: { type: 'integer' },
      tags: { type: 'array', items: { type: 'string' } },
    },
    required: ['amount'],
    additionalProperties: false,
  },
};

export const POLICIES: Record<string, string> = {
  'echo-ok': '@reason("echo is fine") permit (principal, action == Action::"echo", resource);',
  'pay-small': `@reason("small") permit (principal, action == Action::"pay", resource)
    when { context.params.amount.lessThanOrEqual(decimal("100.0")) };`,
  'pay-big': `@reason("big") @approvals("2") @approver_role("treasury, finance") @max_cost_usd("500")
    permit (principal, action == Action::"pay", resource)
    when { context.params.amount.greaterThan(decimal("100.0")) };`,
  isolation:
    '@reason("own tenant only") forbid (principal, action, resource) unless { principal in resource };',
};

/** The base document, as a fresh mutable object. */
export function baseDoc(): Record<string, unknown> {
  return structuredClone({
    format: 'failclosed.policy-bundle/v1',
    name: 'test',
    policies: POLICIES,
    schema: SCHEMA,
    tools: [ECHO_TOOL, PAY_TOOL],
  });
}

/** Loads a document; throws when it is denied (for tests expecting success). */
export function mustLoad(doc: Record<string, unknown> = baseDoc()): LoadedBundle {
  const b = loadBundle(JSON.stringify(doc));
  if ('outcome' in b) throw new Error(`bundle denied: ${b.code} ${b.reason}`);
  return b;
}

/** Engine for a document; throws when denied. */
export function mustEngine(doc: Record<string, unknown> = baseDoc()): PolicyEngine {
  const e = createPolicyEngine(mustLoad(doc));
  if ('outcome' in e) throw new Error(`engine denied: ${e.code}`);
  return e;
}

/** A call by agent-1 of tenant acme on acme. */
export function call(tool: string, params: unknown, over: Partial<EvaluationInput> = {}): EvaluationInput {
  return {
    principal: { id: 'agent-1', tenant: 'acme', roles: [] },
    tenant: 'acme',
    tool,
    params: params as EvaluationInput['params'],
    tainted: false,
    ...over,
  };
}
