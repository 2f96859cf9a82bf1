/**
 * The checks of the decision pipeline, one by one (SPEC §2 steps 3–5, SPEC §3, FC-INV-4/5,
 * OE-INV-013/018/021/025, GEI "If the ledger write fails, the tool does not run"): each is
 * pinned by a call it must refuse, with the code, the ledger record, and no envelope issued.
 * Real SQLite ledger, real Cedar bundle; fault injection wraps the ports.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  computeParamsSha256,
  envelopeSha256,
  issuedPayload,
  type EnvelopeClaims,
  type JsonValue,
} from '../../src/kernel/index.js';
import {
  createControlPlane,
  createMemoryGovernanceState,
  deriveJti,
  type ControlPlaneDeps,
  type ControlPlaneResult,
  type GovernanceState,
  type GovernedRequest,
  type PolicyRuntime,
} from '../../src/control-plane/index.js';
import {
  AUD,
  bundleDoc,
  DERIVATION_KEY,
  entriesOf,
  ISS,
  issuerKey,
  OPERATOR,
  request,
  rig,
  type Rig,
} from './support.js';

const msgAction = (n: string): string => `action "${n}" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { message: String }, risk: String, tainted: Bool } };`;
const amountAction = (n: string): string => `action "${n}" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { amount_cents: Long }, risk: String, tainted: Bool } };`;
const msgParams = {
  type: 'object',
  properties: { message: { type: 'string', maxLength: 100 } },
  required: ['message'],
  additionalProperties: false,
};
const amountParams = {
  type: 'object',
  properties: { amount_cents: { type: 'integer', minimum: 0 } },
  required: ['amount_cents'],
  additionalProperties: false,
};
const tool = (name: string, parameters: JsonValue, extra: Record<string, JsonValue> = {}): JsonValue => ({
  name,
  description: `${name}.`,
  risk: 'low',
  adapter: { type: 'builtin', function: name },
  parameters,
  ...extra,
});

/**
 * The test bundle plus: `fetch` (untrusted output, costs), `act` (refused once tainted), `admin`
 * (needs the admin role), `peek` (preview required).
 */
function guardDoc(): Record<string, JsonValue> {
  const doc = bundleDoc('cp-guards');
  return {
    ...doc,
    schema: [
      doc['schema'] as string,
      amountAction('fetch'),
      msgAction('act'),
      msgAction('admin'),
      msgAction('peek'),
    ].join('\n'),
    policies: {
      ...(doc['policies'] as Record<string, JsonValue>),
      'fetch-ok': '@reason("fetch") permit (principal, action == Action::"fetch", resource);',
      'act-clean':
        '@reason("act while clean") permit (principal, action == Action::"act", resource) unless { context.tainted };',
      'admin-role':
        '@reason("admins") permit (principal, action == Action::"admin", resource) when { principal.roles.contains("admin") };',
      'peek-look':
        '@reason("look first") @preview("true") permit (principal, action == Action::"peek", resource);',
    },
    tools: [
      ...(doc['tools'] as JsonValue[]),
      tool('fetch', amountParams, { untrusted_output: true }),
      tool('act', msgParams),
      tool('admin', msgParams),
      tool('peek', msgParams),
    ],
  };
}

/** One ledger and bundle store for the file (compiling a bundle is the expensive part). */
type Shared = Rig & { hash: string };
let shared: Shared;
beforeAll(async () => {
  const r = await rig();
  const put = r.bundles.put(JSON.stringify(guardDoc()));
  if (put.outcome !== 'ok') throw new Error(`bundle rejected: ${put.code}`);
  const act = await r.bundles.activate(put.hash, OPERATOR, 'guards');
  if (act.outcome !== 'ok') throw new Error(`activation failed: ${act.code}`);
  shared = Object.assign(r, { hash: put.hash });
}, 60_000);
afterAll(async () => {
  await shared.close();
});
afterEach(() => {
  shared.faulty.mode = 'ok';
  shared.faulty.onlyType = undefined;
});

