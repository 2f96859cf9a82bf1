/**
 * One decision's approval steps serialized across gates (OE-INV-019/020, FC-INV-4 single use,
 * GEI: the ledger records exactly what counted): two Control Planes, each with its approval
 * service over its own PostgreSQL store instance and pool on one schema, sharing one ledger.
 * Many trials of the same vote through both at once (one `approval.added`, one counted vote),
 * the final approvals of two approvers at once (one `approval.finalized`), and a rejection racing
 * the final approval (the ledger order agrees with the stored outcome, and the exported ledger
 * verifies). A decision's lock that a third connection holds past the lock timeout makes the step
 * deny with the unavailable code, ledgering and counting nothing.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url } from '../../src/kernel/index.js';
import type { ApprovalStatement, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import {
  createApprovalApi,
  createApprovalService,
  createControlPlane,
  createMemoryGovernanceState,
} from '../../src/control-plane/index.js';
import type {
  ApprovalStore,
  ApprovalService,
  ControlPlaneResult,
  ControlPlaneService,
} from '../../src/control-plane/index.js';
import { routeApprovals } from '../../src/gate/index.js';
import { exportBundle } from '../../src/ledger/index.js';
import {
  createPostgresApprovalStore,
  DECISION_LOCK_CLASS,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { AUD, DERIVATION_KEY, ISS, issuerKey } from '../control-plane/support.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { entriesOf, OPERATOR, request, rig, type Rig } from './cp-support.js';

const db = useTestDatabase('fc_approval_lock');
const TRIALS = 100;
/** Trials in flight at once (each its own decision); every trial's submissions are still simultaneous. */
const LANES = 4;

/** Runs `trial(0..TRIALS-1)` in {@link LANES} lanes at once. */
async function inLanes(trial: (i: number) => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: LANES }, async (_, lane) => {
      for (let i = lane; i < TRIALS; i += LANES) await trial(i);
    }),
  );
}

const pools: PostgresPool[] = [];
const rigs: Rig[] = [];
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end();
  for (const r of rigs.splice(0)) await r.close();
  for (const p of pools.splice(0)) await p.close();
});

interface Replica {
  readonly cp: ControlPlaneService;
  readonly approvals: ApprovalService;
  readonly pool: PostgresPool;
}

/** A Control Plane with its approval service over its own pool on `schema`, sharing `r`'s ledger. */
function replicaOn(
  r: Rig,
  pool: PostgresPool,
  wrap: (store: ApprovalStore) => ApprovalStore = (store) => store,
): Replica {
  const approvals = createApprovalService({
    store: wrap(createPostgresApprovalStore(pool)),
    ledger: r.faulty,
    putEvidence: (bytes, media) => r.ledger.putEvidence(bytes, media),
    now: r.clock,
    isClient: (n: string) => n === 'agent-1',
  });
  const cp = createControlPlane({
    ledger: r.faulty,
    now: r.clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles: r.bundles,
    state: createMemoryGovernanceState(),
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 500, policyMs: 500, stateMs: 500 },
    approvals,
  });
  return { cp, approvals, pool };
}

/** Two replicas A and B (each its own pool and Control Plane) on one schema, one shared ledger. */
async function replicas(statementTimeoutMs?: number) {
  const poolA = await openMigratedPool(db.url, { max: 6 });
  const opts = statementTimeoutMs === undefined ? {} : { statementTimeoutMs };
  const poolB = openPostgresPool({ url: db.url, schema: poolA.schema, max: 6, ...opts });
  pools.push(poolA, poolB);
  // The rig's own Control Plane is not used: both replicas are built alike over its ledger.
  const r = await rig(() => ({}));
  rigs.push(r);
  const a = replicaOn(r, poolA);
  const b = replicaOn(r, poolB);
  await a.approvals.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const name of ['ann', 'ben', 'cy']) {
    const key = generateSigningKey();
    keys.set(name, key);
    expect(
      await a.approvals.registerApprover(
        { name, roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
        OPERATOR,
      ),
    ).toMatchObject({ name, status: 'active' });
  }
  const sign = async (
    id: string,
    approver: string,
    verdict: 'approve' | 'reject' = 'approve',
  ): Promise<{ statement: JsonValue; signature: string }> => {
    const p = await a.approvals.get(id);
    const s: ApprovalStatement = {
      decision_id: id,
      intent_sha256: p?.intent_sha256 ?? '',
      preview_sha256: p?.preview_sha256 ?? null,
      verdict,
      justification: verdict === 'approve' ? 'fine' : 'no',
      timestamp: new Date(r.clock()).toISOString(),
      approver,
    };
    return {
      statement: { ...s },
      signature: encodeBase64url(signEd25519(keys.get(approver)!, approvalSigningInput(s))),
    };
  };
  return { r, a, b, sign };
}

