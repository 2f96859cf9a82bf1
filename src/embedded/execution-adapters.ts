/**
 * The Execution Layer's tool adapters, as every composition wires them (the embedded `up` and
 * the separate `failclosed serve executor`): builtins, sandboxed commands, upstream MCP servers
 * (stdio in the sandbox, Streamable HTTP), and declarative HTTP tools (docs/adapters.md).
 */
import type { Clock } from '../kernel/index.js';
import {
  createCommandAdapter,
  createDefaultBuiltinAdapter,
  createHttpAdapter,
  createMcpAdapter,
  createMcpHttpAdapter,
  routeMcpAdapter,
} from '../execution/index.js';
import type { Sandbox, ToolAdapter, UpstreamTokenCache } from '../execution/index.js';
import { observedAdapters } from './ports.js';
import type { ToolRunObserver } from './ports.js';

/** Options of {@link executionAdapters}. */
export interface ExecutionAdapterOptions {
  readonly clock: Clock;
  readonly sandbox: Sandbox;
  /** Admit Streamable HTTP upstreams at a literal loopback address (tests and development only). */
  readonly allowLoopbackMcpUpstreams?: boolean;
  /** The process's OAuth access tokens for upstreams (the redactor knows them too). */
  readonly tokens: UpstreamTokenCache;
  /** Sees every tool run just before its adapter starts. */
  readonly onToolRun?: ToolRunObserver;
}

/** The adapters by spec `type`. */
export function executionAdapters(options: ExecutionAdapterOptions): Readonly<Record<string, ToolAdapter>> {
  return observedAdapters(
    {
      builtin: createDefaultBuiltinAdapter({ now: options.clock }),
      command: createCommandAdapter({ sandbox: options.sandbox }),
      // Upstream MCP servers: stdio ones launched per call in the same sandbox profile,
      // Streamable HTTP ones reached by the Execution Layer itself (docs/adapters.md).
      mcp: routeMcpAdapter(
        createMcpAdapter(),
        createMcpHttpAdapter({
          allowLoopback: options.allowLoopbackMcpUpstreams === true,
          tokens: options.tokens,
        }),
      ),
      // Declarative HTTP tools: requests the Execution Layer makes to allowlisted destinations.
      http: createHttpAdapter(),
    },
    options.onToolRun,
  );
}
