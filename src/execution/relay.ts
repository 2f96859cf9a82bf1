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
  /**
   * Told each notice that passed the guard. Must not block; a throw is ignored. `false`: there was
   * nowhere to send it (it is counted dropped, not relayed).
   */
  notify(notice: RelayedNotice): boolean | void;
  /** Aborted when the caller cancels the call: the upstream call is ended (`ERR_CALL_CANCELLED`). */
  readonly cancelled?: AbortSignal;
  /**
   * Sends `ask` to the caller's client and resolves with its answer's `result` (untrusted: the
   * guard checks it); rejects when the client answers an error, or `signal` aborts (the call
   * ended). Absent: the caller's client cannot be asked, and no upstream is told it can.
   */
  ask?(ask: RelayedAsk, signal: AbortSignal): Promise<unknown>;
}

/**
 * What a caller's `ask` rejects with when the request never reached the client (its capabilities
 * do not take it, there was no stream to send it on): counted dropped, not relayed.
 */
export class AskNotSent extends Error {}

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
  onAsk(kind: ClientRequestKind, params: unknown, signal?: AbortSignal): Promise<JsonObject>;
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

const pick = (o: Record<string, unknown>, keys: readonly string[]): Record<string, JsonValue> => {
  const out: Record<string, JsonValue> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as JsonValue;
  return out;
};

/** `pick` of an object, or undefined when `v` is not one. */
const pickOf = (v: unknown, keys: readonly string[]): Record<string, JsonValue> | undefined =>
  isObject(v) ? pick(v, keys) : undefined;

/**
 * A sampling content block rebuilt with only the fields MCP defines for it (no `_meta`, no
 * annotations, nothing else): text, image or audio; undefined for anything else (tool use and
 * tool results are never declared).
 */
function samplingBlock(b: unknown): JsonObject | undefined {
  if (!isObject(b)) return undefined;
  if (b['type'] === 'text')
    return typeof b['text'] === 'string' ? { type: 'text', text: b['text'] } : undefined;
  if (b['type'] !== 'image' && b['type'] !== 'audio') return undefined;
  const { data, mimeType } = b;
  return typeof data === 'string' && typeof mimeType === 'string'
    ? { type: b['type'], data, mimeType }
    : undefined;
}

/** Content of a sampling message or answer, rebuilt (one block or a non-empty array of them). */
function samplingContent(content: unknown): JsonValue | undefined {
  if (!Array.isArray(content)) return samplingBlock(content);
  const blocks = content.map(samplingBlock);
  return blocks.length > 0 && blocks.every((x) => x !== undefined) ? blocks : undefined;
}

/** Model preferences rebuilt: hints by name, the three priorities. */
function modelPreferencesOf(v: unknown): JsonObject | undefined {
  const prefs = pickOf(v, ['costPriority', 'speedPriority', 'intelligencePriority']);
  if (prefs === undefined || !isObject(v)) return undefined;
  const hints = v['hints'];
  if (Array.isArray(hints)) prefs['hints'] = hints.map((h) => pickOf(h, ['name']) ?? {});
  return prefs;
}

/** The keys MCP defines for a primitive schema of a form (string, number, boolean, enums). */
const PRIMITIVE_KEYS = [
  'type',
  'title',
  'description',
  'minLength',
  'maxLength',
  'format',
  'minimum',
  'maximum',
  'default',
  'enum',
  'enumNames',
  'minItems',
  'maxItems',
];

/** One property of a form's `requestedSchema`, rebuilt with the keys MCP defines, in depth. */
function primitiveSchemaOf(v: unknown): JsonObject | undefined {
  const out = pickOf(v, PRIMITIVE_KEYS);
  if (out === undefined || !isObject(v)) return undefined;
  const titled = (list: unknown): JsonValue | undefined =>
    Array.isArray(list) ? list.map((o) => pickOf(o, ['const', 'title']) ?? {}) : undefined;
  const oneOf = titled(v['oneOf']);
  if (oneOf !== undefined) out['oneOf'] = oneOf;
  const items = v['items'];
  if (isObject(items)) {
    const rebuilt = pick(items, ['type', 'enum']);
    const anyOf = titled(items['anyOf']);
    if (anyOf !== undefined) rebuilt['anyOf'] = anyOf;
    out['items'] = rebuilt;
  }
  return out;
}

/** A form's `requestedSchema` rebuilt: an object of primitive properties and its `required`. */
function requestedSchemaOf(v: unknown): JsonObject | undefined {
  if (!isObject(v) || !isObject(v['properties'])) return undefined;
  const properties: Record<string, JsonValue> = {};
  for (const [name, schema] of Object.entries(v['properties'])) {
    const rebuilt = primitiveSchemaOf(schema);
    if (rebuilt === undefined) return undefined;
    properties[name] = rebuilt;
  }
  return {
    type: 'object',
    properties,
    ...(Array.isArray(v['required']) ? { required: v['required'] as JsonValue } : {}),
  };
}

/**
 * An upstream's request params (attacker-controlled) rebuilt, in depth, with only the fields MCP
 * defines and failclosed relays, or undefined when refused. Sampling: messages (`role` and text,
 * image or audio content), `systemPrompt`, `modelPreferences` (hint names and priorities),
 * `temperature`, `maxTokens`, `stopSequences`; no tools (the capability is declared without them),
 * no `includeContext` beyond `none` (the client's other servers' context is not the upstream's to
 * ask for), no provider `metadata`. Elicitation: form mode only (a URL to open is not relayed),
 * its `message` and a `requestedSchema` of primitive properties. Never a `_meta`, anywhere.
 * Rebuilding what it rebuilt gives the same (the Gate screens again what a separate Execution
 * Layer sends it).
 */
