/**
 * Background calls over NATS JetStream (docs/jobs.md, FC-INV-6 "All message-driven workers MUST
 * verify an approval envelope before execution"). One stream holds two subjects:
 * `failclosed.<stream>.jobs`, which the Gate publishes decided calls to, and
 * `failclosed.<stream>.answers`, which workers publish the executor's answers to. Workers of the
 * Execution Layer share one durable consumer of the jobs (add workers to scale); the Gates share
 * one durable consumer of the answers.
 *
 * The broker decides nothing. Every message a worker takes, whoever published it, goes to the
 * executor, which verifies the envelope, its ledger records and the call binding and consumes the
 * nonce before anything runs, and records every denial; a redelivery (a worker that died, an ack
 * that was lost) meets the consumed nonce: `ERR_NONCE_REPLAYED`, never a second run. A job whose
 * envelope expired in the queue is denied `ERR_ENVELOPE_EXPIRED`. An answer is taken by the Gate
 * as untrusted input (`Gate.finishJob` checks an `executed` answer's receipt in the ledger).
 * Publishes carry a message id, so the broker drops a duplicate within its window.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { canonicalize, parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { ExecutionInput } from '../execution/index.js';
import { parseQueuedJob } from '../gate/index.js';
import type { GateJobQueue, JobDelivery, QueuedJob } from '../gate/index.js';
import { executionInputOf } from './execution-server.js';

/** Where the queue lives. */
export interface NatsQueueOptions {
  /** `nats://host:port` (one or several, comma-separated). */
  readonly url: string;
  /** JetStream stream name (letters, digits, `_`, `-`); default `FAILCLOSED`. */
  readonly stream?: string;
  /** How long the broker waits for a worker's ack before redelivering (ms, default 30 000). */
  readonly ackWaitMs?: number;
  /** Deadline of connecting and of each publish's acknowledgement (ms, default 5000). */
  readonly timeoutMs?: number;
}

/** The longest message the queue carries (a job's parameters, an answer's redacted result). */
export const MAX_QUEUE_MESSAGE_BYTES = 1024 * 1024;
/** Room kept below the stream's message limit for the headers the broker counts with it (`Nats-Msg-Id`). */
const HEADERS_MARGIN_BYTES = 4096;
/** Tries of a worker's answer publish before its job is handed back to the broker. */
const ANSWER_PUBLISH_ATTEMPTS = 3;

const STREAM = /^[A-Za-z0-9_-]{1,64}$/;
const NS = 1_000_000;

interface Subjects {
  readonly stream: string;
  readonly jobs: string;
  readonly answers: string;
  /** The stream holding the nonce store the workers of `stream` are bound to, and its subject. */
  readonly binding: string;
  readonly bindingSubject: string;
}

function subjectsOf(o: NatsQueueOptions): Subjects {
  const stream = o.stream ?? 'FAILCLOSED';
  if (!STREAM.test(stream)) throw new TypeError('stream must be 1-64 letters, digits, _ or -');
  const s = stream.toLowerCase();
  return {
    stream,
    jobs: `failclosed.${s}.jobs`,
    answers: `failclosed.${s}.answers`,
    binding: `${stream}_NONCE_STORE`,
    bindingSubject: `failclosed.${s}.nonce_store`,
  };
}

/** Workers whose nonce store is not the one the stream's workers are bound to (docs/jobs.md). */
export class NonceStoreMismatch extends Error {
  override readonly name = 'NonceStoreMismatch';
}

/**
 * Binds the stream's workers to the nonce store `identity` names, or checks they are bound to it
 * (docs/jobs.md "Shared nonce store"): the first worker's store is recorded once, in a stream of
 * its own that keeps one message, refuses a second one on its subject and any delete or purge of
 * it, by a publish that succeeds only while the subject is empty; every later worker, and every
 * worker again before each job it runs, reads it back. Rejects {@link NonceStoreMismatch} when
 * another store is recorded (a redelivered job would find its nonce fresh there and run again) or
 * the binding stream is not one this code made, and with the broker's error when it cannot answer.
 */
