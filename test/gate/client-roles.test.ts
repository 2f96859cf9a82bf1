/**
 * Client roles in the Gate's SQLite state: added to state files made before roles existed (issue
 * 8 point 9, OE-INV-005). Storing and reading them back is in the GateStateStore contract.
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
  it('a state file from before roles gains the column; its clients have none', async () => {
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
    expect((await state.lookup('legacy'))?.roles).toEqual([]);
    await state.close();
  });

  it('parseClientRoles bounds the list', () => {
    expect(() => parseClientRoles(Array.from({ length: 17 }, (_, i) => `r${i}`))).toThrow(TypeError);
    expect(() => parseClientRoles('operator')).toThrow(TypeError);
    expect(parseClientRoles([])).toEqual([]);
  });
});
