/**
 * Gates on one PostgreSQL database follow each other (SPEC §1 "Distributed", SPEC §6 "Policy as
 * hash-addressed bundles", OE-INV-025 key revocation; src/embedded/replica-follow.ts): a policy
 * activation or an issuer key change made through one replica reaches every other within a
 * bounded time, and a replica that cannot confirm it is current denies.
 *
 * Replica B is a whole gate (`startEmbedded`). Only one gate can serve a database today (the
 * ledger has one writer), so replica A is its components over a data directory of its own and a
 * connection pool of its own: A's bundle cache and bundle store written through to the database
 * by A's mirror (bundle-sync.ts), exactly as a gate activates, with its ledger entries appended
 * through the deployment's one ledger writer (B's). B's follower rounds are run directly, and the
 * staleness bound is crossed on B's injected clock, never by sleeping.
 */
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FailclosedClient } from '../../src/client/index.js';
import { createBundleCompiler, createBundleStore } from '../../src/control-plane/index.js';
import type { BundleStore } from '../../src/control-plane/index.js';
import { mirroredBundleStore } from '../../src/embedded/bundle-sync.js';
import { DEFAULT_FOLLOW_MS } from '../../src/embedded/replica-follow.js';
import {
  dataPaths,
  defaultConfig,
  initDataDir,
  OPERATOR_ACTOR,
  openCore,
  parseConfig,
  readConfig,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { createDefaultBuiltins } from '../../src/execution/index.js';
import { canonicalBytes, isDeny, parseJson, sha256Hex } from '../../src/kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey } from '../../src/kernel/signing/index.js';
import { createPostgresBundleMirror, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import type { PolicyBundleMirror } from '../../src/storage/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { clientOf, revisedDemoBundle } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_follow');
let work: string;
const runs: string[] = [];
const cleanups: (() => Promise<void>)[] = [];
/** B's clock: the real one, pushed forward by `skew.ms` to cross the staleness bound. */
const skew = { ms: 0 };
const clock = (): number => Date.now() + skew.ms;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-follow-'));
});
afterEach(async () => {
  skew.ms = 0;
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** The real mirror, every method of which rejects while `failing.on` (the database stopped answering). */
function stopsAnswering(failing: { on: boolean }) {
  const gone = (): Promise<never> => Promise.reject(new Error('connection terminated'));
  return (mirror: PolicyBundleMirror): PolicyBundleMirror => ({
    list: () => (failing.on ? gone() : mirror.list()),
    get: (hash) => (failing.on ? gone() : mirror.get(hash)),
    put: (hash, bytes) => (failing.on ? gone() : mirror.put(hash, bytes)),
    active: () => (failing.on ? gone() : mirror.active()),
    setActive: (hash) => (failing.on ? gone() : mirror.setActive(hash)),
  });
}

interface Replicas {
  readonly b: EmbeddedInstance;
  readonly dirB: string;
  /** B's demo client. */
  readonly client: FailclosedClient;
  /** A's mirror: its own pool on the same schema. */
  readonly mirrorA: PolicyBundleMirror;
  /** A's bundle store over its own cache, written through to the database by `mirror` (default: A's). */
  storeA(mirror?: PolicyBundleMirror): BundleStore;
  /** Appends a global admin entry through the deployment's ledger writer, as A's does. */
  ledgerAdmin(
    type: 'admin.key_rotated' | 'admin.key_revoked',
    payload: Record<string, unknown>,
  ): Promise<void>;
}

/** B's follow period in most tests: long, so only the rounds a test runs happen. */
const FOLLOW_MS = 30_000;

/**
 * B a gate, A its components (see the module comment); two data directories over one schema.
 * B's `follow_ms` is `followMs` (null: none, the default).
 */
async function replicas(
  name: string,
  options: { readonly mirrorFailing?: { on: boolean }; readonly followMs?: number | null } = {},
): Promise<Replicas> {
  const mirrorFailing = options.mirrorFailing ?? { on: false };
  const followMs = options.followMs === undefined ? FOLLOW_MS : options.followMs;
  const schema = nextSchema();
  const dirB = join(work, `${name}-b`);
  const dirA = join(work, `${name}-a`);
  await initDataDir(dirB, { backend: `${db.url}?schema=${schema}` });
  cpSync(dirB, dirA, { recursive: true });
  if (followMs !== null) {
    const config = dataPaths(dirB).config;
    writeFileSync(config, JSON.stringify({ ...readConfig(dirB), follow_ms: followMs }));
  }
  const b = await startEmbedded(dirB, {
    port: 0,
    executionPort: 0,
    clock,
    onToolRun: ({ tool }) => void runs.push(tool),
    decorate: { bundleMirror: stopsAnswering(mirrorFailing) },
  });
  cleanups.push(() => b.close());
  const pool: PostgresPool = openPostgresPool({ url: db.url, schema, max: 2 });
  cleanups.push(() => pool.close());
  const mirrorA = createPostgresBundleMirror(pool);
  const compile = createBundleCompiler({ builtins: Object.keys(createDefaultBuiltins()) });
  const cacheA = join(dirA, 'bundles');
  return {
    b,
    dirB,
    client: clientOf(dirB, b),
    mirrorA,
    storeA: (mirror = mirrorA) =>
      mirroredBundleStore(
        createBundleStore({
          dir: cacheA,
          compile,
          ledger: b.core.ledgerPort,
          now: clock,
          ledgerTimeoutMs: 2000,
        }),
        mirror,
        cacheA,
      ),
    async ledgerAdmin(type, payload) {
      const id = `${type}-${sha256Hex(canonicalBytes(payload as never)).slice(0, 16)}`;
      await b.core.ledgerPort.append({
        type,
        trace_id: id,
        request_id: id,
        tenant: '*',
        actor: OPERATOR_ACTOR,
        payload: payload as never,
      });
    },
  };
}

/** Puts and activates `text` through A's store. */
async function activateOnA(
  store: BundleStore,
  text: string,
): Promise<Awaited<ReturnType<BundleStore['activate']>>> {
  const put = store.put(text);
  if (isDeny(put)) throw new Error(put.code);
  return store.activate(put.hash, OPERATOR_ACTOR, 'revised policy');
}

const echo = (c: FailclosedClient, message: string) => c.call('echo', { message }, { session: 'follow' });

/** The policy bundle the ledger's decision on `requestId` names. */
async function decisionBundle(instance: EmbeddedInstance, requestId: string): Promise<unknown> {
  const entries = await instance.core.ledger.store.readByRequest(requestId);
  return entries.find((e) => e.type === 'decision')?.payload['policy_bundle'];
}

/** The active bundle's hash as B's roles see it, or the deny's code. */
function activeOf(instance: EmbeddedInstance): string {
  const a = instance.core.bundles.active();
  return isDeny(a) ? a.code : a.hash;
}

/** Expects `echo` on B to deny `ERR_POLICY_UNAVAILABLE`, ledgered, with no tool run. */
async function expectRefused(r: Replicas, message: string): Promise<void> {
  const before = runs.length;
  const d = await echo(r.client, message);
  expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_UNAVAILABLE' });
  expect(runs.length).toBe(before);
  const entries = await r.b.core.ledger.store.readByRequest(d.request_id ?? '');
  expect(entries.some((e) => e.type === 'decision' && e.payload['code'] === 'ERR_POLICY_UNAVAILABLE')).toBe(
    true,
  );
}

describe('replicas on PostgreSQL follow policy activations (SPEC §6)', () => {
  it('an activation through A: after one round B serves the new bundle and decides under it', async () => {
    const r = await replicas('activation');
    const newer = await revisedDemoBundle('activated through a');
    expect(await activateOnA(r.storeA(), newer.text)).toMatchObject({ outcome: 'ok', hash: newer.hash });
    expect(existsSync(join(r.dirB, 'bundles', `${newer.hash}.json`))).toBe(false);
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(activeOf(r.b)).toBe(newer.hash);
    expect(existsSync(join(r.dirB, 'bundles', `${newer.hash}.json`))).toBe(true);
    const before = runs.length;
    const res = await echo(r.client, 'under the new policy');
    expect(res).toMatchObject({ outcome: 'executed' });
    expect(runs.length).toBe(before + 1);
    if (res.outcome !== 'executed') throw new Error('not executed');
    expect(await decisionBundle(r.b, res.request_id)).toBe(newer.hash);
  });

  it('with the default follow_ms, B follows an activation on its own, within a few periods', async () => {
    const r = await replicas('on-its-own', { followMs: null });
    expect(r.b.core.config.follow_ms).toBeUndefined();
    const newer = await revisedDemoBundle('followed on its own');
    expect(await activateOnA(r.storeA(), newer.text)).toMatchObject({ outcome: 'ok' });
    await expect.poll(() => activeOf(r.b), { timeout: 10 * DEFAULT_FOLLOW_MS }).toBe(newer.hash);
    expect(await echo(r.client, 'followed')).toMatchObject({ outcome: 'executed' });
  });

  it('a database pointer at a bundle the ledger never activated is withheld: B keeps the ledger’s bundle', async () => {
    const r = await replicas('unledgered');
    const ledgered = activeOf(r.b);
    const forged = await revisedDemoBundle('pointed at, never activated');
    const bytes = canonicalBytes(parseJson(forged.text));
    await r.mirrorA.put(forged.hash, bytes);
    await r.mirrorA.setActive(forged.hash);
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(activeOf(r.b)).toBe(ledgered);
    expect(existsSync(join(r.dirB, 'bundles', `${forged.hash}.json`))).toBe(false);
    const res = await echo(r.client, 'still the ledger’s policy');
    expect(res).toMatchObject({ outcome: 'executed' });
    if (res.outcome !== 'executed') throw new Error('not executed');
    expect(await decisionBundle(r.b, res.request_id)).toBe(ledgered);
  });

  it('a ledgered activation the database pointer does not name: B denies until they agree', async () => {
    const r = await replicas('pointer-lost');
    const pointerLost = { on: true };
    const lossy: PolicyBundleMirror = {
      list: () => r.mirrorA.list(),
      get: (hash) => r.mirrorA.get(hash),
      put: (hash, bytes) => r.mirrorA.put(hash, bytes),
      active: () => r.mirrorA.active(),
      setActive: (hash) =>
        pointerLost.on ? Promise.reject(new Error('connection terminated')) : r.mirrorA.setActive(hash),
    };
    const storeA = r.storeA(lossy);
    const newer = await revisedDemoBundle('ledgered, pointer lost');
    // Ledgered, but the database's pointer write was lost: A reports it unavailable.
    expect(await activateOnA(storeA, newer.text)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_UNAVAILABLE',
    });
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(activeOf(r.b)).toBe('ERR_POLICY_UNAVAILABLE');
    await expectRefused(r, 'replaced policy');
    // Activated again, the pointer written: B follows.
    pointerLost.on = false;
    expect(await storeA.activate(newer.hash, OPERATOR_ACTOR, 'again')).toMatchObject({ outcome: 'ok' });
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(activeOf(r.b)).toBe(newer.hash);
    expect(await echo(r.client, 'agreed')).toMatchObject({ outcome: 'executed' });
  });

  it('the database stops answering: past 2 × follow_ms B denies ERR_POLICY_UNAVAILABLE, and recovers once it answers', async () => {
    const failing = { on: false };
    const r = await replicas('stale', { mirrorFailing: failing });
    const followMs = r.b.core.config.follow_ms;
    expect(followMs).toBe(FOLLOW_MS);
    failing.on = true;
    expect(await r.b.core.follower!.round()).toBe(false);
    skew.ms = 2 * FOLLOW_MS + 1;
    expect(r.b.core.follower!.unsure()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    await expectRefused(r, 'unsure');
    const ready = await fetch(`${r.b.url}/readyz`);
    expect(ready.status).toBe(503);
    failing.on = false;
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(r.b.core.follower!.unsure()).toBeNull();
    expect(await echo(r.client, 'confirmed again')).toMatchObject({ outcome: 'executed' });
    expect((await fetch(`${r.b.url}/readyz`)).status).toBe(200);
  });
  it('a clock stepped back makes B unsure until a round succeeds on the new time (the bound never stretches)', async () => {
    const failing = { on: false };
    const r = await replicas('clock-back', { mirrorFailing: failing });
    expect(await r.b.core.follower!.round()).toBe(true);
    skew.ms = -3_600_000;
    expect(r.b.core.follower!.unsure()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    // Rounds that fail keep it unsure; the first good one on the new time ends it.
    failing.on = true;
    expect(await r.b.core.follower!.round()).toBe(false);
    expect(r.b.core.follower!.unsure()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    failing.on = false;
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(r.b.core.follower!.unsure()).toBeNull();
  });
});

describe('replicas on PostgreSQL follow issuer key changes (OE-INV-025 key revocation)', () => {
  /** An envelope B's Control Plane issues for an echo call (not yet consumed). */
  async function issued(r: Replicas, id: string): Promise<{ envelope: string; params: { message: string } }> {
    const params = { message: id };
    const d = await r.b.core.controlPlane.decide({
      request_id: id,
      trace_id: id,
      identity: 'demo-agent',
      tenant: 'acme',
      tool: 'echo',
      params,
      timestamp: clock(),
      session: null,
      request_sha256: sha256Hex(id),
    });
    if (d.outcome !== 'allow') throw new Error(d.code);
    return { envelope: d.envelope, params };
  }
  const execute = (r: Replicas, e: { envelope: string; params: { message: string } }, id: string) =>
    r.b.core.executor.execute({
      envelope: e.envelope,
      tool: 'echo',
      tenant: 'acme',
      params: e.params,
      request_id: id,
      trace_id: id,
    });

  it('a rotation through A: B issues nothing and its Execution Layer runs nothing, until restarted with the keys', async () => {
    const r = await replicas('rotated');
    const early = await issued(r, 'rotated-early');
    const late = await issued(r, 'rotated-late');
    const before = runs.length;
    expect(await execute(r, early, 'rotated-early')).toMatchObject({ outcome: 'executed' });
    expect(runs.length).toBe(before + 1);
    const next = generateSigningKey();
    await r.ledgerAdmin('admin.key_rotated', {
      kid: next.kid,
      previous_kid: r.b.core.controlPlane.issuerKid(),
      key_use: 'envelope',
      public_jwk: exportSigningKeyJwk(next),
      reason: 'rotated through a',
    });
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(r.b.core.follower!.unsure()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    await expectRefused(r, 'old key');
    expect(await execute(r, late, 'rotated-late')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_UNAVAILABLE',
    });
    expect(runs.length).toBe(before + 1);
    // A restart without the new keys is refused as before (policy-guard.ts).
    await r.b.close();
    await expect(openCore(r.dirB, { clock })).rejects.toThrow(/last rotated to/);
  });

  it('rotations made through B itself agree with the ledger as they are answered: no call refused after', async () => {
    const r = await replicas('own-rotations');
    for (const n of [1, 2]) {
      const res = await fetch(`${r.b.url}/v1/admin/issuer-rotate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${readOperatorToken(r.dirB)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: `routine ${n}` }),
      });
      expect(res.status).toBe(200);
      // No round run by the test: the rotation's answer came after the follower read it.
      expect(r.b.core.follower!.unsure()).toBeNull();
      expect(await echo(r.client, `after rotation ${n}`)).toMatchObject({ outcome: 'executed' });
      // A round in between: the next rotation then differs from what the follower last read.
      expect(await r.b.core.follower!.round()).toBe(true);
    }
  });

  it('a revocation through A of a key B still trusts: B denies, and the revoked key’s envelopes never run', async () => {
    const r = await replicas('revoked');
    const oldKid = r.b.core.controlPlane.issuerKid();
    const old = await issued(r, 'revoked-old');
    // B rotates itself (ledgered): it agrees with the ledger, and still trusts the retired key.
    expect(await r.b.core.controlPlane.rotateIssuerKey(OPERATOR_ACTOR, 'routine')).toMatchObject({
      outcome: 'ok',
    });
    expect(await r.b.core.follower!.round()).toBe(true);
    expect(r.b.core.follower!.unsure()).toBeNull();
    expect(await echo(r.client, 'new key')).toMatchObject({ outcome: 'executed' });
    await r.ledgerAdmin('admin.key_revoked', {
      kid: oldKid,
      key_use: 'envelope',
      reason: 'revoked through a',
      revoked_at: new Date(clock()).toISOString(),
    });
    expect(await r.b.core.follower!.round()).toBe(true);
    const before = runs.length;
    expect(await execute(r, old, 'revoked-old')).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_UNAVAILABLE',
    });
    await expectRefused(r, 'after the revocation');
    expect(runs.length).toBe(before);
  });
});

describe('follow_ms (configuration)', () => {
  it('is an optional positive integer', () => {
    const base = defaultConfig();
    expect(parseConfig(Buffer.from(JSON.stringify({ ...base, follow_ms: 250 }))).follow_ms).toBe(250);
    for (const bad of [0, -1, 1.5, '1000'])
      expect(() => parseConfig(Buffer.from(JSON.stringify({ ...base, follow_ms: bad })))).toThrow(
        'follow_ms must be a positive integer',
      );
  });

  it('a SQLite gate has no follower (one process, nothing to follow)', async () => {
    const dir = join(work, 'sqlite');
    await initDataDir(dir);
    const core = await openCore(dir);
    try {
      expect(core.follower).toBeUndefined();
    } finally {
      await core.close();
    }
  });
});
