/**
 * Opening and appending while other gate replicas write the same PostgreSQL ledger (SPEC §4 "one
 * writer" per transaction, L7 ledger protection). A replica's snapshot or checkpoint stored
 * between two reads of an opening gate does not stop it from starting; a rolled-back or
 * rewritten store still does; and a replica idle while the others appended catches up before it
 * takes the append lock, so that every other replica is not kept waiting while it re-reads.
 * Each interleaving is made deterministic by a store wrapper in this file that lets another
 * replica append (and checkpoint) between two reads of the store.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { FailclosedError } from '../../src/kernel/index.js';
import { type Ledger, type LedgerEntry, type StoredCheckpoint } from '../../src/ledger/index.js';
import { wrapStore } from '../ledger/fixtures.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { note, useSharedBackends } from './shared-backends.js';

const pgdb = useTestDatabase();

const { replica } = useSharedBackends(pgdb);

/** Appends `n` entries on `ledger` at once (group commit), numbered from `from`. */
async function appendMany(ledger: Ledger, from: number, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => ledger.append(note(from + i))));
}

/** Runs `between` once, the first time `read` is called, before the read itself. */
function once<T>(read: () => Promise<T>, between: () => Promise<void>): () => Promise<T> {
  let done = false;
  return async () => {
    if (!done) {
      done = true;
      await between();
    }
    return read();
  };
}

async function refusal(p: Promise<unknown>): Promise<FailclosedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FailclosedError);
  expect((err as FailclosedError).code).toBe('ERR_LEDGER_UNAVAILABLE');
  return err as FailclosedError;
}

describe('opening a gate while other replicas write the ledger (SPEC §4, L7 ledger protection)', () => {
  it('L7-ledger-protection: a tree snapshot another replica writes while a gate opens does not stop it (read before the head)', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    await appendMany(a.ledger, 0, 10);
    await a.ledger.checkpoint();
    // Between the opening gate's reads, A appends and checkpoints: a larger snapshot is stored.
    const b = await replica(schema, (s) =>
      wrapStore(s, {
        treeSnapshot: once(
          () => s.treeSnapshot!(),
          async () => {
            await appendMany(a.ledger, 10, 20);
            expect((await a.ledger.checkpoint()).size).toBe(30);
          },
        ),
      }),
    );
    expect(b.ledger.size()).toBe(30);
    expect(b.ledger.rootHash()).toBe(a.ledger.rootHash());
    const r = await b.ledger.append(note(30));
    expect(r.index).toBe(30);
  });

  it('L7-ledger-protection: a store rolled back below its tree snapshot still refuses to open (ERR_LEDGER_UNAVAILABLE)', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    await appendMany(a.ledger, 0, 40);
    await a.ledger.checkpoint();
    const admin = new pg.Client({ connectionString: pgdb.url });
    await admin.connect();
    try {
      const t = `"${schema}".ledger_entries`;
      await admin.query(`ALTER TABLE ${t} DISABLE TRIGGER ledger_entries_no_update`);
      const gone = await admin.query(`DELETE FROM ${t} WHERE idx >= 20`);
      expect(gone.rowCount).toBe(20);
    } finally {
      await admin.end();
    }
    const err = await refusal(replica(schema));
    expect(err.cause).toBeInstanceOf(RangeError);
    expect((err.cause as Error).message).toMatch(/fewer entries than its tree snapshot/);
  });

  it('L7-ledger-protection: a checkpoint another replica stores beyond the entries a gate rebuilt: it catches up and opens', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    await appendMany(a.ledger, 0, 10);
    await a.ledger.checkpoint();
    // After the opening gate rebuilt 10 entries, A appends 20 and signs a checkpoint at 30.
    const b = await replica(schema, (s) =>
      wrapStore(s, {
        latestCheckpoint: once(
          () => s.latestCheckpoint(),
          async () => {
            await appendMany(a.ledger, 10, 20);
            expect((await a.ledger.checkpoint()).size).toBe(30);
          },
        ),
      }),
    );
    expect(b.ledger.size()).toBe(30);
    expect(b.ledger.rootHash()).toBe(a.ledger.rootHash());
    expect(b.ledger.rootHash(30)).toBe((await b.backend.ledger.latestCheckpoint())!.root_hash);
    const r = await b.ledger.append(note(30));
    expect(r.index).toBe(30);
  });

  it('L7-ledger-protection: after catching up, a latest checkpoint over another root or beyond the head still refuses (ERR_LEDGER_UNAVAILABLE)', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    await appendMany(a.ledger, 0, 10);
    await a.ledger.checkpoint();
    const signed = (await a.backend.ledger.latestCheckpoint())!;
    const forged = (size: number): StoredCheckpoint => ({ ...signed, size, root_hash: 'ab'.repeat(32) });
    for (const [size, grow] of [
      [30, 20],
      [1000, 5],
    ] as const) {
      const from = a.ledger.size();
      const err = await refusal(
        replica(schema, (s) =>
          wrapStore(s, {
            // Another replica appends meanwhile; the latest checkpoint read commits to another tree.
            latestCheckpoint: once(
              () => Promise.resolve(forged(from + size - 10)),
              () => appendMany(a.ledger, from, grow),
            ),
          }),
        ),
      );
      expect(err.message).toBe(`ledger does not match its checkpoint at size ${from + size - 10}`);
    }
  });
});

describe('a replica far behind the others (SPEC §4 one writer per transaction, L7 ledger protection)', () => {
  it('L7-ledger-protection: catches up outside the append lock: its first append after thousands of entries reads few under the lock', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const underLock: number[] = [];
    const b = await replica(schema, (s) =>
      wrapStore(s, {
        // Counts the entries of other writers that each shared append reads under the lock.
        appendShared: (from, seal, evidence, ifOpen) =>
          s.appendShared!(
            from,
            (committed: readonly LedgerEntry[], open) => {
              underLock.push(committed.length);
              return seal(committed, open);
            },
            evidence,
            ifOpen,
          ),
      }),
    );
    await b.ledger.append(note(-1));
    expect(underLock).toEqual([0]);
    // B idles while A appends thousands of entries.
    const gap = 3000;
    for (let i = 0; i < gap; i += 500) await appendMany(a.ledger, i, 500);
    const r = await b.ledger.append(note(gap));
    expect(r.index).toBe(gap + 1);
    expect(underLock).toHaveLength(2);
    expect(underLock[1]).toBeLessThanOrEqual(64);
    // What B read before the lock was verified and applied: one tree with A's.
    await a.ledger.append(note(gap + 1));
    expect(a.ledger.size()).toBe(gap + 3);
    expect(b.ledger.rootHash()).toBe(a.ledger.rootHash(gap + 2));
  });

  it('L7-ledger-protection: an entry read while catching up that does not continue the chain rejects the batch (ERR_LEDGER_UNAVAILABLE) and nothing is appended', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    let tamper = false;
    const b = await replica(schema, (s) =>
      wrapStore(s, {
        // A row of another writer altered in transit: its prev_hash no longer links.
        readRange: async (from, to) => {
          const page = await s.readRange(from, to);
          if (!tamper || page.length < 2) return page;
          const [first, second, ...rest] = page;
          return [first!, { ...second!, prev_hash: '00'.repeat(32) }, ...rest];
        },
      }),
    );
    await appendMany(a.ledger, 0, 200);
    tamper = true;
    const err = await refusal(b.ledger.append(note(200)));
    expect(err.message).toBe('ledger write not confirmed');
    expect((await a.backend.ledger.head()).size).toBe(200);
    expect(b.ledger.size()).toBe(0);
  });
});
