/**
 * The single ledger writer over the PostgreSQL store (SPEC §4): group commit, checkpoints, opening
 * from the tree snapshot, and refusal of a forged chain (L7 ledger protection). Several writers
 * sharing one ledger: `postgres-shared-ledger.test.ts`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  GENESIS_PREV_HASH,
  computeEntryHash,
  entryJson,
  type LedgerEntry,
  type LedgerStore,
} from '../../src/ledger/index.js';
import {
  createPostgresLedgerStore,
  openPostgresPool,
  type PostgresPool,
} from '../../src/storage/postgres/index.js';
import { openLedger, sampleInput, wrapStore } from '../ledger/fixtures.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pgdb = useTestDatabase();

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

/** A second pool on the schema of `db`: another process opening the same ledger. */
function samePlace(db: PostgresPool): PostgresPool {
  const again = openPostgresPool({ url: pgdb.url, schema: db.schema, max: 2 });
  pools.push(again);
  return again;
}

/** Counts the entry rows the ledger reads through the store interface. */
function countingReads(inner: LedgerStore): { store: LedgerStore; rows: () => number } {
  let rows = 0;
  const store = wrapStore(inner, {
    readRange: async (from: number, to: number): Promise<LedgerEntry[]> => {
      const page = await inner.readRange(from, to);
      rows += page.length;
      return page;
    },
    entry: async (index: number) => {
      rows += 1;
      return inner.entry(index);
    },
  });
  return { store, rows: () => rows };
}

describe('ledger writer over PostgreSQL (SPEC §4, §8 durable writes)', () => {
  it('appends concurrently, checkpoints, closes, reopens from the snapshot and continues the chain', async () => {
    const db = await freshPool();
    const first = await openLedger(createPostgresLedgerStore(db));
    const receipts = await Promise.all(Array.from({ length: 30 }, (_, i) => first.append(sampleInput(i))));
    expect(receipts.map((r) => r.index)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    const root = first.rootHash();
    await first.checkpoint();
    await first.close();

    const counted = countingReads(createPostgresLedgerStore(samePlace(db)));
    const again = await openLedger(counted.store);
    expect(again.size()).toBe(30);
    expect(again.rootHash()).toBe(root);
    // Restored from the snapshot at the checkpoint: only the last entry is read, to link the chain.
    expect(counted.rows()).toBe(1);
    const r = await again.append(sampleInput(30));
    expect(r.index).toBe(30);
    expect((await again.store.entry(30))?.prev_hash).toBe((await again.store.entry(29))?.entry_hash);
    await again.close();
  });

  it('restores the tree written over several checkpoints: same root and proofs, few rows read', async () => {
    const db = await freshPool();
    const every = 256;
    const first = await openLedger(createPostgresLedgerStore(db), { checkpointEvery: { entries: every } });
    for (let i = 0; i < 700; i += 100)
      await Promise.all(Array.from({ length: 100 }, (_, k) => first.append(sampleInput(i + k))));
    const root = first.rootHash();
    const proofs = [0, 255, 256, 511, 699].map((i) => first.proveInclusion(i));
    const consistency = first.proveConsistency(300);
    await first.close();

    const counted = countingReads(createPostgresLedgerStore(samePlace(db)));
    const again = await openLedger(counted.store);
    expect(again.rootHash()).toBe(root);
    expect(counted.rows()).toBeLessThanOrEqual(every + 1);
    expect([0, 255, 256, 511, 699].map((i) => again.proveInclusion(i))).toEqual(proofs);
    expect(again.proveConsistency(300)).toEqual(consistency);
    await again.close();
  });

  it('refuses to open a ledger with a forged entry inserted past the store (ERR_LEDGER_UNAVAILABLE)', async () => {
    const db = await freshPool();
    const first = await openLedger(createPostgresLedgerStore(db));
    for (let i = 0; i < 5; i++) await first.append(sampleInput(i));
    await first.close();
    // The untouched ledger opens from another process.
    await (await openLedger(createPostgresLedgerStore(samePlace(db)))).close();
    // Self-consistent (its own hash is valid) but not linked to entry 4.
    const body = {
      ...(await createPostgresLedgerStore(db).entry(4))!,
      index: 5,
      prev_hash: GENESIS_PREV_HASH,
    };
    const forged = { ...body, entry_hash: computeEntryHash(body) };
    await db.pool.query(
      `INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        5,
        forged.entry_hash,
        forged.type,
        forged.trace_id,
        forged.request_id,
        forged.tenant,
        entryJson(forged),
      ],
    );
    await expect(openLedger(createPostgresLedgerStore(samePlace(db)))).rejects.toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
  });
});
