/**
 * The shared connection's commit schedule (`src/kernel/sqlite-commit.ts`, SPEC §8 "durable
 * writes"): writes of one event-loop turn share one commit; a write that throws undoes only
 * itself; a commit that fails rejects every write in it and leaves nothing behind; `writeNow`
 * is durable when it returns. The failing commit is real SQLite: a deferred foreign key.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createDurableWrites, createSqliteCommitUnit } from '../../src/kernel/index.js';
import type { SqliteCommitUnit } from '../../src/kernel/index.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function open(): { unit: SqliteCommitUnit; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-commit-unit-'));
  const path = join(dir, 'x.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.exec(`CREATE TABLE t (k TEXT PRIMARY KEY);
    CREATE TABLE p (id INTEGER PRIMARY KEY);
    CREATE TABLE c (parent INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);`);
  const unit = createSqliteCommitUnit(db);
  cleanups.push(() => {
    unit.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { unit, path };
}

const committed = (path: string): string[] => {
  const r = new Database(path, { readonly: true });
  try {
    return r
      .prepare<[], { k: string }>('SELECT k FROM t ORDER BY k')
      .all()
      .map((x) => x.k);
  } finally {
    r.close();
  }
};

describe('SqliteCommitUnit', () => {
  it('writes of one turn share one commit; their results are known before it', async () => {
    const { unit, path } = open();
    const ins = unit.db.prepare('INSERT OR IGNORE INTO t (k) VALUES (?)');
    const a = unit.stage(() => ins.run('a').changes);
    const b = unit.stage(() => ins.run('a').changes);
    expect([a.value, b.value]).toEqual([1, 0]);
    // Not yet durable: another connection does not see it.
    expect(committed(path)).toEqual([]);
    const before = unit.commits;
    await Promise.all([a.durable, b.durable]);
    expect(unit.commits - before).toBe(1);
    expect(committed(path)).toEqual(['a']);
  });

  it('a write that throws undoes only its own statements', async () => {
    const { unit, path } = open();
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const ok = unit.stage(() => ins.run('x'));
    expect(() =>
      unit.stage(() => {
        ins.run('y');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    await ok.durable;
    expect(committed(path)).toEqual(['x']);
  });

  it('a failed commit rejects every write in it, keeps none, and the next turn commits', async () => {
    const { unit, path } = open();
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const writes = createDurableWrites();
    const a = unit.stage(() => ins.run('lost'));
    writes.add(a.durable);
    unit.stage(() => unit.db.prepare('INSERT INTO c (parent) VALUES (-1)').run());
    await expect(a.durable).rejects.toThrow(/FOREIGN KEY/);
    await expect(writes.sync()).rejects.toThrow(/FOREIGN KEY/);
    // A scope that saw a failure stays failed.
    await expect(writes.sync()).rejects.toThrow(/FOREIGN KEY/);
    expect(committed(path)).toEqual([]);
    await unit.write(() => ins.run('kept'));
    expect(committed(path)).toEqual(['kept']);
  });

  it('an error that makes SQLite roll back the whole transaction rejects its earlier writes at once', async () => {
    const { unit, path } = open();
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    unit.writeNow(() => ins.run('base'));
    const pages = (unit.db.pragma('page_count', { simple: true }) as number) + 2;
    unit.db.pragma(`max_page_count = ${pages}`);
    const earlier = unit.stage(() => ins.run('earlier'));
    // SQLITE_FULL: SQLite rolls back the transaction, not only the savepoint.
    expect(() => unit.stage(() => ins.run('x'.repeat(64 * 1024)))).toThrow(/full/);
    unit.db.pragma('max_page_count = 1073741823');
    // In the same turn, the next write begins a new transaction (it does not autocommit, and its
    // commit is not the failed one's).
    const later = unit.stage(() => ins.run('later'));
    await expect(earlier.durable).rejects.toThrow(/full/);
    await later.durable;
    expect(committed(path)).toEqual(['base', 'later']);
  });

  it('writeNow commits what is open first, then its own write, before it returns', () => {
    const { unit, path } = open();
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const staged = unit.stage(() => ins.run('first'));
    unit.writeNow(() => ins.run('now'));
    expect(committed(path)).toEqual(['first', 'now']);
    return staged.durable;
  });

  it('writeNow refuses after the open transaction failed to commit', async () => {
    const { unit, path } = open();
    const staged = unit.stage(() => unit.db.prepare('INSERT INTO c (parent) VALUES (-1)').run());
    expect(() => unit.writeNow(() => unit.db.prepare('INSERT INTO t (k) VALUES (?)').run('no'))).toThrow(
      'the open transaction did not commit',
    );
    await expect(staged.durable).rejects.toThrow(/FOREIGN KEY/);
    expect(committed(path)).toEqual([]);
  });
});
