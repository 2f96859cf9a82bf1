/**
 * Conditional outcome appends (FC-INV-5; verify's `OUTCOME_DUPLICATE`): an outcome record
 * appended with `ifOpen` lands only while the request whose `gateway.accepted` is at that index
 * is still open, read in the transaction that appends it (the staging transaction of the shared
 * SQLite connection, the only writer of an own SQLite file, the append lock of a PostgreSQL
 * ledger several replicas write). A retried outcome whose first attempt committed, a sweep
 * abandoning a request its Gate is closing, and two answers to one queued job therefore never
 * record two outcomes. Each case runs on every store shape.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { FailclosedError, createSqliteCommitUnit } from '../../src/kernel/index.js';
import {
  createSqliteLedgerStore,
  type EntryInput,
  type EntryRef,
  type Ledger,
  type LedgerEntry,
} from '../../src/ledger/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { useSharedBackends } from '../storage/shared-backends.js';
import { openLedger, tempDir } from './fixtures.js';

const pgdb = useTestDatabase();
const { replica } = useSharedBackends(pgdb);

let cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups) await c();
  cleanups = [];
});

/** Two writers of one ledger (the same one twice where a store has a single writer). */
interface Writers {
  readonly a: Ledger;
  readonly b: Ledger;
}

const SHAPES: Record<string, () => Promise<Writers>> = {
  'sqlite, its own connection': async () => {
    const { dir, cleanup } = tempDir();
    const ledger = await openLedger(createSqliteLedgerStore({ path: join(dir, 'ledger.db') }));
    cleanups.push(async () => {
      await ledger.close();
      cleanup();
    });
    return { a: ledger, b: ledger };
  },
  'sqlite, the shared connection (staged)': async () => {
    const { dir, cleanup } = tempDir();
    const path = join(dir, 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const ledger = await openLedger(createSqliteLedgerStore({ path, unit }));
    cleanups.push(async () => {
      await ledger.close();
      unit.close();
      cleanup();
    });
    return { a: ledger, b: ledger };
  },
  'postgres, two replicas': async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const b = await replica(schema);
    return { a: a.ledger, b: b.ledger };
  },
};

const entry = (type: EntryInput['type'], id: string, payload: EntryInput['payload']): EntryInput => ({
  type,
  trace_id: `t-${id}`,
  request_id: id,
  tenant: 'acme',
  actor: { id: 'agent-1', role: 'gate' },
  payload,
});
const acceptedOf = (id: string) =>
  entry('gateway.accepted', id, { tool: 'echo', client: 'agent-1', request_sha256: 'a'.repeat(64) });
const completedOf = (id: string) =>
  entry('gateway.completed', id, { outcome: 'executed', result_sha256: 'b'.repeat(64) });
