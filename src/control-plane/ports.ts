/**
 * The policy layer as the decision pipeline uses it: one compiled runtime per verified bundle
 * (catalog, parameter validation, pre-parsed engine), built once per bundle hash and cached by
 * the bundle store (SPEC §6 "Policy as code", OE-INV-004/005/014, SPEC §8 Cedar pre-parsing).
 */
import type { Deny, JsonValue } from '../kernel/index.js';
import type { EvaluationInput, LoadedBundle, PolicyDecision, ToolSpec } from '../policy/index.js';

/** The verified bundle a runtime was compiled from. */
export type PolicyBundleLike = LoadedBundle;

/** A compiled, verified bundle: what `decide` consults after the breakers. */
export interface PolicyRuntime {
  /** Lower-hex SHA-256 of the bundle's canonical bytes, verified at load. */
  readonly hash: string;
  /** The constitution version recorded with every decision (the bundle's name). */
  readonly constitutionVersion: string;
  readonly bundle: PolicyBundleLike;
  /** The tool's spec, or `undefined` when the catalog has no such tool (OE-INV-005). */
  getTool(name: string): ToolSpec | undefined;
  /** `{outcome:'ok'}` when `params` satisfy the tool's JSON Schema, else a deny (OE-INV-004). */
  validateParams(tool: string, params: JsonValue): { readonly outcome: 'ok' } | Deny;
  /** Evaluates the policies; may be slow or fail, so the pipeline bounds it with a deadline. */
  evaluate(input: EvaluationInput): PolicyDecision | Deny | Promise<PolicyDecision | Deny>;
}

/** Compiles verified bundle bytes into a runtime; throws `FailclosedError('ERR_POLICY_BUNDLE_INVALID')`. */
export type CompileBundle = (bytes: Uint8Array, expectedHash: string) => PolicyRuntime;
