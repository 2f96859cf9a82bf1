/**
 * The PostgreSQL ledger store (SPEC §4 "Backends: SQLite and PostgreSQL. Both pass one shared
 * contract test suite"): the contract, the derived state mirrored against the SQLite store, rows
 * read as untrusted input (L7 ledger protection), and writer fencing by epoch.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/kernel/index.js';
import {
  GENESIS_PREV_HASH,
  computeEntryHash,
  entryJson,
  parseEntryInput,
  type EntryInput,
  type EntryType,
  type LedgerEntry,
} from '../../src/ledger/index.js';
import {
  createPostgresLedgerStore,
  openPostgresPool,
  type PostgresPool,
} from '../../src/storage/postgres/index.js';
import { tempSqliteStore } from '../ledger/fixtures.js';
import { chain, runLedgerStoreContract } from '../ledger/store.contract.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pgdb = useTestDatabase();

runLedgerStoreContract('postgres', {
  create: async () => {
    const db = await openMigratedPool(pgdb.url);
    const pools: PostgresPool[] = [db];
    return {
      store: createPostgresLedgerStore(db),
      reopen: () => {
        const again = openPostgresPool({ url: pgdb.url, schema: db.schema, max: 2 });
        pools.push(again);
        return Promise.resolve(createPostgresLedgerStore(again));
      },
      cleanup: async () => {
        for (const p of pools) await p.close();
      },
    };
  },
});

let pools: PostgresPool[] = [];
afterEach(async () => {
  for (const p of pools) await p.close();
  pools = [];
});

async function freshPool(): Promise<PostgresPool> {
  const db = await openMigratedPool(pgdb.url);
  pools.push(db);
  return db;
}

/** Seals `inputs` into entries `from`, `from + 1`, … chained after `prev`. */
function seal(inputs: readonly EntryInput[], from = 0, prev = GENESIS_PREV_HASH): LedgerEntry[] {
  let p = prev;
  return inputs.map((input, i) => {
    const body = { ...parseEntryInput(input), index: from + i, prev_hash: p, at: '2025-01-01T00:00:00.000Z' };
    const e = { ...body, entry_hash: computeEntryHash(body) };
    p = e.entry_hash;
    return e;
  });
}

function ev(type: EntryType, request_id: string, trace_id: string, role = 'gate'): EntryInput {
  return { type, request_id, trace_id, tenant: 'acme', actor: { id: 'gate-1', role }, payload: {} };
}

/** Inserts a row as a superuser would, past the store (the append-only trigger allows INSERT). */
async function insertRow(
  db: PostgresPool,
  e: LedgerEntry,
  over: { idx?: number; type?: string; jti?: string | null; body?: string } = {},
): Promise<void> {
  await db.pool.query(
    `INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, jti, decision_id, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)`,
    [
      over.idx ?? e.index,
      e.entry_hash,
      over.type ?? e.type,
      e.trace_id,
      e.request_id,
      e.tenant,
      over.jti ?? null,
      over.body ?? entryJson(e),
    ],
  );
}

const UNAVAILABLE = { name: 'FailclosedError', code: 'ERR_LEDGER_UNAVAILABLE' };

