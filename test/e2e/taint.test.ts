/**
 * Untrusted input is input compromise (OE-INV-013), end to end: a session that read text from
 * outside (the demo's `read_inbox`, marked `untrusted_output`) is tainted, ledgered, and policy
 * sees it: a transfer that would run at once now waits for a human (the demo policy's
 * tainted-transfer rule). Other sessions are unaffected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2e } from './harness.js';
import { session, startE2e } from './harness.js';

let e2e: E2e;

beforeAll(async () => {
  e2e = await startE2e();
});

afterAll(async () => {
  await e2e?.close();
});

const SMALL = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 40, currency: 'USD' };

describe('tainted sessions (OE-INV-013)', () => {
  it('after reading untrusted text, a small transfer in that session escalates; elsewhere it runs', async () => {
    const c = e2e.client();
    const s = session();
    const read = await c.call('read_inbox', {}, { session: s });
    expect(read).toMatchObject({ outcome: 'executed' });
    const view = await e2e.evidence(read.request_id ?? '');
    const types = (view.body['records'] as { entry: { type: string } }[]).map((x) => x.entry.type);
    expect(types).toContain('session.tainted');

    const before = e2e.runs.get('transfer_funds') ?? 0;
    const waiting = await c.call('transfer_funds', SMALL, { session: s });
    expect(waiting).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(e2e.runs.get('transfer_funds') ?? 0).toBe(before);

    expect(await c.call('transfer_funds', SMALL, { session: session() })).toMatchObject({
      outcome: 'executed',
    });
    expect(e2e.runs.get('transfer_funds')).toBe(before + 1);
  });
});
