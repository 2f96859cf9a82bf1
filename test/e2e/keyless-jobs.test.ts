/**
 * Background calls through a keyless Gate (docs/jobs.md, docs/deployment.md "Separate Gate";
 * FC-INV-6 "All message-driven workers MUST verify an approval envelope before execution",
 * OE-INV-017): the Gate, holding no key, has the Control Plane process decide a call with
 * `Prefer: respond-async`, records `gateway.queued`, publishes the job to NATS JetStream
 * (127.0.0.1:4222), answers `202` with the job's token, and records the worker's answer; the
 * Execution Layer's queue worker verifies the envelope and runs it once. A Gate without `jobs`
 * still denies `ERR_QUEUE_UNAVAILABLE` and has nothing decided.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2e } from './harness.js';
import type { E2e } from './harness.js';
import { queued, settled } from './jobs-support.js';
import { MAX_OUTPUT_BYTES, sha256Hex } from '../../src/kernel/index.js';
import { forgingGate } from './keyless-forge.js';

const NATS_URL = 'nats://127.0.0.1:4222';

let e2e: E2e;

const stream = `FCKEYLESS_${process.pid}_${Date.now()}`;

beforeAll(async () => {
  const jobs = { queue: 'nats', url: NATS_URL, stream, ack_wait_ms: 2000 };
  e2e = await startE2e({
    topology: 'keyless',
    gate: { jobs },
    executor: { jobs: { ...jobs, workers: 1 } },
  });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  const nc = await connect({ servers: NATS_URL }).catch(() => undefined);
  if (nc !== undefined) {
    const jsm = await jetstreamManager(nc);
    for (const s of [stream, `${stream}_NONCE_STORE`]) await jsm.streams.delete(s).catch(() => false);
    await nc.close();
  }
});

describe('background calls through a keyless Gate', () => {
  it('a call with respond-async is queued (202), run once by the Execution Layer worker, its answer recorded through the Gate', async () => {
    const client = e2e.client();
    const before = e2e.runs.get('echo') ?? 0;
    const q = queued(
      await client.submit('echo', { message: 'in the background' }, { session: 'keyless-jobs' }),
    );
    const s = await settled(client, q);
    expect(s).toMatchObject({ outcome: 'executed' });
    expect(JSON.stringify(s)).toContain('in the background');
    expect(e2e.runs.get('echo')).toBe(before + 1);
    const records = (await e2e.evidence(q.request_id)).body['records'] as {
      entry: { type: string; actor: { role: string } };
    }[];
    const role = (type: string) => records.find((r) => r.entry.type === type)?.entry.actor.role;
    expect(role('gateway.accepted')).toBe('gate');
    expect(role('envelope.issued')).toBe('control-plane');
    expect(role('gateway.queued')).toBe('gate');
    expect(role('execution.receipt')).toBe('executor');
    expect(role('gateway.completed')).toBe('gate');
    // The job's token is its reader's: without it, nothing is told, and the Control Plane
    // serves the recorded result to a Gate only for the token's holder.
    expect((await client.job(q.job.id, 'x'.repeat(43))).outcome).not.toBe('executed');
    const forge = await forgingGate(e2e, 'https://unused.test/mcp');
    try {
      const wrong = await forge.ask('/v1/internal/gate/job-result', {
        request_id: q.request_id,
        token: 'x'.repeat(43),
      });
      expect(wrong).toEqual({ status: 200, value: { body: null } });
      const right = await forge.ask('/v1/internal/gate/job-result', {
        request_id: q.request_id,
        token: q.job.token,
      });
      expect(Buffer.from(right.value['body'] as string, 'base64').toString()).toContain('in the background');
      // A Gate's own word never names what is served: a request of its own whose
      // `gateway.queued` (its token) and `gateway.completed` name the job's result reads nothing,
      // for no execution of that request produced it.
      const mine = 'm'.repeat(43);
      const records = (await e2e.evidence(q.request_id)).body['records'] as {
        entry: { type: string; payload: Record<string, unknown> };
      }[];
      const resultSha = records.find((r) => r.entry.type === 'gateway.completed')!.entry.payload[
        'result_sha256'
      ];
      const own = {
        request_id: `forged-${Date.now()}`,
        trace_id: 'f'.repeat(32),
        tenant: 'acme',
        identity: 'demo-agent',
      };
      const event = async (type: string, payload: Record<string, unknown>, closes?: number) =>
        forge.ask('/v1/internal/gate/event', {
          type,
          ...own,
          payload: payload as never,
          ...(closes === undefined ? {} : { closes }),
        });
      const accepted = await event('gateway.accepted', {
        request_sha256: 'a'.repeat(64),
        tool: 'echo',
        session: null,
        client: 'demo-agent',
        auth_method: 'signature',
      });
      expect(accepted.status).toBe(200);
      expect(
        (
          await event('gateway.queued', {
            decision_id: q.decision_id,
            tool: 'echo',
            client: 'demo-agent',
            job_token_sha256: sha256Hex(mine),
            queue: 'nats:forged',
          })
        ).status,
      ).toBe(200);
      expect(
        (
          await event(
            'gateway.completed',
            {
              decision_id: q.decision_id,
              tool: 'echo',
              client: 'demo-agent',
              outcome: 'executed',
              result_sha256: resultSha,
            },
            accepted.value['index'] as number,
          )
        ).status,
      ).toBe(200);
      expect(
        await forge.ask('/v1/internal/gate/job-result', { request_id: own.request_id, token: mine }),
      ).toEqual({
        status: 200,
        value: { body: null },
      });
      // A background result as large as a tool's output limit is stored as the job's evidence:
      // the route takes it base64 (a third larger), as the Gate sends it (it answered 413 before).
      const large = Buffer.from(JSON.stringify('a'.repeat(MAX_OUTPUT_BYTES - 2)));
      expect(
        await forge.ask('/v1/internal/gate/evidence', {
          media_type: 'application/json',
          body: large.toString('base64'),
        }),
      ).toEqual({ status: 200, value: { sha256: sha256Hex(large) } });
      // The job's own token still reads it: one queued record before the receipt is the job's.
      expect(
        (await forge.ask('/v1/internal/gate/job-result', { request_id: q.request_id, token: q.job.token }))
          .value['body'],
      ).not.toBeNull();
    } finally {
      forge.close();
    }
  });

  it('a policy deny is denied at once: nothing queued, nothing run', async () => {
    const before = e2e.totalRuns();
    const r = await e2e.client().submit('delete_records', { table: 'orders', ids: ['1'] });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    expect(e2e.totalRuns()).toBe(before);
    if (r.outcome !== 'deny') return;
    const types = (
      (await e2e.evidence(r.request_id ?? '')).body['records'] as { entry: { type: string } }[]
    ).map((x) => x.entry.type);
    expect(types).toContain('decision');
    expect(types).not.toContain('gateway.queued');
    expect(types).not.toContain('envelope.issued');
  });
});

describe('a keyless Gate without jobs', () => {
  let bare: E2e;
  beforeAll(async () => {
    bare = await startE2e({ topology: 'keyless' });
  }, 120_000);
  afterAll(async () => {
    await bare?.close();
  });

  it('denies respond-async ERR_QUEUE_UNAVAILABLE and has nothing decided', async () => {
    const r = await bare.client().submit('echo', { message: 'no queue' });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_QUEUE_UNAVAILABLE' });
    if (r.outcome !== 'deny') return;
    const types = (
      (await bare.evidence(r.request_id ?? '')).body['records'] as { entry: { type: string } }[]
    ).map((x) => x.entry.type);
    expect(types).not.toContain('decision');
    expect(bare.totalRuns()).toBe(0);
  });
});
