/**
 * The decision pipeline (SPEC §2 steps 3–5, GEI "If the ledger write fails, the tool does not
 * run", FC-INV-4/5, OE-INV-004/005/014, SPEC §7 scenarios 5, 9, 15).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { envelopeSha256, keyRingFromJwks, verifyEnvelope, type JsonValue } from '../../src/kernel/index.js';
import type {
  BundleStore,
  ControlPlaneResult,
  GovernanceState,
  PolicyRuntime,
} from '../../src/control-plane/index.js';
import { AUD, entriesOf, OPERATOR, request, rig, type Rig } from './support.js';

const opened: Rig[] = [];
async function open(...args: Parameters<typeof rig>): Promise<Rig> {
  const r = await rig(...args);
  opened.push(r);
  return r;
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

function verify(r: Rig, envelope: string, tool: string, params: JsonValue) {
  return verifyEnvelope(envelope, {
    keys: keyRingFromJwks(r.cp.issuerJwks()),
    audience: AUD,
    now: r.clock,
    clockToleranceSec: 5,
    maxLifetimeSec: 300,
    call: { tool, tenant: 'acme', params },
    isKnownPolicyBundle: (h) => h === r.bundleHash,
  });
}

function denyCode(res: ControlPlaneResult): string {
  return res.outcome === 'deny' ? res.code : 'ALLOWED';
}

/** A bundle store whose active runtime's `evaluate` is replaced. */
function withEvaluate(inner: BundleStore, evaluate: PolicyRuntime['evaluate']): BundleStore {
  return {
    ...inner,
    active() {
      const a = inner.active();
      return 'outcome' in a ? a : { ...a, evaluate };
    },
  };
}

