/**
 * The contract of the Gate's state (FC-INV-3, SPEC §8 nonce store), run against every
 * implementation of `GateStateStore`: each nonce and each request id is fresh for exactly one
 * claim, a replayed half never consumes the other half of a pair, clients are registered with
 * checked keys and roles, a revocation is seen by the next lookup of every instance sharing the
 * storage, pruning never forgets a client's newest requests, and a closed store fails closed.
 */
import { describe, expect, it } from 'vitest';
import type { GateStateStore } from '../../src/gate/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

/** Options every implementation takes. */
export interface GateStateContractOptions {
  readonly replayRetentionMs: number;
  readonly replayKeepPerClient?: number;
}

/** A store over fresh, empty storage, and ways to reach that storage from outside. */
export interface GateStateFixture {
  readonly state: GateStateStore;
  /**
   * Another instance over the same storage (another process on the file, another replica on the
   * database), with the same options; the fixture closes it.
   */
  readonly openAnother: () => Promise<GateStateStore>;
  /** Overwrites the stored roles of `identity` with a malformed value, as tampered storage would hold. */
  readonly corruptRoles: (identity: string) => Promise<void>;
  /** Closes everything the fixture opened and removes the storage. */
  readonly dispose: () => Promise<void>;
}

/** Makes a fixture; called once per test. */
export type GateStateFactory = (options: GateStateContractOptions) => Promise<GateStateFixture>;

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;

