/**
 * Rows of the PostgreSQL ledger store, both ways (SPEC §4, L7 ledger protection). Reading: a
 * database row is a trust boundary (STYLE "Untrusted input"), so every row is parsed, every entry
 * body goes through the same `parseStoredEntry` (shape and own hash) as the SQLite store's, and
 * anything malformed throws {@link FailclosedError} `ERR_LEDGER_UNAVAILABLE`. Writing: a batch
 * becomes column arrays for one `unnest` statement, and the open-request changes of the batch are
 * folded in memory exactly as the SQLite store's `derived.ts` applies them entry by entry.
 */
import { FailclosedError, parseJson, settlesAttempt, sha256Hex } from '../../kernel/index.js';
import { entryJson, parseStoredEntry, type LedgerEntry } from '../../ledger/index.js';
import { GATE_INSTANCE_PREFIX } from './instance-lease.js';
import type {
  EvidenceBlob,
  OpenRequest,
  StoredCheckpoint,
  TreeChunk,
  TreeSnapshot,
} from '../../ledger/index.js';
import { rowBytes, rowInt, rowText } from './rows.js';

/** Largest entry body read back (the SQLite store's limit). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** `err` as a `ERR_LEDGER_UNAVAILABLE` denial (kept as is when it already is one). */
export function unavailable(err: unknown, message = 'ledger database failed'): FailclosedError {
  if (err instanceof FailclosedError && err.code === 'ERR_LEDGER_UNAVAILABLE') return err;
  return new FailclosedError('ERR_LEDGER_UNAVAILABLE', message, { cause: err });
}

/** A row as `pg` returns it: untyped until parsed. */
export type Row = Readonly<Record<string, unknown>>;

/**
 * Parses one `(idx, body)` row into an entry, hash-checked; `accept` is what the query selected
 * it by (a row whose extracted columns disagree with its body is refused, not filtered out).
 */
export function entryFromRow(row: Row, accept?: (e: LedgerEntry) => boolean): LedgerEntry {
  try {
    const idx = rowInt(row['idx'], 'ledger_entries.idx');
    const e = parseStoredEntry(
      parseJson(rowText(row['body'], 'ledger_entries.body'), { maxBytes: MAX_BODY_BYTES }),
      idx,
    );
    if (accept !== undefined && !accept(e))
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', `stored entry ${idx} does not match its columns`);
    return e;
  } catch (err) {
    throw unavailable(err, 'stored entry is malformed');
  }
}

/** Parses a `ledger_checkpoints` row; malformed → `ERR_LEDGER_UNAVAILABLE`. */
export function checkpointFromRow(row: Row): StoredCheckpoint {
  try {
    return Object.freeze({
      size: rowInt(row['size'], 'ledger_checkpoints.size'),
      root_hash: rowText(row['root_hash'], 'ledger_checkpoints.root_hash'),
      note: rowText(row['note'], 'ledger_checkpoints.note'),
      at: rowText(row['at'], 'ledger_checkpoints.at'),
    });
  } catch (err) {
    throw unavailable(err, 'stored checkpoint is malformed');
  }
}

/** Parses a `ledger_evidence` row and re-hashes its body; altered → `ERR_LEDGER_UNAVAILABLE`. */
export function evidenceFromRow(row: Row): EvidenceBlob {
  const sha256 = row['sha256'];
  const body = row['body'];
  if (typeof sha256 !== 'string' || !Buffer.isBuffer(body) || sha256Hex(body) !== sha256)
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'stored evidence is altered');
  try {
    return Object.freeze({
      sha256,
      media_type: rowText(row['media_type'], 'ledger_evidence.media_type'),
      body,
    });
  } catch (err) {
    throw unavailable(err, 'stored evidence is malformed');
  }
}

function rowOwner(v: unknown): string {
  if (typeof v !== 'string' || v.length > 200) throw new TypeError('ledger_open_requests.owner is malformed');
  return v;
}

/** Parses a `ledger_open_requests` row; malformed → `ERR_LEDGER_UNAVAILABLE`. */
export function openRequestFromRow(row: Row): OpenRequest {
  try {
    return Object.freeze({
      accepted_index: rowInt(row['accepted_idx'], 'ledger_open_requests.accepted_idx'),
      request_id: rowText(row['request_id'], 'ledger_open_requests.request_id'),
      trace_id: rowText(row['trace_id'], 'ledger_open_requests.trace_id'),
      // '' is a request of a store no instance owned (or one accepted before owners were recorded).
      ...(row['owner'] === undefined || row['owner'] === '' ? {} : { owner: rowOwner(row['owner']) }),
    });
  } catch (err) {
    throw unavailable(err, 'open request row is malformed');
  }
}