describe('allow path (SPEC §2 steps 3–5)', () => {
  it('issues an envelope the Execution Layer verifies, bound to tool, tenant, params and the decision record', async () => {
    const r = await open();
    const params = { message: 'hi' };
    const res = await r.cp.decide(request('echo', params));
    expect(res.outcome).toBe('allow');
    if (res.outcome !== 'allow') return;
    const v = verify(r, res.envelope, 'echo', params);
    expect(v).toMatchObject({ outcome: 'allow' });
    if (v.outcome !== 'allow') return;
    expect(v.claims.decision_id).toBe(res.decision_id);
    expect(v.claims.ledger).toEqual(res.decision_ref);
    expect(v.claims.policy_bundle).toBe(r.bundleHash);
    expect(v.claims.sub).toBe('agent-1');
    expect(v.claims.exp - v.claims.iat).toBe(60);
    expect(v.claims.iat).toBe(Math.floor(r.clock() / 1000));
    // Constraints from adapter.limits over the defaults.
    expect(v.claims.constraints).toMatchObject({
      timeout_ms: 2000,
      egress: ['api.example.com'],
      network: false,
      max_cost_cents: null,
    });
    expect(verify(r, res.envelope, 'echo', { message: 'changed' })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_PARAMS_MISMATCH',
    });
  });

  it.each([true, false])(
    'GEI: the decision and its envelope.issued are appended together where the ledger can (%s), else one after the other: the same entries',
    async (joined) => {
      const r = await open({}, { joined });
      const together = joined ? vi.spyOn(r.faulty as Required<typeof r.faulty>, 'appendThen') : undefined;
      const res = await r.cp.decide(request('echo', { message: 'hi' }));
      if (res.outcome !== 'allow') throw new Error('expected allow');
      expect(together?.mock.calls.length).toBe(joined ? 1 : undefined);
      expect(r.faulty.attempts.map((a) => a.type)).toEqual([
        'admin.policy_activated',
        'decision',
        'envelope.issued',
      ]);
      const [, decision, issued] = await entriesOf(r.ledger);
      expect(issued).toMatchObject({ index: decision!.index + 1, prev_hash: decision!.entry_hash });
      expect(issued!.payload).toMatchObject({
        ledger_ref: res.decision_ref,
        envelope_sha256: envelopeSha256(res.envelope),
      });
      expect(res.decision_ref).toEqual({ index: decision!.index, entry_hash: decision!.entry_hash });
    },
  );

  it.each([true, false])(
    'FC-INV-5: an attempt closed before its decision is sealed gets no envelope: the decision lands, the issuance is refused (ERR_LEDGER_REQUEST_CLOSED) (appended together: %s)',
    async (joined) => {
      const r = await open({}, { joined });
      const accepted = await r.ledger.append({
        type: 'gateway.accepted',
        trace_id: 'trace-closed',
        request_id: 'req-closed',
        tenant: 'acme',
        actor: { id: 'gate', role: 'gate' },
        payload: { tool: 'echo', client: 'agent-1', request_sha256: 'a'.repeat(64) },
      });
      await r.ledger.append({
        type: 'request.abandoned',
        trace_id: 'trace-closed',
        request_id: 'req-closed',
        tenant: 'acme',
        actor: { id: 'gate', role: 'gate' },
        payload: { reason: 'swept' },
      });
      const res = await r.cp.decide(
        request(
          'echo',
          { message: 'hi' },
          { request_id: 'req-closed', trace_id: 'trace-closed', attempt: accepted.index },
        ),
      );
      expect(denyCode(res)).toBe('ERR_LEDGER_REQUEST_CLOSED');
      expect(res).not.toHaveProperty('envelope');
      expect((await entriesOf(r.ledger)).map((e) => e.type).slice(-2)).toEqual([
        'request.abandoned',
        'decision',
      ]);
    },
  );

  it('GEI: a ledger that confirms another decision than the one the envelope was signed over → ERR_LEDGER_UNAVAILABLE, no envelope', async () => {
    const r = await open();
    const real = r.faulty.appendThen!.bind(r.faulty);
    r.faulty.appendThen = async (entry, next, writes) => {
      const got = await real(entry, next, writes);
      return { ...got, first: { index: got.first.index, entry_hash: 'e'.repeat(64) } };
    };
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(denyCode(res)).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(res).not.toHaveProperty('envelope');
  });

  it('appends the decision, confirmed, before the envelope (ledger order, OE-INV-014)', async () => {
    const r = await open();
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    if (res.outcome !== 'allow') throw new Error('expected allow');
    const entries = await entriesOf(r.ledger);
    expect(entries.map((e) => e.type)).toEqual(['admin.policy_activated', 'decision', 'envelope.issued']);
    const [, decision, issued] = entries;
    expect(decision!.index).toBe(res.decision_ref.index);
    expect(decision!.entry_hash).toBe(res.decision_ref.entry_hash);
    expect(decision!.payload).toMatchObject({
      decision_id: res.decision_id,
      outcome: 'allow',
      code: null,
      policy_bundle: r.bundleHash,
      constitution_version: 'cp-test',
      rules_fired: ['echo-ok'],
      risk: 'low',
      tool: 'echo',
      client: 'agent-1',
      session: 'sess-1',
    });
    // Claims and the digest of the JWS, never the JWS itself (an unconsumed bearer token).
    expect(issued!.payload).toMatchObject({
      decision_id: res.decision_id,
      envelope_sha256: envelopeSha256(res.envelope),
      ledger_ref: res.decision_ref,
    });
    expect(issued!.payload).not.toHaveProperty('envelope');
    expect(JSON.stringify(entries)).not.toContain(res.envelope);
    expect(
      await r.ledger.hasEntry(res.decision_ref, {
        type: 'decision',
        decision_id: res.decision_id,
        tenant: 'acme',
      }),
    ).toBe(true);
  });
});

describe('ledger failure → deny, no envelope (GEI, SPEC §7 scenario 9)', () => {
  it.each(['fail', 'hang', 'garbage'] as const)(
    'decision append %s → ERR_LEDGER_UNAVAILABLE, nothing issued',
    async (mode) => {
      const r = await open();
      r.faulty.mode = mode;
      const res = await r.cp.decide(request('echo', { message: 'hi' }));
      expect(denyCode(res)).toBe('ERR_LEDGER_UNAVAILABLE');
      expect(res).not.toHaveProperty('envelope');
      expect(r.faulty.attempts.map((a) => a.type)).not.toContain('envelope.issued');
    },
  );

  it('envelope.issued append fails → ERR_LEDGER_UNAVAILABLE and the envelope is withheld', async () => {
    const r = await open();
    r.faulty.mode = 'fail';
    r.faulty.onlyType = 'envelope.issued';
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(denyCode(res)).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(res).not.toHaveProperty('envelope');
    expect(res.decision_id).not.toBeNull();
  });

  it('a deny whose record cannot be written is still a deny (ERR_LEDGER_UNAVAILABLE)', async () => {
    const r = await open();
    await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident');
    r.faulty.mode = 'fail';
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(denyCode(res)).toBe('ERR_LEDGER_UNAVAILABLE');
  });
});

