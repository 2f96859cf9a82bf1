/**
 * The NATS JetStream queue's own behaviour against a real broker (127.0.0.1:4222; docs/jobs.md):
 *
 * - a worker tells the broker it is still working within the acknowledgement wait the broker's
 *   consumer has, not the one its own configuration names: a consumer keeps the `ack_wait` of the
 *   process that created it, and a worker configured with 30 s beat every 10 s against a 1 s
 *   consumer, so the broker handed a running job to a second worker (measured: the job ran twice
 *   here; in a deployment the second run is denied by the consumed nonce, its denial answered
 *   first, and the real result dropped as a duplicate: the caller saw "abandoned" for a job that
 *   succeeded);
 * - an answer larger than the queue carries is answered as withheld (`ERR_TOOL_OUTPUT_LIMIT`, the
 *   tool ran): the broker refused it, the job was redelivered, met its consumed nonce, and the
 *   replay denial became its outcome (here: the job ran twice and no answer came back);
 * - workers told to stop take no new job, and the queued ones stay in the stream (this case held
 *   before too; the hand-back of a message taken in the instant a loop stops is not reproduced here);
 * - a stopping Gate's own queue workers (`jobs.workers`) stop taking jobs as its stop begins: they
 *   went on taking them through the grace period and past the fence, where each was refused
 *   `ERR_SHUTTING_DOWN` and removed from the stream, although another worker could have run it.
 *
 * The executor is a counting function here: the queue is under test, not the Execution Layer.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createNatsJobQueue, startNatsWorkers } from '../../src/embedded/nats-queue.js';
import type { JobDelivery, QueuedJob } from '../../src/gate/index.js';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { napPolicyDir } from '../e2e/processes.js';

const NATS_URL = 'nats://127.0.0.1:4222';
const streams: string[] = [];

afterAll(async () => {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
  await nc.close();
});

const streamName = (what: string): string => {
  const s = `FCTEST_${what}_${process.pid}_${Date.now()}`;
  // The queue's stream, and the one binding its workers to their nonce store.
  streams.push(s, `${s}_NONCE_STORE`);
  return s;
};
/** The nonce store the workers of these tests share, by its identity. */
const ONE_STORE = 'postgres:1/db/one';

function job(n: number): QueuedJob {
  return {
    call: {
      envelope: 'aGVhZGVy.cGF5bG9hZA.c2ln',
      tool: 'nap',
      tenant: 'acme',
      params: { n },
      trace_id: n.toString(16).padStart(32, '0'),
      request_id: `req_${n}`,
    },
    decision_id: `dec_${n}`,
    client: 'demo-agent',
    queued_at: Date.now(),
  };
}

/** A Gate's side of the queue on `stream`, started and ready, and the answers it was handed. */
async function gateQueue(
  stream: string,
  ackWaitMs: number,
): Promise<{ gate: ReturnType<typeof createNatsJobQueue>; delivered: JobDelivery[] }> {
  const gate = createNatsJobQueue({ url: NATS_URL, stream, ackWaitMs });
  const delivered: JobDelivery[] = [];
  await gate.start((d) => {
    delivered.push(d);
    return Promise.resolve();
  });
  for (let i = 0; i < 200 && !(await gate.ready()); i += 1) await new Promise((r) => setTimeout(r, 25));
  return { gate, delivered };
}

/** Configures the data directory `dir` for background calls on the NATS `stream` with `workers` in process. */
function withNatsJobs(dir: string, stream: string, workers: number): void {
  const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    dataPaths(dir).config,
    JSON.stringify({ ...config, jobs: { queue: 'nats', url: NATS_URL, stream, workers, ack_wait_ms: 5000 } }),
  );
}

const until = async (ok: () => boolean, ms: number): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
};