const failedOf = (id: string) =>
  entry('gateway.failed', id, { outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
const noteOf = (i: number): EntryInput => ({
  type: 'decision',
  trace_id: `n-${i}`,
  request_id: `n-${i}`,
  tenant: 'acme',
  actor: { id: 'control-plane', role: 'control-plane' },
  payload: { outcome: 'allow', decision_id: `d-${i}` },
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FailclosedError);
  return (err as FailclosedError).code;
}

/** The outcome records of `id` in the ledger. */
async function outcomesOf(ledger: Ledger, id: string): Promise<string[]> {
  return (await ledger.store.readByRequest(id))
    .filter((e) => ['gateway.completed', 'gateway.failed', 'request.abandoned'].includes(e.type))
    .map((e) => e.type);
}

describe.each(Object.keys(SHAPES))('conditional outcome appends: %s (FC-INV-5)', (shape) => {
  const open = SHAPES[shape] as () => Promise<Writers>;

  it('FC-INV-5: appends an outcome while its request is open, and refuses a second one with ERR_LEDGER_REQUEST_CLOSED, writing nothing', async () => {
    const { a, b } = await open();
    const acc = await a.append(acceptedOf('r1'));
    await a.append(completedOf('r1'), undefined, { ifOpen: acc.index });
    const before = (await b.store.head()).size;
    expect(await codeOf(b.append(failedOf('r1'), undefined, { ifOpen: acc.index }))).toBe(
      'ERR_LEDGER_REQUEST_CLOSED',
    );
    expect((await b.store.head()).size).toBe(before);
    expect(await outcomesOf(a, 'r1')).toEqual(['gateway.completed']);
    // The chain goes on: the next entry follows the last one written.
    const next = await b.append(noteOf(1));
    expect(next.index).toBe(before);
  });

  it('FC-INV-5: of two outcomes of one request appended at once, exactly one lands; the other entries of their batches do', async () => {
    const { a, b } = await open();
    for (let trial = 0; trial < 20; trial += 1) {
      const id = `race-${trial}`;
      const acc = await a.append(acceptedOf(id));
      const results = await Promise.allSettled([
        a.append(completedOf(id), undefined, { ifOpen: acc.index }),
        a.append(noteOf(trial * 2)),
        b.append(failedOf(id), undefined, { ifOpen: acc.index }),
        b.append(noteOf(trial * 2 + 1)),
      ]);
      const [first, noteA, second, noteB] = results;
      expect(noteA?.status).toBe('fulfilled');
      expect(noteB?.status).toBe('fulfilled');
      const landed = [first, second].filter((r) => r?.status === 'fulfilled');
      expect(landed).toHaveLength(1);
      const refused = [first, second].find((r) => r?.status === 'rejected') as PromiseRejectedResult;
      expect((refused.reason as FailclosedError).code).toBe('ERR_LEDGER_REQUEST_CLOSED');
      expect(await outcomesOf(a, id)).toHaveLength(1);
    }
    // Every index is used once and the chain is whole.
    const head = await a.store.head();
    const all = await a.store.readRange(0, head.size);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: head.size }, (_, i) => i));
  });

  it('FC-INV-5: refuses a condition naming no open request, and an unconditional outcome still closes the request for later conditional ones', async () => {
    const { a, b } = await open();
    const n = await a.append(noteOf(7));
    expect(await codeOf(a.append(failedOf('nobody'), undefined, { ifOpen: n.index }))).toBe(
      'ERR_LEDGER_REQUEST_CLOSED',
    );
    const acc = await a.append(acceptedOf('r2'));
    await a.append(failedOf('r2'));
    expect(await codeOf(b.append(completedOf('r2'), undefined, { ifOpen: acc.index }))).toBe(
      'ERR_LEDGER_REQUEST_CLOSED',
    );
    expect(await outcomesOf(a, 'r2')).toEqual(['gateway.failed']);
  });

  it("FC-INV-5: an outcome naming another request's open attempt is refused and leaves that request open", async () => {
    const { a, b } = await open();
    const other = await a.append(acceptedOf('r5'));
    expect(await codeOf(b.append(failedOf('r4'), undefined, { ifOpen: other.index }))).toBe(
      'ERR_LEDGER_REQUEST_CLOSED',
    );
    expect(await a.store.openAmong!([other.index])).toEqual([
      expect.objectContaining({ accepted_index: other.index, request_id: 'r5' }),
    ]);
    await b.append(completedOf('r5'), undefined, { ifOpen: other.index });
    expect(await outcomesOf(a, 'r5')).toEqual(['gateway.completed']);
  });

  it('FC-INV-5: a refusal before acceptance in the same trace (an identical replay) settles no attempt: the outcome still lands', async () => {
    const { a, b } = await open();
    const acc = await a.append(acceptedOf('r6'));
    for (const status of ['ingress', 'internal'])
      await b.append(
        entry('gateway.failed', 'r6', { outcome: 'deny', code: 'ERR_REQUEST_REPLAYED', status }),
      );
    expect(await a.store.openAmong!([acc.index])).toHaveLength(1);
    await b.append(completedOf('r6'), undefined, { ifOpen: acc.index });
    expect(await a.store.openAmong!([acc.index])).toEqual([]);
  });

  it('only an outcome record or an envelope.issued is appended conditionally; the issuance lands only while the attempt is open, and closes nothing', async () => {
    const { a, b } = await open();
    const acc = await a.append(acceptedOf('r3'));
    await expect(a.append(noteOf(9), undefined, { ifOpen: acc.index })).rejects.toThrow(
      'only an outcome record or an envelope.issued is appended conditionally',
    );
    const issuedOf = (id: string) => entry('envelope.issued', id, { jti: `j-${id}`, decision_id: `d-${id}` });
    await a.append(issuedOf('r3'), undefined, { ifOpen: acc.index });
    // Still open: its outcome lands after it; then a late issuance is refused, nothing written.
    await b.append(completedOf('r3'), undefined, { ifOpen: acc.index });
    expect(await codeOf(b.append(issuedOf('r3'), undefined, { ifOpen: acc.index }))).toBe(
      'ERR_LEDGER_REQUEST_CLOSED',
    );
    expect((await a.store.readByRequest('r3')).filter((e) => e.type === 'envelope.issued')).toHaveLength(1);
    await expect(a.append(failedOf('r3'), undefined, { ifOpen: -1 })).rejects.toThrow(
      'ifOpen must be the index of a gateway.accepted entry',
    );
  });
});

/** An `envelope.issued` of `id` naming the entry it was built after, as its decision. */
const issuedAfter = (id: string, first: EntryRef) =>
  entry('envelope.issued', id, { jti: `j-${id}`, decision_id: `${first.index}:${first.entry_hash}` });
