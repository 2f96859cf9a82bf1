/**
 * The Control Plane's approval step (OE-INV-018/019/020): pending decisions, long-poll, retries
 * that resume the same decision, preview bound into approvals, fail-closed ledger and governance
 * checks at issuance, and multi-party approval of policy activation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url, isDeny } from '../../src/kernel/index.js';
import type { ApprovalStatement, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalService, ApprovalSettings } from '../../src/control-plane/index.js';
import {
  bundleDoc,
  compile,
  entriesOf,
  OPERATOR,
  request,
  type Rig,
  rigWithApprovals,
} from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

interface Setup {
  readonly r: Rig;
  readonly approvals: ApprovalService;
  readonly keys: Map<string, SigningKey>;
  readonly sign: (
    decisionId: string,
    approver: string,
    over?: Partial<ApprovalStatement>,
  ) => Promise<unknown>;
}

async function setup(
  settings: Partial<ApprovalSettings> = {},
  isClient: (name: string) => boolean | Promise<boolean> = (n) => n === 'agent-1',
): Promise<Setup> {
  const { r, approvals } = await rigWithApprovals(createSqliteApprovalStore(':memory:'), {
    isClient,
    settings,
  });
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const name of ['ann', 'ben', 'olga']) {
    const key = generateSigningKey();
    keys.set(name, key);
    const reg = await approvals.registerApprover(
      { name, roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
      OPERATOR,
    );
    expect(isDeny(reg)).toBe(false);
  }
  return {
    r,
    approvals,
    keys,
    sign: async (decisionId, approver, over = {}) => {
      const p = await approvals.get(decisionId);
      const s: ApprovalStatement = {
        decision_id: decisionId,
        intent_sha256: p?.intent_sha256 ?? '',
        preview_sha256: p?.preview_sha256 ?? null,
        verdict: 'approve',
        justification: 'fine',
        timestamp: new Date(r.clock()).toISOString(),
        approver,
        ...over,
      };
      return approvals.submit(decisionId, {
        statement: { ...s },
        signature: encodeBase64url(signEd25519(keys.get(approver)!, approvalSigningInput(s))),
      });
    },
  };
}

const retry = (tool: string, params: JsonValue) =>
  request(tool, params, {
    trace_id: 'trace-retry',
    timestamp: Date.UTC(2025, 5, 1, 12, 0, 5),
    request_sha256: 'b'.repeat(64),
  });

describe('Control Plane approval step', () => {
  it('an escalation is pending, a retry resumes the same decision, and it issues once approved', async () => {
    const { r, approvals, sign } = await setup();
    const first = await r.cp.decide(request('wire', { amount_cents: 100 }));
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    const id = first.decision_id!;
    expect(await r.cp.isRetry(request('wire', { amount_cents: 100 }))).toBe(true);
    expect(await r.cp.isRetry(request('wire', { amount_cents: 101 }))).toBe(false);
    expect(await sign(id, 'olga')).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending' });
    expect(await r.cp.decide(retry('wire', { amount_cents: 100 }))).toMatchObject({
      code: 'ERR_APPROVAL_PENDING',
      decision_id: id,
    });
    expect(await sign(id, 'ben')).toMatchObject({ outcome: 'ok', status: 'approved' });
    const allowed = await r.cp.decide(retry('wire', { amount_cents: 100 }));
    expect(allowed.outcome).toBe('allow');
    if (allowed.outcome !== 'allow') throw new Error('expected allow');
    expect(allowed.decision_id).toBe(id);
    const claims = JSON.parse(Buffer.from(allowed.envelope.split('.')[1]!, 'base64url').toString()) as {
      approvals: string[];
      trace_id: string;
    };
    expect(claims.approvals).toEqual([...((await approvals.get(id))?.approvals ?? ['missing'])]);
    expect(claims.approvals).toHaveLength(2);
    expect(claims.trace_id).toBe('trace-retry');
    expect(await r.cp.decide(retry('wire', { amount_cents: 100 }))).toMatchObject({
      code: 'ERR_REQUEST_REPLAYED',
    });
    expect(await r.cp.isRetry(request('wire', { amount_cents: 100 }))).toBe(false);
    const types = (await entriesOf(r.ledger)).map((e) => e.type);
    expect(types.indexOf('approval.finalized')).toBeLessThan(types.indexOf('envelope.issued'));
  });

  it('OE-INV-002: a client registry answering asynchronously is asked for every approver; when it fails nothing counts', async () => {
    // A shared registry: a client named like an approver may appear through another Gate replica.
    const clients = new Set(['agent-1']);
    let registryDown = false;
    const { r, sign } = await setup({}, (n) =>
      registryDown ? Promise.reject(new Error('registry unavailable')) : Promise.resolve(clients.has(n)),
    );
    const first = await r.cp.decide(request('wire', { amount_cents: 100 }));
    const id = first.decision_id!;
    clients.add('ben');
    expect(await sign(id, 'ben')).toMatchObject({ code: 'ERR_APPROVER_AGENT' });
    registryDown = true;
    await expect(sign(id, 'ann')).rejects.toThrow(Error);
    registryDown = false;
    // The failed submission consumed nothing: the same approver's approval counts now.
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending', approvals: 1 });
  });

  it('long-poll: a waiting decision is issued as soon as the threshold is met', async () => {
    const { r, sign } = await setup();
    const first = await r.cp.decide(request('wire', { amount_cents: 7 }));
    const id = first.decision_id!;
    await sign(id, 'ann');
    const waiting = r.cp.decide(retry('wire', { amount_cents: 7 }), { waitMs: 5000 });
    await sign(id, 'ben');
    expect((await waiting).outcome).toBe('allow');
  });

  it('long-poll: a client may have at most maxWaitingPerPrincipal calls waiting; one more is answered pending at once and never runs', async () => {
    const { r, sign } = await setup({ maxWaitingPerPrincipal: 2 });
    const ids: string[] = [];
    for (const amount_cents of [21, 22, 23]) {
      const first = await r.cp.decide(request('wire', { amount_cents }));
      ids.push(first.decision_id!);
      await sign(first.decision_id!, 'ann');
    }
    let settled = 0;
    const waiting = [21, 22].map((amount_cents) =>
      r.cp.decide(retry('wire', { amount_cents }), { waitMs: 5000 }).finally(() => (settled += 1)),
    );
    // The third waits for nothing: its answer comes while the other two still wait.
    const third = await r.cp.decide(retry('wire', { amount_cents: 23 }), { waitMs: 5000 });
    expect(third).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING', decision_id: ids[2] });
    expect(third.outcome === 'deny' ? third.reason : '').toMatch(/too many calls of this client/);
    expect(settled).toBe(0);
    // Approved meanwhile, it still does not run: only a call that asks again is issued.
    await sign(ids[2]!, 'ben');
    expect((await entriesOf(r.ledger)).filter((e) => e.type === 'envelope.issued')).toEqual([]);
    // A finished wait frees its slot.
    await sign(ids[0]!, 'ben');
    expect((await waiting[0])?.outcome).toBe('allow');
    const again = r.cp.decide(retry('wire', { amount_cents: 23 }), { waitMs: 5000 });
    expect((await again).outcome).toBe('allow');
    await sign(ids[1]!, 'ben');
    expect((await waiting[1])?.outcome).toBe('allow');
  });

  it('long-poll: a kill switch engaged while the call waits denies the issuance, though the approvals complete', async () => {
    const { r, sign } = await setup();
    const first = await r.cp.decide(request('wire', { amount_cents: 8 }));
    const id = first.decision_id!;
    await sign(id, 'ann');
    const waiting = r.cp.decide(retry('wire', { amount_cents: 8 }), { waitMs: 5000 });
    // The wait began after the governance check of this decide; the kill switch comes meanwhile.
    await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident during the wait');
    await sign(id, 'ben');
    const answer = await waiting;
    expect(answer).toMatchObject({ outcome: 'deny', code: 'ERR_KILL_SWITCH' });
    expect((await entriesOf(r.ledger)).filter((e) => e.type === 'envelope.issued')).toEqual([]);
    await r.cp.admin.setKillSwitch(false, OPERATOR, 'over');
  });

  it('kill switch at issuance, policy change and ledger failure all deny', async () => {
    const { r, sign } = await setup();
    const id = (await r.cp.decide(request('wire', { amount_cents: 9 }))).decision_id!;
    r.faulty.mode = 'fail';
    expect(await sign(id, 'ann')).toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    r.faulty.mode = 'ok';
    await sign(id, 'ann');
    await sign(id, 'ben');
    await r.cp.admin.setKillSwitch(true, OPERATOR, 'incident');
    expect(await r.cp.decide(retry('wire', { amount_cents: 9 }))).toMatchObject({ code: 'ERR_KILL_SWITCH' });
    await r.cp.admin.setKillSwitch(false, OPERATOR, 'over');
    const other = r.bundles.put(JSON.stringify(bundleDoc('cp-test-2')));
    if (other.outcome !== 'ok') throw new Error('bundle');
    await r.bundles.activate(other.hash, OPERATOR, 'switch');
    expect(await r.cp.decide(retry('wire', { amount_cents: 9 }))).toMatchObject({
      code: 'ERR_POLICY_UNAVAILABLE',
    });
  });

  it('preview: computed, ledgered by hash, shown and bound into approvals; missing preview denies', async () => {
    const { r, approvals, sign } = await setup();
    const first = await r.cp.decide(request('purge', { ids: ['a', 'b', 'c'] }));
    const id = first.decision_id!;
    const p = await approvals.get(id);
    expect(p?.preview).toMatchObject({ objects: 3, irreversible: true, tool: 'purge' });
    const requested = (await entriesOf(r.ledger)).find((e) => e.type === 'approval.requested');
    expect(requested?.payload['preview_sha256']).toBe(p?.preview_sha256);
    expect(await sign(id, 'ann', { preview_sha256: null })).toMatchObject({ code: 'ERR_APPROVAL_INVALID' });
    expect(await sign(id, 'ann')).toMatchObject({ status: 'approved' });
    expect((await r.cp.decide(retry('purge', { ids: ['a', 'b', 'c'] }))).outcome).toBe('allow');
    expect(await r.cp.decide(request('blind', { ids: ['a'] }, { request_id: 'req-blind' }))).toMatchObject({
      code: 'ERR_PREVIEW_UNAVAILABLE',
    });
  });

  /** Each of `names` approves the pending decision `id` with its key. */
  const approveAs = async (
    names: readonly string[],
    id: string,
    approvals: ApprovalService,
    keys: ReadonlyMap<string, SigningKey>,
    clock: () => number,
  ): Promise<void> => {
    for (const name of names) {
      const p = await approvals.get(id);
      const s: ApprovalStatement = {
        decision_id: id,
        intent_sha256: p!.intent_sha256,
        preview_sha256: null,
        verdict: 'approve',
        justification: 'reviewed',
        timestamp: new Date(clock()).toISOString(),
        approver: name,
      };
      await approvals.submit(id, {
        statement: { ...s },
        signature: encodeBase64url(signEd25519(keys.get(name)!, approvalSigningInput(s))),
      });
    }
  };

  it('policy activation needs multi-party approval when configured; an approver removed before it is carried out refuses it (OE-INV-020)', async () => {
    const { r, approvals, keys } = await setup({ policyActivation: { approvals: 2, roles: ['ops'] } });
    const next = r.bundles.put(compile('cp-next'));
    if (next.outcome !== 'ok') throw new Error('bundle');
    const first = await r.cp.activateBundle(next.hash, OPERATOR, 'roll out');
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    const id = (first as { decision_id: string }).decision_id;
    await approveAs(['ann', 'ben'], id, approvals, keys, r.clock);
    // An approver removed after the finalisation no longer stands behind it (OE-INV-020): the
    // activation is refused, as an approved call's issuance would be.
    expect(isDeny(await approvals.removeApprover('ben', 'left the team', OPERATOR))).toBe(false);
    expect(await r.cp.activateBundle(next.hash, OPERATOR, 'roll out')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_APPROVER_UNKNOWN',
    });
    expect(r.bundles.active()).not.toMatchObject({ hash: next.hash });
  });

  it('an approved policy activation is carried out once its approvers stand (OE-INV-020)', async () => {
    const { r, approvals, keys } = await setup({ policyActivation: { approvals: 2, roles: ['ops'] } });
    const next = r.bundles.put(compile('cp-next'));
    if (next.outcome !== 'ok') throw new Error('bundle');
    const first = await r.cp.activateBundle(next.hash, OPERATOR, 'roll out');
    const id = (first as { decision_id: string }).decision_id;
    await approveAs(['ann', 'ben'], id, approvals, keys, r.clock);
    const done = await r.cp.activateBundle(next.hash, OPERATOR, 'roll out');
    expect(done).toMatchObject({ outcome: 'ok', hash: next.hash });
    const activated = (await entriesOf(r.ledger)).filter((e) => e.type === 'admin.policy_activated').at(-1);
    expect(activated?.payload['decision_id']).toBe(id);
    expect(activated?.payload['approvals']).toHaveLength(2);
  });
});
