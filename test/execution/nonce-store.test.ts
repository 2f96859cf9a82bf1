import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  createMemoryNonceStore,
  createSqliteNonceStore,
  sqliteNonceStoreIdentity,
} from '../../src/execution/index.js';
import type { NonceStore } from '../../src/execution/index.js';
import { describe, expect, it } from 'vitest';
import { runNonceStoreContract } from './nonce-store.contract.js';

runNonceStoreContract('memory', () => {
  const store = createMemoryNonceStore();
  // Every "connection" of the memory backend is the same map; close is per backend.
  const view: NonceStore = {
    consume: (i) => store.consume(i),
    void: (i) => store.void(i),
    prune: (i) => store.prune(i),
    close: () => Promise.resolve(),
  };
  let handedOut = 0;
  return Promise.resolve({
    open: () => {
      handedOut += 1;
      // The first handle owns the store so the close-then-consume case is observable.
      return Promise.resolve(handedOut === 1 ? store : view);
    },
    destroy: () => store.close(),
  });
});

runNonceStoreContract('sqlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-nonce-'));
  const path = join(dir, 'nonces.db');
  return Promise.resolve({
    open: () => Promise.resolve(createSqliteNonceStore({ path, now: () => 1_700_000_000_000 })),
    destroy: () => {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});

describe('SQLite nonce store prunes itself past every envelope life (OE-INV-017)', () => {
  it('deletes rows past exp + tolerance + lifetime on the injected clock; their jtis stay refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-nonce-prune-'));
    const path = join(dir, 'nonces.db');
    let nowMs = 1_700_000_000_000;
    const store = createSqliteNonceStore({ path, now: () => nowMs, retainAfterExpSec: 30 + 300 });
    try {
      const exp = nowMs / 1000 + 60;
      const batch = (prefix: string, e: number) =>
        Promise.all(
          Array.from({ length: 1000 }, (_, i) =>
            store.consume({ jti: `${prefix}-${i}`, tenant: 'acme', exp: e, decision_id: 'd' }),
          ),
        );
      expect(new Set(await batch('first', exp))).toEqual(new Set(['fresh']));
      // Still inside exp + 330 s: the next batch prunes nothing.
      nowMs += (60 + 330) * 1000;
      await batch('second', exp + 390);
      const count = () => {
        const db = new Database(path, { readonly: true });
        try {
          return (db.prepare('SELECT COUNT(*) AS c FROM envelope_nonces').get() as { c: number }).c;
        } finally {
          db.close();
        }
      };
      expect(count()).toBe(2000);
      nowMs += 1000;
      await batch('third', exp + 391);
      expect(count()).toBe(2000);
      // The clock goes back: the pruned jtis are still refused.
      nowMs = 1_700_000_000_000;
      expect(await store.consume({ jti: 'first-7', tenant: 'acme', exp, decision_id: 'd' })).toBe('replayed');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite nonce store specifics (OE-INV-017, SPEC §8 nonce store row)', () => {
  const T = 1_700_000_000;
  const scratch = () => {
    const d = mkdtempSync(join(tmpdir(), 'fc-nonce-sqlite-'));
    return { path: join(d, 'nonces.db'), remove: () => rmSync(d, { recursive: true, force: true }) };
  };
  const rows = (path: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare('SELECT jti, exp, consumed_at, voided FROM envelope_nonces ORDER BY jti').all() as {
        jti: string;
        exp: number;
        consumed_at: number;
        voided: number;
      }[];
    } finally {
      db.close();
    }
  };
  const n = (jti: string, exp: number) => ({ jti, tenant: 'acme', exp, decision_id: 'd' });

  it('names its store by a random value kept in the file: the same through a link, another file or the file made again another (docs/jobs.md)', async () => {
    const a = scratch();
    const b = scratch();
    try {
      for (const path of [a.path, b.path])
        await createSqliteNonceStore({ path, now: () => T * 1000 }).close();
      const link = join(dirname(a.path), 'link.db');
      symlinkSync(a.path, link);
      const id = sqliteNonceStoreIdentity(a.path);
      expect(id).toMatch(/^sqlite:[0-9a-f]{32}$/);
      expect(sqliteNonceStoreIdentity(a.path)).toBe(id);
      expect(sqliteNonceStoreIdentity(link)).toBe(id);
      // No host or path in it: another file is another store wherever it lies.
      expect(sqliteNonceStoreIdentity(b.path)).not.toBe(id);
      for (const f of [a.path, `${a.path}-wal`, `${a.path}-shm`]) rmSync(f, { force: true });
      await createSqliteNonceStore({ path: a.path, now: () => T * 1000 }).close();
      expect(sqliteNonceStoreIdentity(a.path)).not.toBe(id);
    } finally {
      a.remove();
      b.remove();
    }
  });

  it('records each consumption durably in WAL mode, with its time and whether it was a void', async () => {
    const s = scratch();
    const store = createSqliteNonceStore({ path: s.path, now: () => T * 1000 + 999 });
    try {
      await store.consume(n('ran', T + 60));
      await store.void(n('voided', T + 60));
      expect(rows(s.path)).toEqual([
        { jti: 'ran', exp: T + 60, consumed_at: T, voided: 0 },
        { jti: 'voided', exp: T + 60, consumed_at: T, voided: 1 },
      ]);
      const db = new Database(s.path, { readonly: true });
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      db.close();
    } finally {
      await store.close();
      s.remove();
    }
  });

  it('opens a store created before voiding existed: its rows stay consumptions', async () => {
    const s = scratch();
    const old = new Database(s.path);
    old.exec(`CREATE TABLE envelope_nonces (jti TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL,
      exp INTEGER NOT NULL, decision_id TEXT NOT NULL, consumed_at INTEGER NOT NULL) STRICT;
      INSERT INTO envelope_nonces VALUES ('ran-before', 'acme', ${T + 60}, 'd', ${T});`);
    old.close();
    const store = createSqliteNonceStore({ path: s.path, now: () => T * 1000 });
    try {
      expect(await store.consume(n('ran-before', T + 60))).toBe('replayed');
      expect(await store.void(n('ran-before', T + 60))).toBe('consumed');
      expect(await store.void(n('new', T + 60))).toBe('voided');
      expect(await store.consume(n('new', T + 60))).toBe('voided');
    } finally {
      await store.close();
      s.remove();
    }
  });

  it('refuses a retention that is not a non-negative integer', () => {
    const s = scratch();
    try {
      for (const retainAfterExpSec of [-1, 1.5, Number.NaN])
        expect(() => createSqliteNonceStore({ path: s.path, now: () => 0, retainAfterExpSec })).toThrow(
          TypeError,
        );
      // Zero is a valid retention.
      void createSqliteNonceStore({ path: s.path, now: () => 0, retainAfterExpSec: 0 }).close();
    } finally {
      s.remove();
    }
  });

  it('prunes itself on exactly the 1000th consumption, on the injected clock, and again 1000 later', async () => {
    const s = scratch();
    let nowMs = T * 1000;
    const store = createSqliteNonceStore({ path: s.path, now: () => nowMs, retainAfterExpSec: 0 });
    try {
      await store.consume(n('old', T));
      await store.consume(n('mid', T + 150));
      nowMs = (T + 100) * 1000;
      await Promise.all(Array.from({ length: 997 }, (_, i) => store.consume(n(`bulk-${i}`, T + 200))));
      expect(rows(s.path)).toHaveLength(999);
      // The 1000th consumption prunes: horizon min(T+100, T+200) - 0 deletes 'old' only.
      await store.consume(n('last', T + 200));
      expect(rows(s.path).map((r) => r.jti)).not.toContain('old');
      expect(rows(s.path)).toHaveLength(999);
      // The count starts again: the next consumption prunes nothing, whatever the clock says.
      nowMs = (T + 300) * 1000;
      await store.consume(n('after', T + 400));
      expect(rows(s.path).map((r) => r.jti)).toContain('mid');
    } finally {
      await store.close();
      s.remove();
    }
  });

  it('without a retention it never prunes itself: 1000 expired consumptions all stay', async () => {
    const s = scratch();
    const store = createSqliteNonceStore({ path: s.path, now: () => (T + 10 ** 6) * 1000 });
    try {
      const verdicts = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => store.consume(n(`e-${i}`, T))),
      );
      expect(new Set(verdicts)).toEqual(new Set(['fresh']));
      expect(await store.consume(n('next', T))).toBe('fresh');
      expect(rows(s.path)).toHaveLength(1001);
    } finally {
      await store.close();
      s.remove();
    }
  });

  it('consumptions queued when the store closes still commit; a prune after close rejects', async () => {
    const s = scratch();
    const store = createSqliteNonceStore({ path: s.path, now: () => T * 1000 });
    try {
      const pending = store.consume(n('queued', T + 60));
      await store.close();
      expect(await pending).toBe('fresh');
      await expect(store.prune({ nowSec: T, toleranceSec: 0 })).rejects.toBeInstanceOf(Error);
    } finally {
      s.remove();
    }
  });
});
