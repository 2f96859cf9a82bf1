/**
 * MCP tool adapter (`type: 'mcp'`): one call of a tool of an upstream stdio MCP server, declared
 * and pinned in the policy bundle (docs/adapters.md "MCP tools", docs/mcp.md "Upstream servers").
 *
 * Per call, after the executor verified the envelope and consumed its nonce: the server's
 * `command` is launched inside the bubblewrap sandbox with only the envelope's grants (`fs_read`,
 * `fs_write`, no network unless granted, and then only to its egress allowlist through the call's
 * egress proxy, OE-INV-011; `buildSandboxArgv`), the official SDK client speaks MCP
 * to it over the sandbox's stdin/stdout, the server's current definition of the tool is compared
 * with the pinned SHA-256 **before** anything is called (`ERR_TOOL_DEFINITION_CHANGED` when it
 * differs or the tool is gone), the tool is called with the envelope's exact parameters, and the
 * server is killed (`callPinnedTool`, mcp-session.ts, shared with the Streamable HTTP adapter). Each call launches its own process: no process state (a changed definition,
 * a poisoned cache, an open connection) survives from one call to the next. Files do, where the
 * server is granted `fs_write`: whatever one call writes there the next call can read.
 *
 * The upstream is untrusted (OE-INV-013): everything it sends is bounded. Its stdout is capped at
 * `max_output_bytes` plus {@link PROTOCOL_BUDGET_BYTES} for the handshake and listing
 * (`ERR_TOOL_OUTPUT_LIMIT`), the whole exchange at the envelope's `timeout_ms`
 * (`ERR_TOOL_TIMEOUT`); a line that is not JSON-RPC, an exit before its answer, or an answer the
 * SDK rejects is `ERR_TOOL_FAILED` (output withheld). When the pinned
 * definition has an `outputSchema`, failclosed itself validates the result's `structuredContent`
 * against it (ajv, never the SDK client's cache, which the upstream can clear with
 * `notifications/tools/list_changed`): missing or invalid is `ERR_TOOL_FAILED`. The tool name
 * called is the one the bundle binds to this server: an agent never names an upstream or its tools.
 *
 * Result: `{ content, structuredContent? }` of the upstream's `CallToolResult`, or
 * `{ content, isError: true }` for its tool-level error (redacted by the executor like every
 * result). While it runs, its progress and log messages go to the call's `notices` and the call's
 * abort (time limit or the caller's cancellation) ends it (`callPinnedTool`, relay.ts).
 * (SPEC §6 Shell and sandbox, OE-INV-006/012/024)
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { deserializeMessage, serializeMessage } from '@modelcontextprotocol/client';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { deny } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import { buildSandboxArgv, openEgress } from '../sandbox/bwrap.js';
import { EGRESS_ENV } from '../sandbox/egress.js';
import type { BwrapSandboxOptions } from '../sandbox/bwrap.js';
import { listCatalog, parsePinnedEntry, runPinnedEntry } from './mcp-entries.js';
import type { McpListing, PinnedMcpEntry } from './mcp-entries.js';
import { PROTOCOL_BUDGET_BYTES, isObject, listTools, parseClientRequests } from './mcp-session.js';
import type { Upstream } from './mcp-session.js';
import type { ExecutionConstraints, ToolAdapter } from './types.js';
import type { ClientRequestKind } from '../relay.js';

export { PROTOCOL_BUDGET_BYTES } from './mcp-session.js';

/** Options for {@link createMcpAdapter}. */
export interface McpAdapterOptions extends BwrapSandboxOptions {
  /** Bytes of upstream stdout allowed besides `max_output_bytes`. Default {@link PROTOCOL_BUDGET_BYTES}. */
  readonly protocolBudgetBytes?: number;
}

interface McpSpec {
  readonly entry: PinnedMcpEntry;
  readonly command: readonly string[];
  readonly asks: readonly ClientRequestKind[];
}

function parseSpec(spec: Readonly<Record<string, unknown>>): McpSpec | undefined {
  const { command } = spec;
  if (
    !Array.isArray(command) ||
    command.length === 0 ||
    !command.every((a): a is string => typeof a === 'string')
  )
    return undefined;
  const entry = parsePinnedEntry(spec);
  const asks = parseClientRequests(spec);
  return entry === undefined || asks === undefined
    ? undefined
    : { entry, command: Object.freeze([...command]), asks };
}

