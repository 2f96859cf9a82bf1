/**
 * The tool adapter interface (SPEC §2 step 7, OE-INV-006/007/024). An adapter runs one call
 * with only the capabilities the verified envelope grants; it is reached only after every check
 * passed. A failure is a result (`Deny`), and the executor also treats a throw, a hang past the
 * time limit or a malformed answer as a deny.
 */
import type { Clock, Deny, EnvelopeConstraints, JsonValue } from '../../kernel/index.js';
import type { UpstreamNotices } from '../relay.js';
import type { SecretResolver } from '../secrets.js';

/**
 * Limits and capabilities granted by the envelope's `constraints` claim (timeout, output cap,
 * memory, network, egress allowlist, filesystem scope, cost cap; OE-INV-006/007/024).
 */
export type ExecutionConstraints = EnvelopeConstraints;

/**
 * How a tool is executed, as pinned by the policy bundle that approved it (resolved through
 * `resolveTool(policy_bundle, tool)`). `type` selects the adapter; each adapter parses the rest
 * and answers `ERR_ADAPTER_UNAVAILABLE` when it is malformed.
 */
export interface ToolExecutionSpec {
  /** Adapter type: `builtin`, `command`, ... */
  readonly type: string;
  readonly [key: string]: unknown;
}

/** One call handed to an adapter after every check passed. */
export interface ToolCall {
  /** Tool name (the envelope's `tool` claim). */
  readonly tool: string;
  /** Execution spec from the approving policy bundle. */
  readonly spec: ToolExecutionSpec;
  /** The parameters whose hash matched `params_sha256`, deep-frozen. */
  readonly params: JsonValue;
  /** Limits and capabilities from the envelope. */
  readonly constraints: ExecutionConstraints;
  /** Resolves secret references named by the spec (OE-INV-009). */
  readonly secrets?: SecretResolver;
  /**
   * Aborted when the executor gives up on the call (timeout) or its caller cancels it; adapters
   * must stop promptly.
   */
  readonly signal: AbortSignal;
  /**
   * Where an upstream's progress and log messages about this call go (an MCP upstream's adapter
   * only; relay.ts): guarded by the executor, so an adapter hands on what it received as is.
   */
  readonly notices?: UpstreamNotices;
}

/** A tool's answer: a JSON result, or a deny with an `ERR_TOOL_*`, `ERR_SANDBOX_*` or `ERR_ADAPTER_*` code. */
export type ToolOutput = { readonly outcome: 'ok'; readonly result: JsonValue } | Deny;

/** Runs tool calls of one adapter type. */
export interface ToolAdapter {
  /** Runs `call`; never called unless the envelope, ledger confirmation and nonce all passed. */
  run(call: ToolCall): Promise<ToolOutput>;
}

/** Context handed to an in-process builtin function. */
export interface BuiltinContext {
  readonly tool: string;
  readonly now: Clock;
  readonly constraints: ExecutionConstraints;
  readonly signal: AbortSignal;
  readonly secrets?: SecretResolver;
}

/** An in-process tool: parameters in, JSON out. Throwing `FailclosedError` keeps its code. */
export type BuiltinFunction = (params: JsonValue, ctx: BuiltinContext) => Promise<JsonValue>;
