/**
 * The decision claims' contract (src/control-plane/decision-claims.ts; FC-INV-3, FC-INV-6: one
 * request, one envelope across Control Plane processes), run against every implementation:
 * SQLite as a file of its own (two connections to it), SQLite on the deployment's shared
 * connection in `ledger.db`, and PostgreSQL (two pools on one migrated schema, as two Control
 * Plane processes). A request is claimed once, also by racing claimants on both connections;
 * the claim names tenant, identity and request id; only its holder gives it back; every failure
 * rejects (the Control Plane then denies).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteCommitUnit } from '../../src/kernel/index.js';
import { createSqliteDecisionClaims } from '../../src/control-plane/index.js';
import type { DecisionClaimStore } from '../../src/control-plane/index.js';
import { createPostgresDecisionClaims, openPostgresPool } from '../../src/storage/postgres/index.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

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

/** Two stores over one storage (two connections where the backend has them), and a way to break it. */
interface Pair {
  readonly one: DecisionClaimStore;
  readonly other: DecisionClaimStore;
  readonly breakStorage: () => Promise<void>;
}

const openers: Record<string, () => Pair | Promise<Pair>> = {
  'SQLite, own file': () => {
    const path = join(dir(), 'claims.db');
    const one = createSqliteDecisionClaims(path);
    const other = createSqliteDecisionClaims(path);
    cleanups.unshift(
      () => one.close(),
      () => other.close(),
    );
    return { one, other, breakStorage: () => one.close() };
  },
  'SQLite, shared connection': () => {
    const path = join(dir(), 'ledger.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    const unit = createSqliteCommitUnit(db);
    const one = createSqliteDecisionClaims(path, { unit });
    cleanups.unshift(() => unit.close());
    return { one, other: one, breakStorage: () => one.close() };
  },
  PostgreSQL: async () => {
    const db = await openMigratedPool(pg.url);
    const second = openPostgresPool({ url: pg.url, schema: db.schema, max: 4 });
    cleanups.unshift(
      () => db.close(),
      () => second.close(),
    );
    return {
      one: createPostgresDecisionClaims(db),
      other: createPostgresDecisionClaims(second),
      breakStorage: () => db.close(),
    };
  },
};

const KEY = { tenant: 'acme', identity: 'demo-agent', request_id: 'req-1' };
const T = Date.parse('2026-12-05T10:00:00Z');

describe.each(Object.keys(openers))('decision claims: %s (FC-INV-3, FC-INV-6)', (name) => {
  const open = async (): Promise<Pair> => openers[name]!();

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
});
