/**
 * The signing client (SPEC §2 step 1, FC-INV-3): signs each call and posts it to the Gate. A call
 * that certainly never reached the Gate is a deny; one whose answer was lost or cannot be
 * interpreted is `unknown` (the Gate may have run it), never a success and never a deny: a caller
 * told deny must never see the effect happen later (docs/client.md "Outcomes").
 */
import { deny, isDenialCode, MAX_ANSWER_BYTES, parseJson } from '../kernel/index.js';
import type { Clock, DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import { importSigningKeyJwk } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import { buildSignedRequest } from './request.js';
import { exchangeOf, neverSent } from './http.js';
import type { HttpExchange, HttpResponse } from './http.js';

export { neverSent };

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Gate base URL, e.g. `http://127.0.0.1:7070`. */
  readonly url: string;
  readonly identity: string;
  readonly tenant: string;
  /** A signing key, or an Ed25519 private JWK. */
  readonly key: SigningKey | Readonly<Record<string, unknown>>;
  /** Clock for request timestamps; default `Date.now`. */
  readonly now?: Clock;
  /**
   * A `fetch` to send with (a custom dispatcher or TLS setup); default `node:http` / `node:https`
   * over their global keep-alive agents (`http.ts`).
   */
  readonly fetch?: typeof fetch;
}

/** Options of one call. */
export interface CallOptions {
  readonly session?: string | null;
  /** Reuse a request id to retry an escalated call once approved (docs/approvals.md "Retries"). */
  readonly requestId?: string;
  /** Seconds the Gate may hold the call waiting for approvals (`Prefer: wait=N`). */
  readonly waitSec?: number;
  /**
   * Cancels the call: the connection closes and `call` rejects with the signal's reason. A call
   * still waiting for its approvals then stops waiting and does not run, even if approved later
   * (docs/approvals.md "Retries and waiting"); one that already runs finishes, unseen.
   */
  readonly signal?: AbortSignal;
}

/** What a call returns: the Gate's answer. */
export type CallResult =
  | {
      readonly outcome: 'executed';
      readonly request_id: string;
      readonly trace_id: string;
      readonly decision_id: string;
      readonly result: JsonValue;
      readonly receipt: { readonly index: number; readonly entry_hash: string };
    }
  | {
      readonly outcome: 'deny';
      readonly code: DenialCode;
      readonly reason: string;
      readonly request_id: string | null;
      readonly trace_id: string | null;
      readonly decision_id?: string;
      /**
       * Present when an envelope had been issued for the call: true when the Gate confirmed it
       * was voided before answering (it can never run); false when that could not be confirmed.
       */
      readonly envelope_voided?: boolean;
      /** True when the envelope had already been consumed: the tool may have run. */
      readonly envelope_consumed?: boolean;
      /** HTTP status of the answer (0 when the Gate could not be reached). */
      readonly status: number;
    }
  | {
      /**
       * The call was sent, and its answer was lost (the connection cut, a timeout) or is not an
       * answer of a Gate (not JSON, a redirect, a malformed outcome): it may have run, or not.
       * Read its request (`GET /v1/requests/{request_id}`, `failclosed requests show`) before
       * deciding anything; never take it for a deny.
       */
      readonly outcome: 'unknown';
      readonly code: 'ERR_INTERNAL';
      readonly reason: string;
      readonly request_id: string;
      readonly trace_id: null;
      /** HTTP status of the answer (0 when none arrived). */
      readonly status: number;
    }
  | {
      /** 202: nothing ran; approvals are pending. Retry with the same `request_id`. */
      readonly outcome: 'pending';
      readonly code: 'ERR_APPROVAL_PENDING';
      readonly reason: string;
      readonly request_id: string;
      readonly trace_id: string | null;
      readonly decision_id: string;
      readonly status: number;
    };

/** A background call the Gate accepted (docs/jobs.md): decided, enveloped and queued. */
export interface QueuedCall {
  readonly outcome: 'queued';
  readonly request_id: string;
  readonly trace_id: string | null;
  readonly decision_id: string;
  /** The job: its id, its bearer token (shown once) and where to read it. */
  readonly job: { readonly id: string; readonly token: string; readonly href: string };
  readonly status: number;
}

/** What a background call's submission returns. */
export type SubmitResult = QueuedCall | Exclude<CallResult, { outcome: 'executed' }>;

