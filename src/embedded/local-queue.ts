/**
 * The embedded deployment's job queue (docs/jobs.md): in the Gate's process, no broker. A job is
 * run through the same Execution Layer port the synchronous path uses (in-process or the
 * separate Execution Layer over mutual TLS), so the executor verifies the envelope and consumes
 * its nonce before anything runs (FC-INV-6). The queue itself is memory: a crash or a stop loses
 * the jobs not yet finished, and recovery records each as `request.abandoned` after voiding its
 * envelope (never ran, or may have run when it had been consumed), as for any call in flight.
 */
import { deny, withCancellableDeadline } from '../kernel/index.js';
import { MAX_BACKGROUND_TIMEOUT_MS } from '../policy/index.js';
import type { GateJobQueue, JobDelivery, QueuedJob } from '../gate/index.js';
import type { GateExecutor } from '../gate/index.js';

/** Options of {@link createLocalJobQueue}. */
export interface LocalQueueOptions {
  /** Jobs run at once (default 2). */
  readonly concurrency?: number;
  /**
   * Longest wait for one job's execution answer (ms, default the longest background run plus a
   * minute): the tool's own limit comes from its policy and its envelope, and is enforced by the
   * executor; this bounds the port.
   */
  readonly jobMs?: number;
  /** Jobs waiting at most (default 1,000); beyond it `enqueue` rejects and the call is denied. */
  readonly maxPending?: number;
  /**
   * Waits between tries to record an answer the ledger did not take (ms); the last one repeats
   * until the answer is recorded or the queue closes.
   */
  readonly retryMs?: readonly number[];
}

/** The in-process queue over `executor`. */
export function createLocalJobQueue(executor: GateExecutor, options: LocalQueueOptions = {}): GateJobQueue {
  const concurrency = options.concurrency ?? 2;
  const jobMs = options.jobMs ?? MAX_BACKGROUND_TIMEOUT_MS + 60_000;
  const maxPending = options.maxPending ?? 1000;
  const retryMs = options.retryMs ?? [100, 1000, 5000];
  if (!Number.isSafeInteger(concurrency) || concurrency < 1)
    throw new TypeError('concurrency must be a positive integer');
  const pending: QueuedJob[] = [];
  const running = new Set<Promise<void>>();
  let finish: ((d: JobDelivery) => Promise<void>) | undefined;
  let closed = false;

  const deliver = async (d: JobDelivery): Promise<void> => {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await finish?.(d);
        return;
      } catch {
        // Closed: the request stays open, and recovery records it abandoned.
        if (closed) return;
        const wait = retryMs[Math.min(attempt, retryMs.length - 1)] ?? 1000;
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  };

  const runOne = async (job: QueuedJob): Promise<void> => {
    const r = await withCancellableDeadline(
      (signal) => executor.execute({ ...job.call, background: true }, undefined, signal),
      jobMs,
    );
    const answer =
      r.status === 'ok'
        ? r.value
        : deny('ERR_EXECUTION_UNAVAILABLE', 'the Execution Layer did not answer in time');
    await deliver({ job, answer });
  };

  const pump = (): void => {
    while (!closed && finish !== undefined && running.size < concurrency) {
      const job = pending.shift();
      if (job === undefined) return;
      const p: Promise<void> = runOne(job)
        .catch(() => undefined)
        .finally(() => {
          running.delete(p);
          pump();
        });
      running.add(p);
    }
  };

  return Object.freeze({
    name: 'local',
    enqueue(job: QueuedJob) {
      if (closed) return Promise.reject(new Error('the queue is closed'));
      if (pending.length >= maxPending) return Promise.reject(new Error('the queue is full'));
      pending.push(job);
      queueMicrotask(pump);
      return Promise.resolve();
    },
    start(f: (d: JobDelivery) => Promise<void>) {
      finish = f;
      pump();
      return Promise.resolve();
    },
    ready: () => Promise.resolve(!closed),
    async close(o?: { readonly waitMs?: number }) {
      closed = true;
      // Jobs not started stay open: recovery voids their envelopes and records them abandoned.
      pending.length = 0;
      const waitMs = o?.waitMs ?? 0;
      if (running.size === 0 || waitMs <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...running]),
        new Promise((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]).finally(() => clearTimeout(timer));
    },
  });
}
