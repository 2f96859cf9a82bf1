/**
 * SPEC §7 scenario 11, end to end: self-approval, a forged approver signature, too few distinct
 * approvers and an agent as approver never approve; nor do a wrong role, an unknown approver, an
 * expired statement or a statement bound to another intent (OE-INV-019/020, OE-INV-002). Each is
 * refused with its own code, ledgered as a `denial`, and the call never runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url } from '../../src/kernel/index.js';
import type { ApprovalStatement, JsonObject } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { readClientFile, DEMO_CLIENT } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { startRig, type Rig } from './support.js';

let rig: Rig;
const keys = new Map<string, SigningKey>();
const PARAMS = { from_account: 'acct_a', to_account: 'acct_b', amount: 7000, currency: 'USD' };

beforeAll(async () => {
  rig = await startRig();
  for (const [name, roles] of [
    ['alice', ['treasury']],
    ['bob', ['treasury']],
    ['carol', ['finance']],
    ['mallory', ['treasury']],
  ] as const) {
    const a = await rig.addApprover(name, roles);
    expect(a.status).toBe(201);
    keys.set(name, a.key);
  }
  // mallory owns agent-m: she may not approve its calls.
  const agentKey = generateSigningKey();
  const added = await rig.operator('clients-add', {
    name: 'agent-m',
    tenant: 'acme',
    owner: 'mallory',
    public_jwk: { ...agentKey.publicJwk },
  });
  expect(added.status).toBe(201);
  keys.set('agent-m', agentKey);
}, 60_000);

afterAll(async () => {
  await rig.close();
});

async function pending(
  identity: string = DEMO_CLIENT.identity,
  key?: SigningKey,
): Promise<{ id: string; requestId: string; view: JsonObject }> {
  const { createClient } = await import('../../src/client/index.js');
  const client =
    key === undefined
      ? rig.agent()
      : createClient({ url: rig.instance.url, identity, tenant: 'acme', key, now: rig.now });
  const r = await client.call('transfer_funds', PARAMS);
  if (r.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(r)}`);
  const shown = await rig.approver('alice', keys.get('alice')!).show(r.decision_id);
  return { id: r.decision_id, requestId: r.request_id, view: shown.body as JsonObject };
}

function statement(
  view: JsonObject,
  approver: string,
  over: Partial<ApprovalStatement> = {},
): ApprovalStatement {
  return {
    decision_id: view['decision_id'] as string,
    intent_sha256: view['intent_sha256'] as string,
    preview_sha256: typeof view['preview_sha256'] === 'string' ? view['preview_sha256'] : null,
    verdict: 'approve',
    justification: 'checked',
    timestamp: new Date(rig.now()).toISOString(),
    approver,
    ...over,
  };
}

async function submit(s: ApprovalStatement, key: SigningKey): Promise<{ status: number; body: JsonObject }> {
  const res = await fetch(new URL(`/v1/approvals/${s.decision_id}/${s.verdict}`, rig.instance.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      statement: s,
      signature: encodeBase64url(signEd25519(key, approvalSigningInput(s))),
    }),
  });
  return { status: res.status, body: (await res.json()) as JsonObject };
}

describe('SPEC §7 scenario 11: no forged, self, agent or insufficient approval ever approves', () => {
  it('self-approval: the requester’s owner cannot approve (ERR_APPROVAL_SELF)', async () => {
    const p = await pending('agent-m', keys.get('agent-m'));
    const r = await submit(statement(p.view, 'mallory'), keys.get('mallory')!);
    expect(r.body['code']).toBe('ERR_APPROVAL_SELF');
    const ev = await rig.cli('requests', 'show', p.requestId);
    expect(ev.out).toContain('ERR_APPROVAL_SELF');
  });

  it('forged approver signature (ERR_APPROVAL_SIGNATURE)', async () => {
    const p = await pending();
    const r = await submit(statement(p.view, 'alice'), generateSigningKey());
    expect(r.status).toBe(403);
    expect(r.body['code']).toBe('ERR_APPROVAL_SIGNATURE');
  });

  it('too few distinct approvers: the same approver twice counts once, the call stays pending', async () => {
    const p = await pending();
    expect((await submit(statement(p.view, 'alice'), keys.get('alice')!)).status).toBe(200);
    const twice = await submit(statement(p.view, 'alice', { justification: 'again' }), keys.get('alice')!);
    expect(twice.body['code']).toBe('ERR_APPROVAL_DUPLICATE');
    const retry = await rig.agent().call('transfer_funds', PARAMS, { requestId: p.requestId });
    expect(retry.outcome).toBe('pending');
  });

  it('an agent identity can never approve (ERR_APPROVER_AGENT), nor be registered as an approver', async () => {
    const p = await pending();
    const agentKey = importSigningKeyJwk(readClientFile(rig.dir, DEMO_CLIENT.identity).key);
    const r = await submit(statement(p.view, DEMO_CLIENT.identity), agentKey);
    expect(r.body['code']).toBe('ERR_APPROVER_AGENT');
    const other = await submit(statement(p.view, 'agent-m'), keys.get('agent-m')!);
    expect(other.body['code']).toBe('ERR_APPROVER_AGENT');
    const asApprover = await rig.addApprover(DEMO_CLIENT.identity, ['treasury']);
    expect((asApprover.body as JsonObject)['code']).toBe('ERR_APPROVER_AGENT');
    const asClient = await rig.operator('clients-add', {
      name: 'alice',
      tenant: 'acme',
      public_jwk: { ...generateSigningKey().publicJwk },
    });
    expect((asClient.body as JsonObject)['code']).toBe('ERR_APPROVER_AGENT');
  });

  it('wrong role, unknown approver, expired statement, another intent: each refused with its code', async () => {
    const p = await pending();
    expect((await submit(statement(p.view, 'carol'), keys.get('carol')!)).body['code']).toBe(
      'ERR_APPROVER_ROLE',
    );
    expect((await submit(statement(p.view, 'zed'), generateSigningKey())).body['code']).toBe(
      'ERR_APPROVER_UNKNOWN',
    );
    const stale = new Date(rig.now() - 3600_000).toISOString();
    expect(
      (await submit(statement(p.view, 'bob', { timestamp: stale }), keys.get('bob')!)).body['code'],
    ).toBe('ERR_APPROVAL_EXPIRED');
    const other = statement(p.view, 'bob', { intent_sha256: 'a'.repeat(64) });
    expect((await submit(other, keys.get('bob')!)).body['code']).toBe('ERR_APPROVAL_INVALID');
    const unknown = statement(p.view, 'bob', { decision_id: 'no-such-decision' });
    expect((await submit(unknown, keys.get('bob')!)).body['code']).toBe('ERR_APPROVAL_UNKNOWN');
    // None of these counted: still pending.
    const retry = await rig.agent().call('transfer_funds', PARAMS, { requestId: p.requestId });
    expect(retry.outcome).toBe('pending');
  });
});
