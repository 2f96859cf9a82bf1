/**
 * Background calls (docs/jobs.md, FC-INV-6 "All background jobs MUST verify an approval envelope
 * before execution"; "All message-driven workers MUST verify an approval envelope before
 * execution"). The Gate hands a decided call, envelope included, to a queue and answers `202`;
 * a worker of the Execution Layer takes it, and the executor verifies the envelope and consumes
 * its nonce before anything runs, exactly as on the synchronous path. The worker's answer comes
 * back to the Gate, which records the outcome (`gateway.completed` / `gateway.failed`) as it does
 * for a synchronous call. A queue never decides anything: a message without a valid, unconsumed
 * envelope never runs, whoever put it there, and a redelivery meets the consumed nonce.
 */
import type { ExecutionCall } from './types.js';

/** A governed call waiting for a worker: its decision exists and its envelope is issued. */
export interface QueuedJob {
  /** What the executor is given, envelope included (SPEC §2 step 6). */
  readonly call: ExecutionCall;
  readonly decision_id: string;
  /** The authenticated client (the actor of the Gate's outcome record). */
  readonly client: string;
  /** When the Gate queued it (ms since the epoch, the Gate's clock). */
  readonly queued_at: number;
}

/**
 * A worker's answer for one job, as it reaches the Gate. `answer` is untrusted (it may have
 * crossed a broker): the Gate parses it and checks an `executed` answer's receipt in the ledger.
 */
export interface JobDelivery {
  readonly job: QueuedJob;
  readonly answer: unknown;
}

/**
 * The queue as the Gate sees it. `enqueue` resolves once the queue holds the job durably (the
 * Gate answers `202` only then); it rejects otherwise, and the Gate voids the envelope and denies
 * with `ERR_QUEUE_UNAVAILABLE`. `start` delivers each answer to `finish` at least once; the queue
 * lets go of an answer only once `finish` resolved (a Gate that dies meanwhile gets it again).
 */
export interface GateJobQueue {
  /** Recorded in `gateway.queued` as `queue`: `local`, or `nats:<stream>`. */
  readonly name: string;
  enqueue(job: QueuedJob, signal?: AbortSignal): Promise<void>;
  start(finish: (delivery: JobDelivery) => Promise<void>): Promise<void>;
  /** True when the queue can take jobs now (`/readyz`). */
  ready(): Promise<boolean>;
  /**
   * Stops taking and delivering. Work running in this process gets up to `waitMs` (default 0)
   * to finish; what does not is recorded abandoned by recovery, like any call in flight.
   */
  close(options?: { readonly waitMs?: number }): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_NAME = 256;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function shortString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME;
}

/**
 * Parses a job as read from a queue: untrusted input (anyone who can publish to the subject can
 * put anything there). Undefined when it is not a job; a well-formed job still runs only if its
 * envelope verifies and its nonce is unconsumed.
 */
export function parseQueuedJob(v: unknown): QueuedJob | undefined {
  if (!isRecord(v) || !isRecord(v.call)) return undefined;
  const c = v.call;
  if (
    typeof c.envelope !== 'string' ||
    c.envelope.length > 64 * 1024 ||
    !COMPACT_JWS.test(c.envelope) ||
    !shortString(c.tool) ||
    !shortString(c.tenant) ||
    !isRecord(c.params) ||
    typeof c.trace_id !== 'string' ||
    !TRACE_ID.test(c.trace_id) ||
    typeof c.request_id !== 'string' ||
    !REQUEST_ID.test(c.request_id)
  )
    return undefined;
  if (!shortString(v.decision_id) || !shortString(v.client)) return undefined;
  if (!Number.isSafeInteger(v.queued_at) || (v.queued_at as number) < 0) return undefined;
  return {
    call: {
      envelope: c.envelope,
      tool: c.tool,
      tenant: c.tenant,
      params: c.params as ExecutionCall['params'],
      trace_id: c.trace_id,
      request_id: c.request_id,
    },
    decision_id: v.decision_id,
    client: v.client,
    queued_at: v.queued_at as number,
  };
}
