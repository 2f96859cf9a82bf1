/**
 * PostgreSQL {@link LedgerStore} (SPEC §1 "Distributed", §4 "Backends: SQLite and PostgreSQL"):
 * the shared ledger of replicated roles, over the tables of schema v1 (`migrations.ts`). It runs
 * the same contract suite as the SQLite store and keeps the same derived state: open requests
 * maintained in the append transaction, the Merkle tree snapshot (`ledger_tree_chunks`,
 * `ledger_meta.tree_size`).
 *
 * A write resolves only after PostgreSQL committed it (SPEC §4 "Writes are durable before they are acknowledged";
 * GEI "If the ledger write fails, the tool does not run", SPEC §2 step 4). Every failure — a
 * stopped, slow or garbled database, a conflict, a stale writer, a malformed row — rejects with
 * {@link FailclosedError} `ERR_LEDGER_UNAVAILABLE` (L7 degraded mode: deny).
 */
import { FailclosedError } from '../../kernel/index.js';
import type {
  EvidenceBlob,
  LedgerEntry,
  LedgerStore,
  OpenRequest,
  StoreHead,
  TreeSnapshot,
} from '../../ledger/index.js';
import {
  batchParams,
  checkpointFromRow,
  entryFromRow,
  evidenceFromRow,
  finalizedDecision,
  issuedJti,
  openRequestFromRow,
  snapshotFromRows,
  unavailable,
  type Row,
} from './ledger-rows.js';
import { inTransaction } from './pool.js';
import type { PostgresPool } from './pool.js';
import { rowInt } from './rows.js';
import type { InstanceLease } from './instance-lease.js';
import { WRITER_LOCK_CLASS } from './writer-lock.js';

/** Options of {@link createPostgresLedgerStore}. */
export interface PostgresLedgerStoreOptions {
  /** A reader's view: every write is refused (exports read past the writers' queue). */
  readonly readonly?: boolean;
  /**
   * For a store several gate replicas append to (every replica active): the lease of this
   * instance, or undefined while none is held. When given, the store has `appendShared`: appends
   * run on the lease's session under the ledger's transaction-scoped append lock, and the requests
   * they open are recorded as owned by the lease's instance. Without a held lease every append is
   * refused.
   */
  readonly shared?: () => InstanceLease | undefined;
}

/**
 * One statement for a whole batch (see `batchParams` for $1–$19): the head check, the entries,
 * the evidence and the open-request changes, every part conditional on the head check, so a
 * refused batch writes nothing even outside an explicit transaction. A duplicate index conflicts
 * on the primary key and fails the statement as a whole.
 */
const APPEND = `
WITH head AS (
  SELECT $1::bigint IS NULL OR coalesce(max(idx) + 1, 0) = $1::bigint AS ok FROM ledger_entries
), ins AS (
  INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, jti, decision_id, body)
  SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[])
  WHERE (SELECT ok FROM head)
  RETURNING 1
), ev AS (
  INSERT INTO ledger_evidence (sha256, media_type, body)
  SELECT * FROM unnest($11::text[], $12::text[], $13::bytea[]) WHERE (SELECT ok FROM head)
  ON CONFLICT (sha256) DO NOTHING
), closed AS (
  DELETE FROM ledger_open_requests o USING unnest($14::text[], $15::text[]) AS c(request_id, trace_id)
  WHERE (SELECT ok FROM head) AND o.request_id = c.request_id AND o.trace_id = c.trace_id
    AND o.accepted_idx < $1::bigint
), opened AS (
  INSERT INTO ledger_open_requests (accepted_idx, request_id, trace_id, owner)
  SELECT * FROM unnest($16::bigint[], $17::text[], $18::text[], $19::text[])
  WHERE (SELECT ok FROM head)
  ON CONFLICT (accepted_idx) DO NOTHING
)
SELECT (SELECT ok FROM head) AS ok, (SELECT count(*) FROM ins) AS inserted`;

