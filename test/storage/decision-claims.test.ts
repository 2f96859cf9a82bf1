/**
 * The decision claims' contract (src/control-plane/decision-claims.ts; FC-INV-3, FC-INV-6: one
 * request, one envelope across Control Plane processes), run against every implementation:
 * SQLite as a file of its own (two connections to it), SQLite on the deployment's shared
 * connection in `ledger.db`, and PostgreSQL (two pools on one migrated schema, as two Control
 * Plane processes). A request is claimed once, also by racing claimants on both connections;
 * the claim names tenant, identity and request id; only its holder gives it back; every failure
 * rejects (the Control Plane then denies). Claims are pruned (FC-INV-3): old claims go, recent ones
 * and each client's newest stay, a clock set back prunes no claim it took, the table stays bounded
 * under many claims, a prune that fails changes no claim's answer, and a store of the version
 * before pruning is upgraded in place with its claims.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSqliteCommitUnit } from '../../src/kernel/index.js';
import { createSqliteDecisionClaims } from '../../src/control-plane/index.js';
import type { DecisionClaimRetention, DecisionClaimStore } from '../../src/control-plane/index.js';
import { DECISION_CLAIMS_MIGRATIONS } from '../../src/control-plane/decision-claims.js';
import { migrateSchema } from '../../src/kernel/index.js';
import {
  MIGRATIONS,
  createPostgresDecisionClaims,
  migrate,
  openPostgresPool,
} from '../../src/storage/postgres/index.js';
import { nextSchema, openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_decision_claims');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-decision-claims-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/**
 * Two stores over one storage (two connections where the backend has them), a way to break it,
 * the claims it holds counted by a connection of the test's own, and deletes refused (a fault
 * injected in the real database: a trigger) or allowed again.
 */
interface Pair {
  readonly one: DecisionClaimStore;
  readonly other: DecisionClaimStore;
  readonly breakStorage: () => Promise<void>;
  readonly count: () => Promise<number>;
  readonly refuseDeletes: (refuse: boolean) => Promise<void>;
}

/** The SQLite side of {@link Pair}: a connection of the test's own to the file. */
function sqliteOwn(path: string): Pick<Pair, 'count' | 'refuseDeletes'> {
  const run = <T>(fn: (db: Database.Database) => T): Promise<T> => {
    const db = new Database(path);
    try {
      db.pragma('busy_timeout = 5000');
      return Promise.resolve(fn(db));
    } finally {
      db.close();
    }
  };
  return {
    count: () =>
      run((db) => (db.prepare('SELECT count(*) AS n FROM decision_claims').get() as { n: number }).n),
    refuseDeletes: (refuse) =>
      run((db) => {
        db.exec(
          refuse
            ? `CREATE TRIGGER refuse_delete BEFORE DELETE ON decision_claims
                BEGIN SELECT RAISE(ABORT, 'delete refused by the test'); END`
            : 'DROP TRIGGER refuse_delete',
        );
      }),
  };
}

const openers: Record<string, (r?: DecisionClaimRetention) => Pair | Promise<Pair>> = {
  'SQLite, own file': (r = {}) => {
    const path = join(dir(), 'claims.db');
    const one = createSqliteDecisionClaims(path, r);
    const other = createSqliteDecisionClaims(path, r);
    cleanups.unshift(
      () => one.close(),
      () => other.close(),
    );
    return { one, other, breakStorage: () => one.close(), ...sqliteOwn(path) };
  },
  'SQLite, shared connection': (r = {}) => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const one = createSqliteDecisionClaims(path, { unit, ...r });
    cleanups.unshift(() => unit.close());
    cleanups.unshift(() => one.close());
    return {
      one,
      other: one,
      breakStorage: () => one.close(),
      // On the store's own connection: its open transaction's claims are counted too.
      count: () =>
        Promise.resolve((db.prepare('SELECT count(*) AS n FROM decision_claims').get() as { n: number }).n),
      refuseDeletes: (refuse) => {
        unit.writeNow(() =>
          db.exec(
            refuse
              ? `CREATE TRIGGER refuse_delete BEFORE DELETE ON decision_claims
                  BEGIN SELECT RAISE(ABORT, 'delete refused by the test'); END`
              : 'DROP TRIGGER refuse_delete',
          ),
        );
        return Promise.resolve();
      },
    };
  },
  PostgreSQL: async (r = {}) => {
    const db = await openMigratedPool(pg.url);
    const second = openPostgresPool({ url: pg.url, schema: db.schema, max: 4 });
    const one = createPostgresDecisionClaims(db, r);
    const other = createPostgresDecisionClaims(second, r);
    cleanups.unshift(
      () => one.close(),
      () => other.close(),
      () => db.close(),
      () => second.close(),
    );
    return {
      one,
      other,
      breakStorage: () => db.close(),
      count: async () =>
        Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM decision_claims')).rows[0]?.n),
      refuseDeletes: async (refuse) => {
        await db.pool.query(
          refuse
            ? `CREATE OR REPLACE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'delete refused by the test'; END $$;
               CREATE TRIGGER refuse_delete BEFORE DELETE ON decision_claims
                FOR EACH ROW EXECUTE FUNCTION refuse_delete()`
            : 'DROP TRIGGER refuse_delete ON decision_claims',
        );
      },
    };
  },
};