describe('PostgreSQL ledger store: derived state as the SQLite store keeps it (SPEC §4, §5, FC-INV-5)', () => {
  it('tracks open requests batch by batch exactly like the SQLite store', async () => {
    const store = createPostgresLedgerStore(await freshPool());
    const lite = tempSqliteStore();
    try {
      const batches: EntryInput[][] = [
        [
          ev('gateway.accepted', 'r1', 't1'),
          ev('gateway.accepted', 'r2', 't2'),
          ev('gateway.accepted', 'r3', 't3', 'agent'),
          ev('gateway.accepted', '', 't0'),
          ev('gateway.completed', 'r1', 't1'),
        ],
        [
          ev('gateway.accepted', 'r4', 't4'),
          ev('gateway.failed', 'r2', 't2'),
          ev('gateway.accepted', 'r2', 't2'),
          ev('request.abandoned', 'r9', 't9'),
          ev('gateway.completed', 'r4', 't-other'),
        ],
        [ev('request.abandoned', 'r2', 't2'), ev('gateway.accepted', 'r5', 't5')],
      ];
      let prev = GENESIS_PREV_HASH;
      let from = 0;
      const seen: unknown[] = [];
      for (const inputs of batches) {
        const entries = seal(inputs, from, prev);
        await store.appendBatch(entries);
        await lite.store.appendBatch(entries);
        from += entries.length;
        prev = entries[entries.length - 1]!.entry_hash;
        const open = await store.openRequests?.();
        expect(open).toEqual(await lite.store.openRequests?.());
        seen.push(open?.map((o) => o.request_id));
      }
      expect(seen).toEqual([['r2'], ['r4', 'r2'], ['r4', 'r5']]);
    } finally {
      lite.cleanup();
    }
  });

  it('stores the tree snapshot: chunks upserted, replaceAll drops the old ones, size in ledger_meta', async () => {
    const store = createPostgresLedgerStore(await freshPool());
    expect(await store.treeSnapshot?.()).toBeUndefined();
    const h = (b: number, n = 1) => Buffer.alloc(32 * n, b);
    await store.putTreeSnapshot?.({ size: 0, chunks: [] });
    expect(await store.treeSnapshot?.()).toEqual({ size: 0, chunks: [] });
    await store.putTreeSnapshot?.({
      size: 3,
      chunks: [
        { level: 0, chunk: 0, hashes: h(1, 3) },
        { level: 1, chunk: 0, hashes: h(2) },
      ],
      replaceAll: true,
    });
    await store.putTreeSnapshot?.({ size: 4, chunks: [{ level: 0, chunk: 0, hashes: h(3, 4) }] });
    expect(await store.treeSnapshot?.()).toEqual({
      size: 4,
      chunks: [
        { level: 0, chunk: 0, hashes: h(3, 4) },
        { level: 1, chunk: 0, hashes: h(2) },
      ],
    });
    await store.putTreeSnapshot?.({
      size: 1,
      chunks: [{ level: 0, chunk: 0, hashes: h(9) }],
      replaceAll: true,
    });
    expect(await store.treeSnapshot?.()).toEqual({ size: 1, chunks: [{ level: 0, chunk: 0, hashes: h(9) }] });
  });

  it('close() stops the store but leaves the shared pool open', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    await store.appendBatch(chain(2));
    await store.close();
    await expect(store.head()).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.appendBatch(chain(3).slice(2))).rejects.toMatchObject(UNAVAILABLE);
    expect((await createPostgresLedgerStore(db).head()).size).toBe(2);
  });
});

describe('PostgreSQL ledger store: the envelope context and concurrent writers (SPEC §4, L7 Boundary B)', () => {
  it('reads issuances by jti and finalisations by decision as the SQLite store does', async () => {
    const store = createPostgresLedgerStore(await freshPool());
    const lite = tempSqliteStore();
    try {
      const at = (type: EntryType, payload: EntryInput['payload']): EntryInput => ({
        ...ev(type, 'r1', 't1', 'control-plane'),
        payload,
      });
      const entries = seal([
        at('decision', { decision_id: 'd-1', outcome: 'escalate' }),
        at('approval.finalized', { decision_id: 'd-1' }),
        at('approval.finalized', { decision_id: 'd-2' }),
        at('envelope.issued', { decision_id: 'd-1', jti: 'j-1' }),
        at('approval.finalized', { decision_id: 'd-1' }),
        at('envelope.issued', { decision_id: 'd-2', jti: 'j-2' }),
      ]);
      await store.appendBatch(entries);
      await lite.store.appendBatch(entries);
      for (const q of [
        { index: 0, jti: 'j-1', decision_id: 'd-1' },
        { index: 5, jti: 'j-2', decision_id: 'd-2' },
        { index: 9, jti: 'd-1', decision_id: 'j-1' },
      ])
        expect(await store.readEnvelopeContext(q)).toEqual(await lite.store.readEnvelopeContext(q));
      const ctx = await store.readEnvelopeContext({ index: 0, jti: 'j-1', decision_id: 'd-1' });
      expect(ctx).toEqual({
        decision: entries[0],
        issued: [entries[3]],
        finalized: [entries[1], entries[4]],
      });
    } finally {
      lite.cleanup();
    }
  });

  it('serves the envelope-context lookups from the partial indexes of schema v1', async () => {
    const db = await freshPool();
    const client = await db.pool.connect();
    try {
      // An empty table would be scanned anyway; forbidding scans shows an index answers the predicate.
      await client.query('SET enable_seqscan = off');
      const plan = async (sql: string): Promise<string> =>
        (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, ['x'])).rows
          .map((r) => r['QUERY PLAN'])
          .join('\n');
      expect(
        await plan(`SELECT idx, body FROM ledger_entries WHERE type = 'envelope.issued' AND jti = $1`),
      ).toContain('ledger_entries_issued_jti');
      expect(
        await plan(
          `SELECT idx, body FROM ledger_entries WHERE type = 'approval.finalized' AND decision_id = $1`,
        ),
      ).toContain('ledger_entries_finalized_decision');
    } finally {
      client.release();
    }
  });

  it('two writers appending the same indices at once: exactly one batch is stored, the other refused', async () => {
    const db = await freshPool();
    const other = openPostgresPool({ url: pgdb.url, schema: db.schema, max: 2 });
    pools.push(other);
    const a = createPostgresLedgerStore(db);
    const b = createPostgresLedgerStore(other);
    const mine = chain(3);
    const theirs = chain(3, 0, GENESIS_PREV_HASH, 'globex');
    const results = await Promise.allSettled([a.appendBatch(mine), b.appendBatch(theirs)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused?.reason).toMatchObject(UNAVAILABLE);
    const stored = await a.readRange(0, 10);
    expect([mine, theirs]).toContainEqual(stored);
    expect((await a.head()).size).toBe(3);
  });
});

