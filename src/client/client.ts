/**
 * The signing client (SPEC §2 step 1, FC-INV-3): signs each call and posts it to the Gate. A
 * transport failure or an answer the client cannot interpret is reported as a deny, never as a
 * success.
 */
import { deny, isDenialCode, parseJson } from '../kernel/index.js';
import type { Clock, DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import { importSigningKeyJwk } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import { buildSignedRequest } from './request.js';

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
  /** `fetch` implementation; default the global one. */
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
      /** 202: nothing ran; approvals are pending. Retry with the same `request_id`. */
      readonly outcome: 'pending';
      readonly code: 'ERR_APPROVAL_PENDING';
      readonly reason: string;
      readonly request_id: string;
      readonly trace_id: string | null;
      readonly decision_id: string;
      readonly status: number;
    };

/** A client bound to one identity. */
export interface FailclosedClient {
  /** Signs and sends one governed call (FC-INV-3). Never rejects: failures are denies. */
  call(tool: string, params: JsonObject, options?: CallOptions): Promise<CallResult>;
}

function isSigningKey(k: unknown): k is SigningKey {
  return typeof k === 'object' && k !== null && 'privateKey' in k && 'publicJwk' in k && 'kid' in k;
}

function unreachable(code: DenialCode, status: number, requestId: string): CallResult {
  const d = deny(
    code,
    status === 0 ? 'the Gate could not be reached' : 'the Gate answer could not be interpreted',
  );
  return { ...d, request_id: requestId, trace_id: null, status };
}

/** Interprets a Gate answer body; anything unexpected is a deny. */
export function parseCallResult(status: number, body: unknown, requestId: string): CallResult {
  if (typeof body !== 'object' || body === null) return unreachable('ERR_INTERNAL', status, requestId);
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
      return unreachable('ERR_INTERNAL', status, requestId);
    return {
      outcome: 'executed',
      request_id: requestId,
      trace_id: b.trace_id,
      decision_id: b.decision_id,
      result: (b.result ?? null) as JsonValue,
      receipt: { index: receipt.index, entry_hash: receipt.entry_hash },
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
  return unreachable('ERR_INTERNAL', status, requestId);
}

/**
 * Creates a client that signs requests with `key` as `identity` in `tenant` and posts them to
 * `${url}/v1/calls`. Throws `ERR_KEY_INVALID` for an unusable key.
 */
export function createClient(options: ClientOptions): FailclosedClient {
  const key = isSigningKey(options.key) ? options.key : importSigningKeyJwk(options.key);
  const now = options.now ?? (() => Date.now());
  const doFetch = options.fetch ?? fetch;
  const endpoint = new URL('/v1/calls', options.url).toString();
  return Object.freeze({
    async call(tool: string, params: JsonObject, callOptions?: CallOptions): Promise<CallResult> {
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
      let res: Response;
      try {
        res = await doFetch(endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(callOptions?.waitSec !== undefined &&
            Number.isSafeInteger(callOptions.waitSec) &&
            callOptions.waitSec > 0
              ? { prefer: `wait=${callOptions.waitSec}` }
              : {}),
          },
          body: JSON.stringify(body),
          ...(callOptions?.signal === undefined ? {} : { signal: callOptions.signal }),
        });
      } catch (err) {
        if (callOptions?.signal?.aborted === true) throw err;
        return unreachable('ERR_INTERNAL', 0, body.request_id);
      }
      let parsed: unknown;
      try {
        parsed = parseJson(new Uint8Array(await res.arrayBuffer()));
      } catch (err) {
        if (callOptions?.signal?.aborted === true) throw err;
        return unreachable('ERR_INTERNAL', res.status, body.request_id);
      }
      return parseCallResult(res.status, parsed, body.request_id);
    },
  });
}