/**
 * The snapshot in rows of `(size, level, chunk, hashes)` (one per chunk; one row with null chunk
 * columns when the snapshot has no chunks; none when there is no snapshot).
 */
export function snapshotFromRows(rows: readonly Row[]): TreeSnapshot | undefined {
  const first = rows[0];
  if (first === undefined) return undefined;
  try {
    const size = rowInt(first['size'], 'ledger_meta.value');
    const chunks: TreeChunk[] = [];
    for (const r of rows) {
      if (r['level'] === null && rows.length === 1) break;
      chunks.push({
        level: rowInt(r['level'], 'ledger_tree_chunks.level'),
        chunk: rowInt(r['chunk'], 'ledger_tree_chunks.chunk'),
        hashes: rowBytes(r['hashes'], 'ledger_tree_chunks.hashes'),
      });
    }
    return { size, chunks };
  } catch (err) {
    throw unavailable(err, 'tree chunk row is malformed');
  }
}

/** `payload.jti` of an `envelope.issued` entry (its `jti` lookup column), else null. */
export function issuedJti(e: LedgerEntry): string | null {
  const v = e.payload['jti'];
  return e.type === 'envelope.issued' && typeof v === 'string' ? v : null;
}

/** `payload.decision_id` of an `approval.finalized` entry (its `decision_id` lookup column), else null. */
export function finalizedDecision(e: LedgerEntry): string | null {
  const v = e.payload['decision_id'];
  return e.type === 'approval.finalized' && typeof v === 'string' ? v : null;
}

/**
 * The parameters of the append statement for one batch, in its placeholder order: the first
 * index (null when no entries), the entry columns, the evidence columns, the (request, trace)
 * pairs whose stored open requests the batch closes, and the requests it leaves open.
 */
export function batchParams(
  entries: readonly LedgerEntry[],
  evidence: readonly EvidenceBlob[],
  owner: string,
): unknown[] {
  const col = <T>(f: (e: LedgerEntry) => T): T[] => entries.map(f);
  // Entry by entry as derived.ts does: an outcome closes the stored requests of its (request,
  // trace) and those opened earlier in this batch; a request accepted after it stays open.
  const opened = new Map<string, { idx: number; request_id: string; trace_id: string; owner: string }[]>();
  const closed = new Map<string, { request_id: string; trace_id: string }>();
  for (const e of entries) {
    if (e.request_id === '') continue;
    const key = JSON.stringify([e.request_id, e.trace_id]);
    if (e.type === 'gateway.accepted' && e.actor.role === 'gate') {
      const list = opened.get(key) ?? [];
      // A keyless Gate's request is that Gate's own (`gate_instance`, which the Control Plane
      // admits only as a `gate/` id); any other is the appending instance's.
      const gate = e.payload['gate_instance'];
      list.push({
        idx: e.index,
        request_id: e.request_id,
        trace_id: e.trace_id,
        owner: typeof gate === 'string' && gate.startsWith(GATE_INSTANCE_PREFIX) ? gate : owner,
      });
      opened.set(key, list);
    } else if (settlesAttempt(e)) {
      opened.delete(key);
      closed.set(key, { request_id: e.request_id, trace_id: e.trace_id });
    }
  }
  const open = [...opened.values()].flat();
  const shut = [...closed.values()];
  return [
    entries[0]?.index ?? null,
    col((e) => e.index),
    col((e) => e.entry_hash),
    col((e) => e.type),
    col((e) => e.trace_id),
    col((e) => e.request_id),
    col((e) => e.tenant),
    col(issuedJti),
    col(finalizedDecision),
    col((e) => entryJson(e)),
    evidence.map((b) => b.sha256),
    evidence.map((b) => b.media_type),
    evidence.map((b) => b.body),
    shut.map((c) => c.request_id),
    shut.map((c) => c.trace_id),
    open.map((o) => o.idx),
    open.map((o) => o.request_id),
    open.map((o) => o.trace_id),
    open.map((o) => o.owner),
  ];
}
