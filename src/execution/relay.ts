/**
 * What an upstream MCP server says about a call while it runs, on its way back to the caller
 * (docs/mcp.md "While a call runs"): its progress and its log messages, relayed to the MCP client
 * that made the call, and the client's cancellation, relayed to the upstream. The channel is
 * narrow and one-way for notices: the caller hands a {@link CallRelay} with the execution, the
 * executor puts a {@link guardRelay} in front of it, and the adapter sees only the guard.
 *
 * Everything an upstream sends is untrusted (OE-INV-013): a notice is parsed into a closed shape,
 * its text redacted like a result (OE-INV-010), its size bounded, and the notices of one call
 * bounded in number and bytes; past the bounds they are dropped and counted. A notice never
 * changes the call's outcome: a caller's sink that throws is ignored.
 */
import { createHash } from 'node:crypto';
import { isSpecType } from '@modelcontextprotocol/client';
import { canonicalize } from '../kernel/index.js';
import type { ClientRequestKind, JsonObject, JsonValue } from '../kernel/index.js';

export { CLIENT_REQUEST_KINDS } from '../kernel/index.js';
export type { ClientRequestKind } from '../kernel/index.js';
import type { Redactor } from './redaction.js';

/** MCP logging levels (RFC 5424 severities), least severe first. */
export const LOGGING_LEVELS = Object.freeze([
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
] as const);

/** One MCP logging level. */
export type LoggingLevel = (typeof LOGGING_LEVELS)[number];

/** A notice of a running call, parsed, bounded and redacted. */
export type RelayedNotice =
  | {
      readonly kind: 'progress';
      readonly progress: number;
      readonly total?: number;
      readonly message?: string;
    }
  | {
      readonly kind: 'log';
      readonly level: LoggingLevel;
      readonly logger?: string;
      readonly data: JsonValue;
    };

/** The MCP method of each kind. */
export const CLIENT_REQUEST_METHODS = Object.freeze({
  sampling: 'sampling/createMessage',
  elicitation: 'elicitation/create',
} as const);

/** An upstream's request to the caller's client, screened: its method and closed, redacted params. */
export interface RelayedAsk {
  readonly method: (typeof CLIENT_REQUEST_METHODS)[ClientRequestKind];
  readonly params: JsonObject;
}

/** Where a caller wants the notices of its call, and how it cancels it. */
export interface CallRelay {
  /** Whether the caller asked for progress: only then is the upstream asked for it. */
  readonly progress: boolean;
  /** Told each notice that passed the guard. Must not block; a throw is ignored. */
  notify(notice: RelayedNotice): void;
  /** Aborted when the caller cancels the call: the upstream call is ended (`ERR_CALL_CANCELLED`). */
  readonly cancelled?: AbortSignal;
  /**
   * Sends `ask` to the caller's client and resolves with its answer's `result` (untrusted: the
   * guard checks it); rejects when the client answers an error, or `signal` aborts (the call
   * ended). Absent: the caller's client cannot be asked, and no upstream is told it can.
   */
  ask?(ask: RelayedAsk, signal: AbortSignal): Promise<unknown>;
}

/** What an adapter hands on: the upstream's notification params as received (untrusted). */
export interface UpstreamNotices {
  /** Whether to ask the upstream for progress. */
  readonly progress: boolean;
  /** `notifications/progress` params (the progress token already matched by the MCP client). */
  onProgress(params: unknown): void;
  /** `notifications/message` params. */
  onLog(params: unknown): void;
  /** Whether the caller's client can be asked at all (only then may an upstream be told it can). */
  readonly canAsk: boolean;
  /**
   * An upstream's `sampling/createMessage` or `elicitation/create` params, as received: relayed to
   * the caller's client when they pass the guard; resolves with the client's checked answer.
   * Rejects (the upstream is answered an error) when refused, unanswered or the call ended.
   */
  onAsk(kind: ClientRequestKind, params: unknown): Promise<JsonObject>;
}

/** How many notices of one call are relayed at most; the rest are dropped and counted. */
export const MAX_RELAYED_NOTICES = 64;
/** Bytes of one relayed notice at most (its canonical JSON, after redaction); larger ones are dropped. */
export const MAX_NOTICE_BYTES = 4096;
/** Bytes of all the relayed notices of one call at most (and never more than its `max_output_bytes`). */
export const MAX_RELAYED_BYTES = 64 * 1024;
/** How many requests of one call are relayed to the caller's client at most; the rest are refused. */
export const MAX_RELAYED_ASKS = 8;
/** Bytes of one relayed request's params, and of its answer, at most (canonical JSON). */
export const MAX_ASK_BYTES = 64 * 1024;

/**
 * Counts of one call's notices, for its receipt, and the SHA-256 of what was relayed: the relayed
 * notices as JSON Lines of their RFC 8785 canonical forms, in the order relayed (so the receipt
 * covers everything the client was sent, the notices as the result).
 */
