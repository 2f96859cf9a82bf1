/**
 * Pruning of the SQLite stores (FC-INV-3, OE-INV-017, OE-INV-021): tables with more expired rows
 * than one batch are emptied by one prune called, over several transactions, and by the stores
 * themselves in the background; what is still in its window stays and still refuses a replay or
 * holds a limit; a breaker file made at schema version 1 is upgraded in place (the prune indexes,
 * the buckets) with its rows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { NonceConsumption } from '../../src/execution/index.js';
import { createSqliteNonceStore } from '../../src/execution/index.js';
import { createSqliteGateState } from '../../src/gate/index.js';
import { migrateSchema } from '../../src/kernel/index.js';
import { createSqliteBreakerStore } from '../../src/storage/index.js';
import { BREAKER_SQLITE_MIGRATIONS } from '../../src/storage/sqlite/breaker-store.js';

const DAY = 86_400_000;
const T0 = 1_700_000_000_000;
const dir = mkdtempSync(join(tmpdir(), 'fc-sqlite-prune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const nextPath = (): string => join(dir, `store-${++seq}.db`);

/** One number from a connection of the test's own. */
function countOf(path: string, sql: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Runs `sql` over `rows` on a connection of the test's own, in one transaction. */
function bulk(path: string, sql: string, rows: readonly unknown[][]): void {
  const db = new Database(path);
  try {
    const s = db.prepare(sql);
    db.transaction(() => {
      for (const r of rows) s.run(...r);
    })();
  } finally {
    db.close();
  }
}

describe('SQLite request-replay prune (FC-INV-3)', () => {
  it('one prune removes 12,000 expired rows of two clients over several batches; live requests stay refused', async () => {
    const path = nextPath();
    const state = createSqliteGateState({ path, replayRetentionMs: 7 * DAY, replayKeepPerClient: 10 });
    try {
      bulk(
        path,
        "INSERT INTO gate_request_nonces (identity, kind, value, seen_at) VALUES (?, 'nonce', ?, ?)",
        Array.from({ length: 12_000 }, (_, i) => [i % 2 === 0 ? 'a' : 'b', `old-${i}`, T0 - 30 * DAY + i]),
      );
      for (let i = 0; i < 10; i++)
        for (const identity of ['a', 'b'])
          expect(
            await state.claim({ identity, nonce: `live-${i}`, requestId: `rid-${i}`, atMs: T0 + i }),
          ).toBe('fresh');
      expect(await state.pruneReplay()).toBe(12_000);
      expect(countOf(path, 'SELECT count(*) AS n FROM gate_request_nonces')).toBe(40);
      expect(await state.claim({ identity: 'a', nonce: 'live-0', requestId: 'other', atMs: T0 })).toBe(
        'replayed',
      );
      expect(await state.claim({ identity: 'b', nonce: 'other', requestId: 'rid-9', atMs: T0 })).toBe(
        'replayed',
      );
      expect(await state.pruneReplay()).toBe(0);
    } finally {
      await state.close();
    }
  });

  it('prunes a backlog by itself after 1000 claims, outside their transaction; a closed store refuses a prune', async () => {
    const path = nextPath();
    const state = createSqliteGateState({ path, replayRetentionMs: 7 * DAY, replayKeepPerClient: 10 });
    bulk(
      path,
      "INSERT INTO gate_request_nonces (identity, kind, value, seen_at) VALUES ('a', 'nonce', ?, ?)",
      Array.from({ length: 5000 }, (_, i) => [`old-${i}`, T0 - 30 * DAY]),
    );
    const claims = Array.from({ length: 1000 }, (_, i) =>
      state.claim({ identity: 'b', nonce: `n${i}`, requestId: `r${i}`, atMs: T0 }),
    );
    expect(new Set(await Promise.all(claims))).toEqual(new Set(['fresh']));
    await vi.waitFor(
      () =>
        expect(countOf(path, "SELECT count(*) AS n FROM gate_request_nonces WHERE identity = 'a'")).toBe(10),
      {
        timeout: 10_000,
      },
    );
    expect(await state.claim({ identity: 'b', nonce: 'n999', requestId: 'x', atMs: T0 })).toBe('replayed');
    await state.close();
    await expect(state.pruneReplay()).rejects.toThrow(/closed/);
  });
});

describe('SQLite envelope-nonce prune (OE-INV-017)', () => {
  const T = 1_700_000_000;
  const n = (jti: string, exp: number): NonceConsumption => ({ jti, tenant: 'acme', exp, decision_id: 'd' });
  const old = (path: string, count: number): void =>
    bulk(
      path,
      "INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at) VALUES (?, 'acme', ?, 'd', 0)",
      Array.from({ length: count }, (_, i) => [`old-${i}`, T - 86_400 + (i % 100)]),
    );

  it('one prune removes 4,500 expired rows over several batches; a live jti stays single use, a pruned one is never fresh', async () => {
    const path = nextPath();
    const store = createSqliteNonceStore({ path, now: () => T * 1000 });
    try {
      old(path, 4500);
      expect(await store.consume(n('live', T + 60))).toBe('fresh');
      expect(await store.prune({ nowSec: T, toleranceSec: 300 })).toBe(4500);
      expect(countOf(path, 'SELECT count(*) AS n FROM envelope_nonces')).toBe(1);
      expect(await store.consume(n('live', T + 60))).toBe('replayed');
      expect(await store.consume(n('old-7', T - 86_400 + 7))).toBe('replayed');
    } finally {
      await store.close();
    }
  });

  it('the 1000th consumption prunes one batch in its transaction, the rest in the background', async () => {
    const path = nextPath();
    const store = createSqliteNonceStore({ path, now: () => T * 1000, retainAfterExpSec: 300 });
    try {
      old(path, 4500);
      const verdicts = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => store.consume(n(`new-${i}`, T + 60))),
      );
      expect(new Set(verdicts)).toEqual(new Set(['fresh']));
      await vi.waitFor(() => expect(countOf(path, 'SELECT count(*) AS n FROM envelope_nonces')).toBe(1000), {
        timeout: 10_000,
      });
      expect(await store.consume(n('new-5', T + 60))).toBe('replayed');
    } finally {
      await store.close();
    }
  });
});