/** A fresh Control Plane (its own breakers and governance state) over the shared ledger and bundles. */
function open(over: Partial<ControlPlaneDeps> = {}): Shared {
  const state = over.state ?? createMemoryGovernanceState();
  const cp = createControlPlane({
    ledger: shared.faulty,
    now: shared.clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles: shared.bundles,
    state,
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 200, policyMs: 200, stateMs: 200 },
    ...over,
  });
  return { ...shared, cp, state, hash: shared.hash, close: () => Promise.resolve() };
}

const codeOf = (res: ControlPlaneResult): string => (res.outcome === 'deny' ? res.code : 'ALLOWED');
const claimsOf = (envelope: string): EnvelopeClaims =>
  JSON.parse(Buffer.from(envelope.split('.')[1]!, 'base64url').toString('utf8')) as EnvelopeClaims;
const attemptedTypes = (r: Rig, from = 0): string[] => r.faulty.attempts.slice(from).map((a) => a.type);
let n = 0;
const req = (tool: string, params: JsonValue, over: Partial<GovernedRequest> = {}): GovernedRequest =>
  request(tool, params, { request_id: `g-${++n}`, ...over });

describe('SPEC §2 step 3, FC-INV-4: a malformed governed request is denied before any decision', () => {
  const hex = 'a'.repeat(64);
  it.each<[string, Partial<GovernedRequest>]>([
    ['an empty request_id', { request_id: '' }],
    ['a request_id past 256 characters', { request_id: 'r'.repeat(257) }],
    ['a numeric trace_id', { trace_id: 5 as never }],
    ['a missing identity', { identity: undefined as never }],
    ['an empty tenant', { tenant: '' }],
    ['an empty tool', { tool: '' }],
    ['a fractional timestamp', { timestamp: 1.5 }],
    ['a NaN timestamp', { timestamp: Number.NaN }],
    ['an upper-case request hash', { request_sha256: 'A'.repeat(64) }],
    ['a short request hash', { request_sha256: 'a'.repeat(63) }],
    ['a request hash with a prefix', { request_sha256: `x${hex}` }],
    ['a request hash with a suffix', { request_sha256: `${hex}x` }],
    ['a request hash inside a list', { request_sha256: [hex] as never }],
    ['an empty session', { session: '' }],
    ['a session past 256 characters', { session: 's'.repeat(257) }],
    ['a session named like a client principal', { session: 'client:agent-1' }],
    ['an undefined session', { session: undefined as never }],
  ])('%s → ERR_REQUEST_MALFORMED, no decision id, nothing ledgered', async (_name, over) => {
    const r = open();
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide({ ...request('echo', { message: 'hi' }), ...over });
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_MALFORMED', decision_id: null });
    expect(r.faulty.attempts.length).toBe(before);
  });

  it('ids of exactly 256 characters and a null session are accepted', async () => {
    const r = open();
    const long = await r.cp.decide(
      request('echo', { message: 'hi' }, { request_id: `${++n}`.padEnd(256, 'r'), session: 's'.repeat(256) }),
    );
    expect(long.outcome).toBe('allow');
    const sessionless = await r.cp.decide(req('echo', { message: 'hi' }, { session: null }));
    expect(sessionless.outcome).toBe('allow');
  });

  it('parameters that cannot be canonically encoded: ERR_PARAMS_INVALID, no decision id, nothing ledgered', async () => {
    const r = open();
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(req('echo', { message: 2 ** 60 }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_INVALID', decision_id: null });
    expect(r.faulty.attempts.length).toBe(before);
  });
});

describe("FC-INV-5: an exception at the Control Plane's edge still leaves a denial record when it can", () => {
  /** A Control Plane whose clock throws inside `decide`: the first thing the pipeline does. */
  function throwingClock() {
    const r = open();
    let boom = false;
    const cp = createControlPlane({
      ledger: r.faulty,
      now: () => {
        if (boom) throw new Error('clock (fault injected)');
        return r.clock();
      },
      issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
      bundles: r.bundles,
      state: r.state,
      derivationKey: DERIVATION_KEY,
      deadlines: { ledgerMs: 200, policyMs: 200, stateMs: 200 },
    });
    boom = true;
    return { r, cp };
  }

  it.each<[string, Partial<GovernedRequest>]>([
    ['an empty request_id', { request_id: '' }],
    ['a trace_id past 256 characters', { trace_id: 't'.repeat(257) }],
    ['a numeric tenant', { tenant: 7 as never }],
  ])('without %s nothing is written', async (_name, over) => {
    const { r, cp } = throwingClock();
    const before = r.faulty.attempts.length;
    const res = await cp.decide({ ...request('echo', { message: 'hi' }), ...over });
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', decision_id: null });
    expect(r.faulty.attempts.length).toBe(before);
  });

  it('fields that are malformed are left out of the record', async () => {
    const { r, cp } = throwingClock();
    const hex = 'a'.repeat(64);
    const cases: [Partial<GovernedRequest>, Record<string, JsonValue>][] = [
      [{ tool: 5 as never, identity: '', session: undefined as never, request_sha256: 'A'.repeat(64) }, {}],
      [
        { session: null, request_sha256: `x${hex}` },
        { tool: 'echo', client: 'agent-1', session: null },
      ],
      [{ request_sha256: `${hex}x` }, { tool: 'echo', client: 'agent-1', session: 'sess-1' }],
      [{ request_sha256: [hex] as never }, { tool: 'echo', client: 'agent-1', session: 'sess-1' }],
      [{ request_sha256: hex }, { tool: 'echo', client: 'agent-1', session: 'sess-1', request_sha256: hex }],
    ];
    for (const [i, [over, kept]] of cases.entries()) {
      const before = r.faulty.attempts.length;
      const res = await cp.decide({
        ...request('echo', { message: 'hi' }, { request_id: `edge-${i}` }),
        ...over,
      });
      expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', decision_id: null });
      const added = r.faulty.attempts.slice(before);
      expect(added).toHaveLength(1);
      expect(added[0]).toMatchObject({ type: 'denial', request_id: `edge-${i}`, tenant: 'acme' });
      expect(added[0]!.payload).toEqual({
        code: 'ERR_INTERNAL',
        stage: 'control-plane',
        reason: expect.any(String),
        ...kept,
      });
    }
  });
});

describe('OE-INV-025: incident response is checked for the call’s own tenant and session', () => {
  /** The real in-memory state, recording what it was asked. */
  function recording(answer?: (v: Record<string, unknown>) => unknown) {
    const inner = createMemoryGovernanceState();
    const calls: unknown[][] = [];
    const state: GovernanceState = {
      ...inner,
      check: async (...args: Parameters<GovernanceState['check']>) => {
        calls.push(args);
        const v = await inner.check(...args);
        return (answer === undefined ? v : answer(v as unknown as Record<string, unknown>)) as never;
      },
    };
    return { state, calls };
  }

  it('the state is asked about the tenant and the session (or client:NAME without one)', async () => {
    const { state, calls } = recording();
    const r = open({ state });
    await r.cp.decide(req('echo', { message: 'hi' }));
    await r.cp.decide(req('echo', { message: 'hi' }, { session: null }));
    expect(calls).toEqual([
      ['acme', 'sess-1', 'sess-1'],
      ['acme', 'client:agent-1', 'client:agent-1'],
    ]);
    expect(await r.cp.ready()).toEqual({ ready: true });
    expect(calls.at(-1)).toEqual(['*', null]);
  });

  it.each<[string, string, (v: Record<string, unknown>) => unknown]>([
    ['a string', 'ERR_CONTROL_PLANE_UNAVAILABLE', () => 'ok'],
    ['no quarantine answer', 'ERR_SESSION_QUARANTINED', (v) => ({ ...v, session_quarantined: undefined })],
    ['a missing lockdown', 'ERR_TENANT_LOCKDOWN', (v) => ({ ...v, tenant_locked: undefined })],
  ])('a state answering %s → %s', async (_name, code, answer) => {
    const r = open({ state: recording(answer).state });
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(req('echo', { message: 'hi' }));
    expect(codeOf(res)).toBe(code);
    expect(attemptedTypes(r, before)).toEqual(['decision']);
  });

  it('FC-INV-5: a deny before policy evaluation is recorded with null policy facts and the request’s identity', async () => {
    const r = open();
    await r.cp.admin.setTenantLockdown('acme', true, OPERATOR, 'breach');
    const rq = req('echo', { message: 'hi' });
    const res = await r.cp.decide(rq);
    expect(codeOf(res)).toBe('ERR_TENANT_LOCKDOWN');
    const entry = (await entriesOf(r.ledger)).at(-1)!;
    expect(entry).toMatchObject({
      type: 'decision',
      request_id: rq.request_id,
      trace_id: 'trace-1',
      tenant: 'acme',
      actor: { id: 'control-plane', role: 'control-plane' },
    });
    expect(entry.payload).toEqual({
      decision_id: res.decision_id,
      outcome: 'deny',
      code: 'ERR_TENANT_LOCKDOWN',
      policy_bundle: null,
      constitution_version: null,
      rules_fired: [],
      rationale: expect.any(String),
      risk: null,
      obligations: null,
      params_sha256: computeParamsSha256({ message: 'hi' }),
      tool: 'echo',
      client: 'agent-1',
      session: 'sess-1',
      request_sha256: rq.request_sha256,
    });
  });

  it('ready: no when the state does not answer, with the code', async () => {
    const r = open({
      state: {
        check: () => new Promise(() => undefined),
        apply: () => Promise.resolve(),
        snapshot: () => Promise.reject(new Error('x')),
      },
    });
    expect(await r.cp.ready()).toEqual({ ready: false, reason: 'ERR_CONTROL_PLANE_UNAVAILABLE' });
  });
});

describe('OE-INV-013: untrusted output taints the session, confirmed before the envelope', () => {
  it('a tainted session is refused what policy forbids it; other sessions are not', async () => {
    const r = open();
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' })))).toBe('ALLOWED');
    const rq = req('fetch', { amount_cents: 1 });
    const res = await r.cp.decide(rq);
    expect(res.outcome).toBe('allow');
    const entries = await entriesOf(r.ledger);
    expect(entries.slice(-3).map((e) => e.type)).toEqual(['decision', 'session.tainted', 'envelope.issued']);
    expect(entries.at(-2)).toMatchObject({
      request_id: rq.request_id,
      trace_id: 'trace-1',
      tenant: 'acme',
      actor: { role: 'control-plane' },
      payload: { session: 'sess-1', client: 'agent-1', tool: 'fetch', decision_id: res.decision_id },
    });
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' })))).toBe('ERR_POLICY_DENY');
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' }, { session: 'sess-2' })))).toBe('ALLOWED');
    // A trusted tool taints nothing.
    await r.cp.decide(req('echo', { message: 'hi' }, { session: 'sess-3' }));
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' }, { session: 'sess-3' })))).toBe('ALLOWED');
  });

  it('a sessionless client is tainted as client:NAME', async () => {
    const r = open();
    expect((await r.cp.decide(req('fetch', { amount_cents: 1 }, { session: null }))).outcome).toBe('allow');
    expect((await r.state.check('acme', 'client:agent-1', 'client:agent-1')).session_tainted).toBe(true);
    expect((await r.state.check('acme', 'sess-1', 'sess-1')).session_tainted).toBe(false);
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' }, { session: null })))).toBe(
      'ERR_POLICY_DENY',
    );
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' })))).toBe('ALLOWED');
  });

  it('a taint answer other than an explicit false counts as tainted', async () => {
    const inner = createMemoryGovernanceState();
    const state: GovernanceState = {
      ...inner,
      check: async (...a: Parameters<GovernanceState['check']>) => ({
        ...(await inner.check(...a)),
        session_tainted: undefined as never,
      }),
    };
    const r = open({ state });
    expect(codeOf(await r.cp.decide(req('act', { message: 'x' })))).toBe('ERR_POLICY_DENY');
  });

  it('a taint the ledger does not confirm: no envelope, and the reserved spend is released', async () => {
    const r = open({ breakers: { maxSpendCentsPerTenantDay: 150 } });
    r.faulty.mode = 'fail';
    r.faulty.onlyType = 'session.tainted';
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(req('fetch', { amount_cents: 100 }));
    expect(codeOf(res)).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(res).not.toHaveProperty('envelope');
    expect(attemptedTypes(r, before)).toEqual(['decision', 'session.tainted']);
    r.faulty.mode = 'ok';
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 100 })))).toBe('ALLOWED');
  });
});

