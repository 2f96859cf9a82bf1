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
 */
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { CedarAuthorize, CedarLoad, CedarPing } from './cedar-worker.js';
import { preparsedName } from './cedar.js';
import type { PolicyBundleDocument } from './types.js';

/** The compiled worker entry, beside this module. */
export const CEDAR_WORKER_URL = new URL('./cedar-worker.js', import.meta.url);

/** Evaluates Cedar calls on a thread of its own. */
export interface CedarThread {
  /**
   * Cedar's answer to `call` for the bundle `hash` (`doc` is pre-parsed on the thread the first
   * time). Rejects when the thread failed or was closed.
   */
  authorize(
    hash: string,
    doc: PolicyBundleDocument,
    call: cedar.StatefulAuthorizationCall,
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
}

/** Starts nothing yet: the thread starts when first needed, and again after a failure. */
export function createCedarThread(options: CedarThreadOptions = {}): CedarThread {
  const url = options.url ?? CEDAR_WORKER_URL;
  const stallMs = options.stallMs ?? 30_000;
  let current: Running | undefined;
  const waiting = new Map<number, Waiting>();
  let next = 1;
  let closed = false;
  let watchdog: NodeJS.Timeout | undefined;

  /** Ends `worker` if it is still the current one, refusing everything waiting on it. */
  const fail = (worker: Worker, err: Error): void => {
    if (current?.worker !== worker) return;
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
        fail(current.worker, new Error('the Cedar thread stopped answering'));
      else watch();
    }, due);
    // The thread itself keeps the process alive while it holds a call; the watchdog does not.
    watchdog.unref();
  };

  const start = (): Running => {
    const worker = new Worker(url);
    // Idle, the thread keeps no process alive; while it holds an evaluation, it does.
    worker.unref();
    worker.on('message', (m: unknown) => {
      const id = typeof m === 'object' && m !== null ? (m as { id?: unknown }).id : undefined;
      const w = typeof id === 'number' ? waiting.get(id) : undefined;
      // Nothing this side asked for: the thread is not to be trusted with the next call.
      if (w === undefined) return fail(worker, new Error('the Cedar thread sent an unexpected message'));
      waiting.delete(id as number);
      if (waiting.size === 0) {
        worker.unref();
        clearTimeout(watchdog);
        watchdog = undefined;
      }
      w.resolve((m as { answer?: unknown }).answer);
    });
    worker.on('error', (err) => fail(worker, err));
    worker.on('messageerror', (err) => fail(worker, err));
    worker.on('exit', () => fail(worker, new Error('the Cedar thread exited')));
    return { worker, loaded: new Set() };
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
    if (closed) return Promise.reject(new Error('the Cedar thread is closed'));
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
    async authorize(hash, doc, call) {
      const answer = await ask((t, id) => {
        load(t, hash, doc);
        t.worker.postMessage({ kind: 'authorize', id, call } satisfies CedarAuthorize);
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
      fail(c.worker, new Error('the Cedar thread is closed'));
      await c.worker.terminate().catch(() => undefined);
    },
  };
}
