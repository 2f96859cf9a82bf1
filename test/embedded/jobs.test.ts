/**
 * The pieces of background calls that need no deployment (docs/jobs.md): the `jobs` setting is
 * parsed strictly, a job read from a queue is untrusted input, and the in-process queue refuses
 * what it cannot hold (so the Gate voids and denies `ERR_QUEUE_UNAVAILABLE`), runs jobs through
 * the Execution Layer port it is given, and delivers every answer, a failing port's as a deny.
 */
import { describe, expect, it } from 'vitest';
import { createLocalJobQueue } from '../../src/embedded/local-queue.js';
import { parseJobsConfig } from '../../src/embedded/jobs-config.js';
import { parseQueuedJob } from '../../src/gate/index.js';
import type { GateExecutor, JobDelivery, QueuedJob } from '../../src/gate/index.js';

const JOB: QueuedJob = {
  call: {
    envelope: 'aGVhZA.Y2xhaW1z.c2ln',
    tool: 'echo',
    tenant: 'acme',
    params: { message: 'hi' },
    trace_id: '0123456789abcdef0123456789abcdef',
    request_id: 'req_1',
  },
  decision_id: 'dec_1',
  client: 'demo-agent',
  queued_at: 1,
};

describe('jobs setting', () => {
  it('takes the local queue and the NATS queue, and refuses anything else by name', () => {
    expect(parseJobsConfig({ queue: 'local' })).toEqual({ queue: 'local' });
    expect(parseJobsConfig({ queue: 'local', concurrency: 4 })).toEqual({ queue: 'local', concurrency: 4 });
    expect(
      parseJobsConfig({
        queue: 'nats',
        url: 'nats://127.0.0.1:4222',
        stream: 'JOBS',
        workers: 0,
        ack_wait_ms: 5000,
      }),
    ).toEqual({ queue: 'nats', url: 'nats://127.0.0.1:4222', stream: 'JOBS', workers: 0, ack_wait_ms: 5000 });
    expect(() => parseJobsConfig({ queue: 'redis' })).toThrow(/jobs.queue must be/);
    expect(() => parseJobsConfig({ queue: 'local', url: 'x' })).toThrow(/jobs.url is not a setting/);
    expect(() => parseJobsConfig({ queue: 'local', concurrency: 0 })).toThrow(/jobs.concurrency/);
    // Credentials never sit in the configuration's URL.
    expect(() => parseJobsConfig({ queue: 'nats', url: 'nats://user:pw@127.0.0.1:4222' })).toThrow(
      /jobs.url/,
    );
    expect(() => parseJobsConfig({ queue: 'nats', url: 'http://127.0.0.1:4222' })).toThrow(/jobs.url/);
    expect(() => parseJobsConfig({ queue: 'nats', url: 'nats://h:1', stream: 'a.b' })).toThrow(/jobs.stream/);
    expect(() => parseJobsConfig({ queue: 'nats', url: 'nats://h:1', ack_wait_ms: 10 })).toThrow(
      /ack_wait_ms/,
    );
  });
});

describe('a job read from a queue', () => {
  it('parses a well-formed job', () => {
    expect(parseQueuedJob(JSON.parse(JSON.stringify(JOB)))).toEqual(JOB);
  });

  it.each([
    ['not an object', 'job'],
    ['no call', { ...JOB, call: undefined }],
    ['an envelope that is not a compact JWS', { ...JOB, call: { ...JOB.call, envelope: 'a.b' } }],
    ['params that are not an object', { ...JOB, call: { ...JOB.call, params: [1] } }],
    ['a malformed trace id', { ...JOB, call: { ...JOB.call, trace_id: 'xyz' } }],
    ['a malformed request id', { ...JOB, call: { ...JOB.call, request_id: 'a b' } }],
    ['no decision', { ...JOB, decision_id: '' }],
    ['a negative time', { ...JOB, queued_at: -1 }],
  ])('refuses %s', (_what, v) => {
    expect(parseQueuedJob(v)).toBeUndefined();
  });
});

/** An Execution Layer port that records calls and answers as told. */
function port(answer: (job: QueuedJob['call']) => Promise<unknown>): GateExecutor & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    execute: (call) => {
      calls.push(call.request_id);
      return answer(call) as ReturnType<GateExecutor['execute']>;
    },
    void: () => Promise.resolve({ outcome: 'voided', recorded: true }),
  };
}

describe('the in-process queue', () => {
  it('runs each job through the port and delivers its answer', async () => {
    const p = port((c) =>
      Promise.resolve({ outcome: 'executed', result: c.params, receipt: { index: 1, entry_hash: 'h' } }),
    );
    const q = createLocalJobQueue(p);
    const delivered: JobDelivery[] = [];
    await q.start((d) => {
      delivered.push(d);
      return Promise.resolve();
    });
    await q.enqueue(JOB);
    await q.enqueue({ ...JOB, call: { ...JOB.call, request_id: 'req_2' } });
    await expect.poll(() => delivered.length).toBe(2);
    expect(p.calls.sort()).toEqual(['req_1', 'req_2']);
    expect(delivered[0]?.answer).toMatchObject({ outcome: 'executed' });
    await q.close();
  });

  it('delivers a port that fails or does not answer in time as a deny', async () => {
    const q = createLocalJobQueue(
      port(() => new Promise(() => undefined)),
      { jobMs: 20 },
    );
    const delivered: JobDelivery[] = [];
    await q.start((d) => {
      delivered.push(d);
      return Promise.resolve();
    });
    await q.enqueue(JOB);
    await expect.poll(() => delivered.length).toBe(1);
    expect(delivered[0]?.answer).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    await q.close();
  });

  it('tries again while the answer cannot be recorded, until it is or the queue closes', async () => {
    const q = createLocalJobQueue(
      port(() => Promise.resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'x' })),
      { retryMs: [1, 1] },
    );
    let tries = 0;
    await q.start(() => {
      tries += 1;
      return tries < 5 ? Promise.reject(new Error('ledger unavailable')) : Promise.resolve();
    });
    await q.enqueue(JOB);
    await expect.poll(() => tries).toBe(5);
    await q.close();
  });

  it('refuses a job when full or closed, so the Gate voids and denies', async () => {
    const q = createLocalJobQueue(
      port(() => new Promise(() => undefined)),
      { maxPending: 1, concurrency: 1 },
    );
    // Not started: nothing is taken, the first job waits.
    await q.enqueue(JOB);
    await expect(q.enqueue(JOB)).rejects.toThrow(/full/);
    await q.close();
    await expect(q.enqueue(JOB)).rejects.toThrow(/closed/);
    expect(await q.ready()).toBe(false);
  });
});
