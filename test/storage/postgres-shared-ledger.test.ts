/**
 * Every gate replica on one PostgreSQL database active at once (SPEC §1 "Distributed", §4 "one
 * writer", §5; FC-INV-5; L7 ledger protection): the replicas append to one ledger under its
 * transaction-scoped append lock and each continues the chain from the committed head; an
 * instance whose session ended can never append again; the open requests of a gone instance are
 * claimed by exactly one live instance at a time, and those of a live one by none.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { FailclosedError } from '../../src/kernel/index.js';
import { createLedger, type EntryInput } from '../../src/ledger/index.js';
import { ORIGIN, steppingClock, testSigner } from '../ledger/fixtures.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { note, useSharedBackends } from './shared-backends.js';

const pgdb = useTestDatabase();

const { backendOn, replica } = useSharedBackends(pgdb);

const accepted = (request: string): EntryInput => ({
  type: 'gateway.accepted',
  trace_id: `t-${request}`,
  request_id: request,
  tenant: 'acme',
  actor: { id: 'agent-1', role: 'gate' },
  payload: { tool: 'echo' },
});

const completed = (request: string): EntryInput => ({
  ...accepted(request),
  type: 'gateway.completed',
  payload: { outcome: 'ok' },
});

/** Ends the session that holds `instance`'s lease, as a crash or a network cut would. */
async function killSession(schema: string, instance: string): Promise<void> {
  const admin = new pg.Client({ connectionString: pgdb.url });
  await admin.connect();
  try {
    const r = await admin.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks
       WHERE locktype = 'advisory' AND granted AND classid = ($1::int4)::oid
         AND objid = (hashtext($2)::int4)::oid AND objsubid = 2`,
      [0x6663696e, `${schema}/${instance}`],
    );
    expect(r.rows[0]!.n).toBe(1);
  } finally {
    await admin.end();
  }
}

describe('gate replicas sharing one PostgreSQL ledger (SPEC §4 one writer per transaction)', () => {
  it('two replicas appending at once form one continuous chain with every acknowledged entry stored once', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const b = await replica(schema);
    const n = 150;
    const receipts = await Promise.all(
      Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? a : b).ledger.append(note(i))),
    );
    const indices = receipts.map((r) => r.index).sort((x, y) => x - y);
    expect(indices).toEqual(Array.from({ length: 2 * n }, (_, i) => i));
    // A third process opening the ledger re-verifies the whole chain and the latest checkpoint.
    const reader = await backendOn(schema);
    const check = await createLedger({
      store: reader.openLedgerReader(),
      clock: steppingClock(),
      checkpointSigner: testSigner(),
      origin: ORIGIN,
    });
    expect(check.size()).toBe(2 * n);
    // Each replica's tree agrees with the verified one at every size it knows.
    for (const r of [a, b]) {
      expect(r.ledger.size()).toBeGreaterThan(0);
      expect(r.ledger.rootHash()).toBe(check.rootHash(r.ledger.size()));
    }
    // Both sign checkpoints; every stored checkpoint commits to the one tree.
    await a.ledger.checkpoint();
    await b.ledger.checkpoint();
    for (const cp of await reader.ledger.checkpoints()) expect(cp.root_hash).toBe(check.rootHash(cp.size));
    // Every entry exactly once: the receipts name the stored entries.
    for (const [i, r] of receipts.entries()) {
      const e = await reader.ledger.entry(r.index);
      expect(e?.entry_hash).toBe(r.entry_hash);
      expect(e?.payload['decision_id']).toBe(`d-${i}`);
    }
  });

  it('a replica whose lease session ended can never append again, and the others go on', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const b = await replica(schema);
    await a.ledger.append(note(0));
    await killSession(schema, a.backend.instance());
    const err = await a.ledger.append(note(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailclosedError);
    expect((err as FailclosedError).code).toBe('ERR_LEDGER_UNAVAILABLE');
    const r = await b.ledger.append(note(2));
    expect(r.index).toBe(1);
    expect((await b.backend.ledger.head()).size).toBe(2);
  });

  it('the open requests of a live instance are its own; a gone one is claimed by one instance at a time', async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const b = await replica(schema);
    await a.ledger.append(accepted('r-1'));
    await a.ledger.append(accepted('r-2'));
    await a.ledger.append(completed('r-1'));
    await b.ledger.append(accepted('r-3'));
    const open = await b.backend.ledger.openRequests!();
    expect(open.map((o) => [o.request_id, o.owner])).toEqual([
      ['r-2', a.backend.instance()],
      ['r-3', b.backend.instance()],
    ]);
    // A lives: nothing of it is anyone else's to close, and b's own are not orphans.
    const none = await b.backend.claimOrphanedRequests();
    expect(none.requests).toEqual([]);
    await none.release();
    const aInstance = a.backend.instance();
    await a.ledger.close();
    await a.backend.close();
    const claim = await b.backend.claimOrphanedRequests();
    expect(claim.requests.map((o) => [o.request_id, o.owner])).toEqual([['r-2', aInstance]]);
    // While b holds the claim, a third replica gets nothing of it.
    const c = await replica(schema);
    const meanwhile = await c.backend.claimOrphanedRequests();
    expect(meanwhile.requests).toEqual([]);
    await meanwhile.release();
    await claim.release();
    const later = await c.backend.claimOrphanedRequests();
    expect(later.requests.map((o) => o.request_id)).toEqual(['r-2']);
    await later.release();
  });

  it("FC-INV-5: a keyless Gate's requests are the instance they name; a sweep claims at most 64 owners, and live ones never hide a gone one from the next sweeps", async () => {
    const schema = nextSchema();
    const a = await replica(schema);
    const owned = (request: string, gate: string): EntryInput => ({
      ...accepted(request),
      payload: { tool: 'echo', gate_instance: gate },
    });
    // 64 Gates alive (their instance locks held on one session here), then one gone.
    const live = Array.from({ length: 64 }, (_, i) => `gate/live:${i}`);
    for (const [i, g] of live.entries()) await a.ledger.append(owned(`live-${i}`, g));
    await a.ledger.append(owned('orphan', 'gate/zz-gone:1'));
    // A name outside `gate/` is not an owner: the appending instance owns that request.
    await a.ledger.append(owned('not-a-gate', 'cp-host:1'));
    const open = await a.backend.ledger.openRequests!();
    expect(open.find((o) => o.request_id === 'orphan')?.owner).toBe('gate/zz-gone:1');
    expect(open.find((o) => o.request_id === 'not-a-gate')?.owner).toBe(a.backend.instance());
    const holder = new pg.Client({ connectionString: pgdb.url });
    await holder.connect();
    try {
      for (const g of live)
        await holder.query('SELECT pg_advisory_lock($1::int4, hashtext($2))', [0x6663696e, `${schema}/${g}`]);
      const b = await replica(schema);
      // The first pass takes 64 owners, none of them gone (at most 64: the gone one is not among them).
      const first = await b.backend.claimOrphanedRequests();
      expect(first.requests).toEqual([]);
      await first.release();
      const found: string[] = [];
      for (let pass = 0; pass < 2 && found.length === 0; pass++) {
        const claim = await b.backend.claimOrphanedRequests();
        found.push(...claim.requests.map((o) => o.request_id));
        await claim.release();
      }
      expect(found).toEqual(['orphan']);
    } finally {
      await holder.end();
    }
  });

  it('a standby is refused on PostgreSQL: every replica serves', async () => {
    const backend = await backendOn(nextSchema());
    await expect(backend.acquireWriter({ wait: true })).rejects.toThrow(/standby applies to SQLite only/);
  });
});
