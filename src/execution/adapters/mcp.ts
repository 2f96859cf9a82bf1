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
 * server is killed. Each call launches its own process: no process state (a changed definition,
 * a poisoned cache, an open connection) survives from one call to the next. Files do, where the
 * server is granted `fs_write`: whatever one call writes there the next call can read.
 *
 * The upstream is untrusted (OE-INV-013): everything it sends is bounded. Its stdout is capped at
 * `max_output_bytes` plus {@link PROTOCOL_BUDGET_BYTES} for the handshake and listing
 * (`ERR_TOOL_OUTPUT_LIMIT`), the whole exchange at the envelope's `timeout_ms`
 * (`ERR_TOOL_TIMEOUT`); a line that is not JSON-RPC, an exit before its answer, an answer the SDK
 * rejects or a tool result with `isError` is `ERR_TOOL_FAILED` (output withheld). When the pinned
 * definition has an `outputSchema`, failclosed itself validates the result's `structuredContent`
 * against it (ajv, never the SDK client's cache, which the upstream can clear with
 * `notifications/tools/list_changed`): missing or invalid is `ERR_TOOL_FAILED`. The tool name
 * called is the one the bundle binds to this server: an agent never names an upstream or its tools.
 *
 * Result: `{ content, structuredContent? }` of the upstream's `CallToolResult` (redacted by the
 * executor like every result). (SPEC §6 Shell and sandbox, OE-INV-006/012/024)
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import {
  Client,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  deserializeMessage,
  serializeMessage,
} from '@modelcontextprotocol/client';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import {
  OUTPUT_SCHEMA_AJV_OPTIONS,
  deny,
  hexDigestEquals,
  outputSchemaDraft,
  pinMcpDefinition,
} from '../../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import { buildSandboxArgv, openEgress } from '../sandbox/bwrap.js';
import { EGRESS_ENV } from '../sandbox/egress.js';
import type { BwrapSandboxOptions } from '../sandbox/bwrap.js';
import type { ExecutionConstraints, ToolAdapter } from './types.js';

/** Bytes of upstream stdout allowed besides the result: the handshake and the tool listing. */
export const PROTOCOL_BUDGET_BYTES = 1024 * 1024;

/** Options for {@link createMcpAdapter}. */
export interface McpAdapterOptions extends BwrapSandboxOptions {
  /** Bytes of upstream stdout allowed besides `max_output_bytes`. Default {@link PROTOCOL_BUDGET_BYTES}. */
  readonly protocolBudgetBytes?: number;
}

interface McpSpec {
  readonly command: readonly string[];
  readonly tool: string;
  readonly sha256: string;
  /** The pinned `outputSchema`'s validator, when the pinned definition has one. */
  readonly output: ValidateFunction | undefined;
}

/**
 * A validator for a pinned `outputSchema`, compiled as {@link OUTPUT_SCHEMA_AJV_OPTIONS} says:
 * the twin of the bundle check's `compileOutputSchema` (src/policy/json-schema.ts), kept here
 * because the Execution Layer does not import the policy layer. Throws when it does not compile.
 */
function compileOutputSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw new Error('outputSchema is not a schema object');
  const s = schema as JsonObject;
  return outputSchemaDraft(s) === 'draft-07'
    ? new Ajv(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s)
    : new Ajv2020(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s);
}

function parseSpec(spec: Readonly<Record<string, unknown>>): McpSpec | undefined {
  const { command, tool, definition, definition_sha256: sha256 } = spec;
  if (
    !Array.isArray(command) ||
    command.length === 0 ||
    !command.every((a): a is string => typeof a === 'string') ||
    typeof tool !== 'string' ||
    tool.length === 0 ||
    typeof sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(sha256) ||
    !isObject(definition)
  )
    return undefined;
  try {
    // The pinned definition is the one hashed: its outputSchema is the one the hash vouches for.
    if (!hexDigestEquals(pinMcpDefinition(definition).sha256, sha256)) return undefined;
    const schema = definition['outputSchema'];
    const output = schema === undefined ? undefined : compileOutputSchema(schema);
    return { command: Object.freeze([...command]), tool, sha256, output };
  } catch {
    return undefined;
  }
}