describe('OE-INV-014: a policy deny is recorded with what policy decided', () => {
  it('rules fired, risk, obligations and the bundle are in the deny record', async () => {
    const r = open();
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(req('echo', { message: 'forbidden' }));
    expect(codeOf(res)).toBe('ERR_POLICY_DENY');
    expect(attemptedTypes(r, before)).toEqual(['decision']);
    expect((await entriesOf(r.ledger)).at(-1)!.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_DENY',
      policy_bundle: r.hash,
      constitution_version: 'cp-guards',
      rules_fired: ['echo-no-forbidden'],
      risk: 'low',
      obligations: { approvals: 0, approver_roles: [], preview: false, max_cost_usd: null },
    });
  });

  it('SPEC §6: no verified active bundle → not ready, with the code', async () => {
    const none = {
      ...shared.bundles,
      active: () => ({ outcome: 'deny', code: 'ERR_POLICY_UNAVAILABLE', reason: 'none' }) as const,
    };
    const r = open({ bundles: none });
    expect(await r.cp.ready()).toEqual({ ready: false, reason: 'ERR_POLICY_UNAVAILABLE' });
    expect(r.cp.activeBundle()).toBeUndefined();
  });
});

describe('SPEC §2 step 3: the roles of the client reach policy', () => {
  it('a role-gated tool is allowed with the role and refused without it', async () => {
    const r = open();
    expect(codeOf(await r.cp.decide(req('admin', { message: 'x' }, { roles: ['admin'] })))).toBe('ALLOWED');
    expect(codeOf(await r.cp.decide(req('admin', { message: 'x' }, { roles: ['ops'] })))).toBe(
      'ERR_POLICY_DENY',
    );
    expect(codeOf(await r.cp.decide(req('admin', { message: 'x' })))).toBe('ERR_POLICY_DENY');
  });
});

