/**
 * The SQLite breaker store (OE-INV-021): the BreakerStore contract, two connections on one file
 * as two processes sharing it, and rows read back as untrusted input.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createSqliteBreakerStore, type SqliteBreakerStore } from '../../src/storage/index.js';
import { runBreakerStoreContract } from '../control-plane/breaker-store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-breakers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const nextPath = (): string => join(dir, `breakers-${++seq}.db`);

let opened: SqliteBreakerStore[] = [];
afterEach(() => {
  for (const s of opened) s.close();
  opened = [];
});
function open(path: string): SqliteBreakerStore {
  const s = createSqliteBreakerStore(path);
  opened.push(s);
  return s;
}

runBreakerStoreContract(
  'sqlite',
  () => Promise.resolve(open(nextPath())),
  () => {
    const path = nextPath();
    return Promise.resolve([open(path), open(path)] as const);
  },
);

const input = (now: number, principal = 'p') =>
  ({ principal, tenant: 't', call: 'echo\u0000h', now, windowMs: 1000 }) as const;

describe('SQLite breaker store (OE-INV-021)', () => {
  it('keeps counts, open breakers and spend across a reopen of the file', async () => {
    const path = nextPath();
    const a = createSqliteBreakerStore(path);
    await a.admit(input(0));
    await a.trip('q', 'session_calls', Number.POSITIVE_INFINITY);
    expect(await a.reserveSpend('t', 3, 70, 100)).toBe(true);
    a.close();
    const b = open(path);
    expect(await b.admit(input(1))).toEqual({ open: null, total: 2, inSession: 2, inTenant: 2, sameCall: 2 });
    expect(await b.openBreaker('q', 10 ** 13)).toBe('session_calls');
    expect(await b.reserveSpend('t', 3, 31, 100)).toBe(false);
  });

  it('prunes the hits that left the window of the keys it touches, and sweeps stale keys a few at a time', async () => {
    const path = nextPath();
    const s = open(path);
    const raw = new Database(path, { readonly: true });
    const rows = () => raw.prepare('SELECT count(*) AS n FROM breaker_hits').get();
    try {
      for (let i = 0; i < 5; i++) await s.admit({ ...input(i), call: `c${i}` });
      await s.admit(input(1500));
      expect(rows()).toEqual({ n: 3 });
      for (let i = 1; i < 5; i++) await s.admit({ ...input(1500 + i), call: `c${i}` });
      expect(rows()).toEqual({ n: 15 });
      await s.admit({ ...input(10_000, 'q'), tenant: 'u' });
      expect(rows()).toEqual({ n: 10 });
      await s.admit({ ...input(10_001, 'q'), tenant: 'u' });
      expect(rows()).toEqual({ n: 6 });
    } finally {
      raw.close();
    }
  });

  it('a malformed row or a closed store rejects, never answers a count or true (fail closed)', async () => {
    const path = nextPath();
    const s = open(path);
    await s.trip('p', 'loop', 500);
    await s.reserveSpend('t', 1, 10, 100);
    const raw = new Database(path);
    try {
      raw.prepare("UPDATE breaker_open SET breaker = 'bogus'").run();
      raw.prepare('UPDATE breaker_spend SET cents = 500').run();
    } finally {
      raw.close();
    }
    await expect(s.openBreaker('p', 0)).rejects.toBeInstanceOf(TypeError);
    await expect(s.admit(input(0))).rejects.toBeInstanceOf(TypeError);
    // Spend already past the limit (however it got there) grants nothing more.
    expect(await s.reserveSpend('t', 1, 1, 100)).toBe(false);
    const closed = createSqliteBreakerStore(nextPath());
    closed.close();
    await expect(closed.admit(input(0))).rejects.toBeInstanceOf(Error);
    await expect(closed.reserveSpend('t', 1, 1, 100)).rejects.toBeInstanceOf(Error);
  });

  it('refuses values it cannot store exactly (lone surrogates, non-integers, unknown breakers)', async () => {
    const s = open(nextPath());
    await expect(s.admit(input(0, 'p\ud800'))).rejects.toBeInstanceOf(TypeError);
    await expect(s.admit(input(0.5))).rejects.toBeInstanceOf(TypeError);
    await expect(s.reserveSpend('t', 1, -1, 100)).rejects.toBeInstanceOf(TypeError);
    await expect(s.trip('p', 'nope' as 'loop', 1)).rejects.toBeInstanceOf(TypeError);
    await expect(s.trip('p', 'loop', Number.NaN)).rejects.toBeInstanceOf(TypeError);
    expect(await s.openBreaker('p', 0)).toBeNull();
  });
});
