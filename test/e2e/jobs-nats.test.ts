/**
 * Background calls over the real broker, NATS JetStream (docs/jobs.md; FC-INV-6 "All
 * message-driven workers MUST verify an approval envelope before execution"; OE-INV-017 single
 * use). Queue workers are real `failclosed serve executor` processes of the built CLI sharing one
 * PostgreSQL nonce store; the Gate publishes jobs to the broker on 127.0.0.1:4222 and records
 * the workers' answers.
 *
 * - Two workers run queued jobs; each job's result comes back through the Gate.
 * - A message published straight to the jobs subject (no envelope, a forged one, a replayed one)
 *   never runs: the executor denies and records it.
 * - A worker killed -9 mid-job: the job is redelivered, the consumed nonce denies it
 *   (`ERR_NONCE_REPLAYED`), and the job is recorded abandoned (the tool may have run), never
 *   run twice.
 * - A job whose envelope expired while it waited in the queue (no worker running) is denied
 *   `ERR_ENVELOPE_EXPIRED` and recorded.
 * - The broker down: a background call is denied `ERR_QUEUE_UNAVAILABLE`, its envelope voided;
 *   the broker back: calls are queued and run again (a broker of the test's own, so it can stop).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient, QueuedCall } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { createDevCa, issueCert, pkiPaths } from '../../src/transport/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { napPolicyDir, until } from './processes.js';
import { exportAndVerify, freePort, spawnExecutor, stopProcess as stop } from './topology.js';
import { queued, settled } from './jobs-support.js';
import type { ExecutorProcess } from './topology.js';

const NATS_URL = 'nats://127.0.0.1:4222';
const NATS_SERVER = '/usr/sbin/nats-server';

type Proc = ExecutorProcess;

/** The ledger entries of a request, through the operator's evidence view. */
async function entriesOf(
  instance: EmbeddedInstance,
  dir: string,
  requestId: string,
): Promise<{ type: string; payload: JsonObject; actor: { role: string } }[]> {
  const res = await fetch(`${instance.url}/v1/requests/${encodeURIComponent(requestId)}`, {
    headers: { authorization: `Bearer ${readOperatorToken(dir)}` },
  });
  if (res.status === 404) return [];
  const body = (await res.json()) as {
    records: { entry: { type: string; payload: JsonObject; actor: { role: string } } }[];
  };
  return body.records.map((r) => r.entry);
}

