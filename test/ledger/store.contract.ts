/**
 * The `LedgerStore` contract (SPEC §4 "Both pass one shared contract test suite"): every backend
 * runs this suite unchanged, hono/kysely style. `factory` returns a fresh, empty store and a
 * cleanup; `reopen` (optional) reopens the same storage to prove durability.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/kernel/index.js';
import {
  GENESIS_PREV_HASH,
  computeEntryHash,
  parseEntryInput,
  type LedgerEntry,
  type LedgerStore,
} from '../../src/ledger/index.js';
import { sampleInput } from './fixtures.js';

/** What a backend provides to the contract. */
export interface StoreFactory {
  create(): Promise<{
    store: LedgerStore;
    reopen?: () => Promise<LedgerStore>;
    cleanup: () => Promise<void>;
  }>;
}

/** `n` chained entries starting at `from` after `prev`. */
export function chain(n: number, from = 0, prev = GENESIS_PREV_HASH, tenant = 'acme'): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  let p = prev;
  for (let i = from; i < from + n; i++) {
    const input = parseEntryInput(sampleInput(i, i % 2 === 0 ? tenant : 'globex'));
    const body = { ...input, index: i, prev_hash: p, at: new Date(Date.UTC(2025, 0, 1) + i).toISOString() };
    const e = { ...body, entry_hash: computeEntryHash(body) };
    out.push(e);
    p = e.entry_hash;
  }
  return out;
}

