/**
 * The embedded deployment on the PostgreSQL backend, end to end (SPEC §1 "Distributed", §4 "one
 * writer"; L7 ledger protection and degraded mode): governed calls, an export that `verify`
 * accepts with pinned keys, a second gate on the same database serving at the same time on one
 * hash chain, one replay store and one approval state, and a database that stops or stalls:
 * every call denies with its code and no tool runs.
 */
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailclosedClient } from '../../src/client/index.js';
import { createApproverClient } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { saveTrustRoots } from '../../src/cli/trust-file.js';
import { initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance, EmbeddedOptions } from '../../src/embedded/index.js';
import { generateSigningKey, type SigningKey } from '../../src/kernel/signing/index.js';
import { startFaultProxy } from '../support/tcp-fault-proxy.js';
import type { FaultProxy } from '../support/tcp-fault-proxy.js';
import { nextSchema, useTestDatabase, waitUntilBlocked } from '../support/postgres.js';
import { clientOf } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_pg');
let work: string;
const runs: string[] = [];
const base: EmbeddedOptions = { port: 0, executionPort: 0, onToolRun: ({ tool }) => void runs.push(tool) };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pg-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const echo = (c: FailclosedClient, message: string) => c.call('echo', { message }, { session: 'pg-e2e' });

async function exportAndVerify(dir: string, instance: EmbeddedInstance): Promise<number> {
  const res = await fetch(`${instance.url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: '{}',
  });
  expect(res.status).toBe(200);
  const bundle = join(work, `bundle-${Date.now()}-${Math.random()}.jsonl`);
  writeFileSync(bundle, await res.text());
  const trust = join(work, `trust-${Date.now()}-${Math.random()}.json`);
  expect(await saveTrustRoots(instance.url, trust)).toBe(true);
  return runCli(['verify', bundle, '--trust', trust], {
    out: () => undefined,
    err: () => undefined,
    env: {},
  });
}

async function ledgerRows(url: string, schema: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.ledger_entries`)).rows[0]!
      .n;
  } finally {
    await c.end();
  }
}

/** Two gates serving one new schema at once: A over `dirA` and B over a copy of it (another host). */
async function twoGates(
  name: string,
  options: EmbeddedOptions = base,
): Promise<{ schema: string; dirA: string; dirB: string; a: EmbeddedInstance; b: EmbeddedInstance }> {
  const schema = nextSchema();
  const dirA = join(work, `${name}-a`);
  const dirB = join(work, `${name}-b`);
  await initDataDir(dirA, { backend: `${db.url}?schema=${schema}` });
  cpSync(dirA, dirB, { recursive: true });
  const a = await startEmbedded(dirA, options);
  const b = await startEmbedded(dirB, options);
  return { schema, dirA, dirB, a, b };
}

/** Registers the approvers alice and bob (role `treasury`) through `instance`; their signing keys. */
async function treasuryApprovers(
  instance: EmbeddedInstance,
  dir: string,
): Promise<Record<'alice' | 'bob', SigningKey>> {
  const keys = { alice: generateSigningKey(), bob: generateSigningKey() };
  for (const [name, key] of Object.entries(keys)) {
    const res = await fetch(`${instance.url}/v1/admin/approvers-add`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, roles: ['treasury'], tenants: ['acme'], public_jwk: key.publicJwk }),
    });
    expect(res.status).toBe(201);
  }
  return keys;
}

