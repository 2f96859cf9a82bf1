/**
 * The audit-bundle export (SPEC §5 "failclosed ledger export", FC Verification Integration,
 * L7 read path controls "Export controls for audit downloads"). The export is itself ledgered as
 * `audit.export` before anything is read, then a checkpoint covering it is signed, and the bundle
 * is assembled. Format: docs/ledger.md "Audit bundle".
 */
import {
  FailclosedError,
  canonicalize,
  type Ed25519Jwks,
  type JsonObject,
  type JsonValue,
} from '../kernel/index.js';
import { entryJson, type Actor, type LedgerEntry } from './entry.js';
import { clientIdentities, executorJson, policyBundles, requestIndex } from './export-linkage.js';
import type { AppendReceipt, Ledger } from './writer.js';
import type { StoredCheckpoint } from './store.js';

/** The bundle format tag. */
export const AUDIT_BUNDLE_FORMAT = 'failclosed.audit-bundle/v1';

/** A client key's owner: which identity and tenant signed requests under `kid` (FC-INV-3 evidence). */
export interface BundleClientIdentity {
  readonly kid: string;
  readonly identity: string;
  readonly tenant: string;
}

/**
 * Public keys to embed for offline verification: the issuer JWKS (every key, rotated and revoked
 * ones included, with the `revoked` list), the client JWKS and who owns each client key, and the
 * approver JWKS (SPEC §5 "issuer and ledger public keys (JWKS)").
 */
export interface BundlePublicKeys {
  readonly issuer?: Ed25519Jwks;
  readonly clients?: Ed25519Jwks;
  readonly clientIdentities?: readonly BundleClientIdentity[];
  readonly approvers?: Ed25519Jwks;
}

/** What the Execution Layer enforces, declared so the verifier can check envelopes against it (SPEC §3). */
export interface BundleExecutor {
  /** The `aud` the executor requires. */
  readonly audience: string;
  /** Clock tolerance for `iat`/`exp`, whole seconds. */
  readonly clockToleranceSec: number;
  /** Longest accepted `exp − iat`, whole seconds. */
  readonly maxLifetimeSec: number;
}

/** Options for {@link exportBundle}. Give `traceId`, or a range `from`..`to` (inclusive, default the whole ledger). */
export interface ExportOptions {
  readonly ledger: Ledger;
  readonly from?: number;
  readonly to?: number;
  readonly traceId?: string;
  readonly publicKeys?: BundlePublicKeys;
  /** The executor's audience and time limits; exported as `executor` (null when not given). */
  readonly executor?: BundleExecutor;
  /**
   * Resolves a policy bundle hash to its document; every bundle referenced by an exported entry
   * (`policy_bundle`, `previous_bundle`) is then exported under `policy_bundles` (SPEC §5).
   */
  readonly policyBundle?: (hash: string) => JsonValue | undefined;
  /** Who exports: recorded in the `audit.export` entry (L7 access logging). */
  readonly actor: Actor;
  readonly tenant?: string;
  readonly requestId?: string;
  readonly reason?: string;
}

/** An exported bundle: the JSON value and its text (RFC 8785 canonical, newline-terminated). */
export interface ExportedBundle {
  readonly bundle: JsonObject;
  readonly text: string;
  /** Index and hash of the `audit.export` entry that records this export. */
  readonly exportEntry: { readonly index: number; readonly entry_hash: string };
}

const EMPTY_JWKS: Ed25519Jwks = { keys: [], revoked: [] };
const SHA_FIELD = /_sha256$/;
const HEX64 = /^[0-9a-f]{64}$/;

function toJson(e: LedgerEntry): JsonValue {
  return JSON.parse(entryJson(e)) as JsonValue;
}

function jwksJson(j: Ed25519Jwks | undefined): JsonValue {
  const v = j ?? EMPTY_JWKS;
  return { keys: v.keys.map((k) => ({ ...k })), revoked: [...v.revoked] };
}

async function readScope(o: ExportOptions, size: number): Promise<LedgerEntry[]> {
  if (o.traceId !== undefined)
    return (await o.ledger.store.readByTrace(o.traceId)).filter((e) => e.index < size);
  const from = o.from ?? 0;
  const to = Math.min(o.to ?? size - 1, size - 1);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from)
    throw new TypeError('invalid export range');
  return o.ledger.store.readRange(from, to + 1);
}

