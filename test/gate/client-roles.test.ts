/**
 * Client roles in the Gate's SQLite state: stored with the client, read back by every lookup,
 * and added to state files made before roles existed (issue 8 point 9, OE-INV-005).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteGateState, parseClientRoles } from '../../src/gate/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-roles-'));
  dirs.push(d);
  return join(d, 'state.db');
}

describe('client roles', () => {
  it('are stored sorted without duplicates and returned by lookup and list', () => {
    const state = createSqliteGateState({ path: tempDb() });
    const jwk = generateSigningKey().publicJwk;
    const rec = state.registerClient({
      identity: 'a',
      tenant: 't',
      jwk,
      atMs: 1,
      roles: ['ops', 'operator', 'ops'],
    });
    expect(rec.roles).toEqual(['operator', 'ops']);
    expect(state.lookup('a')?.roles).toEqual(['operator', 'ops']);
    expect(state.listClients()[0]?.roles).toEqual(['operator', 'ops']);
    expect(() =>
      state.registerClient({ identity: 'b', tenant: 't', jwk, atMs: 1, roles: ['no spaces'] }),
    ).toThrow(TypeError);
    expect(state.lookup('b')).toBeUndefined();
    state.close();
  });

  it('a state file from before roles gains the column; its clients have none', () => {
    const path = tempDb();
    const old = new Database(path);
    old.exec(`CREATE TABLE gate_clients (identity TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL,
      kid TEXT NOT NULL, jwk TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
      registered_at INTEGER NOT NULL) STRICT;`);
    const jwk = generateSigningKey().publicJwk;
    old
      .prepare('INSERT INTO gate_clients VALUES (?, ?, ?, ?, ?, ?)')
      .run('legacy', 't', jwk.kid, JSON.stringify(jwk), 'active', 1);
    old.close();
    const state = createSqliteGateState({ path });
    expect(state.lookup('legacy')?.roles).toEqual([]);
    state.close();
  });

  it('a tampered roles column fails the lookup (the Gate then denies)', () => {
    const path = tempDb();
    const state = createSqliteGateState({ path });
    state.registerClient({ identity: 'a', tenant: 't', jwk: generateSigningKey().publicJwk, atMs: 1 });
    const db = new Database(path);
    db.prepare("UPDATE gate_clients SET roles = '[1]' WHERE identity = 'a'").run();
    db.close();
    expect(() => state.lookup('a')).toThrow(TypeError);
    state.close();
  });

  it('parseClientRoles bounds the list', () => {
    expect(() => parseClientRoles(Array.from({ length: 17 }, (_, i) => `r${i}`))).toThrow(TypeError);
    expect(() => parseClientRoles('operator')).toThrow(TypeError);
    expect(parseClientRoles([])).toEqual([]);
  });
});
