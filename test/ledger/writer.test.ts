/**
 * The group-commit writer (SPEC §4, §8 durable writes; GEI "decision before execution"):
 * contiguous indices under concurrency, acknowledgement only after commit, recovery on open,
 * refusal to open a broken ledger, allowlisted payloads, and ledger confirmation lookups.
 */
import { describe, expect, it } from 'vitest';
import {
  FailclosedError,
  verifyCheckpoint,
  noteVerifierFromVkey,
  verifyInclusion,
  verifyConsistency,
} from '../../src/kernel/index.js';
import {
  GENESIS_PREV_HASH,
  createLedger,
  entryLeafHash,
  type EvidenceBlob,
  type LedgerEntry,
  type LedgerStore,
} from '../../src/ledger/index.js';
import {
  ORIGIN,
  openLedger,
  sampleInput,
  steppingClock,
  tempSqliteStore,
  testSigner,
  wrapStore,
} from './fixtures.js';

/** Wraps a store, recording the size of every committed batch. */
function countingStore(inner: LedgerStore): LedgerStore & { commits: number[] } {
  const commits: number[] = [];
  const store = wrapStore(inner, {
    appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
      await inner.appendBatch(entries, evidence);
      commits.push(entries.length);
    },
  });
  return { ...store, commits };
}

describe('group commit (SPEC §8 durable writes)', () => {
  it('N concurrent appends get contiguous indices, in far fewer commits than entries', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const counting = countingStore(store);
      const ledger = await openLedger(counting);
      const n = 200;
      const receipts = await Promise.all(Array.from({ length: n }, (_, i) => ledger.append(sampleInput(i))));
      expect(receipts.map((r) => r.index)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(counting.commits.reduce((a, b) => a + b, 0)).toBe(n);
      expect(counting.commits.length).toBeLessThan(n / 10);
      const stored = await store.readRange(0, n);
      expect(stored.map((e) => e.entry_hash)).toEqual(receipts.map((r) => r.entry_hash));
      stored.forEach((e, i) =>
        expect(e.prev_hash).toBe(i === 0 ? GENESIS_PREV_HASH : stored[i - 1]!.entry_hash),
      );
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('a continued append joins its first entry in one commit, and the batch size told counts both', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const counting = countingStore(store);
      const sizes: number[] = [];
      const ledger = await openLedger(counting, {
        observer: { ledgerBatch: (n) => void sizes.push(n), stage: () => undefined },
      });
      const first = sampleInput(0);
      const r = await ledger.appendThen(first, {
        type: first.type,
        build: () => ({ ...first, payload: { ...first.payload } }),
      });
      expect(r.next).toEqual({ index: r.first.index + 1, entry_hash: expect.any(String) });
      expect(counting.commits).toEqual([2]);
      expect(sizes).toEqual([2]);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('resolves each caller only after its batch is committed', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const committed = new Set<number>();
      const spying: LedgerStore = wrapStore(store, {
        appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
          await store.appendBatch(entries, evidence);
          for (const e of entries) committed.add(e.index);
        },
      });
      const ledger = await openLedger(spying);
      const seenBeforeCommit: number[] = [];
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          ledger.append(sampleInput(i)).then((r) => {
            if (!committed.has(r.index)) seenBeforeCommit.push(r.index);
          }),
        ),
      );
      expect(committed.size).toBe(50);
      expect(seenBeforeCommit).toEqual([]);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('stamps `at` from the injected clock as ISO-8601 UTC with milliseconds', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store, { clock: () => Date.UTC(2030, 5, 1, 12, 0, 0, 7) });
      const r = await ledger.append(sampleInput(0));
      expect((await store.entry(r.index))?.at).toBe('2030-06-01T12:00:00.007Z');
      await ledger.close();
    } finally {
      cleanup();
    }
  });
});