async function bindNonceStore(
  nc: NatsConnection,
  js: JetStreamClient,
  s: Subjects,
  identity: string,
): Promise<void> {
  const { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } = await natsClient();
  // Asked before every job: no account round trip first.
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const config = {
    name: s.binding,
    subjects: [s.bindingSubject],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_msgs_per_subject: 1,
    max_msg_size: 4096,
    discard: DiscardPolicy.New,
    discard_new_per_subject: true,
    deny_delete: true,
    deny_purge: true,
  };
  let info = await jsm.streams.info(s.binding).catch(() => undefined);
  if (info === undefined)
    info = await jsm.streams.add(config).catch(async (err: unknown) => {
      // Another worker created it meanwhile.
      const again = await jsm.streams.info(s.binding).catch(() => undefined);
      if (again === undefined) throw err;
      return again;
    });
  const c = info.config;
  if (
    c.subjects?.length !== 1 ||
    c.subjects[0] !== s.bindingSubject ||
    c.max_msgs_per_subject !== 1 ||
    c.discard !== DiscardPolicy.New ||
    c.discard_new_per_subject !== true ||
    c.deny_delete !== true ||
    c.deny_purge !== true
  )
    throw new NonceStoreMismatch(
      `the stream ${s.binding} is not the nonce store binding of stream ${s.stream} (another configuration): this worker takes no job`,
    );
  const bound = async (): Promise<string | undefined> => {
    const m = await jsm.streams.getMessage(s.binding, { last_by_subj: s.bindingSubject });
    return m === null ? undefined : new TextDecoder().decode(m.data);
  };
  let recorded = await bound();
  if (recorded === undefined) {
    try {
      await js.publish(s.bindingSubject, identity, {
        expect: { lastSubjectSequence: 0, streamName: s.binding },
      });
      return;
    } catch {
      // Another worker recorded its store first (or the broker failed): read what is there.
      recorded = await bound();
      if (recorded === undefined) throw new Error('the broker did not record the nonce store');
    }
  }
  if (recorded !== identity)
    throw new NonceStoreMismatch(
      `the workers of stream ${s.stream} use the nonce store ${recorded}, and this one ${identity}: ` +
        'workers of one stream must share one nonce store (docs/jobs.md "Shared nonce store"); this worker takes no job',
    );
}

/**
 * The NATS client, loaded by the first connection (about 0.1 s of CPU at every process start
 * otherwise, for a queue most deployments do not configure). A failed load fails the connection:
 * jobs are then refused as while the broker is unreachable.
 */
async function natsClient() {
  const [transport, js] = await Promise.all([
    import('@nats-io/transport-node'),
    import('@nats-io/jetstream'),
  ]);
  return { connect: transport.connect, ...js };
}

/** The acknowledgement wait of each durable consumer as the broker has it (ms). */
interface AckWaits {
  readonly workers: number;
  readonly gates: number;
}

/**
 * Creates the stream and both durable consumers unless they exist (idempotent), and answers their
 * acknowledgement waits as the broker has them: a consumer keeps the `ack_wait` of whichever
 * process created it, and a process configured otherwise must tell the broker it is still working
 * within that wait, not its own (or the broker hands the job to another worker meanwhile).
 */
async function ensureStream(nc: NatsConnection, s: Subjects, ackWaitMs: number): Promise<AckWaits> {
  const { AckPolicy, jetstreamManager, RetentionPolicy, StorageType } = await natsClient();
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(s.stream);
  } catch {
    await jsm.streams.add({
      name: s.stream,
      subjects: [s.jobs, s.answers],
      // A message is kept until a consumer acknowledges it; file storage survives a broker restart.
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      max_msg_size: MAX_QUEUE_MESSAGE_BYTES,
      // Duplicate publishes (same message id) within this window are dropped by the broker.
      duplicate_window: 10 * 60 * 1000 * NS,
    });
  }
  const waits = { workers: ackWaitMs, gates: ackWaitMs };
  for (const [name, subject] of [
    ['workers', s.jobs],
    ['gates', s.answers],
  ] as const) {
    let info;
    try {
      info = await jsm.consumers.info(s.stream, name);
    } catch {
      info = await jsm.consumers.add(s.stream, {
        durable_name: name,
        filter_subject: subject,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ackWaitMs * NS,
        max_deliver: -1,
      });
    }
    const wait = Number(info.config.ack_wait) / NS;
    // A consumer without a usable wait (or the broker's default) is told at the shortest interval.
    waits[name] = Number.isFinite(wait) && wait > 0 ? Math.min(wait, ackWaitMs) : 750;
  }
  return waits;
}

