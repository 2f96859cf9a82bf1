/**
 * A keyless Gate's outcome whose answer is lost (FC-INV-5; SPEC §2 step 8; verify's
 * `OUTCOME_DUPLICATE` and `OUTCOME_MISSING`). The Control Plane process's route answers
 * `503` at its deadline while the append it queued is still made afterwards, as a process that
 * is slow, or killed after its commit, does. The Gate tries the outcome again: appended only while
 * its attempt is open, so the retry and the late append never both land. Before, the Gate denied
 * a call that ran and whose `gateway.completed` the ledger then held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import { FailclosedError } from '../../src/kernel/index.js';
import type { E2e } from './harness.js';
import { session, startE2e } from './harness.js';
import { exportAndVerify } from './topology.js';

describe('keyless topology: an outcome whose answer was lost', () => {
  let e2e: E2e;

  beforeAll(async () => {
    // The Gate waits for its outcome longer than the Control Plane's route waits for the ledger (2 s).
    e2e = await startE2e({ topology: 'keyless', gate: { control_plane_timeout_ms: 6000 } });
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
  });

  /** The types of the records of `requestId`, from the operator evidence view. */
  async function typesOf(requestId: string): Promise<string[]> {
    const view = await e2e.evidence(requestId);
    return (view.body['records'] as { entry: { type: string } }[]).map((r) => r.entry.type);
  }

  it('FC-INV-5: gateway.completed appended after the route gave up is tried again: the client gets its result, the ledger one outcome, verify holds', async () => {
    let late: Promise<unknown> | undefined;
    e2e.faults.ledgerLate = { type: 'gateway.completed', ms: 2500, made: (p) => void (late = p) };
    const before = e2e.totalRuns();
    const r = await e2e.client().call('echo', { message: 'answer lost' }, { session: session() });
    expect(r).toMatchObject({ outcome: 'executed', result: { message: 'answer lost' } });
    expect(e2e.totalRuns()).toBe(before + 1);
    // The retry closed the attempt; the late append, made afterwards, is refused and writes nothing.
    await expect.poll(() => late !== undefined, { timeout: 10_000 }).toBe(true);
    const refusal = await (late as Promise<unknown>).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(FailclosedError);
    expect((refusal as FailclosedError).code).toBe('ERR_LEDGER_REQUEST_CLOSED');
    const types = await typesOf(r.request_id ?? '');
    expect(types.filter((t) => t === 'gateway.completed')).toHaveLength(1);
    expect(types.filter((t) => t === 'gateway.failed' || t === 'request.abandoned')).toHaveLength(0);
    const { code, report } = await exportAndVerify(e2e.instance.url, readOperatorToken(e2e.dir), e2e.dir);
    expect(report).not.toContain('OUTCOME_DUPLICATE');
    expect(code).toBe(0);
  }, 30_000);
});
