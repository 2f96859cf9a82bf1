/**
 * Cedar off the event loop: one worker thread (`cedar-worker.ts`) that evaluates the serving
 * deployment's policy calls, so that the Gate's event loop, which every call shares, does not
 * spend a call's largest single piece of work on them (docs/policy.md "Where Cedar runs").
 *
 * The main thread still loads, checks and pre-parses every bundle itself (`createPolicyEngine`),
 * validates the parameters and builds the Cedar request; only Cedar's evaluation crosses, and
 * Cedar's answer comes back to the same checks as an in-thread one (`engine.ts`). Fail closed:
 * a thread that fails (an error, an exit, a message it cannot read) refuses every evaluation
 * waiting on it, and the next evaluation starts a new thread, which pre-parses its bundles again.
 * A thread that has held an evaluation past {@link CedarThreadOptions.stallMs} is ended the same
 * way (the pipeline has long since denied that call: its policy deadline is far shorter).
 *
 * A thread is up once it has answered the ping it is sent first. A thread that ends before it is
 * up (its module does not load, its WebAssembly does not instantiate, memory runs out) is not
 * started again at once: for a back-off that doubles with each such thread in a row (from
 * {@link CedarThreadOptions.startBackoffMs}, at most {@link CedarThreadOptions.maxStartBackoffMs})
 * every evaluation and readiness check is refused without starting one, so a thread that cannot
 * start costs one start per back-off, not one per call. A thread that was up and then failed (a
 * call that crashed it) is replaced at the next call, as before: the back-off never lengthens a
 * refusal a caller can cause.
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { CedarAuthorize, CedarLoad, CedarPing } from './cedar-worker.js';
import { preparsedName } from './cedar.js';
import type { PolicyBundleDocument } from './types.js';

/**
 * Milliseconds on a timeline every thread of the process shares (`performance.timeOrigin` +
 * `performance.now()`, whichever origin a thread's `performance.now()` counts from).
 */
export const sharedNow = (): number => performance.timeOrigin + performance.now();

/** The compiled worker entry, beside this module. */
export const CEDAR_WORKER_URL = new URL('./cedar-worker.js', import.meta.url);

/**
 * Why an evaluation was refused when the thread was not there to answer it: not started (or
 * within its start back-off), closed, exited, stopped answering, or reached the call only after
 * its caller stopped waiting. The call is `ERR_POLICY_UNAVAILABLE` (503, worth asking again),
 * not `ERR_POLICY_ERROR`: nothing was wrong with the call or the policy. A thread that sent
 * something nobody asked for, or threw while it was up, is refused with a plain `Error`.
 */
export class CedarThreadUnavailable extends Error {}

/** The thread reached the call only after its caller stopped waiting (`expiresAt`), and skipped it. */
export class CedarCallExpired extends CedarThreadUnavailable {}

/** Evaluates Cedar calls on a thread of its own. */
export interface CedarThread {
  /**
   * Cedar's answer to `call` for the bundle `hash` (`doc` is pre-parsed on the thread the first
   * time). Rejects when the thread failed or was closed, or reached the call only past
   * `expiresAt` ({@link sharedNow} timeline; its caller has stopped waiting) and so did not
   * evaluate it.
   */
  authorize(
    hash: string,
    doc: PolicyBundleDocument,
    call: cedar.StatefulAuthorizationCall,
    expiresAt?: number,
  ): Promise<cedar.AuthorizationAnswer>;
  /** Starts the thread if needed and pre-parses `doc` there, without waiting. */
  preload(hash: string, doc: PolicyBundleDocument): void;
  /**
   * Resolves once the thread is up and has pre-parsed everything sent before (starting it if
   * needed); rejects when it failed or was closed. Readiness asks it.
   */
  ready(): Promise<void>;
  /** Ends the thread; evaluations still waiting are refused, later ones reject. */
  close(): Promise<void>;
}

