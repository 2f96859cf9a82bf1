/**
 * Opening the ledger without re-hashing it (SPEC §4; issue 8 "startup re-hashes the whole
 * ledger"): the Merkle levels persisted at the last checkpoint are restored and verified against
 * that signed checkpoint, so opening reads only the entries after it; a snapshot that does not
 * verify falls back to the full re-hash, and a store rolled back below its snapshot refuses to open.
 */
import { describe, expect, it } from 'vitest';
import { createSqliteLedgerStore, type LedgerEntry, type LedgerStore } from '../../src/ledger/index.js';
import { openLedger, sampleInput, tempSqliteStore, wrapStore } from './fixtures.js';

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

const ENTRIES = 2000;
const EVERY = 256;

const PROBES = [0, 1, 255, 256, 1023, 1500, ENTRIES - 1];

/** Proofs that read every level of the tree: they must be the same after a restore. */
function proofsOf(ledger: Awaited<ReturnType<typeof openLedger>>): string[][] {
  return [
    ...PROBES.map((i) => ledger.proveInclusion(i)),
    ...PROBES.filter((i) => i < 1792).map((i) => ledger.proveInclusion(i, 1792)),
    ...PROBES.slice(1).map((i) => ledger.proveConsistency(i)),
  ];
}

let expectedProofs: string[][] = [];

async function filledLedger(store: LedgerStore): Promise<string> {
  const ledger = await openLedger(store, { checkpointEvery: { entries: EVERY } });
  for (let i = 0; i < ENTRIES; i += 100)
    await Promise.all(Array.from({ length: 100 }, (_, k) => ledger.append(sampleInput(i + k))));
  const root = ledger.rootHash();
  expectedProofs = proofsOf(ledger);
  await ledger.close();
  return root;
}

describe('opening reads only the entries after the last checkpoint', () => {
  it('restores the tree from the snapshot: same root and proofs, far fewer rows than entries', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const root = await filledLedger(store);
      const counted = countingReads(createSqliteLedgerStore({ path }));
      const again = await openLedger(counted.store);
      expect(again.size()).toBe(ENTRIES);
      expect(again.rootHash()).toBe(root);
      // The last checkpoint sits within EVERY entries of the head: at most those, plus one link.
      expect(counted.rows()).toBeLessThanOrEqual(EVERY + 1);
      expect(proofsOf(again)).toEqual(expectedProofs);
      const r = await again.append(sampleInput(ENTRIES));
      expect(r.index).toBe(ENTRIES);
      expect(again.proveInclusion(5).length).toBeGreaterThan(0);
      await again.close();
    } finally {
      cleanup();
    }
  });

  it('without a snapshot it re-hashes every entry (the counter sees them all)', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const root = await filledLedger(store);
      const raw = createSqliteLedgerStore({ path });
      raw.database.exec("DELETE FROM tree_chunks; DELETE FROM store_meta WHERE key = 'tree_size'");
      const counted = countingReads(raw);
      const again = await openLedger(counted.store);
      expect(again.rootHash()).toBe(root);
      expect(counted.rows()).toBeGreaterThanOrEqual(ENTRIES);
      await again.close();
    } finally {
      cleanup();
    }
  });

  it('a snapshot altered so it no longer matches the signed checkpoint is not used', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const root = await filledLedger(store);
      const raw = createSqliteLedgerStore({ path });
      // Flip one stored frontier hash: the restored root no longer equals the signed one.
      raw.database.exec(
        'UPDATE tree_chunks SET hashes = zeroblob(length(hashes)) WHERE level = (SELECT MAX(level) FROM tree_chunks)',
      );
      const counted = countingReads(raw);
      const again = await openLedger(counted.store);
      expect(again.rootHash()).toBe(root);
      expect(counted.rows()).toBeGreaterThanOrEqual(ENTRIES);
      await again.close();
    } finally {
      cleanup();
    }
  });

  it('refuses a store rolled back below its snapshot (ERR_LEDGER_UNAVAILABLE)', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      await filledLedger(store);
      const raw = createSqliteLedgerStore({ path });
      raw.database.exec('DROP TRIGGER entries_no_delete');
      raw.database.prepare('DELETE FROM entries WHERE idx >= ?').run(1000);
      await expect(openLedger(raw)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      raw.database.close();
    } finally {
      cleanup();
    }
  });

  it('refuses an entry after the snapshot rewritten out of the chain (ERR_LEDGER_UNAVAILABLE)', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      await filledLedger(store);
      const raw = createSqliteLedgerStore({ path });
      raw.database.exec('DROP TRIGGER entries_no_delete');
      raw.database.prepare('DELETE FROM entries WHERE idx = ?').run(ENTRIES - 1);
      raw.database.prepare('DELETE FROM entries WHERE idx = ?').run(ENTRIES - 2);
      // A gap after the snapshot: the chain check over the tail refuses it.
      const { computeEntryHash, entryJson } = await import('../../src/ledger/index.js');
      const e = { ...sampleFrom(raw, ENTRIES - 3), index: ENTRIES - 2, prev_hash: '1'.repeat(64) };
      const sealed = { ...e, entry_hash: computeEntryHash(e) };
      raw.database
        .prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(e.index, sealed.entry_hash, e.type, e.trace_id, e.request_id, e.tenant, entryJson(sealed));
      await expect(openLedger(raw)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      raw.database.close();
    } finally {
      cleanup();
    }
  });
});

function sampleFrom(raw: ReturnType<typeof createSqliteLedgerStore>, index: number): LedgerEntry {
  const row = raw.database.prepare('SELECT body FROM entries WHERE idx = ?').get(index) as { body: string };
  return JSON.parse(row.body) as LedgerEntry;
}
