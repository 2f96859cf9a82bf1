import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryNonceStore, createSqliteNonceStore } from '../../src/execution/index.js';
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