/** A background call's state (`GET /v1/jobs/{id}`). */
export type JobState =
  | (Omit<Extract<CallResult, { outcome: 'executed' }>, 'request_id'> & {
      readonly request_id: string;
      readonly status: 'executed';
    })
  | {
      readonly outcome: 'queued';
      readonly status: 'queued' | 'running';
      readonly request_id: string;
      readonly trace_id: string | null;
      readonly decision_id: string | null;
    }
  | {
      readonly outcome: 'deny' | 'abandoned';
      /** `abandoned`: the envelope was consumed without a result (the tool may have run). */
      readonly status: 'failed' | 'abandoned';
      readonly code: DenialCode;
      readonly request_id: string;
      readonly trace_id: string | null;
      readonly decision_id: string | null;
      readonly envelope_consumed: boolean;
    }
  | { readonly outcome: 'unknown'; readonly status: number };

/** A client bound to one identity. */
export interface FailclosedClient {
  /**
   * Signs and sends one governed call (FC-INV-3). Never rejects on a failure: a call that never
   * left is a deny (`ERR_INTERNAL`, status 0), one whose answer was lost or unreadable `unknown`.
   */
  call(tool: string, params: JsonObject, options?: CallOptions): Promise<CallResult>;
  /**
   * Signs and sends one background call (`Prefer: respond-async`, docs/jobs.md): `queued` once
   * the decision and envelope exist and the queue holds the job. Never rejects (as `call`).
   */
  submit(tool: string, params: JsonObject, options?: Omit<CallOptions, 'waitSec'>): Promise<SubmitResult>;
  /** Reads a background call's state with its token. Never rejects: `unknown` when unreadable. */
  job(id: string, token: string, options?: { readonly signal?: AbortSignal }): Promise<JobState>;
}

function isSigningKey(k: unknown): k is SigningKey {
  return typeof k === 'object' && k !== null && 'privateKey' in k && 'publicJwk' in k && 'kid' in k;
}

/**
 * A deny the client says without the Gate's word, for a call that cannot have run: it never left
 * (`status` 0: the connection or the TLS handshake failed), or nothing at the address takes calls
 * (a 404 that is no Gate's deny).
 */
function notRun(requestId: string, status: 0 | 404): Extract<CallResult, { outcome: 'deny' }> {
  const reason =
    status === 0 ? 'the Gate could not be reached' : 'nothing at this address takes calls (HTTP 404)';
  return { ...deny('ERR_INTERNAL', reason), request_id: requestId, trace_id: null, status };
}

/** The call was sent and no answer of a Gate came back: it may have run. */
function answerLost(status: number, requestId: string): Extract<CallResult, { outcome: 'unknown' }> {
  return {
    outcome: 'unknown',
    code: 'ERR_INTERNAL',
    reason:
      status === 0
        ? 'the call was sent and its answer was lost: it may have run; read its request before deciding'
        : 'the answer could not be interpreted: the call may have run; read its request before deciding',
    request_id: requestId,
    trace_id: null,
    status,
  };
}

/** Interprets a Gate answer body; anything else is `unknown` (it may have run). */
export function parseCallResult(status: number, body: unknown, requestId: string): CallResult {
  const r = parseAnswer(status, body, requestId);
  // A synchronous call is never queued: such an answer cannot be interpreted.
  return r.outcome === 'queued' ? answerLost(status, requestId) : r;
}

/** Interprets a background call's answer; anything else is `unknown` (it may have run). */
export function parseSubmitResult(status: number, body: unknown, requestId: string): SubmitResult {
  const r = parseAnswer(status, body, requestId);
  // An executed answer to a background call cannot be interpreted, and says it may have run.
  return r.outcome === 'executed' ? answerLost(status, requestId) : r;
}