const KEY = { tenant: 'acme', identity: 'demo-agent', request_id: 'req-1' };
const T = Date.parse('2026-12-05T10:00:00Z');
const DAY = 86_400_000;
const HOUR = 3_600_000;

describe.each(Object.keys(openers))('decision claims: %s (FC-INV-3, FC-INV-6)', (name) => {
  const open = async (r?: DecisionClaimRetention): Promise<Pair> => openers[name]!(r);
  const req = (request_id: string, identity = 'demo-agent') => ({ tenant: 'acme', identity, request_id });

  it('a request is claimed once; another tenant, client or request id is another request', async () => {
    const { one, other } = await open();
    expect(await one.claim(KEY, 'h1', T)).toBe(true);
    expect(await one.claim(KEY, 'h2', T)).toBe(false);
    expect(await other.claim(KEY, 'h3', T)).toBe(false);
    expect(await other.claim({ ...KEY, tenant: 'globex' }, 'h4', T)).toBe(true);
    expect(await other.claim({ ...KEY, identity: 'ops-bot' }, 'h5', T)).toBe(true);
    expect(await other.claim({ ...KEY, request_id: 'req-2' }, 'h6', T)).toBe(true);
  });

  it('of racing claimants on both connections exactly one claims the request', async () => {
    const { one, other } = await open();
    const takes = await Promise.all(
      Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? one : other).claim(KEY, `h${i}`, T)),
    );
    expect(takes.filter((t) => t)).toHaveLength(1);
  });

  it('a store that cannot answer rejects: never a claim taken on its word', async () => {
    const { one, breakStorage } = await open();
    await breakStorage();
    await expect(one.claim(KEY, 'h1', T)).rejects.toThrow(/closed|ended|pool/i);
  });

  it("FC-INV-3: old claims go, recent ones and each client's newest stay; a pruned request is claimable again only once it is old", async () => {
    const { one, other } = await open({ retentionMs: 7 * DAY, keepPerClient: 2 });
    for (let i = 0; i < 5; i++) expect(await one.claim(req(`old-${i}`), 'h', T + i)).toBe(true);
    // Nothing is older than the retention measured against the latest claim.
    expect(await one.prune()).toBe(0);
    expect(await other.claim(req('recent', 'ops-bot'), 'h', T + 8 * DAY)).toBe(true);
    expect(await other.claim(req('day-old'), 'h', T + 7 * DAY)).toBe(true);
    // demo-agent keeps its two newest (day-old, old-4); old-0 to old-3 go; ops-bot keeps all.
    expect(await one.prune()).toBe(4);
    expect(await one.prune()).toBe(0);
    for (const [id, who] of [
      ['old-4', 'demo-agent'],
      ['day-old', 'demo-agent'],
      ['recent', 'ops-bot'],
    ] as const)
      expect(await other.claim(req(id, who), 'h2', T + 8 * DAY)).toBe(false);
    expect(await other.claim(req('old-0'), 'h2', T + 8 * DAY)).toBe(true);
  });

  it('FC-INV-3: a clock set back prunes none of the claims it takes: they are stamped as recent as the newest', async () => {
    const { one, other, count } = await open({ retentionMs: 7 * DAY, keepPerClient: 1 });
    expect(await one.claim(req('before'), 'h', T + 30 * DAY)).toBe(true);
    // The clock goes back 30 days: the requests decided now are within its tolerance of it.
    for (let i = 0; i < 4; i++) expect(await other.claim(req(`back-${i}`), 'h', T + i)).toBe(true);
    expect(await one.prune()).toBe(0);
    expect(await count()).toBe(5);
    for (let i = 0; i < 4; i++) expect(await one.claim(req(`back-${i}`), 'h2', T + i)).toBe(false);
    // Once the latest stamp is past the retention, they go (but the newest).
    expect(await one.claim(req('later', 'ops-bot'), 'h', T + 38 * DAY)).toBe(true);
    expect(await one.prune()).toBe(4);
    expect(await other.claim(req('back-3'), 'h2', T + 38 * DAY)).toBe(false);
  });

  it('FC-INV-3: under many claims the table stays bounded by itself: the background prune keeps what the retention keeps', async () => {
    const { one, count } = await open({ retentionMs: 7 * DAY, keepPerClient: 10, pruneEvery: 50 });
    // 600 claims an hour apart (25 days), two clients.
    for (let i = 0; i < 600; i++)
      expect(await one.claim(req(`r-${i}`, i % 2 === 0 ? 'a' : 'b'), 'h', T + i * HOUR)).toBe(true);
    // Pruned in the background every 50 claims: at most 7 days (169 claims) and the 50 since.
    await vi.waitFor(async () => expect(await count()).toBeLessThanOrEqual(169 + 50), { timeout: 10_000 });
    // A prune called leaves exactly the last 7 days.
    await one.prune();
    expect(await count()).toBe(169);
    expect(await one.claim(req('r-599', 'b'), 'h2', T + 600 * HOUR)).toBe(false);
    expect(await one.claim(req('r-431', 'b'), 'h2', T + 600 * HOUR)).toBe(false);
    expect(await one.claim(req('r-430', 'a'), 'h2', T + 600 * HOUR)).toBe(true);
  });

  it("FC-INV-3: a prune that fails, called or in the background, changes no claim's answer", async () => {
    const { one, other, count, refuseDeletes } = await open({
      retentionMs: 7 * DAY,
      keepPerClient: 1,
      pruneEvery: 2,
    });
    expect(await one.claim(req('old'), 'h', T)).toBe(true);
    await refuseDeletes(true);
    for (let i = 0; i < 6; i++) expect(await one.claim(req(`new-${i}`), 'h', T + 8 * DAY)).toBe(true);
    await expect(one.prune()).rejects.toThrow(/delete refused/);
    expect(await other.claim(req('old'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await other.claim(req('new-3'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await other.claim(req('new-6'), 'h2', T + 8 * DAY)).toBe(true);
    expect(await count()).toBe(8);
    // Once deletes work again, the next prune catches up.
    await refuseDeletes(false);
    await one.prune();
    expect(await count()).toBe(7);
    expect(await other.claim(req('new-0'), 'h2', T + 8 * DAY)).toBe(false);
  });
});

describe('decision claims of the version before pruning, upgraded in place (FC-INV-3)', () => {
  const rows = [
    ['acme', 'demo-agent', 'old', 'h', T],
    ['acme', 'demo-agent', 'recent', 'h', T + 8 * DAY],
  ] as const;

  it('SQLite store version 1 → 2: the claims stay claimed, and the old one can be pruned', async () => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    migrateSchema(db, 'decision_claims', DECISION_CLAIMS_MIGRATIONS.slice(0, 1));
    const insert = db.prepare('INSERT INTO decision_claims VALUES (?, ?, ?, ?, ?)');
    for (const r of rows) insert.run(...r);
    db.close();
    const store = createSqliteDecisionClaims(path, { keepPerClient: 1 });
    cleanups.unshift(() => store.close());
    expect(await store.claim(req2('old'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await store.claim(req2('recent'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await store.prune()).toBe(1);
    expect(await store.claim(req2('recent'), 'h2', T + 8 * DAY)).toBe(false);
  });

  it('PostgreSQL schema version 15 → 16: the claims stay claimed, and the old one can be pruned', async () => {
    const db = openPostgresPool({ url: pg.url, schema: nextSchema(), max: 4 });
    cleanups.unshift(() => db.close());
    await migrate(
      db,
      MIGRATIONS.filter((m) => m.version <= 15),
    );
    for (const r of rows)
      await db.pool.query('INSERT INTO decision_claims VALUES ($1, $2, $3, $4, $5)', [...r]);
    await migrate(db);
    const store = createPostgresDecisionClaims(db, { keepPerClient: 1 });
    cleanups.unshift(() => store.close());
    expect(await store.claim(req2('old'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await store.claim(req2('recent'), 'h2', T + 8 * DAY)).toBe(false);
    expect(await store.prune()).toBe(1);
    expect(await store.claim(req2('recent'), 'h2', T + 8 * DAY)).toBe(false);
  });
});

describe('the PostgreSQL migration of a large claims table', () => {
  it('schema version 16 is reached although numbering the claims takes longer than the pool’s statement deadline', async () => {
    const schema = nextSchema();
    // A deployment's pool: a request-path deadline far shorter than the table's rewrite.
    const db = openPostgresPool({ url: pg.url, schema, max: 2, statementTimeoutMs: 50 });
    const seed = openPostgresPool({ url: pg.url, schema, max: 1 });
    try {
      await migrate(
        seed,
        MIGRATIONS.filter((m) => m.version <= 15),
      );
      await seed.pool.query(
        `INSERT INTO decision_claims SELECT 'acme', 'demo-agent', 'r' || g, 'h', g FROM generate_series(1, 200000) g`,
      );
      // Before: the rewrite ran under the pool's 50 ms and was cancelled; nothing could start.
      expect(await migrate(db)).toMatchObject({
        from: 15,
        applied: MIGRATIONS.filter((m) => m.version > 15).map((m) => m.version),
      });
      const n = await seed.pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM decision_claims WHERE seq IS NOT NULL',
      );
      expect(Number(n.rows[0]?.n)).toBe(200000);
    } finally {
      await seed.close();
      await db.close();
    }
  }, 60_000);
});

function req2(request_id: string) {
  return { tenant: 'acme', identity: 'demo-agent', request_id };
}
