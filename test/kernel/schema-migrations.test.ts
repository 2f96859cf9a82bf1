/**
 * The SQLite schema-version runner shared by the embedded stores (SPEC §4 durable writes, L7
 * ledger protection): steps applied once and in order in one transaction, a failed step leaves
 * no trace, a file newer than the build is refused (fail closed), stores sharing a file keep
 * their own versions.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SchemaVersionError,
  checkSchemaVersion,
  migrateSchema,
  type SchemaMigration,
} from '../../src/kernel/index.js';

let opened: Database.Database[] = [];
afterEach(() => {
  for (const db of opened) if (db.open) db.close();
  opened = [];
});
function memory(): Database.Database {
  const db = new Database(':memory:');
  opened.push(db);
  return db;
}

const V1: SchemaMigration = {
  version: 1,
  name: 'items',
  up: 'CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)',
};
const V2: SchemaMigration = { version: 2, name: 'labels', up: 'ALTER TABLE items ADD COLUMN label TEXT' };

function versions(db: Database.Database): unknown[] {
  return db.prepare('SELECT store, version, name FROM failclosed_schema ORDER BY store, version').all();
}
function tables(db: Database.Database): string[] {
  return db
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((r) => r.name);
}

describe('migrateSchema (SPEC §4, L7)', () => {
  it('brings an empty file to the newest version and records each step', () => {
    const db = memory();
    expect(migrateSchema(db, 'items', [V1, V2])).toEqual({ store: 'items', from: 0, to: 2, applied: [1, 2] });
    expect(versions(db)).toEqual([
      { store: 'items', version: 1, name: 'items' },
      { store: 'items', version: 2, name: 'labels' },
    ]);
    expect(db.inTransaction).toBe(false);
  });

  it('applies nothing at the newest version, and only the new steps after an upgrade', () => {
    const db = memory();
    migrateSchema(db, 'items', [V1]);
    expect(migrateSchema(db, 'items', [V1]).applied).toEqual([]);
    expect(migrateSchema(db, 'items', [V1, V2])).toEqual({ store: 'items', from: 1, to: 2, applied: [2] });
    expect(
      db
        .prepare<[], { name: string }>('PRAGMA table_info(items)')
        .all()
        .map((c) => c.name),
    ).toEqual(['id', 'label']);
  });

  it('records a file made before versions (tables, no version row) as version 1', () => {
    const db = memory();
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items (id) VALUES (7)');
    expect(migrateSchema(db, 'items', [V1]).applied).toEqual([1]);
    expect(db.prepare('SELECT id FROM items').all()).toEqual([{ id: 7 }]);
  });

  it('refuses a store recorded at a newer version than the build, and changes nothing', () => {
    const db = memory();
    migrateSchema(db, 'items', [V1, V2]);
    const before = versions(db);
    let caught: unknown;
    try {
      migrateSchema(db, 'items', [V1]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchemaVersionError);
    expect(caught).toMatchObject({ store: 'items', found: 2, supported: 1 });
    expect(versions(db)).toEqual(before);
    expect(db.inTransaction).toBe(false);
    expect(() => checkSchemaVersion(db, 'items', [V1])).toThrow(SchemaVersionError);
  });

  it('rolls every step back when one fails: no table, no version row', () => {
    const db = memory();
    const failing: SchemaMigration = {
      version: 2,
      name: 'broken',
      up: () => {
        throw new Error('step failed');
      },
    };
    expect(() => migrateSchema(db, 'items', [V1, failing])).toThrow('step failed');
    expect(db.inTransaction).toBe(false);
    expect(tables(db)).toEqual([]);
    expect(migrateSchema(db, 'items', [V1]).applied).toEqual([1]);
  });

  it('keeps one version per store in a shared file', () => {
    const db = memory();
    migrateSchema(db, 'items', [V1, V2]);
    migrateSchema(db, 'other', [{ version: 1, name: 'other', up: 'CREATE TABLE other (x TEXT)' }]);
    expect(checkSchemaVersion(db, 'items', [V1, V2])).toBe(2);
    expect(checkSchemaVersion(db, 'other', [V1])).toBe(1);
    expect(checkSchemaVersion(db, 'absent', [V1])).toBe(0);
  });

  it('checkSchemaVersion reads 0 from a file with no version table and writes nothing', () => {
    const db = memory();
    expect(checkSchemaVersion(db, 'items', [V1])).toBe(0);
    expect(tables(db)).toEqual([]);
  });

  it('refuses a malformed version row (the file is untrusted)', () => {
    const db = memory();
    migrateSchema(db, 'items', [V1]);
    db.exec(
      "DROP TABLE failclosed_schema; CREATE TABLE failclosed_schema (store TEXT, version ANY, name TEXT, applied_at TEXT); INSERT INTO failclosed_schema VALUES ('items', 'one', 'x', 'y')",
    );
    expect(() => migrateSchema(db, 'items', [V1])).toThrow(RangeError);
    expect(db.inTransaction).toBe(false);
  });

  it('rejects declarations that are not numbered 1..n, and a call inside a transaction', () => {
    const db = memory();
    expect(() => migrateSchema(db, 'items', [])).toThrow(TypeError);
    expect(() => migrateSchema(db, 'items', [V2])).toThrow(TypeError);
    expect(() => migrateSchema(db, 'items', [V1, V1])).toThrow(TypeError);
    expect(() => migrateSchema(db, 'Bad Name', [V1])).toThrow(TypeError);
    db.exec('BEGIN');
    expect(() => migrateSchema(db, 'items', [V1])).toThrow(TypeError);
    db.exec('ROLLBACK');
    expect(tables(db)).toEqual([]);
  });
});