describe('SQLite breaker prune (OE-INV-021)', () => {
  it("prunes itself every 1000 admissions; open breakers, today's spend and lifetime counts stay", async () => {
    const path = nextPath();
    const store = createSqliteBreakerStore(path);
    try {
      const now = 10 * DAY;
      expect(await store.reserveSpend('t', 2, 100, 100)).toBe(true);
      expect(await store.reserveSpend('t', 10, 100, 100)).toBe(true);
      await store.trip('old', 'loop', now - 2 * DAY);
      await store.trip('p', 'session_calls', Number.POSITIVE_INFINITY);
      for (let i = 0; i < 1000; i++)
        await store.admit({ principal: `s${i}`, tenant: 't', call: 'c', now, windowMs: 1000 });
      await vi.waitFor(
        () => expect(countOf(path, 'SELECT count(*) AS n FROM breaker_spend WHERE day = 2')).toBe(0),
        {
          timeout: 10_000,
        },
      );
      expect(countOf(path, 'SELECT count(*) AS n FROM breaker_open WHERE until IS NOT NULL')).toBe(0);
      expect(await store.reserveSpend('t', 10, 1, 100)).toBe(false);
      expect(await store.openBreaker('p', now)).toBe('session_calls');
      expect(countOf(path, 'SELECT count(*) AS n FROM breaker_totals')).toBe(1000);
    } finally {
      store.close();
    }
  });

  it('a file at schema version 1 is upgraded in place: its rows kept, the prune indexes added', async () => {
    const path = nextPath();
    // A file as the build before version 2 left it: version 1 recorded, no prune index.
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    migrateSchema(db, 'breakers', BREAKER_SQLITE_MIGRATIONS.slice(0, 1));
    db.prepare("INSERT INTO breaker_spend (tenant, day, cents) VALUES (CAST('t' AS BLOB), 10, 100)").run();
    db.close();
    const store = createSqliteBreakerStore(path);
    try {
      expect(await store.reserveSpend('t', 10, 1, 100)).toBe(false);
      expect(countOf(path, "SELECT max(version) AS n FROM failclosed_schema WHERE store = 'breakers'")).toBe(
        BREAKER_SQLITE_MIGRATIONS.length,
      );
      expect(
        countOf(
          path,
          "SELECT count(*) AS n FROM sqlite_master WHERE name IN ('breaker_open_until', 'breaker_spend_day')",
        ),
      ).toBe(2);
    } finally {
      store.close();
    }
  });
});