/** Interprets a `GET /v1/jobs/{id}` answer; anything unexpected is `unknown`. */
export function parseJobState(status: number, body: unknown): JobState {
  const unknown: JobState = { outcome: 'unknown', status };
  if (status !== 200 || typeof body !== 'object' || body === null) return unknown;
  const b = body as Record<string, unknown>;
  if (typeof b.request_id !== 'string') return unknown;
  const traceId = typeof b.trace_id === 'string' ? b.trace_id : null;
  const decisionId = typeof b.decision_id === 'string' ? b.decision_id : null;
  if (b.outcome === 'executed' && b.status === 'executed') {
    const r = parseAnswer(200, b, b.request_id);
    return r.outcome === 'executed' ? { ...r, request_id: b.request_id, status: 'executed' } : unknown;
  }
  if (b.outcome === 'queued' && (b.status === 'queued' || b.status === 'running'))
    return {
      outcome: 'queued',
      status: b.status,
      request_id: b.request_id,
      trace_id: traceId,
      decision_id: decisionId,
    };
  if (
    (b.outcome === 'deny' || b.outcome === 'abandoned') &&
    (b.status === 'failed' || b.status === 'abandoned') &&
    isDenialCode(b.code)
  )
    return {
      outcome: b.outcome,
      status: b.status,
      code: b.code,
      request_id: b.request_id,
      trace_id: traceId,
      decision_id: decisionId,
      envelope_consumed: b.envelope_consumed === true,
    };
  return unknown;
}

function parseAnswer(status: number, body: unknown, requestId: string): CallResult | QueuedCall {
  // Nothing is served at this address for calls (a Control Plane process answers its
  // `{ error: "not_found" }`): whoever answered 404 ran nothing.
  if (status === 404 && (typeof body !== 'object' || body === null || !('outcome' in body)))
    return notRun(requestId, 404);
  if (typeof body !== 'object' || body === null) return answerLost(status, requestId);
  const b = body as Record<string, unknown>;
  if (
    status === 200 &&
    b.outcome === 'executed' &&
    typeof b.trace_id === 'string' &&
    typeof b.decision_id === 'string'
  ) {
    const receipt = b.receipt as { index?: unknown; entry_hash?: unknown } | null;
    if (
      typeof receipt !== 'object' ||
      receipt === null ||
      typeof receipt.index !== 'number' ||
      typeof receipt.entry_hash !== 'string'
    )
      return answerLost(status, requestId);
    return {
      outcome: 'executed',
      request_id: requestId,
      trace_id: b.trace_id,
      decision_id: b.decision_id,
      result: (b.result ?? null) as JsonValue,
      receipt: { index: receipt.index, entry_hash: receipt.entry_hash },
    };
  }
  if (status === 202 && b.outcome === 'queued' && typeof b.decision_id === 'string') {
    const j = b.job as { id?: unknown; token?: unknown; href?: unknown } | null;
    if (
      typeof j !== 'object' ||
      j === null ||
      typeof j.id !== 'string' ||
      typeof j.token !== 'string' ||
      typeof j.href !== 'string'
    )
      return answerLost(status, requestId);
    return {
      outcome: 'queued',
      request_id: requestId,
      trace_id: typeof b.trace_id === 'string' ? b.trace_id : null,
      decision_id: b.decision_id,
      job: { id: j.id, token: j.token, href: j.href },
      status,
    };
  }
  if (
    status === 202 &&
    b.outcome === 'pending' &&
    b.code === 'ERR_APPROVAL_PENDING' &&
    typeof b.decision_id === 'string'
  ) {
    return {
      outcome: 'pending',
      code: 'ERR_APPROVAL_PENDING',
      reason: typeof b.reason === 'string' ? b.reason : b.code,
      request_id: typeof b.request_id === 'string' ? b.request_id : requestId,
      trace_id: typeof b.trace_id === 'string' ? b.trace_id : null,
      decision_id: b.decision_id,
      status,
    };
  }
  if (b.outcome === 'deny' && isDenialCode(b.code)) {
    return {
      outcome: 'deny',
      code: b.code,
      reason: typeof b.reason === 'string' ? b.reason : b.code,
      request_id: typeof b.request_id === 'string' ? b.request_id : requestId,
      trace_id: typeof b.trace_id === 'string' ? b.trace_id : null,
      ...(typeof b.decision_id === 'string' ? { decision_id: b.decision_id } : {}),
      ...(typeof b.envelope_voided === 'boolean' ? { envelope_voided: b.envelope_voided } : {}),
      ...(b.envelope_consumed === true ? { envelope_consumed: true } : {}),
      status,
    };
  }
  return answerLost(status, requestId);
}

/**
 * Creates a client that signs requests with `key` as `identity` in `tenant` and posts them to
 * `${url}/v1/calls`. Throws `ERR_KEY_INVALID` for an unusable key.
 */