/** Runs the contract suite for one backend. */
export function runLedgerStoreContract(name: string, factory: StoreFactory): void {
  describe(`LedgerStore contract: ${name} (SPEC §4)`, () => {
    let cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups) await c();
      cleanups = [];
    });
    async function fresh(): Promise<{ store: LedgerStore; reopen?: () => Promise<LedgerStore> }> {
      const made = await factory.create();
      cleanups.push(made.cleanup);
      return made;
    }

    it('starts empty', async () => {
      const { store } = await fresh();
      expect(await store.head()).toEqual({ size: 0, last: undefined });
      expect(await store.tipSize?.()).toBe(0);
      expect(await store.readRange(0, 10)).toEqual([]);
      expect(await store.entry(0)).toBeUndefined();
      expect(await store.latestCheckpoint()).toBeUndefined();
      expect(await store.checkpoints()).toEqual([]);
    });

    it('appends batches and reads them back by range, index, trace, request and tenant', async () => {
      const { store } = await fresh();
      const entries = chain(12);
      await store.appendBatch(entries.slice(0, 5));
      await store.appendBatch(entries.slice(5));
      const head = await store.head();
      expect(head.size).toBe(12);
      expect(head.last).toEqual(entries[11]);
      // The cheap tip read a shared writer makes before each commit agrees with the head.
      expect(await store.tipSize?.()).toBe(12);
      expect(await store.readRange(0, 12)).toEqual(entries);
      expect(await store.readRange(3, 6)).toEqual(entries.slice(3, 6));
      expect(await store.entry(7)).toEqual(entries[7]);
      expect(await store.readByTrace('t-1')).toEqual(entries.filter((e) => e.trace_id === 't-1'));
      expect(await store.readByRequest('r-0')).toEqual(entries.filter((e) => e.request_id === 'r-0'));
      const acme = entries.filter((e) => e.tenant === 'acme');
      expect(await store.readByTenant('acme')).toEqual(acme);
      expect(await store.readByTenant('acme', { from: 4, limit: 2 })).toEqual(
        acme.filter((e) => e.index >= 4).slice(0, 2),
      );
    });

    it('reads an envelope context: the entry at an index, issuances by jti, finalisations by decision', async () => {
      const { store } = await fresh();
      const entries = chain(12);
      await store.appendBatch(entries);
      const ctx = await store.readEnvelopeContext({ index: 1, jti: 'j-1', decision_id: 'd-1' });
      expect(ctx.decision).toEqual(entries[1]);
      expect(ctx.issued).toEqual(entries.filter((e) => e.type === 'envelope.issued'));
      expect(ctx.issued.length).toBe(2);
      expect(ctx.finalized).toEqual([]);
      const none = await store.readEnvelopeContext({ index: 99, jti: 'j-other', decision_id: 'd-1' });
      expect(none).toEqual({ decision: undefined, issued: [], finalized: [] });
    });

    it('a batch is atomic: a conflicting batch leaves nothing behind', async () => {
      const { store } = await fresh();
      const entries = chain(6);
      await store.appendBatch(entries.slice(0, 3));
      // Re-appending index 2 with new entries after it must fail as a whole.
      await expect(store.appendBatch(entries.slice(2))).rejects.toMatchObject({
        name: 'FailclosedError',
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect((await store.head()).size).toBe(3);
      await store.appendBatch(entries.slice(3));
      expect((await store.head()).size).toBe(6);
    });

    it('refuses a batch that does not continue the head (no gaps)', async () => {
      const { store } = await fresh();
      const entries = chain(6);
      await expect(store.appendBatch(entries.slice(1, 3))).rejects.toMatchObject({
        name: 'FailclosedError',
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      await store.appendBatch(entries.slice(0, 2));
      await expect(store.appendBatch(entries.slice(3, 5))).rejects.toMatchObject({
        name: 'FailclosedError',
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect((await store.head()).size).toBe(2);
    });

    it('stores every checkpoint and returns the latest', async () => {
      const { store } = await fresh();
      const cp = (size: number) => ({
        size,
        root_hash: sha256Hex(String(size)),
        note: `n${size}\n`,
        at: '2025-01-01T00:00:00.000Z',
      });
      await store.putCheckpoint(cp(3));
      await store.putCheckpoint(cp(8));
      await store.putCheckpoint(cp(5));
      await store.putCheckpoint(cp(8));
      expect((await store.checkpoints()).map((c) => c.size)).toEqual([3, 5, 8]);
      expect(await store.latestCheckpoint()).toEqual(cp(8));
    });

    it('stores evidence by content hash, idempotently', async () => {
      const { store } = await fresh();
      const body = Buffer.from('raw signed request');
      const blob = { sha256: sha256Hex(body), media_type: 'application/json', body };
      await store.putEvidence(blob);
      await store.putEvidence(blob);
      const got = await store.getEvidence(blob.sha256);
      expect(got?.body.equals(body)).toBe(true);
      expect(got?.media_type).toBe('application/json');
      expect(await store.getEvidence(sha256Hex('other'))).toBeUndefined();
    });

    it('commits evidence with the entries of a batch in one transaction (SPEC §8 durable writes)', async () => {
      const { store } = await fresh();
      const blob = (text: string) => {
        const body = Buffer.from(text);
        return { sha256: sha256Hex(body), media_type: 'application/json', body };
      };
      const entries = chain(4);
      await store.appendBatch(entries.slice(0, 2), [blob('a'), blob('b'), blob('a')]);
      expect((await store.getEvidence(blob('a').sha256))?.body.toString()).toBe('a');
      expect((await store.getEvidence(blob('b').sha256))?.body.toString()).toBe('b');
      expect((await store.head()).size).toBe(2);
      // Evidence only, and evidence already stored: both fine, the head does not move.
      await store.appendBatch([], [blob('c'), blob('b')]);
      expect((await store.getEvidence(blob('c').sha256))?.body.toString()).toBe('c');
      expect((await store.head()).size).toBe(2);
      // A batch that does not continue the head is refused whole: its evidence is not stored either.
      await expect(store.appendBatch(entries.slice(3), [blob('lost')])).rejects.toMatchObject({
        name: 'FailclosedError',
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect(await store.getEvidence(blob('lost').sha256)).toBeUndefined();
      await store.appendBatch(entries.slice(2), [blob('d')]);
      expect(await store.readRange(0, 4)).toEqual(entries);
      expect((await store.getEvidence(blob('d').sha256))?.body.toString()).toBe('d');
    });

    it('is durable across reopen', async () => {
      const made = await fresh();
      if (made.reopen === undefined) return;
      const entries = chain(4);
      await made.store.appendBatch(entries);
      await made.store.close();
      const again = await made.reopen();
      expect(await again.readRange(0, 4)).toEqual(entries);
      await again.close();
    });
  });
}
