/**
 * The MCP server one authenticated principal talks to (docs/mcp.md): `tools/list` shows the
 * active bundle's tools this principal could be allowed to call, and every `tools/call` is a
 * governed call through the Gate's shared pipeline (SPEC §2, FC-INV-3, FC-INV-6). Pinned upstream
 * prompts, resources and resource templates are listed, got and read the same way, and their
 * arguments completed (`completion/complete`) by their pinned completion entries (entries.ts).
 * Nothing else is offered: resource subscriptions are refused with a denial code by the endpoint
 * before they reach this server, any other method answers a JSON-RPC error (-32601).
 */
// The low-level Server: tools come from the active policy bundle at request time with their JSON
// Schemas, and arguments are validated by the Control Plane (a ledgered deny), not by the SDK.
import { randomUUID } from 'node:crypto';
import {
  CLIENT_CAPABILITIES_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  Server,
  inputRequired,
  isSpecType,
} from '@modelcontextprotocol/server';
import type {
  CallToolResult,
  ContentBlock,
  InputRequests,
  ServerContext,
} from '@modelcontextprotocol/server';
import { canonicalize, deny, parseJson, sha256Hex } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import { AskNotSent } from '../../execution/index.js';
import type { CallRelay, RelayedAsk, RelayedNotice } from '../../execution/index.js';
import type { Gate } from '../gate.js';
import type { Principal } from '../principal.js';
import { MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH } from '../request.js';
import type { CallResponse } from '../types.js';
import { registerPromptsAndResources } from './entries.js';
import { RETRY_META_KEY, callMetaOf, refusedCall, retryOf, sessionOf } from './meta.js';
import { inputRequestOf } from './rounds.js';
import type { InputRounds, Round, RoundIo } from './rounds.js';

export { CALL_META_KEY, RETRY_META_KEY, SESSION_META_KEY } from './meta.js';

/** Server name and version announced in `initialize`. */
export const SERVER_INFO = Object.freeze({ name: 'failclosed', version: '0.1.0' });

