/**
 * Policy bundles on the PostgreSQL backend, end to end (SPEC §6 "Policy as hash-addressed
 * bundles", §4 "one writer", L7 policy tampering): the database holds the bundles and the active
 * pointer, so a replica started from an older copy of the data directory serves the bundle the
 * ledger last activated as soon as it takes over, with no operator step. A bundle edited in the
 * database is refused (the gate does not open). When the database lost the bundle write of an
 * activation, nothing is activated; when it lost the pointer write, a replica opened later withholds the bundle
 * the ledger replaced (ERR_POLICY_UNAVAILABLE), never serving it, and the gate that activated
 * repairs the pointer when it opens again.
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailclosedClient } from '../../src/client/index.js';
import { initDataDir, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance, EmbeddedOptions } from '../../src/embedded/index.js';
import { canonicalBytes, parseJson } from '../../src/kernel/index.js';
import type { PolicyBundleMirror } from '../../src/storage/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { activate, clientOf, revisedDemoBundle } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_pgpol');
let work: string;
const runs: string[] = [];
const base: EmbeddedOptions = { port: 0, executionPort: 0, onToolRun: ({ tool }) => void runs.push(tool) };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pgpol-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const echo = (c: FailclosedClient, message: string) => c.call('echo', { message }, { session: 'pg-policy' });

/** The policy bundle the ledger's decision on `requestId` names. */
async function decisionBundle(instance: EmbeddedInstance, requestId: string): Promise<unknown> {
  const entries = await instance.core.ledger.store.readByRequest(requestId);
  return entries.find((e) => e.type === 'decision')?.payload['policy_bundle'];
}

async function activeInDatabase(schema: string): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const r = await c.query<{ hash: string }>(`SELECT hash FROM ${schema}.policy_active WHERE id = 1`);
    return r.rows[0]?.hash;
  } finally {
    await c.end();
  }
}

/** The real mirror, whose writes of `which` fail while `failing.on` (the database lost them). */
function writesFail(which: 'put' | 'setActive', failing: { on: boolean }) {
  const lost = () => Promise.reject(new Error('connection terminated'));
  return (mirror: PolicyBundleMirror): PolicyBundleMirror => ({
    list: () => mirror.list(),
    get: (hash) => mirror.get(hash),
    put: (hash, bytes) => (failing.on && which === 'put' ? lost() : mirror.put(hash, bytes)),
    active: () => mirror.active(),
    setActive: (hash) => (failing.on && which === 'setActive' ? lost() : mirror.setActive(hash)),
  });
}

/** Two gates on one schema; B is A's copy from before anything below happened. */
async function replicas(name: string): Promise<{ schema: string; dirA: string; dirB: string }> {
  const schema = nextSchema();
  const dirA = join(work, `${name}-a`);
  const dirB = join(work, `${name}-b`);
  await initDataDir(dirA, { backend: `${db.url}?schema=${schema}` });
  cpSync(dirA, dirB, { recursive: true });
  return { schema, dirA, dirB };
}

