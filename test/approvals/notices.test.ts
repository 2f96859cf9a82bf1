/**
 * What the approval service hands to the notifications (docs/notifications.md), with the real
 * service and Control Plane over a real SQLite ledger: a notice when an approval starts waiting
 * (after `approval.requested` is ledgered), when break-glass is granted and when it stands in for
 * approvals; never a parameter value; and a notifier that throws changes no decision.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isDeny } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalNotice, ApprovalService } from '../../src/control-plane/index.js';
import { daveBreakGlass, entriesOf, OPERATOR, request, type Rig, rigWithApprovals } from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

async function setup(notify: (n: ApprovalNotice) => void): Promise<{ r: Rig; approvals: ApprovalService }> {
  const { r, approvals } = await rigWithApprovals(createSqliteApprovalStore(':memory:'), { notify });
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  return { r, approvals };
}

describe('notices from the approval service (OE-INV-019, L7 break-glass)', () => {
  it('an approval waits, break-glass is granted, then used: one notice each, after the ledger', async () => {
    const notices: ApprovalNotice[] = [];
    // The ledger's size when each notice was handed over.
    const sizes: number[] = [];
    let size = (): number => 0;
    const { r, approvals } = await setup((n) => {
      notices.push(n);
      sizes.push(size());
    });
    size = () => r.ledger.size();
    const first = await r.cp.decide(request('wire', { amount_cents: 100 }));
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      event: 'approval.requested',
      decision_id: first.decision_id,
      tool: 'wire',
      tenant: 'acme',
      required: 2,
    });
    expect(JSON.stringify(notices[0])).not.toContain('amount_cents');
    const requested = (await entriesOf(r.ledger)).find((e) => e.type === 'approval.requested');
    expect(requested?.payload['decision_id']).toBe(first.decision_id);
    // Handed over once its approval.requested entry was in the ledger.
    expect(sizes[0]).toBeGreaterThan(requested!.index);

    const key = generateSigningKey();
    expect(
      isDeny(
        await approvals.registerApprover(
          { name: 'dave', roles: ['L4'], tenants: '*', public_jwk: { ...key.publicJwk } },
          OPERATOR,
        ),
      ),
    ).toBe(false);
    const grant = await approvals.breakGlass(daveBreakGlass(key, r.clock));
    expect(grant).toMatchObject({ outcome: 'ok' });
    expect(notices[1]).toMatchObject({
      event: 'break_glass.used',
      decision_id: null,
      tool: 'wire',
      tenant: 'acme',
      break_glass: { phase: 'granted', approver: 'dave', reason_category: 'incident' },
    });
    const second = await r.cp.decide(
      request('wire', { amount_cents: 7 }, { request_id: 'req-2', trace_id: 'trace-2' }),
    );
    expect(second.outcome).toBe('allow');
    expect(notices.slice(2).map((n) => [n.event, n.break_glass?.phase])).toEqual([
      ['approval.requested', undefined],
      ['break_glass.used', 'used'],
    ]);
  });

  it('a notifier that throws changes nothing: the call is pending as without it', async () => {
    const { r, approvals } = await setup(() => {
      throw new Error('receiver exploded');
    });
    const first = await r.cp.decide(request('wire', { amount_cents: 1 }));
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    expect(await approvals.get(first.decision_id!)).toMatchObject({ status: 'pending' });
  });
});