export function createClient(options: ClientOptions): FailclosedClient {
  const key = isSigningKey(options.key) ? options.key : importSigningKeyJwk(options.key);
  const now = options.now ?? (() => Date.now());
  const exchange = exchangeOf(options.fetch);
  const endpoint = new URL('/v1/calls', options.url);
  /**
   * Signs and posts one call: the raw answer (no `body` when none could be read), and whether the
   * call may have left the client (`sent`: false only when it certainly did not).
   */
  const post = async (
    tool: string,
    params: JsonObject,
    callOptions: CallOptions | undefined,
    prefer: string | undefined,
  ): Promise<{ requestId: string; status: number; sent: boolean; body?: unknown }> => {
    const body = buildSignedRequest({
      key,
      identity: options.identity,
      tenant: options.tenant,
      action: tool,
      parameters: params,
      timestampMs: now(),
      session: callOptions?.session ?? null,
      ...(callOptions?.requestId === undefined ? {} : { requestId: callOptions.requestId }),
    });
    let res: HttpResponse;
    try {
      res = await exchange(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(prefer === undefined ? {} : { prefer }) },
        body: JSON.stringify(body),
        ...(callOptions?.signal === undefined ? {} : { signal: callOptions.signal }),
      });
    } catch (err) {
      if (callOptions?.signal?.aborted === true) throw err;
      return { requestId: body.request_id, status: 0, sent: !neverSent(err) };
    }
    try {
      return {
        requestId: body.request_id,
        status: res.status,
        sent: true,
        body: parseJson(await res.bytes(), { maxBytes: MAX_ANSWER_BYTES }),
      };
    } catch (err) {
      if (callOptions?.signal?.aborted === true) throw err;
      return { requestId: body.request_id, status: res.status, sent: true };
    }
  };
  /** No interpretable answer: a deny when the call never left, `unknown` when it may have run. */
  const noAnswer = (a: {
    requestId: string;
    status: number;
    sent: boolean;
  }): Exclude<CallResult, { outcome: 'executed' | 'pending' }> =>
    a.status === 404
      ? notRun(a.requestId, 404)
      : a.sent
        ? answerLost(a.status, a.requestId)
        : notRun(a.requestId, 0);
  return Object.freeze({
    async call(tool: string, params: JsonObject, callOptions?: CallOptions): Promise<CallResult> {
      const wait = callOptions?.waitSec;
      const prefer =
        wait !== undefined && Number.isSafeInteger(wait) && wait > 0 ? `wait=${wait}` : undefined;
      const a = await post(tool, params, callOptions, prefer);
      if (a.body === undefined) return noAnswer(a);
      return parseCallResult(a.status, a.body, a.requestId);
    },
    async submit(tool: string, params: JsonObject, callOptions?: CallOptions): Promise<SubmitResult> {
      const a = await post(tool, params, callOptions, 'respond-async');
      if (a.body === undefined) return noAnswer(a);
      return parseSubmitResult(a.status, a.body, a.requestId);
    },
    job: (id: string, token: string, jobOptions?: { readonly signal?: AbortSignal }) =>
      readJobWith(exchange, options.url, id, token, jobOptions?.signal),
  });
}

/**
 * Reads a background call's state (`GET /v1/jobs/{id}` with its bearer token; docs/jobs.md). No
 * signing key is needed: the token is the reader's credential. Never rejects unless `signal`
 * aborts: `unknown` when the Gate cannot be reached or read.
 */
export async function readJob(
  url: string,
  id: string,
  token: string,
  options: { readonly fetch?: typeof fetch; readonly signal?: AbortSignal } = {},
): Promise<JobState> {
  return readJobWith(exchangeOf(options.fetch), url, id, token, options.signal);
}

async function readJobWith(
  exchange: HttpExchange,
  url: string,
  id: string,
  token: string,
  signal: AbortSignal | undefined,
): Promise<JobState> {
  try {
    const res = await exchange(new URL(`/v1/jobs/${encodeURIComponent(id)}`, url), {
      method: 'GET',
      headers: { authorization: `Bearer ${token}` },
      ...(signal === undefined ? {} : { signal }),
    });
    return parseJobState(res.status, parseJson(await res.bytes(), { maxBytes: MAX_ANSWER_BYTES }));
  } catch (err) {
    if (signal?.aborted === true) throw err;
    return { outcome: 'unknown', status: 0 };
  }
}