export function screenAsk(kind: ClientRequestKind, params: unknown): JsonObject | undefined {
  if (!isObject(params)) return undefined;
  if (kind === 'sampling') {
    if (!isSpecType.CreateMessageRequestParams(params)) return undefined;
    if (params['tools'] !== undefined || params['toolChoice'] !== undefined) return undefined;
    const include = params['includeContext'];
    if (include !== undefined && include !== 'none') return undefined;
    const raw = params['messages'];
    if (!Array.isArray(raw)) return undefined;
    const messages: JsonObject[] = [];
    for (const m of raw) {
      const content = isObject(m) ? samplingContent(m['content']) : undefined;
      if (content === undefined || !isObject(m)) return undefined;
      messages.push({ role: m['role'], content });
    }
    const prefs = params['modelPreferences'];
    const modelPreferences = prefs === undefined ? undefined : modelPreferencesOf(prefs);
    if (prefs !== undefined && modelPreferences === undefined) return undefined;
    return {
      messages,
      ...pick(params, ['systemPrompt', 'temperature', 'maxTokens', 'stopSequences']),
      ...(modelPreferences === undefined ? {} : { modelPreferences }),
    };
  }
  if (!isSpecType.ElicitRequestFormParams(params)) return undefined;
  if (params['mode'] !== undefined && params['mode'] !== 'form') return undefined;
  const requestedSchema = requestedSchemaOf(params['requestedSchema']);
  if (requestedSchema === undefined || typeof params['message'] !== 'string') return undefined;
  return { mode: 'form', message: params['message'], requestedSchema };
}

/** A form answer's value: a string, number, boolean or list of strings (what forms hold). */
const formValue = (v: unknown): boolean =>
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (typeof v === 'number' && Number.isFinite(v)) ||
  (Array.isArray(v) && v.every((x) => typeof x === 'string'));

/** The client's answer (untrusted) rebuilt, in depth, as handed to the upstream, or undefined. */
export function screenAnswer(kind: ClientRequestKind, result: unknown): JsonObject | undefined {
  if (!isObject(result)) return undefined;
  if (kind === 'sampling') {
    if (!isSpecType.CreateMessageResult(result)) return undefined;
    const content = samplingContent(result['content']);
    if (content === undefined) return undefined;
    return { ...pick(result, ['role', 'model', 'stopReason']), content };
  }
  if (!isSpecType.ElicitResult(result)) return undefined;
  const content = result['content'];
  if (content === undefined) return pick(result, ['action']);
  if (!isObject(content) || !Object.values(content).every(formValue)) return undefined;
  return { action: result['action'] as JsonValue, content: content as JsonObject };
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
  origin?: string,
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
    let delivered = true;
    try {
      delivered = relay.notify(clean) !== false;
    } catch {
      // The caller's sink never changes the call (a throw counts as sent).
    }
    if (!delivered) {
      // Nowhere to send it now (between two rounds of a 2026-07-28 call): not relayed.
      dropped += 1;
      return;
    }
    bytes += size;
    relayed += 1;
    digest.update(`${canonical}\n`);
  };
  const canonicalOf = (v: JsonValue): string | undefined => {
    try {
      const c = canonicalize(v);
      return Buffer.byteLength(c, 'utf8') <= MAX_ASK_BYTES ? c : undefined;
    } catch {
      return undefined;
    }
  };
  /**
   * An upstream's request: screened, redacted, attributed, charged to the byte budget, relayed;
   * its answer screened. A request sent is counted `relayed` and hashed, followed by its answer
   * when one passed; one refused, or never sent (the caller's `AskNotSent`), is counted `dropped`.
   */
  const onAsk = async (
    kind: ClientRequestKind,
    params: unknown,
    signal?: AbortSignal,
  ): Promise<JsonObject> => {
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
    // A question put to the client's user says which tool asks it: failclosed itself asks nothing.
    const message = clean['message'];
    if (kind === 'elicitation' && origin !== undefined && typeof message === 'string')
      clean = { ...clean, message: `The tool ${origin} asks: ${message}` };
    const method = CLIENT_REQUEST_METHODS[kind];
    const asking = canonicalOf({ kind: 'ask', method, params: clean });
    if (!stillValid(kind, clean) || asking === undefined)
      return refuse('the request is too large or invalid');
    // Upstream text reaching the client counts towards the same bound as its notices (and never
    // more than the tool's max_output_bytes): requests are no way around it.
    const size = Buffer.byteLength(asking, 'utf8');
    if (bytes + size > budget) return refuse('the request is past the byte budget of the call');
    bytes += size;
    let answer: unknown;
    try {
      answer = await relay.ask(
        { method, params: clean },
        signal === undefined ? ended.signal : AbortSignal.any([ended.signal, signal]),
      );
    } catch (e) {
      if (e instanceof AskNotSent) {
        bytes -= size;
        return refuse(e.message);
      }
      relayed += 1;
      digest.update(`${asking}\n`);
      throw new Error('the client did not answer');
    }
    relayed += 1;
    digest.update(`${asking}\n`);
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