async function launch(
  command: readonly string[],
  constraints: ExecutionConstraints,
  signal: AbortSignal,
  options: McpAdapterOptions,
): Promise<Upstream | Deny> {
  const checked = buildSandboxArgv(command, constraints, options, { socketDir: '/nonexistent' });
  if (checked.outcome === 'deny') return checked;
  if (signal.aborted) return deny('ERR_TOOL_TIMEOUT', 'aborted before start');
  // A refused connection ends the call (OE-INV-011): the upstream is killed, the call denied.
  let onEgressDenial: (d: Deny) => void = () => undefined;
  const opened = await openEgress(constraints, options, (d) => onEgressDenial(d));
  if (opened.outcome === 'deny') return opened;
  const proxy = opened.proxy;
  const built = buildSandboxArgv(
    command,
    constraints,
    options,
    proxy === undefined ? undefined : { socketDir: proxy.socketDir },
  );
  if (built.outcome === 'deny') {
    await proxy?.close();
    return built;
  }
  const cap = constraints.max_output_bytes + (options.protocolBudgetBytes ?? PROTOCOL_BUDGET_BYTES);
  let child: ChildProcess;
  try {
    // The host environment (which may hold FC_SECRET_*) is never inherited.
    child = spawn(options.bwrapPath ?? '/usr/bin/bwrap', built.argv, {
      env: {
        PATH: '/usr/bin:/bin',
        HOME: '/tmp/work',
        TMPDIR: '/tmp',
        LANG: 'C.UTF-8',
        ...(proxy === undefined ? {} : EGRESS_ENV),
      },
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
  } catch {
    await proxy?.close();
    return deny('ERR_SANDBOX_UNAVAILABLE', 'bwrap could not be started');
  }
  let first: Deny | undefined;
  let resolveFault: (d: Deny) => void = () => undefined;
  const faulted = new Promise<Deny>((r) => (resolveFault = r));
  let status = '';
  let heard = false;
  const exited = new Promise<void>((r) => {
    child.once('close', () => r());
    // A child that never started may report only 'error'; never wait on it for ever.
    child.once('error', () => setTimeout(r, 1000).unref());
  }).then(() => proxy?.close());
  const killGroup = (): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const transport: Transport = {
    start: () => Promise.resolve(),
    send: (message: JSONRPCMessage) =>
      new Promise<void>((resolve, reject) => {
        if (first !== undefined || child.stdin === null || child.stdin.destroyed) {
          reject(new Error('the upstream is gone'));
          return;
        }
        child.stdin.write(serializeMessage(message), (err) => (err ? reject(err) : resolve()));
      }),
    close: () => {
      killGroup();
      return Promise.resolve();
    },
  };
  const fail = (d: Deny): void => {
    if (first !== undefined) return;
    first = d;
    resolveFault(d);
    killGroup();
    transport.onclose?.();
  };
  onEgressDenial = fail;
  const early = proxy?.denial();
  if (early !== undefined) fail(early);
  const timer = setTimeout(
    () => fail(deny('ERR_TOOL_TIMEOUT', 'the upstream exceeded the time limit')),
    constraints.timeout_ms,
  );
  const onAbort = (): void => fail(deny('ERR_TOOL_TIMEOUT', 'aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  // The part of a line received so far, as chunks: each chunk is scanned once for its newline,
  // so a long line costs linear time, not a re-scan of all of it per chunk.
  let partial: Buffer[] = [];
  let used = 0;
  child.stdout?.on('data', (chunk: Buffer) => {
    if (first !== undefined) return;
    used += chunk.length;
    if (used > cap) {
      fail(deny('ERR_TOOL_OUTPUT_LIMIT', 'the upstream exceeded the output limit'));
      return;
    }
    let rest = chunk;
    // One JSON-RPC message per line; anything else on stdout is a protocol violation (the SDK's
    // own reader skips lines that are not JSON: an untrusted upstream gets no such leniency).
    for (let nl = rest.indexOf(10); nl !== -1 && first === undefined; nl = rest.indexOf(10)) {
      partial.push(rest.subarray(0, nl));
      const line = Buffer.concat(partial).toString('utf8').replace(/\r$/, '');
      partial = [];
      rest = rest.subarray(nl + 1);
      let message: JSONRPCMessage;
      try {
        message = deserializeMessage(line);
      } catch {
        fail(deny('ERR_TOOL_FAILED', 'the upstream sent something that is not JSON-RPC'));
        return;
      }
      heard = true;
      try {
        transport.onmessage?.(message);
      } catch {
        // Never let an upstream's message throw out of this stream handler.
        fail(deny('ERR_TOOL_FAILED', 'the upstream sent a message the client could not handle'));
      }
    }
    if (rest.length > 0 && first === undefined) partial.push(rest);
  });
  // Diagnostics are drained and dropped: never relayed, never parsed, never buffered unbounded.
  child.stderr?.on('data', () => undefined);
  (child.stdio[3] as Readable | null | undefined)?.on('data', (chunk: Buffer) => {
    if (status.length < 4096) status += chunk.toString('utf8');
  });
  child.stdin?.on('error', () => undefined);
  child.on('error', () => fail(deny('ERR_SANDBOX_UNAVAILABLE', 'bwrap could not be started')));
  child.on('close', () => {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    // bwrap reports "exit-code" only when the program it started inside ran; an upstream that
    // never spoke and never ran means the sandbox was never set up.
    if (!heard && !status.includes('"exit-code"'))
      fail(deny('ERR_SANDBOX_UNAVAILABLE', 'the sandbox could not be established'));
    // With egress, the forwarder starts the upstream only after it reached the proxy.
    if (!heard && proxy !== undefined && !proxy.ready())
      fail(deny('ERR_SANDBOX_UNAVAILABLE', 'the egress forwarder did not start'));
    fail(deny('ERR_TOOL_FAILED', 'the upstream exited before it answered'));
  });
  return {
    transport,
    fault: () => first,
    faulted,
    fail,
    async kill() {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      killGroup();
      await exited;
    },
  };
}

/**
 * The tools an upstream lists, each as listed (for `failclosed policy pin-mcp`): the server is
 * launched in the same sandbox as for a call, under `constraints`. Denies as the adapter does.
 */
export async function listMcpTools(
  command: readonly string[],
  constraints: ExecutionConstraints,
  options: McpAdapterOptions = {},
): Promise<readonly Readonly<Record<string, unknown>>[] | Deny> {
  const upstream = await launch(command, constraints, new AbortController().signal, options);
  if ('outcome' in upstream) return upstream;
  return listTools(upstream, constraints.timeout_ms);
}

/**
 * What an upstream lists (for `failclosed policy pin-mcp --prompt/--resource`): its tools, and
 * its prompts and resources when asked, in one session in the same sandbox as a call.
 */
export async function listMcpCatalog(
  command: readonly string[],
  constraints: ExecutionConstraints,
  want: { readonly prompts: boolean; readonly resources: boolean },
  options: McpAdapterOptions = {},
): Promise<McpListing | Deny> {
  const upstream = await launch(command, constraints, new AbortController().signal, options);
  if ('outcome' in upstream) return upstream;
  return listCatalog(upstream, constraints.timeout_ms, want);
}

/**
 * Creates the MCP adapter for stdio upstreams: a pinned tool is called, a pinned prompt got, a
 * pinned resource read (mcp-entries.ts). Denies with `ERR_ADAPTER_UNAVAILABLE` (malformed
 * spec: the pinned definition missing, not matching its hash, or an `outputSchema` that does not
 * compile), `ERR_PARAMS_INVALID` (parameters not an object), `ERR_SANDBOX_UNAVAILABLE`,
 * `ERR_TOOL_DEFINITION_CHANGED` (the listed definition's hash differs from the pinned one, or
 * the tool is no longer listed: nothing is called), `ERR_TOOL_TIMEOUT`, `ERR_TOOL_OUTPUT_LIMIT`
 * and `ERR_TOOL_FAILED` (see `callPinnedTool`, shared with the Streamable HTTP adapter).
 */
export function createMcpAdapter(options: McpAdapterOptions = {}): ToolAdapter {
  return {
    async run(call) {
      const spec = parseSpec(call.spec);
      if (spec === undefined) return deny('ERR_ADAPTER_UNAVAILABLE', 'MCP spec is malformed');
      const params = call.params;
      if (!isObject(params)) return deny('ERR_PARAMS_INVALID', 'MCP tool arguments must be an object');
      const upstream = await launch(spec.command, call.constraints, call.signal, options);
      if ('outcome' in upstream) return upstream;
      return runPinnedEntry(upstream, spec.entry, params, call.constraints.timeout_ms, {
        signal: call.signal,
        asks: spec.asks,
        ...(call.notices === undefined ? {} : { notices: call.notices }),
      });
    },
  };
}
