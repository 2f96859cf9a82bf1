/**
 * The SQLite breaker store (OE-INV-021): the BreakerStore contract, two connections on one file
 * as two processes sharing it, and rows read back as untrusted input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { migrateSchema } from '../../src/kernel/index.js';
import { createSqliteBreakerStore, type SqliteBreakerStore } from '../../src/storage/index.js';
import { BREAKER_SQLITE_MIGRATIONS } from '../../src/storage/sqlite/breaker-store.js';
import { runBreakerStoreContract } from '../control-plane/breaker-store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-breakers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const nextPath = (): string => join(dir, `breakers-${++seq}.db`);

let opened: SqliteBreakerStore[] = [];
afterEach(() => {
  for (const s of opened) s.close();
  opened = [];
});
function open(path: string): SqliteBreakerStore {
  const s = createSqliteBreakerStore(path);
  opened.push(s);
  return s;
}

runBreakerStoreContract(
  'sqlite',
  () => Promise.resolve(open(nextPath())),
  () => {
    const path = nextPath();
    return Promise.resolve([open(path), open(path)] as const);
  },
);

const input = (now: number, principal = 'p') =>
  ({ principal, tenant: 't', call: 'echo\u0000h', now, windowMs: 1000 }) as const;

describe('SQLite breaker store (OE-INV-021)', () => {
  it('keeps counts, open breakers and spend across a reopen of the file', async () => {
    const path = nextPath();
    const a = createSqliteBreakerStore(path);
    await a.admit(input(0));
    await a.trip('q', 'session_calls', Number.POSITIVE_INFINITY);
    expect(await a.reserveSpend('t', 3, 70, 100)).toBe(true);
    a.close();
    const b = open(path);
    expect(await b.admit(input(1))).toEqual({ open: null, total: 2, inSession: 2, inTenant: 2, sameCall: 2 });
    expect(await b.openBreaker('q', 10 ** 13)).toBe('session_calls');
    expect(await b.reserveSpend('t', 3, 31, 100)).toBe(false);
  });

  it('prunes the buckets that left the window of the keys it touches, and sweeps stale keys a few at a time', async () => {
    const path = nextPath();
    const s = open(path);
    const raw = new Database(path, { readonly: true });
    const rows = () => raw.prepare('SELECT count(*) AS n FROM breaker_buckets').get();
    try {
      // A window of 1000 ms counts in buckets of 16 ms: the five hits share one per key.
      for (let i = 0; i < 5; i++) await s.admit({ ...input(i), call: `c${i}` });
      expect(rows()).toEqual({ n: 7 });
      // Kept for two windows (a clock stepped back by up to one still counts them).
      await s.admit(input(1500));
      expect(rows()).toEqual({ n: 10 });
      // 1500–1503 in the bucket [1488, 1504), 1504 in the next one.
      for (let i = 1; i < 5; i++) await s.admit({ ...input(1500 + i), call: `c${i}` });
      expect(rows()).toEqual({ n: 16 });
      // Another principal and tenant, two windows later: at most 8 stale buckets go per admission.
      await s.admit({ ...input(10_000, 'q'), tenant: 'u' });
      expect(rows()).toEqual({ n: 11 });
      await s.admit({ ...input(10_001, 'q'), tenant: 'u' });
      expect(rows()).toEqual({ n: 3 });
    } finally {
      raw.close();
    }
  });

  it('a count reads at most 129 rows per key however many calls the window holds, and is exact inside it', async () => {
    const path = nextPath();
    const s = open(path);
    const raw = new Database(path, { readonly: true });
    try {
      let last: Awaited<ReturnType<typeof s.admit>> | undefined;
      // 3000 calls of 300 sessions of one tenant over one window: a row per hit read them all.
      for (let i = 0; i < 3000; i++)
        last = await s.admit({ ...input(Math.floor(i / 3), `s${i % 300}`), call: `c${i}` });
      expect(last).toMatchObject({ inTenant: 3000, inSession: 10 });
      const tenantRows = raw
        .prepare("SELECT count(*) AS n FROM breaker_buckets WHERE kind = 1 AND key = CAST('t' AS BLOB)")
        .get() as { n: number };
      expect(tenantRows.n).toBeLessThanOrEqual(129);
      // A window later the first bucket's hits are gone: counts never run below the window's hits.
      const later = await s.admit({ ...input(1200, 's0'), call: 'x' });
      expect(later).toMatchObject({ open: null });
      if (later.open === null) {
        const exact =
          Array.from({ length: 3000 }, (_, i) => Math.floor(i / 3)).filter((t) => t > 200).length + 1;
        expect(later.inTenant).toBeGreaterThanOrEqual(exact);
        expect(later.inTenant).toBeLessThanOrEqual(exact + 16 * 3);
      }
    } finally {
      raw.close();
    }
  });

  it('a file of version 2 upgrades in place: its hits become buckets and count as before', async () => {
    const path = nextPath();
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    migrateSchema(old, 'breakers', BREAKER_SQLITE_MIGRATIONS.slice(0, 2));
    const hit = old.prepare(
      "INSERT INTO breaker_hits (kind, key, sub, at) VALUES (0, CAST('p' AS BLOB), x'', ?)",
    );
    for (const at of [100, 100, 900]) hit.run(at);
    old.close();
    const s = open(path);
    expect(await s.admit(input(1050))).toMatchObject({ inSession: 4 });
    // A window later the old hits are out: only 1050 and this one.
    expect(await s.admit(input(1950))).toMatchObject({ inSession: 2 });
  });

  it('a malformed row or a closed store rejects, never answers a count or true (fail closed)', async () => {
    const path = nextPath();
    const s = open(path);
    await s.trip('p', 'loop', 500);
    await s.reserveSpend('t', 1, 10, 100);
    const raw = new Database(path);
    try {
      raw.prepare("UPDATE breaker_open SET breaker = 'bogus'").run();
      raw.prepare('UPDATE breaker_spend SET cents = 500').run();
    } finally {
      raw.close();
    }
    await expect(s.openBreaker('p', 0)).rejects.toBeInstanceOf(TypeError);
    await expect(s.admit(input(0))).rejects.toBeInstanceOf(TypeError);
    // Spend already past the limit (however it got there) grants nothing more.
    expect(await s.reserveSpend('t', 1, 1, 100)).toBe(false);
    const closed = createSqliteBreakerStore(nextPath());
    closed.close();
    await expect(closed.admit(input(0))).rejects.toBeInstanceOf(Error);
    await expect(closed.reserveSpend('t', 1, 1, 100)).rejects.toBeInstanceOf(Error);
  });

  it('refuses values it cannot store exactly (lone surrogates, non-integers, unknown breakers)', async () => {
    const s = open(nextPath());
    await expect(s.admit(input(0, 'p\ud800'))).rejects.toBeInstanceOf(TypeError);
    await expect(s.admit(input(0.5))).rejects.toBeInstanceOf(TypeError);
    await expect(s.reserveSpend('t', 1, -1, 100)).rejects.toBeInstanceOf(TypeError);
    await expect(s.trip('p', 'nope' as 'loop', 1)).rejects.toBeInstanceOf(TypeError);
    await expect(s.trip('p', 'loop', Number.NaN)).rejects.toBeInstanceOf(TypeError);
    expect(await s.openBreaker('p', 0)).toBeNull();
  });
});
