/**
 * Principals that do not sign their requests (SPEC §2 step 1: "MCP clients that cannot sign
 * authenticate with an OAuth/OIDC bearer token instead; then the Gate mints the request nonce").
 * The MCP ingress authenticates them; the Gate then mints the request id and nonce, claims them
 * in the replay store like a signed request's, and stores the call as it received it as evidence
 * (FC-INV-3, FC-INV-5).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { canonicalize, MINTED_CALL_FORMAT, runRequestId, sha256Hex } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';

/**
 * How a principal authenticated, as ledgered in `gateway.accepted.auth_method`: `schedule` is a
 * run the Gate's scheduler minted for a schedule's creator (docs/schedules.md); its `issuer` is
 * the schedule's id.
 */
export type AuthMethod = 'signature' | 'oauth' | 'client_key' | 'schedule';

/**
 * A principal the MCP ingress authenticated: from a bearer JWT of the configured OAuth issuer
 * (`oauth`), or from a token signed with a registered client's key (`client_key`, the stdio
 * bridge). Tenant and roles come from the token's claims or from the client's registration,
 * never from the call.
 */
export interface Principal {
  readonly identity: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  readonly auth_method: Exclude<AuthMethod, 'signature'>;
  /** The token issuer (`oauth`) or the client identity (`client_key`). */
  readonly issuer: string;
  /**
   * The human owner named by the token's configured owner claim (`oauth` only): recorded with
   * each call, and the one person who may never approve its escalated calls (OE-INV-002).
   * Absent for an OAuth principal: nobody may approve them. A registered client's owner comes
   * from its registration instead.
   */
  readonly owner?: string;
  /**
   * The bearer token as presented, kept only by a keyless Gate (`failclosed serve gate`) to hand
   * to its Control Plane process with the call, which authenticates the call again from it and
   * never takes the Gate's word for the principal (docs/mcp.md "Through keyless Gates", FC-INV-3,
   * FC-INV-6). Never stored, logged or recorded: it is not part of the minted evidence.
   */
  readonly credential?: string;
  /**
   * The SHA-256 (hex) of the one message a client-key token was signed for (its `body_sha256`
   * claim): the ingress serves only that message with it (docs/mcp.md "Through keyless Gates").
   */
  readonly body_sha256?: string;
  /**
   * With `credential`: the message the token is bound to, base64, as received, passed with it to
   * the Control Plane process, which reads the call from it again. Never stored or recorded.
   */
  readonly message?: string;
}

/** One tool call of an authenticated principal, as the MCP ingress parsed it. */
export interface PrincipalCall {
  readonly tool: string;
  /** Parsed at the ingress edge (strict JSON, size and depth limits). */
  readonly params: JsonObject;
  readonly session: string | null;
  /**
   * The request id of an escalated call this one retries once approved (docs/approvals.md
   * "Retries"); the Gate lets it through only when the Control Plane holds that decision for the
   * same principal, tool, session and parameters.
   */
  readonly retryOf?: string;
}

/** A call with the request id and nonce the Gate minted for it, and its evidence bytes. */
export interface MintedCall {
  readonly request_id: string;
  readonly nonce: string;
  readonly trace_id: string;
  /** Canonical JSON of the call as the Gate received it: stored as the request evidence. */
  readonly evidence: Uint8Array;
  readonly rawSha: string;
  readonly timestampMs: number;
}

/**
 * Mints the request id (`mcp-<uuid>`; the retried call's; a schedule run's, named by its slot) and
 * a 128-bit nonce for one call, and its evidence: the canonical call with principal, tool,
 * parameters, session, time and how the principal authenticated (the bearer token itself is never
 * stored).
 */
export function mintCall(
  principal: Principal,
  call: PrincipalCall,
  nowMs: number,
  run?: { readonly id: string; readonly slot_start: number },
): MintedCall {
  // A retry keeps its request id (the decision is derived from it) and gets a fresh nonce; a
  // run's is its slot's, so a slot handed out twice is a replay (docs/schedules.md "Runs").
  const request_id =
    call.retryOf ??
    (run === undefined
      ? `${principal.auth_method === 'schedule' ? 'run' : 'mcp'}-${randomUUID()}`
      : runRequestId(run.id, run.slot_start));
  const nonce = randomBytes(16).toString('base64url');
  const text = canonicalize({
    format: MINTED_CALL_FORMAT,
    request_id,
    nonce,
    identity: principal.identity,
    tenant: principal.tenant,
    roles: [...principal.roles],
    auth_method: principal.auth_method,
    issuer: principal.issuer,
    ...(principal.owner === undefined ? {} : { owner: principal.owner }),
    tool: call.tool,
    parameters: call.params,
    session: call.session,
    timestamp: new Date(nowMs).toISOString(),
  });
  const evidence = Buffer.from(text, 'utf8');
  const rawSha = sha256Hex(evidence);
  return { request_id, nonce, trace_id: rawSha.slice(0, 32), evidence, rawSha, timestampMs: nowMs };
}
