/**
 * The console's sign-in guard (docs/console.md "Sign-in attempts"; L7 Identity & Signing): the
 * failure limit holds for attempts sent at once, through one gate or several on the same storage
 * (SQLite, PostgreSQL), a success takes back what it was counted as, a window ends, and an IPv6
 * client is counted by its /64.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteConsoleStore } from '../../src/console/index.js';
import type { ConsoleStore } from '../../src/console/index.js';
import { addressKey, createSignInGuard } from '../../src/console/sign-in-guard.js';
import type { SignInAttempt } from '../../src/console/sign-in-guard.js';
import { deny, isDeny } from '../../src/kernel/index.js';
import { createPostgresConsoleStore, openPostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const LIMITS = { failures: 3, window_ms: 60_000 };

const dir = mkdtempSync(join(tmpdir(), 'fc-sign-in-'));
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  rmSync(dir, { recursive: true, force: true });
});
let files = 0;
const sqliteStore = (path = join(dir, `console-${++files}.db`)): ConsoleStore => {
  const s = createSqliteConsoleStore(path);
  closers.push(() => s.close());
  return s;
};

const refused = () => Promise.resolve(deny('ERR_UNAUTHENTICATED', 'wrong code'));
const codeOf = (r: Awaited<ReturnType<ReturnType<typeof createSignInGuard>>>): string | number =>
  isDeny(r) ? r.code : r.status;

function guard(store: ConsoleStore = sqliteStore(), now: () => number = () => 1_000) {
  const records: SignInAttempt[] = [];
  const g = createSignInGuard({
    record: (a) => {
      records.push(a);
      return Promise.resolve(true);
    },
    endSession: () => Promise.resolve(),
    counters: store,
    now,
    limits: LIMITS,
  });
  return { g, records };
}

const pg = useTestDatabase('fc_sign_in');

/** Two gates' views of one storage: two connections to one SQLite file, two pools on one database. */
const shared: Record<string, () => Promise<[ConsoleStore, ConsoleStore]>> = {
  SQLite: () => {
    const path = join(dir, `shared-${++files}.db`);
    return Promise.resolve([sqliteStore(path), sqliteStore(path)]);
  },
  PostgreSQL: async () => {
    // A fresh schema per test; the second gate's pool opens the same one.
    const a = await openMigratedPool(pg.url);
    const b = openPostgresPool({ url: pg.url, schema: a.schema, max: 4 });
    closers.push(
      () => a.close(),
      () => b.close(),
    );
    return [createPostgresConsoleStore(a), createPostgresConsoleStore(b)];
  },
};

describe.each(Object.entries(shared))('sign-in limits across gates (%s)', (_name, open) => {
  it('failures through two gates count against one limit, and sent at once only the limit runs', async () => {
    const [s1, s2] = await open();
    const [a, b] = [guard(s1), guard(s2)];
    let ran = 0;
    const who = { kind: 'approver' as const, method: 'code', name: 'mallory', address: '192.0.2.66' };
    const attempts = Array.from({ length: 10 }, (_, i) =>
      (i % 2 === 0 ? a : b).g(who, () => {
        ran += 1;
        return refused();
      }),
    );
    const codes = (await Promise.all(attempts)).map(codeOf);
    expect(ran).toBe(LIMITS.failures);
    expect(codes.filter((c) => c === 'ERR_SIGN_IN_RATE_LIMITED')).toHaveLength(10 - LIMITS.failures);
    // The limit is ledgered once, by whichever gate saw it first.
    const told = [...a.records, ...b.records].filter((r) => r.outcome === 'rate_limited');
    expect(told).toHaveLength(1);
  });

  it('a success through one gate takes back its count for the other; the window ends for both', async () => {
    const [s1, s2] = await open();
    let at = 5_000;
    const [a, b] = [guard(s1, () => at), guard(s2, () => at)];
    const who = { kind: 'operator' as const, method: 'token', address: '192.0.2.77' };
    const ok = () => Promise.resolve({ status: 200, body: { name: 'op' } });
    expect(codeOf(await a.g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await b.g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await a.g(who, ok))).toBe(200);
    expect(codeOf(await b.g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await a.g(who, ok))).toBe('ERR_SIGN_IN_RATE_LIMITED');
    at += LIMITS.window_ms;
    expect(codeOf(await b.g(who, ok))).toBe(200);
  });
});