const decisionOf = (id: string) =>
  entry('decision', id, { outcome: 'allow', decision_id: `d-${id}`, tool: 'echo' });

describe.each(Object.keys(SHAPES))('continued appends: %s (GEI decision before execution)', (shape) => {
  const open = SHAPES[shape] as () => Promise<Writers>;

  it('GEI: the continued entry is built from the sealed first one and lands right after it, in the same commit', async () => {
    const { a } = await open();
    const acc = await a.append(acceptedOf('c1'));
    const seen: EntryRef[] = [];
    const r = await a.appendThen(decisionOf('c1'), {
      type: 'envelope.issued',
      ifOpen: acc.index,
      build: (first) => {
        seen.push(first);
        return issuedAfter('c1', first);
      },
    });
    expect(seen.at(-1)).toEqual(r.first);
    expect(r.next).toEqual({ index: r.first.index + 1, entry_hash: expect.any(String) });
    const [decision, issued] = await a.store.readRange(r.first.index, r.first.index + 2);
    expect(decision).toMatchObject({ type: 'decision', entry_hash: r.first.entry_hash });
    expect(issued).toMatchObject({
      type: 'envelope.issued',
      prev_hash: r.first.entry_hash,
      entry_hash: (r.next as EntryRef).entry_hash,
      payload: { decision_id: `${r.first.index}:${r.first.entry_hash}` },
    });
  });

  it('FC-INV-5: a continued entry whose attempt is closed is refused (ERR_LEDGER_REQUEST_CLOSED); the first still lands', async () => {
    const { a, b } = await open();
    const acc = await a.append(acceptedOf('c2'));
    await b.append(failedOf('c2'), undefined, { ifOpen: acc.index });
    const r = await b.appendThen(decisionOf('c2'), {
      type: 'envelope.issued',
      ifOpen: acc.index,
      build: (first) => issuedAfter('c2', first),
    });
    expect(r.next).toBeInstanceOf(FailclosedError);
    expect((r.next as FailclosedError).code).toBe('ERR_LEDGER_REQUEST_CLOSED');
    const types = (await a.store.readByRequest('c2')).map((e) => e.type);
    expect(types).toEqual(['gateway.accepted', 'gateway.failed', 'decision']);
    expect((await a.store.head()).size).toBe(r.first.index + 1);
  });

  it('a continuation that builds nothing, throws, or builds an entry of another type or request appends the first only', async () => {
    const { a } = await open();
    const cases: [string, (first: EntryRef) => EntryInput | undefined, string | undefined][] = [
      ['none', () => undefined, undefined],
      [
        'throws',
        () => {
          throw new Error('cannot sign');
        },
        'cannot sign',
      ],
      ['type', () => decisionOf('type'), 'another type'],
      ['request', (first) => issuedAfter('someone-else', first), 'request and trace'],
      [
        'field',
        (first) => entry('envelope.issued', 'field', { jti: 'j', secret: `${first.index}` }),
        undefined,
      ],
    ];
    for (const [id, build, message] of cases) {
      const before = (await a.store.head()).size;
      const r = await a.appendThen(decisionOf(id), { type: 'envelope.issued', build });
      expect(r.first.index).toBe(before);
      if (id === 'none') expect(r.next).toBeUndefined();
      else expect(r.next).toBeInstanceOf(Error);
      if (message !== undefined) expect((r.next as Error).message).toContain(message);
      expect((await a.store.head()).size).toBe(before + 1);
      expect((await a.store.readByRequest(id)).map((e) => e.type)).toEqual(['decision']);
    }
    await expect(
      a.appendThen(decisionOf('bad'), { type: 'decision', ifOpen: 0, build: () => undefined }),
    ).rejects.toThrow('only an outcome record or an envelope.issued is appended conditionally');
  });

  it('GEI: pairs appended at once by two writers each land together, the continued entry built after the first as stored', async () => {
    const { a, b } = await open();
    const pairs: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i += 1) {
      const w = i % 2 === 0 ? a : b;
      const id = `p-${i}`;
      pairs.push(w.appendThen(decisionOf(id), { type: 'envelope.issued', build: (f) => issuedAfter(id, f) }));
      if (i % 5 === 0) pairs.push(w.append(noteOf(100 + i)));
    }
    await Promise.all(pairs);
    const head = await a.store.head();
    const all = await a.store.readRange(0, head.size);
    let issued = 0;
    for (const [i, e] of all.entries()) {
      if (e.type !== 'envelope.issued') continue;
      issued += 1;
      const before = all[i - 1] as LedgerEntry;
      expect(before).toMatchObject({ type: 'decision', request_id: e.request_id });
      expect(e.payload['decision_id']).toBe(`${before.index}:${before.entry_hash}`);
    }
    expect(issued).toBe(40);
  });
});
