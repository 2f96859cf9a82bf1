/**
 * The streamed audit-bundle export (`failclosed.audit-bundle/v2`, docs/ledger.md "Audit
 * bundle"; SPEC §5 "failclosed ledger export", L7 read path controls "Export controls for audit
 * downloads"). As for v1, the export is ledgered as `audit.export` before anything is read and a
 * checkpoint covering it is signed; then the bundle is produced as JSON Lines, chunk by chunk,
 * from a reader that may be a separate read-only connection (SQLite WAL lets it read while the
 * writer appends), yielding to the event loop between chunks so live calls keep flowing. Memory
 * holds one chunk, whatever the ledger's size.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { FailclosedError, type JsonValue } from '../kernel/index.js';
import { entryJson, type LedgerEntry } from './entry.js';
import { clientIdentities, executorJson } from './export-linkage.js';
import { recordExport, type ExportOptions } from './export.js';
import type { EvidenceBlob, LedgerStore, StoredCheckpoint } from './store.js';

/** The streamed bundle format tag. */
export const AUDIT_BUNDLE_FORMAT_V2 = 'failclosed.audit-bundle/v2';

/** Entries per chunk: the most an export holds in memory, and the longest it keeps the event loop. */
export const EXPORT_CHUNK_ENTRIES = 256;

/** What the export reads: a read-only view of the ledger store (a separate connection in production). */
export type LedgerReader = Pick<LedgerStore, 'readRange' | 'readByTrace' | 'getEvidence'>;

/** Options of {@link exportBundleStream}: those of `exportBundle`, and where to read from. */
export interface StreamExportOptions extends ExportOptions {
  /** Reads entries and evidence; default the writer's own store. */
  readonly reader?: LedgerReader;
  /** Entries per chunk (default {@link EXPORT_CHUNK_ENTRIES}). */
  readonly chunkEntries?: number;
}

/** A started export: its ledger record and the bundle's lines (each newline-terminated). */
export interface StreamedExport {
  readonly exportEntry: { readonly index: number; readonly entry_hash: string };
  readonly checkpoint: StoredCheckpoint;
  readonly lines: AsyncIterable<string>;
}

const SHA_FIELD = /_sha256$/;
const HEX64 = /^[0-9a-f]{64}$/;
const POLICY_FIELDS = ['policy_bundle', 'previous_bundle'] as const;

// Records are written with `record` first (the header's first line is the format's magic prefix).
const line = (v: JsonValue): string => `${JSON.stringify(v)}\n`;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function jwksJson(j: ExportOptions['publicKeys'], k: 'issuer' | 'clients' | 'approvers'): JsonValue {
  const v = j?.[k] ?? { keys: [], revoked: [] };
  return { keys: v.keys.map((x) => ({ ...x })), revoked: [...v.revoked] };
}

/**
 * Records the export as `audit.export`, signs a checkpoint covering it, and returns the bundle's
 * lines to stream. Rejects with `ERR_LEDGER_UNAVAILABLE` when the export cannot be recorded or
 * the store cannot be read before streaming starts (no unrecorded export, L7 read path
 * controls); a read failure while streaming ends the iteration with that error, so the bundle
 * lacks its end record and no verifier accepts it.
 */
export async function exportBundleStream(o: StreamExportOptions): Promise<StreamedExport> {
  if (o.traceId !== undefined && (o.from !== undefined || o.to !== undefined))
    throw new TypeError('export either a trace or a range');
  const from = o.from ?? 0;
  if (!Number.isSafeInteger(from) || from < 0 || (o.to !== undefined && !Number.isSafeInteger(o.to)))
    throw new TypeError('invalid export range');
  const exportEntry = await recordExport(o, 'v2');
  try {
    const checkpoint = await o.ledger.checkpoint();
    const size = checkpoint.size;
    const reader = o.reader ?? o.ledger.store;
    const to = Math.min(o.to ?? size - 1, size - 1);
    if (o.traceId === undefined && to < from) throw new TypeError('invalid export range');
    // A trace is small: read it whole to know its anchors before the header.
    const traceEntries =
      o.traceId === undefined
        ? undefined
        : (await reader.readByTrace(o.traceId)).filter((e) => e.index < size);
    const whole = traceEntries === undefined && from === 0 && to === size - 1;
    const anchors: JsonValue[] = [];
    if (traceEntries !== undefined) {
      const present = new Set(traceEntries.map((e) => e.index));
      for (const e of traceEntries)
        if (e.index > 0 && !present.has(e.index - 1))
          anchors.push({ index: e.index - 1, entry_hash: e.prev_hash });
    } else if (from > 0) {
      const [pred] = await reader.readRange(from - 1, from);
      if (pred !== undefined) anchors.push({ index: pred.index, entry_hash: pred.entry_hash });
    }
    const older: JsonValue[] = (await o.ledger.store.checkpoints())
      .filter((c) => c.size >= 1 && c.size < size)
      .map((c) => ({ note: c.note, consistency: o.ledger.proveConsistency(c.size, size) }));
    const header: JsonValue = {
      record: 'header',
      format: AUDIT_BUNDLE_FORMAT_V2,
      origin: o.ledger.origin,
      ledger_key: { vkey: o.ledger.ledgerKey.vkey, jwk: { ...o.ledger.ledgerKey.jwk } },
      scope:
        traceEntries !== undefined
          ? { kind: 'trace', trace_id: o.traceId ?? '' }
          : { kind: 'range', from, to },
      checkpoint: checkpoint.note,
      inclusion_proofs: !whole,
      anchors,
      anchor_proofs: anchors.map((a) => {
        const index = (a as { index: number }).index;
        return { index, hashes: o.ledger.proveInclusion(index, size) };
      }),
      older_checkpoints: older,
      jwks: {
        issuer: jwksJson(o.publicKeys, 'issuer'),
        clients: jwksJson(o.publicKeys, 'clients'),
        client_identities: clientIdentities(o.publicKeys?.clientIdentities),
        approvers: jwksJson(o.publicKeys, 'approvers'),
      },
      executor: executorJson(o.executor),
    };
    return {
      exportEntry,
      checkpoint,
      lines: body(o, reader, header, size, { from, to, traceEntries, whole }),
    };
  } catch (err) {
    if (err instanceof TypeError || err instanceof FailclosedError) throw err;
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'export could not read the ledger', { cause: err });
  }
}

