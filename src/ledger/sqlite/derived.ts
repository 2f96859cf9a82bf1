/**
 * What the SQLite ledger store keeps beside its entries so that opening stays cheap (SPEC §4,
 * §5): the Merkle tree snapshot written at checkpoints (`tree_chunks`, `store_meta.tree_size`)
 * and the requests accepted without an outcome yet (`open_requests`, maintained in the same
 * transaction as the entries). Neither is trusted on its own: the writer checks the snapshot
 * against the signed checkpoint, and crash recovery reads each open request's entries.
 */
import type Database from 'better-sqlite3';
import { BEFORE_ACCEPTANCE_STATUSES, FailclosedError, settlesAttempt } from '../../kernel/index.js';
import type { LedgerEntry } from '../entry.js';
import { REQUEST_OUTCOME_TYPES } from '../store.js';
import type { OpenRequest, TreeChunk, TreeSnapshot } from '../store.js';

export const DERIVED_SCHEMA = `
CREATE TABLE IF NOT EXISTS store_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS tree_chunks (
  level INTEGER NOT NULL,
  chunk INTEGER NOT NULL,
  hashes BLOB NOT NULL,
  PRIMARY KEY (level, chunk)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_requests (
  accepted_idx INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL,
  trace_id TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS open_requests_request ON open_requests(request_id, trace_id);
`;

const OUTCOMES = [...REQUEST_OUTCOME_TYPES].map((t) => `'${t}'`).join(', ');
/** Statuses of refusals before acceptance, which settle no attempt (`settlesAttempt`). */
const BEFORE_ACCEPTANCE = [...BEFORE_ACCEPTANCE_STATUSES].map((t) => `'${String(t)}'`).join(', ');

/** The derived tables' statements over one connection. */
export interface DerivedTables {
  /** Inside the append transaction: opens and closes requests for `entries`. */
  track(entries: readonly LedgerEntry[]): void;
  openRequests(): OpenRequest[];
  /** Of `accepted` (indices of `gateway.accepted` entries), the requests still open. */
  openAmong(accepted: readonly number[]): OpenRequest[];
  treeSnapshot(): TreeSnapshot | undefined;
  putTreeSnapshot(snapshot: TreeSnapshot): void;
}

/**
 * Fills `open_requests` from the entries of a ledger created before the table existed (the only
 * full scan), once: `store_meta.open_requests` records that it ran. Part of schema version 1,
 * inside the migration transaction.
 */
export function backfillOpenRequests(db: Database.Database): void {
  const done = db.prepare<[string], { value: number }>('SELECT value FROM store_meta WHERE key = ?');
  if (done.get('open_requests') !== undefined) return;
  db.exec(`INSERT OR IGNORE INTO open_requests (accepted_idx, request_id, trace_id)
    SELECT a.idx, a.request_id, a.trace_id FROM entries a
    WHERE a.type = 'gateway.accepted' AND a.request_id <> ''
      AND json_extract(a.body, '$.actor.role') = 'gate'
      AND NOT EXISTS (SELECT 1 FROM entries o WHERE o.request_id = a.request_id
        AND o.trace_id = a.trace_id AND o.idx > a.idx AND o.type IN (${OUTCOMES})
        AND NOT (o.type = 'gateway.failed'
          AND coalesce(json_extract(o.body, '$.payload.status'), '') IN (${BEFORE_ACCEPTANCE})))`);
  db.prepare("INSERT INTO store_meta (key, value) VALUES ('open_requests', 1)").run();
}

/** Parses an `open_requests` row: database rows are a trust boundary. */
function openRow(r: { accepted_idx: unknown; request_id: unknown; trace_id: unknown }): OpenRequest {
  if (
    !Number.isSafeInteger(r.accepted_idx) ||
    typeof r.request_id !== 'string' ||
    typeof r.trace_id !== 'string'
  )
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'open request row is malformed');
  return Object.freeze({
    accepted_index: r.accepted_idx as number,
    request_id: r.request_id,
    trace_id: r.trace_id,
  });
}

/** Prepares the derived tables of a writable store (created by schema version 1). */
export function prepareDerived(db: Database.Database): DerivedTables {
  const getMeta = db.prepare<[string], { value: number }>('SELECT value FROM store_meta WHERE key = ?');
  const setMeta = db.prepare(
    'INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  );
  const openOne = db.prepare(
    'INSERT OR IGNORE INTO open_requests (accepted_idx, request_id, trace_id) VALUES (?, ?, ?)',
  );
  const closeOne = db.prepare(
    'DELETE FROM open_requests WHERE request_id = ? AND trace_id = ? AND accepted_idx < ?',
  );
  const allOpen = db.prepare<[], { accepted_idx: number; request_id: string; trace_id: string }>(
    'SELECT accepted_idx, request_id, trace_id FROM open_requests ORDER BY accepted_idx',
  );
  const oneOpen = db.prepare<[number], { accepted_idx: number; request_id: string; trace_id: string }>(
    'SELECT accepted_idx, request_id, trace_id FROM open_requests WHERE accepted_idx = ?',
  );
  const allChunks = db.prepare<[], { level: number; chunk: number; hashes: Buffer }>(
    'SELECT level, chunk, hashes FROM tree_chunks ORDER BY level, chunk',
  );
  const putChunk = db.prepare(
    'INSERT INTO tree_chunks (level, chunk, hashes) VALUES (?, ?, ?) ON CONFLICT(level, chunk) DO UPDATE SET hashes = excluded.hashes',
  );

  const dropChunks = db.prepare('DELETE FROM tree_chunks');
  const putSnapshot = db.transaction((snapshot: TreeSnapshot) => {
    if (snapshot.replaceAll === true) dropChunks.run();
    for (const c of snapshot.chunks) putChunk.run(c.level, c.chunk, c.hashes);
    setMeta.run('tree_size', snapshot.size);
  });

  return {
    track(entries) {
      for (const e of entries) {
        if (e.request_id === '') continue;
        if (e.type === 'gateway.accepted' && e.actor.role === 'gate')
          openOne.run(e.index, e.request_id, e.trace_id);
        else if (settlesAttempt(e)) closeOne.run(e.request_id, e.trace_id, e.index);
      }
    },
    openRequests: () => allOpen.all().map(openRow),
    openAmong: (accepted) =>
      accepted.flatMap((i) => {
        if (!Number.isSafeInteger(i) || i < 0) return [];
        const r = oneOpen.get(i);
        return r === undefined ? [] : [openRow(r)];
      }),
    treeSnapshot() {
      const size = getMeta.get('tree_size')?.value;
      if (size === undefined) return undefined;
      const chunks: TreeChunk[] = allChunks.all().map((r) => {
        if (!Number.isSafeInteger(r.level) || !Number.isSafeInteger(r.chunk) || !Buffer.isBuffer(r.hashes))
          throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'tree chunk row is malformed');
        return { level: r.level, chunk: r.chunk, hashes: r.hashes };
      });
      return { size, chunks };
    },
    putTreeSnapshot: (snapshot) => putSnapshot.immediate(snapshot),
  };
}
