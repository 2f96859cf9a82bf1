/**
 * Opens the job queue a `jobs` setting names (`jobs-config.ts`, docs/jobs.md) over the Gate's
 * Execution Layer port.
 */
import type { GateJobQueue } from '../gate/index.js';
import type { GateExecutor } from '../gate/index.js';
import type { JobsConfig } from './jobs-config.js';
import { natsOptionsOf } from './jobs-config.js';
import { createLocalJobQueue } from './local-queue.js';
import { createNatsJobQueue, startNatsWorkers } from './nats-queue.js';
import type { NatsWorkers, WorkerBinding, WorkerExecute } from './nats-queue.js';

/** The Gate's queue, and the in-process workers a `nats` setting asks for. */
export interface OpenedJobs {
  readonly queue: GateJobQueue;
  /**
   * Starts the in-process NATS workers, if any (after the executor is ready), bound to the nonce
   * store `binding` names (`nats-queue.ts` `bindNonceStore`).
   */
  startWorkers(execute: WorkerExecute, binding: WorkerBinding): NatsWorkers | undefined;
}

/** Opens the queue `config` names over the Gate's Execution Layer port. */
export function openJobs(config: JobsConfig | undefined, executor: GateExecutor): OpenedJobs {
  const c = config ?? { queue: 'local' };
  if (c.queue === 'local')
    return {
      queue: createLocalJobQueue(executor, c.concurrency === undefined ? {} : { concurrency: c.concurrency }),
      startWorkers: () => undefined,
    };
  const options = natsOptionsOf(c);
  return {
    queue: createNatsJobQueue(options),
    startWorkers: (execute, binding) =>
      (c.workers ?? 0) === 0
        ? undefined
        : startNatsWorkers({ ...options, ...binding, concurrency: c.workers ?? 0 }, execute),
  };
}