/**
 * {@link APPEND} for a writer that believes it holds the head ($20–$25, `appendIfHead`): the
 * batch is written only if the append lock is free at once (taken for this statement's
 * transaction), the batch continues the stored head and links to the stored entry before it
 * (`linked`: $25, its `prev_hash`, null at index 0), and every request it is conditional on is
 * still open. The statement's snapshot precedes the lock: a writer that committed in between
 * wrote the index this batch starts at, so the primary key refuses it (unique violation).
 */
const APPEND_IF_HEAD = APPEND.replace(
  /^WITH head AS \(\n.*\n\),/m,
  `WITH lock AS (
  SELECT pg_try_advisory_xact_lock($20::integer, hashtext($21::text)) AS got
), link AS (
  SELECT $25::text IS NOT DISTINCT FROM (SELECT entry_hash FROM ledger_entries WHERE idx = $1::bigint - 1)
    AS linked
), head AS (
  SELECT (SELECT got FROM lock) AND (SELECT linked FROM link)
    AND $1::bigint IS NOT NULL AND coalesce(max(idx) + 1, 0) = $1::bigint
    AND (SELECT count(*) FROM ledger_open_requests o
         JOIN unnest($22::bigint[], $23::text[], $24::text[]) AS c(accepted_idx, request_id, trace_id)
           ON o.accepted_idx = c.accepted_idx AND o.request_id = c.request_id AND o.trace_id = c.trace_id
        ) = cardinality($22::bigint[]) AS ok
  FROM ledger_entries
),`,
).replace(
  'SELECT (SELECT ok FROM head) AS ok,',
  'SELECT (SELECT ok FROM head) AS ok, (SELECT linked FROM link) AS linked,',
);
if (!APPEND_IF_HEAD.includes('AS linked,') || !APPEND_IF_HEAD.includes('pg_try_advisory_xact_lock'))
  throw new Error('APPEND_IF_HEAD did not replace the head check');

/** SQLSTATE of a unique violation: another writer stored that index first. */
const UNIQUE_VIOLATION = '23505';

/** The envelope context in one statement: one round trip, one snapshot. */
const ENVELOPE_CONTEXT = `
SELECT 0 AS part, idx, body FROM ledger_entries WHERE idx = $1
UNION ALL
SELECT 1, idx, body FROM ledger_entries WHERE type = 'envelope.issued' AND jti = $2
UNION ALL
SELECT 2, idx, body FROM ledger_entries WHERE type = 'approval.finalized' AND decision_id = $3
ORDER BY part, idx`;

const HEAD = `
WITH h AS (SELECT count(*) AS n, max(idx) AS m FROM ledger_entries)
SELECT h.n, h.m, e.idx, e.body FROM h LEFT JOIN ledger_entries e ON e.idx = h.m`;

const SNAPSHOT = `
SELECT m.value AS size, c.level, c.chunk, c.hashes
FROM ledger_meta m LEFT JOIN ledger_tree_chunks c ON true
WHERE m.key = 'tree_size' ORDER BY c.level, c.chunk`;

const PUT_CHUNKS = `
INSERT INTO ledger_tree_chunks (level, chunk, hashes)
SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])
ON CONFLICT (level, chunk) DO UPDATE SET hashes = excluded.hashes`;

const ENTRY_COLUMNS = 'SELECT idx, body FROM ledger_entries';
const OPEN_COLUMNS = 'SELECT accepted_idx, request_id, trace_id, owner FROM ledger_open_requests';

/**
 * A ledger store over `db` (migrated to the current schema; see `migrate`). It never assigns
 * indices: it refuses a batch that does not start at its head (no gaps) and, through the primary
 * key, a second entry at an index. `close()` only stops this store (later calls reject); it does
 * NOT end `db`, which the backend that opened it shares between its stores and closes itself.
 */
