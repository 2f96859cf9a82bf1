/**
 * The approval store contract (OE-INV-019/020) on both backends: SQLite over one `state.db` file
 * (another instance is another connection to the file, as another process would open it) and
 * PostgreSQL (another instance is another pool on the same schema: another replica).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createSqliteApprovalStore } from '../../src/control-plane/index.js';
import type { ApprovalStore } from '../../src/control-plane/index.js';
import { createPostgresApprovalStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { runApprovalStoreContract } from './approval-store.contract.js';

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