const wire = (i: number, retry = false) =>
  request(
    'wire',
    { amount_cents: 100 + i },
    {
      request_id: `req-${i}`,
      trace_id: `trace-${i}${retry ? '-retry' : ''}`,
      timestamp: Date.UTC(2025, 5, 1, 12, 0, retry ? 5 : 0),
      request_sha256: (retry ? 'b' : 'a').repeat(60) + (i + 1000).toString(),
    },
  );

const codeOf = (x: ControlPlaneResult | { outcome: string; code?: string }): string =>
  x.outcome === 'allow' ? 'ALLOWED' : ((x as { code?: string }).code ?? x.outcome);

type Entry = Awaited<ReturnType<typeof entriesOf>>[number];
const about = (entries: readonly Entry[], id: string, type: string): Entry[] =>
  entries.filter((e) => e.type === type && (e.payload as { decision_id?: unknown }).decision_id === id);

/** Opens an escalated `wire` decision (2 approvals of role ops) through `x`; its decision id. */
async function escalate(r: Rig, x: Replica, i: number): Promise<string> {
  // Refusals are recorded up to a rate per second: each trial in a second of its own.
  r.clock.advance(1000);
  const first = await x.cp.decide(wire(i));
  expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
  return first.decision_id!;
}

describe('one decision’s approval steps are serialized across gates (OE-INV-019/020, GEI)', () => {
  it(`${TRIALS} trials: the same vote through both gates at once: one approval.added, one counted vote`, async () => {
    const { r, a, b, sign } = await replicas();
    await inLanes(async (i) => {
      const id = await escalate(r, i % 2 === 0 ? a : b, i);
      const ann = await sign(id, 'ann');
      const both = await Promise.all([a.approvals.submit(id, ann), b.approvals.submit(id, ann)]);
      expect(both.map(codeOf).sort()).toEqual(['ERR_APPROVAL_DUPLICATE', 'ok']);
      expect(await b.approvals.votes(id)).toHaveLength(1);
      const entries = await entriesOf(r.ledger);
      expect(about(entries, id, 'approval.added')).toHaveLength(1);
      // The refused one is on the ledger as refused, and only as refused.
      const refusals = about(entries, id, 'denial').map((e) => (e.payload as { code?: unknown }).code);
      expect(refusals).toEqual(['ERR_APPROVAL_DUPLICATE']);
    });
  }, 300_000);

  it('a step whose decision lock is lost while it runs records nothing more and denies', async () => {
    const { r, a, sign } = await replicas();
    // Test fault: the lock is granted, then reported lost (its connection failed) during the step.
    const lost = replicaOn(r, a.pool, (store) => ({
      ...store,
      withDecisionLock: (id, fn) => store.withDecisionLock(id, () => fn(() => false)),
    }));
    const id = await escalate(r, a, 0);
    const answer = await lost.approvals.submit(id, await sign(id, 'ann'));
    expect(answer).toMatchObject({ outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE' });
    expect(about(await entriesOf(r.ledger), id, 'approval.added')).toEqual([]);
    expect(await a.approvals.votes(id)).toEqual([]);
  });

  it(`${TRIALS} trials: the final approvals of two approvers through both gates at once: one approval.finalized`, async () => {
    const { r, a, b, sign } = await replicas();
    await inLanes(async (i) => {
      const id = await escalate(r, i % 2 === 0 ? a : b, i);
      const [ann, ben] = [await sign(id, 'ann'), await sign(id, 'ben')];
      const both = await Promise.all([a.approvals.submit(id, ann), b.approvals.submit(id, ben)]);
      expect(both.map(codeOf)).toEqual(['ok', 'ok']);
      // Whichever counted second finalised; the first saw one approval of two.
      expect(both.map((x) => (x as { status?: unknown }).status).sort()).toEqual(['approved', 'pending']);
      expect((await a.approvals.get(id))?.status).toBe('approved');
      const entries = await entriesOf(r.ledger);
      expect(about(entries, id, 'approval.added')).toHaveLength(2);
      const fin = about(entries, id, 'approval.finalized');
      expect(fin).toHaveLength(1);
      expect(fin[0]?.payload).toMatchObject({ verdict: 'approve', count: 2 });
    });
  }, 300_000);

  it(`${TRIALS} trials: a rejection racing the final approval: the ledger order agrees with the stored outcome, and the ledger verifies`, async () => {
    const { r, a, b, sign } = await replicas();
    const outcomes = new Map<string, number>();
    await inLanes(async (i) => {
      const id = await escalate(r, i % 2 === 0 ? a : b, i);
      expect(await a.approvals.submit(id, await sign(id, 'ann'))).toMatchObject({
        outcome: 'ok',
        status: 'pending',
      });
      const [ben, cy] = [await sign(id, 'ben'), await sign(id, 'cy', 'reject')];
      const [approved, rejected] =
        i % 2 === 0
          ? await Promise.all([a.approvals.submit(id, ben), b.approvals.submit(id, cy)])
          : (await Promise.all([b.approvals.submit(id, cy), a.approvals.submit(id, ben)])).reverse();
      const status = (await b.approvals.get(id))?.status;
      outcomes.set(String(status), (outcomes.get(String(status)) ?? 0) + 1);
      const entries = await entriesOf(r.ledger);
      const fin = about(entries, id, 'approval.finalized');
      expect(fin).toHaveLength(1);
      const finIndex = fin[0]!.index;
      // Every counted vote precedes the one finalisation; nothing is counted after it.
      const votes = [...about(entries, id, 'approval.added'), ...about(entries, id, 'approval.rejected')];
      expect(votes.every((e) => e.index < finIndex)).toBe(true);
      if (status === 'approved') {
        expect(approved).toMatchObject({ outcome: 'ok', status: 'approved' });
        expect(rejected).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_INVALID' });
        expect(fin[0]?.payload).toMatchObject({ verdict: 'approve' });
        expect(about(entries, id, 'approval.rejected')).toHaveLength(0);
        expect(codeOf(await (i % 2 === 0 ? b : a).cp.decide(wire(i, true)))).toBe('ALLOWED');
      } else {
        expect(status).toBe('rejected');
        expect(rejected).toMatchObject({ outcome: 'ok', status: 'rejected' });
        expect(approved).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_INVALID' });
        expect(fin[0]?.payload).toMatchObject({ verdict: 'reject' });
        expect(about(entries, id, 'approval.added')).toHaveLength(1);
        expect(codeOf(await (i % 2 === 0 ? b : a).cp.decide(wire(i, true)))).toBe('ERR_APPROVAL_REJECTED');
      }
    });
    expect([...outcomes.keys()].every((s) => s === 'approved' || s === 'rejected')).toBe(true);
    const entries = await entriesOf(r.ledger);
    expect(entries.filter((e) => e.type === 'envelope.issued')).toHaveLength(outcomes.get('approved') ?? 0);
    // The exported ledger: no rejection before an envelope, every envelope after its finalisation.
    const exported = await exportBundle({
      ledger: r.ledger,
      actor: OPERATOR,
      publicKeys: { approvers: await a.approvals.approverJwks() },
    });
    const report = verifyBundle(Buffer.from(exported.text), { invariant: 'OE-INV-019' });
    const check = report.checks.find((c) => c.id === 'approvals');
    expect(check?.findings).toEqual([]);
    expect(check?.status).toBe('pass');
  }, 300_000);

  it('a decision lock held past the lock timeout: the step denies ERR_CONTROL_PLANE_UNAVAILABLE, nothing ledgered or counted', async () => {
    const { r, a, b, sign } = await replicas(400);
    const id = await escalate(r, a, 0);
    const ann = await sign(id, 'ann');
    // A third connection holds the decision's lock (another gate stuck in the step).
    const holder = new pg.Client(b.pool.clientConfig);
    clients.push(holder);
    await holder.connect();
    const key = [DECISION_LOCK_CLASS, `${b.pool.schema}:${id}`];
    await holder.query('SELECT pg_advisory_lock($1::int4, hashtext($2))', key);
    const before = (await entriesOf(r.ledger)).length;
    const api = { approvals: createApprovalApi(b.approvals), isOperator: () => true, timeoutMs: 5000 };
    expect(await routeApprovals(api, 'POST', `/v1/approvals/${id}/approve`, ann, undefined)).toMatchObject({
      status: 503,
      body: { code: 'ERR_CONTROL_PLANE_UNAVAILABLE' },
    });
    expect(await b.approvals.votes(id)).toHaveLength(0);
    expect(await entriesOf(r.ledger)).toHaveLength(before);
    // A lock-timed-out connection was discarded: no connection of B's pool still holds or waits.
    expect(b.pool.pool.totalCount).toBe(b.pool.pool.idleCount);
    await holder.query('SELECT pg_advisory_unlock($1::int4, hashtext($2))', key);
    // Once the lock is free, the same approval counts, once.
    expect(await routeApprovals(api, 'POST', `/v1/approvals/${id}/approve`, ann, undefined)).toMatchObject({
      status: 200,
      body: { outcome: 'ok', approvals: 1 },
    });
    expect(about(await entriesOf(r.ledger), id, 'approval.added')).toHaveLength(1);
  }, 60_000);
});
