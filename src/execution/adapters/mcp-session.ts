/**
 * One MCP session with an upstream server, whatever carries it (the sandboxed stdio process of
 * `mcp.ts`, the Streamable HTTP connection of `mcp-http.ts`): the official SDK client over the
 * carrier's transport, every step raced against the carrier's first fault, and the call of a
 * pinned tool — the listing, the comparison of the listed definition with the pinned SHA-256
 * **before** anything is called (`ERR_TOOL_DEFINITION_CHANGED`), the call with the envelope's
 * exact parameters, and the pinned `outputSchema` checked by failclosed itself.
 * docs/adapters.md "MCP tools". (OE-INV-005/013/023, SPEC §6)
 */
import {
  Client,
  ProtocolError,
  ProtocolErrorCode,
  SdkError,
  SdkErrorCode,
} from '@modelcontextprotocol/client';
import type { ClientCapabilities, Transport } from '@modelcontextprotocol/client';
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
import { CLIENT_REQUEST_KINDS } from '../relay.js';
import type { ClientRequestKind, UpstreamNotices } from '../relay.js';
import type { ToolOutput } from './types.js';

/** Bytes an upstream may send besides the result: the handshake and the tool listing. */
export const PROTOCOL_BUDGET_BYTES = 1024 * 1024;

/** The pinned part of an `mcp` spec: the upstream tool, its definition's hash and output check. */
export interface PinnedMcpTool {
  readonly tool: string;
  readonly sha256: string;
  /** The pinned `outputSchema`'s validator, when the pinned definition has one. */
  readonly output: ValidateFunction | undefined;
}

/** One connected carrier of MCP messages to an upstream. */
export interface Upstream {
  readonly transport: Transport;
  /** The first fault (timeout, abort, output cap, garbage, exit, refused destination), once there is one. */
  fault(): Deny | undefined;
  /** Resolves with the first fault. */
  readonly faulted: Promise<Deny>;
  /** Records `d` as the fault, unless there is one already, and ends the upstream. */
  fail(d: Deny): void;
  /** Ends the upstream and waits until it is gone. */
  kill(): Promise<void>;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A validator for a pinned `outputSchema`, compiled as {@link OUTPUT_SCHEMA_AJV_OPTIONS} says:
 * the twin of the bundle check's `compileOutputSchema` (src/policy/json-schema.ts), kept here
 * because the Execution Layer does not import the policy layer. Throws when it does not compile.
 */
function compileOutputSchema(schema: unknown): ValidateFunction {
  if (!isObject(schema)) throw new Error('outputSchema is not a schema object');
  const s = schema as JsonObject;
  return outputSchemaDraft(s) === 'draft-07'
    ? new Ajv(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s)
    : new Ajv2020(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s);
}

/**
 * The pinned tool of an `mcp` spec, or undefined when `tool`, `definition` or
 * `definition_sha256` is malformed, the definition does not hash to the pin, or its
 * `outputSchema` does not compile (the caller denies `ERR_ADAPTER_UNAVAILABLE`).
 */
export function parsePinnedTool(spec: Readonly<Record<string, unknown>>): PinnedMcpTool | undefined {
  const { tool, definition, definition_sha256: sha256 } = spec;
  if (
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
    if (schema === undefined) return { tool, sha256, output: undefined };
    // Compiled once per pinned definition, not per call: the hash just checked names exactly
    // this schema, so the cached validator is the one it would compile.
    let output = compiledOutputs.get(sha256);
    if (output === undefined) {
      output = compileOutputSchema(schema);
      if (compiledOutputs.size >= MAX_COMPILED_OUTPUTS) compiledOutputs.clear();
      compiledOutputs.set(sha256, output);
    }
    return { tool, sha256, output };
  } catch {
    return undefined;
  }
}

/** Output validators by pinned definition hash (bounded: cleared when full). */
const compiledOutputs = new Map<string, ValidateFunction>();
const MAX_COMPILED_OUTPUTS = 1024;

/**
 * Why a step was rejected, when it was for something the upstream said; undefined for a lost
 * connection (the carrier names that). The upstream's own message is not repeated: it is
 * untrusted text and the reason is ledgered.
 */
function rejectionReason(error: unknown): string | undefined {
  if (error instanceof SdkError && error.code === SdkErrorCode.CapabilityNotSupported)
    return 'the upstream does not advertise the capability (tools, prompts or resources) asked of it';
  // The SDK's own connection errors (closed, timed out) are SdkErrors: only answers are ProtocolErrors.
  if (!(error instanceof ProtocolError)) return undefined;
  return `the upstream's answer was an error or was rejected by the MCP client (JSON-RPC code ${String(error.code)})`;
}

/** Runs one step of a session; its value, or the first fault. */
export type Step = <T>(p: () => Promise<T>) => Promise<{ readonly value: T } | Deny>;

/**
 * Connects the SDK client over `upstream`, runs `fn`, and ends the upstream whatever happens.
 * Every step of `fn` races the upstream's first fault.
 */
export async function withUpstream<R>(
  upstream: Upstream,
  timeoutMs: number,
  fn: (client: Client, step: Step) => Promise<R | Deny>,
  capabilities: ClientCapabilities = {},
): Promise<R | Deny> {
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
      // error, an answer the SDK rejects) is named before the upstream is ended, so its end is
      // not mistaken for the cause. A lost connection is left to the carrier's own report.
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
    { capabilities, enforceStrictCapabilities: true },
  );
  try {
    const connected = await step(() => client.connect(upstream.transport, { timeout: timeoutMs }));
    if ('outcome' in connected) return connected;
    return await fn(client, step);
  } finally {
    await upstream.kill();
    await client.close().catch(() => undefined);
  }
}

