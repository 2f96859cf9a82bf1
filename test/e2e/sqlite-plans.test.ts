/**
 * The plans of a governed call's statements on the embedded default's SQLite file (docs/storage.md
 * "One file, shared commits"; issue "the governed call near its floor"). SQLite plans a statement
 * when it is prepared, from the schema alone (no store runs `ANALYZE`), so a statement that reads a
 * growing table whole does so from the first call and makes every call slower as the ledger, the
 * nonces and the breakers' buckets grow. Here one embedded gate serves an allowed call and an
 * escalated one (asked, approved by two approvers, retried and run) while every statement run on
 * any of its connections is recorded with its parameters; each is then planned again
 * (`EXPLAIN QUERY PLAN`) on its database file: none may scan a table that grows with calls, or
 * build an automatic index (made from the whole table at every run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir } from '../../src/embedded/index.js';
import { allowedAndApprovedCalls } from './postgres-support.js';

/** A statement as run: its database file, its text and its parameters. */
interface RunStatement {
  readonly file: string;
  readonly source: string;
  readonly args: readonly unknown[];
}

let work: string;
let recording: RunStatement[] | undefined;
let restore: (() => void) | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-sqlite-plans-'));
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<
    'run' | 'get' | 'all' | 'iterate',
    (...args: unknown[]) => unknown
  >;
  probe.close();
  const originals = { run: proto.run, get: proto.get, all: proto.all, iterate: proto.iterate };
  for (const name of ['run', 'get', 'all', 'iterate'] as const) {
    const original = originals[name];
    proto[name] = function (this: { source: string; database: { name: string } }, ...args: unknown[]) {
      recording?.push({ file: this.database.name, source: this.source, args });
      return original.apply(this, args);
    };
  }
  restore = () => Object.assign(proto, originals);
});
afterAll(() => {
  restore?.();
  rmSync(work, { recursive: true, force: true });
});

/** Tables of one row. */
const SMALL = new Set([
  'store_meta',
  'writer_epoch',
  'readiness_probe',
  'failclosed_schema',
  'failclosed_merged',
  'envelope_nonce_horizon',
]);

describe('SQLite plans of a governed call (docs/storage.md)', () => {
  it('no statement of an allowed or an approved call scans a growing table', async () => {
    const dir = join(work, 'data');
    await initDataDir(dir);
    const recorded: RunStatement[] = [];
    await allowedAndApprovedCalls(dir, { port: 0 }, (on) => {
      recording = on ? recorded : undefined;
    });

    const unique = new Map<string, RunStatement>();
    for (const s of recorded) unique.set(`${s.file}\u0000${s.source}`, s);
    const found: string[] = [];
    const opened = new Map<string, Database.Database>();
    try {
      for (const { file, source, args } of unique.values()) {
        let db = opened.get(file);
        if (db === undefined) {
          db = new Database(file, { readonly: true, fileMustExist: true });
          opened.set(file, db);
        }
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(...args) as { detail: string }[]).map(
          (r) => r.detail,
        );
        // Names the plan makes itself (a CTE, a subquery), and the tables behind the source's aliases.
        const made = new Set(plan.map((d) => /^(?:CO-ROUTINE|MATERIALIZE) (\w+)/.exec(d)?.[1]));
        const aliases = new Map<string, string>();
        for (const m of source.matchAll(/\b(?:FROM|JOIN)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?/gi))
          if (m[1] !== undefined && m[2] !== undefined) aliases.set(m[2], m[1]);
        for (const detail of plan) {
          // A table read whole ("SCAN t", "SCAN t USING INDEX i"), not a constant row, a CTE, a
          // subquery or a table-valued function.
          // An automatic index is built from the whole table, at every run.
          if (detail.includes('AUTOMATIC')) {
            found.push(`${detail}: ${source.replace(/\s+/g, ' ').trim().slice(0, 200)}`);
            continue;
          }
          const scanned = /^SCAN (\w+)/.exec(detail)?.[1];
          if (scanned === undefined || scanned === 'CONSTANT' || made.has(scanned)) continue;
          if (detail.includes('VIRTUAL TABLE')) continue;
          const table = aliases.get(scanned) ?? scanned;
          if (!SMALL.has(table)) found.push(`${detail}: ${source.replace(/\s+/g, ' ').trim().slice(0, 200)}`);
        }
      }
    } finally {
      for (const db of opened.values()) db.close();
    }
    expect(unique.size).toBeGreaterThanOrEqual(10);
    expect(found).toEqual([]);
  }, 60_000);
});