describe('payload allowlist (OE-INV-009, L7 Secret Handling)', () => {
  it('refuses a field not on the type allowlist with ERR_LEDGER_PAYLOAD_FIELD and writes nothing', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store);
      const bad = { ...sampleInput(1), payload: { decision_id: 'd', api_key: 'sk-live-123' } };
      await expect(ledger.append(bad)).rejects.toMatchObject({ code: 'ERR_LEDGER_PAYLOAD_FIELD' });
      expect(ledger.size()).toBe(0);
      expect((await store.head()).size).toBe(0);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('refuses unsafe numbers and non-JSON values in the payload', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store);
      await expect(
        ledger.append({ ...sampleInput(3), payload: { duration_ms: 2 ** 60 } }),
      ).rejects.toMatchObject({ code: 'ERR_LEDGER_PAYLOAD_FIELD' });
      await expect(
        ledger.append({ ...sampleInput(3), payload: { duration_ms: undefined as never } }),
      ).rejects.toMatchObject({ code: 'ERR_LEDGER_PAYLOAD_FIELD' });
      await expect(ledger.append({ ...sampleInput(3), payload: [] as never })).rejects.toMatchObject({
        code: 'ERR_LEDGER_PAYLOAD_FIELD',
      });
      await expect(ledger.append({ ...sampleInput(3), type: 'nope' as never })).rejects.toBeInstanceOf(
        TypeError,
      );
      await ledger.close();
    } finally {
      cleanup();
    }
  });
});

describe('recovery on open (L7 ledger protection: fail closed)', () => {
  it('recovers head and Merkle tree from the store and continues the chain', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const first = await openLedger(store);
      await Promise.all(Array.from({ length: 30 }, (_, i) => first.append(sampleInput(i))));
      const root = first.rootHash();
      await first.checkpoint();
      await first.close();
      const { createSqliteLedgerStore } = await import('../../src/ledger/index.js');
      const again = await openLedger(createSqliteLedgerStore({ path }));
      expect(again.size()).toBe(30);
      expect(again.rootHash()).toBe(root);
      const r = await again.append(sampleInput(30));
      expect(r.index).toBe(30);
      expect((await again.store.entry(30))?.prev_hash).toBe((await again.store.entry(29))?.entry_hash);
      await again.close();
    } finally {
      cleanup();
    }
  });

  it('refuses to open a ledger whose chain was rewritten', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const first = await openLedger(store);
      await Promise.all(Array.from({ length: 5 }, (_, i) => first.append(sampleInput(i))));
      await first.close();
      const { createSqliteLedgerStore } = await import('../../src/ledger/index.js');
      const raw = createSqliteLedgerStore({ path });
      raw.database.exec('DROP TRIGGER entries_no_delete');
      raw.database.prepare('DELETE FROM entries WHERE idx = 4').run();
      // Entry 3 rewritten consistently (self-hash valid) but no longer linked to entry 2.
      const e3 = (await raw.entry(3))!;
      raw.database.prepare('DELETE FROM entries WHERE idx = 3').run();
      const { computeEntryHash, entryJson } = await import('../../src/ledger/index.js');
      const forged = { ...e3, prev_hash: '1'.repeat(64) };
      const sealed = { ...forged, entry_hash: computeEntryHash(forged) };
      raw.database
        .prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(
          3,
          sealed.entry_hash,
          sealed.type,
          sealed.trace_id,
          sealed.request_id,
          sealed.tenant,
          entryJson(sealed),
        );
      await expect(openLedger(raw)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      raw.database.close();
    } finally {
      cleanup();
    }
  });

  it('refuses to open a ledger truncated below its latest checkpoint (rollback)', async () => {
    const { store, path, cleanup } = tempSqliteStore();
    try {
      const first = await openLedger(store);
      await Promise.all(Array.from({ length: 6 }, (_, i) => first.append(sampleInput(i))));
      await first.checkpoint();
      await first.close();
      const { createSqliteLedgerStore } = await import('../../src/ledger/index.js');
      const raw = createSqliteLedgerStore({ path });
      raw.database.exec('DROP TRIGGER entries_no_delete');
      raw.database.prepare('DELETE FROM entries WHERE idx = 5').run();
      await expect(openLedger(raw)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
      raw.database.close();
    } finally {
      cleanup();
    }
  });
});