function text(value: JsonValue): string {
  return JSON.stringify(value);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The executed result as the MCP tool result it is, when it is one: an object with a `content`
 * array of valid MCP content blocks (text, image, audio, resource link, embedded resource), an
 * optional `structuredContent` object, an optional `isError: true`, and nothing else; what an
 * upstream MCP tool answers (after
 * redaction). Undefined otherwise, a block that redaction made invalid (an altered base64 `data`
 * or `blob`) included: such a result is answered as JSON text, never as a block it is not.
 */
export function upstreamResultOf(
  result: JsonValue,
): { content: ContentBlock[]; structuredContent?: Record<string, unknown>; isError?: true } | undefined {
  if (!isPlainObject(result)) return undefined;
  const fields = ['content', 'structuredContent', 'isError'];
  if (!Object.keys(result).every((k) => fields.includes(k))) return undefined;
  const { content, structuredContent, isError } = result;
  if (!Array.isArray(content) || !content.every((b) => isSpecType.ContentBlock(b))) return undefined;
  if (structuredContent !== undefined && !isPlainObject(structuredContent)) return undefined;
  if (isError !== undefined && isError !== true) return undefined;
  return {
    content,
    ...(structuredContent === undefined ? {} : { structuredContent }),
    ...(isError === true ? { isError } : {}),
  };
}

/**
 * Turns the Gate's answer into a tool result: executed → an MCP tool result (an upstream MCP
 * tool's) as it is, its `content` blocks, `structuredContent` and `isError` (`upstreamResultOf`); any other
 * result as JSON text (and as `structuredContent` when it is an object); deny → `isError` with
 * the denial code and request id; pending → `isError` with the decision id and where to approve
 * it. Either way the executed answer's fields are exactly the result whose hash the receipt holds.
 */
export function toolResultOf(a: CallResponse): CallToolResult {
  const meta = callMetaOf(a);
  if (a.outcome === 'executed') {
    const relayed = upstreamResultOf(a.result);
    if (relayed !== undefined) return { ...relayed, _meta: meta };
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
  /**
   * Where the client's answers to requests relayed to it arrive (the HTTP endpoint's registry,
   * docs/mcp.md "Sampling and elicitation"). Absent: an upstream can ask the client nothing.
   */
  readonly answers?: ClientAnswers;
  /**
   * Where a 2026-07-28 call that asks its client for input is held between rounds (the HTTP
   * endpoint's registry, rounds.ts). Absent: such a client can be asked nothing.
   */
  readonly rounds?: InputRounds;
}

/**
 * The answers a principal's client posts to requests the gateway sent it (a JSON-RPC response
 * is a POST of its own, served statelessly by another server instance).
 */
export interface ClientAnswers {
  /**
   * Resolves with the JSON-RPC response `principal`'s client posts for the request `id`; rejects
   * when `signal` aborts. Only that principal's answer is taken.
   */
  expect(principal: Principal, id: string, signal: AbortSignal): Promise<JsonObject>;
}

/** How long a call's answer waits at most for its relayed notifications to be sent (ms). */
const FLUSH_MAX_MS = 2_000;

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
 * The relay of one `tools/call` (docs/mcp.md "While a call runs"): an upstream's progress is
 * sent as `notifications/progress` under the client's own token, and only with one and only
 * rising (MCP requires it to increase; `sent` is shared with the approval wait's progress); its
 * log messages as `notifications/message` through the SDK's `log`, which applies the client's
 * level (a 2026-07-28 request's log-level `_meta`; a 2025 client's `logging/setLevel` reaches
 * another, stateless server instance, so every level is sent). Both on the POST's SSE stream,
 * related to the call, and all sent before the call's answer (`flushed`). The request's abort
 * (its stream closed, or `notifications/cancelled`) cancels the call. A failed send changes
 * nothing about the call.
 */
function relayFor(
  ctx: ServerContext,
  token: string | number | undefined,
  sent: { progress: number },
  ask?: CallRelay['ask'],
): { readonly relay: CallRelay; readonly flushed: () => Promise<void> } {
  const sending = new Set<Promise<void>>();
  const track = (p: Promise<void>): void => {
    const settled = p.catch(() => undefined);
    sending.add(settled);
    void settled.then(() => sending.delete(settled));
  };
  const relay: CallRelay = {
    progress: token !== undefined,
    cancelled: ctx.mcpReq.signal,
    ...(ask === undefined ? {} : { ask }),
    notify(n: RelayedNotice) {
      if (n.kind === 'log') {
        track(ctx.mcpReq.log(n.level, n.data, n.logger));
        return;
      }
      if (token === undefined || !(n.progress > sent.progress)) return;
      sent.progress = n.progress;
      track(
        ctx.mcpReq.notify({
          method: 'notifications/progress',
          params: {
            progressToken: token,
            progress: n.progress,
            ...(n.total === undefined ? {} : { total: n.total }),
            ...(n.message === undefined ? {} : { message: n.message }),
          },
        }),
      );
    },
  };
  return {
    relay,
    // Bounded: a send that never settles (a stream nobody reads) must not hold the answer.
    flushed: async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([...sending]),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, FLUSH_MAX_MS);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/**
 * How an upstream's request reaches the client of one `tools/call` (docs/mcp.md "Sampling and
 * elicitation"): sent on the call's own response stream, related to it, under an id of the
 * gateway's (unguessable, unique across server instances), and answered by a POST the endpoint
 * hands to `answers`. Only a 2025-revision exchange has such a stream: 2026-07-28 has no
 * server-to-client request, so there the client cannot be asked (undefined), nor without `answers`.
 */
function askerFor(
  server: Server,
  ctx: ServerContext,
  principal: Principal,
  answers: ClientAnswers | undefined,
): CallRelay['ask'] {
  const envelope = ctx.mcpReq.envelope as Readonly<Record<string, unknown>> | undefined;
  if (answers === undefined || envelope?.[PROTOCOL_VERSION_META_KEY] !== undefined) return undefined;
  return async (ask: RelayedAsk, ended: AbortSignal) => {
    const transport = server.transport;
    if (transport === undefined) throw new AskNotSent('the exchange has ended');
    const id = `failclosed-${randomUUID()}`;
    const unsent = new AbortController();
    const answer = answers.expect(principal, id, AbortSignal.any([ended, ctx.mcpReq.signal, unsent.signal]));
    answer.catch(() => undefined);
    try {
      await transport.send(
        { jsonrpc: '2.0', id, method: ask.method, params: ask.params },
        { relatedRequestId: ctx.mcpReq.id },
      );
    } catch (e) {
      // Nothing is left waiting for an answer to a request that was never sent.
      unsent.abort();
      throw new AskNotSent(e instanceof Error ? e.message : 'the request could not be sent');
    }
    const message = await answer;
    if (!('result' in message)) throw new Error('the client answered an error');
    return message['result'];
  };
}

/** Whose a relayed request or a held call is: the principal's tenant and identity. */
export const ownerOf = (p: Principal): string => JSON.stringify([p.tenant, p.identity]);

/** The envelope of a 2026-07-28 request (absent for the 2025 revisions). */
function envelopeOf(ctx: ServerContext): Readonly<Record<string, unknown>> | undefined {
  return ctx.mcpReq.envelope;
}

/** What a 2026-07-28 client says it answers, from its request's capabilities. */
function askableBy(envelope: Readonly<Record<string, unknown>>): ReadonlySet<string> {
  const caps = envelope[CLIENT_CAPABILITIES_META_KEY];
  const c = typeof caps === 'object' && caps !== null ? (caps as Record<string, unknown>) : {};
  const out = new Set<string>();
  if (typeof c['sampling'] === 'object' && c['sampling'] !== null) out.add('sampling/createMessage');
  // A bare `elicitation: {}` is form elicitation (the rule before modes).
  const e = c['elicitation'];
  if (typeof e === 'object' && e !== null) {
    const modes = e as Record<string, unknown>;
    if (modes['form'] !== undefined || modes['url'] === undefined) out.add('elicitation/create');
  }
  return out;
}

/** A round's answer: the client's requests as `input_required`, or the call's result. */
function answerOf(round: Round): CallToolResult {
  if (round.kind === 'done') return round.result;
  const inputRequests = Object.fromEntries(
    Object.entries(round.requests).map(([key, ask]) => [key, inputRequestOf(ask)]),
  );
  return inputRequired({
    inputRequests: inputRequests as unknown as InputRequests,
    requestState: round.state,
  }) as unknown as CallToolResult;
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
  // `logging`: an upstream's log messages about a call are relayed (relayFor).
  const server = new Server(SERVER_INFO, {
    capabilities: { tools: {}, prompts: {}, resources: {}, logging: {}, completions: {} },
  });
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
    const envelope = envelopeOf(ctx);
    const rounds = options.rounds;
    if (envelope?.[PROTOCOL_VERSION_META_KEY] !== undefined && rounds !== undefined) {
      // 2026-07-28: an upstream's requests to the client go out as `input_required` rounds of
      // a call held here (rounds.ts); a retry carrying a state is such a round, never a new call.
      const owner = ownerOf(principal);
      const exact = sha256Hex(canonicalize({ call, tool: request.params.name }));
      // This round's relay: its notices are sent before its answer (`answered`).
      let flushed: () => Promise<void> = () => Promise.resolve();
      const io: RoundIo = (shared) => {
        const round = relayFor(ctx, token, shared);
        flushed = round.flushed;
        return { signal: ctx.mcpReq.signal, notify: (n) => round.relay.notify(n) };
      };
      const answered = async (round: Promise<Round>): Promise<CallToolResult> => {
        const r = await round;
        await flushed();
        return answerOf(r);
      };
      const state = ctx.mcpReq.requestState();
      if (typeof state === 'string') {
        const round = rounds.resume(owner, exact, state, ctx.mcpReq.inputResponses, io);
        if (round !== undefined) return answered(round);
        await refusedCall(
          gate,
          'ERR_REQUEST_MALFORMED',
          'no call of this client waits for this input',
          request.params,
        );
        return {
          isError: true,
          content: [
            { type: 'text', text: 'ERR_REQUEST_MALFORMED: no call of this client waits for this input' },
          ],
          structuredContent: { outcome: 'deny', code: 'ERR_REQUEST_MALFORMED', request_id: null },
        };
      }
      const askable = askableBy(envelope);
      if (askable.size > 0) {
        return answered(
          rounds.start(
            owner,
            exact,
            async (held) => {
              const relay: CallRelay = {
                progress: token !== undefined,
                cancelled: held.cancelled,
                notify: (n) => held.notify(n),
                ask: (a, signal) =>
                  askable.has(a.method)
                    ? held.ask(a, signal)
                    : Promise.reject(new AskNotSent('the client does not take this request')),
              };
              const waiting = waitMs > 0 && token !== undefined ? { waitMs, signal: held.cancelled } : {};
              return toolResultOf(
                (await gate.callAs(principal, call, { ...traced, ...waiting, relay })).body,
              );
            },
            io,
          ),
        );
      }
    }
    // Nothing sent yet: an upstream's first progress may be 0 (MCP only asks that it increase).
    const sent = { progress: Number.NEGATIVE_INFINITY };
    const { relay, flushed } = relayFor(ctx, token, sent, askerFor(server, ctx, principal, options.answers));
    if (waitMs <= 0 || token === undefined) {
      const answered = await gate.callAs(principal, call, { ...traced, relay });
      await flushed();
      return toolResultOf(answered.body);
    }
    // Progress while the call is decided and, when escalated, waits for its approvers. The
    // notifications carry no decision: a failed send changes nothing about the call.
    const tell = (message: string): void => {
      sent.progress = Math.max(sent.progress + 1, 1);
      const progress = sent.progress;
      void ctx.mcpReq
        .notify({ method: 'notifications/progress', params: { progressToken: token, progress, message } })
        .catch(() => undefined);
    };
    tell('the call is being decided; an escalated call waits for its approvers');
    const timer = setInterval(() => tell('waiting for approval'), every);
    try {
      // Cancelled, or its client gone (the SDK aborts the handler's signal): the wait ends and the
      // call does not run, even if approved meanwhile.
      const answered = await gate.callAs(principal, call, {
        ...traced,
        waitMs,
        signal: ctx.mcpReq.signal,
        relay,
      });
      await flushed();
      return toolResultOf(answered.body);
    } finally {
      clearInterval(timer);
    }
  });
  return server;
}
