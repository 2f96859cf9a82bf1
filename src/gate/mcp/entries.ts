/**
 * MCP `prompts/*` and `resources/*` of the active bundle's pinned upstream prompts and resources
 * (docs/mcp.md "Prompts and resources"). `prompts/list` and `resources/list` show the pinned
 * entries this principal could be allowed to use (the same partial evaluation as `tools/list`);
 * every `prompts/get` and `resources/read` is a governed call through the Gate's shared pipeline,
 * exactly as a `tools/call` (SPEC §2, FC-INV-3, FC-INV-6): ledgered acceptance and decision under
 * the entry's own Cedar action, envelope, Execution Layer (the upstream launched or reached per
 * call, the definition checked against its pin before anything is got or read), receipt, redacted
 * and tainting result (OE-INV-013). Deny unless allowed: a name or URI the bundle does not pin is
 * refused `ERR_TOOL_UNKNOWN` and recorded; what policy does not allow is denied by the decision.
 */
import { ProtocolError } from '@modelcontextprotocol/server';
import { MAX_TEMPLATE_URI_LENGTH } from '../../kernel/index.js';
import type { JsonObject } from '../../kernel/index.js';
import type { Server } from '@modelcontextprotocol/server';
import type { Gate, ToolListing } from '../gate.js';
import type { Principal } from '../principal.js';
import type { CallResponse } from '../types.js';
import { RETRY_META_KEY, callMetaOf, refusedCall, retryOf, sessionOf } from './meta.js';

/**
 * JSON-RPC error code of a `prompts/get` or `resources/read` that did not run: denied, pending
 * approval, or refused. `data` carries `outcome`, the denial `code`, `reason`, `request_id` and,
 * once decided, `decision_id` (and, pending, where to approve and how to retry).
 */
export const NOT_RUN_ERROR = -32001;

function notRun(a: CallResponse): ProtocolError {
  if (a.outcome === 'pending') {
    const approve = `/v1/approvals/${encodeURIComponent(a.decision_id)}`;
    return new ProtocolError(NOT_RUN_ERROR, `${a.code}: waits for approval (decision ${a.decision_id})`, {
      outcome: 'pending',
      code: a.code,
      reason: a.reason,
      request_id: a.request_id,
      decision_id: a.decision_id,
      approve: `POST ${approve}/approve`,
      show: `GET ${approve}`,
      retry: { _meta: { [RETRY_META_KEY]: a.request_id } },
    });
  }
  const d = a as Extract<CallResponse, { outcome: 'deny' }>;
  return new ProtocolError(NOT_RUN_ERROR, `${d.code}: ${d.reason}`, {
    outcome: 'deny',
    code: d.code,
    reason: d.reason,
    request_id: d.request_id ?? null,
    ...(d.decision_id === undefined ? {} : { decision_id: d.decision_id }),
  });
}

function refused(code: 'ERR_TOOL_UNKNOWN' | 'ERR_REQUEST_MALFORMED', reason: string): ProtocolError {
  return new ProtocolError(NOT_RUN_ERROR, `${code}: ${reason}`, {
    outcome: 'deny',
    code,
    reason,
    request_id: null,
  });
}

const str = (v: unknown): v is string => typeof v === 'string';