describe('checkpoints and proofs (SPEC §4, C2SP tlog-checkpoint)', () => {
  it('signs checkpoints on the entry cadence and on demand, storing every one', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store, { checkpointEvery: { entries: 10 } });
      for (let i = 0; i < 35; i++) await ledger.append(sampleInput(i));
      expect((await store.checkpoints()).map((c) => c.size)).toEqual([10, 20, 30]);
      const cp = await ledger.checkpoint();
      expect(cp.size).toBe(35);
      expect(await ledger.checkpoint()).toEqual(cp);
      const v = verifyCheckpoint(cp.note, [noteVerifierFromVkey(ledger.ledgerKey.vkey)], { origin: ORIGIN });
      expect(v.outcome).toBe('verified');
      if (v.outcome === 'verified') expect(v.checkpoint.rootHash.toString('hex')).toBe(ledger.rootHash(35));
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('awaits beforeCheckpointStored before storing a checkpoint it signs: a rejection stores and hands out nothing (the ledger process records each one first)', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const seen: number[] = [];
      let refuse = true;
      const ledger = await createLedger({
        store,
        clock: steppingClock(),
        checkpointSigner: testSigner(),
        origin: ORIGIN,
        beforeCheckpointStored: async (cp) => {
          // Nothing stored yet at this size when it is asked.
          expect((await store.checkpoints()).map((c) => c.size)).not.toContain(cp.size);
          seen.push(cp.size);
          if (refuse) throw new Error('the binding file cannot be written');
        },
      });
      for (let i = 0; i < 3; i++) await ledger.append(sampleInput(i));
      const err = await ledger.checkpoint().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FailclosedError);
      expect((err as FailclosedError).code).toBe('ERR_LEDGER_UNAVAILABLE');
      expect(await store.checkpoints()).toEqual([]);
      refuse = false;
      const cp = await ledger.checkpoint();
      expect((await store.checkpoints()).map((c) => c.size)).toEqual([3]);
      expect(cp.size).toBe(3);
      expect(seen).toEqual([3, 3]);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('signs on the time cadence from the injected clock', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      let now = 0;
      const ledger = await openLedger(store, { clock: () => now, checkpointEvery: { ms: 1000 } });
      await ledger.append(sampleInput(0));
      expect(await store.checkpoints()).toEqual([]);
      now = 1000;
      await ledger.append(sampleInput(1));
      expect((await store.checkpoints()).map((c) => c.size)).toEqual([2]);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('every inclusion proof verifies for its entry and no other; consistency proofs link every pair of sizes', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store, { clock: steppingClock() });
      await Promise.all(Array.from({ length: 23 }, (_, i) => ledger.append(sampleInput(i))));
      const entries = await store.readRange(0, 23);
      for (const size of [1, 7, 16, 23]) {
        const root = Buffer.from(ledger.rootHash(size), 'hex');
        for (let i = 0; i < size; i++) {
          const proof = ledger.proveInclusion(i, size).map((h) => Buffer.from(h, 'hex'));
          expect(verifyInclusion(i, size, entryLeafHash(entries[i]!.entry_hash), proof, root)).toBe(true);
          const other = entries[(i + 1) % size]!;
          if (size > 1)
            expect(verifyInclusion(i, size, entryLeafHash(other.entry_hash), proof, root)).toBe(false);
        }
      }
      for (let s1 = 1; s1 <= 23; s1 += 3)
        for (let s2 = s1; s2 <= 23; s2 += 4) {
          const proof = ledger.proveConsistency(s1, s2).map((h) => Buffer.from(h, 'hex'));
          expect(
            verifyConsistency(
              s1,
              s2,
              proof,
              Buffer.from(ledger.rootHash(s1), 'hex'),
              Buffer.from(ledger.rootHash(s2), 'hex'),
            ),
          ).toBe(true);
        }
      await ledger.close();
    } finally {
      cleanup();
    }
  });
});