/** How often to tell the broker a message is still being worked on, within `ackWaitMs`. */
const beatEvery = (ackWaitMs: number): number => Math.max(250, Math.floor(ackWaitMs / 3));

async function open(
  o: NatsQueueOptions,
): Promise<{ nc: NatsConnection; js: JetStreamClient; s: Subjects; waits: AckWaits }> {
  const s = subjectsOf(o);
  const timeoutMs = o.timeoutMs ?? 5000;
  const { connect, jetstream } = await natsClient();
  const nc = await connect({
    servers: o.url.split(',').map((u) => u.trim()),
    timeout: timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    name: 'failclosed',
  });
  let waits: AckWaits;
  try {
    waits = await ensureStream(nc, s, o.ackWaitMs ?? 30_000);
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err;
  }
  return { nc, js: jetstream(nc, { timeout: timeoutMs }), s, waits };
}

type Opened = Awaited<ReturnType<typeof open>>;

function decode(m: JsMsg): JsonValue | undefined {
  try {
    return parseJson(m.data, { maxBytes: MAX_QUEUE_MESSAGE_BYTES, maxDepth: 64 });
  } catch {
    return undefined;
  }
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Takes messages from `consumer` with `concurrency` loops until `isClosed()`; each message goes
 * to `handle`, which acknowledges it.
 */
function consumeLoops(
  js: JetStreamClient,
  stream: string,
  consumer: string,
  concurrency: number,
  isClosed: () => boolean,
  handle: (m: JsMsg) => Promise<void>,
): Promise<void>[] {
  const loop = async (): Promise<void> => {
    // Looked up once, and again only after a failure (one API request, not one per message).
    let c: Consumer | undefined;
    while (!isClosed()) {
      let m: JsMsg | null = null;
      try {
        c ??= await js.consumers.get(stream, consumer);
        m = await c.next({ expires: 1000 });
      } catch {
        // The broker is unreachable: try again shortly (messages wait in the stream).
        c = undefined;
        await new Promise((r) => setTimeout(r, 250).unref());
        continue;
      }
      if (m === null) continue;
      // Taken as the loop was told to stop: handed back at once, for another process to take.
      if (isClosed()) {
        m.nak();
        break;
      }
      await handle(m).catch(() => {
        m?.nak(1000);
      });
    }
  };
  return Array.from({ length: concurrency }, () => loop());
}

/**
 * The Gate's side: publishes jobs, and delivers the workers' answers to `finish`. It connects in
 * the background: while the broker is unreachable, `enqueue` rejects and the call is denied.
 */
export function createNatsJobQueue(o: NatsQueueOptions): GateJobQueue {
  const s = subjectsOf(o);
  let conn: Awaited<ReturnType<typeof open>> | undefined;
  let closed = false;
  let loops: Promise<void>[] = [];
  let finish: ((d: JobDelivery) => Promise<void>) | undefined;
  const opening = (async () => {
    while (!closed) {
      try {
        conn = await open(o);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  })();
  const startLoops = (): void => {
    if (conn === undefined || finish === undefined || loops.length > 0) return;
    const f = finish;
    const every = beatEvery(conn.waits.gates);
    loops = consumeLoops(
      conn.js,
      s.stream,
      'gates',
      2,
      () => closed,
      async (m) => {
        const v = decode(m);
        const job = isObject(v) ? parseQueuedJob(v['job']) : undefined;
        // Not an answer of this protocol: dropped (the executor recorded whatever it denied).
        if (!isObject(v) || job === undefined || !('answer' in v)) return m.term();
        // Recording may take a few ledger rounds: the broker must not hand it to another Gate meanwhile.
        const beat = setInterval(() => m.working(), every);
        try {
          await f({ job, answer: v['answer'] });
        } finally {
          clearInterval(beat);
        }
        m.ack();
      },
    );
  };
  void opening.then(startLoops);
  return Object.freeze({
    name: `nats:${s.stream}`,
    async enqueue(job: QueuedJob) {
      const c = conn;
      if (c === undefined || c.nc.isClosed() || closed) throw new Error('the broker is not connected');
      const bytes = canonicalize(job as unknown as JsonValue);
      // The broker confirms only once the job is stored; a retried publish is dropped by its id.
      await c.js.publish(s.jobs, bytes, { msgID: `job:${job.call.request_id}:${job.call.trace_id}` });
    },
    start(f: (d: JobDelivery) => Promise<void>) {
      finish = f;
      startLoops();
      return Promise.resolve();
    },
    ready: () => Promise.resolve(conn !== undefined && !conn.nc.isClosed() && !closed),
    async close() {
      // Answers not taken wait in the stream for another Gate, or this one's next start.
      closed = true;
      await opening;
      await Promise.allSettled(loops);
      await conn?.nc.close().catch(() => undefined);
    },
  });
}

/** A running pool of queue workers. */
export interface NatsWorkers {
  /** True once connected to the broker and taking jobs. */
  readonly connected: () => boolean;
  /** Set when the stream's workers use another nonce store: these take no job. */
  readonly refused: () => Error | undefined;
  /** True while the stream is bound to this nonce store as last checked (at start, before each job). */
  readonly bound: () => boolean;
  /**
   * True when these workers take no job for their binding: refused, or connected and unable to
   * read it at the last check (a broker that is down is not counted here).
   */
  readonly stalled: () => boolean;
  close(): Promise<void>;
}

/** The nonce store a process's workers consume envelopes in. */
export interface WorkerBinding {
  /**
   * Its identity (`StorageBackend.nonceStoreIdentity`, `sqliteNonceStoreIdentity`,
   * `postgresNonceStoreIdentity`): the workers bind the stream to it and check it again before
   * each job, and take no job when the stream's workers use another ({@link NonceStoreMismatch},
   * handed to `onRefused`).
   */
  readonly nonceStore: string;
  readonly onRefused?: (err: Error) => void;
  /** The binding could not be read or recorded (taking no job meanwhile): first, then once a minute. */
  readonly onBindError?: (err: Error) => void;
}

/** What a worker runs each message through: the Execution Layer's entry point. */
export type WorkerExecute = (input: ExecutionInput) => Promise<unknown>;

/**
 * The Execution Layer's side: `concurrency` workers take jobs and run each through `execute`
 * (the executor: envelope verification and nonce consumption first), publish its answer, then
 * acknowledge. While a tool runs the worker tells the broker it is still working, so a long job
 * is not redelivered; a worker that dies leaves the job to be redelivered, and the consumed nonce
 * denies it. It connects in the background and keeps trying while the broker is unreachable.
 */
export function startNatsWorkers(
  o: NatsQueueOptions & WorkerBinding & { readonly concurrency?: number },
  execute: WorkerExecute,
): NatsWorkers {
  let closed = false;
  let conn: Awaited<ReturnType<typeof open>> | undefined;
  let loops: Promise<void>[] = [];
  let refused: Error | undefined;
  let isBound = false;
  let lastBindError = 0;
  let bindFailing = false;
  const refuse = (err: NonceStoreMismatch): void => {
    isBound = false;
    if (refused !== undefined) return;
    refused = err;
    o.onRefused?.(err);
  };
  const bindError = (err: unknown): void => {
    isBound = false;
    bindFailing = true;
    const now = Date.now();
    if (now - lastBindError < 60_000) return;
    lastBindError = now;
    o.onBindError?.(err instanceof Error ? err : new Error('the broker failed'));
  };
  /** Whether the stream is still bound to this store: recorded again when its record is gone. */
  const checkBound = async (c: Opened): Promise<'bound' | 'unsure' | NonceStoreMismatch> => {
    try {
      await bindNonceStore(c.nc, c.js, c.s, o.nonceStore);
      isBound = true;
      bindFailing = false;
      return 'bound';
    } catch (err) {
      if (err instanceof NonceStoreMismatch) return err;
      bindError(err);
      return 'unsure';
    }
  };
  const handle = async (c: Opened, answers: string, every: number, m: JsMsg): Promise<void> => {
    const js = c.js;
    const v = decode(m);
    // Only a message that is not even an object is dropped unread.
    if (!isObject(v)) return m.term();
    const call = isObject(v['call']) ? v['call'] : {};
    const job = parseQueuedJob(v);
    if (job === undefined) {
      // Not a job: the executor records its denial, without the envelope, so it can never run.
      await execute({ ...executionInputOf(call), envelope: undefined });
      return m.term();
    }
    // Still bound to this nonce store, checked before every job: a binding lost (a broker that lost
    // its storage, a stream deleted) or taken by another store's workers runs nothing here.
    const check = await checkBound(c);
    if (check !== 'bound') {
      if (check instanceof NonceStoreMismatch) refuse(check);
      m.nak(1000);
      return;
    }
    // A job goes to the executor, which verifies everything and records what it denies.
    const beat = setInterval(() => m.working(), every);
    let answer: unknown;
    try {
      answer = await execute(executionInputOf(call));
    } finally {
      clearInterval(beat);
    }
    let bytes = canonicalize({ job, answer } as unknown as JsonValue);
    // The broker refuses a message past its limit: the job would be redelivered, meet its consumed
    // nonce and be answered as a replay, its real outcome lost. The tool ran (its receipt is
    // written); the Gate is told its result is withheld, as the execution listener tells it.
    if (Buffer.byteLength(bytes, 'utf8') > MAX_QUEUE_MESSAGE_BYTES - HEADERS_MARGIN_BYTES) {
      const withheld = {
        outcome: 'deny',
        code: 'ERR_TOOL_OUTPUT_LIMIT',
        reason: 'the result exceeds what the queue may carry; the tool ran',
      };
      bytes = canonicalize({ job, answer: withheld } as unknown as JsonValue);
    }
    // A publish the broker did not confirm is sent again with the same id (a duplicate is dropped):
    // redelivering a job whose nonce is spent would only replace its outcome by a replay denial.
    const msgID = `answer:${job.call.request_id}:${job.call.trace_id}`;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await js.publish(answers, bytes, { msgID });
        break;
      } catch (err) {
        // A stop only stops taking jobs: the ones finishing still get their tries while connected.
        if (attempt >= ANSWER_PUBLISH_ATTEMPTS || conn === undefined || conn.nc.isClosed()) throw err;
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
    m.ack();
  };
  const opening = (async () => {
    while (!closed) {
      try {
        conn = await open(o);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
    const c = conn;
    if (c === undefined || closed) return;
    // Bound before any job is taken; a broker failure is asked again, another store refuses.
    while (!closed) {
      const check = await checkBound(c);
      if (check === 'bound') break;
      if (check instanceof NonceStoreMismatch) return refuse(check);
      await new Promise((r) => setTimeout(r, 500).unref());
    }
    if (closed) return;
    loops = consumeLoops(
      c.js,
      c.s.stream,
      'workers',
      o.concurrency ?? 2,
      // A refused worker takes no more job.
      () => closed || refused !== undefined,
      (m) => handle(c, c.s.answers, beatEvery(c.waits.workers), m),
    );
  })();
  return {
    connected: () => refused === undefined && loops.length > 0 && conn !== undefined && !conn.nc.isClosed(),
    refused: () => refused,
    bound: () => isBound && refused === undefined,
    stalled: () => refused !== undefined || (bindFailing && conn !== undefined && !conn.nc.isClosed()),
    async close() {
      closed = true;
      await opening;
      await Promise.allSettled(loops);
      await conn?.nc.close().catch(() => undefined);
    },
  };
}
