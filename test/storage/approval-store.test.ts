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
import { createSqliteCommitUnit } from '../../src/kernel/index.js';
import { openSqliteBackend } from '../../src/storage/index.js';
import {
  createPostgresApprovalStore,
  migrate,
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

describe('each approver\'s history in summary (docs/approvals.md "Approvals watched")', () => {
  const T = 1_750_000_000_000;
  const hour = 3_600_000;
  /** Three counted approvals of ann (two tenants, two hours) and one of bob, and a repeat. */
  const record = async (store: ApprovalStore): Promise<void> => {
    const a = { approver: 'ann', flags: [], extra: false } as const;
    await store.recordActivity({ ...a, decision_id: 'd-1', tenant: 'acme', at: T });
    await store.recordActivity({ ...a, decision_id: 'd-2', tenant: 'globex', at: T + hour });
    await store.recordActivity({ ...a, decision_id: 'd-3', tenant: 'acme', at: T + hour });
    await store.recordActivity({ ...a, decision_id: 'd-3', tenant: 'initech', at: T + 5 * hour });
    await store.recordActivity({ ...a, approver: 'bob', decision_id: 'd-1', tenant: 'acme', at: T });
  };
  const expected = {
    total: 3,
    recent: 2,
    tenants: ['acme', 'globex'],
    hours: [new Date(T).getUTCHours(), new Date(T + hour).getUTCHours()].sort((x, y) => x - y),
  };
  const SUMMARY_TABLES = ['approval_activity_totals', 'approval_activity_tenants', 'approval_activity_hours'];

  it('SQLite: a history recorded before the summaries (approvals version 5) is summarised on upgrade', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-summary-'));
    const path = join(dir, 'state.db');
    try {
      const store = createSqliteApprovalStore(path);
      await record(store);
      expect(await store.activity('ann', T + 1)).toEqual(expected);
      await store.close();
      // Back to version 5: the rows without their summaries.
      const db = new Database(path);
      db.exec('DROP TRIGGER approval_activity_summary');
      for (const t of SUMMARY_TABLES) db.exec(`DROP TABLE ${t}`);
      db.prepare("DELETE FROM failclosed_schema WHERE store = 'approvals' AND version = 6").run();
      db.close();
      const upgraded = createSqliteApprovalStore(path);
      expect(await upgraded.activity('ann', T + 1)).toEqual(expected);
      expect((await upgraded.activity('bob', T)).total).toBe(1);
      await upgraded.recordActivity({
        approver: 'ann',
        decision_id: 'd-4',
        tenant: 'umbrella',
        at: T + 2 * hour,
        flags: [],
        extra: false,
      });
      expect(await upgraded.activity('ann', T + 1)).toMatchObject({
        total: 4,
        recent: 3,
        tenants: ['acme', 'globex', 'umbrella'],
      });
      await upgraded.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("SQLite: a history in an old layout's state.db is summarised once when merged into ledger.db", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-merge-'));
    try {
      const legacy = createSqliteApprovalStore(join(dir, 'state.db'));
      await record(legacy);
      await legacy.close();
      const backend = await openSqliteBackend({
        ledgerPath: join(dir, 'ledger.db'),
        statePath: join(dir, 'state.db'),
        noncesPath: join(dir, 'nonces.db'),
        clock: () => T,
        retainAfterExpSec: 60,
        replayRetentionMs: 60_000,
      });
      try {
        expect(await backend.approvals.activity('ann', T + 1)).toEqual(expected);
        expect((await backend.approvals.activity('bob', T)).total).toBe(1);
      } finally {
        await backend.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: a history recorded before the summaries (schema version 16) is summarised on upgrade', async () => {
    const db = await openMigratedPool(pg.url);
    try {
      const store = createPostgresApprovalStore(db);
      await record(store);
      expect(await store.activity('ann', T + 1)).toEqual(expected);
      await db.pool.query('DROP TRIGGER approval_activity_summary ON approval_activity');
      await db.pool.query('DROP FUNCTION failclosed_approval_activity_summary()');
      for (const t of SUMMARY_TABLES) await db.pool.query(`DROP TABLE ${t}`);
      await db.pool.query('DELETE FROM failclosed_schema WHERE version = 17');
      expect((await migrate(db)).applied).toEqual([17]);
      expect(await store.activity('ann', T + 1)).toEqual(expected);
      expect((await store.activity('bob', T)).total).toBe(1);
      // A row inserted by anyone (an older gate left serving, by hand) is summarised too.
      await db.pool.query(
        `INSERT INTO approval_activity (decision_id, approver, tenant, hour, at, flags, extra)
         VALUES ('d-9', 'bob', 'umbrella', 4, $1::bigint, '[]', 0)`,
        [T],
      );
      expect(await store.activity('bob', T)).toMatchObject({ total: 2, tenants: ['acme', 'umbrella'] });
    } finally {
      await db.close();
    }
  });
});

describe('a vote\'s anomaly checks and the approver\'s history (docs/approvals.md "Limits")', () => {
  interface PlanNode {
    readonly 'Relation Name'?: string;
    readonly 'Actual Rows'?: number;
    readonly 'Actual Loops'?: number;
    readonly 'Rows Removed by Filter'?: number;
    readonly Plans?: readonly PlanNode[];
  }
  /** Rows of `table` the plan's nodes read (returned or filtered out). */
  const rowsRead = (node: PlanNode, table: string): number =>
    (node['Relation Name'] === table
      ? (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1) + (node['Rows Removed by Filter'] ?? 0)
      : 0) + (node.Plans ?? []).reduce((n, p) => n + rowsRead(p, table), 0);

  it('PostgreSQL: reading an approver with 10,000 counted approvals reads only those of the burst window', async () => {
    const T = 1_750_000_000_000;
    const db = await openMigratedPool(pg.url);
    try {
      // A long history, all of it long before the burst window, and two approvals within it. One
      // transaction with time enough: the summary trigger runs for each of these rows.
      const setup = await db.pool.connect();
      try {
        await setup.query('BEGIN');
        await setup.query("SET LOCAL statement_timeout = '120s'");
        await setup.query(
          `INSERT INTO approval_activity (decision_id, approver, tenant, hour, at, flags, extra)
           SELECT 'old-' || g, 'ann', 'tenant-' || g % 7, g % 24, $1::bigint - 86400000 - g, '[]', 0
           FROM generate_series(1, 10000) g`,
          [T],
        );
        await setup.query('COMMIT');
      } finally {
        setup.release();
      }
      await db.pool.query('ANALYZE approval_activity');
      const store = createPostgresApprovalStore(db);
      for (const d of ['d-1', 'd-2'])
        await store.recordActivity({
          decision_id: d,
          approver: 'ann',
          tenant: 'acme',
          at: T,
          flags: [],
          extra: false,
        });
      // The statements of one read, each explained with its own parameters. The pool's `query` is
      // its prototype's: an own property shadows it while the read runs.
      const sent: { text: string; values: unknown[] }[] = [];
      const query = db.pool.query.bind(db.pool);
      const watched = db.pool as unknown as { query: (text: string, values?: unknown[]) => Promise<unknown> };
      watched.query = (text, values) => {
        sent.push({ text, values: values ?? [] });
        return query(text, values);
      };
      try {
        await store.activity('ann', T - 60_000);
      } finally {
        delete (watched as { query?: unknown }).query;
      }
      let read = 0;
      for (const { text, values } of sent) {
        const r = await db.pool.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`,
          values,
        );
        const plan = r.rows[0]?.['QUERY PLAN'][0]?.Plan;
        if (plan === undefined) throw new Error('no plan');
        read += rowsRead(plan, 'approval_activity');
      }
      expect(sent.length).toBeGreaterThan(0);
      // Before the summaries: the whole history, once per check (about 30,000 rows).
      expect(read).toBeLessThanOrEqual(2);
    } finally {
      await db.close();
    }
  });
});

describe('SQLite on the shared connection: every write commits before it answers (sqlite-commit.ts)', () => {
  it('ending a break-glass grant answers done only once committed, never to be undone by another call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-unit-'));
    const path = join(dir, 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    const unit = createSqliteCommitUnit(db);
    const store = createSqliteApprovalStore(path, { unit });
    try {
      // Another call's write that fails only at COMMIT (a deferred foreign key), staged first: it
      // opens the shared transaction, and its failure rolls back everything still in it.
      db.exec(`CREATE TABLE p (id INTEGER PRIMARY KEY);
        CREATE TABLE c (parent INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);`);
      const at = 1_750_000_000_000;
      await store.insertGrant({
        grant_id: 'g-1',
        approver: 'alice',
        role: 'incident-commander',
        tenant: 'acme',
        tool: 'transfer_funds',
        reason_category: 'incident',
        reason: 'payments down',
        created_at: at,
        expires_at: at + 3_600_000,
        ledger_index: 0,
        statement_sha256: '0'.repeat(64),
      });
      const other = unit.stage(() => db.prepare('INSERT INTO c (parent) VALUES (-1)').run());
      const otherFailed = other.durable.then(
        () => 'committed',
        (err: unknown) => (err as { code?: string }).code,
      );
      // The revocation commits on its own, after what was staged: that commit fails, so the
      // revocation is refused, never answered done and then undone with the other call's writes.
      await expect(store.endGrant('g-1', at + 1000)).rejects.toThrow('the open transaction did not commit');
      expect(await otherFailed).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
      expect((await store.activeGrant('acme', 'transfer_funds', at + 2000))?.grant_id).toBe('g-1');
      // Asked again, it is done, and committed when it answers: another connection sees it.
      expect(await store.endGrant('g-1', at + 1000)).toBe(true);
      const direct = createSqliteApprovalStore(path);
      expect(await direct.activeGrant('acme', 'transfer_funds', at + 2000)).toBeUndefined();
      await direct.close();
    } finally {
      await store.close();
      unit.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