describe('the NATS job queue', () => {
  it("a worker beats within the consumer's acknowledgement wait, not its own: a running job is not handed to another worker", async () => {
    const stream = streamName('ACK');
    // The Gate's queue creates the consumers first, with a 1 s acknowledgement wait.
    const { gate, delivered } = await gateQueue(stream, 1000);
    expect(await gate.ready()).toBe(true);
    // A worker configured with 30 s; two loops, so a redelivery would find a free one.
    let runs = 0;
    const workers = startNatsWorkers(
      { url: NATS_URL, stream, ackWaitMs: 30_000, concurrency: 2, nonceStore: ONE_STORE },
      async () => {
        runs += 1;
        await new Promise((r) => setTimeout(r, 3500));
        return { outcome: 'executed', run: runs };
      },
    );
    try {
      await gate.enqueue(job(1));
      await until(() => delivered.length > 0, 15_000);
      // Time for a duplicate answer to arrive, had the job run twice.
      await new Promise((r) => setTimeout(r, 1500));
      expect(runs).toBe(1);
      expect(delivered.map((d) => d.answer)).toEqual([{ outcome: 'executed', run: 1 }]);
    } finally {
      await workers.close();
      await gate.close();
    }
  }, 30_000);

  it("an answer past the queue's message limit comes back as a withheld result, the job run once", async () => {
    const stream = streamName('BIG');
    const { gate, delivered } = await gateQueue(stream, 2000);
    let runs = 0;
    const workers = startNatsWorkers(
      { url: NATS_URL, stream, ackWaitMs: 2000, concurrency: 2, nonceStore: ONE_STORE },
      () => {
        runs += 1;
        return Promise.resolve({
          outcome: 'executed',
          result: { text: 'x'.repeat(1024 * 1024) },
          receipt: {},
        });
      },
    );
    try {
      await gate.enqueue(job(7));
      await until(() => delivered.length > 0, 15_000);
      await new Promise((r) => setTimeout(r, 2500));
      expect(delivered.map((d) => d.answer)).toEqual([
        {
          outcome: 'deny',
          code: 'ERR_TOOL_OUTPUT_LIMIT',
          reason: 'the result exceeds what the queue may carry; the tool ran',
        },
      ]);
      expect(runs).toBe(1);
    } finally {
      await workers.close();
      await gate.close();
    }
  }, 30_000);

  it('a worker on another nonce store than the stream is bound to takes no job; workers on the bound one run them all', async () => {
    const stream = streamName('BIND');
    const { gate, delivered } = await gateQueue(stream, 5000);
    const ran = { a: 0, b: 0, c: 0 };
    const worker = (store: string, name: keyof typeof ran, refusals: Error[]) =>
      startNatsWorkers(
        {
          url: NATS_URL,
          stream,
          ackWaitMs: 5000,
          concurrency: 2,
          nonceStore: store,
          onRefused: (e) => refusals.push(e),
        },
        () => {
          ran[name] += 1;
          return Promise.resolve({ outcome: 'executed' });
        },
      );
    const none: Error[] = [];
    const refused: Error[] = [];
    const a = worker('postgres:1/db/one', 'a', none);
    await until(() => a.connected(), 10_000);
    // Before, it took jobs: a redelivery there would find its nonce fresh and run again.
    const b = worker('sqlite:elsewhere:/var/lib/nonces.db', 'b', refused);
    const c = worker('postgres:1/db/one', 'c', none);
    try {
      await until(() => refused.length > 0 && c.connected(), 10_000);
      expect(refused.map((e) => e.name)).toEqual(['NonceStoreMismatch']);
      expect(refused[0]!.message).toContain('postgres:1/db/one');
      expect(b.connected()).toBe(false);
      expect(b.refused()).toBe(refused[0]);
      for (let n = 1; n <= 8; n += 1) await gate.enqueue(job(n));
      await until(() => delivered.length === 8, 15_000);
      expect(delivered).toHaveLength(8);
      expect(ran.b).toBe(0);
      expect(ran.a + ran.c).toBe(8);
      expect(none).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
      await gate.close();
    }
  }, 40_000);

  it('workers on different nonce stores starting at once: exactly one store is bound, the others take no job', async () => {
    const stream = streamName('RACE');
    const refused: Error[] = [];
    const workers = ['a', 'b', 'c', 'd'].map((n) =>
      startNatsWorkers(
        {
          url: NATS_URL,
          stream,
          ackWaitMs: 5000,
          concurrency: 1,
          nonceStore: `sqlite:host:/${n}`,
          onRefused: (e) => refused.push(e),
        },
        () => Promise.resolve({ outcome: 'executed' }),
      ),
    );
    try {
      await until(() => refused.length === 3 && workers.some((w) => w.connected()), 15_000);
      expect(refused).toHaveLength(3);
      expect(workers.filter((w) => w.bound())).toHaveLength(1);
      expect(workers.filter((w) => w.refused() !== undefined)).toHaveLength(3);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  }, 30_000);

  it('a binding lost while workers run (its stream deleted) and taken by another store: the old workers run no job', async () => {
    const stream = streamName('LOST');
    const { gate, delivered } = await gateQueue(stream, 5000);
    const ran = { a: 0, b: 0 };
    const refused: Error[] = [];
    const a = startNatsWorkers(
      {
        url: NATS_URL,
        stream,
        ackWaitMs: 5000,
        concurrency: 2,
        nonceStore: 'sqlite:host:/a',
        onRefused: (e) => refused.push(e),
      },
      () => {
        ran.a += 1;
        return Promise.resolve({ outcome: 'executed' });
      },
    );
    let b: ReturnType<typeof startNatsWorkers> | undefined;
    try {
      await until(() => a.connected(), 10_000);
      // As a broker that lost its storage, or a binding removed while a worker still runs.
      const nc = await connect({ servers: NATS_URL });
      try {
        await (await jetstreamManager(nc)).streams.delete(`${stream}_NONCE_STORE`);
      } finally {
        await nc.close();
      }
      b = startNatsWorkers(
        { url: NATS_URL, stream, ackWaitMs: 5000, concurrency: 2, nonceStore: 'sqlite:host:/b' },
        () => {
          ran.b += 1;
          return Promise.resolve({ outcome: 'executed' });
        },
      );
      await until(() => b!.bound(), 10_000);
      for (let n = 1; n <= 6; n += 1) await gate.enqueue(job(n));
      await until(() => delivered.length === 6, 20_000);
      // Before, the first workers kept taking jobs on their own store.
      expect(ran).toEqual({ a: 0, b: 6 });
      expect(refused.map((e) => e.name)).toEqual(['NonceStoreMismatch']);
    } finally {
      await Promise.all([a.close(), b?.close()]);
      await gate.close();
    }
  }, 40_000);

  it('workers told to stop take no new job: the queued ones stay in the stream for another worker', async () => {
    const stream = streamName('STOP');
    const { gate, delivered } = await gateQueue(stream, 5000);
    let started = 0;
    const workers = startNatsWorkers(
      { url: NATS_URL, stream, ackWaitMs: 5000, concurrency: 1, nonceStore: ONE_STORE },
      async () => {
        started += 1;
        await new Promise((r) => setTimeout(r, 800));
        return { outcome: 'executed' };
      },
    );
    for (let n = 1; n <= 5; n += 1) await gate.enqueue(job(n));
    await until(() => started === 1, 10_000);
    // Stopped while the first job runs: it finishes, nothing else starts.
    await workers.close();
    expect(started).toBe(1);
    // The other four wait in the stream: a new worker runs them.
    const next = startNatsWorkers(
      { url: NATS_URL, stream, ackWaitMs: 5000, concurrency: 2, nonceStore: ONE_STORE },
      () => Promise.resolve({ outcome: 'executed' }),
    );
    try {
      await until(() => delivered.length === 5, 15_000);
      expect(delivered.map((d) => d.job.call.request_id).sort()).toEqual([
        'req_1',
        'req_2',
        'req_3',
        'req_4',
        'req_5',
      ]);
      expect(started).toBe(1);
    } finally {
      await next.close();
      await gate.close();
    }
  }, 40_000);

  it("a Gate's own workers on another nonce store than its stream's take no job, and /readyz says so", async () => {
    const stream = streamName('GATEBIND');
    // Workers elsewhere bound the stream to their store first.
    const elsewhere = startNatsWorkers(
      { url: NATS_URL, stream, ackWaitMs: 5000, concurrency: 1, nonceStore: 'postgres:7/other/failclosed' },
      () => Promise.resolve({ outcome: 'executed' }),
    );
    await until(() => elsewhere.connected(), 10_000);
    await elsewhere.close();
    const work = mkdtempSync(join(tmpdir(), 'fc-nats-bind-'));
    const dir = join(work, 'gate');
    try {
      await initDataDir(dir, { policyDir: napPolicyDir(work) });
      withNatsJobs(dir, stream, 1);
      let runs = 0;
      const gate = await startEmbedded(dir, { port: 0, onToolRun: () => void (runs += 1) });
      try {
        const checks = async () =>
          ((await (await fetch(`${gate.url}/readyz`)).json()) as { checks: Record<string, boolean> }).checks;
        let last: Record<string, boolean> = {};
        for (let i = 0; i < 200 && last['queue_workers'] !== false; i += 1) {
          last = await checks();
          await new Promise((r) => setTimeout(r, 25));
        }
        expect(last['queue_workers']).toBe(false);
        const f = readClientFile(dir, DEMO_CLIENT.identity);
        const client = createClient({ url: gate.url, identity: f.identity, tenant: f.tenant, key: f.key });
        expect(await client.submit('nap', { seconds: '0' }, { session: 'bind' })).toMatchObject({
          outcome: 'queued',
        });
        await new Promise((r) => setTimeout(r, 1500));
        expect(runs).toBe(0);
      } finally {
        await gate.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 40_000);

  it('a job its broker lost is recorded never run once its envelope expired: failed, not queued for ever', async () => {
    const stream = streamName('LOST');
    const work = mkdtempSync(join(tmpdir(), 'fc-nats-lost-'));
    const dir = join(work, 'gate');
    let offset = 0;
    const clock = (): number => Date.now() + offset;
    try {
      await initDataDir(dir, { policyDir: napPolicyDir(work) });
      withNatsJobs(dir, stream, 0);
      let runs = 0;
      const gate = await startEmbedded(dir, {
        port: 0,
        clock,
        orphanSweepMs: 0,
        onToolRun: () => void (runs += 1),
      });
      try {
        for (let i = 0; i < 200 && !(await gate.core.jobs.ready()); i += 1)
          await new Promise((r) => setTimeout(r, 25));
        const f = readClientFile(dir, DEMO_CLIENT.identity);
        const client = createClient({
          url: gate.url,
          identity: f.identity,
          tenant: f.tenant,
          key: f.key,
          now: clock,
        });
        const q = await client.submit('nap', { seconds: '0' }, { session: 'lost' });
        if (q.outcome !== 'queued') throw new Error(`expected queued: ${JSON.stringify(q)}`);
        // The broker loses it.
        const nc = await connect({ servers: NATS_URL });
        try {
          await (await jetstreamManager(nc)).streams.purge(stream);
        } finally {
          await nc.close();
        }
        // While its envelope could still run somewhere, the job stays queued.
        expect(await gate.core.sweepLostJobs()).toEqual({ abandoned: 0, mayHaveRun: 0 });
        expect(await client.job(q.job.id, q.job.token)).toMatchObject({
          outcome: 'queued',
          status: 'queued',
        });
        // Past its expiry and the tolerance: voided unused here (the Execution Layer's store), failed.
        offset += 15 * 60_000;
        expect(await gate.core.sweepLostJobs()).toEqual({ abandoned: 1, mayHaveRun: 0 });
        expect(await client.job(q.job.id, q.job.token)).toMatchObject({
          outcome: 'abandoned',
          status: 'failed',
          envelope_consumed: false,
        });
        expect(await gate.core.sweepLostJobs()).toEqual({ abandoned: 0, mayHaveRun: 0 });
        expect(runs).toBe(0);
      } finally {
        await gate.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 40_000);

  it("a stopping Gate's own queue workers take no new job: the jobs not taken stay in the stream", async () => {
    const stream = streamName('GATE');
    const work = mkdtempSync(join(tmpdir(), 'fc-nats-stop-'));
    const dir = join(work, 'gate');
    await initDataDir(dir, { policyDir: napPolicyDir(work) });
    const withWorkers = (workers: number): void => withNatsJobs(dir, stream, workers);
    const ready = async (g: EmbeddedInstance): Promise<void> => {
      for (let i = 0; i < 200 && !(await g.core.jobs.ready()); i += 1)
        await new Promise((r) => setTimeout(r, 25));
    };
    try {
      // Four jobs queued by a Gate that runs no worker.
      withWorkers(0);
      const queuer = await startEmbedded(dir, { port: 0 });
      try {
        await ready(queuer);
        const f = readClientFile(dir, DEMO_CLIENT.identity);
        const client = createClient({ url: queuer.url, identity: f.identity, tenant: f.tenant, key: f.key });
        for (let n = 0; n < 4; n += 1)
          expect(await client.submit('nap', { seconds: '0' }, { session: `stop-${n}` })).toMatchObject({
            outcome: 'queued',
          });
      } finally {
        await queuer.stop({ graceMs: 1000 });
      }
      // A Gate with one worker takes the first; its stop begins as that job's tool starts.
      withWorkers(1);
      let runs = 0;
      let stopping: Promise<unknown> | undefined;
      // The worker may take the first job before startEmbedded has returned.
      const self: { gate?: EmbeddedInstance } = {};
      const gate = await startEmbedded(dir, {
        port: 0,
        onToolRun: () => {
          runs += 1;
          if (runs === 1 && self.gate !== undefined) stopping = self.gate.stop({ graceMs: 0 });
        },
      });
      self.gate = gate;
      if (runs > 0) stopping = gate.stop({ graceMs: 0 });
      try {
        await until(() => stopping !== undefined, 15_000);
        await stopping;
      } finally {
        await gate.close();
      }
      expect(runs).toBe(1);
      // The three jobs not taken wait in the stream for another worker.
      const nc = await connect({ servers: NATS_URL });
      try {
        const info = await (await jetstreamManager(nc)).consumers.info(stream, 'workers');
        expect(info.num_pending + info.num_ack_pending).toBe(3);
      } finally {
        await nc.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});
