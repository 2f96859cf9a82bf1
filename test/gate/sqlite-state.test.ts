/**
 * The Gate's SQLite state: the GateStateStore contract (FC-INV-3), and what only the SQLite store
 * does, group commit (SPEC §8 nonce store and durable writes): claims in one event-loop turn share
 * one transaction, and a failed transaction rejects every claim in it (the Gate denies
 * ERR_NONCE_STORE_UNAVAILABLE).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteGateState } from '../../src/gate/index.js';
import type { GateStateStore } from '../../src/gate/index.js';
import { runGateStateContract } from './gate-state.contract.js';

runGateStateContract('SQLite', (options) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-gate-state-'));
  const path = join(dir, 'state.db');
  const open = (): GateStateStore => createSqliteGateState({ path, ...options });
  const state = open();
  const others: GateStateStore[] = [];
  return Promise.resolve({
    state,
    openAnother: () => {
      const other = open();
      others.push(other);
      return Promise.resolve(other);
    },
    corruptRoles: (identity) => {
      const db = new Database(path);
      try {
        db.prepare("UPDATE gate_clients SET roles = '[1]' WHERE identity = ?").run(identity);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
    dispose: async () => {
      for (const s of [state, ...others]) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

describe('SQLite request-replay store group commit (FC-INV-3, SPEC §8)', () => {
  let dir: string;
  let path: string;
  let state: GateStateStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fc-gate-state-'));
    path = join(dir, 'state.db');
    state = createSqliteGateState({ path, busyTimeoutMs: 20 });
  });
  afterEach(async () => {
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const claim = (nonce: string, requestId: string, identity = 'agent-1') =>
    state.claim({ identity, nonce, requestId, atMs: 1_700_000_000_000 });

  it('rejects every claim of a batch whose transaction fails, and records none of them', async () => {
    const locker = new Database(path);
    locker.exec('BEGIN EXCLUSIVE');
    let settled: PromiseSettledResult<string>[];
    try {
      settled = await Promise.allSettled([
        claim('a', 'ra'),
        claim('b', 'rb'),
        state.claimNonce({ identity: 'agent-1', nonce: 'c', atMs: 0 }),
      ]);
    } finally {
      locker.exec('COMMIT');
      locker.close();
    }
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(await Promise.all([claim('a', 'ra'), claim('b', 'rb'), claim('c', 'rc')])).toEqual([
      'fresh',
      'fresh',
      'fresh',
    ]);
  });
});
