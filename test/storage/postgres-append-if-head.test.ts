/**
 * The one-round-trip append of a PostgreSQL ledger several gate replicas share
 * (`LedgerStore.appendIfHead`, SPEC §4 "one writer" per transaction, L7 ledger protection): a
 * replica that was alone at its last commit writes its next batch in one statement, and that
 * statement stores nothing unless the append lock is free at once, the batch continues the
 * stored head, and every request it is conditional on is still open. Otherwise the writer falls
 * back to the locked read-then-append (`appendShared`), so the chain stays one.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { LedgerEntry, LedgerStore } from '../../src/ledger/index.js';
import { WRITER_LOCK_CLASS } from '../../src/storage/postgres/index.js';
import { chain } from '../ledger/store.contract.js';
import { wrapStore } from '../ledger/fixtures.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { note, useSharedBackends } from './shared-backends.js';

const pgdb = useTestDatabase();
const { backendOn, replica } = useSharedBackends(pgdb);

/** A replica's shared store (its instance lease held). */
async function sharedStore(schema: string): Promise<LedgerStore> {
  const backend = await backendOn(schema);
  await backend.acquireWriter({ wait: false });
  return backend.ledger;
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgdb.url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The rows of `e` as the store writes them (enough for the primary key and a later read). */
const insertRow = (schema: string, e: LedgerEntry): [string, unknown[]] => [
  `INSERT INTO "${schema}".ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, body)
   VALUES ($1, $2, $3, $4, $5, $6, $7)`,
  [e.index, e.entry_hash, e.type, e.trace_id, e.request_id, e.tenant, JSON.stringify(e)],
];

describe('appendIfHead: one statement, only at the head (SPEC §4, L7 ledger protection)', () => {
  it('L7-ledger-protection: stores a batch that continues the head; refuses, storing nothing, one that repeats an index, and one past the head', async () => {
    const store = await sharedStore(nextSchema());
    const entries = chain(4);
    expect(await store.appendIfHead!(entries.slice(0, 2), [], [])).toBe(true);
    expect((await store.head()).size).toBe(2);
    // Another writer's view of the head: indices already stored, or past the head.
    expect(await store.appendIfHead!(entries.slice(1, 3), [], [])).toBe(false);
    // Past the stored head: entries this writer holds are not stored (lost): refused outright.
    await expect(store.appendIfHead!(entries.slice(3, 4), [], [])).rejects.toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    expect((await store.head()).size).toBe(2);
    expect(await store.appendIfHead!(entries.slice(2, 4), [], [])).toBe(true);
    expect((await store.head()).size).toBe(4);
  });

  it('L7-ledger-protection: refuses while another session holds the append lock, and stores once it is free', async () => {
    const schema = nextSchema();
    const store = await sharedStore(schema);
    const entries = chain(1);
    await withAdmin(async (admin) => {
      await admin.query('SELECT pg_advisory_lock($1::integer, hashtext($2::text))', [
        WRITER_LOCK_CLASS,
        schema,
      ]);
      expect(await store.appendIfHead!(entries, [], [])).toBe(false);
      expect((await store.head()).size).toBe(0);
      await admin.query('SELECT pg_advisory_unlock($1::integer, hashtext($2::text))', [
        WRITER_LOCK_CLASS,
        schema,
      ]);
    });
    expect(await store.appendIfHead!(entries, [], [])).toBe(true);
  });

  it('L7-ledger-protection: a writer that commits the same index after the statement read the head: the primary key refuses it, nothing stored', async () => {
    const schema = nextSchema();
    const store = await sharedStore(schema);
    // Two entries at index 0 that differ (their tenants).
    const [mine, theirs] = [chain(1)[0]!, chain(1, 0, undefined, 'globex')[0]!];
    await withAdmin(async (admin) => {
      // Another writer's row at index 0, not yet committed: the statement sees an empty head,
      // then waits on that row, and is refused once it commits.
      await admin.query('BEGIN');
      await admin.query(...insertRow(schema, theirs));
      const appending = store.appendIfHead!([mine], [], []);
      for (let i = 0; i < 500; i += 1) {
        const waiting = await withAdmin(async (c) =>
          Number(
            (
              await c.query(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted",
              )
            ).rows[0].n,
          ),
        );
        if (waiting > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await admin.query('COMMIT');
      expect(await appending).toBe(false);
    });
    const head = await store.head();
    expect(head.size).toBe(1);
    expect(head.last?.entry_hash).toBe(theirs.entry_hash);
  });

  it('FC-INV-5: refuses a batch conditional on a request that is not open (closed, or another trace), storing nothing', async () => {
    const schema = nextSchema();
    const { ledger } = await replica(schema);
    const store = ledger.store;
    const accepted = await ledger.append({
      type: 'gateway.accepted',
      trace_id: 't-r1',
      request_id: 'r1',
      tenant: 'acme',
      actor: { id: 'agent-1', role: 'gate' },
      payload: { tool: 'echo', client: 'agent-1', request_sha256: 'a'.repeat(64) },
    });
    const head = await store.head();
    const next = chain(1, head.size, head.last!.entry_hash);
    const open = { accepted_index: accepted.index, request_id: 'r1', trace_id: 't-r1' };
    // Another trace of the request, another accepted index: not the open attempt.
    expect(await store.appendIfHead!(next, [], [{ ...open, trace_id: 't-other' }])).toBe(false);
    expect(await store.appendIfHead!(next, [], [{ ...open, accepted_index: accepted.index + 7 }])).toBe(
      false,
    );
    expect((await store.head()).size).toBe(head.size);
    expect(await store.appendIfHead!(next, [], [open])).toBe(true);
    // Closed by its outcome: a batch conditional on it is refused, nothing stored.
    await ledger.follow();
    await ledger.append({
      type: 'gateway.failed',
      trace_id: 't-r1',
      request_id: 'r1',
      tenant: 'acme',
      actor: { id: 'agent-1', role: 'gate' },
      payload: { outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' },
    });
    const closed = await store.head();
    expect(await store.openAmong!([accepted.index])).toEqual([]);
    const after = chain(1, closed.size, closed.last!.entry_hash);
    expect(await store.appendIfHead!(after, [], [open])).toBe(false);
    expect((await store.head()).size).toBe(closed.size);
  });

  it('L7-ledger-protection: a batch that does not link to the stored entry before it (another history) is refused, never retried: ERR_LEDGER_UNAVAILABLE', async () => {
    const store = await sharedStore(nextSchema());
    const entries = chain(3);
    expect(await store.appendIfHead!(entries.slice(0, 2), [], [])).toBe(true);
    // The next index, after another entry than the one stored there.
    const forked = chain(1, 2, 'cd'.repeat(32));
    await expect(store.appendIfHead!(forked, [], [])).rejects.toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    expect((await store.head()).size).toBe(2);
    expect(await store.appendIfHead!(entries.slice(2, 3), [], [])).toBe(true);
  });

  it('SPEC §4: a lone replica appends in one statement; two replicas appending at once fall back to the lock and keep one chain', async () => {
    const schema = nextSchema();
    const calls = { a: { ifHead: 0, refused: 0, shared: 0 }, b: { ifHead: 0, refused: 0, shared: 0 } };
    const counted = (c: { ifHead: number; refused: number; shared: number }) => (s: LedgerStore) =>
      wrapStore(s, {
        appendIfHead: async (...args) => {
          c.ifHead += 1;
          const stored = await s.appendIfHead!(...args);
          if (!stored) c.refused += 1;
          return stored;
        },
        appendShared: (...args) => {
          c.shared += 1;
          return s.appendShared!(...args);
        },
      });
    const a = await replica(schema, counted(calls.a));
    // Alone: the first batch reads under the lock, every later one is one statement.
    for (let i = 0; i < 10; i += 1) await a.ledger.append(note(i));
    expect(calls.a).toEqual({ ifHead: 9, refused: 0, shared: 1 });
    const b = await replica(schema, counted(calls.b));
    for (let i = 10; i < 110; i += 2)
      await Promise.all([a.ledger.append(note(i)), b.ledger.append(note(i + 1))]);
    // Tries were refused (the other replica had appended in between) and went through the lock.
    expect(calls.a.refused + calls.b.refused).toBeGreaterThan(0);
    expect(calls.a.shared + calls.b.shared).toBeGreaterThan(2);
    const head = await a.backend.ledger.head();
    expect(head.size).toBe(110);
    const all = await a.backend.ledger.readRange(0, head.size);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 110 }, (_, i) => i));
    for (let i = 1; i < all.length; i += 1) expect(all[i]!.prev_hash).toBe(all[i - 1]!.entry_hash);
    // Both writers hold the same tree once each has seen the other's last entry.
    await a.ledger.append(note(110));
    await b.ledger.append(note(111));
    expect(b.ledger.rootHash(111)).toBe(a.ledger.rootHash(111));
  });

  it('GEI: a continued entry is built again when the one-statement try is refused: the stored one names the decision as stored', async () => {
    const schema = nextSchema();
    const tries = { ifHead: 0, refused: 0 };
    const a = await replica(schema, (s: LedgerStore) =>
      wrapStore(s, {
        appendIfHead: async (...args) => {
          tries.ifHead += 1;
          const stored = await s.appendIfHead!(...args);
          if (!stored) tries.refused += 1;
          return stored;
        },
      }),
    );
    await a.ledger.append(note(0));
    const b = await replica(schema);
    // Another replica appends: a's next try, sealed after its own head, is refused.
    await b.ledger.append(note(1));
    const built: { index: number; entry_hash: string }[] = [];
    const r = await a.ledger.appendThen(
      { ...note(2), type: 'decision', payload: { outcome: 'allow', decision_id: 'd-2' } },
      {
        type: 'decision',
        build: (first) => {
          built.push(first);
          return {
            ...note(2),
            type: 'decision',
            payload: { outcome: 'allow', decision_id: `${first.index}:${first.entry_hash}` },
          };
        },
      },
    );
    expect(tries).toEqual({ ifHead: 1, refused: 1 });
    expect(built).toHaveLength(2);
    expect(built[0]!.index).toBe(1);
    expect(built[1]).toEqual(r.first);
    expect(r.first.index).toBe(2);
    const [, stored] = await a.backend.ledger.readRange(2, 4);
    expect(stored).toMatchObject({ index: 3, entry_hash: (r.next as { entry_hash: string }).entry_hash });
    expect(stored!.payload['decision_id']).toBe(`2:${r.first.entry_hash}`);
  });
});
