/**
 * The PostgreSQL policy bundle mirror (SPEC §6 "Policy as hash-addressed bundles", L7 policy
 * tampering): bundles stored by hash and read back verified, the active pointer, a body that no
 * longer hashes to its name refused, and a failing database (stopped, slow, garbage) rejecting
 * every method, never answering an empty or stale view.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { canonicalBytes, sha256Hex } from '../../src/kernel/index.js';
import { createPostgresBundleMirror, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';

const pgdb = useTestDatabase('fc_bundles');

function bundle(description: string): { hash: string; bytes: Uint8Array } {
  const bytes = canonicalBytes({ settings: { description } });
  return { hash: sha256Hex(bytes), bytes };
}

describe('PostgreSQL policy bundle mirror (SPEC §6)', () => {
  const pools: PostgresPool[] = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });
  const setup = async () => {
    const db = await openMigratedPool(pgdb.url);
    pools.push(db);
    return { db, mirror: createPostgresBundleMirror(db) };
  };

  it('stores bundles by hash, reads them back, and moves the active pointer', async () => {
    const { mirror } = await setup();
    const a = bundle('a');
    const b = bundle('b');
    expect(await mirror.list()).toEqual([]);
    expect(await mirror.active()).toBeNull();
    expect(await mirror.get(a.hash)).toBeUndefined();
    await mirror.put(a.hash, a.bytes);
    await mirror.put(b.hash, b.bytes);
    // Idempotent: storing the same bundle again changes nothing.
    await mirror.put(a.hash, a.bytes);
    expect(await mirror.list()).toEqual([a.hash, b.hash].sort());
    expect(Buffer.from((await mirror.get(a.hash))!)).toEqual(Buffer.from(a.bytes));
    await mirror.setActive(a.hash);
    expect(await mirror.active()).toBe(a.hash);
    await mirror.setActive(b.hash);
    expect(await mirror.active()).toBe(b.hash);
  });

  it('another replica on the same schema sees the bundles and the pointer', async () => {
    const { db, mirror } = await setup();
    const replica = openPostgresPool({ url: pgdb.url, schema: db.schema, max: 2 });
    pools.push(replica);
    const a = bundle('shared');
    await mirror.put(a.hash, a.bytes);
    await mirror.setActive(a.hash);
    const other = createPostgresBundleMirror(replica);
    expect(await other.active()).toBe(a.hash);
    expect(Buffer.from((await other.get(a.hash))!)).toEqual(Buffer.from(a.bytes));
  });

  it('L7 policy tampering: a stored body edited in the database is refused on read', async () => {
    const { db, mirror } = await setup();
    const a = bundle('original');
    await mirror.put(a.hash, a.bytes);
    await db.pool.query('UPDATE policy_bundles SET body = $1::bytea WHERE hash = $2::text', [
      Buffer.from(canonicalBytes({ settings: { description: 'edited' } })),
      a.hash,
    ]);
    await expect(mirror.get(a.hash)).rejects.toBeInstanceOf(TypeError);
  });

  it('refuses bytes that do not hash to their name, a malformed hash, and a pointer at a bundle it lacks', async () => {
    const { mirror } = await setup();
    const a = bundle('a');
    const b = bundle('b');
    await expect(mirror.put(a.hash, b.bytes)).rejects.toBeInstanceOf(TypeError);
    await expect(mirror.put('not-a-hash', a.bytes)).rejects.toBeInstanceOf(TypeError);
    await expect(mirror.get('../ACTIVE')).rejects.toBeInstanceOf(TypeError);
    expect(await mirror.list()).toEqual([]);
    await expect(mirror.setActive(a.hash)).rejects.toBeInstanceOf(Error);
    expect(await mirror.active()).toBeNull();
  });

  it('a body column of an unexpected type rejects the read', async () => {
    const { db, mirror } = await setup();
    const a = bundle('a');
    await mirror.put(a.hash, a.bytes);
    await db.pool.query("ALTER TABLE policy_bundles ALTER COLUMN body TYPE text USING encode(body, 'hex')");
    await expect(mirror.get(a.hash)).rejects.toBeInstanceOf(TypeError);
  });
});

describe('PostgreSQL policy bundle mirror behind a failing database (FC-INV-4)', () => {
  let proxy: FaultProxy;
  let direct: PostgresPool;
  let proxied: PostgresPool;
  beforeAll(async () => {
    direct = await openMigratedPool(pgdb.url);
    const u = new URL(pgdb.url);
    proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) });
    proxied = openPostgresPool({
      url: proxy.urlThrough(pgdb.url),
      schema: direct.schema,
      max: 4,
      statementTimeoutMs: 300,
      connectTimeoutMs: 300,
    });
  });
  afterAll(async () => {
    await proxied.close();
    await direct.close();
    await proxy.close();
  });
  beforeEach(() => {
    proxy.setMode('pass');
  });

  for (const mode of ['refuse', 'hang', 'garbage'] as const) {
    it(`database ${mode} → every method rejects; once it is back they work again`, async () => {
      const mirror = createPostgresBundleMirror(proxied);
      const stored = bundle(`stored-${mode}`);
      const during = bundle(`during-${mode}`);
      await mirror.put(stored.hash, stored.bytes);
      await mirror.setActive(stored.hash);
      proxy.setMode(mode);
      await expect(mirror.list()).rejects.toBeInstanceOf(Error);
      await expect(mirror.get(stored.hash)).rejects.toBeInstanceOf(Error);
      await expect(mirror.active()).rejects.toBeInstanceOf(Error);
      await expect(mirror.put(during.hash, during.bytes)).rejects.toBeInstanceOf(Error);
      await expect(mirror.setActive(stored.hash)).rejects.toBeInstanceOf(Error);
      proxy.setMode('pass');
      expect(await mirror.active()).toBe(stored.hash);
      expect(await mirror.get(during.hash)).toBeUndefined();
      await mirror.put(during.hash, during.bytes);
      await mirror.setActive(during.hash);
      expect(await mirror.active()).toBe(during.hash);
    });
  }
});
