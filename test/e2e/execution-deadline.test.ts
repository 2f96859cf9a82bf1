/**
 * The Gate's execution deadline reaches the tool (FC-INV-4; ground rule "a caller told deny never
 * sees the effect happen later"; docs/envelope.md "When the Gate gives up"). A call whose tool
 * still runs when the Gate's deadline passes is answered denied with its envelope consumed; the
 * Execution Layer then ends the tool, in process as across mutual TLS, and its receipt says so
 * (`ERR_CALL_CANCELLED`), long before the tool would have finished on its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_TOPOLOGIES, session, startE2e } from './harness.js';
import type { E2e } from './harness.js';
import { napPolicyDir, until } from './processes.js';

/** The Gate's execution deadline here; the tool would take six seconds. */
const DEADLINE_MS = 1500;

describe.each(ALL_TOPOLOGIES)('%s topology', (topology) => {
  let e2e: E2e;
  const work = mkdtempSync(join(tmpdir(), 'fc-deadline-'));

  beforeAll(async () => {
    e2e = await startE2e({
      topology,
      policyDir: napPolicyDir(work),
      embedded: { deadlines: { gate: { executionMs: DEADLINE_MS } } },
      gate: { execution_timeout_ms: DEADLINE_MS },
    });
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('a tool still running at the deadline: the caller is told deny (envelope consumed), and the tool is ended, its receipt ERR_CALL_CANCELLED', async () => {
    const r = await e2e.client().call('nap', { seconds: '6' }, { session: session() });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', envelope_consumed: true });
    const requestId = r.request_id ?? '';
    // The receipt arrives once the tool has ended; one that ran its six seconds would say succeeded.
    let receipt: { status?: unknown; code?: unknown } | undefined;
    await expect
      .poll(
        async () => {
          const view = await e2e.evidence(requestId);
          const records = view.body['records'] as { entry: { type: string; payload: typeof receipt } }[];
          receipt = records.find((x) => x.entry.type === 'execution.receipt')?.entry.payload;
          return receipt !== undefined;
        },
        { timeout: 12_000, interval: 100 },
      )
      .toBe(true);
    expect(receipt).toMatchObject({
      status: 'failed',
      code: 'ERR_CALL_CANCELLED',
      reason: 'the caller gave up on the call while the tool ran',
    });
  }, 30_000);
});

describe('a separate Execution Layer stopped while a tool runs', () => {
  let e2e: E2e;
  const work = mkdtempSync(join(tmpdir(), 'fc-deadline-stop-'));

  beforeAll(async () => {
    e2e = await startE2e({ topology: 'distributed', policyDir: napPolicyDir(work) });
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('the tool is ended and its receipt written before the stop closes the ledger link: no consumed envelope without a receipt', async () => {
    const pending = e2e.client().call('nap', { seconds: '6' }, { session: session() });
    await until(() => (e2e.runs.get('nap') ?? 0) > 0, 'the nap started');
    await e2e.node?.close();
    const r = await pending;
    // The Gate lost its Execution Layer: it cannot void there either (voiding not confirmed).
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', envelope_voided: false });
    const view = await e2e.evidence(r.request_id ?? '');
    const records = view.body['records'] as { entry: { type: string; payload: Record<string, unknown> } }[];
    expect(
      records
        .filter((x) => x.entry.type === 'execution.receipt')
        .map((x) => [x.entry.payload['status'], x.entry.payload['code'], x.entry.payload['reason']]),
    ).toEqual([['failed', 'ERR_CALL_CANCELLED', 'the caller gave up on the call while the tool ran']]);
  }, 30_000);
});
