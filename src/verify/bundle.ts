/**
 * The audit bundle's top-level structure (docs/ledger.md "Audit bundle", SPEC §5). Parsing here
 * is structural only: a bundle that is not JSON, has another format tag or lacks a top-level
 * member is unusable (exit 2); everything inside (entries, proofs, notes, evidence) is judged by
 * the named checks, so a tampered entry is a violation that names the entry (exit 1).
 */
import { FailclosedError, parseJson, type JsonObject, type JsonValue } from '../kernel/index.js';

/** The single-document bundle format tag (v1, still verified). */
export const BUNDLE_FORMAT = 'failclosed.audit-bundle/v1';
/** The streamed bundle format tag (v2, JSON Lines; docs/ledger.md "Audit bundle"). */
export const BUNDLE_FORMAT_V2 = 'failclosed.audit-bundle/v2';
/** Every v2 bundle starts with these bytes (its header record, `record` and `format` first). */
export const BUNDLE_V2_MAGIC = `{"record":"header","format":"${BUNDLE_FORMAT_V2}"`;

/** Default and hard limit on bundle size. */
export const BUNDLE_MAX_BYTES = 512 * 1024 * 1024;

/** What the bundle says it covers: a contiguous range or one trace. */
export type BundleScope =
  | { readonly kind: 'range'; readonly from: number; readonly to: number }
  | { readonly kind: 'trace'; readonly trace_id: string };

/** A structurally valid bundle; members below the top level are still unchecked JSON. */
export interface Bundle {
  readonly origin: string;
  readonly ledgerKey: { readonly vkey: JsonValue; readonly jwk: JsonValue };
  readonly scope: BundleScope;
  readonly checkpoint: JsonValue;
  readonly entries: readonly JsonValue[];
  readonly anchors: readonly JsonValue[];
  readonly inclusion: readonly JsonValue[];
  readonly olderCheckpoints: readonly JsonValue[];
  readonly evidence: JsonObject;
  /** Verified-if-present slots for later checks (issuer/client/approver keys, policy bundles, signed requests, envelopes, receipts). */
  readonly jwks: JsonObject;
  readonly policyBundles: JsonObject;
  readonly exports: JsonObject;
  /** The declared executor (`audience`, `clock_tolerance_sec`, `max_lifetime_sec`), unchecked; null when absent (checked by the envelope checks). */
  readonly executor: JsonValue;
}

const REQUIRED = [
  'format',
  'origin',
  'ledger_key',
  'scope',
  'checkpoint',
  'entries',
  'anchors',
  'proofs',
  'older_checkpoints',
  'evidence',
  'jwks',
  'policy_bundles',
  'exports',
] as const;

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: JsonValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= -1;
}

function parseScope(v: JsonValue | undefined): BundleScope | undefined {
  if (!isObject(v)) return undefined;
  if (v['kind'] === 'trace' && typeof v['trace_id'] === 'string')
    return { kind: 'trace', trace_id: v['trace_id'] };
  const from = v['from'];
  const to = v['to'];
  if (v['kind'] === 'range' && isIndex(from) && isIndex(to) && from >= 0) return { kind: 'range', from, to };
  return undefined;
}

/**
 * Parses bundle input (text, bytes or an already-parsed JSON value) into a {@link Bundle}, or
 * returns the reason it is unusable. Text and bytes go through the strict parser (duplicate keys,
 * unsafe numbers, size and depth limits).
 */
export function parseBundle(input: unknown, maxBytes = BUNDLE_MAX_BYTES): Bundle | string {
  let value: JsonValue;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    try {
      // Attacker-controlled: the whole bundle file.
      value = parseJson(input, { maxBytes: Math.min(maxBytes, BUNDLE_MAX_BYTES), maxDepth: 96 });
    } catch (err) {
      return `not strict JSON (${err instanceof FailclosedError ? err.code : 'unreadable'})`;
    }
  } else {
    value = input as JsonValue;
  }
  if (!isObject(value)) return 'not a JSON object';
  if (value['format'] !== BUNDLE_FORMAT) return `format is not ${BUNDLE_FORMAT}`;
  const missing = REQUIRED.filter((k) => !(k in value));
  if (missing.length > 0) return `missing member(s): ${missing.join(', ')}`;
  const {
    origin,
    ledger_key: key,
    checkpoint,
    entries,
    anchors,
    proofs,
    older_checkpoints: older,
    evidence,
    jwks,
  } = value;
  const scope = parseScope(value['scope']);
  const inclusion = isObject(proofs) ? proofs['inclusion'] : undefined;
  if (typeof origin !== 'string' || origin.length === 0) return 'origin is not a string';
  if (!isObject(key)) return 'ledger_key is not an object';
  if (scope === undefined) return 'scope is malformed';
  if (!Array.isArray(entries)) return 'entries is not an array';
  if (!Array.isArray(anchors)) return 'anchors is not an array';
  if (!Array.isArray(inclusion)) return 'proofs.inclusion is not an array';
  if (!Array.isArray(older)) return 'older_checkpoints is not an array';
  if (
    !isObject(evidence) ||
    !isObject(jwks) ||
    !isObject(value['policy_bundles']) ||
    !isObject(value['exports'])
  )
    return 'evidence, jwks, policy_bundles or exports is not an object';
  return Object.freeze({
    origin,
    ledgerKey: { vkey: key['vkey'] ?? null, jwk: key['jwk'] ?? null },
    scope,
    checkpoint: checkpoint ?? null,
    entries,
    anchors,
    inclusion,
    olderCheckpoints: older,
    evidence,
    jwks,
    policyBundles: value['policy_bundles'],
    exports: value['exports'],
    executor: value['executor'] ?? null,
  });
}
