/**
 * The Gate's request-replay store under group commit (FC-INV-3, SPEC §8 nonce store and durable
 * writes): claims in one event-loop turn share one transaction, yet every nonce and every request
 * id is fresh at most once, a replayed half never consumes the other half of a pair, and a failed
 * transaction rejects every claim in it (the Gate denies ERR_NONCE_STORE_UNAVAILABLE).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteGateState } from '../../src/gate/index.js';
import type { GateStateStore } from '../../src/gate/index.js';

describe('SQLite request-replay store group commit (FC-INV-3)', () => {
  let dir: string;
  let path: string;
  let state: GateStateStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fc-gate-state-'));
    path = join(dir, 'state.db');
    state = createSqliteGateState({ path, busyTimeoutMs: 20 });
  });
  afterEach(() => {
    state.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const claim = (nonce: string, requestId: string, identity = 'agent-1') =>
    state.claim({ identity, nonce, requestId, atMs: 1_700_000_000_000 });

  it('is fresh exactly once per nonce and request id among many claims in one turn', async () => {
    const pairs: [string, string][] = [];
    for (let i = 0; i < 30; i++) pairs.push([`n${i}`, `r${i}`]);
    for (let i = 0; i < 10; i++) pairs.push([`n${i}`, `other-r${i}`]); // replayed nonce, new request id
    for (let i = 10; i < 20; i++) pairs.push([`other-n${i}`, `r${i}`]); // new nonce, replayed request id
    const verdicts = await Promise.all(pairs.map(([n, r]) => claim(n, r)));
    expect(verdicts.slice(0, 30).every((v) => v === 'fresh')).toBe(true);
    expect(verdicts.slice(30).every((v) => v === 'replayed')).toBe(true);
    // A replay rolled back its savepoint: the fresh half of a rejected pair was not consumed.
    expect(await claim('other-n10', 'brand-new')).toBe('fresh');
    expect(await claim('brand-new-nonce', 'other-r0')).toBe('fresh');
    // Durable and visible to another connection.
    const other = createSqliteGateState({ path });
    try {
      expect(await other.claim({ identity: 'agent-1', nonce: 'n5', requestId: 'x', atMs: 0 })).toBe(
        'replayed',
      );
      expect(await other.claimNonce({ identity: 'agent-1', nonce: 'other-n10', atMs: 0 })).toBe('replayed');
    } finally {
      other.close();
    }
  });

  it('keeps nonces apart per identity and lets one claimNonce per nonce through', async () => {
    const verdicts = await Promise.all([
      claim('n', 'r', 'agent-1'),
      claim('n', 'r', 'agent-2'),
      state.claimNonce({ identity: 'agent-1', nonce: 'retry', atMs: 0 }),
      state.claimNonce({ identity: 'agent-1', nonce: 'retry', atMs: 0 }),
    ]);
    expect(verdicts).toEqual(['fresh', 'fresh', 'fresh', 'replayed']);
  });

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
