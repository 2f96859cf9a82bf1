/**
 * Operators on a shared PostgreSQL database (OE-INV-025, SPEC §1 "Distributed"): two gate
 * replicas (copies of one data directory) serve on one schema; an operator added through one is
 * known to the other, a token rotated or an operator removed through one is refused by the other
 * on its very next request (`ERR_UNAUTHENTICATED`), and the bootstrap token rotated through one
 * replica is refused by both although the other's data directory still holds it.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  initDataDir,
  readOperatorToken,
  startEmbedded,
  type EmbeddedInstance,
} from '../../src/embedded/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';

const db = useTestDatabase('fc_e2e_pg_ops');

let work: string;
let a: EmbeddedInstance;
let b: EmbeddedInstance;
let dirB: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pg-ops-'));
  const dirA = join(work, 'a');
  dirB = join(work, 'b');
  await initDataDir(dirA, { backend: `${db.url}?schema=${nextSchema()}` });
  cpSync(dirA, dirB, { recursive: true });
  a = await startEmbedded(dirA, { port: 0, executionPort: 0 });
  b = await startEmbedded(dirB, { port: 0, executionPort: 0 });
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  rmSync(work, { recursive: true, force: true });
});

async function admin(
  on: EmbeddedInstance,
  token: string,
  action: string,
  body: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL(`/v1/admin/${action}`, on.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const refused = { status: 401, body: { code: 'ERR_UNAUTHENTICATED' } };

describe('operators across replicas on PostgreSQL (OE-INV-025)', () => {
  it('added on A acts on B; rotated on A, the old token is refused on B at once and the new one works there', async () => {
    const added = await admin(a, readOperatorToken(dirB), 'operators-add', {
      name: 'alice',
      tenants: ['acme'],
    });
    expect(added.status).toBe(201);
    const first = added.body['token'] as string;
    expect((await admin(b, first, 'lockdown', { tenant: 'acme', on: false })).status).toBe(200);
    const rotated = await admin(a, first, 'operators-rotate', { name: 'alice' });
    expect(rotated.status).toBe(200);
    const second = rotated.body['token'] as string;
    expect(await admin(b, first, 'clients-list')).toMatchObject(refused);
    expect(await admin(a, first, 'clients-list')).toMatchObject(refused);
    expect((await admin(b, second, 'clients-list')).status).toBe(200);
    // The scope holds on the other replica too.
    expect(await admin(b, second, 'kill-switch', { on: true })).toMatchObject({
      status: 403,
      body: { code: 'ERR_FORBIDDEN' },
    });
  });

  it('removed on B, refused on A', async () => {
    const added = await admin(b, readOperatorToken(dirB), 'operators-add', { name: 'bob', tenants: '*' });
    const token = added.body['token'] as string;
    expect((await admin(a, token, 'clients-list')).status).toBe(200);
    expect((await admin(b, readOperatorToken(dirB), 'operators-remove', { name: 'bob' })).status).toBe(200);
    expect(await admin(a, token, 'clients-list')).toMatchObject(refused);
  });

  it('the bootstrap token rotated through A is refused by B, whose data directory still holds it', async () => {
    const old = readOperatorToken(dirB);
    const r = await admin(a, old, 'operators-rotate', { name: 'operator' });
    expect(r.status).toBe(200);
    expect(await admin(b, old, 'clients-list')).toMatchObject(refused);
    expect((await admin(b, r.body['token'] as string, 'clients-list')).status).toBe(200);
  });
});