describe('sign-in guard', () => {
  it('attempts sent at once cannot all pass the check: only the limit runs, the rest are refused', async () => {
    const { g } = guard();
    let ran = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const attempts = Array.from({ length: 10 }, () =>
      g({ kind: 'approver', method: 'code', name: 'alice', address: '192.0.2.7' }, async () => {
        ran += 1;
        await gate;
        return deny('ERR_UNAUTHENTICATED', 'wrong code');
      }),
    );
    release();
    const codes = (await Promise.all(attempts)).map(codeOf);
    expect(ran).toBe(LIMITS.failures);
    expect(codes.filter((c) => c === 'ERR_SIGN_IN_RATE_LIMITED')).toHaveLength(10 - LIMITS.failures);
  });

  it('a successful attempt is not counted as a failure', async () => {
    const { g } = guard();
    const who = { kind: 'approver' as const, method: 'code', name: 'bob', address: '192.0.2.8' };
    const ok = () => Promise.resolve({ status: 200, body: { name: 'bob' } });
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, ok))).toBe(200);
    // The third failure is still tried; the fourth attempt is over the limit.
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, ok))).toBe('ERR_SIGN_IN_RATE_LIMITED');
  });

  it('an IPv6 client is counted by its /64: other addresses of it share the limit, another /64 does not', async () => {
    const { g, records } = guard();
    const from = (address: string) => g({ kind: 'operator', method: 'token', address }, refused);
    for (const a of ['2001:db8:1:2::a', '2001:db8:1:2:0:0:0:b', '2001:DB8:1:2::c'])
      expect(codeOf(await from(a))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await from('2001:db8:1:2:ffff::d'))).toBe('ERR_SIGN_IN_RATE_LIMITED');
    expect(codeOf(await from('2001:db8:1:3::1'))).toBe('ERR_UNAUTHENTICATED');
    // Recorded with the address as given.
    expect(records.map((r) => r.address)).toContain('2001:DB8:1:2::c');
  });

  it('address keys', () => {
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('2001:0db8:0000:0001:1:2:3:4')).toBe('2001:db8:0:1::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('not an address')).toBe('not an address');
  });
});

describe('operator sessions across gates (PostgreSQL)', () => {
  it('the bound on live operator sessions holds for gates creating sessions at once', async () => {
    const a = await openMigratedPool(pg.url);
    const b = openPostgresPool({ url: pg.url, schema: a.schema, max: 4 });
    closers.push(
      () => a.close(),
      () => b.close(),
    );
    const stores = [createPostgresConsoleStore(a), createPostgresConsoleStore(b)];
    const none = { idleBefore: -1, createdBefore: -1 };
    const session = (id: string) => ({
      id_sha256: id.padStart(64, '0'),
      name: 'olga',
      method: 'token' as const,
      credential: `token:${'f'.repeat(64)}`,
      created_at: 1,
      last_seen: 1,
    });
    for (let trial = 0; trial < 40; trial++) {
      await a.pool.query('DELETE FROM console_operator_sessions');
      const made = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          stores[i % 2]!.createOperatorSession(session(`${trial}x${i}`), none, 2),
        ),
      );
      expect(made.filter(Boolean)).toHaveLength(2);
      const [row] = (await a.pool.query<{ n: string }>('SELECT count(*) AS n FROM console_operator_sessions'))
        .rows;
      expect(Number(row?.n)).toBe(2);
    }
  });
});