describe('background calls over NATS JetStream with separate queue workers', () => {
  const pgdb = useTestDatabase('fc_jobs_nats');
  const stream = `FCTEST_${process.pid}_${Date.now()}`;
  let work: string;
  let dir: string;
  let pki: string;
  let schema: string;
  let instance: EmbeddedInstance;
  let client: FailclosedClient;
  let voider: Proc;
  const workers: Proc[] = [];
  let napSeconds = '4';

  const executorConfig = (name: string, internalPort: number, extra: JsonObject): string => {
    const at = join(work, name);
    mkdirSync(at, { recursive: true });
    const path = join(at, 'executor.json');
    writeFileSync(
      path,
      JSON.stringify({
        audience: 'failclosed-executor',
        listen: { host: '127.0.0.1', port: 0 },
        gate_url: `https://127.0.0.1:${internalPort}`,
        tls: {
          ca: pkiPaths(pki).caCert,
          cert: pkiPaths(pki).cert('executor'),
          key: pkiPaths(pki).key('executor'),
        },
        nonces: pgdb.url,
        nonces_schema: schema,
        keys_max_age_ms: 600_000,
        gate_timeout_ms: 10_000,
        clock_tolerance_sec: 1,
        ...extra,
      }),
    );
    return path;
  };
  let internalPort = 0;
  const worker = (name: string): Promise<Proc> =>
    spawnExecutor(
      executorConfig(name, internalPort, {
        jobs: { queue: 'nats', url: NATS_URL, stream, workers: 1, ack_wait_ms: 5000 },
      }),
    );
  /**
   * Restarts the Gate with envelopes of `ttlSec`: short only for the test that lets one expire in
   * the queue, so that no other test races an envelope's lifetime on a loaded machine.
   */
  const restartGate = async (ttlSec: number): Promise<void> => {
    await instance.stop({ graceMs: 1000 });
    const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as JsonObject;
    writeFileSync(dataPaths(dir).config, JSON.stringify({ ...config, envelope_ttl_sec: ttlSec }));
    instance = await startEmbedded(dir, { port: 0 });
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    await until(() => instance.core.jobs.ready(), 'the Gate connected to the broker');
  };
  const consumptions = async (): Promise<number> => {
    const c = new pg.Client({ connectionString: pgdb.url });
    await c.connect();
    try {
      const r = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${schema}".envelope_nonces WHERE voided = false`,
      );
      return Number(r.rows[0]?.n ?? 0);
    } catch {
      return 0;
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-jobs-nats-'));
    dir = join(work, 'gate');
    schema = nextSchema();
    await initDataDir(dir, { policyDir: napPolicyDir(work) });
    pki = join(work, 'certs');
    await createDevCa(pki);
    await Promise.all([
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'control-plane' }),
      issueCert(pki, { role: 'executor' }),
    ]);
    internalPort = await freePort();
    const execPort = await freePort();
    const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as JsonObject;
    writeFileSync(
      dataPaths(dir).config,
      JSON.stringify({
        ...config,
        executor_url: `https://127.0.0.1:${execPort}`,
        internal_port: internalPort,
        tls: {
          ca: pkiPaths(pki).caCert,
          gate: { cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
          control_plane: {
            cert: pkiPaths(pki).cert('control-plane'),
            key: pkiPaths(pki).key('control-plane'),
          },
        },
        jobs: { queue: 'nats', url: NATS_URL, stream, workers: 0, ack_wait_ms: 5000 },
      }),
    );
    instance = await startEmbedded(dir, { port: 0 });
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    // The Execution Layer at `executor_url`: it voids envelopes for the Gate; it takes no jobs.
    const path = executorConfig('voider', internalPort, {});
    const c = JSON.parse(readFileSync(path, 'utf8')) as JsonObject;
    writeFileSync(path, JSON.stringify({ ...c, listen: { host: '127.0.0.1', port: execPort } }));
    voider = await spawnExecutor(path);
    workers.push(await worker('worker-1'), await worker('worker-2'));
    await until(() => instance.core.jobs.ready(), 'the Gate connected to the broker');
  }, 90_000);

  afterAll(async () => {
    for (const p of [voider, ...workers]) await stop(p);
    await instance?.close();
    const nc = await connect({ servers: NATS_URL }).catch(() => undefined);
    if (nc !== undefined) {
      const jsm = await jetstreamManager(nc);
      // The queue's stream, and the one binding its workers to their nonce store.
      for (const s of [stream, `${stream}_NONCE_STORE`]) await jsm.streams.delete(s).catch(() => false);
      await nc.close();
    }
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('two workers run queued jobs; each result comes back through the Gate', async () => {
    const submitted: QueuedCall[] = [];
    for (let i = 0; i < 6; i += 1)
      submitted.push(queued(await client.submit('echo', { message: `job ${i}` }, { session: 'nats-jobs' })));
    for (const [i, q] of submitted.entries()) {
      const s = await settled(client, q);
      expect(s).toMatchObject({ outcome: 'executed', status: 'executed' });
      if (s.outcome === 'executed') expect(s.result).toMatchObject({ message: `job ${i}` });
      const types = (await entriesOf(instance, dir, q.request_id)).map((e) => e.type);
      expect(types.filter((t) => t === 'execution.receipt')).toHaveLength(1);
      expect(types).toContain('gateway.queued');
    }
  }, 60_000);

  it('never runs a message published straight to the subject: no envelope, a forged one, a replayed one', async () => {
    // A consumed envelope, as a replay's material.
    const done = queued(await client.submit('echo', { message: 'once' }, { session: 'nats-jobs' }));
    expect(await settled(client, done)).toMatchObject({ outcome: 'executed' });
    const receipt = (await entriesOf(instance, dir, done.request_id)).find(
      (e) => e.type === 'execution.receipt',
    );
    const consumed = receipt?.payload['envelope'];
    expect(typeof consumed).toBe('string');
    const before = await consumptions();
    const nc = await connect({ servers: NATS_URL });
    const js = jetstream(nc);
    const subject = `failclosed.${stream.toLowerCase()}.jobs`;
    const job = (envelope: unknown, requestId: string, traceId = 'f'.repeat(32)) => ({
      call: {
        envelope,
        tool: 'echo',
        tenant: 'acme',
        params: { message: 'once' },
        trace_id: traceId,
        request_id: requestId,
      },
      decision_id: done.decision_id,
      client: 'demo-agent',
      queued_at: Date.now(),
    });
    await js.publish(subject, JSON.stringify(job(null, 'pub-no-envelope')));
    await js.publish(subject, JSON.stringify(job('eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln', 'pub-forged')));
    // A faithful copy of the executed job's message, published again.
    await js.publish(subject, JSON.stringify(job(consumed, done.request_id, done.trace_id ?? '')));
    await js.publish(subject, 'not json at all');
    await nc.close();
    // Each message that names a request is denied and recorded by the executor.
    for (const [id, code] of [
      ['pub-no-envelope', 'ERR_ENVELOPE_MISSING'],
      ['pub-forged', 'ERR_ENVELOPE_*'],
      [done.request_id, 'ERR_NONCE_REPLAYED'],
    ] as const) {
      await until(
        async () => (await entriesOf(instance, dir, id)).some((e) => e.type === 'denial'),
        `denial of ${id}`,
      );
      const entries = await entriesOf(instance, dir, id);
      // The replayed job keeps the one receipt of its first (and only) run.
      expect(entries.filter((e) => e.type === 'execution.receipt')).toHaveLength(
        id === done.request_id ? 1 : 0,
      );
      const denial = entries.find((e) => e.type === 'denial');
      expect(denial?.actor.role).toBe('executor');
      // A forged JWS fails at its header or signature, whichever the executor checks first.
      if (id === 'pub-forged')
        expect(denial?.payload['code']).toEqual(expect.stringMatching(/^ERR_ENVELOPE_/));
      else expect(denial?.payload['code']).toBe(code);
    }
    expect(await consumptions()).toBe(before);
  }, 60_000);

  it('a worker killed -9 mid-job: the redelivery meets the consumed nonce, the job is recorded abandoned, never run twice', async () => {
    const before = await consumptions();
    const q = queued(await client.submit('nap', { seconds: napSeconds }, { session: 'nats-jobs' }));
    // The envelope is consumed: the tool runs in one of the two workers; both die at once.
    await until(async () => (await consumptions()) > before, 'the nap job started');
    await Promise.all(workers.splice(0).map((p) => stop(p, 'SIGKILL')));
    workers.push(await worker('worker-3'));
    const s = await settled(client, q, 45_000);
    expect(s).toMatchObject({ status: 'abandoned', code: 'ERR_NONCE_REPLAYED', envelope_consumed: true });
    const entries = await entriesOf(instance, dir, q.request_id);
    expect(entries.map((e) => e.type)).not.toContain('execution.receipt');
    expect(entries.find((e) => e.type === 'denial')?.payload['code']).toBe('ERR_NONCE_REPLAYED');
    // One consumption: it ran at most once.
    expect(await consumptions()).toBe(before + 1);
    napSeconds = '1';
  }, 90_000);

  it('denies a job whose envelope expired while it waited in the queue, and records it', async () => {
    await Promise.all(workers.splice(0).map((p) => stop(p)));
    // Short-lived envelopes, so one can expire in the queue within the test.
    await restartGate(4);
    const before = await consumptions();
    const q = queued(await client.submit('echo', { message: 'too late' }, { session: 'nats-jobs' }));
    // Longer than the envelope's 4 s TTL and the workers' 1 s tolerance, with no worker running.
    await new Promise((r) => setTimeout(r, 6_000));
    workers.push(await worker('worker-4'));
    const s = await settled(client, q);
    expect(s).toMatchObject({ outcome: 'deny', status: 'failed', code: 'ERR_ENVELOPE_EXPIRED' });
    expect(await consumptions()).toBe(before);
  }, 60_000);

  it('a Gate restart leaves a job the broker holds to its worker: run later, its result recorded', async () => {
    await Promise.all(workers.splice(0).map((p) => stop(p)));
    // Envelopes of the default lifetime again, issued before the restart.
    await restartGate(60);
    const q = queued(await client.submit('echo', { message: 'across a restart' }, { session: 'nats-jobs' }));
    await restartGate(60);
    // Neither the stop nor the start recorded it abandoned.
    expect((await entriesOf(instance, dir, q.request_id)).map((e) => e.type)).not.toContain(
      'request.abandoned',
    );
    workers.push(await worker('worker-5'));
    const s = await settled(client, q);
    expect(s).toMatchObject({ outcome: 'executed' });
    if (s.outcome === 'executed') expect(s.result).toMatchObject({ message: 'across a restart' });
  }, 60_000);

  it('exports a ledger that verifies offline', async () => {
    const v = await exportAndVerify(instance.url, readOperatorToken(dir), work);
    expect(v.status).toBe(200);
    expect(v.report).not.toMatch(/FAIL/);
    expect(v.code).toBe(0);
  }, 30_000);
});

