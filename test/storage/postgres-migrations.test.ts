/**
 * Schema migrations of the PostgreSQL backend: applied once, in order, safe when replicas start
 * together, and a database newer than the build is refused (fail closed).
 */
import { describe, expect, it } from 'vitest';
import {
  MIGRATIONS,
  SCHEMA_VERSION,
  assertSchemaCurrent,
  migrate,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase();

describe('PostgreSQL schema migrations', () => {
  it('applies every migration to an empty schema once, then nothing', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema() });
    try {
      const first = await migrate(db);
      expect(first).toEqual({ from: 0, to: SCHEMA_VERSION, applied: MIGRATIONS.map((m) => m.version) });
      expect(await migrate(db)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
      await assertSchemaCurrent(db);
      const tables = await db.pool.query<{ t: string }>(
        'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1',
        [db.schema],
      );
      expect(tables.rows.map((r) => r.t)).toContain('ledger_entries');
      expect(tables.rows.map((r) => r.t)).toContain('envelope_nonces');
    } finally {
      await db.close();
    }
  });

  it('serializes replicas migrating the same schema at once: each version applied exactly once', async () => {
    const schema = nextSchema();
    const pools = Array.from({ length: 4 }, () => openPostgresPool({ url: pg.url, schema }));
    try {
      const reports = await Promise.all(pools.map((p) => migrate(p)));
      const applied = reports.flatMap((r) => r.applied);
      expect(applied.sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
      const rows = await pools[0]!.pool.query('SELECT version FROM failclosed_schema');
      expect(rows.rowCount).toBe(MIGRATIONS.length);
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  });

  it('upgrades a schema made by the first version in place: the approval tables are added, the ledger kept', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema() });
    try {
      const first = MIGRATIONS.filter((m) => m.version === 1);
      expect(await migrate(db, first)).toMatchObject({ from: 0, applied: [1] });
      await db.pool.query(
        "INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, body) VALUES (0, 'h', 't', 'tr', 'rq', 'tn', '{}')",
      );
      const report = await migrate(db);
      expect(report.from).toBe(1);
      expect(report.applied).toEqual(MIGRATIONS.filter((m) => m.version > 1).map((m) => m.version));
      const tables = await db.pool.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'approval%' ORDER BY 1",
        [db.schema],
      );
      expect(tables.rows.map((r) => r.t)).toEqual([
        'approval_activity',
        'approval_activity_hours',
        'approval_activity_tenants',
        'approval_activity_totals',
        'approval_approvers',
        'approval_client_owners',
        'approval_flags',
        'approval_grants',
        'approval_pending',
        'approval_rate',
        'approval_reviews',
        'approval_used',
        'approval_views',
        'approval_votes',
      ]);
      expect((await db.pool.query('SELECT idx FROM ledger_entries')).rowCount).toBe(1);
    } finally {
      await db.close();
    }
  });

  it('refuses a database whose schema is newer than this build', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema() });
    try {
      await migrate(db);
      await db.pool.query("INSERT INTO failclosed_schema (version, name) VALUES ($1, 'from the future')", [
        SCHEMA_VERSION + 1,
      ]);
      await expect(migrate(db)).rejects.toBeInstanceOf(RangeError);
      await expect(assertSchemaCurrent(db)).rejects.toBeInstanceOf(RangeError);
    } finally {
      await db.close();
    }
  });

  it('applies nothing of a migration that fails (one transaction)', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema() });
    try {
      const broken = [
        ...MIGRATIONS,
        { version: SCHEMA_VERSION + 1, name: 'broken', sql: 'CREATE TABLE x (' },
      ];
      await expect(migrate(db, broken)).rejects.toThrow(/syntax error/);
      // Not even version 1 landed: the whole run rolled back.
      await expect(assertSchemaCurrent(db)).rejects.toThrow(/does not exist/);
      expect((await migrate(db)).from).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('keeps ledger entries append-only at the database: UPDATE, DELETE and TRUNCATE are refused (L7 ledger protection)', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema() });
    try {
      await migrate(db);
      await db.pool.query(
        `INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, body)
         VALUES (0, 'h', 't', 'tr', 'rq', 'acme', '{}')`,
      );
      await expect(db.pool.query('UPDATE ledger_entries SET body = \'{"x":1}\'')).rejects.toThrow(
        /append-only/,
      );
      await expect(db.pool.query('DELETE FROM ledger_entries')).rejects.toThrow(/append-only/);
      await expect(db.pool.query('TRUNCATE ledger_entries')).rejects.toThrow(/append-only/);
      expect((await db.pool.query('SELECT count(*)::int AS n FROM ledger_entries')).rows[0]).toEqual({
        n: 1,
      });
    } finally {
      await db.close();
    }
  });

  it('rejects a schema name that is not a plain identifier (it is put in SQL text)', () => {
    expect(() => openPostgresPool({ url: pg.url, schema: 'x; DROP TABLE y' })).toThrow(TypeError);
    expect(() => openPostgresPool({ url: pg.url, schema: 'Public' })).toThrow(TypeError);
  });
});
