/**
 * The Gate's edge: an exception that escaped every guard of a call still leaves a ledger record
 * (FC-INV-5 "emits attributable audit records for every request", FC-INV-3, STYLE "Errors and
 * denials"). The record is attributed to the client, with its request id, when the request
 * authenticates; otherwise it is an unauthenticated failure recorded by hash, like any other.
 * Best effort and itself fail-closed: whatever happens here, the answer is the deny.
 */
import { isDeny, verifyEd25519 } from '../kernel/index.js';
import type { Deny } from '../kernel/index.js';
import type { GateAnswer } from './gate.js';
import { withDeadline } from './deadline.js';
import { MAX_REQUEST_BYTES, parseSignedRequest, requestSigningInput } from './request.js';
import type { ParsedRequest } from './request.js';
import type { CallResponse, GateDeps, GatewayEvent, RegisteredClient } from './types.js';

/** The `status` of a `gateway.failed` record written for an exception caught at the Gate's edge. */
export const CAUGHT_STATUS = 'internal';

/** What the Gate's edge needs from the Gate it guards. */
export interface CaughtContext {
  readonly deps: Pick<GateDeps, 'clients'>;
  readonly ledgerMs: number;
  /** The Gate's bounded, confirmed append. */
  readonly record: (event: GatewayEvent) => Promise<boolean>;
  readonly answer: (d: Deny, requestId: string | null, traceId: string) => GateAnswer<CallResponse>;
  /** The Gate's unauthenticated denial (hash only, within the per-second record budget). */
  readonly failUnauthenticated: (
    d: Deny,
    rawSha: string,
    parsed: ParsedRequest | undefined,
  ) => Promise<GateAnswer<CallResponse>>;
}

function parseIfPossible(body: Uint8Array | null): ParsedRequest | undefined {
  try {
    if (body === null || body.byteLength > MAX_REQUEST_BYTES) return undefined;
    const p = parseSignedRequest(body);
    return isDeny(p) ? undefined : p;
  } catch {
    return undefined;
  }
}

/** The client the request authenticates as, or undefined (on any doubt or failure). */
async function authenticatedClient(
  ctx: CaughtContext,
  p: ParsedRequest,
): Promise<RegisteredClient | undefined> {
  try {
    const { request } = p;
    const found = await withDeadline(() => ctx.deps.clients.lookup(request.identity), ctx.ledgerMs);
    if (found.status !== 'ok') return undefined;
    const client = found.value;
    if (client === undefined || client.status !== 'active' || client.tenant !== request.tenant)
      return undefined;
    return verifyEd25519(client.publicKey, requestSigningInput(request), p.signatureBytes)
      ? client
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records `d` for a call whose handling threw, then answers it. Never throws, never allows.
 * `rawSha` is the SHA-256 of the body as received.
 */
export async function failCaught(
  ctx: CaughtContext,
  d: Deny,
  body: Uint8Array | null,
  rawSha: string,
): Promise<GateAnswer<CallResponse>> {
  const p = parseIfPossible(body);
  const fallback = (): GateAnswer<CallResponse> =>
    ctx.answer(d, p?.request.request_id ?? null, p?.trace_id ?? rawSha.slice(0, 32));
  try {
    const client = p === undefined ? undefined : await authenticatedClient(ctx, p);
    if (p !== undefined && client !== undefined) {
      const { request } = p;
      await ctx.record({
        type: 'gateway.failed',
        trace_id: p.trace_id,
        request_id: request.request_id,
        tenant: client.tenant,
        identity: client.identity,
        payload: {
          code: d.code,
          status: CAUGHT_STATUS,
          outcome: 'deny',
          tool: request.action,
          client: client.identity,
          auth_method: 'signature',
          request_sha256: rawSha,
        },
      });
      return ctx.answer(d, request.request_id, p.trace_id);
    }
  } catch {
    // Fall through to the unattributed record.
  }
  try {
    return await ctx.failUnauthenticated(d, rawSha, p);
  } catch {
    return fallback();
  }
}