describe('background calls when the broker is down', () => {
  let work: string;
  let dir: string;
  let broker: ChildProcess | undefined;
  let port: number;
  let instance: EmbeddedInstance;
  let client: FailclosedClient;
  const runs: string[] = [];

  const startBroker = async (): Promise<void> => {
    broker = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(work, 'nats')], {
      stdio: 'ignore',
    });
    await until(async () => {
      const nc = await connect({ servers: `nats://127.0.0.1:${port}`, timeout: 500 }).catch(() => undefined);
      await nc?.close();
      return nc !== undefined;
    }, 'the test broker');
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-jobs-down-'));
    dir = join(work, 'gate');
    port = await freePort();
    await startBroker();
    await initDataDir(dir);
    const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as JsonObject;
    // Workers in the Gate's own process, over its own Execution Layer (the embedded shape).
    writeFileSync(
      dataPaths(dir).config,
      JSON.stringify({
        ...config,
        jobs: {
          queue: 'nats',
          url: `nats://127.0.0.1:${port}`,
          stream: 'FCDOWN',
          workers: 1,
          ack_wait_ms: 5000,
        },
      }),
    );
    instance = await startEmbedded(dir, {
      port: 0,
      executionPort: 0,
      onToolRun: ({ tool }) => void runs.push(tool),
    });
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    await until(() => instance.core.jobs.ready(), 'the Gate connected to the broker');
  }, 60_000);

  afterAll(async () => {
    await instance?.close();
    broker?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it('denies with ERR_QUEUE_UNAVAILABLE while the broker is down (envelope voided, nothing runs), and queues again once it is back', async () => {
    const ok = queued(await client.submit('echo', { message: 'up' }, { session: 'down' }));
    expect(await settled(client, ok)).toMatchObject({ outcome: 'executed' });
    const gone = new Promise((r) => broker?.once('exit', r));
    broker?.kill('SIGKILL');
    await gone;
    const before = runs.length;
    const r = await client.submit('echo', { message: 'down' }, { session: 'down' });
    expect(r).toMatchObject({
      outcome: 'deny',
      code: 'ERR_QUEUE_UNAVAILABLE',
      status: 503,
      envelope_voided: true,
    });
    expect(runs.length).toBe(before);
    await startBroker();
    await until(
      async () => {
        const again = await client.submit('echo', { message: 'back' }, { session: 'down' });
        if (again.outcome !== 'queued') return false;
        expect(await settled(client, again)).toMatchObject({ outcome: 'executed' });
        return true;
      },
      'a call queued again once the broker is back',
      30_000,
    );
  }, 60_000);
});
