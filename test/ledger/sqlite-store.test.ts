/** The SQLite backend against the shared store contract, plus its append-only triggers (L7 write path controls). */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSqliteLedgerStore } from '../../src/ledger/index.js';
import { tempDir, tempSqliteStore } from './fixtures.js';
import { chain, runLedgerStoreContract } from './store.contract.js';

runLedgerStoreContract('sqlite', {
  create: () => {
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'ledger.db');
    const store = createSqliteLedgerStore({ path });
    return Promise.resolve({
      store,
      reopen: () => Promise.resolve(createSqliteLedgerStore({ path })),
      cleanup: () => {
        if (store.database.open) store.database.close();
        cleanup();
        return Promise.resolve();
      },
    });
  },
});

describe('SQLite ledger store specifics (SPEC §4, L7 ledger protection)', () => {
  it('runs in WAL mode with synchronous=FULL', () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      expect(store.database.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.database.pragma('synchronous', { simple: true })).toBe(2);
    } finally {
      cleanup();
    }
  });

  it("serves the executor's issuance and approval lookups from indexes, never a table scan", () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const plan = (sql: string): string =>
        store.database
          .prepare<[string], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
          .all('x')
          .map((r) => r.detail)
          .join('; ');
      expect(
        plan(
          `SELECT idx, body FROM entries WHERE type = 'envelope.issued' AND json_extract(body, '$.payload.jti') = ? ORDER BY idx`,
        ),
      ).toContain('entries_issued_jti');
      expect(
        plan(
          `SELECT idx, body FROM entries WHERE type = 'approval.finalized' AND json_extract(body, '$.payload.decision_id') = ? ORDER BY idx`,
        ),
      ).toContain('entries_finalized_decision');
    } finally {
      cleanup();
    }
  });

  it('refuses UPDATE and DELETE on entries (append-only)', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      await store.appendBatch(chain(3));
      expect(() => store.database.prepare("UPDATE entries SET tenant = 'x' WHERE idx = 1").run()).toThrow(
        'ledger entries are append-only',
      );
      expect(() => store.database.prepare('DELETE FROM entries WHERE idx = 2').run()).toThrow(
        'ledger entries are append-only',
      );
      expect((await store.head()).size).toBe(3);
    } finally {
      cleanup();
    }
  });

  it('re-hashes rows on read: an altered row fails closed with ERR_LEDGER_UNAVAILABLE', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      await store.appendBatch(chain(3));
      store.database.exec('DROP TRIGGER entries_no_update');
      store.database
        .prepare('UPDATE entries SET body = replace(body, \'"acme"\', \'"evil"\') WHERE idx = 0')
        .run();
      await expect(store.entry(0)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    } finally {
      cleanup();
    }
  });
});
