/**
 * The statements a governed call sends to PostgreSQL, counted (issue "the governed call near its
 * floor"; GEI decision before execution): one gate on its own schema serves sequential `echo`
 * calls while every statement of the `pg` driver is recorded. An allowed call's `decision` and
 * `envelope.issued` go in one append statement (`appendThen`, docs/storage.md), so a call makes
 * 11 statements: the client's key, the request claim, `gateway.accepted`, the governance read and
 * the approval lookup (together), the breaker admission, the decision with its issuance, the
 * Execution Layer's read of them, the nonce, the receipt and `gateway.completed`. A count, not a
 * speed: a composition that silently fell back to two appends (a port wrapper without
 * `appendThen`) fails here. Once warm, a call sends no statement text to be parsed: each
 * connection prepared its statements once (`prepared.ts`; before, the server parsed and planned
 * all eleven at every call, most of its CPU). `npm run bench:pg-rounds` prints the same counts,
 * the statements and the server's CPU per call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir, startEmbedded } from '../../src/embedded/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { clientOf, watchStatements } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_rounds');
let work: string;
/** The statement texts sent while a call is recorded; undefined while none is. */
let recording: string[] | undefined;
/** The Parse messages sent while a call is recorded (a statement text the server must parse). */
let parsing: { n: number } | undefined;
let restore: (() => void) | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-rounds-'));
  const unwatch = watchStatements((sent) => recording?.push(sent.text.replace(/\s+/g, ' ').trim()));
  const conn = pg.Connection.prototype as unknown as { parse: (...args: unknown[]) => unknown };
  const parse = conn.parse;
  conn.parse = function (this: unknown, ...args: unknown[]): unknown {
    if (parsing !== undefined) parsing.n += 1;
    return parse.apply(this, args);
  };
  restore = () => {
    unwatch();
    conn.parse = parse;
  };
});
afterAll(() => {
  restore?.();
  rmSync(work, { recursive: true, force: true });
});

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;

describe('the statements of a governed call on PostgreSQL (SPEC §2, docs/storage.md)', () => {
  it('GEI: an allowed call sends 11 statements, its decision and envelope.issued in one append', async () => {
    const dir = join(work, 'data');
    await initDataDir(dir, { backend: `${db.url}?schema=${nextSchema()}` });
    const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
    try {
      const client = clientOf(dir, instance);
      for (let i = 0; i < 3; i += 1) await client.call('echo', { message: 'warm-up' });
      const counts: number[] = [];
      const appends: number[] = [];
      const parses: number[] = [];
      for (let i = 0; i < 9; i += 1) {
        const log: string[] = [];
        const parsed = { n: 0 };
        recording = log;
        parsing = parsed;
        const r = await client.call('echo', { message: `call ${i}` });
        recording = undefined;
        parsing = undefined;
        expect(r.outcome).toBe('executed');
        counts.push(log.length);
        parses.push(parsed.n);
        // The ledger's one-statement appends and locked appends (each takes the append lock).
        appends.push(
          log.filter((t) => t.includes('pg_try_advisory_xact_lock') || t.includes('pg_advisory_xact_lock'))
            .length,
        );
      }
      // Medians: a background round of the gate (following, pruning) may fall inside one call.
      expect(median(counts)).toBe(11);
      // gateway.accepted, the decision with its issuance, the receipt, gateway.completed.
      expect(median(appends)).toBe(4);
      // Every statement prepared by the warm-up calls: none parsed again.
      expect(median(parses)).toBe(0);
    } finally {
      await instance.close();
    }
  });
});
