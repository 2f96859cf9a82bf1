/**
 * The governed call near its floor (SPEC §8 "durable writes"): on the embedded SQLite backend
 * every store is one file on one connection whose commits they share, and one governed call makes
 * at most three durable commits: its writes up to the decision (request nonce, evidence,
 * gateway.accepted, breaker admission, decision, envelope.issued), its envelope nonce, and its
 * receipt with gateway.completed. Before, each call made seven sequential commits over three
 * files. (FC-INV-3, OE-INV-015, OE-INV-017, GEI "ledger written before execution")
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';

let dir: string;
let instance: EmbeddedInstance;

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'fc-rounds-')), 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
});

afterAll(async () => {
  await instance.close();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

describe('one SQLite file, at most three durable rounds per governed call', () => {
  it('a call commits at most three times, and its records are durable when it answers', async () => {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const client = createClient({
      url: instance.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const backend = instance.core.backend;
    expect(typeof backend.commits).toBe('function');
    const commits = (): number => backend.commits?.() ?? NaN;
    // Warm: the first call may sign a checkpoint, compile, read the bundle.
    expect((await client.call('echo', { message: 'warm' }, { session: 'rounds' })).outcome).toBe('executed');
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = commits();
      const r = await client.call('echo', { message: `round ${i}` }, { session: 'rounds' });
      expect(r.outcome).toBe('executed');
      counts.push(commits() - before);
      // Durable when answered: another connection to the file reads every record of the call.
      const reader = new Database(join(dir, 'ledger.db'), { readonly: true });
      try {
        const types = reader
          .prepare<[string], { type: string }>('SELECT type FROM entries WHERE request_id = ? ORDER BY idx')
          .all(r.request_id ?? '')
          .map((e) => e.type);
        expect(types).toEqual([
          'gateway.accepted',
          'decision',
          'envelope.issued',
          'execution.receipt',
          'gateway.completed',
        ]);
      } finally {
        reader.close();
      }
    }
    // Each call alone on the gate: exactly its three rounds (a checkpoint may add one now and then).
    expect(Math.min(...counts)).toBe(3);
    expect(Math.max(...counts)).toBeLessThanOrEqual(4);
  });

  it('the data directory holds one database file', () => {
    expect(existsSync(join(dir, 'ledger.db'))).toBe(true);
    expect(existsSync(join(dir, 'state.db'))).toBe(false);
    expect(existsSync(join(dir, 'nonces.db'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.db'))).toEqual(['ledger.db']);
  });
});
