/**
 * Two replicas racing on one PostgreSQL approval state (OE-INV-019/020, FC-INV-4 single use):
 * two store instances over two separate pools on one schema, many trials of the same operation
 * sent to both at once. Every state transition is the database's single atomic operation, so
 * exactly one replica wins each race: a vote is recorded once, a signed approval hash is used
 * once, a decision is finalised once and issued once, a review is closed once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalStore } from '../../src/control-plane/index.js';
import { sha256Hex } from '../../src/kernel/index.js';
import { createPostgresApprovalStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { pendingRecord, voteRecord } from './approval-store.contract.js';

const pg = useTestDatabase('fc_approval_races');
const TRIALS = 500;
/** Trials run this many at a time (each trial is one race between the two replicas). */
const WIDTH = 10;

let pools: PostgresPool[] = [];
let a: ApprovalStore;
let b: ApprovalStore;
beforeAll(async () => {
  const db = await openMigratedPool(pg.url, { max: WIDTH });
  const other = openPostgresPool({ url: pg.url, schema: db.schema, max: WIDTH });
  pools = [db, other];
  a = createPostgresApprovalStore(db);
  b = createPostgresApprovalStore(other);
});
afterAll(async () => {
  for (const p of pools) await p.close();
});

/** Runs `trial(0..n-1)`, WIDTH at a time. */
async function trials(prefix: string, trial: (id: string, i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < TRIALS; i += WIDTH) {
    await Promise.all(
      Array.from({ length: Math.min(WIDTH, TRIALS - i) }, (_, k) => trial(`${prefix}-${i + k}`, i + k)),
    );
  }
}

const tally = <T>(xs: readonly T[]): Map<T, number> => {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
};

describe('PostgreSQL approval state across two replicas (OE-INV-019/020, FC-INV-4)', () => {
  it(`${TRIALS} trials: the same vote sent to both replicas is recorded once`, async () => {
    const outcomes: string[] = [];
    await trials('vote', async (id) => {
      await a.insertPending(pendingRecord(id));
      const v = voteRecord(id, 'ann');
      const both = await Promise.all([a.addVote(v), b.addVote(v)]);
      outcomes.push(...both);
      expect(both.filter((o) => o === 'ok')).toHaveLength(1);
      expect(both.filter((o) => o === 'duplicate' || o === 'replayed')).toHaveLength(1);
      expect(await b.votes(id)).toEqual([v]);
      // The hash is used: no other statement can ride on it.
      expect(await a.markUsed(v.approval_sha256, 0)).toBe(false);
    });
    expect(tally(outcomes).get('ok')).toBe(TRIALS);
  });

  it(`${TRIALS} trials: one signed approval presented by two approvers at once counts once`, async () => {
    await trials('replay', async (id) => {
      await a.insertPending(pendingRecord(id));
      const both = await Promise.all([
        a.addVote(voteRecord(id, 'ann', `${id}:signed`)),
        b.addVote(voteRecord(id, 'ben', `${id}:signed`)),
      ]);
      expect([...both].sort()).toEqual(['ok', 'replayed']);
      expect(await a.votes(id)).toHaveLength(1);
    });
  });

  it(`${TRIALS} trials: a vote and a break-glass use of the same statement hash: exactly one wins`, async () => {
    await trials('mixed', async (id) => {
      await a.insertPending(pendingRecord(id));
      const v = voteRecord(id, 'ann');
      const [voted, used] = await Promise.all([a.addVote(v), b.markUsed(v.approval_sha256, 0)]);
      expect(voted === 'ok').toBe(!used);
      expect(await b.votes(id)).toHaveLength(voted === 'ok' ? 1 : 0);
    });
  });

  it(`${TRIALS} trials: concurrent finalize from both replicas: exactly one true, its outcome stored`, async () => {
    await trials('fin', async (id) => {
      await a.insertPending(pendingRecord(id));
      const [fa, fb] = await Promise.all([
        a.finalize(id, 'approved', ['ref-a']),
        b.finalize(id, 'rejected', []),
      ]);
      expect(fa !== fb).toBe(true);
      expect((await b.pending(id))?.status).toBe(fa ? 'approved' : 'rejected');
    });
  });

  it(`${TRIALS} trials: concurrent markIssued of one approved decision: exactly one true`, async () => {
    await trials('issue', async (id) => {
      await a.insertPending(pendingRecord(id));
      expect(await b.finalize(id, 'approved', ['ref'])).toBe(true);
      const both = await Promise.all([a.markIssued(id), b.markIssued(id)]);
      expect(both.filter(Boolean)).toHaveLength(1);
      expect((await a.pending(id))?.status).toBe('issued');
    });
  });

  it(`${TRIALS} trials: one statement hash marked used on both replicas: used once`, async () => {
    await trials('used', async (id) => {
      const sha = sha256Hex(`statement-${id}`);
      const both = await Promise.all([a.markUsed(sha, 1), b.markUsed(sha, 2)]);
      expect(both.filter(Boolean)).toHaveLength(1);
    });
  });

  it(`${TRIALS} trials: a review closed from both replicas is closed once, by the winner`, async () => {
    await trials('review', async (id) => {
      await a.insertReview({
        review_id: id,
        grant_id: 'bg_1',
        decision_id: 'd',
        opened_for: 'sam',
        opened_at: 1,
        status: 'open',
        closed_by: null,
        closed_at: null,
        notes: null,
      });
      const [ca, cb] = await Promise.all([
        a.closeReview(id, 'rita', 'a', 2),
        b.closeReview(id, 'rob', 'b', 3),
      ]);
      expect(ca !== cb).toBe(true);
      expect((await a.review(id))?.closed_by).toBe(ca ? 'rita' : 'rob');
    });
  });

  it(`${TRIALS} trials: the same decision opened on both replicas: inserted once, the first stays`, async () => {
    await trials('open', async (id) => {
      const [ia, ib] = await Promise.all([
        a.insertPending(pendingRecord(id, { required: 1 })),
        b.insertPending(pendingRecord(id, { required: 2 })),
      ]);
      expect(ia !== ib).toBe(true);
      expect((await b.pending(id))?.required).toBe(ia ? 1 : 2);
    });
  });
});