describe('policy bundles in PostgreSQL (SPEC §6, §4)', () => {
  it('a replica copied before an activation serves the newly activated bundle at once', async () => {
    const { schema, dirA, dirB } = await replicas('takeover');
    const a = await startEmbedded(dirA, base);
    let b: EmbeddedInstance | undefined;
    try {
      // A activates a bundle B's copy of the data directory has never seen.
      const newer = await revisedDemoBundle('revised');
      const res = await activate(dirA, a, newer.text);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { hash: string }).hash).toBe(newer.hash);
      expect(await activeInDatabase(schema)).toBe(newer.hash);
      // B starts while A serves: both active on the one database.
      b = await startEmbedded(dirB, base);
      const before = runs.length;
      const r = await echo(clientOf(dirB, b), 'on b');
      expect(r).toMatchObject({ outcome: 'executed' });
      expect(runs.length).toBe(before + 1);
      if (r.outcome !== 'executed') throw new Error('not executed');
      expect(await decisionBundle(b, r.request_id)).toBe(newer.hash);
    } finally {
      await a.close();
      await b?.close();
    }
  });

  it('two serving gates: an activation through A is what B decides under after one follower round', async () => {
    const { dirA, dirB } = await replicas('follow');
    const a = await startEmbedded(dirA, base);
    const b = await startEmbedded(dirB, base);
    try {
      const newer = await revisedDemoBundle('activated on a, followed by b');
      expect((await activate(dirA, a, newer.text)).status).toBe(200);
      expect(await b.core.follower?.round()).toBe(true);
      const before = runs.length;
      const r = await echo(clientOf(dirB, b), 'on b after the activation');
      expect(r).toMatchObject({ outcome: 'executed' });
      expect(runs.length).toBe(before + 1);
      if (r.outcome !== 'executed') throw new Error('not executed');
      expect(await decisionBundle(b, r.request_id)).toBe(newer.hash);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('L7 policy tampering: a bundle body edited in the database is refused, and a replica opened later does not open', async () => {
    const { schema, dirA, dirB } = await replicas('tampered');
    const a = await startEmbedded(dirA, base);
    const newer = await revisedDemoBundle('revised, then edited');
    try {
      expect((await activate(dirA, a, newer.text)).status).toBe(200);
    } finally {
      await a.close();
    }
    const edited = await revisedDemoBundle('edited in the database');
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(`UPDATE ${schema}.policy_bundles SET body = $1::bytea WHERE hash = $2::text`, [
        Buffer.from(canonicalBytes(parseJson(edited.text))),
        newer.hash,
      ]);
    } finally {
      await c.end();
    }
    await expect(startEmbedded(dirB, base)).rejects.toBeInstanceOf(TypeError);
    expect(existsSync(join(dirB, 'bundles', `${newer.hash}.json`))).toBe(false);
    expect(existsSync(join(dirB, 'bundles', `${edited.hash}.json`))).toBe(false);
  });

  it('a lost bundle write: the activation is refused before the ledger, and the gate keeps its bundle', async () => {
    const { schema, dirA } = await replicas('lost-bundle');
    const failing = { on: false };
    const a = await startEmbedded(dirA, { ...base, decorate: { bundleMirror: writesFail('put', failing) } });
    try {
      const old = await activeInDatabase(schema);
      failing.on = true;
      const newer = await revisedDemoBundle('revised, bundle lost');
      const res = await activate(dirA, a, newer.text);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
      expect(await activeInDatabase(schema)).toBe(old);
      const r = await echo(clientOf(dirA, a), 'still the old policy');
      expect(r).toMatchObject({ outcome: 'executed' });
      if (r.outcome !== 'executed') throw new Error('not executed');
      expect(await decisionBundle(a, r.request_id)).toBe(old);
      const activations = (await a.core.ledger.store.readByTenant('*', { from: 0, limit: 1000 })).filter(
        (e) => e.type === 'admin.policy_activated',
      );
      expect(activations.map((e) => e.payload['policy_bundle'])).toEqual([old]);
    } finally {
      await a.close();
    }
  });

  it('a lost pointer write: the activation is not reported done, and a replica opened later withholds the replaced bundle', async () => {
    const { schema, dirA, dirB } = await replicas('lost-pointer');
    const failing = { on: false };
    const a = await startEmbedded(dirA, {
      ...base,
      decorate: { bundleMirror: writesFail('setActive', failing) },
    });
    const old = await activeInDatabase(schema);
    let b: EmbeddedInstance | undefined;
    try {
      const newer = await revisedDemoBundle('revised, pointer lost');
      failing.on = true;
      const res = await activate(dirA, a, newer.text);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
      expect(await activeInDatabase(schema)).toBe(old);
      // The ledger recorded the activation, and A serves what it recorded.
      const onA = await echo(clientOf(dirA, a), 'on a');
      expect(onA).toMatchObject({ outcome: 'executed' });
      if (onA.outcome !== 'executed') throw new Error('not executed');
      expect(await decisionBundle(a, onA.request_id)).toBe(newer.hash);
      await a.close();
      b = await startEmbedded(dirB, base);
      // B's bundle and the database's pointer are the one the ledger replaced: withheld.
      const before = runs.length;
      expect(await echo(clientOf(dirB, b), 'stale on b')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_POLICY_UNAVAILABLE',
      });
      expect(runs.length).toBe(before);
      // An operator activation there ends it (ledgered, and written to the database).
      expect((await activate(dirB, b, newer.text)).status).toBe(200);
      expect(await activeInDatabase(schema)).toBe(newer.hash);
      expect(await echo(clientOf(dirB, b), 'on b')).toMatchObject({ outcome: 'executed' });
    } finally {
      await a.close();
      await b?.close();
    }
  });

  it('a lost pointer write: the gate that activated writes its pointer to the database when it opens again', async () => {
    const { schema, dirA } = await replicas('repair');
    const failing = { on: true };
    const a = await startEmbedded(dirA, {
      ...base,
      decorate: { bundleMirror: writesFail('setActive', failing) },
    });
    let again: EmbeddedInstance | undefined;
    try {
      const newer = await revisedDemoBundle('revised, repaired');
      expect((await activate(dirA, a, newer.text)).status).toBe(503);
      await a.close();
      expect(await activeInDatabase(schema)).not.toBe(newer.hash);
      // Its pointer agrees with the ledger's last activation; the database's lags: it is repaired.
      again = await startEmbedded(dirA, base);
      expect(await activeInDatabase(schema)).toBe(newer.hash);
      const r = await echo(clientOf(dirA, again), 'again');
      expect(r).toMatchObject({ outcome: 'executed' });
      if (r.outcome !== 'executed') throw new Error('not executed');
      expect(await decisionBundle(again, r.request_id)).toBe(newer.hash);
    } finally {
      await a.close();
      await again?.close();
    }
  });
});