describe('OE-INV-021: spend is reserved for allows only and released when nothing is issued', () => {
  it('an escalation reserves no spend', async () => {
    const r = open({ breakers: { maxSpendCentsPerTenantDay: 100 } });
    expect(codeOf(await r.cp.decide(req('wire', { amount_cents: 1000 })))).toBe('ERR_APPROVAL_REQUIRED');
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 100 })))).toBe('ALLOWED');
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 1 })))).toBe('ERR_CIRCUIT_OPEN');
  });

  it('an envelope.issued record the ledger refuses releases the spend', async () => {
    const r = open({ breakers: { maxSpendCentsPerTenantDay: 150 } });
    r.faulty.mode = 'fail';
    r.faulty.onlyType = 'envelope.issued';
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 100 })))).toBe('ERR_LEDGER_UNAVAILABLE');
    r.faulty.mode = 'ok';
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 100 })))).toBe('ALLOWED');
  });

  it('FC-INV-4: an envelope that cannot be signed is ERR_INTERNAL, recorded as a denial, and releases the spend', async () => {
    // Fault injection: an issuer "private" key that cannot sign.
    const broken = { ...issuerKey(), privateKey: issuerKey().publicKey };
    const r = open({
      breakers: { maxSpendCentsPerTenantDay: 150 },
      issuer: { key: broken, iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    });
    const before = r.faulty.attempts.length;
    const rq = req('pay', { amount_cents: 100 });
    const res = await r.cp.decide(rq);
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    expect(res.decision_id).toEqual(expect.any(String));
    expect(attemptedTypes(r, before)).toEqual(['decision', 'denial']);
    const denial = (await entriesOf(r.ledger)).at(-1)!;
    expect(denial).toMatchObject({ type: 'denial', request_id: rq.request_id, tenant: 'acme' });
    expect(denial.payload).toEqual({
      code: 'ERR_INTERNAL',
      stage: 'issue',
      reason: expect.any(String),
      tool: 'pay',
      client: 'agent-1',
      session: 'sess-1',
      params_sha256: computeParamsSha256({ amount_cents: 100 }),
      decision_id: res.decision_id,
      request_sha256: rq.request_sha256,
    });
    // The spend was released: a working issuer over the same breakers would allow it.
    expect(codeOf(await r.cp.decide(req('pay', { amount_cents: 150 })))).toBe('ERR_INTERNAL');
  });

  it('a tripped breaker quarantine names the call that tripped it', async () => {
    const r = open({ breakers: { loopThreshold: 1 } });
    await r.cp.decide(req('echo', { message: 'same' }));
    const rq = req('echo', { message: 'same' });
    expect(codeOf(await r.cp.decide(rq))).toBe('ERR_CIRCUIT_OPEN');
    const q = (await entriesOf(r.ledger)).filter((e) => e.type === 'admin.quarantine').at(-1);
    expect(q).toMatchObject({ request_id: rq.request_id, trace_id: 'trace-1', tenant: 'acme' });
    expect(q?.actor).toEqual({ id: 'control-plane', role: 'control-plane' });
  });
});

