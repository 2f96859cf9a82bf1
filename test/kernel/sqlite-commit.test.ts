/**
 * The shared connection's commit schedule (`src/kernel/sqlite-commit.ts`, SPEC §8 "durable
 * writes"): writes of one event-loop turn share one commit; a write that throws undoes only
 * itself; a commit that fails rejects every write in it and leaves nothing behind; `writeNow`
 * is durable when it returns. The failing commit is real SQLite: a deferred foreign key.
 * Durability is the unit's own `fsync` of the write-ahead log, off the event loop: a write's
 * promise resolves only after it, and a failed `fsync` stops every later write (FC-INV-4,
 * SPEC §4 "writes are durable before they are acknowledged"). The `fsync` is the real one,
 * wrapped here to hold or fail it.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createDurableWrites, createSqliteCommitUnit, fileSync } from '../../src/kernel/index.js';
import type { FileSync, SqliteCommitUnit } from '../../src/kernel/index.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function open(files?: FileSync): { unit: SqliteCommitUnit; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-commit-unit-'));
  const path = join(dir, 'x.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.exec(`CREATE TABLE t (k TEXT PRIMARY KEY);
    CREATE TABLE p (id INTEGER PRIMARY KEY);
    CREATE TABLE c (parent INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);`);
  // SQLite's default threshold keeps the log-size tests small (the unit's default is 32 MiB).
  const unit = createSqliteCommitUnit(db, {
    checkpointBytes: 4 * 1024 * 1024,
    ...(files === undefined ? {} : { fileSync: files }),
  });
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

  it('a write is durable only once an fsync of the log that began after its commit ended', async () => {
    const held = holdingSync();
    const { unit, path } = open(held.files);
    expect(unit.db.pragma('synchronous', { simple: true })).toBe(1);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const a = unit.stage(() => ins.run('a'));
    let durable = false;
    void a.durable.then(() => (durable = true));
    await turn();
    // Committed (another connection reads it), not yet acknowledged: the fsync is under way.
    expect(committed(path)).toEqual(['a']);
    expect(held.paths).toEqual([`${path}-wal`]);
    expect(durable).toBe(false);
    // Commits made meanwhile wait for the next fsync, which covers them all.
    const b = unit.stage(() => ins.run('b'));
    await turn();
    const c = unit.stage(() => ins.run('c'));
    await turn();
    held.release();
    // The log's directory entry is synced once, after the first fsync of the log.
    await until(() => held.paths.length === 2);
    expect(held.paths).toEqual([`${path}-wal`, join(path, '..')]);
    expect(durable).toBe(false);
    held.release();
    await a.durable;
    await until(() => held.paths.length === 3);
    expect(held.paths).toEqual([`${path}-wal`, join(path, '..'), `${path}-wal`]);
    let later = false;
    void Promise.all([b.durable, c.durable]).then(() => (later = true));
    await turn();
    expect(later).toBe(false);
    held.release();
    await Promise.all([b.durable, c.durable]);
  });

  it('writeNow syncs the log before it returns, and that covers every commit before it', async () => {
    const held = holdingSync();
    const { unit, path } = open(held.files);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const staged = unit.stage(() => ins.run('first'));
    await turn();
    expect(held.paths).toEqual([`${path}-wal`]);
    unit.writeNow(() => ins.run('now'));
    expect(held.now).toEqual([`${path}-wal`, join(path, '..')]);
    // Resolved by the synchronous fsync, though the one in the pool is still held.
    await staged.durable;
  });

  it('a failed fsync rejects every commit waiting for it and stops every later write', async () => {
    const failing: FileSync = {
      ...fileSync,
      sync: () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })),
    };
    const { unit } = open(failing);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const a = unit.stage(() => ins.run('a'));
    const writes = createDurableWrites();
    writes.add(a.durable);
    await expect(a.durable).rejects.toThrow(/could not be made durable \(EIO/);
    await expect(writes.sync()).rejects.toThrow(/could not be made durable/);
    // What is on disk is unknown: nothing is written any more, on any path.
    expect(() => unit.stage(() => ins.run('b'))).toThrow(/could not be made durable/);
    await expect(unit.write(() => ins.run('c'))).rejects.toThrow(/could not be made durable/);
    expect(() => unit.writeNow(() => ins.run('d'))).toThrow(/could not be made durable/);
  });

  it('a failed fsync stops the unit even when a later one already covered its commits', async () => {
    const held = holdingSync();
    let fail = false;
    const files: FileSync = {
      ...held.files,
      async sync(fd) {
        await held.files.sync(fd);
        if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      },
    };
    const { unit } = open(files);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const a = unit.stage(() => ins.run('a'));
    await turn();
    // writeNow's own fsync covers `a`; the held one then reports an error: pages may be lost.
    unit.writeNow(() => ins.run('now'));
    await a.durable;
    fail = true;
    held.release();
    await until(() => unit.stopped !== undefined);
    expect(() => unit.stage(() => ins.run('b'))).toThrow(/could not be made durable/);
  });

  it("every fsync of the log goes through two descriptors opened together and kept: the pool's, and the synchronous one's", async () => {
    const opened = new Map<number, string>();
    const pool = new Set<number>();
    const now = new Set<number>();
    const files: FileSync = {
      ...fileSync,
      open(path) {
        const fd = fileSync.open(path);
        opened.set(fd, path);
        return fd;
      },
      sync(fd) {
        pool.add(fd);
        return fileSync.sync(fd);
      },
      syncNow(fd) {
        now.add(fd);
        fileSync.syncNow(fd);
      },
    };
    const { unit, path } = open(files);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    for (const k of ['a', 'b', 'c']) await unit.write(() => ins.run(k));
    unit.writeNow(() => ins.run('d'));
    await unit.write(() => ins.run('e'));
    unit.writeNow(() => ins.run('f'));
    const logFds = [...opened].filter(([, p]) => p === `${path}-wal`).map(([fd]) => fd);
    expect(logFds).toHaveLength(2);
    const ofLog = (fds: Set<number>): number[] => [...fds].filter((fd) => logFds.includes(fd));
    expect(ofLog(pool)).toHaveLength(1);
    expect(ofLog(now)).toHaveLength(1);
    expect(ofLog(pool)[0]).not.toBe(ofLog(now)[0]);
    expect(unit.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
  });

  describe('an fsync error, reported once per open file as Linux does', () => {
    /** How a commit's promise settles: acknowledged or rejected. */
    const settledAs = (durable: Promise<void>): Promise<string> =>
      durable.then(
        () => 'acknowledged',
        () => 'rejected',
      );

    /**
     * The real fsync, with Linux's report of a writeback error (`errseq_t`): an error of the file
     * is reported once to each open file that was open before it, by the first fsync through it
     * that looks. The pool's fsyncs are held until released; a release looks at once (the pool's
     * thread took the error) and its answer reaches the event loop later, as libuv delivers it.
     */
    function linuxSync(): { files: FileSync; fail(): void; release(): void; held(): number } {
      let errors = 0;
      const seen = new Map<number, number>();
      const logs = new Set<number>();
      const gates: (() => void)[] = [];
      const look = (fd: number): void => {
        if (!logs.has(fd)) return;
        if ((seen.get(fd) ?? 0) < errors) {
          seen.set(fd, errors);
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
      };
      return {
        files: {
          open(path) {
            const fd = fileSync.open(path);
            if (path.endsWith('-wal')) {
              logs.add(fd);
              seen.set(fd, errors);
            }
            return fd;
          },
          async sync(fd) {
            let outcome: Error | undefined;
            await new Promise<void>((resolve) =>
              gates.push(() => {
                try {
                  look(fd);
                } catch (err) {
                  outcome = err as Error;
                }
                resolve();
              }),
            );
            await new Promise((resolve) => setImmediate(resolve));
            if (outcome !== undefined) throw outcome;
            await fileSync.sync(fd);
          },
          syncNow(fd) {
            look(fd);
            fileSync.syncNow(fd);
          },
          close: (fd) => fileSync.close(fd),
        },
        fail: () => void (errors += 1),
        release: () => gates.shift()?.(),
        held: () => gates.length,
      };
    }

    it("the pool's fsync took the error: writeNow's own fsync sees it too, and nothing waiting is acknowledged", async () => {
      const linux = linuxSync();
      const { unit } = open(linux.files);
      const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
      const a = unit.stage(() => ins.run('decision'));
      const outcome = settledAs(a.durable);
      await turn();
      expect(linux.held()).toBe(1);
      // The log's pages were lost under the pool's fsync; its thread took the error, whose answer
      // is still on its way when a writeNow (a taint, a vote) runs.
      linux.fail();
      linux.release();
      expect(() => unit.writeNow(() => ins.run('now'))).toThrow(/could not be made durable \(EIO/);
      expect(await outcome).toBe('rejected');
      expect(unit.stopped).toBeDefined();
    });

    it('one fsync in the pool at a time: a commit after writeNow waits for the one under way, and its error', async () => {
      const linux = linuxSync();
      const { unit } = open(linux.files);
      const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
      const a = unit.stage(() => ins.run('a'));
      await turn();
      expect(linux.held()).toBe(1);
      // Covers `a` at once; the pool's fsync is still under way.
      unit.writeNow(() => ins.run('now'));
      await a.durable;
      const b = unit.stage(() => ins.run('b'));
      const outcome = settledAs(b.durable);
      await turn();
      // No second fsync beside the one under way: it would take no error the first one took.
      expect(linux.held()).toBe(1);
      linux.fail();
      linux.release();
      expect(await outcome).toBe('rejected');
      expect(unit.stopped).toBeDefined();
    });
  });

  it('checkpoints about once per 4 MiB of log, not at every commit once the log file reached it, and the log stays near 4 MiB', async () => {
    const { unit, path } = open();
    unit.db.exec('CREATE TABLE blob (v BLOB)');
    const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
    const page = Buffer.alloc(3000, 1);
    let largest = 0;
    const perCycle: number[] = [];
    // Five cycles of about 7 MiB of log each.
    for (let cycle = 0; cycle < 5; cycle++) {
      const before = unit.checkpoints;
      for (let i = 0; i < 40; i++) {
        await unit.write(() => {
          for (let j = 0; j < 60; j++) ins.run(page);
        });
        largest = Math.max(largest, statSync(`${path}-wal`).size);
      }
      perCycle.push(unit.checkpoints - before);
    }
    // Each cycle checkpointed, and none at every commit.
    for (const n of perCycle) {
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThanOrEqual(3);
    }
    expect(largest).toBeLessThan(6 * 1024 * 1024);
    // 200 small commits after it (under 1 MiB of log): at most the one the log was already due.
    const after = unit.checkpoints;
    for (let i = 0; i < 200; i++) await unit.write(() => ins.run(Buffer.alloc(10)));
    expect(unit.checkpoints).toBeLessThanOrEqual(after + 1);
  });

  it('a reader holding the log back lets it grow; once it lets go the log shrinks back to about 4 MiB', async () => {
    const { unit, path } = open();
    unit.db.exec('CREATE TABLE blob (v BLOB)');
    const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
    const page = Buffer.alloc(3000, 1);
    const cycle = async (): Promise<number> => {
      let largest = 0;
      for (let i = 0; i < 40; i++) {
        await unit.write(() => {
          for (let j = 0; j < 60; j++) ins.run(page);
        });
        largest = Math.max(largest, statSync(`${path}-wal`).size);
      }
      return largest;
    };
    await cycle();
    const reader = new Database(path, { readonly: true });
    cleanups.unshift(() => reader.close());
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) AS n FROM blob').get();
    await cycle();
    await cycle();
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(10 * 1024 * 1024);
    reader.exec('COMMIT');
    await cycle();
    expect(await cycle()).toBeLessThan(6 * 1024 * 1024);
  });

  it('a log file that does not shrink after a checkpoint (another writer first) still checkpoints per 4 MiB', async () => {
    const { unit, path } = open();
    unit.db.exec('CREATE TABLE blob (v BLOB)');
    const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
    // A connection without journal_size_limit: when it writes first after a checkpoint, the
    // log restarts without the file shrinking.
    const other = new Database(path);
    cleanups.unshift(() => other.close());
    const otherIns = other.prepare('INSERT INTO blob (v) VALUES (?)');
    const page = Buffer.alloc(3000, 1);
    let largest = 0;
    let seen = unit.checkpoints;
    for (let i = 0; i < 240; i++) {
      await unit.write(() => {
        for (let j = 0; j < 60; j++) ins.run(page);
      });
      if (unit.checkpoints !== seen) {
        seen = unit.checkpoints;
        otherIns.run(Buffer.alloc(10));
      }
      largest = Math.max(largest, statSync(`${path}-wal`).size);
    }
    expect(unit.checkpoints).toBeGreaterThanOrEqual(5);
    expect(largest).toBeLessThan(10 * 1024 * 1024);
  });

  it('a failed synchronous fsync in writeNow throws and stops the unit', async () => {
    const failing: FileSync = {
      ...fileSync,
      syncNow: () => {
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      },
    };
    const { unit } = open(failing);
    const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
    const staged = unit.stage(() => ins.run('a'));
    expect(() => unit.writeNow(() => ins.run('now'))).toThrow(/could not be made durable \(EIO/);
    await expect(staged.durable).rejects.toThrow(/could not be made durable/);
    expect(() => unit.stage(() => ins.run('b'))).toThrow(/could not be made durable/);
  });

  describe('an I/O error from SQLite itself stops the unit: what the log holds is unknown', () => {
    const ioError = (): Error => Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' });

    /**
     * The real connection behind a proxy that, once armed, fails `COMMIT` (a shared commit) or a
     * `writeNow` transaction with SQLite's I/O error.
     */
    function faultyConnection(): { unit: SqliteCommitUnit; arm: (on: 'commit' | 'writeNow') => void } {
      const { unit: plain, path } = open();
      plain.close();
      const db = new Database(path);
      let armed: 'commit' | 'writeNow' | undefined;
      const faulty = new Proxy(db, {
        get(target, prop) {
          if (prop === 'exec' && armed === 'commit')
            return (sql: string) => {
              if (sql === 'COMMIT') throw ioError();
              return target.exec(sql);
            };
          if (prop === 'transaction' && armed === 'writeNow')
            return () => ({
              immediate: () => {
                throw ioError();
              },
            });
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const unit = createSqliteCommitUnit(faulty);
      cleanups.unshift(() => unit.close());
      return { unit, arm: (on) => void (armed = on) };
    }

    it('at a shared commit: its writes are rejected and every later write throws', async () => {
      const { unit, arm } = faultyConnection();
      const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
      arm('commit');
      const a = unit.stage(() => ins.run('a'));
      await expect(a.durable).rejects.toThrow('disk I/O error');
      expect(unit.stopped).toBeDefined();
      expect(() => unit.stage(() => ins.run('b'))).toThrow(/could not be made durable \(disk I\/O error/);
      expect(() => unit.writeNow(() => ins.run('c'))).toThrow(/could not be made durable/);
    });

    it('in writeNow: it throws, and every later write throws', () => {
      const { unit, arm } = faultyConnection();
      const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
      arm('writeNow');
      expect(() => unit.writeNow(() => ins.run('vote'))).toThrow(
        /could not be made durable \(disk I\/O error/,
      );
      expect(unit.stopped).toBeDefined();
      expect(() => unit.stage(() => ins.run('b'))).toThrow(/could not be made durable/);
    });

    it("a plain error in writeNow (a constraint) is its caller's only: the unit goes on", () => {
      const { unit } = faultyConnection();
      const ins = unit.db.prepare('INSERT INTO t (k) VALUES (?)');
      unit.writeNow(() => ins.run('k'));
      expect(() => unit.writeNow(() => ins.run('k'))).toThrow(/UNIQUE/);
      expect(unit.stopped).toBeUndefined();
      unit.writeNow(() => ins.run('l'));
    });
  });

  it('starts by copying the log as found into the database, synced, the log restarted empty; refuses while a reader holds it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-commit-unit-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'x.db');
    // A previous process's log, not copied yet (its connection still open: the log stays).
    const before = new Database(path);
    before.pragma('journal_mode = WAL');
    before.pragma('wal_autocheckpoint = 0');
    before.exec('CREATE TABLE t (k TEXT PRIMARY KEY)');
    for (const k of ['a', 'b', 'c']) before.prepare('INSERT INTO t (k) VALUES (?)').run(k);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    // A reader holding a snapshot of the log: the copy cannot complete, and the unit refuses.
    const reader = new Database(path, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) AS n FROM t').get();
    const refused = new Database(path, { timeout: 50 });
    refused.pragma('journal_mode = WAL');
    expect(() => createSqliteCommitUnit(refused)).toThrow(/could not be copied into the database at start/);
    refused.close();
    reader.exec('COMMIT');
    reader.close();
    // Free: the log is copied, and restarts empty before the unit appends anything.
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    cleanups.unshift(() => unit.close());
    expect(statSync(`${path}-wal`).size).toBe(0);
    before.close();
    expect(committed(path)).toEqual(['a', 'b', 'c']);
  });

  it('by default lets the log grow to 32 MiB before a checkpoint, and refuses a threshold under 64 KiB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-commit-unit-'));
    const path = join(dir, 'x.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    expect(() => createSqliteCommitUnit(db, { checkpointBytes: 4096 })).toThrow(RangeError);
    const unit = createSqliteCommitUnit(db);
    cleanups.push(() => {
      unit.close();
      rmSync(dir, { recursive: true, force: true });
    });
    expect(unit.db.pragma('journal_size_limit', { simple: true })).toBe(32 * 1024 * 1024);
    unit.db.exec('CREATE TABLE blob (v BLOB)');
    const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
    const page = Buffer.alloc(3000, 1);
    // About 20 MiB of log: at SQLite's default of 4 MiB it would have checkpointed four times.
    for (let i = 0; i < 80; i++)
      await unit.write(() => {
        for (let j = 0; j < 60; j++) ins.run(page);
      });
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(12 * 1024 * 1024);
    expect(unit.checkpoints).toBe(0);
    // Past 32 MiB it checkpoints, and the file never grows far beyond the threshold.
    for (let i = 0; i < 80 && unit.checkpoints === 0; i++)
      await unit.write(() => {
        for (let j = 0; j < 60; j++) ins.run(page);
      });
    expect(unit.checkpoints).toBe(1);
    expect(statSync(`${path}-wal`).size).toBeLessThan(34 * 1024 * 1024);
  });

  it('refuses a connection that is not in WAL mode', () => {
    const db = new Database(':memory:');
    try {
      expect(() => createSqliteCommitUnit(db)).toThrow('not in WAL mode');
    } finally {
      db.close();
    }
  });
});

/** Waits (real fsyncs take their time in the pool) until `ok()`; fails after about 5 s. */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(ok()).toBe(true);
}

/** One event-loop turn: the unit's commit runs at `setImmediate`. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The real fsync, each one in the pool held until released; the synchronous ones recorded. */
function holdingSync(): { files: FileSync; paths: string[]; now: string[]; release(): void } {
  const paths: string[] = [];
  const now: string[] = [];
  const gates: (() => void)[] = [];
  const opened = new Map<number, string>();
  return {
    paths,
    now,
    files: {
      open(path) {
        const fd = fileSync.open(path);
        opened.set(fd, path);
        return fd;
      },
      async sync(fd) {
        paths.push(opened.get(fd) ?? '?');
        await new Promise<void>((resolve) => gates.push(resolve));
        await fileSync.sync(fd);
      },
      syncNow(fd) {
        now.push(opened.get(fd) ?? '?');
        fileSync.syncNow(fd);
      },
      close: (fd) => fileSync.close(fd),
    },
    release() {
      gates.shift()?.();
    },
  };
}
