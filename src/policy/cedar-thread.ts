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
import type { CedarAnswer, CedarAuthorize, CedarLoad } from './cedar-worker.js';
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
  resolve(a: cedar.AuthorizationAnswer): void;
  reject(e: Error): void;
}

/** Starts nothing yet: the thread starts with the first evaluation, and again after a failure. */
export function createCedarThread(options: CedarThreadOptions = {}): CedarThread {
  const url = options.url ?? CEDAR_WORKER_URL;
  const stallMs = options.stallMs ?? 30_000;
  let current: { worker: Worker; loaded: Set<string> } | undefined;
  const waiting = new Map<number, Waiting>();
  let next = 1;
  let closed = false;

  /** Ends `worker` if it is still the current one, refusing everything waiting on it. */
  const fail = (worker: Worker, err: Error): void => {
    if (current?.worker !== worker) return;
    current = undefined;
    const all = [...waiting.values()];
    waiting.clear();
    for (const w of all) w.reject(err);
    void worker.terminate().catch(() => undefined);
  };

  const start = (): { worker: Worker; loaded: Set<string> } => {
    const worker = new Worker(url);
    // Idle, the thread keeps no process alive; while it holds an evaluation, it does.
    worker.unref();
    worker.on('message', (m: CedarAnswer) => {
      const w = waiting.get(m.id);
      if (w === undefined) return;
      waiting.delete(m.id);
      if (waiting.size === 0) worker.unref();
      w.resolve(m.answer);
    });
    worker.on('error', (err) => fail(worker, err));
    worker.on('messageerror', (err) => fail(worker, err));
    worker.on('exit', () => fail(worker, new Error('the Cedar thread exited')));
    return { worker, loaded: new Set() };
  };

  return {
    authorize(hash, doc, call) {
      if (closed) return Promise.reject(new Error('the Cedar thread is closed'));
      // The oldest evaluation still unanswered past its bound: the thread is stuck; a new one.
      const oldest = waiting.values().next().value;
      if (current !== undefined && oldest !== undefined && performance.now() - oldest.at > stallMs)
        fail(current.worker, new Error('the Cedar thread stopped answering'));
      const t = (current ??= start());
      return new Promise<cedar.AuthorizationAnswer>((resolve, reject) => {
        try {
          if (!t.loaded.has(hash)) {
            const name = preparsedName(hash);
            t.worker.postMessage({
              kind: 'load',
              name,
              schema: doc.schema,
              policies: { ...doc.policies },
            } satisfies CedarLoad);
            t.loaded.add(hash);
          }
          const id = next++;
          t.worker.postMessage({ kind: 'authorize', id, call } satisfies CedarAuthorize);
          waiting.set(id, { at: performance.now(), resolve, reject });
          if (waiting.size === 1) t.worker.ref();
        } catch (err) {
          reject(err instanceof Error ? err : new Error('the call could not be sent to the Cedar thread'));
        }
      });
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
