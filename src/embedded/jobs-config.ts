/**
 * The `jobs` setting of `failclosed.json` (docs/jobs.md): which queue carries background calls.
 *
 * - absent, or `{"queue": "local"}`: in the Gate's process, no broker (`local-queue.ts`);
 *   `concurrency` jobs at once (default 2).
 * - `{"queue": "nats", "url": "nats://…", "stream": "FAILCLOSED", "workers": 2, "ack_wait_ms": 30000}`:
 *   NATS JetStream (`nats-queue.ts`). `workers` queue workers run in this process over its own
 *   Execution Layer (0: none; workers of `failclosed serve executor` take the jobs).
 *
 * Parsing only (reading `failclosed.json` loads no queue); `jobs.ts` opens the queue.
 */
import type { NatsQueueOptions } from './nats-queue.js';

/** The parsed `jobs` setting. */
export type JobsConfig =
  | { readonly queue: 'local'; readonly concurrency?: number }
  | {
      readonly queue: 'nats';
      readonly url: string;
      readonly stream?: string;
      readonly workers?: number;
      readonly ack_wait_ms?: number;
    };

const NATS_URL = /^nats:\/\/[A-Za-z0-9.[\]:_-]+(?::\d{1,5})?(?:,nats:\/\/[A-Za-z0-9.[\]:_-]+(?::\d{1,5})?)*$/;

function positive(v: unknown, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > 1_000_000)
    throw new TypeError(`jobs.${name} must be an integer of at least ${min}`);
  return v as number;
}

/** Parses `jobs`; throws a `TypeError` naming the field that is wrong. Unknown fields are refused. */
export function parseJobsConfig(v: unknown): JobsConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TypeError('jobs must be an object');
  const o = v as Record<string, unknown>;
  if (o.queue === 'local') {
    for (const k of Object.keys(o))
      if (k !== 'queue' && k !== 'concurrency')
        throw new TypeError(`jobs.${k} is not a setting of the local queue`);
    const concurrency = positive(o.concurrency, 'concurrency');
    return Object.freeze({ queue: 'local', ...(concurrency === undefined ? {} : { concurrency }) });
  }
  if (o.queue === 'nats') {
    for (const k of Object.keys(o))
      if (!['queue', 'url', 'stream', 'workers', 'ack_wait_ms'].includes(k))
        throw new TypeError(`jobs.${k} is not a setting of the NATS queue`);
    if (typeof o.url !== 'string' || !NATS_URL.test(o.url))
      throw new TypeError('jobs.url must be nats://host:port (comma-separated for several)');
    if (o.stream !== undefined && (typeof o.stream !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.stream)))
      throw new TypeError('jobs.stream must be 1-64 letters, digits, _ or -');
    const workers = positive(o.workers, 'workers', 0);
    const ackWait = positive(o.ack_wait_ms, 'ack_wait_ms', 1000);
    return Object.freeze({
      queue: 'nats',
      url: o.url,
      ...(o.stream === undefined ? {} : { stream: o.stream }),
      ...(workers === undefined ? {} : { workers }),
      ...(ackWait === undefined ? {} : { ack_wait_ms: ackWait }),
    });
  }
  throw new TypeError('jobs.queue must be "local" or "nats"');
}

/** The NATS options of a `nats` setting. */
export function natsOptionsOf(c: Extract<JobsConfig, { queue: 'nats' }>): NatsQueueOptions {
  return {
    url: c.url,
    ...(c.stream === undefined ? {} : { stream: c.stream }),
    ...(c.ack_wait_ms === undefined ? {} : { ackWaitMs: c.ack_wait_ms }),
  };
}
