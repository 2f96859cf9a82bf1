/**
 * Checkpoints on a thread of their own (`src/kernel/sqlite-checkpointer.ts`, as the embedded
 * deployment runs them from a build): the log is still checkpointed about once per threshold and
 * stays near it while commits go on, and every failure of the thread stops the unit as a failed
 * checkpoint on the event loop does (SPEC §4 "writes are durable before they are acknowledged",
 * FC-INV-4): SQLite's error, a thread that exits. A close while a checkpoint is under way loses
 * no commit. The thread runs the built worker (`dist/`, `npm run build` as `npm test` does
 * first); the faults wrap it in a test entry (`fixtures/checkpoint-worker-faults.mjs`).
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkpointerAvailable, createCheckpointer, createSqliteCommitUnit } from '../../src/kernel/index.js';
import type { SqliteCommitUnit } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

const BUILT = pathToFileURL(join(REPO_ROOT, 'dist/src/kernel/sqlite-checkpoint-worker.js'));
const FAULTY = pathToFileURL(join(REPO_ROOT, 'test/kernel/fixtures/checkpoint-worker-faults.mjs'));
const PAGE = Buffer.alloc(3000, 1);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

beforeAll(() => {
  expect(existsSync(BUILT), 'run npm run build first').toBe(true);
});

/** A unit on a fresh file, its checkpoints (at 4 MiB) on a thread running `url` with `fault`. */
function open(url: URL, fault?: string, faultAt = 1): { unit: SqliteCommitUnit; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-checkpointer-'));
  const path = join(dir, 'x.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE blob (v BLOB)');
  // The thread takes its environment when it starts (at the first checkpoint): the fault is set
  // for the test's length (the tests of a file run one at a time).
  if (fault !== undefined) {
    process.env['FC_TEST_CHECKPOINT_FAULT'] = fault;
    process.env['FC_TEST_CHECKPOINT_FAULT_AT'] = String(faultAt);
  }
  const unit = createSqliteCommitUnit(db, {
    checkpointBytes: 4 * 1024 * 1024,
    checkpointer: (p) => createCheckpointer(p, url),
  });
  cleanups.push(() => {
    delete process.env['FC_TEST_CHECKPOINT_FAULT'];
    delete process.env['FC_TEST_CHECKPOINT_FAULT_AT'];
    unit.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { unit, path };
}

/** Commits about 180 KiB of log, durably. */
const commitSome = (unit: SqliteCommitUnit): Promise<void> => {
  const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
  return unit.write(() => {
    for (let j = 0; j < 60; j++) ins.run(PAGE);
  });
};

const rows = (path: string): number => {
  const r = new Database(path, { readonly: true });
  try {
    return r.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM blob').get()?.n ?? -1;
  } finally {
    r.close();
  }
};

/** Until the unit counts more than `n` checkpoints (each commit gives the thread time). */
async function untilCheckpointed(unit: SqliteCommitUnit, n: number): Promise<void> {
  for (let i = 0; i < 400 && unit.checkpoints <= n; i++) await commitSome(unit);
  expect(unit.checkpoints).toBeGreaterThan(n);
}

describe('checkpoints on their own thread', () => {
  it('is what a build uses, and not the sources', () => {
    expect(checkpointerAvailable(BUILT)).toBe(true);
    expect(
      checkpointerAvailable(pathToFileURL(join(REPO_ROOT, 'src/kernel/sqlite-checkpoint-worker.js'))),
    ).toBe(false);
  });

  it('checkpoint about once per 4 MiB of log while commits go on, and the log stays near 4 MiB', async () => {
    const { unit, path } = open(BUILT);
    // The first checkpoint also starts the thread's connection: from then on, steady state.
    await untilCheckpointed(unit, 0);
    const before0 = rows(path);
    let largest = 0;
    let last = statSync(`${path}-wal`).size;
    let restarts = 0;
    const perCycle: number[] = [];
    // Five cycles of about 7 MiB of log each.
    for (let cycle = 0; cycle < 5; cycle++) {
      const before = unit.checkpoints;
      for (let i = 0; i < 40; i++) {
        await commitSome(unit);
        const size = statSync(`${path}-wal`).size;
        largest = Math.max(largest, size);
        // Truncated back to the threshold: the log restarted after a checkpoint to its end.
        if (size < last) restarts += 1;
        last = size;
      }
      perCycle.push(unit.checkpoints - before);
    }
    // Several in the 35 MiB written, never one per commit (200 commits). A checkpoint's rounds
    // chase commits made as fast as this loop makes them, so one may cover 10 MiB or more.
    const total = perCycle.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(2);
    expect(total).toBeLessThanOrEqual(15);
    // Commits went on while the thread copied: the log grew past 4 MiB meanwhile, but each
    // checkpoint ended at its end (its tail copied between commits) and it restarted.
    expect(largest).toBeLessThan(16 * 1024 * 1024);
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(unit.stopped).toBeUndefined();
    expect(rows(path)).toBe(before0 + 5 * 40 * 60);
  });

  it('a checkpoint that fails with SQLite I/O error stops the unit: every later write throws', async () => {
    const { unit } = open(FAULTY, 'ioerr');
    let err: unknown;
    try {
      for (let i = 0; i < 400; i++) await commitSome(unit);
    } catch (e) {
      err = e;
    }
    expect(String(err)).toMatch(/could not be made durable.*disk I\/O error/);
    expect(unit.stopped?.message).toMatch(/disk I\/O error/);
    await expect(commitSome(unit)).rejects.toBe(unit.stopped);
    expect(() => unit.writeNow(() => undefined)).toThrow(unit.stopped!.message);
  });

  it('a thread that exits stops the unit: every later write throws', async () => {
    const { unit } = open(FAULTY, 'exit');
    let err: unknown;
    try {
      for (let i = 0; i < 400; i++) await commitSome(unit);
    } catch (e) {
      err = e;
    }
    expect(String(err)).toMatch(/checkpoint thread exited/);
    await expect(commitSome(unit)).rejects.toBe(unit.stopped);
  });

  it('a close while a checkpoint is under way loses no commit', async () => {
    const { unit, path } = open(FAULTY, 'hold:1500');
    const ins = unit.db.prepare('INSERT INTO blob (v) VALUES (?)');
    let n = 0;
    // Past 4 MiB: the checkpoint is asked for and held on its thread while commits go on.
    while (statSync(`${path}-wal`).size <= 4 * 1024 * 1024 + 512 * 1024) {
      await unit.write(() => {
        for (let j = 0; j < 60; j++) ins.run(PAGE);
      });
      n += 60;
    }
    await commitSome(unit);
    n += 60;
    expect(unit.checkpoints).toBe(0);
    unit.close();
    expect(rows(path)).toBe(n);
  });
});
