/**
 * The schedule store's contract (src/schedules/store.ts, docs/schedules.md, FC-INV-6 scheduled
 * tasks), run against every implementation: SQLite as a file of its own, SQLite on the
 * deployment's shared connection in `ledger.db`, and PostgreSQL (a migrated schema every gate
 * shares). One schedule per creation decision; a pending schedule is never due; each slot is
 * taken exactly once, also by racing takers; status changes only from the states named; a
 * malformed row rejects (fail closed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteCommitUnit } from '../../src/kernel/index.js';
import { createSqliteScheduleStore, parseScheduleRow } from '../../src/schedules/index.js';
import type { ScheduleRecord, ScheduleStore } from '../../src/schedules/index.js';
import { createPostgresScheduleStore } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_schedules');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-schedule-store-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const openers: Record<string, () => ScheduleStore | Promise<ScheduleStore>> = {
  'SQLite, own file': () => {
    const s = createSqliteScheduleStore(join(dir(), 'schedules.db'));
    cleanups.unshift(() => void s.close());
    return s;
  },
  'SQLite, shared connection': () => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const s = createSqliteScheduleStore(path, { unit });
    cleanups.unshift(() => unit.close());
    return s;
  },
  PostgreSQL: async () => {
    const db = await openMigratedPool(pg.url);
    cleanups.unshift(() => void db.close());
    await db.pool.query('DELETE FROM schedules');
    return createPostgresScheduleStore(db);
  },
};

const T = Date.parse('2026-12-05T02:30:00Z');
const rec = (over: Partial<ScheduleRecord> = {}): ScheduleRecord => ({
  id: 'sch-000000000000000000000001',
  tenant: 'acme',
  identity: 'demo-agent',
  tool: 'get_time',
  spec: { tool: 'get_time', params: {}, cron: '30 2 * * *' },
  decision_id: 'dec-1',
  request_id: 'req-1',
  status: 'pending',
  next_slot: T,
  created_at: T - 60_000,
  last_run: null,
  ...over,
});

describe.each(Object.keys(openers))('schedule store: %s (FC-INV-6)', (name) => {
  const open = (): ScheduleStore | Promise<ScheduleStore> => openers[name]!();

  it('one schedule per id and per creation decision; read back as written', async () => {
    const s = await open();
    expect(await s.insert(rec())).toBe(true);
    expect(await s.insert(rec())).toBe(false);
    expect(await s.insert(rec({ id: 'sch-000000000000000000000002' }))).toBe(false);
    expect(await s.get(rec().id)).toEqual(rec());
    expect(await s.get('sch-none')).toBeUndefined();
  });

  it('a pending schedule is never due; active, it is due from its slot on; removed, it is not listed', async () => {
    const s = await open();
    await s.insert(rec());
    expect(await s.due(T + 1)).toEqual([]);
    expect(await s.setStatus(rec().id, ['pending'], 'active')).toBe(true);
    expect(await s.setStatus(rec().id, ['pending'], 'active')).toBe(false);
    expect(await s.due(T - 1)).toEqual([]);
    expect((await s.due(T)).map((r) => r.id)).toEqual([rec().id]);
    expect(await s.setStatus(rec().id, ['active'], 'paused')).toBe(true);
    expect(await s.due(T)).toEqual([]);
    expect(await s.setStatus(rec().id, ['paused'], 'active', T + 86_400_000)).toBe(true);
    expect((await s.get(rec().id))?.next_slot).toBe(T + 86_400_000);
    expect(await s.setStatus(rec().id, [], 'removed')).toBe(false);
    expect(await s.setStatus(rec().id, ['active', 'paused'], 'removed')).toBe(true);
    expect(await s.list()).toEqual([]);
  });

  it('each slot is taken exactly once, also by racing takers; the last slot leaves none', async () => {
    const s = await open();
    await s.insert(rec({ status: 'active' }));
    const takes = await Promise.all(
      Array.from({ length: 8 }, () => s.claimSlot(rec().id, T, T + 86_400_000)),
    );
    expect(takes.filter((t) => t)).toHaveLength(1);
    expect(await s.claimSlot(rec().id, T, T + 86_400_000)).toBe(false);
    expect(await s.claimSlot(rec().id, T + 86_400_000, null)).toBe(true);
    expect((await s.get(rec().id))?.next_slot).toBeNull();
    expect(await s.due(Number.MAX_SAFE_INTEGER)).toEqual([]);
    // A paused schedule's slot is never taken.
    await s.insert(rec({ id: 'sch-000000000000000000000003', decision_id: 'dec-3', status: 'paused' }));
    expect(await s.claimSlot('sch-000000000000000000000003', T, null)).toBe(false);
  });

  it('the latest run is noted', async () => {
    const s = await open();
    await s.insert(rec({ status: 'active' }));
    const run = { request_id: 'run-1', slot_start: T, outcome: 'deny', code: 'ERR_KILL_SWITCH' };
    await s.noteRun(rec().id, run);
    expect((await s.get(rec().id))?.last_run).toEqual(run);
  });

  it('a late note for an earlier slot does not overwrite a later one', async () => {
    const s = await open();
    await s.insert(rec({ status: 'active' }));
    const later = { request_id: 'run-2', slot_start: T + 60_000, outcome: 'queued', code: null };
    await s.noteRun(rec().id, later);
    await s.noteRun(rec().id, {
      request_id: 'run-1',
      slot_start: T,
      outcome: 'deny',
      code: 'ERR_OVERLOADED',
    });
    expect((await s.get(rec().id))?.last_run).toEqual(later);
  });
});

describe('schedule rows are parsed, never trusted', () => {
  const row = {
    id: 'sch-1',
    tenant: 'acme',
    identity: 'a',
    tool: 't',
    spec: '{"tool":"t"}',
    decision_id: 'd',
    request_id: 'r',
    status: 'active',
    next_slot: 5,
    created_at: 1,
    last_run: null,
  };
  it.each([
    ['an unknown status', { status: 'running' }],
    ['an empty id', { id: '' }],
    ['a spec that is not an object', { spec: '[1]' }],
    ['a spec that is not JSON', { spec: '{' }],
    ['a fractional slot', { next_slot: 1.5 }],
    ['a last run without its slot', { last_run: '{"outcome":"queued"}' }],
  ])('%s → TypeError or SyntaxError', (_, over) => {
    expect(() => parseScheduleRow({ ...row, ...over })).toThrow(/schedule row|JSON/);
  });
});

describe('a malformed schedule row (FC-INV-6)', () => {
  // Each opener with a way to corrupt a stored row as a broken write or an intruder would.
  const corruptible: Record<
    string,
    () => Promise<{ s: ScheduleStore; corrupt: (id: string) => Promise<void> }>
  > = {
    SQLite: () => {
      const path = join(dir(), 'schedules.db');
      const s = createSqliteScheduleStore(path);
      cleanups.unshift(() => void s.close());
      return Promise.resolve({
        s,
        corrupt: (id) => {
          const db = new Database(path);
          db.prepare("UPDATE schedules SET spec = 'not json' WHERE id = ?").run(id);
          db.close();
          return Promise.resolve();
        },
      });
    },
    PostgreSQL: async () => {
      const db = await openMigratedPool(pg.url);
      cleanups.unshift(() => void db.close());
      await db.pool.query('DELETE FROM schedules');
      return {
        s: createPostgresScheduleStore(db),
        corrupt: async (id) => {
          await db.pool.query("UPDATE schedules SET tenant = '' WHERE id = $1", [id]);
        },
      };
    },
  };

  it.each(Object.keys(corruptible))(
    '%s: it is never due, and the other schedules still are (one bad row stopped them all)',
    async (name) => {
      const { s, corrupt } = await corruptible[name]!();
      const bad = rec({ id: 'sch-000000000000000000000bad', decision_id: 'dec-bad', status: 'active' });
      const good = rec({ id: 'sch-00000000000000000000good', decision_id: 'dec-good', status: 'active' });
      await s.insert(bad);
      await s.insert(good);
      await corrupt(bad.id);
      expect((await s.due(T)).map((r) => r.id)).toEqual([good.id]);
      // The operator's list still refuses it: someone must look at it.
      await expect(async () => s.list()).rejects.toThrow(/schedule row|not valid JSON/);
    },
  );
});
