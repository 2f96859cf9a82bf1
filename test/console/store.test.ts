/**
 * The console store's contract (src/console/store.ts), run against every implementation: SQLite
 * on the deployment's shared connection in `ledger.db`, SQLite as a file of its own, and
 * PostgreSQL (a migrated schema, as every gate on the database shares it). Each state change
 * succeeds exactly once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteCommitUnit } from '../../src/kernel/index.js';
import { createSqliteConsoleStore } from '../../src/console/index.js';
import type { ConsoleStore, InvitedPerson } from '../../src/console/index.js';
import { createPostgresConsoleStore } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_console');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-console-store-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const openers: Record<string, () => ConsoleStore | Promise<ConsoleStore>> = {
  'SQLite, own file': () => {
    const s = createSqliteConsoleStore(join(dir(), 'console.db'));
    cleanups.unshift(() => void s.close());
    return s;
  },
  PostgreSQL: async () => {
    const db = await openMigratedPool(pg.url);
    cleanups.unshift(() => void db.close());
    return createPostgresConsoleStore(db);
  },
  'SQLite, shared connection': () => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const s = createSqliteConsoleStore(path, { unit });
    cleanups.unshift(() => unit.close());
    return s;
  },
};

const person = (name: string, at: number): InvitedPerson => ({
  name,
  roles: ['treasury'],
  tenants: ['acme'],
  code_sha256: 'c'.repeat(64),
  invited_at: at,
  code_expires_at: at + 1000,
  public_jwk: null,
  kid: null,
  enrolled_at: null,
  confirmed_at: null,
  oidc_issuer: null,
  oidc_subject: null,
});

describe.each(Object.entries(openers))('console store (%s)', (_name, open) => {
  it('uses a code once and only before it expires', async () => {
    const s = await open();
    expect(await s.putInvitation(person('ann', 0))).toBe(true);
    expect(await s.useCode('ann', 'd'.repeat(64), 10)).toBe(false);
    expect(await s.useCode('ann', 'c'.repeat(64), 1000)).toBe(false);
    expect(await s.useCode('ann', 'c'.repeat(64), 10)).toBe(true);
    expect(await s.useCode('ann', 'c'.repeat(64), 10)).toBe(false);
    expect((await s.person('ann'))?.code_sha256).toBeNull();
  });

  it('enrols once, confirms once the enrolled kid only, and a confirmed person is never re-invited', async () => {
    const s = await open();
    await s.putInvitation(person('bea', 0));
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: 'x'.repeat(43) };
    expect(await s.enrol('bea', jwk, 'k1', 5)).toBe(true);
    expect(await s.enrol('bea', jwk, 'k2', 6)).toBe(false);
    expect(await s.confirm('bea', 'k2', 7)).toBe(false);
    expect(await s.confirm('bea', 'k1', 7)).toBe(true);
    expect(await s.confirm('bea', 'k1', 8)).toBe(false);
    expect(await s.putInvitation(person('bea', 9))).toBe(false);
    const p = await s.person('bea');
    expect([p?.kid, p?.enrolled_at, p?.confirmed_at, p?.public_jwk]).toEqual(['k1', 5, 7, jwk]);
    expect(await s.person('nobody')).toBeUndefined();
  });

  it('keeps sessions until deleted or stale, and each challenge id is used once', async () => {
    const s = await open();
    const session = {
      id_sha256: 'a'.repeat(64),
      name: 'cid',
      method: 'key' as const,
      created_at: 0,
      last_seen: 0,
    };
    await s.createSession(session, -1);
    expect(await s.session('a'.repeat(64))).toEqual(session);
    await s.touchSession('a'.repeat(64), 50);
    expect((await s.session('a'.repeat(64)))?.last_seen).toBe(50);
    // Another sign-in drops the sessions unused since before its stale mark.
    await s.createSession({ ...session, id_sha256: 'b'.repeat(64), created_at: 100, last_seen: 100 }, 60);
    expect(await s.session('a'.repeat(64))).toBeUndefined();
    await s.deleteSession('b'.repeat(64));
    expect(await s.session('b'.repeat(64))).toBeUndefined();
    // Every session of one name ends at once (a new invitation, a confirmation); others stay.
    await s.createSession({ ...session, id_sha256: 'd'.repeat(64), created_at: 100, last_seen: 100 }, 60);
    await s.createSession({ ...session, id_sha256: 'e'.repeat(64), created_at: 100, last_seen: 100 }, 60);
    await s.createSession(
      { ...session, id_sha256: 'f'.repeat(64), name: 'dee', created_at: 100, last_seen: 100 },
      60,
    );
    await s.deleteSessionsOf('cid');
    expect(await s.session('d'.repeat(64))).toBeUndefined();
    expect(await s.session('e'.repeat(64))).toBeUndefined();
    expect((await s.session('f'.repeat(64)))?.name).toBe('dee');
    expect(await s.useChallenge('c1', 100, 0)).toBe(true);
    expect(await s.useChallenge('c1', 100, 0)).toBe(false);
    // Expired used ids are dropped; an expired challenge is refused before it gets here.
    expect(await s.useChallenge('c2', 300, 200)).toBe(true);
    expect(await s.useChallenge('c1', 400, 200)).toBe(true);
  });

  it('keeps an invitation’s OIDC binding, and an OIDC step-up replaces its session exactly once', async () => {
    const s = await open();
    const bound = { ...person('eve', 0), oidc_issuer: 'https://idp.example', oidc_subject: 'sub-1' };
    await s.putInvitation(bound);
    const p = await s.person('eve');
    expect([p?.oidc_issuer, p?.oidc_subject]).toEqual(['https://idp.example', 'sub-1']);
    // Found by its binding too (an approval token of that identity is eve's), by nothing else.
    expect((await s.personBoundTo('https://idp.example', 'sub-1'))?.name).toBe('eve');
    expect(await s.personBoundTo('https://idp.example', 'sub-2')).toBeUndefined();
    expect(await s.personBoundTo('https://other.example', 'sub-1')).toBeUndefined();
    // A new invitation without a binding clears it.
    await s.putInvitation(person('eve', 1));
    expect((await s.person('eve'))?.oidc_subject).toBeNull();
    expect(await s.personBoundTo('https://idp.example', 'sub-1')).toBeUndefined();
    const code = {
      id_sha256: '1'.repeat(64),
      name: 'eve',
      method: 'code' as const,
      created_at: 5,
      last_seen: 5,
    };
    await s.createSession(code, -1);
    const up = { ...code, id_sha256: '2'.repeat(64), method: 'code+oidc' as const, last_seen: 9 };
    expect(await s.replaceSession(code.id_sha256, up)).toBe(true);
    expect(await s.session(code.id_sha256)).toBeUndefined();
    expect(await s.session(up.id_sha256)).toEqual(up);
    // The old session is gone: a second step-up from it makes nothing.
    expect(await s.replaceSession(code.id_sha256, { ...up, id_sha256: '3'.repeat(64) })).toBe(false);
    expect(await s.session('3'.repeat(64))).toBeUndefined();
  });

  it('keeps operator sessions until deleted, idle, too old or too many', async () => {
    const s = await open();
    const op = (id: string, at: number) => ({
      id_sha256: id.repeat(64),
      name: 'olga',
      method: 'token' as const,
      credential: `token:${'f'.repeat(64)}`,
      created_at: at,
      last_seen: at,
    });
    const none = { idleBefore: -1, createdBefore: -1 };
    expect(await s.createOperatorSession(op('a', 10), none, 2)).toBe(true);
    expect(await s.createOperatorSession(op('b', 20), none, 2)).toBe(true);
    // At the bound: refused, nothing stored.
    expect(await s.createOperatorSession(op('c', 30), none, 2)).toBe(false);
    expect(await s.operatorSession('c'.repeat(64))).toBeUndefined();
    expect(await s.operatorSession('a'.repeat(64))).toEqual(op('a', 10));
    await s.touchOperatorSession('a'.repeat(64), 40);
    expect((await s.operatorSession('a'.repeat(64)))?.last_seen).toBe(40);
    // `b` idle since 20: dropped when the next session is made, which then fits.
    expect(await s.createOperatorSession(op('c', 50), { idleBefore: 25, createdBefore: -1 }, 2)).toBe(true);
    expect(await s.operatorSession('b'.repeat(64))).toBeUndefined();
    // `a` created at 10: past its absolute lifetime whatever its use.
    expect(await s.createOperatorSession(op('d', 60), { idleBefore: -1, createdBefore: 11 }, 2)).toBe(true);
    expect(await s.operatorSession('a'.repeat(64))).toBeUndefined();
    await s.deleteOperatorSession('c'.repeat(64));
    expect(await s.operatorSession('c'.repeat(64))).toBeUndefined();
    expect(await s.operatorSession('d'.repeat(64))).toEqual(op('d', 60));
  });

  it('counts failed sign-ins per key within a window, and refuses without counting past the limit', async () => {
    const s = await open();
    const keys = ['name:ann', 'addr:192.0.2.1'];
    for (let i = 0; i < 2; i++) expect(await s.admitSignIn(keys, 100, 2, 1000)).toEqual({ admitted: true });
    // Over for the name: told once, and the other key is not counted either.
    expect(await s.admitSignIn(['name:ann', 'addr:192.0.2.2'], 200, 2, 1000)).toEqual({
      admitted: false,
      tell: true,
    });
    expect(await s.admitSignIn(['name:ann'], 300, 2, 1000)).toEqual({ admitted: false, tell: false });
    expect(await s.admitSignIn(['addr:192.0.2.2'], 300, 2, 1000)).toEqual({ admitted: true });
    // A success takes one back; a key never counted is untouched.
    await s.forgiveSignIn(['name:ann', 'name:nobody'], 400, 1000);
    expect(await s.admitSignIn(['name:ann'], 500, 2, 1000)).toEqual({ admitted: true });
    // Over again in the same window: already told.
    expect(await s.admitSignIn(['name:ann'], 600, 2, 1000)).toEqual({ admitted: false, tell: false });
    // The window started at the first failure (100): over at 1100, counted anew.
    expect(await s.admitSignIn(['name:ann'], 1100, 2, 1000)).toEqual({ admitted: true });
    // A clock that went back (by less than a window) still counts it.
    expect(await s.admitSignIn(['name:ann'], 1099, 2, 1000)).toEqual({ admitted: true });
    expect(await s.admitSignIn(['name:ann'], 1099, 2, 1000)).toEqual({ admitted: false, tell: true });
  });

  it('a gate whose clock is behind another’s does not drop the other’s counters (limit across replicas)', async () => {
    const s = await open();
    // Gate A (clock at 5000) counts the only failure allowed; gate B, 50 ms behind, must see it.
    expect(await s.admitSignIn(['name:bea'], 5000, 1, 1000)).toEqual({ admitted: true });
    expect(await s.admitSignIn(['name:bea'], 4950, 1, 1000)).toEqual({ admitted: false, tell: true });
    expect(await s.admitSignIn(['name:bea'], 5010, 1, 1000)).toEqual({ admitted: false, tell: false });
    // A counter more than a window in a gate's future (a clock stepped far back) is dropped.
    expect(await s.admitSignIn(['name:bea'], 3999, 1, 1000)).toEqual({ admitted: true });
  });
});
