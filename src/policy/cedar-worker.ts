/**
 * The Cedar thread's entry (`cedar-thread.ts`): Cedar's evaluator, and nothing else, in a worker
 * thread, so that a governed call's policy evaluation leaves the event loop that serves every
 * call. It pre-parses each bundle's schema and policy set once (as the main thread does, SPEC §8
 * "Pre-parse per bundle") and answers each authorization request with Cedar's own answer, which
 * the main thread turns into a decision exactly as it would an answer computed in-thread
 * (`engine.ts`). A bundle that does not pre-parse here ends the thread: every call waiting on it
 * is then refused (fail closed), and the next one starts a new thread.
 */
import './v8-flags.js';
import { parentPort } from 'node:worker_threads';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { preparse } from './cedar-preparse.js';

/** Pre-parse a bundle's schema and policies under `name`. */
export interface CedarLoad {
  readonly kind: 'load';
  readonly name: string;
  readonly schema: cedar.Schema;
  readonly policies: Readonly<Record<string, string>>;
}

/** Evaluate one call against a pre-parsed bundle. */
export interface CedarAuthorize {
  readonly kind: 'authorize';
  readonly id: number;
  readonly call: cedar.StatefulAuthorizationCall;
  /** Past this (`performance.timeOrigin + performance.now()`), answered `expired`, not evaluated. */
  readonly expiresAt?: number;
}

/** Answer once everything sent before is done (the thread is up, its bundles pre-parsed). */
export interface CedarPing {
  readonly kind: 'ping';
  readonly id: number;
}

/**
 * The thread's answer to a {@link CedarAuthorize} (`answer`, or `expired` when it was reached past
 * its `expiresAt`) or a {@link CedarPing} (neither).
 */
export interface CedarAnswer {
  readonly id: number;
  readonly answer?: cedar.AuthorizationAnswer;
  readonly expired?: true;
}

const port = parentPort;
if (port !== null) {
  port.on('message', (m: CedarLoad | CedarAuthorize | CedarPing) => {
    if (m.kind === 'ping') return port.postMessage({ id: m.id } satisfies CedarAnswer);
    // A bundle that does not pre-parse throws here: the thread ends (module doc).
    if (m.kind === 'load') return preparse(m.name, m.schema, m.policies);
    // Its caller stopped waiting (a thread behind on its queue): not evaluated, so the calls still
    // waiting behind it are reached sooner.
    if (m.expiresAt !== undefined && performance.timeOrigin + performance.now() > m.expiresAt)
      return port.postMessage({ id: m.id, expired: true } satisfies CedarAnswer);
    port.postMessage({ id: m.id, answer: cedar.statefulIsAuthorized(m.call) } satisfies CedarAnswer);
  });
}
