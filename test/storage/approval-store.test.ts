/**
 * The approval store contract (OE-INV-019/020) on both backends: SQLite over one `state.db` file
 * (another instance is another connection to the file, as another process would open it) and
 * PostgreSQL (another instance is another pool on the same schema: another replica); and each
 * storage backend handing it out and closing it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalStore } from '../../src/control-plane/index.js';
import { openSqliteBackend } from '../../src/storage/index.js';
import {
  createPostgresApprovalStore,
  openPostgresBackend,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { nextSchema, openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { pendingRecord, runApprovalStoreContract } from './approval-store.contract.js';

runApprovalStoreContract('SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-'));
  const path = join(dir, 'state.db');
  const stores: ApprovalStore[] = [createSqliteApprovalStore(path)];
  return Promise.resolve({
    store: stores[0]!,
    openAnother: () => {
      const s = createSqliteApprovalStore(path);
      stores.push(s);
      return Promise.resolve(s);
    },
    exec: (sql) => {
      const db = new Database(path);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
    dispose: async () => {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

const pg = useTestDatabase('fc_approvals');

runApprovalStoreContract('PostgreSQL', async () => {
  const db = await openMigratedPool(pg.url);
  const pools: PostgresPool[] = [db];
  return {
    store: createPostgresApprovalStore(db),
    openAnother: () => {
      const p = openPostgresPool({ url: pg.url, schema: db.schema, max: 4 });
      pools.push(p);
      return Promise.resolve(createPostgresApprovalStore(p));
    },
    exec: async (sql) => {
      await db.pool.query(sql);
    },
    dispose: async () => {
      for (const p of pools) await p.close();
    },
  };
});

describe('the storage backends hand out the approval store (OE-INV-019/020)', () => {
  const common = { clock: () => 1_750_000_000_000, retainAfterExpSec: 60, replayRetentionMs: 60_000 };

  it("SQLite: in the data directory's one file (ledger.db); closing the backend closes it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-backend-'));
    try {
      const backend = await openSqliteBackend({
        ledgerPath: join(dir, 'ledger.db'),
        statePath: join(dir, 'state.db'),
        noncesPath: join(dir, 'nonces.db'),
        ...common,
      });
      expect(await backend.approvals.insertPending(pendingRecord('d-1'))).toBe(true);
      // Durable when it resolved: another connection to the file reads it.
      const direct = createSqliteApprovalStore(join(dir, 'ledger.db'));
      expect((await direct.pending('d-1'))?.decision_id).toBe('d-1');
      await direct.close();
      await backend.close();
      await expect(backend.approvals.pending('d-1')).rejects.toThrow(Error);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: migrated with the backend, shared by two backends on one schema; closing closes it', async () => {
    const schema = nextSchema();
    const a = await openPostgresBackend({ url: pg.url, schema, ...common });
    const b = await openPostgresBackend({ url: pg.url, schema, ...common });
    try {
      expect(await a.approvals.insertPending(pendingRecord('d-1'))).toBe(true);
      expect(await b.approvals.finalize('d-1', 'approved', ['x'])).toBe(true);
      expect(await a.approvals.markIssued('d-1')).toBe(true);
      expect(await b.approvals.markIssued('d-1')).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
    await expect(a.approvals.pending('d-1')).rejects.toThrow(Error);
  });
});
