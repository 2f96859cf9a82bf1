/**
 * The storage interface behind the ledger writer (SPEC §4 "Backends: SQLite and PostgreSQL.
 * Both pass one shared contract test suite"). Small on purpose, kysely style: one folder per
 * backend (`sqlite/`, `postgres/`), every backend run through `test/ledger/store.contract.ts`.
 *
 * Stores are dumb and durable: they never assign indices or hashes (the single writer does), but
 * they refuse anything that would break append-only contiguity, and they parse every row they
 * read (a database row is a trust boundary).
 */
import type { StagedWrite } from '../kernel/index.js';
import type { LedgerEntry } from './entry.js';

/** A signed checkpoint as stored: every checkpoint is kept (SPEC §4). */
export interface StoredCheckpoint {
  /** Tree size the checkpoint commits to. */
  readonly size: number;
  /** Lower-hex RFC 6962 root hash of the first `size` entries. */
  readonly root_hash: string;
  /** The C2SP signed note (tlog-checkpoint body plus signature lines). */
  readonly note: string;
  /** ISO-8601 UTC time the checkpoint was signed, from the injected clock. */
  readonly at: string;
}

/** A content-addressed evidence blob (raw signed request, exports) referenced by hash from entries. */
export interface EvidenceBlob {
  /** Lower-hex SHA-256 of `body`; the primary key. */
  readonly sha256: string;
  readonly media_type: string;
  readonly body: Buffer;
}

/**
 * What the Execution Layer reads before it consumes an envelope's nonce (L7 Boundary B): the
 * entry its `ledger` claim names, the `envelope.issued` entries for its `jti` and the
 * `approval.finalized` entries for its decision, read in one snapshot.
 */
export interface EnvelopeContext {
  /** The entry at the queried index, or undefined. */
  readonly decision: LedgerEntry | undefined;
  /** `envelope.issued` entries whose `payload.jti` is the queried jti, ascending. */
  readonly issued: readonly LedgerEntry[];
  /** `approval.finalized` entries whose `payload.decision_id` is the queried decision, ascending. */
  readonly finalized: readonly LedgerEntry[];
}

/** The head of a store: its size and its last entry (undefined when empty). */
export interface StoreHead {
  readonly size: number;
  readonly last: LedgerEntry | undefined;
}

/**
 * A run of persisted Merkle tree hashes: positions [chunk × TREE_CHUNK_HASHES, …) of `level`
 * (see `MerkleTree.nodes`), at most {@link TREE_CHUNK_HASHES} hashes.
 */
export interface TreeChunk {
  readonly level: number;
  readonly chunk: number;
  readonly hashes: Buffer;
}

/** Hashes per persisted tree chunk: a few KiB rewritten per checkpoint, ~n/128 rows read on open. */
export const TREE_CHUNK_HASHES = 256;

/** The persisted Merkle levels of the first `size` entries (written at checkpoints). */
export interface TreeSnapshot {
  readonly size: number;
  readonly chunks: readonly TreeChunk[];
  /** The chunks are the whole tree: drop any stored before (a snapshot written from size 0). */
  readonly replaceAll?: true;
}

/**
 * A request the Gate accepted (`gateway.accepted`) for which the ledger holds no outcome record
 * (`gateway.completed`, `gateway.failed`, `request.abandoned`) yet (SPEC §5, FC-INV-5).
 */
export interface OpenRequest {
  /** Index of its `gateway.accepted` entry. */
  readonly accepted_index: number;
  readonly request_id: string;
  readonly trace_id: string;
  /**
   * The gate instance that accepted it, on stores several gate processes share (PostgreSQL):
   * only that instance, or another once that one is gone, may record its outcome. Undefined on
   * stores one process owns.
   */
  readonly owner?: string;
}

/** Entry types that close a request the Gate accepted (FC-INV-5): its outcome records. */
export const REQUEST_OUTCOME_TYPES: ReadonlySet<string> = new Set([
  'gateway.completed',
  'gateway.failed',
  'request.abandoned',
]);

/**
 * A durable ledger backend. Every method that writes resolves only after the data is durable
 * (SQLite: committed and the log `fsync`ed, `src/kernel/sqlite-commit.ts`; PostgreSQL: commit); any failure rejects, and callers map it to
 * `ERR_LEDGER_UNAVAILABLE` (L7 degraded mode: deny).
 */
