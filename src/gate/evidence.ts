/**
 * The operator evidence view of one request (SPEC §5, FC-INV-5): every ledger record carrying the
 * request id (gateway events, decision, approvals, envelope, receipt), envelope claims decoded for
 * reading, and RFC 6962 inclusion proofs against the latest signed checkpoint. The view is for
 * reading; `failclosed verify` on an export is the independent check.
 */
import { decodeBase64url, parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { GateLedger } from './types.js';

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

function collectEnvelopes(value: JsonValue, out: JsonValue[], depth: number): void {
  if (depth > 8 || typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (const v of value as readonly JsonValue[]) collectEnvelopes(v, out, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(value as JsonObject)) {
    if (k === 'envelope' && typeof v === 'string') {
      const claims = decodeEnvelopeClaims(v);
      if (claims !== undefined) out.push(claims);
    } else collectEnvelopes(v, out, depth + 1);
  }
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
    collectEnvelopes(entry, envelopes, 0);
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