interface Plan {
  readonly from: number;
  readonly to: number;
  readonly traceEntries: readonly LedgerEntry[] | undefined;
  readonly whole: boolean;
}

async function* body(
  o: StreamExportOptions,
  reader: LedgerReader,
  header: JsonValue,
  size: number,
  plan: Plan,
): AsyncGenerator<string> {
  yield line(header);
  const written = new Set<string>(); // policy bundle hashes already in the bundle (few)
  const step = Math.max(1, o.chunkEntries ?? EXPORT_CHUNK_ENTRIES);
  let count = 0;
  const chunk = async (entries: readonly LedgerEntry[]): Promise<string> => {
    const parts: string[] = [];
    const evidence = new Set<string>();
    for (const e of entries) {
      for (const k of POLICY_FIELDS) {
        const h = e.payload[k];
        if (typeof h !== 'string' || !HEX64.test(h) || written.has(h) || o.policyBundle === undefined)
          continue;
        written.add(h);
        const doc = o.policyBundle(h);
        if (doc !== undefined) parts.push(line({ record: 'policy_bundle', hash: h, document: doc }));
      }
      for (const [k, v] of Object.entries(e.payload)) {
        if (!SHA_FIELD.test(k) || typeof v !== 'string' || !HEX64.test(v) || evidence.has(v)) continue;
        evidence.add(v);
        const blob: EvidenceBlob | undefined = await reader.getEvidence(v);
        if (blob !== undefined)
          parts.push(
            line({
              record: 'evidence',
              sha256: v,
              media_type: blob.media_type,
              body_b64: blob.body.toString('base64'),
            }),
          );
      }
    }
    for (const i of plan.whole ? [] : entries.map((e) => e.index))
      parts.push(line({ record: 'inclusion', index: i, hashes: o.ledger.proveInclusion(i, size) }));
    for (const e of entries) parts.push(`{"record":"entry","entry":${entryJson(e)}}\n`);
    count += entries.length;
    return parts.join('');
  };
  if (plan.traceEntries !== undefined) {
    for (let i = 0; i < plan.traceEntries.length; i += step) {
      yield await chunk(plan.traceEntries.slice(i, i + step));
      await yieldToLoop();
    }
  } else {
    for (let a = plan.from; a <= plan.to; a += step) {
      const entries = await reader.readRange(a, Math.min(a + step, plan.to + 1));
      if (entries.length === 0) break;
      yield await chunk(entries);
      // Give live calls the event loop between chunks.
      await yieldToLoop();
    }
  }
  yield line({ record: 'end', entries: count });
}

/**
 * Writes streamed bundle lines to `path` (through `path.partial`, renamed once the end record is
 * written: a failed export leaves no file that looks whole). Honours the file stream's
 * backpressure, so memory stays at one chunk.
 */
export async function writeBundleFile(lines: AsyncIterable<string>, path: string): Promise<number> {
  const partial = `${path}.partial`;
  const out = createWriteStream(partial, { mode: 0o600 });
  let bytes = 0;
  try {
    for await (const l of lines) {
      bytes += Buffer.byteLength(l);
      if (!out.write(l)) await once(out, 'drain');
    }
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    await rename(partial, path);
    return bytes;
  } catch (err) {
    out.destroy();
    await rm(partial, { force: true });
    throw err;
  }
}
