/**
 * Notices leave the decision's critical section (docs/notifications.md "Never on the enforcement
 * path"): the approval service hands a notice (an approval waits) to the notifications only once
 * the step that ledgered it released the decision lock, so no notification work — an outbox
 * write waiting on a busy file, for instance — ever holds a decision.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalStore } from '../../src/control-plane/index.js';
import { request, type Rig, rigWithApprovals } from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

/** The real store, counting the decision locks held at each moment. */
function lockCounting(store: ApprovalStore): { store: ApprovalStore; held: () => number } {
  let held = 0;
  return {
    held: () => held,
    store: {
      ...store,
      withDecisionLock: (id, fn) =>
        store.withDecisionLock(id, async (h) => {
          held += 1;
          try {
            return await fn(h);
          } finally {
            held -= 1;
          }
        }),
    },
  };
}

describe('approval notices are handed on outside the decision lock', () => {
  it('approval.requested reaches the notifier once the opening step left the lock', async () => {
    const counted = lockCounting(createSqliteApprovalStore(':memory:'));
    const seen: { event: string; held: number }[] = [];
    const { r, approvals } = await rigWithApprovals(counted.store, {
      notify: (n) => seen.push({ event: n.event, held: counted.held() }),
    });
    opened.push(r);
    const first = await r.cp.decide(
      request(
        'wire',
        { amount_cents: 100 },
        { request_id: 'req-1', trace_id: 'trace-1', timestamp: r.clock() },
      ),
    );
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    expect(seen).toEqual([{ event: 'approval.requested', held: 0 }]);
    expect(await approvals.get(first.decision_id!)).toMatchObject({ status: 'pending' });
  });
});