describe('a deployment on PostgreSQL (SPEC §1, §4)', () => {
  it('runs governed calls with the ledger in PostgreSQL, and its export verifies with pinned keys', async () => {
    const schema = nextSchema();
    const dir = join(work, 'single');
    await initDataDir(dir, { backend: `${db.url}?schema=${schema}` });
    const instance = await startEmbedded(dir, base);
    try {
      expect(instance.core.backend.name).toBe('postgres');
      const c = clientOf(dir, instance);
      const before = runs.length;
      expect(await echo(c, 'hello')).toMatchObject({ outcome: 'executed' });
      expect(runs.length).toBe(before + 1);
      const denied = await c.call(
        'transfer_funds',
        { from_account: 'acct_a', to_account: 'acct_b', amount: 99999, currency: 'USD' },
        { session: 'pg-e2e' },
      );
      expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
      expect(runs.length).toBe(before + 1);
      expect(await exportAndVerify(dir, instance)).toBe(0);
      // The ledger lives in the database, not in the data directory.
      expect(await ledgerRows(db.url, schema)).toBe(instance.core.ledger.size());
    } finally {
      await instance.close();
    }
  });

  it('init over a schema that already holds a ledger is refused and leaves nothing behind (one chain, one checkpoint key)', async () => {
    const schema = nextSchema();
    const first = join(work, 'init-first');
    const second = join(work, 'init-second');
    await initDataDir(first, { backend: `${db.url}?schema=${schema}` });
    const rows = await ledgerRows(db.url, schema);
    await expect(initDataDir(second, { backend: `${db.url}?schema=${schema}` })).rejects.toThrow(
      /already holds a ledger/,
    );
    expect(existsSync(second)).toBe(false);
    expect(await ledgerRows(db.url, schema)).toBe(rows);
  });

  it('a gate copied before an issuer key rotation refuses to open until its keys are copied again (OE-INV-025)', async () => {
    const schema = nextSchema();
    const dirA = join(work, 'keys-a');
    const dirB = join(work, 'keys-b');
    await initDataDir(dirA, { backend: `${db.url}?schema=${schema}` });
    cpSync(dirA, dirB, { recursive: true });
    const a = await startEmbedded(dirA, base);
    const rotated = await fetch(`${a.url}/v1/admin/issuer-rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dirA)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'scheduled' }),
    });
    expect(rotated.status).toBe(200);
    await a.close();
    // B would sign with the key the ledger rotated away from: it does not open.
    await expect(startEmbedded(dirB, base)).rejects.toThrow(/issuer key/);
    cpSync(join(dirA, 'keys'), join(dirB, 'keys'), { recursive: true });
    const b = await startEmbedded(dirB, base);
    try {
      expect(await echo(clientOf(dirB, b), 'rotated')).toMatchObject({ outcome: 'executed' });
    } finally {
      await b.close();
    }
  });

  it('a second gate on the same database serves too: one chain, one truth, and the export verifies', async () => {
    const schema = nextSchema();
    const dirA = join(work, 'replica-a');
    const dirB = join(work, 'replica-b');
    await initDataDir(dirA, { backend: `${db.url}?schema=${schema}` });
    // B is A's copy: the same keys and configuration, another host's data directory.
    cpSync(dirA, dirB, { recursive: true });
    const a = await startEmbedded(dirA, base);
    const b = await startEmbedded(dirB, base);
    try {
      // A standby has no place on PostgreSQL: every gate serves.
      const dirC = join(work, 'replica-c');
      cpSync(dirA, dirC, { recursive: true });
      await expect(startEmbedded(dirC, { ...base, standby: true })).rejects.toThrow(
        /standby applies to SQLite only/,
      );
      const ca = clientOf(dirA, a);
      const cb = clientOf(dirB, b);
      const before = runs.length;
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => echo(i % 2 === 0 ? ca : cb, `call ${i}`)),
      );
      // Each outcome with its code: a denial says which dependency did not answer.
      expect(results.map((r) => (r.outcome === 'executed' ? r.outcome : `${r.outcome} ${r.code}`))).toEqual(
        Array.from({ length: 12 }, () => 'executed'),
      );
      expect(runs.length).toBe(before + 12);
      // One request id sent through both replicas at once: accepted once, run once (FC-INV-3).
      for (let t = 0; t < 10; t++) {
        const id = `both-${t}`;
        const runsBefore = runs.length;
        const pair = await Promise.all(
          [ca, cb].map((c) => c.call('echo', { message: id }, { session: 'pg-e2e', requestId: id })),
        );
        expect(pair.filter((r) => r.outcome === 'executed')).toHaveLength(1);
        expect(pair.find((r) => r.outcome !== 'executed')).toMatchObject({
          outcome: 'deny',
          code: 'ERR_REQUEST_REPLAYED',
        });
        expect(runs.length).toBe(runsBefore + 1);
      }
      // Both wrote the one chain: an export through either verifies and holds every entry.
      const rows = await ledgerRows(db.url, schema);
      expect(await exportAndVerify(dirA, a)).toBe(0);
      expect(await exportAndVerify(dirB, b)).toBe(0);
      expect(await ledgerRows(db.url, schema)).toBeGreaterThanOrEqual(rows);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('requests no live gate owns (SPEC §5, FC-INV-5)', () => {
  it('a request left without an owner is a sweep’s, never a stopping gate’s: it gets exactly one outcome', async () => {
    const { schema, a, b } = await twoGates('unowned', { ...base, orphanSweepMs: 0 });
    try {
      // An accepted request whose owner is unknown (as a schema before instances were recorded left it).
      const accepted = await a.core.ledger.append({
        type: 'gateway.accepted',
        trace_id: 'trace-unowned',
        request_id: 'req-unowned',
        tenant: 'acme',
        actor: { id: 'demo-agent', role: 'gate' },
        payload: { tool: 'echo' },
      });
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      await c.query(`UPDATE ${schema}.ledger_open_requests SET owner = '' WHERE accepted_idx = $1`, [
        accepted.index,
      ]);
      await c.end();
      // A stops: it records only its own calls, not the unowned one.
      expect(await a.core.abandonInFlight()).toMatchObject({ abandoned: 0 });
      expect(await b.core.sweepOrphans()).toMatchObject({ abandoned: 1 });
      const types = (await b.core.ledger.store.readByRequest('req-unowned')).map((e) => e.type);
      expect(types).toEqual(['gateway.accepted', 'request.abandoned']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('approvals on PostgreSQL (OE-INV-019/020)', () => {
  it('votes through either gate count once, and an approved call retried on both at once runs once', async () => {
    const { dirA, dirB, a, b } = await twoGates('approvals');
    try {
      const keys = await treasuryApprovers(a, dirA);
      const approver = (instance: EmbeddedInstance, dir: string, name: 'alice' | 'bob') =>
        createApproverClient({
          url: instance.url,
          name,
          key: keys[name],
          authorization: `Bearer ${readOperatorToken(dir)}`,
        });
      const transfer = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };
      const first = await clientOf(dirA, a).call('transfer_funds', transfer, { session: 'pg-approvals' });
      expect(first.outcome).toBe('pending');
      if (first.outcome !== 'pending') throw new Error('expected pending');
      expect(
        (await approver(a, dirA, 'alice').decide(first.decision_id, 'approve', 'invoice ok')).status,
      ).toBe(200);
      // The pending approval, alice's vote and the approvers are the database's: B sees them.
      const second = await approver(b, dirB, 'alice').decide(first.decision_id, 'approve', 'again');
      expect(second.body).toMatchObject({ code: 'ERR_APPROVAL_DUPLICATE' });
      expect(
        (await approver(b, dirB, 'bob').decide(first.decision_id, 'approve', 'vendor ok')).body,
      ).toMatchObject({ outcome: 'ok', status: 'approved' });
      const before = runs.length;
      const retry = (instance: EmbeddedInstance, dir: string) =>
        clientOf(dir, instance).call('transfer_funds', transfer, {
          session: 'pg-approvals',
          requestId: first.request_id,
        });
      const both = await Promise.all([retry(a, dirA), retry(b, dirB)]);
      expect(both.filter((r) => r.outcome === 'executed')).toHaveLength(1);
      expect(both.find((r) => r.outcome !== 'executed')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_REQUEST_REPLAYED',
      });
      expect(runs.slice(before)).toEqual(['transfer_funds']);
      expect(await exportAndVerify(dirB, b)).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('waiting for an approval given through another gate (OE-INV-019)', () => {
  it('a call long-polling on A is answered once the last approval is given through B', async () => {
    const { dirA, dirB, a, b } = await twoGates('wait');
    try {
      const keys = await treasuryApprovers(a, dirA);
      const approver = (name: 'alice' | 'bob') =>
        createApproverClient({
          url: b.url,
          name,
          key: keys[name],
          authorization: `Bearer ${readOperatorToken(dirB)}`,
        });
      const transfer = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };
      const first = await clientOf(dirA, a).call('transfer_funds', transfer, { session: 'pg-wait' });
      if (first.outcome !== 'pending') throw new Error('expected pending');
      const before = runs.length;
      // The retry waits on A (at most wait_max_ms, 25 s); the approvals are given through B meanwhile.
      const waiting = clientOf(dirA, a).call('transfer_funds', transfer, {
        session: 'pg-wait',
        requestId: first.request_id,
        waitSec: 60,
      });
      expect((await approver('alice').decide(first.decision_id, 'approve', 'invoice ok')).status).toBe(200);
      expect((await approver('bob').decide(first.decision_id, 'approve', 'vendor ok')).body).toMatchObject({
        status: 'approved',
      });
      const started = Date.now();
      expect(await waiting).toMatchObject({ outcome: 'executed' });
      // Woken by the wait reading the shared store, not by its own 25 s deadline running out.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(runs.slice(before)).toEqual(['transfer_funds']);
    } finally {
      await a.close();
      await b.close();
    }
  }, 90_000);
});

describe('PostgreSQL faults: every call denies with its code and no tool runs (L7 degraded mode)', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    const u = new URL(db.url);
    proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port) });
  });
  afterAll(async () => {
    await proxy.close();
  });

  it('a stalled ledger table past the deadline → ERR_LEDGER_UNAVAILABLE, nothing runs, then calls recover', async () => {
    const schema = nextSchema();
    const dir = join(work, 'stall');
    await initDataDir(dir, { backend: `${db.url}?schema=${schema}` });
    const instance = await startEmbedded(dir, { ...base, deadlines: { gate: { ledgerMs: 500 } } });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const c = clientOf(dir, instance);
      expect(await echo(c, 'before')).toMatchObject({ outcome: 'executed' });
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${schema}.ledger_entries IN EXCLUSIVE MODE`);
      const before = runs.length;
      const stalled = echo(c, 'stalled');
      await waitUntilBlocked(holder, 1);
      expect(await stalled).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
      await holder.query('ROLLBACK');
      expect(runs.length).toBe(before);
      expect(await echo(c, 'after')).toMatchObject({ outcome: 'executed' });
    } finally {
      await holder.end();
      await instance.close();
    }
  });

  it('the database stopped → deny with nothing run; the writer stops serving; a restart takes over once it is back', async () => {
    const schema = nextSchema();
    const dir = join(work, 'stopped');
    await initDataDir(dir, { backend: `${proxy.urlThrough(db.url)}?schema=${schema}` });
    let lost!: () => void;
    const writerLost = new Promise<void>((resolve) => (lost = resolve));
    const instance = await startEmbedded(dir, {
      ...base,
      deadlines: { gate: { ledgerMs: 1000 } },
      onWriterLost: () => lost(),
    });
    let again: EmbeddedInstance | undefined;
    try {
      const c = clientOf(dir, instance);
      expect(await echo(c, 'up')).toMatchObject({ outcome: 'executed' });
      const before = runs.length;
      proxy.setMode('refuse');
      // The first read of every call, the client registry, fails.
      expect(await echo(c, 'down')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_CLIENT_REGISTRY_UNAVAILABLE',
      });
      // The lock's session is gone: the lease is lost and this gate runs nothing more.
      await writerLost;
      proxy.setMode('pass');
      expect(await echo(c, 'fenced')).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
      expect(runs.length).toBe(before);
      await instance.close();
      again = await startEmbedded(dir, base);
      expect(await echo(clientOf(dir, again), 'back')).toMatchObject({ outcome: 'executed' });
      expect(await exportAndVerify(dir, again)).toBe(0);
    } finally {
      proxy.setMode('pass');
      await instance.close();
      await again?.close();
    }
  });
});
