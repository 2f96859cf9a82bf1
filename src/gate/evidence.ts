/**
 * The operator evidence view of one request (SPEC §5, FC-INV-5): every ledger record carrying the
 * request id (gateway events, decision, approvals, envelope claims, receipt), the envelope claims
 * as the `envelope.issued` records state them, and RFC 6962 inclusion proofs against the latest
 * signed checkpoint. It never holds an unconsumed envelope: the ledger records an envelope's
 * claims and digest only, and the JWS only in the receipt of its consumption (SPEC §3). The view
 * is for reading; `failclosed verify` on an export is the independent check.
 */
import { claimsOfIssued, decodeBase64url, parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { GateLedger, LedgerEntryView as GateLedgerEntry } from './types.js';

const COMPACT_JWS = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

/** Decodes the payload of a compact JWS for display, without verifying it; undefined if it is not one. */
export function decodeEnvelopeClaims(jws: string): JsonValue | undefined {
  const m = COMPACT_JWS.exec(jws);
  if (m === null || m[2] === undefined) return undefined;
  const bytes = decodeBase64url(m[2]);
  if (bytes === undefined) return undefined;
  try {
    // Ledger content is verified elsewhere; parse strictly anyway, it is displayed as evidence.
    return parseJson(bytes, { maxBytes: 64 * 1024 });
  } catch {
    return undefined;
  }
}

function issuedClaims(entry: GateLedgerEntry): JsonValue | undefined {
  if (entry.type !== 'envelope.issued') return undefined;
  const { tenant, trace_id, request_id, payload } = entry;
  if (typeof tenant !== 'string' || typeof trace_id !== 'string' || typeof request_id !== 'string')
    return undefined;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
  const claims = claimsOfIssued({ tenant, trace_id, request_id, payload: payload as JsonObject });
  return claims === undefined ? undefined : (JSON.parse(JSON.stringify(claims)) as JsonValue);
}

/** Terminal outcome of a request as its gateway records tell it. */
function outcomeOf(types: readonly string[]): 'executed' | 'deny' | 'abandoned' | 'pending' {
  if (types.includes('gateway.completed')) return 'executed';
  if (types.includes('gateway.failed')) return 'deny';
  // Recorded on restart or at the end of a stop's grace period (SPEC §5).
  if (types.includes('request.abandoned')) return 'abandoned';
  return 'pending';
}

/** Builds the evidence view, or null when no record names `requestId`. */
export async function buildEvidenceView(ledger: GateLedger, requestId: string): Promise<JsonValue | null> {
  const entries = await ledger.entriesForRequest(requestId);
  if (entries.length === 0) return null;
  const checkpoint = await ledger.latestCheckpoint();
  const records: JsonValue[] = [];
  const envelopes: JsonValue[] = [];
  for (const entry of entries) {
    const claims = issuedClaims(entry);
    if (claims !== undefined) envelopes.push(claims);
    let inclusion: JsonValue = null;
    if (checkpoint !== null && entry.index < checkpoint.size) {
      const proof = await ledger.proveInclusion(entry.index, checkpoint.size);
      inclusion = { tree_size: checkpoint.size, proof: [...proof] };
    }
    records.push({ entry, inclusion });
  }
  const traceIds = [
    ...new Set(entries.map((e) => e.trace_id).filter((t): t is string => typeof t === 'string')),
  ];
  return {
    request_id: requestId,
    trace_ids: traceIds,
    outcome: outcomeOf(entries.map((e) => e.type)),
    records,
    envelope_claims: envelopes,
    checkpoint:
      checkpoint === null
        ? null
        : { size: checkpoint.size, root_hash: checkpoint.root_hash, note: checkpoint.note },
  };
}
