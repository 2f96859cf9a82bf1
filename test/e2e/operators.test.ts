/**
 * Operators are people (OE-INV-025, L7 Identity & Signing "every admin action attributable"):
 * against a real embedded gate (SQLite), an operator added by the bootstrap operator acts with a
 * token of their own; every admin action and evidence read is ledgered with that person as actor
 * or reader; an operator of some tenants is refused `ERR_FORBIDDEN` (and the refusal ledgered)
 * for another tenant's action and for global ones, and nothing changes; a rotated, removed or
 * unknown token is refused `ERR_UNAUTHENTICATED` at once; the bootstrap token rotates too; and a
 * change the ledger cannot record is not applied.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type FailclosedClient } from '../../src/index.js';
import { runCli } from '../../src/cli/run.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { faultyLedgerPort, noFaults } from '../support/faults.js';

let dir: string;
let instance: EmbeddedInstance;
let agent: FailclosedClient;
const faults = noFaults();
const runs: string[] = [];
let afterAppend: ((e: { type: string; payload: unknown }) => Promise<void>) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-operators-'));
  await initDataDir(dir);
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    onToolRun: ({ tool }) => void runs.push(tool),
    decorate: {
      ledgerPort: (p) => {
        const faulty = faultyLedgerPort(p, faults);
        // After an entry is appended, `afterAppend` runs (what another replica does meanwhile).
        return {
          ...faulty,
          append: async (e) => {
            const r = await faulty.append(e);
            await afterAppend?.(e);
            return r;
          },
        };
      },
    },
  });
  const demo = readClientFile(dir, DEMO_CLIENT.identity);
  agent = createClient({
    url: instance.url,
    identity: DEMO_CLIENT.identity,
    tenant: DEMO_CLIENT.tenant,
    key: demo.key,
  });
}, 60_000);

afterAll(async () => {
  await instance?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function admin(token: string, action: string, body: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(new URL(`/v1/admin/${action}`, instance.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function evidence(token: string, requestId: string): Promise<Answer> {
  const res = await fetch(new URL(`/v1/requests/${requestId}`, instance.url), {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Every ledger entry after index `from`. */
async function entriesFrom(from: number) {
  const l = instance.core.ledger;
  return l.store.readRange(from, l.size());
}

const bootstrap = (): string => readOperatorToken(dir);

/** Adds operator `name` through the bootstrap operator; answers its token. */
async function addOperator(name: string, tenants: readonly string[] | '*'): Promise<string> {
  const a = await admin(bootstrap(), 'operators-add', { name, tenants });
  expect(a.status).toBe(201);
  const token = a.body['token'];
  expect(typeof token).toBe('string');
  return token as string;
}