/** One sandboxed upstream process and the MCP transport over its stdio. */
interface Upstream {
  readonly transport: Transport;
  /** The first fault (timeout, abort, output cap, garbage, exit), once there is one. */
  fault(): Deny | undefined;
  /** Resolves with the first fault. */
  readonly faulted: Promise<Deny>;
  /** Records `d` as the fault, unless there is one already, and ends the upstream. */
  fail(d: Deny): void;
  /** Kills the sandbox's process group and waits until it is gone. */
  kill(): Promise<void>;
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

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Why a step was rejected, when it was for something the upstream said; undefined for a lost
 * connection (the exit handler names that). The upstream's own message is not repeated: it is
 * untrusted text and the reason is ledgered.
 */
function rejectionReason(error: unknown): string | undefined {
  if (error instanceof SdkError && error.code === SdkErrorCode.CapabilityNotSupported)
    return 'the upstream does not advertise the tools capability';
  // The SDK's own connection errors (closed, timed out) are SdkErrors: only answers are ProtocolErrors.
  if (!(error instanceof ProtocolError)) return undefined;
  return `the upstream's answer was an error or was rejected by the MCP client (JSON-RPC code ${String(error.code)})`;
}

type Step = <T>(p: () => Promise<T>) => Promise<{ readonly value: T } | Deny>;

/**
 * Launches `command` in the sandbox under `constraints`, connects the SDK client, runs `fn`,
 * and kills the upstream whatever happens. Every step of `fn` races the upstream's first fault.
 */
async function withUpstream<R>(
  command: readonly string[],
  constraints: ExecutionConstraints,
  signal: AbortSignal,
  options: McpAdapterOptions,
  fn: (client: Client, step: Step) => Promise<R | Deny>,
): Promise<R | Deny> {
  const upstream = await launch(command, constraints, signal, options);
  if ('outcome' in upstream) return upstream;
  const step: Step = async (p) => {
    const settled = await Promise.race([
      p().then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      upstream.faulted,
    ]);
    if ('error' in settled) {
      // The first real reason is the one recorded: an answer the upstream gave (a JSON-RPC
      // error, an answer the SDK rejects) is named before the upstream is ended, so its exit is
      // not mistaken for the cause. A lost connection is left to the exit's own report.
      const why = rejectionReason(settled.error);
      if (why !== undefined) upstream.fail(deny('ERR_TOOL_FAILED', why));
      await upstream.kill();
    }
    const fault = upstream.fault();
    if (fault !== undefined) return fault;
    return 'value' in settled
      ? settled
      : deny('ERR_TOOL_FAILED', 'the upstream did not answer as MCP requires');
  };
  // Strict capabilities: a server that does not advertise tools is an error, never an empty
  // list (and never a console message from the SDK, which would reach a stdio relay's stdout).
  const client = new Client(
    { name: 'failclosed', version: '0.1.0' },
    { capabilities: {}, enforceStrictCapabilities: true },
  );
  try {
    const connected = await step(() =>
      client.connect(upstream.transport, { timeout: constraints.timeout_ms }),
    );
    if ('outcome' in connected) return connected;
    return await fn(client, step);
  } finally {
    await upstream.kill();
    await client.close().catch(() => undefined);
  }
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
  return withUpstream(command, constraints, new AbortController().signal, options, async (client, step) => {
    const listed = await step(() => client.listTools(undefined, { timeout: constraints.timeout_ms }));
    if ('outcome' in listed) return listed;
    return listed.value.tools;
  });
}

/**
 * Creates the MCP adapter. Denies with `ERR_ADAPTER_UNAVAILABLE` (malformed spec: the pinned
 * definition missing, not matching its hash, or an `outputSchema` that does not compile),
 * `ERR_PARAMS_INVALID` (parameters not an object), `ERR_SANDBOX_UNAVAILABLE`,
 * `ERR_TOOL_DEFINITION_CHANGED` (the listed definition's hash differs from the pinned one, or
 * the tool is no longer listed: nothing is called), `ERR_TOOL_TIMEOUT`, `ERR_TOOL_OUTPUT_LIMIT`
 * and `ERR_TOOL_FAILED`.
 */
export function createMcpAdapter(options: McpAdapterOptions = {}): ToolAdapter {
  return {
    async run(call) {
      const spec = parseSpec(call.spec);
      if (spec === undefined) return deny('ERR_ADAPTER_UNAVAILABLE', 'MCP spec is malformed');
      const params = call.params;
      if (!isObject(params)) return deny('ERR_PARAMS_INVALID', 'MCP tool arguments must be an object');
      const timeout = call.constraints.timeout_ms;
      return withUpstream(spec.command, call.constraints, call.signal, options, async (client, step) => {
        const listed = await step(() => client.listTools(undefined, { timeout }));
        if ('outcome' in listed) return listed;
        const current = listed.value.tools.filter((t) => t.name === spec.tool);
        if (current.length !== 1)
          return deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream no longer offers ${spec.tool}`);
        let sha256: string;
        try {
          sha256 = pinMcpDefinition(current[0] as unknown as Readonly<Record<string, unknown>>).sha256;
        } catch {
          return deny('ERR_TOOL_DEFINITION_CHANGED', 'the upstream definition is not strict JSON');
        }
        // Checked before anything is called: a changed definition never reaches a call.
        if (!hexDigestEquals(sha256, spec.sha256))
          return deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream changed the definition of ${spec.tool}`);
        const ran = await step(() => client.callTool({ name: spec.tool, arguments: params }, { timeout }));
        if ('outcome' in ran) return ran;
        const r = ran.value as { isError?: unknown; content?: unknown; structuredContent?: unknown };
        if (r.isError === true) return deny('ERR_TOOL_FAILED', 'the upstream tool reported an error');
        // The pinned outputSchema, checked here and not trusted to the SDK client's cache.
        if (spec.output !== undefined) {
          if (r.structuredContent === undefined)
            return deny(
              'ERR_TOOL_FAILED',
              'the upstream returned no structuredContent for its pinned outputSchema',
            );
          if (spec.output(r.structuredContent) !== true)
            return deny(
              'ERR_TOOL_FAILED',
              "the upstream's structuredContent does not match its pinned outputSchema",
            );
        }
        const result: Record<string, JsonValue> = { content: (r.content ?? []) as JsonValue };
        if (isObject(r.structuredContent)) result['structuredContent'] = r.structuredContent as JsonObject;
        return { outcome: 'ok' as const, result };
      });
    },
  };
}