/** The tools an upstream lists, each as listed (for `failclosed policy pin-mcp`). */
export async function listTools(
  upstream: Upstream,
  timeoutMs: number,
): Promise<readonly Readonly<Record<string, unknown>>[] | Deny> {
  return withUpstream(upstream, timeoutMs, async (client, step) => {
    const listed = await step(() => client.listTools(undefined, { timeout: timeoutMs }));
    if ('outcome' in listed) return listed;
    return listed.value.tools;
  });
}

/** The progress token a call gives its upstream (one call per session). */
const PROGRESS_TOKEN = 'failclosed-call';

/** What a call hands on besides its parameters: where the upstream's notices go, and its abort. */
export interface CallChannels {
  /** The executor's guard of the caller's relay; absent: the upstream's notices are dropped. */
  readonly notices?: UpstreamNotices;
  /** The call's abort: the MCP client then tells the upstream `notifications/cancelled`. */
  readonly signal?: AbortSignal;
  /**
   * What the upstream may ask of the caller's client (the entry's `client_requests`): declared to
   * the upstream as capabilities only when the caller's client can be asked (`notices.canAsk`).
   */
  readonly asks?: readonly ClientRequestKind[];
}

/**
 * An entry's `client_requests` (absent: none), or undefined when malformed (the caller denies
 * `ERR_ADAPTER_UNAVAILABLE`): each kind at most once, and only a tool's entry has any.
 */
export function parseClientRequests(
  spec: Readonly<Record<string, unknown>>,
): readonly ClientRequestKind[] | undefined {
  const v = spec['client_requests'];
  if (v === undefined) return [];
  if (
    !Array.isArray(v) ||
    spec['tool'] === undefined ||
    new Set(v).size !== v.length ||
    !v.every((k) => (CLIENT_REQUEST_KINDS as readonly unknown[]).includes(k))
  )
    return undefined;
  return Object.freeze([...(v as ClientRequestKind[])]);
}

/** The client capabilities declared to an upstream for `kinds` (no sampling tools, form elicitation only). */
export function capabilitiesFor(kinds: readonly ClientRequestKind[]): ClientCapabilities {
  return {
    ...(kinds.includes('sampling') ? { sampling: {} } : {}),
    ...(kinds.includes('elicitation') ? { elicitation: { form: {} } } : {}),
  };
}

/**
 * Calls the pinned tool over `upstream` with `params`: lists the tools, compares the listed
 * definition with the pin (`ERR_TOOL_DEFINITION_CHANGED` when it differs or the tool is gone:
 * nothing is called), calls it, and checks the result (a `structuredContent` outside the pinned
 * `outputSchema` is `ERR_TOOL_FAILED`, output withheld; an `isError` answer is relayed as
 * `{ content, isError: true }`, its `structuredContent` dropped). While the call
 * runs, the upstream's log messages, and its progress when the caller asked for progress (only
 * then is the upstream given a progress token), go to `channels.notices`.
 * Result: `{ content, structuredContent? }` of the upstream's `CallToolResult`, or
 * `{ content, isError: true }`.
 */