export interface RelayCounts {
  readonly relayed: number;
  readonly dropped: number;
  readonly sha256: string;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A bounded string field, or undefined when absent; null when present but not a string. */
function textField(v: unknown): string | undefined | null {
  if (v === undefined) return undefined;
  return typeof v === 'string' && v.length <= MAX_NOTICE_BYTES ? v : null;
}

/** Parses `notifications/progress` params (attacker-controlled) into a notice; undefined when malformed. */
function parseProgress(p: unknown): RelayedNotice | undefined {
  if (!isObject(p) || !finite(p['progress'])) return undefined;
  const total = p['total'];
  if (total !== undefined && !finite(total)) return undefined;
  const message = textField(p['message']);
  if (message === null) return undefined;
  return {
    kind: 'progress',
    progress: p['progress'],
    ...(total === undefined ? {} : { total }),
    ...(message === undefined ? {} : { message }),
  };
}

/** Parses `notifications/message` params (attacker-controlled) into a notice; undefined when malformed. */
function parseLog(p: unknown): RelayedNotice | undefined {
  if (!isObject(p) || !(LOGGING_LEVELS as readonly unknown[]).includes(p['level'])) return undefined;
  const logger = textField(p['logger']);
  if (logger === null || !('data' in p)) return undefined;
  return {
    kind: 'log',
    level: p['level'] as LoggingLevel,
    ...(logger === undefined ? {} : { logger }),
    data: p['data'] as JsonValue,
  };
}

/**
 * A notice as relayed (`{kind, ...}`, e.g. read back from another process's wire, untrusted) in
 * its closed shape, or undefined: no other key, its fields as {@link guardRelay} relays them, and
 * at most {@link MAX_NOTICE_BYTES} as canonical JSON.
 */
export function parseRelayedNotice(v: unknown): RelayedNotice | undefined {
  if (!isObject(v)) return undefined;
  const { kind, ...rest } = v;
  const allowed = kind === 'progress' ? ['progress', 'total', 'message'] : ['level', 'logger', 'data'];
  if (Object.keys(rest).some((k) => !allowed.includes(k))) return undefined;
  const notice = kind === 'progress' ? parseProgress(rest) : kind === 'log' ? parseLog(rest) : undefined;
  if (notice === undefined) return undefined;
  try {
    return Buffer.byteLength(canonicalize(notice), 'utf8') <= MAX_NOTICE_BYTES ? notice : undefined;
  } catch {
    return undefined;
  }
}

/** `notice` with its text (message, logger, data) redacted; its numbers and level are its own. */
function redactNotice(notice: RelayedNotice, redactor: Redactor): RelayedNotice {
  if (notice.kind === 'progress')
    return notice.message === undefined
      ? notice
      : { ...notice, message: redactor.redactText(notice.message) };
  return {
    ...notice,
    ...(notice.logger === undefined ? {} : { logger: redactor.redactText(notice.logger) }),
    data: redactor.redact(notice.data),
  };
}

const pick = (o: Record<string, unknown>, keys: readonly string[]): JsonObject => {
  const out: Record<string, JsonValue> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as JsonValue;
  return out;
};

/** Content a relayed sampling message or answer may carry: no tool use (never declared). */
const SAMPLING_CONTENT = new Set(['text', 'image', 'audio']);

function samplingContentOk(content: unknown): boolean {
  const blocks = Array.isArray(content) ? content : [content];
  return blocks.length > 0 && blocks.every((b) => isObject(b) && SAMPLING_CONTENT.has(b['type'] as string));
}

/**
 * An upstream's request params (attacker-controlled) in the closed shape relayed, or undefined
 * when refused. Sampling: messages of text, image or audio, no tools (the capability is declared
 * without them) and no `includeContext` beyond `none` (the client's other servers' context is not
 * the upstream's to ask for). Elicitation: form mode only (a URL to open is not relayed).
 */
export function screenAsk(kind: ClientRequestKind, params: unknown): JsonObject | undefined {
  if (!isObject(params)) return undefined;
  if (kind === 'sampling') {
    if (!isSpecType.CreateMessageRequestParams(params)) return undefined;
    if (params['tools'] !== undefined || params['toolChoice'] !== undefined) return undefined;
    const include = params['includeContext'];
    if (include !== undefined && include !== 'none') return undefined;
    const messages = params['messages'];
    if (!Array.isArray(messages) || !messages.every((m) => isObject(m) && samplingContentOk(m['content'])))
      return undefined;
    return pick(params, [
      'messages',
      'systemPrompt',
      'modelPreferences',
      'temperature',
      'maxTokens',
      'stopSequences',
      'metadata',
    ]);
  }
  if (!isSpecType.ElicitRequestFormParams(params)) return undefined;
  if (params['mode'] !== undefined && params['mode'] !== 'form') return undefined;
  return { mode: 'form', ...pick(params, ['message', 'requestedSchema']) };
}

/** The client's answer (untrusted) in the closed shape handed to the upstream, or undefined. */
export function screenAnswer(kind: ClientRequestKind, result: unknown): JsonObject | undefined {
  if (!isObject(result)) return undefined;
  if (kind === 'sampling') {
    if (!isSpecType.CreateMessageResult(result) || !samplingContentOk(result['content'])) return undefined;
    return pick(result, ['role', 'content', 'model', 'stopReason']);
  }
  if (!isSpecType.ElicitResult(result)) return undefined;
  return pick(result, ['action', 'content']);
}

/** The checks a relayed request's params must pass again after redaction. */
function stillValid(kind: ClientRequestKind, params: JsonObject): boolean {
  return kind === 'sampling'
    ? isSpecType.CreateMessageRequestParams(params)
    : isSpecType.ElicitRequestFormParams(params);
}

/**
 * The guard between an adapter and a caller's relay: parses each notice, redacts it with the
 * executor's redactor, and relays at most {@link MAX_RELAYED_NOTICES} notices of at most
 * {@link MAX_NOTICE_BYTES} each, {@link MAX_RELAYED_BYTES} (and `maxOutputBytes`) in all; the
 * rest, and anything malformed or unredactable, is dropped and counted. Nothing it does can fail
 * the call. After `close()` nothing more is relayed (a late notice of a finished call).
 */
export function guardRelay(
  relay: CallRelay,
  redactor: Redactor,
  maxOutputBytes: number,
): { readonly notices: UpstreamNotices; counts(): RelayCounts; close(): void } {
  const budget = Math.min(MAX_RELAYED_BYTES, maxOutputBytes);
  let relayed = 0;
  let dropped = 0;
  let bytes = 0;
  let closed = false;
  let asked = 0;
  // Ends the wait for a client's answer when the call ends.
  const ended = new AbortController();
  const digest = createHash('sha256');
  const pass = (notice: RelayedNotice | undefined): void => {
    if (closed) return;
    if (notice === undefined || relayed >= MAX_RELAYED_NOTICES) {
      dropped += 1;
      return;
    }
    let clean: RelayedNotice;
    let canonical: string;
    let size: number;
    try {
      // The redactor walks strings (and refuses what is not plain JSON or nests too deep).
      clean = redactNotice(notice, redactor);
      canonical = canonicalize(clean);
      size = Buffer.byteLength(canonical, 'utf8');
    } catch {
      dropped += 1;
      return;
    }
    if (size > MAX_NOTICE_BYTES || bytes + size > budget) {
      dropped += 1;
      return;
    }
    bytes += size;
    relayed += 1;
    digest.update(`${canonical}\n`);
    try {
      relay.notify(clean);
    } catch {
      // The caller's sink never changes the call.
    }
  };
  const canonicalOf = (v: JsonValue): string | undefined => {
    try {
      const c = canonicalize(v);
      return Buffer.byteLength(c, 'utf8') <= MAX_ASK_BYTES ? c : undefined;
    } catch {
      return undefined;
    }
  };
  /** An upstream's request: screened, redacted, relayed, its answer screened; both hashed in order. */
  const onAsk = async (kind: ClientRequestKind, params: unknown): Promise<JsonObject> => {
    const refuse = (why: string): never => {
      dropped += 1;
      throw new Error(why);
    };
    if (closed || relay.ask === undefined) return refuse('the call has ended');
    if (asked >= MAX_RELAYED_ASKS) return refuse('too many requests to the client in one call');
    asked += 1;
    const screened = screenAsk(kind, params);
    if (screened === undefined) return refuse('the request is not one failclosed relays');
    let clean: JsonObject;
    try {
      // Upstream text to the client's model or user is untrusted output, redacted like a result.
      clean = redactor.redact(screened) as JsonObject;
    } catch {
      return refuse('the request could not be redacted');
    }
    const method = CLIENT_REQUEST_METHODS[kind];
    const asking = canonicalOf({ kind: 'ask', method, params: clean });
    if (!stillValid(kind, clean) || asking === undefined)
      return refuse('the request is too large or invalid');
    relayed += 1;
    digest.update(`${asking}\n`);
    let answer: unknown;
    try {
      answer = await relay.ask({ method, params: clean }, ended.signal);
    } catch {
      throw new Error('the client did not answer');
    }
    const checked = screenAnswer(kind, answer);
    const answered =
      checked === undefined ? undefined : canonicalOf({ kind: 'answer', method, result: checked });
    if (checked === undefined || answered === undefined || closed)
      throw new Error('the client answer is not one failclosed relays');
    digest.update(`${answered}\n`);
    return checked;
  };
  return Object.freeze({
    notices: Object.freeze({
      progress: relay.progress,
      onProgress: (params: unknown) => pass(relay.progress ? parseProgress(params) : undefined),
      onLog: (params: unknown) => pass(parseLog(params)),
      canAsk: relay.ask !== undefined,
      onAsk,
    }),
    counts: () => ({ relayed, dropped, sha256: digest.copy().digest('hex') }),
    close: () => {
      closed = true;
      ended.abort();
    },
  });
}