describe('policy engine faults → deny (FC-INV-4)', () => {
  const cases: [string, string, PolicyRuntime['evaluate']][] = [
    [
      'throws',
      'ERR_POLICY_ERROR',
      () => {
        throw new Error('boom');
      },
    ],
    ['rejects', 'ERR_POLICY_ERROR', () => Promise.reject(new Error('boom'))],
    ['hangs', 'ERR_POLICY_UNAVAILABLE', () => new Promise(() => undefined)],
    ['returns garbage', 'ERR_POLICY_ERROR', () => ({ outcome: 'allow' }) as never],
    ['returns null', 'ERR_POLICY_ERROR', () => null as never],
    [
      'returns a deny with an unknown code',
      'ERR_POLICY_ERROR',
      () => ({ outcome: 'deny', code: 'ERR_NOPE', reason: 'x' }) as never,
    ],
  ];
  it.each(cases)('evaluate %s → %s, recorded, no envelope', async (_name, code, evaluate) => {
    const base = await open();
    const r = await open({ bundles: withEvaluate(base.bundles, evaluate), ledger: base.faulty });
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(denyCode(res)).toBe(code);
    const types = base.faulty.attempts.map((a) => a.type);
    expect(types).not.toContain('envelope.issued');
    expect(base.faulty.attempts.find((a) => a.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code,
    });
  });

  it('an allow for another bundle → ERR_POLICY_ERROR', async () => {
    const base = await open();
    const forged = {
      outcome: 'allow',
      bundle_hash: 'f'.repeat(64),
      rules_fired: [],
      rationale: '',
      risk: 'low',
      obligations: { approvals: 0, approver_roles: [], preview: false, max_cost_usd: null },
    } as const;
    const r = await open({ bundles: withEvaluate(base.bundles, () => forged), ledger: base.faulty });
    expect(denyCode(await r.cp.decide(request('echo', { message: 'hi' })))).toBe('ERR_POLICY_ERROR');
  });
});

describe('pipeline denials, each recorded as the decision (FC-INV-5)', () => {
  it.each([
    ['unknown tool', 'ERR_TOOL_UNKNOWN', request('rm', { path: '/' })],
    ['parameters fail the schema', 'ERR_PARAMS_INVALID', request('echo', { message: 'hi', extra: 1 })],
    ['policy forbids', 'ERR_POLICY_DENY', request('echo', { message: 'forbidden' })],
    ['escalation without approvals', 'ERR_APPROVAL_REQUIRED', request('wire', { amount_cents: 100 })],
  ])('%s → %s', async (_name, code, req) => {
    const r = await open();
    const res = await r.cp.decide(req);
    expect(denyCode(res)).toBe(code);
    const entries = await entriesOf(r.ledger);
    expect(entries.map((e) => e.type)).toEqual(['admin.policy_activated', 'decision']);
    expect(entries[1]!.payload).toMatchObject({
      decision_id: res.decision_id,
      code,
      policy_bundle: r.bundleHash,
    });
    expect(entries[1]!.payload['outcome']).toBe(code === 'ERR_APPROVAL_REQUIRED' ? 'escalate' : 'deny');
  });

  it('no active bundle → ERR_POLICY_UNAVAILABLE and not ready (never a fallback)', async () => {
    const r = await open({}, { activate: false });
    expect(denyCode(await r.cp.decide(request('echo', { message: 'hi' })))).toBe('ERR_POLICY_UNAVAILABLE');
    expect((await r.cp.ready()).ready).toBe(false);
    expect(r.cp.activeBundle()).toBeUndefined();
  });

  it('parameters that cannot be canonically encoded → ERR_PARAMS_INVALID', async () => {
    const r = await open();
    const res = await r.cp.decide(request('echo', { message: 2 ** 60 }));
    expect(denyCode(res)).toBe('ERR_PARAMS_INVALID');
  });

  it('decide never throws: a failing dependency becomes ERR_INTERNAL', async () => {
    const base = await open();
    const broken: BundleStore = {
      ...base.bundles,
      active: () => {
        throw new Error('disk');
      },
    };
    const r = await open({ bundles: broken, ledger: base.faulty });
    expect(denyCode(await r.cp.decide(request('echo', { message: 'hi' })))).toBe('ERR_INTERNAL');
  });
});