describe('operators are people (OE-INV-025)', () => {
  let alice: string;

  it('an operator added for tenant acme is ledgered with the person who added it, its token never', async () => {
    const from = instance.core.ledger.size();
    alice = await addOperator('alice', [DEMO_CLIENT.tenant]);
    const added = (await entriesFrom(from)).filter((e) => e.type === 'admin.operator');
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      actor: { id: 'operator', role: 'operator' },
      payload: { operator: 'alice', change: 'added', tenants: [DEMO_CLIENT.tenant] },
    });
    expect(JSON.stringify(added[0])).not.toContain(alice);
    const listed = await admin(bootstrap(), 'operators-list');
    expect(listed.body['operators']).toContainEqual(
      expect.objectContaining({ name: 'alice', tenants: [DEMO_CLIENT.tenant], status: 'active' }),
    );
    expect(JSON.stringify(listed.body)).not.toContain(alice);
  });

  it('every admin action and evidence read is ledgered with the person who did it, not "operator"', async () => {
    const from = instance.core.ledger.size();
    const on = await admin(alice, 'lockdown', { tenant: DEMO_CLIENT.tenant, on: true, reason: 'drill' });
    expect(on.status).toBe(200);
    const off = await admin(alice, 'lockdown', { tenant: DEMO_CLIENT.tenant, on: false });
    expect(off.status).toBe(200);
    const call = await agent.call('echo', { message: 'hi' });
    expect(call).toMatchObject({ outcome: 'executed' });
    const read = await evidence(alice, (call as { request_id: string }).request_id);
    expect(read.status).toBe(200);
    // The console's operator action (an approver invitation) records the person as well.
    const invited = await admin(alice, 'approvers-invite', {
      name: 'ivy',
      roles: ['treasury'],
      tenants: [DEMO_CLIENT.tenant],
    });
    expect(invited.status).toBe(201);
    const entries = await entriesFrom(from);
    expect(entries.filter((e) => e.type === 'admin.approver_invited').map((e) => e.actor)).toEqual([
      { id: 'alice', role: 'operator' },
    ]);
    const lockdowns = entries.filter((e) => e.type === 'admin.lockdown');
    expect(lockdowns.map((e) => e.actor)).toEqual([
      { id: 'alice', role: 'operator' },
      { id: 'alice', role: 'operator' },
    ]);
    const reads = entries.filter((e) => e.type === 'audit.read');
    expect(reads.map((e) => e.actor)).toEqual([{ id: 'alice', role: 'operator' }]);
  });

  it('a tenant-scoped operator is refused ERR_FORBIDDEN for global and other tenants’ actions, ledgered, nothing changed', async () => {
    const from = instance.core.ledger.size();
    const refused = [
      await admin(alice, 'kill-switch', { on: true }),
      await admin(alice, 'lockdown', { tenant: 'globex', on: true }),
      await admin(alice, 'issuer-rotate'),
      await admin(alice, 'ledger-export'),
      await admin(alice, 'operators-add', { name: 'mallory', tenants: '*' }),
      await admin(alice, 'breaker-reset', { tenant: 'globex' }),
      await admin(alice, 'quarantine', { session: 'some-session', on: true }),
      await admin(alice, 'approvers-invite', { name: 'ivy', roles: ['treasury'], tenants: ['globex'] }),
    ];
    for (const r of refused) expect(r).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    const entries = await entriesFrom(from);
    expect(entries.map((e) => e.type)).toEqual(Array(refused.length).fill('admin.refused'));
    for (const e of entries) expect(e.actor).toEqual({ id: 'alice', role: 'operator' });
    // The kill switch was not engaged and globex was not locked down: the demo client still calls.
    const before = runs.length;
    expect(await agent.call('echo', { message: 'still open' })).toMatchObject({ outcome: 'executed' });
    expect(runs.length).toBe(before + 1);
    expect(
      ((await admin(bootstrap(), 'operators-list')).body['operators'] as { name: string }[]).map(
        (o) => o.name,
      ),
    ).not.toContain('mallory');
  });

  it('another tenant’s pending invitation is not taken over: re-invite, approver or client of its name is ERR_FORBIDDEN', async () => {
    const greta = await addOperator('greta', ['globex']);
    const invited = await admin(greta, 'approvers-invite', {
      name: 'carla',
      roles: ['treasury'],
      tenants: ['globex'],
    });
    expect(invited.status).toBe(201);
    const key = generateSigningKey();
    const from = instance.core.ledger.size();
    const refused = [
      await admin(alice, 'approvers-invite', {
        name: 'carla',
        roles: ['treasury'],
        tenants: [DEMO_CLIENT.tenant],
      }),
      await admin(alice, 'approvers-add', {
        name: 'carla',
        roles: ['treasury'],
        tenants: [DEMO_CLIENT.tenant],
        public_jwk: { ...key.publicJwk },
      }),
      await admin(alice, 'clients-add', {
        name: 'carla',
        tenant: DEMO_CLIENT.tenant,
        public_jwk: { ...key.publicJwk },
      }),
    ];
    for (const r of refused) expect(r).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    const entries = await entriesFrom(from);
    expect(entries.map((e) => e.type)).toEqual(Array(refused.length).fill('admin.refused'));
    expect(entries.map((e) => e.tenant)).toEqual(Array(refused.length).fill('globex'));
    // The invitation is globex's still, and its code still signs carla in; no client carla.
    expect((await instance.core.backend.console.person('carla'))?.tenants).toEqual(['globex']);
    const signIn = await fetch(new URL('/console/api/sign-in/code', instance.url), {
      method: 'POST',
      headers: { origin: new URL(instance.url).origin, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'carla', code: invited.body['code'] }),
    });
    expect(signIn.status).toBe(200);
    expect(await instance.core.state.lookup('carla')).toBeUndefined();
    // An operator of globex (the invitation's tenant) may still re-invite.
    expect(
      (await admin(greta, 'approvers-invite', { name: 'carla', roles: ['treasury'], tenants: ['globex'] }))
        .status,
    ).toBe(201);
  });

  it('the approval API’s operator view (every tenant’s approvals) is refused to a scoped operator', async () => {
    const list = async (token: string) => {
      const res = await fetch(new URL('/v1/approvals', instance.url), {
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await list(alice)).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHENTICATED' } });
    expect((await list(bootstrap())).status).toBe(200);
  });

  it('a scoped operator reads only its tenants’ evidence: another tenant’s request is ERR_FORBIDDEN', async () => {
    const globexOp = await addOperator('gina', ['globex']);
    const call = await agent.call('echo', { message: 'acme only' });
    const id = (call as { request_id: string }).request_id;
    const from = instance.core.ledger.size();
    expect(await evidence(globexOp, id)).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
    expect((await entriesFrom(from)).filter((e) => e.type === 'audit.read')).toEqual([]);
  });

  it('a scoped operator gets the view that was checked: records another tenant writes under the id meanwhile are not returned', async () => {
    const globexKey = generateSigningKey();
    expect(
      (
        await admin(bootstrap(), 'clients-add', {
          name: 'globex-agent',
          tenant: 'globex',
          public_jwk: { ...globexKey.publicJwk },
        })
      ).status,
    ).toBe(201);
    const globex = createClient({
      url: instance.url,
      identity: 'globex-agent',
      tenant: 'globex',
      key: globexKey,
    });
    const id = 'req-shared-by-two-tenants';
    expect(await agent.call('echo', { message: 'acme' }, { requestId: id })).toMatchObject({
      outcome: 'executed',
    });
    // Fault injection on the real store: right after the view is read (and before its tenants are
    // checked), tenant globex's agent writes records under the same request id.
    const store = instance.core.ledger.store as { readByRequest: (id: string) => Promise<unknown> };
    const real = store.readByRequest.bind(store);
    let interleaved = false;
    store.readByRequest = async (requestId: string) => {
      const r = await real(requestId);
      if (requestId === id && !interleaved) {
        interleaved = true;
        await globex.call('echo', { message: 'globex secret' }, { requestId: id });
      }
      return r;
    };
    let read: Answer;
    try {
      read = await evidence(alice, id);
    } finally {
      store.readByRequest = real;
    }
    expect(interleaved).toBe(true);
    expect(read.status).toBe(200);
    const tenants = (read.body['records'] as { entry: { tenant: string } }[]).map((r) => r.entry.tenant);
    expect(tenants.length).toBeGreaterThan(0);
    expect(new Set(tenants)).toEqual(new Set([DEMO_CLIENT.tenant]));
    expect(JSON.stringify(read.body)).not.toContain('globex secret');
    // Read again now, the id holds globex's records: refused.
    expect(await evidence(alice, id)).toMatchObject({ status: 403, body: { code: 'ERR_FORBIDDEN' } });
  });

  it('rotation: the new token works, the old one is refused ERR_UNAUTHENTICATED at once', async () => {
    const old = alice;
    const r = await admin(bootstrap(), 'operators-rotate', { name: 'alice' });
    expect(r.status).toBe(200);
    alice = r.body['token'] as string;
    expect(alice).not.toBe(old);
    expect(await admin(old, 'clients-list')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    expect(await evidence(old, 'any')).toMatchObject({ status: 401, body: { code: 'ERR_UNAUTHENTICATED' } });
    expect((await admin(alice, 'clients-list')).status).toBe(200);
    // An operator may replace their own token, not another's.
    const self = await admin(alice, 'operators-rotate', { name: 'alice' });
    expect(self.status).toBe(200);
    alice = self.body['token'] as string;
    expect(await admin(alice, 'operators-rotate', { name: 'gina' })).toMatchObject({
      status: 403,
      body: { code: 'ERR_FORBIDDEN' },
    });
  });

  it('the bootstrap token rotates: the data directory’s old token is refused, the new one acts as "operator"', async () => {
    const old = bootstrap();
    const r = await admin(old, 'operators-rotate', { name: 'operator' });
    expect(r.status).toBe(200);
    const next = r.body['token'] as string;
    expect(await admin(old, 'clients-list')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    const from = instance.core.ledger.size();
    expect((await admin(next, 'kill-switch', { on: false })).status).toBe(200);
    const [e] = (await entriesFrom(from)).filter((x) => x.type === 'admin.kill_switch');
    expect(e?.actor).toEqual({ id: 'operator', role: 'operator' });
    // Put the new token where the data directory keeps it, for the tests after this one.
    writeFileSync(join(dir, 'operator.token'), `${next}\n`, { mode: 0o600 });
  });

  it('a removed operator’s token is refused; unknown tokens too', async () => {
    const gone = await addOperator('bob', '*');
    expect((await admin(gone, 'clients-list')).status).toBe(200);
    expect((await admin(bootstrap(), 'operators-remove', { name: 'bob' })).status).toBe(200);
    expect(await admin(gone, 'clients-list')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    expect(await admin('not-a-token', 'clients-list')).toMatchObject({
      status: 401,
      body: { code: 'ERR_UNAUTHENTICATED' },
    });
    expect(await admin(bootstrap(), 'operators-remove', { name: 'operator' })).toMatchObject({
      status: 400,
    });
    expect(await admin(bootstrap(), 'operators-rotate', { name: 'bob' })).toMatchObject({ status: 404 });
    expect(await admin(bootstrap(), 'operators-add', { name: 'bob', tenants: '*' })).toMatchObject({
      status: 409,
    });
  });

  it('a change the ledger cannot record is refused ERR_LEDGER_UNAVAILABLE and not applied', async () => {
    faults.ledger = 'throw';
    faults.ledgerTypes = ['admin.operator'];
    try {
      expect(await admin(bootstrap(), 'operators-rotate', { name: 'alice' })).toMatchObject({
        status: 503,
        body: { code: 'ERR_LEDGER_UNAVAILABLE' },
      });
      expect(await admin(bootstrap(), 'operators-add', { name: 'carol', tenants: '*' })).toMatchObject({
        status: 503,
        body: { code: 'ERR_LEDGER_UNAVAILABLE' },
      });
      expect(await admin(bootstrap(), 'operators-remove', { name: 'alice' })).toMatchObject({
        status: 503,
        body: { code: 'ERR_LEDGER_UNAVAILABLE' },
      });
    } finally {
      faults.ledger = 'off';
      faults.ledgerTypes = null;
    }
    // Alice's token still works (not rotated, not removed); carol does not exist.
    expect((await admin(alice, 'clients-list')).status).toBe(200);
    const names = ((await admin(bootstrap(), 'operators-list')).body['operators'] as { name: string }[]).map(
      (o) => o.name,
    );
    expect(names).not.toContain('carol');
  });

  it('two concurrent adds of one name: one is added and ledgered, the other is 409 and ledgers no change', async () => {
    const from = instance.core.ledger.size();
    const answers = await Promise.all([
      admin(bootstrap(), 'operators-add', { name: 'dana', tenants: [DEMO_CLIENT.tenant] }),
      admin(bootstrap(), 'operators-add', { name: 'dana', tenants: '*' }),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const won = answers.find((a) => a.status === 201)!;
    const changes = (await entriesFrom(from))
      .filter((e) => e.type === 'admin.operator')
      .map((e) => e.payload as Record<string, unknown>);
    expect(changes).toEqual([
      expect.objectContaining({ operator: 'dana', change: 'added', tenants: won.body['tenants'] }),
    ]);
  });

  it('a change the registry does not apply after it was ledgered is ledgered "not_applied"', async () => {
    // Another replica adds the same name between this one's ledger entry and its registry write.
    afterAppend = async (e) => {
      if (e.type !== 'admin.operator' || (e.payload as { operator?: unknown }).operator !== 'erik') return;
      afterAppend = undefined;
      await instance.core.backend.operators.add({
        name: 'erik',
        tenants: ['globex'],
        token_sha256: 'a'.repeat(64),
        created_at: Date.now(),
      });
    };
    const from = instance.core.ledger.size();
    let answer: Answer;
    try {
      answer = await admin(bootstrap(), 'operators-add', { name: 'erik', tenants: '*' });
    } finally {
      afterAppend = undefined;
    }
    expect(answer).toMatchObject({ status: 409 });
    const changes = (await entriesFrom(from))
      .filter((e) => e.type === 'admin.operator')
      .map((e) => e.payload as Record<string, unknown>);
    expect(changes).toEqual([
      expect.objectContaining({ operator: 'erik', change: 'added', tenants: '*' }),
      expect.objectContaining({ operator: 'erik', change: 'not_applied', tenants: '*' }),
    ]);
    expect(String(changes[1]!['reason'])).toContain('added not applied');
  });

  it('an export with the operator records verifies offline under the trust roots', async () => {
    const bundle = join(dir, 'audit.jsonl');
    const exported = await fetch(new URL('/v1/admin/ledger-export', instance.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${bootstrap()}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exported.status).toBe(200);
    const text = await exported.text();
    expect(text).toContain('admin.operator');
    expect(text).toContain('admin.refused');
    writeFileSync(bundle, text);
    const trust = join(dir, 'trust-roots.json');
    writeFileSync(trust, await (await fetch(new URL('/v1/trust-roots', instance.url))).text());
    let out = '';
    const code = await runCli(['verify', bundle, '--trust', trust], {
      out: (t) => (out += t),
      err: (t) => (out += t),
      env: {},
    });
    expect(out).toContain('entries');
    expect(code).toBe(0);
  });
});
