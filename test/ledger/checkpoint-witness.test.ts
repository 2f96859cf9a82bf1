/**
 * Checkpoints signed by the ledger process, the only holder of the checkpoint key (SPEC §1
 * separation of powers, §4 checkpoints; L7 ledger protection; docs/deployment.md "The ledger
 * process"). A writer with a `CheckpointWitness` holds the public key only: it asks for the
 * checkpoint at its committed size and accepts it only when it verifies under the pinned key and
 * names its own root. The witness here is a real ledger over the same PostgreSQL schema, opened with
 * the signer and appending nothing, serving exactly what `serve ledger` serves (follow, then sign
 * at the asked size); `test/e2e/distributed-one-machine.test.ts` runs the process itself.
 */
import { describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  FailclosedError,
  formatCheckpoint,
  leafHash,
  nodeHash,
  noteVerifierFromVkey,
  verifyCheckpoint,
} from '../../src/kernel/index.js';
import type { Observer } from '../../src/kernel/index.js';
import { signNote } from '../../src/kernel/signing/index.js';
import {
  createLedger,
  ledgerKeyFromVkey,
  type CheckpointWitness,
  type Ledger,
  type StoredCheckpoint,
} from '../../src/ledger/index.js';
import { createPostgresLedgerStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { note, useSharedBackends } from '../storage/shared-backends.js';
import { ORIGIN, steppingClock, testSigner } from './fixtures.js';

const pgdb = useTestDatabase();
const { backendOn, track } = useSharedBackends(pgdb);

/**
 * The ledger process's ledger over `schema`, opened as `startLedgerNode` opens it: a shared store
 * without a lease (it can append nothing), the signer, every entry re-hashed at open.
 */
async function witnessLedger(
  schema: string,
  every = 4,
  observer?: Pick<Observer, 'ledgerBatch' | 'stage'>,
  clock = steppingClock(),
): Promise<Ledger> {
  await backendOn(schema); // migrated
  const db = openPostgresPool({ url: pgdb.url, schema, max: 4 });
  track({ close: () => db.close() });
  return track(
    await createLedger({
      store: createPostgresLedgerStore(db, { shared: () => undefined }),
      clock,
      checkpointSigner: testSigner(),
      origin: ORIGIN,
      checkpointEvery: { entries: every },
      rehash: true,
      ...(observer === undefined ? {} : { observer }),
    }),
  );
}

/** What `serve ledger` answers to a request for the checkpoint at `size`. */
const servedBy = (w: Ledger): CheckpointWitness => ({
  ledgerKey: ledgerKeyFromVkey(w.ledgerKey.vkey),
  async sign(size) {
    const verified = await w.follow();
    if (size > verified) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'beyond the ledger');
    return w.checkpoint(size);
  },
});

/** A Control Plane's writer over `schema` whose checkpoints `witness` signs. */
async function writerOn(schema: string, witness: CheckpointWitness): Promise<Ledger> {
  const backend = await backendOn(schema);
  await backend.acquireWriter({ wait: false });
  return track(
    await createLedger({
      store: backend.ledger,
      clock: steppingClock(),
      checkpointSigner: witness,
      origin: ORIGIN,
      checkpointEvery: { entries: 4 },
    }),
  );
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FailclosedError);
  return (err as FailclosedError).code;
}

/** One statement as the schema's owner (the Control Plane's role). */
async function asOwner(
  schema: string,
  sql: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  const db = openPostgresPool({ url: pgdb.url, schema, max: 1 });
  try {
    return (await db.pool.query<Record<string, unknown>>(sql, params)).rows;
  } finally {
    await db.close();
  }
}

