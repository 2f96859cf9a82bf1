/**
 * Group commit of single-use stores (SPEC §8 durable writes, §7 scenario 6, OE-INV-017): many
 * consumptions in one event-loop turn share ONE transaction, yet each jti is 'fresh' exactly
 * once, nobody hears 'fresh' before the COMMIT returned, and a failed transaction rejects every
 * caller in it (the executor then denies with ERR_NONCE_STORE_UNAVAILABLE).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGroupCommit, createSqliteNonceStore } from '../../src/execution/index.js';
import type { NonceStore } from '../../src/execution/index.js';

describe('createGroupCommit', () => {
  it('hands items submitted in one turn to one commit and resolves only after it returned', async () => {
    const batches: number[][] = [];
    let committed = false;
    const seenBeforeCommit: number[] = [];
    const group = createGroupCommit((items: readonly number[]) => {
      batches.push([...items]);
      committed = true;
      return items.map((i) => i * 10);
    });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        group.submit(i).then((r) => {
          if (!committed) seenBeforeCommit.push(i);
          return r;
        }),
      ),
    );
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(50);
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 10));
    expect(seenBeforeCommit).toEqual([]);
  });

  it('rejects every caller of a batch whose commit throws, and keeps serving later batches', async () => {
    let fail = true;
    const group = createGroupCommit((items: readonly string[]) => {
      if (fail) throw new Error('injected commit failure');
      return items.map(() => 'ok');
    });
    const settled = await Promise.allSettled(['a', 'b', 'c'].map((x) => group.submit(x)));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    fail = false;
    expect(await group.submit('d')).toBe('ok');
  });

  it('rejects every caller when the commit answers with the wrong number of results', async () => {
    const group = createGroupCommit((items: readonly number[]) => items.slice(1));
    const settled = await Promise.allSettled([1, 2].map((x) => group.submit(x)));
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
  });

  it('splits a large queue into batches of at most maxBatch and never overlaps them', async () => {
    const sizes: number[] = [];
    let inFlight = 0;
    let overlapped = false;
    const group = createGroupCommit(
      async (items: readonly number[]) => {
        inFlight += 1;
        if (inFlight > 1) overlapped = true;
        sizes.push(items.length);
        await Promise.resolve();
        inFlight -= 1;
        return items;
      },
      { maxBatch: 8 },
    );
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => group.submit(i)));
    expect(all).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(sizes).toEqual([8, 8, 4]);
    expect(overlapped).toBe(false);
  });
});

describe('SQLite nonce store group commit (scenario 6, OE-INV-017)', () => {
  let dir: string;
  let path: string;
  let store: NonceStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fc-nonce-group-'));
    path = join(dir, 'nonces.db');
    store = createSqliteNonceStore({ path, now: () => 1_700_000_000_000, busyTimeoutMs: 20 });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const n = (jti: string, tenant = 'acme') => ({ jti, tenant, exp: 2_000_000_000, decision_id: `d-${jti}` });

  it('gives exactly one fresh per jti among many consumptions of distinct and duplicate jtis in one turn', async () => {
    const jtis = Array.from({ length: 40 }, (_, i) => `j${i % 10}`); // 10 jtis, 4 times each
    jtis.push(...Array.from({ length: 20 }, (_, i) => `solo${i}`));
    const verdicts = await Promise.all(
      jtis.map((j, i) => store.consume(n(j, i % 2 === 0 ? 'acme' : 'globex'))),
    );
    const fresh = new Map<string, number>();
    verdicts.forEach((v, i) => {
      if (v === 'fresh') fresh.set(jtis[i]!, (fresh.get(jtis[i]!) ?? 0) + 1);
    });
    expect(new Set(jtis).size).toBe(30);
    expect([...fresh.keys()].sort()).toEqual([...new Set(jtis)].sort());
    expect([...fresh.values()].every((c) => c === 1)).toBe(true);
    expect(verdicts.filter((v) => v === 'replayed')).toHaveLength(30);
    // Every one of them is durable: a later consumption through another connection is a replay.
    const other = createSqliteNonceStore({ path, now: () => 0 });
    try {
      const again = await Promise.all([...new Set(jtis)].map((j) => other.consume(n(j))));
      expect(again.every((v) => v === 'replayed')).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('rejects every consumption of a batch whose transaction fails, and none of them is recorded', async () => {
    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    let settled: PromiseSettledResult<string>[];
    try {
      settled = await Promise.allSettled(['a', 'b', 'a', 'c'].map((j) => store.consume(n(j))));
    } finally {
      locker.exec('COMMIT');
      locker.close();
    }
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    // Nothing of the failed batch landed: each jti is still fresh exactly once.
    const after = await Promise.all(['a', 'b', 'c', 'a'].map((j) => store.consume(n(j))));
    expect(after).toEqual(['fresh', 'fresh', 'fresh', 'replayed']);
  });

  it('commits queued consumptions before close and rejects consumptions after it', async () => {
    const pending = store.consume(n('late-queued'));
    await store.close();
    expect(await pending).toBe('fresh');
    await expect(store.consume(n('after-close'))).rejects.toThrow('nonce store closed');
    store = createSqliteNonceStore({ path, now: () => 0 });
    expect(await store.consume(n('late-queued'))).toBe('replayed');
  });
});