/** Runs the contract against `factory`. */
export function runGateStateContract(name: string, factory: GateStateFactory): void {
  describe(`GateStateStore contract: ${name} (FC-INV-3)`, () => {
    async function withFixture(
      fn: (f: GateStateFixture) => Promise<void>,
      options: GateStateContractOptions = { replayRetentionMs: 7 * DAY },
    ): Promise<void> {
      const f = await factory(options);
      try {
        await fn(f);
      } finally {
        await f.dispose();
      }
    }

    const claimOf =
      (state: GateStateStore) =>
      (nonce: string, requestId: string, identity = 'agent-1', atMs = T0) =>
        state.claim({ identity, nonce, requestId, atMs });

    it('FC-INV-3: a nonce and a request id are each fresh exactly once among many concurrent claims', () =>
      withFixture(async ({ state, openAnother }) => {
        const claim = claimOf(state);
        const first: [string, string][] = [];
        for (let i = 0; i < 30; i++) first.push([`n${i}`, `r${i}`]);
        expect(new Set(await Promise.all(first.map(([n, r]) => claim(n, r))))).toEqual(new Set(['fresh']));
        // Replays and fresh pairs at once (one group-committed batch where the store batches).
        const second: [string, string][] = [];
        for (let i = 0; i < 10; i++) second.push([`n${i}`, `other-r${i}`]); // replayed nonce, new request id
        for (let i = 10; i < 20; i++) second.push([`other-n${i}`, `r${i}`]); // new nonce, replayed request id
        for (let i = 0; i < 10; i++) second.push([`m${i}`, `q${i}`]); // fresh
        const verdicts = await Promise.all(second.map(([n, r]) => claim(n, r)));
        expect(verdicts.slice(0, 20).every((v) => v === 'replayed')).toBe(true);
        expect(verdicts.slice(20).every((v) => v === 'fresh')).toBe(true);
        // A replay consumed nothing: the fresh half of a rejected pair is still fresh.
        expect(await claim('other-n10', 'brand-new')).toBe('fresh');
        expect(await claim('brand-new-nonce', 'other-r0')).toBe('fresh');
        // Durable and seen by another instance over the same storage.
        const other = await openAnother();
        expect(await other.claim({ identity: 'agent-1', nonce: 'n5', requestId: 'x', atMs: T0 })).toBe(
          'replayed',
        );
        expect(await other.claim({ identity: 'agent-1', nonce: 'y', requestId: 'r5', atMs: T0 })).toBe(
          'replayed',
        );
        expect(await other.claimNonce({ identity: 'agent-1', nonce: 'other-n10', atMs: T0 })).toBe(
          'replayed',
        );
      }));

    it('FC-INV-3: nonces are kept apart per client, and claimNonce lets one claim of a nonce through', () =>
      withFixture(async ({ state }) => {
        const claim = claimOf(state);
        const verdicts = await Promise.all([
          claim('n', 'r', 'agent-1'),
          claim('n', 'r', 'agent-2'),
          state.claimNonce({ identity: 'agent-1', nonce: 'retry', atMs: T0 }),
          state.claimNonce({ identity: 'agent-1', nonce: 'retry', atMs: T0 }),
        ]);
        expect(verdicts.slice(0, 2)).toEqual(['fresh', 'fresh']);
        // Concurrent claims of one nonce: exactly one is fresh, whichever it is.
        expect([...verdicts.slice(2)].sort()).toEqual(['fresh', 'replayed']);
        // A nonce and a request id are separate namespaces; a claimed nonce is replayed as a pair too.
        expect(await claim('r', 'n', 'agent-1')).toBe('fresh');
        expect(await claim('retry', 'new-id', 'agent-1')).toBe('replayed');
      }));

    it('FC-INV-3: two instances claiming the same nonce at once get exactly one fresh', () =>
      withFixture(async ({ state, openAnother }) => {
        const other = await openAnother();
        for (let t = 0; t < 20; t++) {
          const verdicts = await Promise.all(
            [state, other, state, other].map((s, i) =>
              s.claim({ identity: 'agent-1', nonce: `race-${t}`, requestId: `race-${t}-${i}`, atMs: T0 }),
            ),
          );
          expect(verdicts.filter((v) => v === 'fresh')).toHaveLength(1);
        }
      }));

    it('FC-INV-3: registers a client with its checked key and roles, sorted and without duplicates', () =>
      withFixture(async ({ state }) => {
        const key = generateSigningKey();
        const rec = await state.registerClient({
          identity: 'a',
          tenant: 't',
          jwk: key.publicJwk,
          atMs: T0,
          roles: ['ops', 'operator', 'ops'],
        });
        expect(rec).toEqual({
          identity: 'a',
          tenant: 't',
          kid: key.kid,
          status: 'active',
          registered_at: T0,
          roles: ['operator', 'ops'],
        });
        const found = await state.lookup('a');
        expect(found).toMatchObject({ identity: 'a', tenant: 't', kid: key.kid, status: 'active' });
        expect(found?.roles).toEqual(['operator', 'ops']);
        expect(found?.publicKey.export({ format: 'jwk' }).x).toBe(key.publicJwk.x);
        expect(await state.listClients()).toEqual([rec]);
        expect(await state.lookup('nobody')).toBeUndefined();
      }));

    it('FC-INV-3: refuses malformed roles, a malformed key and an identity that exists, storing nothing', () =>
      withFixture(async ({ state }) => {
        const jwk = generateSigningKey().publicJwk;
        await expect(
          state.registerClient({ identity: 'b', tenant: 't', jwk, atMs: T0, roles: ['no spaces'] }),
        ).rejects.toThrow(TypeError);
        await expect(
          state.registerClient({ identity: 'c', tenant: 't', jwk: { ...jwk, x: 'AAAA' }, atMs: T0 }),
        ).rejects.toBeInstanceOf(Error);
        expect(await state.listClients()).toEqual([]);
        await state.registerClient({ identity: 'a', tenant: 't', jwk, atMs: T0 });
        const other = generateSigningKey();
        await expect(
          state.registerClient({ identity: 'a', tenant: 'u', jwk: other.publicJwk, atMs: T0 + 1 }),
        ).rejects.toThrow(TypeError);
        expect(await state.lookup('a')).toMatchObject({ tenant: 't', kid: jwk.kid });
      }));

    it('FC-INV-3: revokes a client; lists clients by identity; the JWKS carries every key and the revoked kids', () =>
      withFixture(async ({ state }) => {
        const keys = ['b', 'a', 'B', 'a-2'].map((identity) => ({ identity, key: generateSigningKey() }));
        for (const { identity, key } of keys)
          await state.registerClient({ identity, tenant: 't', jwk: key.publicJwk, atMs: T0 });
        expect(await state.revokeClient('a')).toBe(true);
        expect(await state.revokeClient('nobody')).toBe(false);
        expect((await state.lookup('a'))?.status).toBe('revoked');
        expect((await state.lookup('b'))?.status).toBe('active');
        const listed = await state.listClients();
        expect(listed.map((c) => c.identity)).toEqual(['B', 'a', 'a-2', 'b']);
        expect(listed.find((c) => c.identity === 'a')?.status).toBe('revoked');
        const jwks = await state.clientJwks();
        expect(jwks.keys.map((k) => k.kid)).toEqual(keys.map((k) => k.key.kid).sort());
        expect(jwks.revoked).toEqual([keys[1]!.key.kid]);
      }));

    it('FC-INV-3: a client registered through one instance is found by another; a revocation is seen by its next lookup', () =>
      withFixture(async ({ state, openAnother }) => {
        const other = await openAnother();
        expect(await other.lookup('agent-7')).toBeUndefined();
        const key = generateSigningKey();
        await state.registerClient({ identity: 'agent-7', tenant: 't', jwk: key.publicJwk, atMs: T0 });
        expect(await other.lookup('agent-7')).toMatchObject({ kid: key.kid, status: 'active' });
        expect(await other.revokeClient('agent-7')).toBe(true);
        expect((await state.lookup('agent-7'))?.status).toBe('revoked');
      }));

    it('FC-INV-3, OE-INV-025: rotates an active client’s key, seen by another instance’s next lookup; never a revoked client’s', () =>
      withFixture(async ({ state, openAnother }) => {
        const other = await openAnother();
        const first = generateSigningKey();
        const next = generateSigningKey();
        await state.registerClient({
          identity: 'rot',
          tenant: 't',
          jwk: first.publicJwk,
          atMs: T0,
          roles: ['ops'],
        });
        await expect(state.rotateClientKey('rot', { kty: 'RSA' }, first.kid)).rejects.toMatchObject({
          code: 'ERR_KEY_INVALID',
        });
        expect(await state.lookup('rot')).toMatchObject({ kid: first.kid });
        // A rotation from a key that is no longer current loses: one rotation of a key wins.
        expect(await state.rotateClientKey('rot', next.publicJwk, 'not-the-current-kid')).toBeUndefined();
        expect(await state.lookup('rot')).toMatchObject({ kid: first.kid });
        expect(await state.rotateClientKey('rot', next.publicJwk, first.kid)).toMatchObject({
          identity: 'rot',
          tenant: 't',
          kid: next.kid,
          status: 'active',
          roles: ['ops'],
        });
        expect(await other.lookup('rot')).toMatchObject({ kid: next.kid, status: 'active' });
        expect(await state.rotateClientKey('nobody', next.publicJwk, next.kid)).toBeUndefined();
        expect(await state.revokeClient('rot')).toBe(true);
        expect(await other.rotateClientKey('rot', first.publicJwk, next.kid)).toBeUndefined();
        expect(await state.lookup('rot')).toMatchObject({ kid: next.kid, status: 'revoked' });
      }));

    it('FC-INV-3: a tampered roles value fails the lookup (the Gate then denies)', () =>
      withFixture(async ({ state, corruptRoles }) => {
        await state.registerClient({
          identity: 'a',
          tenant: 't',
          jwk: generateSigningKey().publicJwk,
          atMs: T0,
        });
        await corruptRoles('a');
        await expect(state.lookup('a')).rejects.toThrow(TypeError);
      }));

    it('FC-INV-3: prunes old rows beyond the per-client floor, and a clock set back prunes nothing', () =>
      withFixture(
        async ({ state }) => {
          for (let i = 0; i < 5; i++)
            expect(
              await state.claim({ identity: 'a', nonce: `n${i}`, requestId: `r${i}`, atMs: T0 + i }),
            ).toBe('fresh');
          // Nothing is older than the retention measured against the latest seen time.
          expect(await state.pruneReplay()).toBe(0);
          await state.claim({ identity: 'b', nonce: 'late', requestId: 'late', atMs: T0 + 8 * DAY });
          // Client a keeps its newest 4 rows (2 requests); the 3 oldest requests (6 rows) go.
          expect(await state.pruneReplay()).toBe(6);
          expect(await state.claim({ identity: 'a', nonce: 'n4', requestId: 'fresh-id', atMs: T0 })).toBe(
            'replayed',
          );
          expect(await state.claim({ identity: 'a', nonce: 'n0', requestId: 'r0', atMs: T0 })).toBe('fresh');
        },
        { replayRetentionMs: 7 * DAY, replayKeepPerClient: 4 },
      ));

    it('FC-INV-3: prunes by itself after 1000 claims, keeping every client its newest rows', () =>
      withFixture(
        async ({ state, openAnother }) => {
          for (let i = 0; i < 5; i++)
            await state.claim({ identity: 'a', nonce: `n${i}`, requestId: `r${i}`, atMs: T0 + i });
          // Fifty at a time: a thousand at once queue longer than a pool's connect deadline on a
          // loaded machine, which is not what this test is about.
          const answers = new Set<string>();
          for (let from = 0; from < 1000; from += 50) {
            const claims = [];
            for (let i = from; i < from + 50; i++)
              claims.push(
                state.claim({ identity: 'b', nonce: `n${i}`, requestId: `r${i}`, atMs: T0 + 8 * DAY }),
              );
            for (const a of await Promise.all(claims)) answers.add(a);
          }
          expect(answers).toEqual(new Set(['fresh']));
          // Closing waits for a prune still running.
          await state.close();
          const other = await openAnother();
          expect(await other.claim({ identity: 'a', nonce: 'n4', requestId: 'x', atMs: T0 })).toBe(
            'replayed',
          );
          expect(await other.claim({ identity: 'a', nonce: 'n0', requestId: 'r0', atMs: T0 })).toBe('fresh');
          expect(await other.claim({ identity: 'b', nonce: 'n0', requestId: 'y', atMs: T0 })).toBe(
            'replayed',
          );
        },
        { replayRetentionMs: 7 * DAY, replayKeepPerClient: 4 },
      ));

    it('FC-INV-3: a closed store rejects claims and lookups (fail closed)', () =>
      withFixture(async ({ state }) => {
        await state.registerClient({
          identity: 'a',
          tenant: 't',
          jwk: generateSigningKey().publicJwk,
          atMs: T0,
        });
        await state.close();
        await expect(
          state.claim({ identity: 'a', nonce: 'n', requestId: 'r', atMs: T0 }),
        ).rejects.toBeInstanceOf(Error);
        await expect(state.claimNonce({ identity: 'a', nonce: 'm', atMs: T0 })).rejects.toBeInstanceOf(Error);
        await expect(state.lookup('a')).rejects.toBeInstanceOf(Error);
      }));
  });
}
