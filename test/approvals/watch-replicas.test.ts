/**
 * The per-approver rate limit across replicas (L7 "Rate limits … for approvals"): two approval
 * services, each over its own pool on one PostgreSQL schema, sharing one ledger. Approvals by one
 * approver sent to both at once are counted up to the limit and no further, whichever replica
 * each reaches; the rest are refused `ERR_APPROVER_RATE_LIMITED` and ledgered. The counter is
 * one atomic statement of the store (`takeApprovalSlot`), so the limit holds without any lock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url } from '../../src/kernel/index.js';
import type { ApprovalStatement } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { DEFAULT_WATCH_SETTINGS, createApprovalService } from '../../src/control-plane/index.js';
import type { ApprovalService } from '../../src/control-plane/index.js';
import { createPostgresApprovalStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { entriesOf, OPERATOR, rig, type Rig } from './cp-support.js';

const pg = useTestDatabase('fc_approval_watch');
const LIMIT = 5;
const DECISIONS = 16;

const pools: PostgresPool[] = [];
const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
  for (const p of pools.splice(0)) await p.close();
});

const settings = {
  watch: { ...DEFAULT_WATCH_SETTINGS, rateLimit: { max: LIMIT, windowSec: 3600 } },
};

async function replicas(): Promise<{ r: Rig; a: ApprovalService; b: ApprovalService; key: SigningKey }> {
  const poolA = await openMigratedPool(pg.url);
  const poolB = openPostgresPool({ url: pg.url, schema: poolA.schema, max: 4 });
  pools.push(poolA, poolB);
  const isClient = (n: string): boolean => n === 'agent-1';
  let a!: ApprovalService;
  const r = await rig((deps) => {
    a = createApprovalService({
      store: createPostgresApprovalStore(poolA),
      ledger: deps.ledger,
      putEvidence: (bytes, media) => deps.rawLedger.putEvidence(bytes, media),
      now: deps.now,
      isClient,
      settings,
    });
    return { approvals: a };
  });
  rigs.push(r);
  const b = createApprovalService({
    store: createPostgresApprovalStore(poolB),
    ledger: r.faulty,
    putEvidence: (bytes, media) => r.ledger.putEvidence(bytes, media),
    now: r.clock,
    isClient,
    settings,
  });
  const key = generateSigningKey();
  expect(
    await b.registerApprover(
      { name: 'ann', roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
      OPERATOR,
    ),
  ).toMatchObject({ name: 'ann' });
  return { r, a, b, key };
}

describe('approvals watched across replicas on PostgreSQL (L7 hardening)', () => {
  it(`${DECISIONS} approvals by one approver through two replicas at once: exactly ${LIMIT} count`, async () => {
    const { r, a, b, key } = await replicas();
    const ids: string[] = [];
    for (let i = 0; i < DECISIONS; i += 1) {
      const p = await a.open({
        decision_id: `dec-${i}`,
        kind: 'call',
        request_id: `req-${i}`,
        trace_id: `trace-${i}`,
        identity: 'agent-1',
        owner: 'olga',
        tenant: 'acme',
        tool: 'wire',
        session: null,
        params: { amount_cents: i },
        params_sha256: i.toString(16).padStart(64, '0'),
        preview: null,
        risk: 'high',
        required: 2,
        roles: ['ops'],
        policy_bundle: null,
        decision_ref: null,
        constraints: null,
        ttlSec: 86_400,
      });
      if ('outcome' in p) throw new Error(p.code);
      ids.push(p.decision_id);
    }
    const submit = async (service: ApprovalService, id: string): Promise<string> => {
      const p = await service.get(id);
      const s: ApprovalStatement = {
        decision_id: id,
        intent_sha256: p?.intent_sha256 ?? '',
        preview_sha256: null,
        verdict: 'approve',
        justification: 'fine',
        timestamp: new Date(r.clock()).toISOString(),
        approver: 'ann',
      };
      const out = await service.submit(id, {
        statement: { ...s },
        signature: encodeBase64url(signEd25519(key, approvalSigningInput(s))),
      });
      return out.outcome === 'ok' ? 'ok' : out.code;
    };
    const results = await Promise.all(ids.map((id, i) => submit(i % 2 === 0 ? a : b, id)));
    expect(results.filter((x) => x === 'ok')).toHaveLength(LIMIT);
    expect(results.filter((x) => x === 'ERR_APPROVER_RATE_LIMITED')).toHaveLength(DECISIONS - LIMIT);
    // Counted votes and ledger agree with the answers: LIMIT votes, each refusal ledgered.
    let votes = 0;
    for (const id of ids) votes += (await b.votes(id)).length;
    expect(votes).toBe(LIMIT);
    const entries = await entriesOf(r.ledger);
    expect(entries.filter((e) => e.type === 'approval.added')).toHaveLength(LIMIT);
    expect(
      entries.filter((e) => e.type === 'denial' && e.payload['code'] === 'ERR_APPROVER_RATE_LIMITED'),
    ).toHaveLength(DECISIONS - LIMIT);
    // The next window opens the limit again, on either replica.
    r.clock.advance(3600_000);
    const refused = ids.filter((_, i) => results[i] !== 'ok');
    expect(await submit(b, refused[0]!)).toBe('ok');
  });
});