/** Rewrites entry `index`'s stored body in place, as a writer with database access could. */
async function rewrite(schema: string, index: number, from: string, to: string): Promise<void> {
  const db = openPostgresPool({ url: pgdb.url, schema, max: 1 });
  try {
    const c = await db.pool.connect();
    try {
      // Past the append-only trigger, as the database's superuser can.
      await c.query('ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update');
      const r = await c.query('UPDATE ledger_entries SET body = replace(body, $2, $3) WHERE idx = $1', [
        index,
        from,
        to,
      ]);
      expect(r.rowCount).toBe(1);
      await c.query('ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update');
    } finally {
      c.release();
    }
  } finally {
    await db.close();
  }
}

describe('checkpoints signed by the ledger process (SPEC §4, L7 ledger protection)', () => {
  it('the writer holds the public key only; its checkpoint at the committed size is the ledger process’s, and verifies', async () => {
    const schema = nextSchema();
    const cp = await writerOn(schema, {
      ledgerKey: ledgerKeyFromVkey((await witnessLedger(schema)).ledgerKey.vkey),
      sign: () => Promise.reject(new Error('not yet')),
    });
    const w = await witnessLedger(schema);
    const writer = await writerOn(schema, servedBy(w));
    for (let i = 0; i < 6; i++) await writer.append(note(i));
    const c = await writer.checkpoint();
    expect(c.size).toBe(6);
    expect(c.root_hash).toBe(writer.rootHash(6));
    expect(writer.ledgerKey.vkey).toBe(w.ledgerKey.vkey);
    // Stored by the ledger process: every replica's export carries it.
    expect((await w.store.latestCheckpoint())?.size).toBe(6);
    // The ledger process keeps the cadence itself by following (every 4 entries here).
    for (let i = 6; i < 11; i++) await writer.append(note(i));
    expect(await w.follow()).toBe(11);
    expect((await w.store.latestCheckpoint())?.size).toBe(11);
    // A writer without the key never signs: one whose ledger process does not answer has no checkpoint.
    expect(await codeOf(cp.checkpoint())).toBe('ERR_LEDGER_UNAVAILABLE');
  });

  it('the writer tells the ledger process’s stored checkpoints it verified, once per cadence period, never a forged one (the data directory remembers them: docs/storage.md)', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema);
    const backend = await backendOn(schema);
    await backend.acquireWriter({ wait: false });
    let now = Date.UTC(2025, 0, 1);
    const told: StoredCheckpoint[] = [];
    // The store's latest checkpoint reads that have answered (the open's, then each poll's).
    let reads = 0;
    const store = backend.ledger;
    const counted = {
      ...store,
      latestCheckpoint: async () => {
        const cp = await store.latestCheckpoint();
        reads += 1;
        return cp;
      },
    };
    const writer = track(
      await createLedger({
        store: counted,
        clock: () => now,
        checkpointSigner: servedBy(w),
        origin: ORIGIN,
        checkpointEvery: { entries: 4, ms: 1000 },
        onCheckpoint: (cp) => told.push(cp),
      }),
    );
    for (let i = 0; i < 8; i++) await writer.append(note(i));
    // The ledger process follows and signs on its own cadence; the writer asked for nothing.
    expect(await w.follow()).toBe(8);
    const stored = await w.store.latestCheckpoint();
    expect(stored?.size).toBe(8);
    await writer.append(note(8));
    expect(told).toEqual([]);
    // A cadence period later, the next commit reads the stored checkpoint and tells it once verified.
    now += 1000;
    await writer.append(note(9));
    await vi.waitFor(() => expect(told.map((c) => c.size)).toEqual([8]));
    expect(told[0]?.root_hash).toBe(writer.rootHash(8));
    // A stored row that does not verify under the pinned key is never told.
    await asOwner(
      schema,
      'INSERT INTO ledger_checkpoints (size, root_hash, note, at) VALUES ($1, $2, $3, $4)',
      [10, writer.rootHash(10), 'forged\n', new Date(now).toISOString()],
    );
    const before = reads;
    now += 1000;
    await writer.append(note(10));
    // That poll answered and was checked: nothing more told.
    await vi.waitFor(() => expect(reads).toBe(before + 1));
    await new Promise((r) => setImmediate(r));
    expect(told.map((c) => c.size)).toEqual([8]);
  });

  it('a second ledger process on the key is told the first one’s stored checkpoints it verified over its own root, once per cadence period (its binding file remembers them)', async () => {
    const schema = nextSchema();
    const first = await witnessLedger(schema);
    const writer = await writerOn(schema, servedBy(first));
    for (let i = 0; i < 3; i++) await writer.append(note(i));
    let now = Date.UTC(2025, 0, 1);
    const told: number[] = [];
    const db = openPostgresPool({ url: pgdb.url, schema, max: 4 });
    track({ close: () => db.close() });
    const second = track(
      await createLedger({
        store: createPostgresLedgerStore(db, { shared: () => undefined }),
        clock: () => now,
        checkpointSigner: testSigner(),
        origin: ORIGIN,
        checkpointEvery: { entries: 1000, ms: 1000 },
        rehash: true,
        onCheckpoint: (cp) => told.push(cp.size),
      }),
    );
    // The first signs at 4 (its cadence); the second, following, signs nothing of its own.
    await writer.append(note(3));
    expect(await first.follow()).toBe(4);
    expect((await first.store.latestCheckpoint())?.size).toBe(4);
    await writer.append(note(4));
    expect(await second.follow()).toBe(5);
    expect(told).toEqual([]);
    // A cadence period later, its next follow reads the stored checkpoint and tells it (beside
    // the one it now signs itself on its time cadence).
    now += 1000;
    await writer.append(note(5));
    expect(await second.follow()).toBe(6);
    await vi.waitFor(() => expect(told).toContain(4));
    expect(told.filter((n) => n !== 4)).toEqual([6]);
  });

  it('tells its observer the ledger_verify stage of each trace among the entries it followed, once, and nothing of those it read at open', async () => {
    const schema = nextSchema();
    const stages: { stage: string; trace: string; ms: number }[] = [];
    const observer: Pick<Observer, 'ledgerBatch' | 'stage'> = {
      ledgerBatch: () => undefined,
      stage: (stage, trace, start, end) => void stages.push({ stage, trace, ms: end - start }),
    };
    const writer = await writerOn(schema, {
      ledgerKey: ledgerKeyFromVkey((await witnessLedger(schema)).ledgerKey.vkey),
      sign: () => Promise.reject(new Error('not asked')),
    });
    for (let i = 0; i < 3; i++) await writer.append(note(i));
    const w = await witnessLedger(schema, 100, observer);
    // Read and hashed at open: not the calls' verification, no span.
    expect(stages).toEqual([]);
    await writer.append(note(3));
    await writer.append({ ...note(4), trace_id: 't-3' });
    await writer.append({ ...note(5), trace_id: '' });
    expect(await w.follow()).toBe(6);
    expect(stages.map((x) => `${x.stage} ${x.trace}`)).toEqual(['ledger_verify t-3']);
    expect(stages[0]!.ms).toBeGreaterThanOrEqual(0);
    // Nothing new: nothing told.
    expect(await w.follow()).toBe(6);
    expect(stages).toHaveLength(1);
    // A ledger process catching up on calls more than five minutes old tells nothing of them.
    const late = await witnessLedger(schema, 100, observer, steppingClock(Date.UTC(2025, 0, 1) + 6 * 60_000));
    await writer.append({ ...note(6), trace_id: 't-6' });
    expect(await late.follow()).toBe(7);
    expect(stages).toHaveLength(1);
  });

  it('an observer that throws changes nothing it follows or signs', async () => {
    const schema = nextSchema();
    const w0 = await witnessLedger(schema);
    const writer = await writerOn(schema, {
      ledgerKey: ledgerKeyFromVkey(w0.ledgerKey.vkey),
      sign: () => Promise.reject(new Error('not asked')),
    });
    const w = await witnessLedger(schema, 2, {
      ledgerBatch: () => undefined,
      stage: () => {
        throw new Error('exporter down');
      },
    });
    for (let i = 0; i < 3; i++) await writer.append(note(i));
    // Followed and signed on the cadence (every 2 entries) as if the observer were not there.
    expect(await w.follow()).toBe(3);
    expect((await w.store.latestCheckpoint())?.size).toBe(3);
    await writer.append(note(3));
    await writer.append(note(4));
    expect(await w.follow()).toBe(5);
    expect((await w.store.latestCheckpoint())?.size).toBe(5);
  });

  it('L7: a rewritten entry stops the ledger process from signing, and the writer from getting a checkpoint; appends go on', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema);
    const writer = await writerOn(schema, servedBy(w));
    for (let i = 0; i < 3; i++) await writer.append(note(i));
    await writer.checkpoint();
    await writer.append(note(3));
    // Someone with the database's rights rewrites entry 3 after its commit.
    await rewrite(schema, 3, '"d-3"', '"d-X"');
    expect(await codeOf(w.follow())).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(await codeOf(writer.checkpoint())).toBe('ERR_LEDGER_UNAVAILABLE');
    expect((await w.store.latestCheckpoint())?.size).toBe(3);
    // Entries are still recorded durably meanwhile (the calls they record are not held up).
    expect((await writer.append(note(4))).index).toBe(4);
    // Restored, the chain continues and checkpoints are signed again.
    await rewrite(schema, 3, '"d-X"', '"d-3"');
    expect((await writer.checkpoint()).size).toBe(5);
  });

  it('L7: a checkpoint under another key, over another root or at another size is refused by the writer', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema);
    const honest = servedBy(w);
    const noteOver = (size: number, root: Buffer, seed = 7): string =>
      signNote(formatCheckpoint({ origin: ORIGIN, size, rootHash: root }), testSigner(seed));
    const forgeries: Record<string, (size: number) => Promise<StoredCheckpoint>> = {
      'another key': async (size) => {
        const real = await honest.sign(size);
        return { ...real, note: noteOver(size, Buffer.from(real.root_hash, 'hex'), 9) };
      },
      'another root': async (size) => ({
        ...(await honest.sign(size)),
        root_hash: 'ab'.repeat(32),
        note: noteOver(size, Buffer.alloc(32, 0xab)),
      }),
      // A genuine checkpoint, of fewer entries.
      'another size': async (size) => honest.sign(size - 1),
    };
    const writer = await writerOn(schema, honest);
    for (let i = 0; i < 3; i++) await writer.append(note(i));
    for (const [name, sign] of Object.entries(forgeries)) {
      const liar = await writerOn(schema, { ledgerKey: honest.ledgerKey, sign });
      await liar.append(note(100 + liar.size()));
      expect(await codeOf(liar.checkpoint()), name).toBe('ERR_LEDGER_UNAVAILABLE');
    }
    // The honest one still works.
    await writer.follow();
    expect((await writer.checkpoint()).size).toBe(6);
  });

  it('a writer whose ledger process is down still appends durably; it opens again from the snapshots the ledger process stored', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema, 2);
    const down: CheckpointWitness = {
      ledgerKey: ledgerKeyFromVkey(w.ledgerKey.vkey),
      sign: () => Promise.reject(new Error('ECONNREFUSED')),
    };
    const writer = await writerOn(schema, down);
    for (let i = 0; i < 5; i++) await writer.append(note(i));
    expect(await codeOf(writer.checkpoint())).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(await w.follow()).toBe(5);
    expect((await w.store.latestCheckpoint())?.size).toBe(5);
    // A new writer restores the tree from the ledger process's snapshot, checked under the pinned key.
    const again = await writerOn(schema, servedBy(w));
    expect(again.size()).toBe(5);
    expect(again.rootHash()).toBe(writer.rootHash());
  });

  it('L7: nodes planted in the stored tree snapshot give no checkpoint of another history: the ledger process hashes every entry itself', async () => {
    const schema = nextSchema();
    let w = await witnessLedger(schema, 8);
    const writer = await writerOn(schema, servedBy(w));
    for (let i = 0; i < 5; i++) await writer.append(note(i));
    const genuine5 = await writer.checkpoint();
    for (let i = 5; i < 8; i++) await writer.append(note(i));
    expect((await writer.checkpoint()).size).toBe(8);
    await w.close(); // its snapshot at 8 is written
    const rows = (await asOwner(
      schema,
      'SELECT level, hashes FROM ledger_tree_chunks WHERE chunk = 0 ORDER BY level',
    )) as { level: number; hashes: Buffer }[];
    expect(rows.map((r) => r.level)).toEqual([0, 1, 2, 3]);
    // The owner rewrites the nodes below the snapshot's top: a 5-entry history of its own, the
    // root at 8 and the last leaf left as they were (all that opening from a snapshot checks).
    const fake = Array.from({ length: 5 }, () => leafHash(randomBytes(64)));
    const l0 = Buffer.from(rows[0]!.hashes);
    fake.forEach((h, i) => h.copy(l0, i * 32));
    const l1 = Buffer.from(rows[1]!.hashes);
    nodeHash(fake[0]!, fake[1]!).copy(l1, 0);
    nodeHash(fake[2]!, fake[3]!).copy(l1, 32);
    const l2 = Buffer.from(rows[2]!.hashes);
    nodeHash(l1.subarray(0, 32), l1.subarray(32, 64)).copy(l2, 0);
    for (const [level, h] of [
      [0, l0],
      [1, l1],
      [2, l2],
    ] as const)
      await asOwner(schema, 'UPDATE ledger_tree_chunks SET hashes = $2 WHERE level = $1 AND chunk = 0', [
        level,
        h,
      ]);
    // The ledger process restarts and is asked for the checkpoint at 5: the genuine root.
    w = await witnessLedger(schema, 8);
    const at5 = await servedBy(w).sign(5);
    expect(at5.root_hash).toBe(genuine5.root_hash);
  });

  it('L7: an entry rewritten below what the ledger process verified changes nothing it signs: the checkpoints cover the history it hashed', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema);
    const writer = await writerOn(schema, servedBy(w));
    for (let i = 0; i < 6; i++) await writer.append(note(i));
    expect((await writer.checkpoint()).size).toBe(6);
    await rewrite(schema, 2, '"d-2"', '"d-X"');
    await writer.append(note(6));
    const cp = await writer.checkpoint();
    // The writer's own tree (hashed before the rewrite) and the ledger process agree: the
    // original entry 2. An export reads the rewritten row, and verify refuses it against this.
    expect(cp.root_hash).toBe(writer.rootHash(7));
    const [row] = await asOwner(schema, 'SELECT body FROM ledger_entries WHERE idx = 2');
    expect(String(row?.['body'])).toContain('"d-X"');
  });

  it('L7: a stored checkpoint whose note is not this ledger’s refuses every opener, writer and ledger process alike', async () => {
    const schema = nextSchema();
    const w = await witnessLedger(schema);
    const a = await writerOn(schema, servedBy(w));
    for (let i = 0; i < 4; i++) await a.append(note(i));
    expect((await a.checkpoint()).size).toBe(4);
    // The root column left right, the note replaced: by the owner, or planted by the ledger role.
    const other = signNote(
      formatCheckpoint({ origin: ORIGIN, size: 4, rootHash: Buffer.from(a.rootHash(4), 'hex') }),
      testSigner(9),
    );
    await asOwner(schema, 'UPDATE ledger_checkpoints SET note = $1 WHERE size = 4', [other]);
    expect(await codeOf(writerOn(schema, servedBy(w)))).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(await codeOf(witnessLedger(schema))).toBe('ERR_LEDGER_UNAVAILABLE');
    // Not handed out by a writer opened before either.
    const v = verifyCheckpoint((await a.checkpoint()).note, [noteVerifierFromVkey(a.ledgerKey.vkey)], {
      origin: ORIGIN,
    });
    expect(v.outcome).toBe('verified');
  });
});
