/**
 * Two Control Plane replicas over one PostgreSQL approval state (OE-INV-019/020, FC-INV-4 single
 * use): each has its own approval service over its own store instance and pool on one schema
 * (they share the ledger and the bundle). Approvals submitted through either replica count once;
 * an approved escalation retried on both replicas at once is issued exactly once, the other
 * retry denied `ERR_REQUEST_REPLAYED` (the code of an already issued approval); a replica whose
 * approval database is gone denies and issues nothing.
 */
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
  ApprovalService,
  ControlPlaneResult,
  ControlPlaneService,
} from '../../src/control-plane/index.js';
import { routeApprovals } from '../../src/gate/index.js';
import { createPostgresApprovalStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { AUD, DERIVATION_KEY, ISS, issuerKey } from '../control-plane/support.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { entriesOf, OPERATOR, request, rig, type Rig } from './cp-support.js';

const pg = useTestDatabase('fc_approval_replicas');
const TRIALS = 40;

const pools: PostgresPool[] = [];
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
  for (const p of pools.splice(0)) await p.close();
});

interface Replica {
  readonly cp: ControlPlaneService;
  readonly approvals: ApprovalService;
  readonly pool: PostgresPool;
}

/** Two replicas: A is the rig's Control Plane, B a second one over the same ledger and bundles. */
async function replicas(): Promise<{ r: Rig; a: Replica; b: Replica; keys: Map<string, SigningKey> }> {
  const poolA = await openMigratedPool(pg.url);
  const poolB = openPostgresPool({ url: pg.url, schema: poolA.schema, max: 4 });
  pools.push(poolA, poolB);
  const isClient = (n: string): boolean => n === 'agent-1';
  let approvalsA!: ApprovalService;
  const r = await rig((deps) => {
    approvalsA = createApprovalService({
      store: createPostgresApprovalStore(poolA),
      ledger: deps.ledger,
      putEvidence: (bytes, media) => deps.rawLedger.putEvidence(bytes, media),
      now: deps.now,
      isClient,
    });
    return { approvals: approvalsA };
  });
  rigs.push(r);
  const approvalsB = createApprovalService({
    store: createPostgresApprovalStore(poolB),
    ledger: r.faulty,
    putEvidence: (bytes, media) => r.ledger.putEvidence(bytes, media),
    now: r.clock,
    isClient,
  });
  const cpB = createControlPlane({
    ledger: r.faulty,
    now: r.clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles: r.bundles,
    state: createMemoryGovernanceState(),
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 500, policyMs: 500, stateMs: 500 },
    approvals: approvalsB,
  });
  // Written through one replica, seen by the other: the approval state is the database's.
  await approvalsA.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const name of ['ann', 'ben']) {
    const key = generateSigningKey();
    keys.set(name, key);
    const reg = await approvalsB.registerApprover(
      { name, roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
      OPERATOR,
    );
    expect(reg).toMatchObject({ name, status: 'active' });
  }
  return {
    r,
    a: { cp: r.cp, approvals: approvalsA, pool: poolA },
    b: { cp: cpB, approvals: approvalsB, pool: poolB },
    keys,
  };
}

/** A signed approval of `approver` for `decisionId`, as submitted. */
async function signed(
  service: ApprovalService,
  keys: Map<string, SigningKey>,
  decisionId: string,
  approver: string,
  at: number,
): Promise<{ statement: JsonValue; signature: string }> {
  const p = await service.get(decisionId);
  const s: ApprovalStatement = {
    decision_id: decisionId,
    intent_sha256: p?.intent_sha256 ?? '',
    preview_sha256: p?.preview_sha256 ?? null,
    verdict: 'approve',
    justification: 'fine',
    timestamp: new Date(at).toISOString(),
    approver,
  };
  return {
    statement: { ...s },
    signature: encodeBase64url(signEd25519(keys.get(approver)!, approvalSigningInput(s))),
  };
}

const codeOf = (x: ControlPlaneResult | { outcome: string; code?: string }): string =>
  x.outcome === 'allow' ? 'ALLOWED' : ((x as { code?: string }).code ?? x.outcome);

const wire = (i: number, retry = false) =>
  request(
    'wire',
    { amount_cents: 100 + i },
    {
      // A retry keeps its request id (the decision is derived from it), not its trace or hash.
      request_id: `req-${i}`,
      trace_id: `trace-${i}${retry ? '-retry' : ''}`,
      timestamp: Date.UTC(2025, 5, 1, 12, 0, retry ? 5 : 0),
      request_sha256: (retry ? 'b' : 'a').repeat(62) + (i + 10).toString(),
    },
  );

