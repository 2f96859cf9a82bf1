/**
 * The linkage members of the audit bundle (SPEC §5 "issuer and ledger public keys (JWKS), the
 * referenced policy bundles, and for each request the raw signed request, envelope, execution
 * trace and outcome"; docs/ledger.md "Audit bundle"): who owns each client key, what the executor
 * enforces, the policy bundle documents by hash, and a per-request index into the entries.
 * The index is a convenience for auditors; the verifier derives every link from the entries.
 */
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { LedgerEntry } from './entry.js';
import type { BundleClientIdentity, BundleExecutor, ExportOptions } from './export.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** `jwks.client_identities`: `{ <kid>: { identity, tenant } }`, sorted by kid. */
export function clientIdentities(list: readonly BundleClientIdentity[] | undefined): JsonObject {
  const out: Record<string, JsonValue> = {};
  for (const c of [...(list ?? [])].sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0))) {
    out[c.kid] = { identity: c.identity, tenant: c.tenant };
  }
  return out;
}

/** `executor`: the audience and time limits the Execution Layer enforces, or null when not declared. */
export function executorJson(e: BundleExecutor | undefined): JsonValue {
  if (e === undefined) return null;
  return {
    audience: e.audience,
    clock_tolerance_sec: e.clockToleranceSec,
    max_lifetime_sec: e.maxLifetimeSec,
  };
}

/** `policy_bundles`: every policy bundle document an exported entry names by hash (when a resolver is given). */
export function policyBundles(
  o: Pick<ExportOptions, 'policyBundle'>,
  entries: readonly LedgerEntry[],
): JsonObject {
  const out: Record<string, JsonValue> = {};
  const resolve = o.policyBundle;
  if (resolve === undefined) return out;
  for (const e of entries) {
    for (const k of ['policy_bundle', 'previous_bundle']) {
      const h = e.payload[k];
      if (typeof h !== 'string' || !HEX64.test(h) || h in out) continue;
      const doc = resolve(h);
      if (doc !== undefined) out[h] = doc;
    }
  }
  return out;
}

const str = (v: JsonValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * `exports`: per request (trace) the raw signed request's evidence key and the indices of its
 * Gate, Control Plane, Execution Layer and outcome records; and every envelope and receipt.
 */
export function requestIndex(entries: readonly LedgerEntry[]): JsonObject {
  const decisions = new Map<string, number>();
  for (const e of entries) {
    const id = str(e.payload['decision_id']);
    if (e.type === 'decision' && id !== undefined && !decisions.has(id)) decisions.set(id, e.index);
  }
  const traces = new Map<string, Record<string, JsonValue>>();
  const envelopes: JsonValue[] = [];
  const receipts: JsonValue[] = [];
  for (const e of entries) {
    const id = str(e.payload['decision_id']);
    if (e.type === 'envelope.issued')
      envelopes.push({ index: e.index, decision_id: id ?? null, jti: str(e.payload['jti']) ?? null });
    if (e.type === 'execution.receipt')
      receipts.push({ index: e.index, decision_id: id ?? null, jti: str(e.payload['jti']) ?? null });
    if (e.trace_id === '') continue;
    let t = traces.get(e.trace_id);
    if (t === undefined && e.type.startsWith('gateway.')) {
      t = {
        trace_id: e.trace_id,
        request_id: e.request_id,
        tenant: e.tenant,
        request_sha256: null,
        accepted: null,
        decision: null,
        envelope: null,
        receipt: null,
        outcome: null,
      };
      traces.set(e.trace_id, t);
    }
    if (t === undefined) continue;
    if (e.type === 'gateway.accepted') {
      t['accepted'] = e.index;
      t['request_sha256'] = str(e.payload['request_sha256']) ?? null;
    } else if (
      e.type === 'gateway.completed' ||
      e.type === 'gateway.failed' ||
      e.type === 'request.abandoned'
    ) {
      t['outcome'] = e.index;
      if (t['request_sha256'] === null) t['request_sha256'] = str(e.payload['request_sha256']) ?? null;
    } else if (e.type === 'envelope.issued') t['envelope'] = e.index;
    else if (e.type === 'execution.receipt') t['receipt'] = e.index;
    if (id !== undefined && t['decision'] === null && decisions.has(id))
      t['decision'] = decisions.get(id) ?? null;
  }
  return { requests: [...traces.values()], envelopes, receipts };
}
