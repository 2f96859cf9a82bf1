/**
 * The MCP server one authenticated principal talks to (docs/mcp.md): `tools/list` shows the
 * active bundle's tools this principal could be allowed to call, and every `tools/call` is a
 * governed call through the Gate's shared pipeline (SPEC §2, FC-INV-3, FC-INV-6). Pinned upstream
 * prompts, resources and resource templates are listed, got and read the same way (entries.ts).
 * Nothing else is offered: resource subscriptions and `completion/complete` are refused with a
 * denial code by the endpoint before they reach this server, any other method answers a
 * JSON-RPC error (-32601).
 */
// The low-level Server: tools come from the active policy bundle at request time with their JSON
// Schemas, and arguments are validated by the Control Plane (a ledgered deny), not by the SDK.
import { Server } from '@modelcontextprotocol/server';
import type { CallToolResult } from '@modelcontextprotocol/server';
import { canonicalize, deny, parseJson, sha256Hex } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import type { Gate } from '../gate.js';
import type { Principal } from '../principal.js';
import { MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH } from '../request.js';
import type { CallResponse } from '../types.js';
import { registerPromptsAndResources } from './entries.js';
import { RETRY_META_KEY, callMetaOf, refusedCall, retryOf, sessionOf } from './meta.js';

export { CALL_META_KEY, RETRY_META_KEY, SESSION_META_KEY } from './meta.js';

/** Server name and version announced in `initialize`. */
export const SERVER_INFO = Object.freeze({ name: 'failclosed', version: '0.1.0' });

function text(value: JsonValue): string {
  return JSON.stringify(value);
}

/**
 * Turns the Gate's answer into a tool result: executed → the redacted result as JSON text (and
 * as `structuredContent` when it is an object); deny → `isError` with the denial code and
 * request id; pending → `isError` with the decision id and where to approve it.
 */
export function toolResultOf(a: CallResponse): CallToolResult {
  const meta = callMetaOf(a);
  if (a.outcome === 'executed') {
    const structured =
      typeof a.result === 'object' && a.result !== null && !Array.isArray(a.result)
        ? { structuredContent: a.result as Record<string, unknown> }
        : {};
    return { content: [{ type: 'text', text: text(a.result) }], ...structured, _meta: meta };
  }
  if (a.outcome === 'queued') {
    // The MCP ingress never asks for a background call; a queued answer is reported as such.
    const body = { outcome: 'queued', request_id: a.request_id, decision_id: a.decision_id };
    return {
      isError: true,
      content: [{ type: 'text', text: `queued: request ${a.request_id}` }],
      structuredContent: body,
      _meta: meta,
    };
  }
  if (a.outcome === 'pending') {
    const approve = `/v1/approvals/${encodeURIComponent(a.decision_id)}`;
    const body = {
      outcome: 'pending',
      code: a.code,
      reason: a.reason,
      request_id: a.request_id,
      decision_id: a.decision_id,
      approve: `POST ${approve}/approve`,
      show: `GET ${approve}`,
      retry: { _meta: { [RETRY_META_KEY]: a.request_id } },
    };
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: `${a.code}: the call waits for approval (decision ${a.decision_id}, request ${a.request_id}); approvers: failclosed approvals show ${a.decision_id}; once approved, call again with the same arguments and _meta {"${RETRY_META_KEY}": "${a.request_id}"}`,
        },
      ],
      structuredContent: body,
      _meta: meta,
    };
  }
  const body = {
    outcome: 'deny',
    code: a.code,
    reason: a.reason,
    request_id: a.request_id,
    ...(a.decision_id === undefined ? {} : { decision_id: a.decision_id }),
  };
  return {
    isError: true,
    content: [{ type: 'text', text: `${a.code}: ${a.reason} (request ${a.request_id ?? 'none'})` }],
    structuredContent: body,
    _meta: meta,
  };
}

/** Parses tool arguments once at the edge into a JSON object (strict JSON, limits); undefined when not. */
function argumentsOf(v: unknown): JsonObject | undefined {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  try {
    const bytes = Buffer.from(canonicalize(v as JsonValue), 'utf8');
    const parsed = parseJson(bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: MAX_REQUEST_DEPTH });
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as JsonObject)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Options of a principal's server. */
export interface PrincipalServerOptions {
  /**
   * How long an escalated `tools/call` that carries a `progressToken` may wait for its approval
   * (ms; the Control Plane caps it further). 0: answer pending at once.
   */
  readonly approvalWaitMs?: number;
  /** Interval of `notifications/progress` while a call waits (ms). Default {@link PROGRESS_EVERY_MS}. */
  readonly progressEveryMs?: number;
  /** The HTTP request's W3C `traceparent` header, linked from the call's trace (never decides anything). */
  readonly traceparent?: string;
}