describe('two Control Plane replicas over one PostgreSQL approval state (OE-INV-019/020)', () => {
  it(`${TRIALS} trials: one approval sent to both replicas counts once; the approved call retried on both is issued once`, async () => {
    const { r, a, b, keys } = await replicas();
    const issuedIds: string[] = [];
    for (let i = 0; i < TRIALS; i += 1) {
      // Refusals are recorded up to a rate per second: each trial in a second of its own.
      r.clock.advance(1000);
      const first = await (i % 2 === 0 ? a : b).cp.decide(wire(i));
      expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
      const id = first.decision_id!;
      // The same signed approval submitted to both replicas at once: recorded once.
      const ann = await signed(a.approvals, keys, id, 'ann', r.clock());
      const twice = await Promise.all([a.approvals.submit(id, ann), b.approvals.submit(id, ann)]);
      expect(twice.filter((x) => x.outcome === 'ok')).toHaveLength(1);
      expect(
        twice
          .filter((x) => x.outcome !== 'ok')
          .map((x) => codeOf(x))
          .every((c) => c === 'ERR_APPROVAL_DUPLICATE' || c === 'ERR_APPROVAL_REPLAYED'),
      ).toBe(true);
      expect(await b.approvals.votes(id)).toHaveLength(1);
      // The refused one is on the ledger as refused, whichever replica lost.
      const refusals = (await entriesOf(r.ledger)).filter(
        (e) =>
          e.type === 'denial' &&
          (e.payload as { decision_id?: unknown }).decision_id === id &&
          (e.payload as { stage?: unknown }).stage === 'approval',
      );
      expect(refusals.map((e) => (e.payload as { code?: unknown }).code)).toHaveLength(1);
      expect(['ERR_APPROVAL_DUPLICATE', 'ERR_APPROVAL_REPLAYED']).toContain(
        (refusals[0]?.payload as { code?: unknown } | undefined)?.code,
      );
      const ben = await signed(b.approvals, keys, id, 'ben', r.clock());
      expect(await b.approvals.submit(id, ben)).toMatchObject({ outcome: 'ok', status: 'approved' });
      // The approved escalation retried on both replicas at once: exactly one envelope.
      const both = await Promise.all([a.cp.decide(wire(i, true)), b.cp.decide(wire(i, true))]);
      expect(both.map(codeOf).sort()).toEqual(['ALLOWED', 'ERR_REQUEST_REPLAYED']);
      expect((await a.approvals.get(id))?.status).toBe('issued');
      issuedIds.push(id);
      // Any later retry, on either replica, is a replay.
      expect(codeOf(await b.cp.decide(wire(i, true)))).toBe('ERR_REQUEST_REPLAYED');
    }
    const entries = await entriesOf(r.ledger);
    for (const id of issuedIds) {
      const issued = entries.filter(
        (e) => e.type === 'envelope.issued' && (e.payload as { decision_id?: unknown }).decision_id === id,
      );
      expect(issued).toHaveLength(1);
    }
    expect(entries.filter((e) => e.type === 'envelope.issued')).toHaveLength(TRIALS);
  });

  it('a replica whose approval database is gone denies and issues nothing; the other still issues once', async () => {
    const { r, a, b, keys } = await replicas();
    const first = await a.cp.decide(wire(0));
    const id = first.decision_id!;
    for (const name of ['ann', 'ben'])
      expect(
        await a.approvals.submit(id, await signed(a.approvals, keys, id, name, r.clock())),
      ).toMatchObject({
        outcome: 'ok',
      });
    await b.pool.close();
    // The retry on B: the approval state does not answer, so nothing is decided and no envelope.
    expect(await b.cp.decide(wire(0, true))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
    });
    // B's approval routes answer the Control Plane's unavailability, never an acceptance.
    const routed = await routeApprovals(
      { approvals: createApprovalApi(b.approvals), isOperator: () => true, timeoutMs: 2000 },
      'GET',
      `/v1/approvals/${id}`,
      null,
      undefined,
    );
    expect(routed).toMatchObject({ status: 503, body: { code: 'ERR_CONTROL_PLANE_UNAVAILABLE' } });
    const entries = await entriesOf(r.ledger);
    expect(entries.filter((e) => e.type === 'envelope.issued')).toHaveLength(0);
    expect((await a.approvals.get(id))?.status).toBe('approved');
    expect(codeOf(await a.cp.decide(wire(0, true)))).toBe('ALLOWED');
    expect(codeOf(await a.cp.decide(wire(0, true)))).toBe('ERR_REQUEST_REPLAYED');
  });
});