/** Registers the handlers on a principal's server (tools.ts). */
export function registerPromptsAndResources(
  server: Server,
  gate: Gate,
  principal: Principal,
  traced: { readonly traceparent: string } | undefined,
): void {
  const listed = async (kind: 'prompt' | 'resource' | 'template'): Promise<readonly ToolListing[]> =>
    (await gate.toolsFor(principal)).filter((t) => t.mcp?.kind === kind);

  /** Runs the entry as a governed call; its executed result, or the JSON-RPC error of why not. */
  const governed = async (
    entry: ToolListing,
    params: JsonObject,
    meta: unknown,
    what: unknown,
  ): Promise<{ result: Record<string, unknown>; meta: Record<string, Record<string, unknown>> }> => {
    const session = sessionOf(meta);
    const retry = retryOf(meta);
    if (session === undefined || retry === undefined) {
      await refusedCall(gate, 'ERR_REQUEST_MALFORMED', 'malformed _meta session or retry', what);
      throw refused('ERR_REQUEST_MALFORMED', '_meta session and retry must be well-formed');
    }
    const answer = (
      await gate.callAs(
        principal,
        { tool: entry.name, params, session, ...(retry === null ? {} : { retryOf: retry }) },
        traced,
      )
    ).body;
    if (answer.outcome !== 'executed') throw notRun(answer);
    const result = answer.result;
    // The adapter answers an object for a prompt, a resource or a completion; anything else is relayed as nothing.
    const body = typeof result === 'object' && result !== null && !Array.isArray(result) ? result : {};
    return { result: body as Record<string, unknown>, meta: callMetaOf(answer) };
  };

  server.setRequestHandler('prompts/list', async () => ({
    prompts: (await listed('prompt')).map((t) => {
      const d = t.mcp?.definition ?? {};
      return {
        name: t.name,
        ...(str(d['title']) ? { title: d['title'] } : {}),
        description: t.description,
        ...(Array.isArray(d['arguments'])
          ? { arguments: d['arguments'] as { name: string; description?: string; required?: boolean }[] }
          : {}),
      };
    }),
  }));

  server.setRequestHandler('prompts/get', async (request) => {
    const name = request.params.name;
    const entry = (await gate.mcpEntries()).find((e) => e.mcp?.kind === 'prompt' && e.name === name);
    if (entry === undefined) {
      await refusedCall(gate, 'ERR_TOOL_UNKNOWN', 'no such pinned prompt', request.params);
      throw refused('ERR_TOOL_UNKNOWN', 'no such prompt');
    }
    const args = request.params.arguments ?? {};
    const { result, meta } = await governed(entry, { ...args }, request.params._meta, request.params);
    return {
      ...(str(result['description']) ? { description: result['description'] } : {}),
      messages: (Array.isArray(result['messages']) ? result['messages'] : []) as never,
      _meta: meta,
    };
  });

  server.setRequestHandler('resources/list', async () => ({
    resources: (await listed('resource')).map((t) => {
      const d = t.mcp?.definition ?? {};
      return {
        uri: t.mcp?.upstream ?? '',
        name: str(d['name']) ? d['name'] : t.name,
        ...(str(d['title']) ? { title: d['title'] } : {}),
        description: t.description,
        ...(str(d['mimeType']) ? { mimeType: d['mimeType'] } : {}),
      };
    }),
  }));

  server.setRequestHandler('resources/templates/list', async () => ({
    resourceTemplates: (await listed('template')).map((t) => {
      const d = t.mcp?.definition ?? {};
      return {
        uriTemplate: t.mcp?.upstream ?? '',
        name: str(d['name']) ? d['name'] : t.name,
        ...(str(d['title']) ? { title: d['title'] } : {}),
        description: t.description,
        ...(str(d['mimeType']) ? { mimeType: d['mimeType'] } : {}),
      };
    }),
  }));

  server.setRequestHandler('resources/read', async (request) => {
    const uri = request.params.uri;
    const entries = await gate.mcpEntries();
    // A pinned resource by its URI; else the one pinned template the URI is an expansion of. A
    // URI two templates expand to is refused: the Gate never chooses which policy speaks.
    const exact = entries.find((e) => e.mcp?.kind === 'resource' && e.mcp.upstream === uri);
    // Matched only within the bound (the patterns are linear, and the bound keeps them cheap).
    const expanded =
      uri.length > MAX_TEMPLATE_URI_LENGTH
        ? []
        : entries.filter((e) => e.mcp?.kind === 'template' && e.mcp.pattern?.test(uri) === true);
    const entry = exact ?? (expanded.length === 1 ? expanded[0] : undefined);
    if (entry === undefined) {
      const reason =
        expanded.length > 1
          ? 'the URI is an expansion of several pinned templates'
          : 'no such pinned resource';
      await refusedCall(gate, 'ERR_TOOL_UNKNOWN', reason, request.params);
      throw refused('ERR_TOOL_UNKNOWN', expanded.length > 1 ? reason : 'no such resource');
    }
    const { result, meta } = await governed(entry, { uri }, request.params._meta, request.params);
    return {
      contents: (Array.isArray(result['contents']) ? result['contents'] : []) as never,
      _meta: meta,
    };
  });

  // The completion entry of a pinned prompt (by its bundle name, as prompts/list shows it) or of
  // a pinned template (by its URI template, as resources/templates/list shows it): `NAME.complete`.
  server.setRequestHandler('completion/complete', async (request) => {
    const { ref, argument, context } = request.params;
    const entries = await gate.mcpEntries();
    const target =
      ref.type === 'ref/prompt'
        ? entries.find((e) => e.mcp?.kind === 'prompt' && e.name === ref.name)
        : entries.find((e) => e.mcp?.kind === 'template' && e.mcp.upstream === ref.uri);
    const entry =
      target === undefined
        ? undefined
        : entries.find(
            (e) =>
              e.mcp?.kind === 'completion' &&
              e.name === `${target.name}.complete` &&
              e.mcp.upstream === target.mcp?.upstream,
          );
    if (entry === undefined) {
      await refusedCall(gate, 'ERR_TOOL_UNKNOWN', 'no such pinned completion', request.params);
      throw refused('ERR_TOOL_UNKNOWN', 'no such completion');
    }
    const params = {
      argument: argument.name,
      value: argument.value,
      ...(context?.arguments === undefined ? {} : { context: { ...context.arguments } }),
    };
    const { result, meta } = await governed(entry, params, request.params._meta, request.params);
    const c = result['completion'];
    const completion = typeof c === 'object' && c !== null ? (c as Record<string, unknown>) : {};
    return {
      completion: {
        values: (Array.isArray(completion['values']) ? completion['values'] : []) as string[],
        ...(typeof completion['total'] === 'number' ? { total: completion['total'] } : {}),
        ...(typeof completion['hasMore'] === 'boolean' ? { hasMore: completion['hasMore'] } : {}),
      },
      _meta: meta,
    };
  });
}