/** Default interval of progress notifications while a call waits for its approval (ms). */
export const PROGRESS_EVERY_MS = 5_000;

/** A progress token as MCP defines it: a string or an integer (undefined: none or malformed). */
function progressTokenOf(meta: unknown): string | number | undefined {
  if (typeof meta !== 'object' || meta === null) return undefined;
  const t = (meta as Record<string, unknown>)['progressToken'];
  if (typeof t === 'string' && t.length > 0 && t.length <= 256) return t;
  return typeof t === 'number' && Number.isSafeInteger(t) ? t : undefined;
}

/**
 * A fresh MCP server for one principal (one HTTP request, or one stdio connection). A call with a
 * `progressToken` may wait for its approval up to `approvalWaitMs`, the client told meanwhile by
 * `notifications/progress`; nothing the client sends (an elicitation answer, a notification, a
 * progress of its own) counts as an approval: only signed approvals through the approval API do
 * (docs/approvals.md, OE-INV-002, OE-INV-019).
 */
export function createPrincipalServer(
  gate: Gate,
  principal: Principal,
  options: PrincipalServerOptions = {},
): Server {
  const waitMs = options.approvalWaitMs ?? 0;
  const every = options.progressEveryMs ?? PROGRESS_EVERY_MS;
  const traced = options.traceparent === undefined ? undefined : { traceparent: options.traceparent };
  const server = new Server(SERVER_INFO, { capabilities: { tools: {}, prompts: {}, resources: {} } });
  registerPromptsAndResources(server, gate, principal, traced);
  server.setRequestHandler('tools/list', async () => {
    const tools = (await gate.toolsFor(principal)).filter((t) => t.mcp === undefined);
    return {
      tools: tools.map((t) => ({
        name: t.name,
        description: t.description,
        inputSchema: { ...t.inputSchema, type: 'object' as const },
      })),
    };
  });
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const params = argumentsOf(request.params.arguments);
    const session = sessionOf(request.params._meta);
    const retry = retryOf(request.params._meta);
    // A prompt's or resource's entry is reached by prompts/get or resources/read only.
    if ((await gate.mcpEntries()).some((e) => e.name === request.params.name)) {
      await refusedCall(gate, 'ERR_TOOL_UNKNOWN', 'a prompt or resource is not a tool', request.params);
      return {
        isError: true,
        content: [{ type: 'text', text: 'ERR_TOOL_UNKNOWN: a prompt or resource is not a tool' }],
        structuredContent: { outcome: 'deny', code: 'ERR_TOOL_UNKNOWN', request_id: null },
      };
    }
    if (params === undefined || session === undefined || retry === undefined) {
      // Recorded like any refusal (hash of what was received only), then answered.
      await gate.refuse(
        deny('ERR_REQUEST_MALFORMED', 'malformed tools/call arguments or _meta'),
        sha256Hex(Buffer.from(JSON.stringify(request.params ?? null), 'utf8')),
      );
      return {
        isError: true,
        content: [
          {
            type: 'text',
            text: 'ERR_REQUEST_MALFORMED: arguments must be a JSON object; _meta session and retry well-formed',
          },
        ],
        structuredContent: { outcome: 'deny', code: 'ERR_REQUEST_MALFORMED', request_id: null },
      };
    }
    const call = {
      tool: request.params.name,
      params,
      session,
      ...(retry === null ? {} : { retryOf: retry }),
    };
    const token = progressTokenOf(request.params._meta);
    if (waitMs <= 0 || token === undefined)
      return toolResultOf((await gate.callAs(principal, call, traced)).body);
    // Progress while the call is decided and, when escalated, waits for its approvers. The
    // notifications carry no decision: a failed send changes nothing about the call.
    let progress = 0;
    const tell = (message: string): void => {
      progress += 1;
      void ctx.mcpReq
        .notify({ method: 'notifications/progress', params: { progressToken: token, progress, message } })
        .catch(() => undefined);
    };
    tell('the call is being decided; an escalated call waits for its approvers');
    const timer = setInterval(() => tell('waiting for approval'), every);
    try {
      // Cancelled, or its client gone (the SDK aborts the handler's signal): the wait ends and the
      // call does not run, even if approved meanwhile.
      return toolResultOf(
        (await gate.callAs(principal, call, { ...traced, waitMs, signal: ctx.mcpReq.signal })).body,
      );
    } finally {
      clearInterval(timer);
    }
  });
  return server;
}
