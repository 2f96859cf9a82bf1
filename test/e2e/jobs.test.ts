/**
 * Background calls on the embedded default (docs/jobs.md; FC-INV-6 "All background jobs MUST
 * verify an approval envelope before execution"): `Prefer: respond-async` answers `202` once the
 * decision and envelope exist; the in-process queue runs the job through the Execution Layer
 * (envelope verified, nonce consumed first), and `GET /v1/jobs/{id}` gives its outcome to the
 * holder of its token. The ledger records `gateway.queued` between the decision and the receipt,
 * and the export verifies.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobState, QueuedCall } from '../../src/client/index.js';
import { readOperatorToken } from '../../src/embedded/index.js';
import { expectDenied, session, startE2e } from './harness.js';
import { exportAndVerify } from './topology.js';
import { napPolicyDir } from './processes.js';
import { runCli } from '../../src/cli/run.js';
import { createApproverClient } from '../../src/client/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { E2e } from './harness.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { queued } from './jobs-support.js';

/** Reads the job until it is no longer queued or running. */
async function settled(e2e: E2e, q: QueuedCall, token = q.job.token): Promise<JobState> {
  for (let i = 0; i < 200; i += 1) {
    const s = await e2e.client().job(q.job.id, token);
    if (s.outcome !== 'queued') return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the job did not settle');
}

async function jobAs(e2e: E2e, id: string, authorization: string | undefined): Promise<number> {
  const res = await fetch(`${e2e.instance.url}/v1/jobs/${encodeURIComponent(id)}`, {
    headers: authorization === undefined ? {} : { authorization },
  });
  await res.arrayBuffer();
  return res.status;
}

describe('background calls (embedded, in-process queue)', () => {
  let e2e: E2e;
  beforeAll(async () => {
    e2e = await startE2e();
  });
  afterAll(async () => {
    await e2e?.close();
  });

  it('answers 202 with a job once decided and queued; the job runs under its envelope and its result is fetched', async () => {
    const before = e2e.runs.get('echo') ?? 0;
    const q = queued(await e2e.client().submit('echo', { message: 'later' }, { session: session() }));
    expect(q.job.href).toBe(`/v1/jobs/${q.request_id}`);
    const s = await settled(e2e, q);
    expect(s).toMatchObject({ outcome: 'executed', status: 'executed', decision_id: q.decision_id });
    if (s.outcome !== 'executed') throw new Error('not executed');
    expect(s.result).toMatchObject({ message: 'later' });
    expect(e2e.runs.get('echo')).toBe(before + 1);
    // The ledger: accepted, decision, envelope, queued, receipt, completed, in that order.
    const view = await e2e.evidence(q.request_id);
    const types = (view.body['records'] as { entry: { type: string } }[]).map((r) => r.entry.type);
    const at = (t: string) => types.indexOf(t);
    expect(at('gateway.accepted')).toBeLessThan(at('decision'));
    expect(at('envelope.issued')).toBeLessThan(at('gateway.queued'));
    expect(at('gateway.queued')).toBeLessThan(at('execution.receipt'));
    expect(at('execution.receipt')).toBeLessThan(at('gateway.completed'));
    expect(s.receipt.index).toBe(
      (view.body['records'] as { entry: { type: string; index: number } }[]).find(
        (r) => r.entry.type === 'execution.receipt',
      )?.entry.index,
    );
  });

  it('shows a job only to the holder of its token or an operator (404 otherwise, as for an unknown id)', async () => {
    const q = queued(await e2e.client().submit('echo', { message: 'mine' }, { session: session() }));
    await settled(e2e, q);
    expect(await jobAs(e2e, q.job.id, undefined)).toBe(404);
    expect(await jobAs(e2e, q.job.id, `Bearer ${'A'.repeat(43)}`)).toBe(404);
    expect(await jobAs(e2e, 'no-such-request', `Bearer ${q.job.token}`)).toBe(404);
    expect(await jobAs(e2e, q.job.id, `Bearer ${q.job.token}`)).toBe(200);
    expect(await jobAs(e2e, q.job.id, `Bearer ${readOperatorToken(e2e.dir)}`)).toBe(200);
    // An operator's read is ledgered first (audit.read, L7 read path): unrecorded, it is refused.
    e2e.faults.ledgerTypes = ['audit.read'];
    e2e.faults.ledger = 'throw';
    try {
      expect(await jobAs(e2e, q.job.id, `Bearer ${readOperatorToken(e2e.dir)}`)).toBe(503);
      expect(await jobAs(e2e, q.job.id, `Bearer ${q.job.token}`)).toBe(200);
    } finally {
      e2e.faults.ledger = 'off';
      e2e.faults.ledgerTypes = null;
    }
    // A token opens its own job only.
    const other = queued(await e2e.client().submit('echo', { message: 'theirs' }, { session: session() }));
    expect(await jobAs(e2e, other.job.id, `Bearer ${q.job.token}`)).toBe(404);
    // Its job runs after this answer: let it finish here, not during the next test's count of runs.
    await settled(e2e, other);
  });

  it('denies a background call policy denies, and queues nothing', async () => {
    const r = await expectDenied(e2e, 'ERR_POLICY_DENY', () =>
      e2e
        .client()
        .submit(
          'transfer_funds',
          { from_account: 'acct_a', to_account: 'acct_b', amount: 60000, currency: 'USD' },
          { session: session() },
        ),
    );
    const view = await e2e.evidence(r.request_id ?? '');
    const types = (view.body['records'] as { entry: { type: string } }[]).map((x) => x.entry.type);
    expect(types).not.toContain('gateway.queued');
  });

  it('records a job whose executor denies as failed, with its code, and runs nothing', async () => {
    const before = e2e.totalRuns();
    e2e.faults.nonceStore = 'throw';
    let q: QueuedCall;
    try {
      q = queued(await e2e.client().submit('echo', { message: 'no nonce store' }, { session: session() }));
      const s = await settled(e2e, q);
      expect(s).toMatchObject({ outcome: 'deny', status: 'failed', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    } finally {
      e2e.faults.nonceStore = 'off';
    }
    expect(e2e.totalRuns()).toBe(before);
  });

  it('refuses a forged worker answer: an "executed" without its receipt is recorded as a deny and the envelope voided', async () => {
    const before = e2e.totalRuns();
    e2e.port.mode = 'hang';
    let q: QueuedCall;
    try {
      q = queued(await e2e.client().submit('echo', { message: 'forged' }, { session: session() }));
    } finally {
      e2e.port.mode = 'pass';
    }
    const envelope = e2e.port.captured.at(-1);
    expect(typeof envelope).toBe('string');
    const s0 = await e2e.client().job(q.job.id, q.job.token);
    expect(s0).toMatchObject({ outcome: 'queued', status: 'queued' });
    const job = {
      call: {
        envelope: envelope ?? '',
        tool: 'echo',
        tenant: 'acme',
        params: { message: 'forged' },
        trace_id: q.trace_id ?? '',
        request_id: q.request_id,
      },
      decision_id: q.decision_id,
      client: 'demo-agent',
      queued_at: Date.now(),
    };
    // An answer that names this job but carries another envelope closes nothing and voids nothing.
    await e2e.instance.core.gate.finishJob({
      job: { ...job, call: { ...job.call, envelope: 'aGVhZA.Y2xhaW1z.c2ln' } },
      answer: { outcome: 'deny', code: 'ERR_TOOL_FAILED', reason: 'forged' },
    });
    expect(await e2e.client().job(q.job.id, q.job.token)).toMatchObject({ status: 'queued' });
    await e2e.instance.core.gate.finishJob({
      job,
      answer: {
        outcome: 'executed',
        result: { message: 'forged' },
        receipt: { index: 1, entry_hash: 'a'.repeat(64) },
      },
    });
    const s = await e2e.client().job(q.job.id, q.job.token);
    expect(s).toMatchObject({ outcome: 'deny', status: 'failed', code: 'ERR_EXECUTION_UNAVAILABLE' });
    // Voided before the deny was recorded: presented now, it never runs.
    const direct = await e2e.execute({
      envelope: envelope ?? '',
      tool: 'echo',
      tenant: 'acme',
      params: { message: 'forged' },
    });
    expect(direct.body).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_VOIDED' });
    expect(e2e.totalRuns()).toBe(before);
  });

  /**
   * A held job (its envelope captured in flight) closed by a worker's `ERR_NONCE_REPLAYED` answer
   * while the void cannot answer (as for an envelope that expired meanwhile); `ranFirst` has a
   * worker run it and die before answering, so its redelivery meets the consumed nonce and the
   * Execution Layer records the replay denial.
   */
  const replayAnswered = async (
    ranFirst: boolean,
    answer: JsonObject = { outcome: 'deny', code: 'ERR_NONCE_REPLAYED', reason: 'envelope already used' },
  ): Promise<unknown> => {
    // The job is held at the port (its envelope captured) until its answer is recorded here; then
    // the held run ends with a deny the Gate finds already closed, so the queue's slot is free.
    let letGo: (() => void) | undefined;
    e2e.port.around = <T>() =>
      new Promise<T>((resolve) => {
        letGo = () => resolve({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'held' } as T);
      });
    let q: QueuedCall;
    const params = { message: `replayed-${ranFirst}` };
    const held = e2e.port.captured.length;
    try {
      q = queued(await e2e.client().submit('echo', params, { session: session() }));
      // The queue hands the job to the port after the 202: wait until it holds this job's envelope.
      for (let i = 0; i < 500 && letGo === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    } finally {
      e2e.port.around = undefined;
    }
    expect(e2e.port.captured.length).toBe(held + 1);
    const envelope = e2e.port.captured.at(-1) ?? '';
    expect(envelope).not.toBe('');
    if (ranFirst) {
      const ran = await e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params });
      expect(ran.body['outcome']).toBe('executed');
      if (answer['code'] === 'ERR_NONCE_REPLAYED') {
        const replay = await e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params });
        expect(replay.body['code']).toBe('ERR_NONCE_REPLAYED');
      }
    }
    e2e.faults.nonceStore = 'throw';
    try {
      await e2e.instance.core.gate.finishJob({
        job: {
          call: {
            envelope,
            tool: 'echo',
            tenant: 'acme',
            params,
            trace_id: q.trace_id ?? '',
            request_id: q.request_id,
          },
          decision_id: q.decision_id,
          client: 'demo-agent',
          queued_at: Date.now(),
        },
        answer,
      });
    } finally {
      e2e.faults.nonceStore = 'off';
      letGo?.();
    }
    return e2e.client().job(q.job.id, q.job.token);
  };

  it("records a replay denial the Execution Layer recorded as consumed (abandoned) when the void cannot confirm the envelope unused; a worker's word alone is not", async () => {
    const before = e2e.totalRuns();
    expect(await replayAnswered(true)).toMatchObject({
      outcome: 'deny',
      status: 'abandoned',
      code: 'ERR_NONCE_REPLAYED',
      envelope_consumed: true,
    });
    expect(e2e.totalRuns()).toBe(before + 1);
    // A replay answer no replay denial backs (forged, or a worker's mistake): failed, and not
    // said to be consumed.
    const forged = await replayAnswered(false);
    expect(forged).toMatchObject({
      outcome: 'deny',
      status: 'failed',
      code: 'ERR_NONCE_REPLAYED',
      envelope_consumed: false,
    });
    expect(e2e.totalRuns()).toBe(before + 1);
  });

  it('records a job whose tool ran (its receipt in the trace) and then failed, the void unconfirmed, as consumed (abandoned), never "failed" and unconsumed', async () => {
    // As for a long tool that fails after its envelope expired, or a result the queue withheld:
    // the worker answers a deny, the void can no longer tell, and the receipt says it ran.
    const before = e2e.totalRuns();
    expect(
      await replayAnswered(true, { outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT', reason: 'withheld' }),
    ).toMatchObject({
      outcome: 'deny',
      status: 'abandoned',
      code: 'ERR_TOOL_OUTPUT_LIMIT',
      envelope_consumed: true,
    });
    expect(e2e.totalRuns()).toBe(before + 1);
  });

  it('exports a ledger with background calls that verifies offline', async () => {
    const work = mkdtempSync(join(tmpdir(), 'fc-jobs-verify-'));
    try {
      const v = await exportAndVerify(e2e.instance.url, readOperatorToken(e2e.dir), work);
      expect(v.status).toBe(200);
      expect(v.report).not.toMatch(/FAIL/);
      expect(v.code).toBe(0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('background calls get the time limit their policy sets for them (docs/jobs.md "Time limits")', () => {
  let e2e: E2e;
  let work: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-jobs-limits-'));
    const policy = napPolicyDir(work);
    const nap = join(policy, 'tools', 'nap.json');
    const spec = JSON.parse(readFileSync(nap, 'utf8')) as { adapter: { limits: Record<string, unknown> } };
    spec.adapter.limits['background_timeout_ms'] = 1_800_000;
    writeFileSync(nap, JSON.stringify(spec));
    // A nap of one second needs one treasury approver: an escalation (docs/approvals.md).
    writeFileSync(
      join(policy, 'policies', 'approve-nap.cedar'),
      '@reason("a longer nap waits for a person")\n@approvals("1")\n' +
        'permit (principal, action == Action::"nap", resource) when { context.params.seconds == "1" };\n',
    );
    e2e = await startE2e({ policyDir: policy });
  });
  afterAll(async () => {
    await e2e?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Exports the ledger into `out`, verifies it, and replays it: every decision matches (exit 0). */
  const expectReplayClean = async (out: string): Promise<void> => {
    const v = await exportAndVerify(e2e.instance.url, readOperatorToken(e2e.dir), out);
    expect(v.code).toBe(0);
    const bundle = readdirSync(out).find((f) => f.startsWith('export-'));
    const trust = readdirSync(out).find((f) => f.startsWith('trust-'));
    let report = '';
    const code = await runCli(
      ['replay', '--bundle', join(out, bundle ?? ''), '--trust', join(out, trust ?? '')],
      { out: (t) => void (report += t), err: (t) => void (report += t), env: {} },
    );
    expect(report).not.toMatch(/REPLAY_MISMATCH/);
    expect(code).toBe(0);
  };

  /** The `constraints.timeout_ms` of the envelope issued for `requestId`. */
  const granted = async (requestId: string): Promise<unknown> => {
    const view = await e2e.evidence(requestId);
    const records = view.body['records'] as { entry: { type: string; payload: { constraints?: unknown } } }[];
    const issued = records.find((r) => r.entry.type === 'envelope.issued');
    return (issued?.entry.payload.constraints as { timeout_ms?: unknown } | undefined)?.timeout_ms;
  };

  it('grants background_timeout_ms to a background call and timeout_ms to a synchronous one; replay derives both', async () => {
    const sync = await e2e.client().call('nap', { seconds: '0' }, { session: session() });
    expect(sync).toMatchObject({ outcome: 'executed' });
    expect(await granted(sync.request_id ?? '')).toBe(15_000);
    const q = queued(await e2e.client().submit('nap', { seconds: '0' }, { session: session() }));
    expect(await settled(e2e, q)).toMatchObject({ outcome: 'executed' });
    expect(await granted(q.request_id)).toBe(1_800_000);

    // The forensic replay re-derives both envelopes' constraints, the background one from its
    // trace's gateway.queued.
    await expectReplayClean(work);
  }, 60_000);

  it('replays a background call whose queue record failed: its gateway.accepted says it was asked in the background', async () => {
    // The envelope was issued with the background limit, then voided when `gateway.queued` could
    // not be recorded: nothing ran, and the trace holds no `gateway.queued` to say so.
    const ran = e2e.totalRuns();
    e2e.faults.ledger = 'throw';
    e2e.faults.ledgerTypes = ['gateway.queued'];
    let asked;
    try {
      asked = await e2e.client().submit('nap', { seconds: '0' }, { session: session() });
    } finally {
      e2e.faults.ledger = 'off';
      e2e.faults.ledgerTypes = null;
    }
    expect(asked).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', envelope_voided: true });
    expect(e2e.totalRuns()).toBe(ran);
    expect(await granted(asked.request_id ?? '')).toBe(1_800_000);
    const view = await e2e.evidence(asked.request_id ?? '');
    const types = (view.body['records'] as { entry: { type: string; payload: JsonObject } }[]).map(
      (r) => r.entry,
    );
    expect(types.map((e) => e.type)).not.toContain('gateway.queued');
    expect(types.find((e) => e.type === 'gateway.accepted')?.payload['background']).toBe(true);

    await expectReplayClean(mkdtempSync(join(work, 'replay-')));
  }, 60_000);

  it('shows the denial of a background call whose queue record landed after it (its answer lost): never "queued" for ever', async () => {
    // `gateway.queued` reaches the ledger only after the Gate gave up waiting for it (5 s) and
    // recorded its denial: the job was never handed to the queue, and nothing runs.
    let late: Promise<unknown> | undefined;
    e2e.faults.ledgerLate = { type: 'gateway.queued', ms: 5500, made: (p) => void (late = p) };
    const ran = e2e.totalRuns();
    const asked = await e2e.client().submit('nap', { seconds: '0' }, { session: session() });
    expect(asked).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', envelope_voided: true });
    await expect.poll(() => late !== undefined, { timeout: 10_000 }).toBe(true);
    await late;
    const id = asked.request_id ?? '';
    const view = await e2e.evidence(id);
    const types = (view.body['records'] as { entry: { type: string } }[]).map((r) => r.entry.type);
    expect(types.indexOf('gateway.queued')).toBeGreaterThan(types.indexOf('gateway.failed'));
    const res = await fetch(`${e2e.instance.url}/v1/jobs/${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${readOperatorToken(e2e.dir)}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      outcome: 'deny',
      status: 'failed',
      code: 'ERR_LEDGER_UNAVAILABLE',
      envelope_voided: true,
    });
    expect(e2e.totalRuns()).toBe(ran);
    await expectReplayClean(mkdtempSync(join(work, 'replay-')));
  }, 60_000);

  /** Approves decision `id` as a treasury approver of acme registered for it. */
  const approve = async (id: string): Promise<void> => {
    const key = generateSigningKey();
    const name = `approver-${id.slice(0, 12)}`;
    const authorization = `Bearer ${readOperatorToken(e2e.dir)}`;
    const added = await e2e.instance.core.gate.admin(
      'approvers-add',
      { name, roles: ['treasury'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
      authorization,
    );
    expect(added.status).toBe(201);
    const approver = createApproverClient({ url: e2e.instance.url, name, key, authorization });
    expect(await approver.decide(id, 'approve', 'nap approved')).toMatchObject({ status: 200 });
  };

  it('issues an approved escalation with the limit of the call that issues it: a synchronous retry of a background ask gets timeout_ms, and replay agrees', async () => {
    // Asked in the background, approved, retried synchronously: the caller waits at the Gate
    // (30 s), so the envelope must grant the synchronous limit, never the background one.
    const s1 = session();
    const asked = await e2e.client().submit('nap', { seconds: '1' }, { session: s1 });
    expect(asked).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    if (asked.outcome !== 'pending') throw new Error('not pending');
    await approve(asked.decision_id);
    const retried = await e2e
      .client()
      .call('nap', { seconds: '1' }, { session: s1, requestId: asked.request_id });
    expect(retried).toMatchObject({ outcome: 'executed', decision_id: asked.decision_id });
    expect(await granted(asked.request_id)).toBe(15_000);

    // Asked synchronously, approved, retried in the background: the background limit.
    const s2 = session();
    const sync = await e2e.client().call('nap', { seconds: '1' }, { session: s2 });
    expect(sync).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    if (sync.outcome !== 'pending') throw new Error('not pending');
    await approve(sync.decision_id);
    const q = queued(
      await e2e.client().submit('nap', { seconds: '1' }, { session: s2, requestId: sync.request_id }),
    );
    expect(await settled(e2e, q)).toMatchObject({ outcome: 'executed' });
    expect(await granted(sync.request_id)).toBe(1_800_000);

    // The forensic replay derives each envelope's limit from the trace that issued it.
    await expectReplayClean(mkdtempSync(join(work, 'replay-')));
  }, 60_000);
});