describe('OE-INV-018: a preview the policy requires is computed before the decision is recorded', () => {
  const preview = {
    tool: 'peek',
    tenant: 'acme',
    params_sha256: computeParamsSha256({ message: 'x' }),
    summary: 's',
    changes: [],
    objects: 0,
    cost_estimate_cents: null,
    irreversible: false,
  };

  it('the provider sees the tool, tenant, params and their hash; the escalation is then recorded', async () => {
    const seen: unknown[] = [];
    const r = open({
      preview: (input) => {
        seen.push({ ...input, tool: input.tool.name });
        return preview;
      },
    });
    expect(codeOf(await r.cp.decide(req('echo', { message: 'x' })))).toBe('ALLOWED');
    expect(codeOf(await r.cp.decide(req('wire', { amount_cents: 1 })))).toBe('ERR_APPROVAL_REQUIRED');
    expect(seen).toEqual([]);
    const res = await r.cp.decide(req('peek', { message: 'x' }));
    expect(codeOf(res)).toBe('ERR_APPROVAL_REQUIRED');
    expect(seen).toEqual([
      { tool: 'peek', tenant: 'acme', params: { message: 'x' }, params_sha256: preview.params_sha256 },
    ]);
    expect((await entriesOf(r.ledger)).at(-1)!.payload).toMatchObject({
      outcome: 'escalate',
      code: 'ERR_APPROVAL_REQUIRED',
      rules_fired: ['peek-look'],
    });
  });

  it.each<[string, () => unknown]>([
    [
      'throws',
      () => {
        throw new Error('preview (fault injected)');
      },
    ],
    ['answers a deny', () => ({ outcome: 'deny', code: 'ERR_PREVIEW_UNAVAILABLE', reason: 'no' })],
    ['hangs', () => new Promise(() => undefined)],
  ])('a provider that %s → ERR_PREVIEW_UNAVAILABLE, recorded with the policy facts', async (_name, p) => {
    const r = open({ preview: p as never });
    const res = await r.cp.decide(req('peek', { message: 'x' }));
    expect(codeOf(res)).toBe('ERR_PREVIEW_UNAVAILABLE');
    expect((await entriesOf(r.ledger)).at(-1)!.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_PREVIEW_UNAVAILABLE',
      rules_fired: ['peek-look'],
      policy_bundle: r.hash,
    });
  });
});

