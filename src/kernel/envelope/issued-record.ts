/**
 * The `envelope.issued` record (SPEC §3, docs/ledger.md): an envelope's claims and the SHA-256
 * of its compact JWS, never the JWS itself, so that no record, evidence view or export holds a
 * live bearer token. The claims split between the entry (`tenant`, `trace_id`, `request_id`) and
 * its payload; {@link issuedPayload} writes them and {@link claimsOfIssued} reads them back, for
 * the executor's issuance check and the offline verifier. No I/O.
 */
import { sha256Hex } from '../hash.js';
import type { JsonObject, JsonValue } from '../json.js';
import { freezeClaims, isEnvelopeClaims, type EnvelopeClaims } from './claims.js';

/** Lower-hex SHA-256 of the ASCII of a compact JWS: the `envelope_sha256` field. */
export function envelopeSha256(jws: string): string {
  return sha256Hex(Buffer.from(jws, 'latin1'));
}

/**
 * The `envelope.issued` payload for `claims`, signed under `kid` into the JWS whose digest is
 * `envelopeSha256`. Every claim but the entry-level `tenant`, `trace_id` and `request_id`.
 */
export function issuedPayload(claims: EnvelopeClaims, kid: string, digest: string): JsonObject {
  const k = claims.constraints;
  return {
    decision_id: claims.decision_id,
    jti: claims.jti,
    envelope_sha256: digest,
    kid,
    iss: claims.iss,
    aud: claims.aud,
    sub: claims.sub,
    iat: claims.iat,
    exp: claims.exp,
    tool: claims.tool,
    params_sha256: claims.params_sha256,
    policy_bundle: claims.policy_bundle,
    ledger_ref: { index: claims.ledger.index, entry_hash: claims.ledger.entry_hash },
    approvals: [...claims.approvals],
    constraints: {
      timeout_ms: k.timeout_ms,
      max_output_bytes: k.max_output_bytes,
      memory_bytes: k.memory_bytes,
      network: k.network,
      egress: [...k.egress],
      fs_read: [...k.fs_read],
      fs_write: [...k.fs_write],
      max_cost_cents: k.max_cost_cents,
    },
  };
}

/** The parts of a ledger entry {@link claimsOfIssued} reads. */
export interface IssuedEntryLike {
  readonly tenant: string;
  readonly trace_id: string;
  readonly request_id: string;
  readonly payload: Readonly<Record<string, JsonValue>>;
}

/**
 * The envelope claims an `envelope.issued` entry records, strictly typed, or undefined when the
 * entry does not carry a complete, well-typed set (a record from before claims were recorded, or
 * an altered one).
 */
export function claimsOfIssued(entry: IssuedEntryLike): EnvelopeClaims | undefined {
  const p = entry.payload;
  // Ledger content read back: checked member by member by the kernel's claim validator.
  const claims: Record<string, JsonValue | undefined> = {
    iss: p['iss'],
    aud: p['aud'],
    sub: p['sub'],
    tenant: entry.tenant,
    tool: p['tool'],
    params_sha256: p['params_sha256'],
    jti: p['jti'],
    iat: p['iat'],
    exp: p['exp'],
    decision_id: p['decision_id'],
    request_id: entry.request_id,
    trace_id: entry.trace_id,
    policy_bundle: p['policy_bundle'],
    ledger: p['ledger_ref'],
    approvals: p['approvals'],
    constraints: p['constraints'],
  };
  return isEnvelopeClaims(claims) ? freezeClaims(claims) : undefined;
}
