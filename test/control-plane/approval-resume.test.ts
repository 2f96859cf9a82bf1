/**
 * Issuance of an escalated call once humans approved it (SPEC §2 step 5 "once approvals are
 * complete", OE-INV-019/020/021/025): the envelope is bound to the decision recorded at the
 * escalation, a halt or a breaker at issuance denies with a `denial` record, and a request
 * that opens no approval issues nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  approvalSigningInput,
  computeParamsSha256,
  deny,
  encodeBase64url,
  isDeny,
} from '../../src/kernel/index.js';
import type { ApprovalStatement, EnvelopeClaims, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { createApprovalService, createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type {
  ApprovalService,
  ApprovalStore,
  BundleStore,
  ControlPlaneDeps,
  GovernedRequest,
} from '../../src/control-plane/index.js';
import { entriesOf, OPERATOR, request, rig, type Rig } from '../approvals/cp-support.js';

const opened: Rig[] = [];

/** Fault injection around the real store: `markIssued` rejects while `faults.markIssued` is set. */
function failingMarkIssued(store: ApprovalStore, faults: { markIssued?: boolean }): ApprovalStore {
  return {
    ...store,
    markIssued: (id: string) =>
      faults.markIssued === true ? Promise.reject(new Error('approval state down')) : store.markIssued(id),
  };
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

/** Fault injection around the real service: the retry lookup (`get`) hangs or rejects while set. */
function faultyLookup(service: ApprovalService, faults: { lookup?: 'hang' | 'throw' }): ApprovalService {
  return {
    ...service,
    get: (id: string) =>
      faults.lookup === 'hang'
        ? new Promise<never>(() => undefined)
        : faults.lookup === 'throw'
          ? Promise.reject(new Error('approval state down'))
          : service.get(id),
  };
}

async function setup(
  over: Partial<ControlPlaneDeps> = {},
  faults: { bundleGet?: boolean; markIssued?: boolean; lookup?: 'hang' | 'throw' } = {},
) {
  let approvals!: ApprovalService;
  const r = await rig((deps) => {
    // Fault injection: the bundle store can fail to return a stored bundle.
    const bundles: BundleStore = {
      ...deps.bundles,
      get: (hash) =>
        faults.bundleGet === true
          ? deny('ERR_POLICY_UNAVAILABLE', 'bundle store (fault injected)')
          : deps.bundles.get(hash),
    };
    approvals = createApprovalService({
      store: failingMarkIssued(createSqliteApprovalStore(':memory:'), faults),
      ledger: deps.ledger,
      putEvidence: (bytes, media) => deps.rawLedger.putEvidence(bytes, media),
      now: deps.now,
      isClient: (n) => n === 'agent-1',
      settings: {},
    });
    // The lookup wrapped only where a test injects its faults (others compare the service itself).
    return { approvals: 'lookup' in faults ? faultyLookup(approvals, faults) : approvals, bundles, ...over };
  });
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const name of ['ann', 'ben']) {
    const key = generateSigningKey();
    keys.set(name, key);
    const reg = await approvals.registerApprover(
      { name, roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
      OPERATOR,
    );
    expect(isDeny(reg)).toBe(false);
  }
  const approve = async (decisionId: string): Promise<void> => {
    for (const approver of ['ann', 'ben']) {
      const p = await approvals.get(decisionId);
      const s: ApprovalStatement = {
        decision_id: decisionId,
        intent_sha256: p?.intent_sha256 ?? '',
        preview_sha256: p?.preview_sha256 ?? null,
        verdict: 'approve',
        justification: 'fine',
        timestamp: new Date(r.clock()).toISOString(),
        approver,
      };
      const sub = await approvals.submit(decisionId, {
        statement: { ...s },
        signature: encodeBase64url(signEd25519(keys.get(approver)!, approvalSigningInput(s))),
      });
      if ((sub as { outcome?: string }).outcome !== 'ok') throw new Error(JSON.stringify(sub));
    }
  };
  return { r, approvals, approve, faults };
}

const retry = (params: JsonValue, over: Partial<GovernedRequest> = {}): GovernedRequest =>
  request('wire', params, {
    trace_id: 'trace-retry',
    timestamp: Date.UTC(2025, 5, 1, 12, 0, 5),
    request_sha256: 'b'.repeat(64),
    ...over,
  });

describe('the retry lookup: bounded like every state read (fail closed)', () => {
  it.each(['hang', 'throw'] as const)(
    'an approval lookup that %ss → ERR_CONTROL_PLANE_UNAVAILABLE, recorded, nothing decided or issued',
    async (mode) => {
      const { r, faults } = await setup({}, { lookup: mode });
      const res = await r.cp.decide(request('echo', { message: 'hi' }));
      expect(res).toMatchObject({
        outcome: 'deny',
        code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
        decision_id: null,
      });
      const entries = await entriesOf(r.ledger);
      expect(entries.map((e) => e.type)).not.toContain('decision');
      expect(entries.map((e) => e.type)).not.toContain('envelope.issued');
      expect(entries.find((e) => e.type === 'denial')?.payload).toMatchObject({
        code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
        stage: 'control-plane',
      });
      delete faults.lookup;
      expect(await r.cp.decide(request('echo', { message: 'hi' }, { request_id: 'req-2' }))).toMatchObject({
        outcome: 'allow',
      });
    },
  );
});

describe('SPEC §2 step 5: issuance once approvals are complete', () => {
  it('the envelope points at the decision recorded at the escalation, under its bundle', async () => {
    const { r, approvals, approve } = await setup();
    expect(r.cp.approvals).toBe(approvals);
    const first = await r.cp.decide(request('wire', { amount_cents: 5 }));
    const id = first.decision_id!;
    await approve(id);
    const res = await r.cp.decide(retry({ amount_cents: 5 }));
    if (res.outcome !== 'allow') throw new Error(`expected allow, got ${res.code}`);
    const decision = (await entriesOf(r.ledger)).find(
      (e) => e.type === 'decision' && e.payload['decision_id'] === id,
    )!;
    const ref = { index: decision.index, entry_hash: decision.entry_hash };
    const claims = JSON.parse(
      Buffer.from(res.envelope.split('.')[1]!, 'base64url').toString(),
    ) as EnvelopeClaims;
    expect(claims.ledger).toEqual(ref);
    expect(res.decision_ref).toEqual(ref);
    expect(claims.policy_bundle).toBe(decision.payload['policy_bundle']);
    expect(res.policy_bundle).toBe(decision.payload['policy_bundle']);
    expect(claims).toMatchObject({
      tool: 'wire',
      tenant: 'acme',
      decision_id: id,
      params_sha256: computeParamsSha256({ amount_cents: 5 }),
    });
  });

  it('OE-INV-025: a kill switch at issuance denies with a denial record of the approval stage', async () => {
    const { r, approve } = await setup();
    const id = (await r.cp.decide(request('wire', { amount_cents: 6 }))).decision_id!;
    await approve(id);
    await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident');
    const rq = retry({ amount_cents: 6 });
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(rq);
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_KILL_SWITCH', decision_id: id });
    expect(r.faulty.attempts.slice(before).map((a) => a.type)).toEqual(['denial']);
    const denial = (await entriesOf(r.ledger)).at(-1)!;
    expect(denial).toMatchObject({ type: 'denial', request_id: rq.request_id, trace_id: 'trace-retry' });
    expect(denial.payload).toEqual({
      code: 'ERR_KILL_SWITCH',
      stage: 'approval',
      reason: expect.any(String),
      tool: 'wire',
      client: 'agent-1',
      session: 'sess-1',
      params_sha256: computeParamsSha256({ amount_cents: 6 }),
      decision_id: id,
      request_sha256: rq.request_sha256,
    });
    // Lifting it lets the approved call through.
    await r.cp.admin.setKillSwitch(false, OPERATOR, 'over');
    expect((await r.cp.decide(retry({ amount_cents: 6 }))).outcome).toBe('allow');
  });

  it('OE-INV-021: an approved call over the tenant spend limit trips at issuance', async () => {
    const { r, approve } = await setup({ breakers: { maxSpendCentsPerTenantDay: 100 } });
    const id = (await r.cp.decide(request('wire', { amount_cents: 101 }))).decision_id!;
    await approve(id);
    const res = await r.cp.decide(retry({ amount_cents: 101 }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_CIRCUIT_OPEN', decision_id: id });
    expect(res).not.toHaveProperty('envelope');
  });

  it('OE-INV-021: the spend reserved at issuance counts against the call’s own tenant', async () => {
    const { r, approve } = await setup({ breakers: { maxSpendCentsPerTenantDay: 100 } });
    const id = (await r.cp.decide(request('wire', { amount_cents: 60 }))).decision_id!;
    await approve(id);
    const pay = await r.cp.decide(request('pay', { amount_cents: 60 }, { request_id: 'req-pay' }));
    expect(pay.outcome).toBe('allow');
    const res = await r.cp.decide(retry({ amount_cents: 60 }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_CIRCUIT_OPEN', decision_id: id });
  });

  it('FC-INV-4: the decision’s bundle unavailable at issuance → ERR_POLICY_UNAVAILABLE, nothing issued, spend released', async () => {
    const { r, approve, faults } = await setup({ breakers: { maxSpendCentsPerTenantDay: 100 } });
    const id = (await r.cp.decide(request('wire', { amount_cents: 60 }))).decision_id!;
    await approve(id);
    faults.bundleGet = true;
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(retry({ amount_cents: 60 }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_UNAVAILABLE', decision_id: id });
    expect(r.faulty.attempts.slice(before).map((a) => a.type)).not.toContain('envelope.issued');
    faults.bundleGet = false;
    const other = (await r.cp.decide(request('wire', { amount_cents: 60 }, { request_id: 'req-2' })))
      .decision_id!;
    await approve(other);
    expect((await r.cp.decide(retry({ amount_cents: 60 }, { request_id: 'req-2' }))).outcome).toBe('allow');
  });

  it('FC-INV-4: the approval state failing at issuance → deny, nothing issued, spend released; issued once after', async () => {
    const { r, approve, faults } = await setup({ breakers: { maxSpendCentsPerTenantDay: 100 } });
    const id = (await r.cp.decide(request('wire', { amount_cents: 60 }))).decision_id!;
    await approve(id);
    faults.markIssued = true;
    const before = r.faulty.attempts.length;
    const res = await r.cp.decide(retry({ amount_cents: 60 }));
    // The Control Plane's edge: any exception is ERR_INTERNAL, recorded.
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    expect(r.faulty.attempts.slice(before).map((a) => a.type)).not.toContain('envelope.issued');
    faults.markIssued = false;
    // The 60 cents reserved before the failure were released: 60 more still fit under 100.
    const ok = await r.cp.decide(retry({ amount_cents: 60 }, { trace_id: 'trace-retry-2' }));
    expect(ok).toMatchObject({ outcome: 'allow', decision_id: id });
    expect(await r.cp.decide(retry({ amount_cents: 60 }, { trace_id: 'trace-retry-3' }))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_REPLAYED',
    });
  });

  it('an approval that cannot be opened issues nothing', async () => {
    const { r } = await setup();
    r.faulty.mode = 'fail';
    r.faulty.onlyType = 'approval.requested';
    const res = await r.cp.decide(request('wire', { amount_cents: 7 }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    expect(res.decision_id).toEqual(expect.any(String));
    expect(r.faulty.attempts.map((a) => a.type)).not.toContain('envelope.issued');
  });

  it('a request whose parameters cannot be encoded is never a retry', async () => {
    const { r } = await setup();
    await r.cp.decide(request('wire', { amount_cents: 8 }));
    expect(await r.cp.isRetry(request('wire', { amount_cents: 8 }))).toBe(true);
    expect(await r.cp.isRetry(request('wire', { amount_cents: 2 ** 60 }))).toBe(false);
  });
});