async function collectEvidence(
  o: ExportOptions,
  entries: readonly LedgerEntry[],
): Promise<Record<string, JsonValue>> {
  const out: Record<string, JsonValue> = {};
  for (const e of entries) {
    for (const [k, v] of Object.entries(e.payload)) {
      if (!SHA_FIELD.test(k) || typeof v !== 'string' || !HEX64.test(v) || v in out) continue;
      const blob = await o.ledger.store.getEvidence(v);
      if (blob !== undefined)
        out[v] = { media_type: blob.media_type, body_b64: blob.body.toString('base64') };
    }
  }
  return out;
}

/**
 * Records an export as `audit.export` before anything is read (L7 read path controls "Export
 * controls for audit downloads"); `format` names the streamed bundle format when it is one.
 */
export function recordExport(o: ExportOptions, format?: 'v2'): Promise<AppendReceipt> {
  const payload: Record<string, JsonValue> =
    o.traceId !== undefined
      ? { scope: 'trace', trace_id: o.traceId }
      : { scope: 'range', from: o.from ?? 0, ...(o.to !== undefined ? { to: o.to } : {}) };
  if (format !== undefined) payload['format'] = format;
  if (o.reason !== undefined) payload['reason'] = o.reason;
  return o.ledger.append({
    type: 'audit.export',
    trace_id: '',
    request_id: o.requestId ?? '',
    tenant: o.tenant ?? '',
    actor: o.actor,
    payload,
  });
}

/**
 * Records the export as `audit.export`, signs a checkpoint covering it, and returns the
 * self-contained audit bundle. Rejects with `ERR_LEDGER_UNAVAILABLE` when the export cannot be
 * recorded or the store cannot be read: no unrecorded export (L7 read path controls).
 */
export async function exportBundle(o: ExportOptions): Promise<ExportedBundle> {
  if (o.traceId !== undefined && (o.from !== undefined || o.to !== undefined))
    throw new TypeError('export either a trace or a range');
  const exportEntry = await recordExport(o);
  try {
    return { ...(await assemble(o, await o.ledger.checkpoint())), exportEntry };
  } catch (err) {
    if (err instanceof TypeError || err instanceof FailclosedError) throw err;
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'export could not read the ledger', { cause: err });
  }
}

async function assemble(
  o: ExportOptions,
  checkpoint: StoredCheckpoint,
): Promise<{ bundle: JsonObject; text: string }> {
  const { ledger } = o;
  const size = checkpoint.size;
  const entries = await readScope(o, size);
  const present = new Set(entries.map((e) => e.index));
  const anchors: JsonValue[] = [];
  for (const e of entries) {
    // A predecessor outside the bundle is anchored by its hash and an inclusion proof.
    if (e.index > 0 && !present.has(e.index - 1))
      anchors.push({ index: e.index - 1, entry_hash: e.prev_hash });
  }
  const whole = entries.length === size && (entries[0]?.index ?? 0) === 0;
  const inclusion: JsonValue[] = [];
  if (!whole) {
    const indices = [
      ...anchors.map((a) => (a as { index: number }).index),
      ...entries.map((e) => e.index),
    ].sort((a, b) => a - b);
    for (const i of indices) inclusion.push({ index: i, hashes: ledger.proveInclusion(i, size) });
  }
  const older: JsonValue[] = (await ledger.store.checkpoints())
    .filter((c) => c.size >= 1 && c.size < size)
    .map((c) => ({ note: c.note, consistency: ledger.proveConsistency(c.size, size) }));
  const bundle: JsonObject = {
    format: AUDIT_BUNDLE_FORMAT,
    origin: ledger.origin,
    ledger_key: { vkey: ledger.ledgerKey.vkey, jwk: { ...ledger.ledgerKey.jwk } },
    scope:
      o.traceId !== undefined
        ? { kind: 'trace', trace_id: o.traceId }
        : { kind: 'range', from: entries[0]?.index ?? 0, to: entries[entries.length - 1]?.index ?? -1 },
    checkpoint: checkpoint.note,
    entries: entries.map(toJson),
    anchors,
    proofs: { inclusion },
    older_checkpoints: older,
    evidence: await collectEvidence(o, entries),
    jwks: {
      issuer: jwksJson(o.publicKeys?.issuer),
      clients: jwksJson(o.publicKeys?.clients),
      client_identities: clientIdentities(o.publicKeys?.clientIdentities),
      approvers: jwksJson(o.publicKeys?.approvers),
    },
    executor: executorJson(o.executor),
    policy_bundles: policyBundles(o, entries),
    exports: requestIndex(entries),
  };
  return { bundle, text: `${canonicalize(bundle)}\n` };
}
