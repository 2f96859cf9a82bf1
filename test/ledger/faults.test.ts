/**
 * Fault injection on real SQLite (SPEC §7 scenario 9 "Ledger write fails → deny, tool never
 * runs", §4 "a write that cannot be confirmed is a failure", L7 degraded mode: deny): a failing
 * commit, a locked database, a read-only database and a full disk. Every caller of the failed
 * batch is rejected with ERR_LEDGER_UNAVAILABLE, no caller ever sees success for an entry that
 * is not durable, and appends continue without gaps once the store recovers.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  GENESIS_PREV_HASH,
  type AppendReceipt,
  type Ledger,
  type EvidenceBlob,
  type LedgerEntry,
  type LedgerStore,
} from '../../src/ledger/index.js';
import { openLedger, sampleInput, tempSqliteStore, wrapStore } from './fixtures.js';

type Settled = { ok: true; r: AppendReceipt } | { ok: false; code: unknown };

function settle(p: Promise<AppendReceipt>): Promise<Settled> {
  return p.then(
    (r) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, code: (e as { code?: unknown }).code }),
  );
}

async function appendMany(ledger: Ledger, from: number, n: number): Promise<Settled[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => settle(ledger.append(sampleInput(from + i)))));
}

/** Every acknowledged entry is in the store with that hash; the store is a gap-free chain. */
async function assertNoPhantoms(store: LedgerStore, acked: readonly AppendReceipt[]): Promise<void> {
  const head = await store.head();
  const all = await store.readRange(0, head.size);
  expect(all.map((e) => e.index)).toEqual(Array.from({ length: head.size }, (_, i) => i));
  all.forEach((e: LedgerEntry, i) =>
    expect(e.prev_hash).toBe(i === 0 ? GENESIS_PREV_HASH : all[i - 1]!.entry_hash),
  );
  for (const a of acked) expect(all[a.index]?.entry_hash).toBe(a.entry_hash);
}

async function scenario(
  inject: (s: ReturnType<typeof tempSqliteStore>) => () => void,
  busyTimeoutMs?: number,
): Promise<void> {
  const t = tempSqliteStore(busyTimeoutMs !== undefined ? { busyTimeoutMs } : {});
  try {
    const ledger = await openLedger(t.store);
    const before = await appendMany(ledger, 0, 5);
    expect(before.every((s) => s.ok)).toBe(true);
    const heal = inject(t);
    const during = await appendMany(ledger, 5, 8);
    expect(during.map((s) => (s.ok ? 'ok' : s.code))).toEqual(Array(8).fill('ERR_LEDGER_UNAVAILABLE'));
    expect(ledger.size()).toBe(5);
    heal();
    const after = await appendMany(ledger, 13, 6);
    expect(after.every((s) => s.ok)).toBe(true);
    expect(after.map((s) => (s.ok ? s.r.index : -1))).toEqual([5, 6, 7, 8, 9, 10]);
    const acked = [...before, ...after].flatMap((s) => (s.ok ? [s.r] : []));
    await assertNoPhantoms(t.store, acked);
    await ledger.close();
  } finally {
    t.cleanup();
  }
}

describe('ledger write failures deny (SPEC §7 scenario 9, L7 degraded mode)', () => {
  it('a store whose commit throws', async () => {
    const t = tempSqliteStore();
    try {
      let failing = false;
      const wrapped: LedgerStore = wrapStore(t.store, {
        appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
          if (failing) throw new Error('injected commit failure');
          await t.store.appendBatch(entries, evidence);
        },
      });
      const ledger = await openLedger(wrapped);
      expect((await appendMany(ledger, 0, 3)).every((s) => s.ok)).toBe(true);
      failing = true;
      const during = await appendMany(ledger, 3, 4);
      expect(during.map((s) => (s.ok ? 'ok' : s.code))).toEqual(Array(4).fill('ERR_LEDGER_UNAVAILABLE'));
      failing = false;
      const after = await appendMany(ledger, 7, 2);
      expect(after.map((s) => (s.ok ? s.r.index : -1))).toEqual([3, 4]);
      await assertNoPhantoms(
        t.store,
        after.flatMap((s) => (s.ok ? [s.r] : [])),
      );
      await ledger.close();
    } finally {
      t.cleanup();
    }
  });

  it('a commit that landed but reported failure (ambiguous) is re-read, never forked', async () => {
    const t = tempSqliteStore();
    try {
      let lieOnce = false;
      const wrapped: LedgerStore = wrapStore(t.store, {
        appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
          await t.store.appendBatch(entries, evidence);
          if (lieOnce) {
            lieOnce = false;
            throw new Error('connection lost after commit');
          }
        },
      });
      const ledger = await openLedger(wrapped);
      await appendMany(ledger, 0, 2);
      lieOnce = true;
      const during = await appendMany(ledger, 2, 3);
      expect(during.every((s) => !s.ok && s.code === 'ERR_LEDGER_UNAVAILABLE')).toBe(true);
      const after = await appendMany(ledger, 5, 1);
      expect(after[0]?.ok && after[0].r.index).toBe(5);
      await assertNoPhantoms(t.store, []);
      await ledger.close();
    } finally {
      t.cleanup();
    }
  });

  it('a database locked by another connection', () =>
    scenario((t) => {
      const other = new Database(t.path);
      other.exec('BEGIN EXCLUSIVE');
      return () => {
        other.exec('COMMIT');
        other.close();
      };
    }, 20));

  it('a read-only database', () =>
    scenario((t) => {
      t.store.database.pragma('query_only = ON');
      return () => t.store.database.pragma('query_only = OFF');
    }));

  it('a full disk (max_page_count reached)', () =>
    scenario((t) => {
      const pages = t.store.database.pragma('page_count', { simple: true }) as number;
      t.store.database.pragma(`max_page_count = ${pages}`);
      return () => t.store.database.pragma('max_page_count = 1073741823');
    }));

  it('a closed store rejects appends and evidence with ERR_LEDGER_UNAVAILABLE', async () => {
    const t = tempSqliteStore();
    try {
      const ledger = await openLedger(t.store);
      t.store.database.close();
      await expect(ledger.append(sampleInput(0))).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      await expect(ledger.putEvidence(Buffer.from('x'), 'text/plain')).rejects.toMatchObject({
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      await expect(
        ledger.hasEntry(
          { index: 0, entry_hash: '0'.repeat(64) },
          { type: 'decision', decision_id: 'd', tenant: 'acme' },
        ),
      ).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      await expect(ledger.checkpoint()).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    } finally {
      t.cleanup();
    }
  });

  it('opening over an unreadable store fails closed', async () => {
    const t = tempSqliteStore();
    try {
      t.store.database.close();
      await expect(openLedger(t.store)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    } finally {
      t.cleanup();
    }
  });
});