describe('ledger confirmation for the Execution Layer (L7 Boundary B, SPEC §3 ledger claim)', () => {
  it('hasEntry is true only for the exact committed decision of that tenant', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store);
      await ledger.append(sampleInput(0));
      const ref = await ledger.append(sampleInput(1)); // decision d-1, tenant acme
      const expectOk = { type: 'decision' as const, decision_id: 'd-1', tenant: 'acme' };
      expect(await ledger.hasEntry(ref, expectOk)).toBe(true);
      expect(await ledger.hasEntry({ ...ref, entry_hash: '0'.repeat(64) }, expectOk)).toBe(false);
      expect(await ledger.hasEntry({ ...ref, index: 0 }, expectOk)).toBe(false);
      expect(await ledger.hasEntry({ ...ref, index: 99 }, expectOk)).toBe(false);
      expect(await ledger.hasEntry(ref, { ...expectOk, decision_id: 'd-2' })).toBe(false);
      expect(await ledger.hasEntry(ref, { ...expectOk, tenant: 'globex' })).toBe(false);
      expect((await ledger.lookup(ref.index, ref.entry_hash))?.type).toBe('decision');
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('commits evidence in the same batch as concurrent appends and resolves it only after that commit', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const commits: { entries: number; evidence: number }[] = [];
      let committed = false;
      const spying: LedgerStore = wrapStore(store, {
        appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
          await store.appendBatch(entries, evidence);
          committed = true;
          commits.push({ entries: entries.length, evidence: evidence?.length ?? 0 });
        },
        putEvidence: () => Promise.reject(new Error('the writer must batch evidence')),
      });
      const ledger = await openLedger(spying);
      let beforeCommit = false;
      const [shas] = await Promise.all([
        Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            ledger.putEvidence(Buffer.from(`raw ${i}`), 'application/json').then((sha) => {
              if (!committed) beforeCommit = true;
              return sha;
            }),
          ),
        ),
        Promise.all(Array.from({ length: 20 }, (_, i) => ledger.append(sampleInput(i)))),
      ]);
      expect(beforeCommit).toBe(false);
      expect(commits).toEqual([{ entries: 20, evidence: 20 }]);
      for (const [i, sha] of shas.entries())
        expect((await store.getEvidence(sha))?.body.toString()).toBe(`raw ${i}`);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('rejects the evidence and the entries of a failed batch alike (ERR_LEDGER_UNAVAILABLE), then recovers', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      let failing = true;
      const flaky: LedgerStore = wrapStore(store, {
        appendBatch: async (entries: readonly LedgerEntry[], evidence?: readonly EvidenceBlob[]) => {
          if (failing) throw new Error('injected commit failure');
          await store.appendBatch(entries, evidence);
        },
      });
      const ledger = await openLedger(flaky);
      const settled = await Promise.allSettled([
        ledger.putEvidence(Buffer.from('x'), 'text/plain'),
        ledger.append(sampleInput(0)),
      ]);
      expect(
        settled.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'ok')),
      ).toEqual(['ERR_LEDGER_UNAVAILABLE', 'ERR_LEDGER_UNAVAILABLE']);
      failing = false;
      const sha = await ledger.putEvidence(Buffer.from('x'), 'text/plain');
      expect((await store.getEvidence(sha))?.body.toString()).toBe('x');
      expect((await ledger.append(sampleInput(0))).index).toBe(0);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('stores evidence durably and returns its hash', async () => {
    const { store, cleanup } = tempSqliteStore();
    try {
      const ledger = await openLedger(store);
      const sha = await ledger.putEvidence(Buffer.from('raw'), 'application/json');
      expect((await store.getEvidence(sha))?.body.toString()).toBe('raw');
      await ledger.close();
    } finally {
      cleanup();
    }
  });
});
