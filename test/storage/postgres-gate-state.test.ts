/**
 * The Gate's state in PostgreSQL: the GateStateStore contract (FC-INV-3), then what only a shared
 * database has: two pools on one schema are two Gate replicas, so a nonce is fresh for one claim
 * across both however the claims interleave; a registration or revocation through one is seen by
 * the other; and a database that refuses, hangs or answers garbage makes claims and lookups
 * reject, until it answers again; two Gates over one state refuse each other's replays and deny
 * while the database hangs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GateStateStore } from '../../src/gate/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { createPostgresGateState, migrate, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { runGateStateContract } from '../gate/gate-state.contract.js';
import { startHarness, T0 } from '../gate/harness.js';
import { nextSchema, openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';

const DAY = 86_400_000;
const pg = useTestDatabase('fc_gate_state');

runGateStateContract('PostgreSQL', async (options) => {
  const db = await openMigratedPool(pg.url);
  const stores: GateStateStore[] = [];
  const open = (): GateStateStore => {
    const s = createPostgresGateState(db, options);
    stores.push(s);
    return s;
  };
  return {
    state: open(),
    openAnother: () => Promise.resolve(open()),
    corruptRoles: async (identity) => {
      await db.pool.query(`UPDATE gate_clients SET roles = '{"no spaces"}' WHERE identity = $1`, [identity]);
    },
    dispose: async () => {
      for (const s of stores) await s.close();
      await db.close();
    },
  };
});

describe('PostgreSQL Gate state across replicas (FC-INV-3)', () => {
  let schema: string;
  let a: PostgresPool;
  let b: PostgresPool;
  beforeAll(async () => {
    schema = nextSchema();
    a = openPostgresPool({ url: pg.url, schema, max: 4 });
    b = openPostgresPool({ url: pg.url, schema, max: 4 });
    // Both replicas migrate at once, as two Gates starting together do.
    await Promise.all([migrate(a), migrate(b)]);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('FC-INV-3: 500 trials of 8 concurrent claims of one nonce over two replicas: exactly one is fresh', async () => {
    const replicas = [
      createPostgresGateState(a, { replayRetentionMs: 7 * DAY }),
      createPostgresGateState(b, { replayRetentionMs: 7 * DAY }),
    ];
    const freshCounts: number[] = [];
    const losers: string[] = [];
    for (let t = 0; t < 500; t++) {
      const verdicts = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          // Half the claims also share the request id, half bring their own.
          replicas[i % 2]!.claim({
            identity: 'agent-1',
            nonce: `trial-${t}`,
            requestId: i < 4 ? `trial-${t}` : `trial-${t}-${i}`,
            atMs: T0,
          }),
        ),
      );
      freshCounts.push(verdicts.filter((v) => v === 'fresh').length);
      verdicts.forEach((v, i) => {
        if (v === 'replayed' && i >= 4 && t < 50) losers.push(`trial-${t}-${i}`);
      });
    }
    expect(freshCounts.every((n) => n === 1)).toBe(true);
    // The losers recorded nothing: a losing claim's own request id is still fresh with a new nonce.
    expect(losers.length).toBeGreaterThan(0);
    for (const [j, requestId] of losers.entries())
      expect(
        await replicas[j % 2]!.claim({ identity: 'agent-1', nonce: `loser-${j}`, requestId, atMs: T0 }),
      ).toBe('fresh');
    for (const r of replicas) await r.close();
  });

  it('FC-INV-3: a client registered through one replica is found by the other, and a revocation is seen by its next lookup', async () => {
    const one = createPostgresGateState(a, { replayRetentionMs: 7 * DAY });
    const two = createPostgresGateState(b, { replayRetentionMs: 7 * DAY });
    const key = generateSigningKey();
    expect(await two.lookup('agent-r')).toBeUndefined();
    await one.registerClient({ identity: 'agent-r', tenant: 'acme', jwk: key.publicJwk, atMs: T0 });
    expect(await two.lookup('agent-r')).toMatchObject({ kid: key.kid, status: 'active', tenant: 'acme' });
    // Registering the same identity through the other replica is refused.
    await expect(
      two.registerClient({ identity: 'agent-r', tenant: 'acme', jwk: key.publicJwk, atMs: T0 }),
    ).rejects.toThrow(TypeError);
    expect(await one.revokeClient('agent-r')).toBe(true);
    expect((await two.lookup('agent-r'))?.status).toBe('revoked');
    await one.close();
    await two.close();
  });

  it('FC-INV-3: closing a store leaves the shared pool open for the others', async () => {
    const one = createPostgresGateState(a, { replayRetentionMs: 7 * DAY });
    await one.close();
    const again = createPostgresGateState(a, { replayRetentionMs: 7 * DAY });
    expect(await again.claimNonce({ identity: 'agent-c', nonce: 'after-close', atMs: T0 })).toBe('fresh');
    await again.close();
  });

  it('FC-INV-3: a row of another shape fails the lookup', async () => {
    const one = createPostgresGateState(a, { replayRetentionMs: 7 * DAY });
    const k1 = generateSigningKey();
    const k2 = generateSigningKey();
    await one.registerClient({ identity: 'agent-k', tenant: 'acme', jwk: k1.publicJwk, atMs: T0 });
    // A kid that does not name the stored key.
    await a.pool.query('UPDATE gate_clients SET kid = $1 WHERE identity = $2', [k2.kid, 'agent-k']);
    await expect(one.lookup('agent-k')).rejects.toThrow(TypeError);
    await one.close();
  });
});

describe('PostgreSQL Gate state when the database fails (FC-INV-3, L7 degraded mode)', () => {
  let proxy: FaultProxy;
  let db: PostgresPool;
  let state: GateStateStore;
  beforeAll(async () => {
    const direct = await openMigratedPool(pg.url);
    await direct.close();
    proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(pg.url).port || 5432) });
    // The same schema, reached through the proxy, with small deadlines.
    db = openPostgresPool({
      url: proxy.urlThrough(pg.url),
      schema: direct.schema,
      max: 2,
      statementTimeoutMs: 300,
      connectTimeoutMs: 300,
    });
    state = createPostgresGateState(db, { replayRetentionMs: 7 * DAY });
    await state.registerClient({
      identity: 'agent-f',
      tenant: 'acme',
      jwk: generateSigningKey().publicJwk,
      atMs: T0,
    });
  });
  afterAll(async () => {
    await state.close();
    await db.close();
    await proxy.close();
  });

  let seq = 0;
  const claim = () => {
    seq += 1;
    return state.claim({ identity: 'agent-f', nonce: `f-${seq}`, requestId: `f-${seq}`, atMs: T0 });
  };

  it.each(['refuse', 'hang', 'garbage'] as const)(
    'FC-INV-3: a database that does %s makes claim and lookup reject; after it passes again both work',
    async (mode) => {
      proxy.setMode(mode);
      await expect(claim()).rejects.toBeInstanceOf(Error);
      await expect(state.lookup('agent-f')).rejects.toBeInstanceOf(Error);
      await expect(
        state.claimNonce({ identity: 'agent-f', nonce: `g-${mode}`, atMs: T0 }),
      ).rejects.toBeInstanceOf(Error);
      proxy.setMode('pass');
      expect(await claim()).toBe('fresh');
      expect(await state.lookup('agent-f')).toMatchObject({ status: 'active' });
      // A claim that failed recorded nothing.
      expect(await state.claimNonce({ identity: 'agent-f', nonce: `g-${mode}`, atMs: T0 })).toBe('fresh');
    },
  );
});

describe('Gates over one PostgreSQL state (FC-INV-3)', () => {
  it('FC-INV-3: a request accepted by one Gate is refused as replayed by the other; a hung database denies; a revocation through one is seen by the other', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(pg.url).port || 5432) });
    const direct = await openMigratedPool(pg.url);
    const viaProxy = openPostgresPool({
      url: proxy.urlThrough(pg.url),
      schema: direct.schema,
      max: 2,
      statementTimeoutMs: 300,
      connectTimeoutMs: 300,
    });
    const stateA = createPostgresGateState(viaProxy, { replayRetentionMs: 7 * DAY });
    const stateB = createPostgresGateState(direct, { replayRetentionMs: 7 * DAY });
    const a = await startHarness({ extra: { clients: stateA, replay: stateA } });
    const b = await startHarness({ extra: { clients: stateB, replay: stateB } });
    try {
      await stateA.registerClient({ identity: 'agent-1', tenant: 'acme', jwk: a.key.publicJwk, atMs: T0 });
      const req = a.request({ requestId: 'req-shared' });
      expect((await a.post(req)).status).toBe(200);
      const again = await b.post(req);
      expect(again.body['code']).toBe('ERR_REQUEST_REPLAYED');
      expect(b.cpCalls).toHaveLength(0);

      proxy.setMode('hang');
      const hung = await a.post(a.request({ requestId: 'req-hung' }));
      expect(hung.body).toMatchObject({ outcome: 'deny', code: 'ERR_CLIENT_REGISTRY_UNAVAILABLE' });
      expect(a.cpCalls).toHaveLength(1);
      proxy.setMode('pass');
      expect((await a.post(a.request({ requestId: 'req-after' }))).status).toBe(200);

      expect(await stateB.revokeClient('agent-1')).toBe(true);
      const revoked = await a.post(a.request({ requestId: 'req-revoked' }));
      expect(revoked.body['code']).toBe('ERR_CLIENT_REVOKED');
      expect(a.cpCalls).toHaveLength(2);
    } finally {
      await a.close();
      await b.close();
      await stateA.close();
      await stateB.close();
      await viaProxy.close();
      await direct.close();
      await proxy.close();
    }
  });
});