/** Options of {@link createCedarThread}. */
export interface CedarThreadOptions {
  /** The worker entry; default {@link CEDAR_WORKER_URL}. */
  readonly url?: URL;
  /** An evaluation unanswered for this long ends the thread (ms); default 30 000. */
  readonly stallMs?: number;
  /** The back-off after a thread that ended before it was up (ms); default 100, doubled for each in a row. */
  readonly startBackoffMs?: number;
  /** The longest back-off (ms); default 10 000. */
  readonly maxStartBackoffMs?: number;
  /** The clock the back-off is measured on (ms); default `performance.now`. */
  readonly now?: () => number;
}

/** True when the compiled worker entry is present (a build; not the TypeScript sources). */
export function cedarThreadAvailable(url: URL = CEDAR_WORKER_URL): boolean {
  return existsSync(fileURLToPath(url));
}

interface Waiting {
  readonly at: number;
  resolve(a: unknown): void;
  reject(e: Error): void;
}

interface Running {
  readonly worker: Worker;
  readonly loaded: Set<string>;
  /** It answered its start ping ({@link START_PING}). */
  up: boolean;
}

/** The id of the ping each thread is sent first; callers' messages start at 1. */
const START_PING = 0;

/** Starts nothing yet: the thread starts when first needed, and again after a failure. */
export function createCedarThread(options: CedarThreadOptions = {}): CedarThread {
  const url = options.url ?? CEDAR_WORKER_URL;
  const stallMs = options.stallMs ?? 30_000;
  const backoffMs = options.startBackoffMs ?? 100;
  const maxBackoffMs = options.maxStartBackoffMs ?? 10_000;
  const now = options.now ?? (() => performance.now());
  for (const [name, v] of [
    ['stallMs', stallMs],
    ['startBackoffMs', backoffMs],
    ['maxStartBackoffMs', maxBackoffMs],
  ] as const) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number of ms`);
  }
  let current: Running | undefined;
  /** Threads in a row that ended before they were up, the last one's error, and when to try again. */
  let failedStarts = 0;
  let lastStartError: Error | undefined;
  let retryAt = 0;
  const waiting = new Map<number, Waiting>();
  let next = 1;
  let closed = false;
  let watchdog: NodeJS.Timeout | undefined;

  /** One more thread in a row that did not start: the next start waits out the back-off. */
  const startFailed = (err: Error): void => {
    failedStarts += 1;
    lastStartError = err;
    retryAt = now() + Math.min(maxBackoffMs, backoffMs * 2 ** Math.min(failedStarts - 1, 30));
  };

  /** Ends `worker` if it is still the current one, refusing everything waiting on it. */
  const fail = (worker: Worker, err: Error): void => {
    if (current?.worker !== worker) return;
    if (!current.up) {
      startFailed(err);
      if (!(err instanceof CedarThreadUnavailable))
        err = new CedarThreadUnavailable(err.message, { cause: err });
    }
    current = undefined;
    clearTimeout(watchdog);
    watchdog = undefined;
    const all = [...waiting.values()];
    waiting.clear();
    for (const w of all) w.reject(err);
    void worker.terminate().catch(() => undefined);
  };

  /** While something waits: a thread that holds the oldest past `stallMs` is ended. */
  const watch = (): void => {
    if (watchdog !== undefined) return;
    const oldest = waiting.values().next().value;
    if (oldest === undefined) return;
    const due = Math.max(0, oldest.at + stallMs - performance.now());
    watchdog = setTimeout(() => {
      watchdog = undefined;
      const first = waiting.values().next().value;
      if (current !== undefined && first !== undefined && performance.now() - first.at >= stallMs)
        fail(current.worker, new CedarThreadUnavailable('the Cedar thread stopped answering'));
      else watch();
    }, due);
    // The thread itself keeps the process alive while it holds a call; the watchdog does not.
    watchdog.unref();
  };

  const start = (): Running => {
    if (failedStarts > 0 && now() < retryAt)
      throw new CedarThreadUnavailable(
        `the Cedar thread did not start (${failedStarts} in a row); the next start is due in ${Math.ceil(retryAt - now())} ms`,
        { cause: lastStartError },
      );
    let worker: Worker;
    try {
      worker = new Worker(url);
    } catch (err) {
      // Refused before it began (a path Node will not load a worker from): a start that failed.
      const e = err instanceof Error ? err : new Error('the Cedar thread could not be created');
      startFailed(e);
      throw new CedarThreadUnavailable(e.message, { cause: e });
    }
    const running: Running = { worker, loaded: new Set(), up: false };
    // Idle, the thread keeps no process alive; while it holds an evaluation, it does.
    worker.unref();
    worker.on('message', (m: unknown) => {
      const id = typeof m === 'object' && m !== null ? (m as { id?: unknown }).id : undefined;
      if (id === START_PING && !running.up) {
        // A thread already failed and replaced says nothing about starts any more.
        if (current !== running) return;
        running.up = true;
        failedStarts = 0;
        lastStartError = undefined;
        return;
      }
      const w = typeof id === 'number' ? waiting.get(id) : undefined;
      // Nothing this side asked for: the thread is not to be trusted with the next call.
      if (w === undefined) return fail(worker, new Error('the Cedar thread sent an unexpected message'));
      waiting.delete(id as number);
      if (waiting.size === 0) {
        worker.unref();
        clearTimeout(watchdog);
        watchdog = undefined;
      }
      if ((m as { expired?: unknown }).expired === true)
        w.reject(new CedarCallExpired('the Cedar thread reached the call after its caller stopped waiting'));
      else w.resolve((m as { answer?: unknown }).answer);
    });
    worker.on('error', (err) => fail(worker, err));
    worker.on('messageerror', (err) => fail(worker, err));
    worker.on('exit', () => fail(worker, new CedarThreadUnavailable('the Cedar thread exited')));
    // First in its queue: answered once the thread runs, before anything sent after it.
    worker.postMessage({ kind: 'ping', id: START_PING } satisfies CedarPing);
    return running;
  };

  const load = (t: Running, hash: string, doc: PolicyBundleDocument): void => {
    if (t.loaded.has(hash)) return;
    t.worker.postMessage({
      kind: 'load',
      name: preparsedName(hash),
      schema: doc.schema,
      policies: { ...doc.policies },
    } satisfies CedarLoad);
    t.loaded.add(hash);
  };

  /** Sends `message(id)` to the (started) thread and waits for its answer. */
  const ask = (send: (t: Running, id: number) => void): Promise<unknown> => {
    if (closed) return Promise.reject(new CedarThreadUnavailable('the Cedar thread is closed'));
    return new Promise<unknown>((resolve, reject) => {
      try {
        const t = (current ??= start());
        const id = next++;
        send(t, id);
        waiting.set(id, { at: performance.now(), resolve, reject });
        if (waiting.size === 1) t.worker.ref();
        watch();
      } catch (err) {
        reject(err instanceof Error ? err : new Error('the call could not be sent to the Cedar thread'));
      }
    });
  };

  return {
    async authorize(hash, doc, call, expiresAt) {
      const answer = await ask((t, id) => {
        load(t, hash, doc);
        t.worker.postMessage({
          kind: 'authorize',
          id,
          call,
          ...(expiresAt === undefined ? {} : { expiresAt }),
        } satisfies CedarAuthorize);
      });
      return answer as cedar.AuthorizationAnswer;
    },
    preload(hash, doc) {
      if (closed) return;
      try {
        load((current ??= start()), hash, doc);
      } catch {
        // The next evaluation starts the thread again, or refuses.
      }
    },
    async ready() {
      await ask((t, id) => t.worker.postMessage({ kind: 'ping', id } satisfies CedarPing));
    },
    async close() {
      closed = true;
      const c = current;
      if (c === undefined) return;
      fail(c.worker, new CedarThreadUnavailable('the Cedar thread is closed'));
      await c.worker.terminate().catch(() => undefined);
    },
  };
}
