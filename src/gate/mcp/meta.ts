/**
 * What the MCP ingress reads from and writes to `_meta` (docs/mcp.md): the agent session and the
 * retried request id a client names, and the call record (request id, decision id, receipt) an
 * answer carries. Shared by `tools/call`, `prompts/get` and `resources/read`.
 */
import { deny, sha256Hex } from '../../kernel/index.js';
import type { DenialCode } from '../../kernel/index.js';
import type { Gate } from '../gate.js';
import type { CallResponse } from '../types.js';

/** `_meta` key under which an answer carries the request id, decision id and receipt. */
export const CALL_META_KEY = 'failclosed.dev/call';
/** `_meta` key naming the agent session of a call. */
export const SESSION_META_KEY = 'failclosed.dev/session';
/** `_meta` key naming the request id of an escalated call a call retries once approved. */
export const RETRY_META_KEY = 'failclosed.dev/retry';

/** Reads an optional `_meta` string: null when absent, undefined when malformed. */
export function metaOf(meta: unknown, key: string, re: RegExp): string | null | undefined {
  if (typeof meta !== 'object' || meta === null) return null;
  const s = (meta as Record<string, unknown>)[key];
  if (s === undefined) return null;
  return typeof s === 'string' && re.test(s) ? s : undefined;
}

/** The agent session a request's `_meta` names: null when none, undefined when malformed. */
export const sessionOf = (meta: unknown): string | null | undefined =>
  metaOf(meta, SESSION_META_KEY, /^[A-Za-z0-9._:-]{1,128}$/);

/** The request id a retry names: null when none, undefined when malformed. */
export const retryOf = (meta: unknown): string | null | undefined =>
  metaOf(meta, RETRY_META_KEY, /^mcp-[0-9a-f-]{36}$/);

/** The `_meta` of an answer: the call's outcome, request, trace and decision ids, and its receipt. */
export function callMetaOf(a: CallResponse): Record<string, Record<string, unknown>> {
  return {
    [CALL_META_KEY]: {
      outcome: a.outcome,
      request_id: a.request_id,
      trace_id: a.trace_id,
      ...('decision_id' in a && a.decision_id !== undefined ? { decision_id: a.decision_id } : {}),
      ...(a.outcome === 'executed' ? { receipt: { ...a.receipt } } : {}),
    },
  };
}

/** Records a request refused before it became a call (`gateway.failed`, hash of its params only). */
export async function refusedCall(
  gate: Gate,
  code: DenialCode,
  reason: string,
  params: unknown,
): Promise<void> {
  await gate.refuse(deny(code, reason), sha256Hex(Buffer.from(JSON.stringify(params ?? null), 'utf8')));
}