describe('incident response (OE-INV-025, SPEC §7 scenario 15)', () => {
  it.each([
    [
      'kill switch',
      'ERR_KILL_SWITCH',
      'admin.kill_switch',
      (r: Rig) => r.cp.admin.setKillSwitch(true, OPERATOR, 'incident'),
    ],
    [
      'tenant lockdown',
      'ERR_TENANT_LOCKDOWN',
      'admin.lockdown',
      (r: Rig) => r.cp.admin.setTenantLockdown('acme', true, OPERATOR, 'breach'),
    ],
    [
      'session quarantine',
      'ERR_SESSION_QUARANTINED',
      'admin.quarantine',
      (r: Rig) => r.cp.admin.setSessionQuarantine('sess-1', true, OPERATOR, 'odd'),
    ],
  ])('%s → %s, ledgered as %s, and lifting it restores allow', async (_name, code, type, engage) => {
    const r = await open();
    expect((await engage(r)).outcome).toBe('ok');
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(denyCode(res)).toBe(code);
    const entries = await entriesOf(r.ledger);
    expect(entries.map((e) => e.type)).toEqual(['admin.policy_activated', type, 'decision']);
    expect(entries[1]!.actor).toEqual(OPERATOR);
    expect(entries[2]!.payload).toMatchObject({ outcome: 'deny', code });
    if (type === 'admin.kill_switch') await r.cp.admin.setKillSwitch(false, OPERATOR, 'over');
    else if (type === 'admin.lockdown') await r.cp.admin.setTenantLockdown('acme', false, OPERATOR, 'over');
    else await r.cp.admin.setSessionQuarantine('sess-1', false, OPERATOR, 'over');
    expect((await r.cp.decide(request('echo', { message: 'hi' }, { request_id: 'req-2' }))).outcome).toBe(
      'allow',
    );
  });

  it('the kill switch wins over lockdown and quarantine', async () => {
    const r = await open();
    await r.cp.admin.setSessionQuarantine('sess-1', true, OPERATOR, 'odd');
    await r.cp.admin.setTenantLockdown('acme', true, OPERATOR, 'breach');
    await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident');
    expect(denyCode(await r.cp.decide(request('echo', { message: 'hi' })))).toBe('ERR_KILL_SWITCH');
  });

  const badStates: [string, string, GovernanceState['check']][] = [
    [
      'throws',
      'ERR_CONTROL_PLANE_UNAVAILABLE',
      () => {
        throw new Error('db');
      },
    ],
    ['hangs', 'ERR_CONTROL_PLANE_UNAVAILABLE', () => new Promise(() => undefined)],
    ['answers null', 'ERR_CONTROL_PLANE_UNAVAILABLE', () => Promise.resolve(null as never)],
    [
      'answers a missing kill switch',
      'ERR_KILL_SWITCH',
      () => Promise.resolve({ tenant_locked: false, session_quarantined: false } as never),
    ],
    [
      'answers 0 for the lockdown',
      'ERR_TENANT_LOCKDOWN',
      () => Promise.resolve({ kill_switch: false, tenant_locked: 0, session_quarantined: false } as never),
    ],
  ];
  it.each(badStates)('governance state %s → %s (fail closed)', async (_name, code, check) => {
    const r = await open({
      state: { check, apply: () => Promise.resolve(), snapshot: () => Promise.reject(new Error('x')) },
    });
    expect(denyCode(await r.cp.decide(request('echo', { message: 'hi' })))).toBe(code);
  });

  it('a state change the ledger does not confirm is not applied', async () => {
    const r = await open();
    r.faulty.mode = 'fail';
    expect(await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident')).toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    expect((await r.state.snapshot()).kill_switch).toBe(false);
  });
});
