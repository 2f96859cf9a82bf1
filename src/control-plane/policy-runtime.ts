/**
 * The default {@link CompileBundle}: the policy layer's loader, catalog and pre-parsed Cedar
 * engine behind the {@link PolicyRuntime} port (SPEC §6, §8 "Pre-parse per bundle",
 * OE-INV-004/005/014).
 */
import { FailclosedError, isDeny } from '../kernel/index.js';
import { createPolicyEngine, loadBundle } from '../policy/index.js';
import type { CedarThread, LoadBundleOptions } from '../policy/index.js';
import type { CompileBundle, PolicyRuntime } from './ports.js';

/**
 * Loads and verifies bundle bytes against `expectedHash`, pre-parses its engine and returns the
 * runtime. Throws `FailclosedError('ERR_POLICY_BUNDLE_INVALID')` for a malformed or tampered
 * bundle and `ERR_POLICY_UNAVAILABLE` when the engine cannot be prepared. (SPEC §7 scenario 13)
 */
export const compilePolicyBundle: CompileBundle = (bytes: Uint8Array, expectedHash: string) =>
  compileWith(bytes, expectedHash, {});

/**
 * A {@link CompileBundle} that also checks `builtin` adapter specs against the function names
 * the deployment's Execution Layer offers, so a bundle naming a missing builtin never loads
 * (at activation or from the store). (OE-INV-005)
 */
export function createBundleCompiler(options: LoadBundleOptions, run: CompileRunOptions = {}): CompileBundle {
  const frozen = Object.freeze({ ...options });
  return (bytes, expectedHash) => compileWith(bytes, expectedHash, frozen, run.cedarThread);
}

/** Where a compiled bundle's evaluations run. */
export interface CompileRunOptions {
  /**
   * Cedar's evaluations on this thread (`createCedarThread`), off the caller's event loop; the
   * runtime's `evaluate` then answers a promise. Default: in the calling thread.
   */
  readonly cedarThread?: CedarThread;
}

function compileWith(
  bytes: Uint8Array,
  expectedHash: string,
  options: LoadBundleOptions,
  thread?: CedarThread,
): PolicyRuntime {
  const bundle = loadBundle(bytes, expectedHash, options);
  if (isDeny(bundle)) throw new FailclosedError('ERR_POLICY_BUNDLE_INVALID', bundle.reason);
  const engine = createPolicyEngine(bundle);
  if (isDeny(engine)) throw new FailclosedError(engine.code, engine.reason);
  const { catalog } = engine;
  // Pre-parsed on the thread now (at start, at an activation), not within a call's deadline.
  thread?.preload(bundle.hash, bundle.document);
  return Object.freeze({
    hash: bundle.hash,
    constitutionVersion: bundle.document.name,
    bundle,
    getTool: (name: string) => catalog.getTool(name),
    validateParams: (tool: string, params: Parameters<typeof catalog.validateParams>[1]) =>
      catalog.validateParams(tool, params),
    evaluate:
      thread === undefined
        ? (input: Parameters<typeof engine.evaluate>[0]) => engine.evaluate(input)
        : (input: Parameters<typeof engine.evaluate>[0]) => engine.evaluateOn(thread, input),
  });
}