describe('PostgreSQL ledger rows are untrusted input (L7 ledger protection: fail closed)', () => {
  it('refuses a body that is not JSON with ERR_LEDGER_UNAVAILABLE', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    const entries = chain(4);
    await store.appendBatch(entries.slice(0, 3));
    await insertRow(db, entries[3]!, { body: '{"index": 3, not json' });
    await expect(store.entry(3)).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.head()).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.readRange(0, 4)).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.readByTrace(entries[3]!.trace_id)).rejects.toMatchObject(UNAVAILABLE);
  });

  it('refuses an altered body (its hash no longer matches) and a body stored under another index', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    const entries = chain(5);
    await store.appendBatch(entries.slice(0, 3));
    await insertRow(db, entries[3]!, {
      body: entryJson(entries[3]!).replace('"tenant":"globex"', '"tenant":"evil"'),
    });
    await expect(store.entry(3)).rejects.toMatchObject(UNAVAILABLE);
    const other = await freshPool();
    await createPostgresLedgerStore(other).appendBatch(entries.slice(0, 3));
    await insertRow(other, entries[4]!, { idx: 3 });
    await expect(createPostgresLedgerStore(other).entry(3)).rejects.toMatchObject(UNAVAILABLE);
  });

  it('refuses an envelope-context row whose lookup columns disagree with its body (L7 Boundary B)', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    const entries = chain(4);
    await store.appendBatch(entries.slice(0, 3));
    expect((await store.readEnvelopeContext({ index: 1, jti: 'j-1', decision_id: 'd-1' })).issued).toEqual([
      entries[2],
    ]);
    // entries[3] is an execution receipt, forged into the issuance index of j-1.
    await insertRow(db, entries[3]!, { type: 'envelope.issued', jti: 'j-1' });
    await expect(
      store.readEnvelopeContext({ index: 1, jti: 'j-1', decision_id: 'd-1' }),
    ).rejects.toMatchObject(UNAVAILABLE);
  });

  it('detects a gap (count differs from max index + 1) and refuses to append past it', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    const entries = chain(6);
    await store.appendBatch(entries.slice(0, 3));
    await insertRow(db, entries[5]!);
    await expect(store.head()).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.appendBatch(entries.slice(3, 5))).rejects.toMatchObject(UNAVAILABLE);
  });

  it('refuses stored evidence whose body no longer matches its hash', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db);
    await db.pool.query('INSERT INTO ledger_evidence (sha256, media_type, body) VALUES ($1, $2, $3)', [
      sha256Hex('original'),
      'text/plain',
      Buffer.from('forged'),
    ]);
    await expect(store.getEvidence(sha256Hex('original'))).rejects.toMatchObject(UNAVAILABLE);
  });
});

describe('PostgreSQL ledger store views that may not write (SPEC §4, L7 ledger protection)', () => {
  it("a reader's view refuses every write and stores nothing of it, entries or evidence", async () => {
    const db = await freshPool();
    const reader = createPostgresLedgerStore(db, { readonly: true });
    const body = Buffer.from('request');
    const blob = { sha256: sha256Hex(body), media_type: 'application/json', body };
    await expect(reader.appendBatch(chain(2), [blob])).rejects.toMatchObject(UNAVAILABLE);
    await expect(reader.putEvidence(blob)).rejects.toMatchObject(UNAVAILABLE);
    await expect(reader.putTreeSnapshot?.({ size: 0, chunks: [] })).rejects.toMatchObject(UNAVAILABLE);
    expect((await reader.head()).size).toBe(0);
    expect(await reader.getEvidence(blob.sha256)).toBeUndefined();
    await createPostgresLedgerStore(db).appendBatch(chain(2), [blob]);
    expect((await reader.head()).size).toBe(2);
  });

  it('a shared store without an instance lease refuses every append, shared or not', async () => {
    const db = await freshPool();
    const store = createPostgresLedgerStore(db, { shared: () => undefined });
    await expect(store.appendBatch(chain(1))).rejects.toMatchObject(UNAVAILABLE);
    await expect(store.appendShared?.(0, () => chain(1))).rejects.toMatchObject(UNAVAILABLE);
    expect((await store.head()).size).toBe(0);
  });
});