export interface LedgerStore {
  /** Backend name, e.g. `sqlite`. */
  readonly backend: string;
  /**
   * Appends `entries` (consecutive indices, the first equal to the current size; may be empty)
   * and stores `evidence` blobs (idempotent by hash) in ONE transaction: all or nothing, one
   * durable commit for the whole group (SPEC §8 durable writes). Rejects on any conflict or I/O
   * failure; then neither the entries nor the blobs of the call are stored.
   */
  appendBatch(entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]): Promise<void>;
  /**
   * Optional (a store on the embedded deployment's shared connection, `sqlite-commit.ts`):
   * writes what {@link appendBatch} writes, with the same checks, now, inside the connection's
   * open transaction, and hands back the commit that makes it durable. Throws (synchronously)
   * on a conflict, e.g. indices that do not continue the stored head. The writer then pipelines:
   * it seals each entry at once after the last one written and lets callers wait for durability
   * together (`durability.ts`). With `ifOpen` (a conditional append of one outcome record, see
   * {@link LedgerStore.openAmong}) it first checks, in the same transaction, that the request whose
   * `gateway.accepted` is at that index is still open, and otherwise throws
   * `ERR_LEDGER_REQUEST_CLOSED` having written nothing (also when that request is not the one of
   * the batch's one entry).
   */
  stageBatch?(
    entries: readonly LedgerEntry[],
    evidence?: readonly EvidenceBlob[],
    ifOpen?: number,
  ): StagedWrite<void>;
  /**
   * For a store several writers share (gate replicas on PostgreSQL; SPEC §4 "one writer" holds per
   * transaction): takes the store's append lock, reads the entries other writers committed from
   * index `from` on, hands them to `seal`, which verifies that they continue the chain the caller
   * knows and returns its own batch sealed to follow them, and appends that batch with `evidence`
   * in the same transaction. With `ifOpen`, it also reads, under the lock, which of those accepted
   * indices are still open requests and hands them to `seal` (see {@link LedgerStore.openAmong}).
   * Resolves with the entries read, once the batch is durable. Rejects,
   * storing nothing, when `seal` throws, the lock or the database fails, or this writer may no
   * longer append. Undefined on stores one writer owns.
   */
  appendShared?(
    from: number,
    seal: (committed: readonly LedgerEntry[], open: readonly OpenRequest[]) => readonly LedgerEntry[],
    evidence?: readonly EvidenceBlob[],
    ifOpen?: readonly number[],
  ): Promise<readonly LedgerEntry[]>;
  /**
   * Optional, with {@link appendShared}: the same append in one round trip, for a writer that
   * believes no other writer appended since its own last commit (so `entries`, non-empty, are
   * sealed after its own head). Writes `entries` and `evidence`, in one transaction, only if the
   * append lock is free at once, `entries` continue the stored head, and each of `open` (accepted
   * index, request and trace) is still an open request. Resolves true once durable; false when a
   * condition does not hold, having stored nothing (the writer then takes `appendShared`, which
   * reads what the others committed). Rejects on any other failure, as `appendShared` does.
   */
  appendIfHead?(
    entries: readonly LedgerEntry[],
    evidence: readonly EvidenceBlob[],
    open: readonly OpenRequest[],
  ): Promise<boolean>;
  /**
   * Of `accepted` (indices of `gateway.accepted` entries), the requests still open, as the next
   * append of a store one writer owns would find them. Conditional appends (an outcome recorded
   * only while its request is open: the writer's `append(…, { ifOpen })`) read it before they are
   * sealed; on a shared store `appendShared` reads the same under its append lock (its `ifOpen`,
   * handed to `seal`). Optional: without it a conditional append is refused.
   */
  openAmong?(accepted: readonly number[]): Promise<OpenRequest[]>;
  /** Current size and last entry. */
  head(): Promise<StoreHead>;
  /**
   * The size implied by the largest stored index, by one indexed read: unlike {@link head} it
   * counts no rows, so it does not detect a gap (every entry read after it is still checked).
   * A writer sharing the store reads it before each commit to see how far the others have gone
   * (SPEC §4, L7 ledger protection). Optional.
   */
  tipSize?(): Promise<number>;
  /** Entries with `from <= index < to`, ascending. */
  readRange(from: number, to: number): Promise<LedgerEntry[]>;
  /** The entry at `index`, or undefined. */
  entry(index: number): Promise<LedgerEntry | undefined>;
  /**
   * The {@link EnvelopeContext} of one envelope, by indexed lookups in one read snapshot (one
   * round trip on a networked backend): the hot path of every execution.
   */
  readEnvelopeContext(query: {
    readonly index: number;
    readonly jti: string;
    readonly decision_id: string;
  }): Promise<EnvelopeContext>;
  /** Entries of one trace, ascending by index. */
  readByTrace(traceId: string): Promise<LedgerEntry[]>;
  /** Entries of one request, ascending by index. */
  readByRequest(requestId: string): Promise<LedgerEntry[]>;
  /** Entries of one tenant, ascending by index, starting at `from` (default 0), at most `limit` (default 1000). */
  readByTenant(
    tenant: string,
    opts?: { readonly from?: number; readonly limit?: number },
  ): Promise<LedgerEntry[]>;
  /** Stores a checkpoint; storing the same size twice is a no-op. */
  putCheckpoint(cp: StoredCheckpoint): Promise<void>;
  /** Every stored checkpoint, ascending by size. */
  checkpoints(): Promise<StoredCheckpoint[]>;
  /** The checkpoint with the largest size, or undefined. */
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** Stores an evidence blob durably on its own; idempotent by hash. The writer batches blobs through `appendBatch`. */
  putEvidence(blob: EvidenceBlob): Promise<void>;
  /** The evidence blob with that hash, or undefined. */
  getEvidence(sha256: string): Promise<EvidenceBlob | undefined>;
  /**
   * The tree snapshot written last by {@link putTreeSnapshot}, or undefined. Optional: a store
   * without it is opened by re-hashing every entry.
   */
  treeSnapshot?(): Promise<TreeSnapshot | undefined>;
  /** Replaces the stored snapshot by `snapshot` (its chunks upserted) in one transaction. */
  putTreeSnapshot?(snapshot: TreeSnapshot): Promise<void>;
  /**
   * Requests accepted and not yet closed by an outcome record, maintained in the same
   * transaction as the entries (so crash recovery never scans the ledger), ascending. Optional:
   * without it, crash recovery is not available and the deployment refuses to start.
   */
  openRequests?(): Promise<OpenRequest[]>;
  /** Releases the backend. */
  close(): Promise<void>;
}