describe('SPEC §3: the envelope binds exactly the decided call', () => {
  it('claims: issuer, audience, subject, tenant, tool, params, jti, ids, bundle, ledger entry, lifetime, constraints', async () => {
    const r = open();
    const params = { message: 'hi' };
    const rq = req('echo', params, { trace_id: 'trace-claims' });
    const res = await r.cp.decide(rq);
    if (res.outcome !== 'allow') throw new Error(`expected allow, got ${res.code}`);
    const paramsSha = computeParamsSha256(params);
    const iat = Math.floor(r.clock() / 1000);
    const claims = claimsOf(res.envelope);
    expect(claims).toEqual({
      iss: ISS,
      aud: AUD,
      sub: 'agent-1',
      tenant: 'acme',
      tool: 'echo',
      params_sha256: paramsSha,
      jti: deriveJti(DERIVATION_KEY, rq, paramsSha),
      decision_id: res.decision_id,
      request_id: rq.request_id,
      trace_id: 'trace-claims',
      policy_bundle: r.hash,
      ledger: res.decision_ref,
      approvals: [],
      constraints: {
        timeout_ms: 2000,
        max_output_bytes: 1024 * 1024,
        memory_bytes: 256 * 1024 * 1024,
        network: false,
        egress: ['api.example.com'],
        fs_read: [],
        fs_write: [],
        max_cost_cents: null,
      },
      iat,
      exp: iat + 60,
    });
    expect(res.policy_bundle).toBe(r.hash);
    expect(Object.isFrozen(res)).toBe(true);
    const entries = await entriesOf(r.ledger);
    const decision = entries.at(-2)!;
    expect(res.decision_ref).toEqual({ index: decision.index, entry_hash: decision.entry_hash });
    expect(decision.payload).toEqual({
      decision_id: res.decision_id,
      outcome: 'allow',
      code: null,
      policy_bundle: r.hash,
      constitution_version: 'cp-guards',
      rules_fired: ['echo-ok'],
      rationale: expect.any(String),
      risk: 'low',
      obligations: { approvals: 0, approver_roles: [], preview: false, max_cost_usd: null },
      params_sha256: paramsSha,
      tool: 'echo',
      client: 'agent-1',
      session: 'sess-1',
      request_sha256: rq.request_sha256,
    });
    const issued = entries.at(-1)!;
    expect(issued).toMatchObject({
      type: 'envelope.issued',
      request_id: rq.request_id,
      trace_id: 'trace-claims',
    });
    expect(issued.payload).toEqual(issuedPayload(claims, issuerKey().kid, envelopeSha256(res.envelope)));
  });

  it('a ledger that hangs on the envelope.issued record withholds the envelope', async () => {
    const r = open();
    r.faulty.mode = 'garbage';
    r.faulty.onlyType = 'envelope.issued';
    const res = await r.cp.decide(req('echo', { message: 'hi' }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    expect(res).not.toHaveProperty('envelope');
  });
});

describe('GEI Issuer: the Control Plane’s configuration and operator surface', () => {
  const base = () => {
    const r = open();
    return {
      r,
      deps: {
        ledger: r.faulty,
        now: r.clock,
        issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
        bundles: r.bundles,
        state: r.state,
        derivationKey: DERIVATION_KEY,
      } satisfies ControlPlaneDeps,
    };
  };

  it('a derivation key shorter than 32 bytes or not bytes is a TypeError', () => {
    const { deps } = base();
    expect(() => createControlPlane({ ...deps, derivationKey: Buffer.alloc(31, 1) })).toThrow(TypeError);
    expect(() => createControlPlane({ ...deps, derivationKey: 'k'.repeat(40) as never })).toThrow(TypeError);
    expect(() => createControlPlane({ ...deps, derivationKey: new Uint8Array(32) })).not.toThrow();
  });

  it('the default deadlines and breakers decide normally', async () => {
    const { deps } = base();
    const cp = createControlPlane(deps);
    expect((await cp.decide(req('echo', { message: 'hi' }))).outcome).toBe('allow');
    expect(await cp.ready()).toEqual({ ready: true });
    expect(cp.activeBundle()?.hash).toBe(shared.hash);
  });

  it('without an approval service nothing is a retry and no approvals are exposed', async () => {
    const { r } = base();
    await r.cp.decide(req('wire', { amount_cents: 1 }, { request_id: 'w-1' }));
    expect(await r.cp.isRetry(request('wire', { amount_cents: 1 }, { request_id: 'w-1' }))).toBe(false);
    expect(r.cp).not.toHaveProperty('approvals');
    const active = r.bundles.active() as PolicyRuntime;
    expect(r.cp.activeBundle()).toEqual({ hash: r.hash, bundle: active.bundle });
  });
});
