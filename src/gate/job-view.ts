/**
 * `GET /v1/jobs/{id}` (docs/jobs.md): a background call's state as its ledger records tell it,
 * and, once executed, its redacted result from the evidence store (named by the digest that
 * `gateway.completed` records). The reader is the holder of the job's bearer token (the ledger
 * keeps its SHA-256 only) or an operator of its tenant; anyone else, like an unknown id, gets
 * `404` (no oracle for which ids exist).
 */
import { hexDigestEquals, parseJson, settlesAttempt, sha256Hex } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { withDeadline } from './deadline.js';
import type { LedgerEntryView, TenantScope } from './types.js';

/** What a job's reader presents, and where its result is read. */
export interface JobViewOptions {
  /** The `Authorization: Bearer` token, when one was sent. */
  readonly token: string | undefined;
  /** The operator's tenant scope, when the header named an operator. */
  readonly operator: TenantScope | undefined;
  readonly covers: (scope: TenantScope, tenant: string) => boolean;
  readonly result: (sha256: string) => Promise<Uint8Array | undefined>;
  readonly ledgerMs: number;
  /**
   * Records an operator's read (`audit.read`, L7 read path) before anything is returned; false
   * when it could not be recorded (the read is then refused). The token's holder reads its own
   * job's answer, as a synchronous caller does, without one.
   */
  readonly recordOperatorRead: () => Promise<boolean>;
}

/** The state of a job: `queued` → (`running`) → `executed`, `failed` or `abandoned`. */
export type JobStatus = 'queued' | 'running' | 'executed' | 'failed' | 'abandoned';

type Answer = { readonly status: number; readonly body: JsonValue };

const NOT_FOUND: Answer = { status: 404, body: { error: 'not_found' } };

function payloadOf(e: LedgerEntryView): Readonly<Record<string, JsonValue>> {
  const p = e['payload'];
  return typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as JsonObject) : {};
}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** True when `token` is the bearer token of the job `queued` records (its digest). */
function isTokenOf(queued: LedgerEntryView, token: string | undefined): boolean {
  const digest = queued.type === 'gateway.queued' ? str(payloadOf(queued)['job_token_sha256']) : undefined;
  return token !== undefined && digest !== undefined && hexDigestEquals(sha256Hex(token), digest);
}

/** True when `token` is the bearer token of a job among `entries`. */
export function holdsJobToken(entries: readonly LedgerEntryView[], token: string | undefined): boolean {
  return entries.some((e) => isTokenOf(e, token));
}

/** How the reader may see the job `queued` names: as the token's holder, as an operator, or not. */
function readerOf(queued: LedgerEntryView, o: JobViewOptions): 'token' | 'operator' | undefined {
  if (isTokenOf(queued, o.token)) return 'token';
  const tenant = queued['tenant'];
  return o.operator !== undefined &&
    typeof tenant === 'string' &&
    tenant !== '' &&
    o.covers(o.operator, tenant)
    ? 'operator'
    : undefined;
}

/** Whether an entry as read back settles its attempt (`settlesAttempt`, the ledger's one rule). */
export function settlesView(e: LedgerEntryView): boolean {
  const payload = e['payload'];
  const requestId = e['request_id'];
  return (
    typeof requestId === 'string' &&
    typeof payload === 'object' &&
    payload !== null &&
    !Array.isArray(payload) &&
    settlesAttempt({ type: e.type, request_id: requestId, payload: payload as JsonObject })
  );
}

/** Builds the answer for one request id's entries. */
export async function jobView(entries: readonly LedgerEntryView[], o: JobViewOptions): Promise<Answer> {
  const queued = entries.filter((e) => e.type === 'gateway.queued').find((e) => readerOf(e, o) !== undefined);
  if (queued === undefined) return NOT_FOUND;
  if (readerOf(queued, o) === 'operator' && !(await o.recordOperatorRead()))
    return {
      status: 503,
      body: { outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', reason: 'the read could not be recorded' },
    };
  const trace = queued['trace_id'];
  const mine = entries.filter((e) => e['trace_id'] === trace);
  const q = payloadOf(queued);
  const base = {
    request_id: queued['request_id'] ?? null,
    trace_id: trace ?? null,
    decision_id: q['decision_id'] ?? null,
    tool: q['tool'] ?? null,
    queue: q['queue'] ?? null,
  };
  const receipt = mine.find((e) => e.type === 'execution.receipt' && e.index > queued.index);
  // The job's outcome: the trace's one settling record (a trace is one attempt), wherever it lies.
  // It may precede the queue record: a `gateway.queued` whose answer was lost lands after the
  // Gate recorded its denial (the job never reached the queue). A refusal of a replay of its
  // request (same trace) settles nothing (FC-INV-5).
  const end = mine.find(settlesView);
  if (end === undefined) {
    const status: JobStatus = receipt === undefined ? 'queued' : 'running';
    return { status: 200, body: { ...base, outcome: 'queued', status } };
  }
  const p = payloadOf(end);
  if (end.type === 'gateway.completed') {
    const sha = str(p['result_sha256']);
    if (sha === undefined || receipt === undefined) return unavailable(base);
    const blob = await withDeadline(() => o.result(sha), o.ledgerMs);
    if (blob.status !== 'ok' || blob.value === undefined || sha256Hex(blob.value) !== sha)
      return unavailable(base);
    let result: JsonValue;
    try {
      result = parseJson(blob.value);
    } catch {
      return unavailable(base);
    }
    return {
      status: 200,
      body: {
        ...base,
        outcome: 'executed',
        status: 'executed',
        result,
        receipt: { index: receipt.index, entry_hash: receipt.entry_hash },
      },
    };
  }
  // A consumed envelope without a completion: the tool may have run, and never runs again. The
  // receipt says so too, whatever the outcome record says (one written before it could tell).
  const consumed = p['envelope_consumed'] === true || receipt !== undefined;
  // An abandoned request whose envelope was never consumed (voided unused, or never issued) never
  // ran: failed, as its record says.
  const status: JobStatus = consumed ? 'abandoned' : 'failed';
  return {
    status: 200,
    body: {
      ...base,
      outcome: end.type === 'request.abandoned' ? 'abandoned' : 'deny',
      status,
      code: p['code'] ?? null,
      ...(typeof p['reason'] === 'string' ? { reason: p['reason'] } : {}),
      ...(typeof p['envelope_voided'] === 'boolean' ? { envelope_voided: p['envelope_voided'] } : {}),
      envelope_consumed: consumed,
    },
  };
}

/** The job executed but its result cannot be read back now. */
function unavailable(base: Readonly<Record<string, JsonValue>>): Answer {
  return {
    status: 503,
    body: {
      ...base,
      outcome: 'deny',
      code: 'ERR_LEDGER_UNAVAILABLE',
      reason: 'the result could not be read',
    },
  };
}
