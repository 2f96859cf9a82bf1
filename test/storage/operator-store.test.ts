/**
 * The operator registry's contract (src/gate/operators.ts, OE-INV-025), run against every
 * implementation: SQLite on the deployment's shared connection in `ledger.db`, SQLite as a file of
 * its own, and PostgreSQL (a migrated schema, as every gate on the database shares it). Each
 * change succeeds exactly once; a rotated token is found no more; a removed operator is found by
 * no token; names are never reused; a malformed row rejects (fail closed). An OIDC identity binds
 * at most one active operator, a binding changes only from unbound or from the binding read, and a
 * removed operator's identity is found no more (docs/console.md "Operator sign-in").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteCommitUnit, sha256Hex } from '../../src/kernel/index.js';
import { createSqliteOperatorStore, parseOperatorRow } from '../../src/gate/index.js';
import type { OperatorStore } from '../../src/gate/index.js';
import { createPostgresOperatorStore } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_operators');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-operator-store-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const openers: Record<string, () => OperatorStore | Promise<OperatorStore>> = {
  'SQLite, own file': () => {
    const s = createSqliteOperatorStore(join(dir(), 'operators.db'));
    cleanups.unshift(() => void s.close());
    return s;
  },
  PostgreSQL: async () => {
    const db = await openMigratedPool(pg.url);
    cleanups.unshift(() => void db.close());
    return createPostgresOperatorStore(db);
  },
  'SQLite, shared connection': () => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const s = createSqliteOperatorStore(path, { unit });
    cleanups.unshift(() => unit.close());
    return s;
  },
};

const T = 1_700_000_000_000;
const sha = (t: string): string => sha256Hex(t);

describe.each(Object.keys(openers))('operator store: %s (OE-INV-025)', (name) => {
  const open = (): OperatorStore | Promise<OperatorStore> => openers[name]!();

  it('adds once; a taken name is refused; the token is found by its hash only while active', async () => {
    const s = await open();
    expect(
      await s.add({ name: 'alice', tenants: ['acme', 'globex'], token_sha256: sha('a1'), created_at: T }),
    ).toBe(true);
    expect(await s.add({ name: 'alice', tenants: '*', token_sha256: sha('a2'), created_at: T })).toBe(false);
    expect(await s.byToken(sha('a1'))).toMatchObject({
      name: 'alice',
      tenants: ['acme', 'globex'],
      status: 'active',
      created_at: T,
      rotated_at: null,
      removed_at: null,
    });
    expect(await s.byToken(sha('a2'))).toBeUndefined();
    expect(await s.add({ name: 'root', tenants: '*', token_sha256: sha('r'), created_at: T })).toBe(true);
    expect((await s.get('root'))?.tenants).toBe('*');
    expect((await s.list()).map((o) => o.name)).toEqual(['alice', 'root']);
  });

  it('rotation replaces the hash once: the old token is found no more, a stale rotation is refused', async () => {
    const s = await open();
    await s.add({ name: 'bob', tenants: ['acme'], token_sha256: sha('b1'), created_at: T });
    expect(await s.rotate('bob', sha('b1'), sha('b2'), T + 5)).toBe(true);
    expect(await s.rotate('bob', sha('b1'), sha('b3'), T + 6)).toBe(false);
    expect(await s.byToken(sha('b1'))).toBeUndefined();
    expect(await s.byToken(sha('b2'))).toMatchObject({ name: 'bob', rotated_at: T + 5 });
  });

  it('removal is once; a removed operator is found by no token, cannot rotate, and its name is not reused', async () => {
    const s = await open();
    await s.add({ name: 'carl', tenants: ['acme'], token_sha256: sha('c1'), created_at: T });
    expect(await s.remove('carl', T + 9)).toBe(true);
    expect(await s.remove('carl', T + 10)).toBe(false);
    expect(await s.byToken(sha('c1'))).toBeUndefined();
    expect(await s.rotate('carl', sha('c1'), sha('c2'), T + 11)).toBe(false);
    expect(await s.get('carl')).toMatchObject({ status: 'removed', removed_at: T + 9 });
    expect(await s.add({ name: 'carl', tenants: ['acme'], token_sha256: sha('c3'), created_at: T })).toBe(
      false,
    );
  });
});

describe.each(Object.keys(openers))('operator OIDC bindings: %s (OE-INV-025)', (name) => {
  const open = (): OperatorStore | Promise<OperatorStore> => openers[name]!();
  const ISS = 'https://idp.example';

  it('an operator added bound is found by its identity, which no second operator can take', async () => {
    const s = await open();
    expect(
      await s.add({
        name: 'dora',
        tenants: ['acme'],
        token_sha256: sha('d1'),
        created_at: T,
        oidc: { issuer: ISS, subject: 'dora-sub' },
      }),
    ).toBe(true);
    expect(await s.bySubject(ISS, 'dora-sub')).toMatchObject({
      name: 'dora',
      oidc: { issuer: ISS, subject: 'dora-sub', bound_at: T },
    });
    expect(await s.bySubject('https://other.example', 'dora-sub')).toBeUndefined();
    expect(
      await s.add({
        name: 'eve',
        tenants: ['acme'],
        token_sha256: sha('e1'),
        created_at: T,
        oidc: { issuer: ISS, subject: 'dora-sub' },
      }),
    ).toBe(false);
    expect(await s.get('eve')).toBeUndefined();
    await s.add({ name: 'eve', tenants: ['acme'], token_sha256: sha('e1'), created_at: T });
    expect(await s.bind('eve', ISS, 'dora-sub', T + 1)).toBe(false);
    expect((await s.get('eve'))?.oidc).toBeNull();
  });

  it('binds once from unbound, unbinds once from the binding read, and a removed operator frees its identity', async () => {
    const s = await open();
    await s.add({ name: 'fred', tenants: '*', token_sha256: sha('f1'), created_at: T });
    expect((await s.get('fred'))?.oidc).toBeNull();
    expect(await s.bind('fred', ISS, 'fred-sub', T + 2)).toBe(true);
    expect(await s.bind('fred', ISS, 'other-sub', T + 3)).toBe(false);
    expect((await s.get('fred'))?.oidc).toEqual({ issuer: ISS, subject: 'fred-sub', bound_at: T + 2 });
    expect(await s.unbind('fred', ISS, 'other-sub')).toBe(false);
    expect(await s.unbind('fred', ISS, 'fred-sub')).toBe(true);
    expect(await s.unbind('fred', ISS, 'fred-sub')).toBe(false);
    expect(await s.bySubject(ISS, 'fred-sub')).toBeUndefined();
    expect(await s.bind('fred', ISS, 'fred-sub', T + 4)).toBe(true);
    expect(await s.remove('fred', T + 5)).toBe(true);
    expect(await s.bySubject(ISS, 'fred-sub')).toBeUndefined();
    expect(await s.bind('fred', ISS, 'x-sub', T + 6)).toBe(false);
    // The removed operator keeps its binding as history; the identity binds another operator.
    expect((await s.get('fred'))?.oidc?.subject).toBe('fred-sub');
    await s.add({ name: 'gus', tenants: '*', token_sha256: sha('g1'), created_at: T });
    expect(await s.bind('gus', ISS, 'fred-sub', T + 7)).toBe(true);
    expect((await s.bySubject(ISS, 'fred-sub'))?.name).toBe('gus');
  });
});

describe('operator rows are parsed as untrusted input', () => {
  const good = {
    name: 'alice',
    tenants: '["acme"]',
    token_sha256: 'a'.repeat(64),
    status: 'active',
    created_at: '1700000000000',
    rotated_at: null,
    removed_at: null,
  };
  it('a well-formed row parses; bigint text is read as a number', () => {
    expect(parseOperatorRow(good)).toMatchObject({
      name: 'alice',
      tenants: ['acme'],
      created_at: 1_700_000_000_000,
      oidc: null,
    });
    expect(
      parseOperatorRow({ ...good, oidc_issuer: 'https://i', oidc_subject: 's', oidc_bound_at: 5 }).oidc,
    ).toEqual({ issuer: 'https://i', subject: 's', bound_at: 5 });
  });
  it.each([
    ['status', { status: 'admin' }],
    ['tenants', { tenants: '[]' }],
    ['tenants', { tenants: 'acme' }],
    ['token_sha256', { token_sha256: 'x' }],
    ['name', { name: 'a:b' }],
    ['oidc_subject', { oidc_issuer: 'https://idp.example', oidc_subject: null, oidc_bound_at: '1' }],
    ['oidc_issuer', { oidc_issuer: null, oidc_subject: 'sub', oidc_bound_at: '1' }],
    ['oidc_bound_at', { oidc_issuer: 'https://idp.example', oidc_subject: 'sub', oidc_bound_at: null }],
    ['oidc_subject', { oidc_issuer: 'https://idp.example', oidc_subject: 'a b', oidc_bound_at: '1' }],
  ])('a malformed %s rejects', (_c, bad) => {
    expect(() => parseOperatorRow({ ...good, ...bad })).toThrow(TypeError);
  });
});