export async function callPinnedTool(
  upstream: Upstream,
  pinned: PinnedMcpTool,
  params: Readonly<Record<string, unknown>>,
  timeoutMs: number,
  channels: CallChannels = {},
): Promise<ToolOutput> {
  const timeout = timeoutMs;
  const { notices, signal } = channels;
  const asks = notices?.canAsk === true ? (channels.asks ?? []) : [];
  return withUpstream(
    upstream,
    timeout,
    async (client, step) => {
      const listed = await step(() => client.listTools(undefined, { timeout }));
      if ('outcome' in listed) return listed;
      const current = listed.value.tools.filter((t) => t.name === pinned.tool);
      if (current.length !== 1)
        return deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream no longer offers ${pinned.tool}`);
      let sha256: string;
      try {
        sha256 = pinMcpDefinition(current[0] as unknown as Readonly<Record<string, unknown>>).sha256;
      } catch {
        return deny('ERR_TOOL_DEFINITION_CHANGED', 'the upstream definition is not strict JSON');
      }
      // Checked before anything is called: a changed definition never reaches a call.
      if (!hexDigestEquals(sha256, pinned.sha256))
        return deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream changed the definition of ${pinned.tool}`);
      // Only a server that passed its pin is heard: a changed one's notices never reach the client.
      if (notices !== undefined) {
        client.setNotificationHandler('notifications/message', (n) => notices.onLog(n.params));
        // Taken here rather than through the SDK's `onprogress`, which drops a progress notification
        // read in the same chunk as the answer (the answer removes its token before the deferred
        // dispatch runs). Only the token this call gave is accepted.
        client.setNotificationHandler('notifications/progress', (n) => {
          if (notices.progress && n.params.progressToken === PROGRESS_TOKEN) notices.onProgress(n.params);
        });
        // What the upstream asks of the caller's client, when its entry lets it: screened and
        // relayed by the guard, its answer checked; a refusal is the upstream's error to handle.
        if (asks.includes('sampling'))
          client.setRequestHandler('sampling/createMessage', async (r, ctx) =>
            askedOrError(notices.onAsk('sampling', r.params, ctx.mcpReq.signal)),
          );
        if (asks.includes('elicitation'))
          client.setRequestHandler('elicitation/create', async (r, ctx) =>
            askedOrError(notices.onAsk('elicitation', r.params, ctx.mcpReq.signal)),
          );
      }
      const ran = await step(() =>
        client.callTool(
          {
            name: pinned.tool,
            arguments: params,
            ...(notices?.progress === true ? { _meta: { progressToken: PROGRESS_TOKEN } } : {}),
          },
          { timeout, ...(signal === undefined ? {} : { signal }) },
        ),
      );
      if ('outcome' in ran) return ran;
      const r = ran.value as { isError?: unknown; content?: unknown; structuredContent?: unknown };
      // A tool-level error is the upstream's answer, for the client to see (MCP "Error Handling"):
      // relayed as it is, redacted like any result; the pinned outputSchema is for results only.
      if (r.isError === true)
        return { outcome: 'ok' as const, result: { content: (r.content ?? []) as JsonValue, isError: true } };
      // The pinned outputSchema, checked here and not trusted to the SDK client's cache (which the
      // upstream can clear with notifications/tools/list_changed).
      if (pinned.output !== undefined) {
        if (r.structuredContent === undefined)
          return deny(
            'ERR_TOOL_FAILED',
            'the upstream returned no structuredContent for its pinned outputSchema',
          );
        if (pinned.output(r.structuredContent) !== true)
          return deny(
            'ERR_TOOL_FAILED',
            "the upstream's structuredContent does not match its pinned outputSchema",
          );
      }
      const result: Record<string, JsonValue> = { content: (r.content ?? []) as JsonValue };
      if (isObject(r.structuredContent)) result['structuredContent'] = r.structuredContent as JsonObject;
      return { outcome: 'ok' as const, result };
    },
    capabilitiesFor(asks),
  );
}

/**
 * The checked answer of the caller's client, for the SDK to send back; a refusal becomes a
 * JSON-RPC error with a fixed message (the client's own text is not passed on).
 */
async function askedOrError<T>(answer: Promise<T>): Promise<never> {
  try {
    return (await answer) as never;
  } catch (e) {
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      `failclosed did not relay the request: ${e instanceof Error ? e.message : 'refused'}`,
    );
  }
}