export function createPostgresLedgerStore(
  db: PostgresPool,
  options: PostgresLedgerStoreOptions = {},
): LedgerStore {
  let closed = false;

  /** Runs one store operation: refused once closed, any failure as `ERR_LEDGER_UNAVAILABLE`. */
  async function guard<T>(fn: () => Promise<T>): Promise<T> {
    if (closed) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'ledger store is closed');
    try {
      return await fn();
    } catch (err) {
      throw unavailable(err);
    }
  }

  const rows = async (sql: string, params: unknown[] = []): Promise<Row[]> =>
    (await db.pool.query<Row>(sql, params)).rows;
  const entries = async (sql: string, params: unknown[], accept?: (e: LedgerEntry) => boolean) =>
    (await rows(sql, params)).map((r) => entryFromRow(r, accept));

  /** Refuses every write of a reader's view. */
  function writable(): void {
    if (options.readonly === true)
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'this ledger store is a read-only view');
  }

  const { shared } = options;
  const owner = (): string => shared?.()?.instance ?? '';

  /** Checks the answer of the append statement for a batch of `n` entries. */
  function appended(row: Row | undefined, n: number): void {
    if (row?.['ok'] !== true)
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'batch does not continue the ledger head');
    if (rowInt(row['inserted'], 'inserted') !== n)
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'batch was not stored whole');
  }

  async function appendShared(
    from: number,
    seal: (committed: readonly LedgerEntry[], open: readonly OpenRequest[]) => readonly LedgerEntry[],
    evidence: readonly EvidenceBlob[],
    ifOpen: readonly number[],
  ): Promise<readonly LedgerEntry[]> {
    writable();
    const lease = shared?.();
    if (lease === undefined || !lease.isHeld())
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'this gate instance holds no lease');
    // On the lease's own session: once it has ended, this instance can never append again.
    if (!Number.isSafeInteger(from) || from < 0) throw new TypeError('from must be a non-negative integer');
    if (!ifOpen.every((i) => Number.isSafeInteger(i) && i >= 0))
      throw new TypeError('ifOpen must hold entry indices');
    return lease.run(async (c) => {
      try {
        // BEGIN, the lock and the reads after it in one round trip (a simple query): each of its
        // statements takes its own snapshot (read committed), so the reads see every entry and
        // every closed request an earlier holder of the lock committed. The schema is validated,
        // `from` and the indices are integers, so all are safe in the text.
        const results = (await c.query(
          `BEGIN; SELECT pg_advisory_xact_lock(${WRITER_LOCK_CLASS}, hashtext('${db.schema}')); ` +
            `${ENTRY_COLUMNS} WHERE idx >= ${from} ORDER BY idx` +
            (ifOpen.length === 0 ? '' : `; ${OPEN_COLUMNS} WHERE accepted_idx IN (${ifOpen.join(', ')})`),
        )) as unknown as readonly { readonly rows: Row[] }[];
        const expected = ifOpen.length === 0 ? 3 : 4;
        const read = results[2];
        const openRows = results[3]?.rows ?? [];
        if (!Array.isArray(results) || results.length !== expected || read === undefined)
          throw new TypeError('the append lock and read answered unexpectedly');
        const committed = read.rows.map((r) => entryFromRow(r));
        const open = openRows.map(openRequestFromRow);
        const list = seal(committed, open);
        if (list.length > 0 || evidence.length > 0) {
          const row = (await c.query<Row>(APPEND, batchParams(list, evidence, lease.instance))).rows[0];
          appended(row, list.length);
        }
        await c.query('COMMIT');
        return committed;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async function appendIfHead(
    list: readonly LedgerEntry[],
    evidence: readonly EvidenceBlob[],
    open: readonly OpenRequest[],
  ): Promise<boolean> {
    writable();
    const lease = shared?.();
    if (lease === undefined || !lease.isHeld())
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'this gate instance holds no lease');
    if (list.length === 0) throw new TypeError('appendIfHead needs entries');
    const params = [
      ...batchParams(list, evidence, lease.instance),
      WRITER_LOCK_CLASS,
      db.schema,
      open.map((o) => o.accepted_index),
      open.map((o) => o.request_id),
      open.map((o) => o.trace_id),
      list[0]!.index === 0 ? null : list[0]!.prev_hash,
    ];
    // On the lease's own session, as appendShared: one statement, its own transaction.
    return lease.run(async (c) => {
      let row: Row | undefined;
      try {
        row = (await c.query<Row>(APPEND_IF_HEAD, params)).rows[0];
      } catch (err) {
        // Refused by the primary key: nothing of the statement was stored.
        if ((err as { code?: unknown } | null)?.code === UNIQUE_VIOLATION) return false;
        throw err;
      }
      // The entry before the batch is not the one this writer sealed after: the stored ledger is
      // not the chain it holds (rewritten or restored). Never a fallback: a refusal.
      if (row?.['linked'] === false)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'batch does not link to the stored chain');
      if (row?.['ok'] === false && rowInt(row['inserted'], 'inserted') === 0) return false;
      appended(row, list.length);
      return true;
    });
  }

  async function append(list: readonly LedgerEntry[], evidence: readonly EvidenceBlob[]): Promise<void> {
    writable();
    // The one statement is its own transaction: one round trip per batch.
    appended((await db.pool.query<Row>(APPEND, batchParams(list, evidence, owner()))).rows[0], list.length);
  }

  async function putSnapshot(snapshot: TreeSnapshot): Promise<void> {
    writable();
    await inTransaction(db.pool, async (client) => {
      if (shared !== undefined) {
        // Replicas write snapshots of one tree at their own sizes: only a larger one replaces it.
        await client.query(
          "INSERT INTO ledger_meta (key, value) VALUES ('tree_size', 0) ON CONFLICT DO NOTHING",
        );
        const r = await client.query<Row>("SELECT value FROM ledger_meta WHERE key = 'tree_size' FOR UPDATE");
        if (rowInt(r.rows[0]?.['value'], 'ledger_meta.value') >= snapshot.size) return;
      }
      if (snapshot.replaceAll === true) await client.query('DELETE FROM ledger_tree_chunks');
      const c = snapshot.chunks;
      if (c.length > 0)
        await client.query(PUT_CHUNKS, [
          c.map((x) => x.level),
          c.map((x) => x.chunk),
          c.map((x) => x.hashes),
        ]);
      await client.query(
        `INSERT INTO ledger_meta (key, value) VALUES ('tree_size', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [snapshot.size],
      );
    });
  }

  return {
    backend: 'postgres',
    appendBatch: (list, evidence = []) =>
      guard(async () => {
        if (list.length === 0 && evidence.length === 0) return;
        if (shared === undefined) return append(list, evidence);
        // Shared: under the append lock on this instance's session too; nothing may precede it.
        await appendShared(
          list[0]?.index ?? Number.MAX_SAFE_INTEGER,
          (committed) => {
            if (committed.length > 0)
              throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'batch does not continue the ledger head');
            return list;
          },
          evidence,
          [],
        );
      }),
    ...(shared === undefined
      ? {}
      : {
          appendShared: (
            from: number,
            seal: (c: readonly LedgerEntry[], open: readonly OpenRequest[]) => readonly LedgerEntry[],
            ev: readonly EvidenceBlob[] = [],
            ifOpen: readonly number[] = [],
          ) => guard(() => appendShared(from, seal, ev, ifOpen)),
          appendIfHead: (
            list: readonly LedgerEntry[],
            ev: readonly EvidenceBlob[],
            open: readonly OpenRequest[],
          ) => guard(() => appendIfHead(list, ev, open)),
        }),
    openAmong: (accepted) =>
      guard(async () => {
        if (!accepted.every((i) => Number.isSafeInteger(i) && i >= 0))
          throw new TypeError('accepted must hold entry indices');
        return (await rows(`${OPEN_COLUMNS} WHERE accepted_idx = ANY($1::bigint[])`, [accepted])).map(
          openRequestFromRow,
        );
      }),
    head: () =>
      guard(async (): Promise<StoreHead> => {
        const row = (await rows(HEAD))[0];
        if (row === undefined) throw new TypeError('head query returned no row');
        const size = row['m'] === null ? 0 : rowInt(row['m'], 'max(idx)') + 1;
        // Contiguity is enforced on append; a gap means rows were removed or forged past the store.
        if (rowInt(row['n'], 'count(*)') !== size)
          throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'ledger has a gap');
        return { size, last: size === 0 ? undefined : entryFromRow(row) };
      }),
    tipSize: () =>
      guard(async () => {
        // The primary key's last entry: no scan, unlike the count in head().
        const m = (await rows('SELECT max(idx) AS m FROM ledger_entries'))[0]?.['m'];
        return m === null || m === undefined ? 0 : rowInt(m, 'max(idx)') + 1;
      }),
    readRange: (from, to) =>
      guard(() => entries(`${ENTRY_COLUMNS} WHERE idx >= $1 AND idx < $2 ORDER BY idx`, [from, to])),
    entry: (index) => guard(async () => (await entries(`${ENTRY_COLUMNS} WHERE idx = $1`, [index]))[0]),
    readEnvelopeContext: (q) =>
      guard(async () => {
        let decision: LedgerEntry | undefined;
        const issued: LedgerEntry[] = [];
        const finalized: LedgerEntry[] = [];
        // The lookup columns are extracted at append; each parsed body must agree with its part.
        for (const r of await rows(ENVELOPE_CONTEXT, [q.index, q.jti, q.decision_id])) {
          if (r['part'] === 0) decision = entryFromRow(r);
          else if (r['part'] === 1) issued.push(entryFromRow(r, (e) => issuedJti(e) === q.jti));
          else finalized.push(entryFromRow(r, (e) => finalizedDecision(e) === q.decision_id));
        }
        return { decision, issued, finalized };
      }),
    readByTrace: (traceId) =>
      guard(() =>
        entries(
          `${ENTRY_COLUMNS} WHERE trace_id = $1 ORDER BY idx`,
          [traceId],
          (e) => e.trace_id === traceId,
        ),
      ),
    readByRequest: (requestId) =>
      guard(() =>
        entries(
          `${ENTRY_COLUMNS} WHERE request_id = $1 ORDER BY idx`,
          [requestId],
          (e) => e.request_id === requestId,
        ),
      ),
    readByTenant: (tenant, o) =>
      guard(() =>
        entries(
          `${ENTRY_COLUMNS} WHERE tenant = $1 AND idx >= $2 ORDER BY idx LIMIT $3`,
          [tenant, o?.from ?? 0, o?.limit ?? 1000],
          (e) => e.tenant === tenant,
        ),
      ),
    putCheckpoint: (cp) =>
      guard(async () => {
        writable();
        await db.pool.query(
          'INSERT INTO ledger_checkpoints (size, root_hash, note, at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING',
          [cp.size, cp.root_hash, cp.note, cp.at],
        );
      }),
    checkpoints: () =>
      guard(async () =>
        (await rows('SELECT size, root_hash, note, at FROM ledger_checkpoints ORDER BY size')).map(
          checkpointFromRow,
        ),
      ),
    latestCheckpoint: () =>
      guard(async () => {
        const r = (
          await rows('SELECT size, root_hash, note, at FROM ledger_checkpoints ORDER BY size DESC LIMIT 1')
        )[0];
        return r === undefined ? undefined : checkpointFromRow(r);
      }),
    putEvidence: (blob) =>
      guard(async () => {
        writable();
        await db.pool.query(
          'INSERT INTO ledger_evidence (sha256, media_type, body) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING',
          [blob.sha256, blob.media_type, blob.body],
        );
      }),
    getEvidence: (sha) =>
      guard(async () => {
        const r = (
          await rows('SELECT sha256, media_type, body FROM ledger_evidence WHERE sha256 = $1', [sha])
        )[0];
        return r === undefined ? undefined : evidenceFromRow(r);
      }),
    treeSnapshot: () => guard(async () => snapshotFromRows(await rows(SNAPSHOT))),
    putTreeSnapshot: (snapshot) => guard(() => putSnapshot(snapshot)),
    openRequests: () =>
      guard(async () =>
        (
          await rows(
            'SELECT accepted_idx, request_id, trace_id, owner FROM ledger_open_requests ORDER BY accepted_idx',
          )
        ).map(openRequestFromRow),
      ),
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}
