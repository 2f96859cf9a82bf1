/**
 * A keyless Gate's outcome whose answer is lost (FC-INV-5; SPEC §2 step 8; verify's
 * `OUTCOME_DUPLICATE` and `OUTCOME_MISSING`). The Control Plane process's route answers
 * `503` at its deadline while the append it queued is still made afterwards, as a process that
 * is slow, or killed after its commit, does. The Gate tries the outcome again: appended only while
 * its attempt is open, so the retry and the late append never both land. Before, the Gate denied
 * a call that ran and whose `gateway.completed` the ledger then held.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/index.js';
import { DEMO_CLIENT, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import { FailclosedError } from '../../src/kernel/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, session, startE2e } from './harness.js';
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

/**
 * An identical replay of a request while the original's tool runs (FC-INV-5). The replay shares
 * the original's request id and trace (the trace id is derived from the signed request) and is
 * refused at ingress (`ERR_REQUEST_REPLAYED`, a `gateway.failed` of status `ingress`): that record
 * settles no attempt, so the original's outcome still lands. Anyone holding the request's bytes
 * could otherwise deny a call after its tool ran and leave it without its outcome.
 */
describe.each(ALL_TOPOLOGIES)('%s topology: a replay while the original runs', (topology) => {
  let e2e: E2e;

  beforeAll(async () => {
    e2e = await startE2e({ topology });
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
  });

  type Posted = { status: number; body: Record<string, unknown> };

  /** Signs one echo call as the demo client; `post` sends exactly its bytes, each time alike. */
  function signedEcho(message: string, prefer?: 'respond-async') {
    const demo = readClientFile(e2e.dir, DEMO_CLIENT.identity);
    const signed = buildSignedRequest({
      key: importSigningKeyJwk(demo.key),
      identity: demo.identity,
      tenant: demo.tenant,
      action: 'echo',
      parameters: { message },
      timestampMs: e2e.clock.now(),
      session: session(),
    });
    const body = JSON.stringify(signed);
    const post = async (): Promise<Posted> => {
      const r = await fetch(`${e2e.url}/v1/calls`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(prefer === undefined ? {} : { prefer }) },
        body,
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    return { requestId: signed.request_id, post };
  }

  /**
   * Runs `during` while the next execution is held at the Gate's port to the Execution Layer
   * (once `start` reached it), then lets it run.
   */
  async function whileHeld<T>(start: () => Promise<T>, during: () => Promise<void>): Promise<T> {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let held = false;
    e2e.port.around = async <R>(run: () => Promise<R>): Promise<R> => {
      held = true;
      await released;
      return run();
    };
    try {
      const started = start();
      await expect.poll(() => held, { timeout: 10_000 }).toBe(true);
      await during();
      release();
      return await started;
    } finally {
      e2e.port.around = undefined;
      release();
    }
  }

  it('FC-INV-5: the replay is refused ERR_REQUEST_REPLAYED and the original still answers executed with its gateway.completed', async () => {
    const call = signedEcho('replayed while running');
    const before = e2e.totalRuns();
    const original = await whileHeld(call.post, async () => {
      expect((await call.post()).body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    });
    expect(original.body).toMatchObject({ outcome: 'executed' });
    expect(e2e.totalRuns()).toBe(before + 1);
    const view = await e2e.evidence(call.requestId);
    const types = (view.body['records'] as { entry: { type: string } }[]).map((r) => r.entry.type);
    expect(types.filter((t) => t === 'gateway.completed')).toHaveLength(1);
  }, 30_000);

  it('FC-INV-5: a replay of a background call while its job runs leaves the job its own outcome: completed, its result readable', async () => {
    // Background calls are not served by a keyless Gate.
    if (e2e.topology === 'keyless') return;
    const call = signedEcho('a job replayed while running', 'respond-async');
    // The 202 comes before the job reaches the port: the replay is sent once it is held there.
    const queued = await whileHeld(call.post, async () => {
      expect((await call.post()).body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    });
    expect(queued.body).toMatchObject({ outcome: 'queued' });
    const job = queued.body['job'] as { id: string; token: string };
    await expect
      .poll(async () => (await e2e.client().job(job.id, job.token)).outcome, { timeout: 10_000 })
      .toBe('executed');
    expect(await e2e.client().job(job.id, job.token)).toMatchObject({
      outcome: 'executed',
      result: { message: 'a job replayed while running' },
    });
  }, 30_000);
});
