/**
 * The Gate's Execution Layer port over the network (SPEC §2 step 6, FC-INV-6): `POST
 * /v1/execute` and `POST /v1/void` to an Execution Layer at `executor_url`, over mutual TLS with
 * the Gate's certificate, to a server whose certificate names the `executor` role
 * (`src/transport/client.ts`). The answer is untrusted input: size-bounded, parsed strictly, and
 * anything that is not a well-formed answer (no answer, a transport error, a refused server,
 * garbage) is `ERR_EXECUTION_UNAVAILABLE`; the Gate then parses the execution answer again
 * (`parseExecutionAnswer`). The Execution Layer writes its receipt itself before answering: the
 * Gate's shared commit (`DurableWrites`) stays in-process and is not passed on.
 *
 * Bounds agree with the other side: the Execution Layer's listener refuses to send an answer the
 * Gate would not accept (`EXECUTION_ANSWER_LIMITS`, `ERR_TOOL_OUTPUT_LIMIT`, recorded there), and
 * the request is cancelled when the Gate's execute deadline passes (its `signal`), with a socket
 * timeout below that deadline: no answer arrives after the Gate has denied.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { deny, isDenialCode, parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import { MAX_BACKGROUND_TIMEOUT_MS } from '../policy/index.js';
import type { ExecutionCall, ExecutionResult, GateExecutor, VoidCall, VoidResult } from '../gate/index.js';
import { readCapped } from '../transport/index.js';
import type { MtlsAgent } from '../transport/index.js';
import { EXECUTION_ANSWER_LIMITS } from './execution-server.js';

/** Options of {@link createRemoteExecutor}. */
export interface RemoteExecutorOptions {
  /** `https://HOST:PORT` of the Execution Layer. */
  readonly url: string;
  /** The Gate's mutual-TLS Agent, expecting the `executor` role. */
  readonly agent: MtlsAgent;
  /**
   * Socket idle deadline (ms) of one call; keep it below the Gate's execute deadline
   * (`GateTimeouts.executionMs`, default 30 000). Default 25 000. The Gate's deadline also cancels
   * the request through its `signal`.
   */
  readonly timeoutMs?: number;
  /** Largest answer (bytes) accepted; default and what the listener enforces: `EXECUTION_ANSWER_LIMITS`. */
  readonly maxAnswerBytes?: number;
}

/** Default socket deadline: below the Gate's default execute deadline of 30 s. */
export const REMOTE_EXECUTOR_TIMEOUT_MS = 25_000;

/** Beyond a background call's longest run: the receipt's ledger rounds and the answer. */
export const BACKGROUND_GRACE_MS = 60_000;

const unavailable = (why: string) => deny('ERR_EXECUTION_UNAVAILABLE', why);

/**
 * A W3C `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header) carrying the
 * call's `trace_id` when it is one (32 lowercase hex, not all zero), so the Execution Layer's
 * records join the same trace; none otherwise.
 */
export function traceparentOf(traceId: string): string | undefined {
  if (!/^[0-9a-f]{32}$/.test(traceId) || /^0+$/.test(traceId)) return undefined;
  return `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
}

/** POSTs `body` and parses the JSON answer; rejects on anything but a parsable JSON answer. */
function post(
  options: RemoteExecutorOptions,
  path: string,
  body: JsonValue,
  traceId: string,
  signal: AbortSignal | undefined,
  idleMs = options.timeoutMs ?? REMOTE_EXECUTOR_TIMEOUT_MS,
): Promise<JsonValue> {
  const text = JSON.stringify(body);
  const traceparent = traceparentOf(traceId);
  const maxBytes = options.maxAnswerBytes ?? EXECUTION_ANSWER_LIMITS.maxBytes;
  if (signal?.aborted === true) return Promise.reject(new Error('deadline passed'));
  return new Promise((resolve, reject) => {
    const req = request(
      `${options.url}${path}`,
      {
        method: 'POST',
        agent: options.agent.current(),
        // Aborting destroys the request (and its socket): the Execution Layer sees it cut.
        ...(signal === undefined ? {} : { signal }),
        timeout: idleMs,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          ...(traceparent === undefined ? {} : { traceparent }),
        },
      },
      (res) => {
        readCapped(res, maxBytes).then((b) => {
          if (b === null) return reject(new Error('answer too large'));
          try {
            // Untrusted bytes from the wire: the strict parser (duplicate keys, depth, size).
            resolve(parseJson(b, { maxBytes, maxDepth: EXECUTION_ANSWER_LIMITS.maxDepth }));
          } catch (err) {
            reject(err instanceof Error ? err : new Error('malformed answer'));
          }
        }, reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(text);
  });
}

function isRecord(v: JsonValue): v is { readonly [k: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a void answer; anything else is a deny (the envelope is then not reported voided). */
function parseVoidAnswer(v: JsonValue): VoidResult {
  if (!isRecord(v)) return unavailable('the Execution Layer void answer could not be interpreted');
  if (v['outcome'] === 'voided' && typeof v['recorded'] === 'boolean')
    return { outcome: 'voided', recorded: v['recorded'] };
  if (v['outcome'] === 'consumed') return { outcome: 'consumed' };
  if (v['outcome'] === 'deny' && isDenialCode(v['code']))
    return deny(v['code'], typeof v['reason'] === 'string' ? v['reason'].slice(0, 200) : v['code']);
  return unavailable('the Execution Layer void answer could not be interpreted');
}

/** The Gate's executor port over mutual TLS to `options.url`. Never throws. */
export function createRemoteExecutor(options: RemoteExecutorOptions): GateExecutor {
  const body = (c: ExecutionCall): JsonValue => ({
    envelope: c.envelope,
    tool: c.tool,
    tenant: c.tenant,
    params: c.params,
    trace_id: c.trace_id,
    request_id: c.request_id,
  });
  return {
    async execute(call: ExecutionCall, _writes?: unknown, signal?: AbortSignal): Promise<ExecutionResult> {
      try {
        // Shape checked by the Gate (parseExecutionAnswer): anything uninterpretable is a deny.
        return (await post(
          options,
          '/v1/execute',
          body(call),
          call.trace_id,
          signal,
          // A background call's tool may run up to its policy's background limit; the caller's
          // own deadline (the job queue's) still bounds the wait.
          call.background === true ? MAX_BACKGROUND_TIMEOUT_MS + BACKGROUND_GRACE_MS : undefined,
        )) as unknown as ExecutionResult;
      } catch {
        return unavailable('the Execution Layer could not be reached or answered garbage');
      }
    },
    async void(call: VoidCall, signal?: AbortSignal): Promise<VoidResult> {
      try {
        const v = await post(
          options,
          '/v1/void',
          { ...(body(call) as object), code: call.code, stage: call.stage },
          call.trace_id,
          signal,
        );
        return parseVoidAnswer(v);
      } catch {
        return unavailable('the Execution Layer could not be reached or answered garbage');
      }
    },
  };
}
