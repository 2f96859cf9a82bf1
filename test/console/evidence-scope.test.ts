/**
 * The evidence page's tenant rule (FC-INV-5, docs/console.md "Evidence"): an approver scoped to
 * tenants reads a request's evidence only when every record is of one of those tenants; a record
 * of every tenant (`*`) or of none is read by an approver of every tenant only, as the inbox
 * shows `*` approvals. The real console service and API over an embedded deployment; the view
 * read is given here as data (the evidence builder is tested with the ledger).
 */
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDeny } from '../../src/kernel/index.js';
import type { Deny, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { OPERATOR_ACTOR } from '../../src/embedded/index.js';
import { routeApi, signInInput } from '../../src/console/index.js';
import { createSignInGuard } from '../../src/console/sign-in-guard.js';
import type { ConsoleApiDeps as ApiDeps } from '../../src/console/index.js';
import { startRig, type Rig } from '../approvals/support.js';

let rig: Rig;

beforeAll(async () => {
  rig = await startRig();
}, 60_000);

afterAll(async () => {
  await rig.close();
});

function ok<T>(v: T | Deny): T {
  if (isDeny(v)) throw new Error(`denied ${v.code}: ${v.reason}`);
  return v;
}

/** A confirmed approver of `tenants`, signed in with the device key; the session id. */
async function approver(name: string, tenants: readonly string[] | '*'): Promise<string> {
  const svc = rig.instance.core.console.service;
  const key = generateSigningKey();
  const { code } = ok(await svc.invite({ name, roles: ['treasury'], tenants }, OPERATOR_ACTOR));
  const s = ok(await svc.signInWithCode(name, code));
  ok(await svc.enrol(ok(await svc.authenticate(s.id)), { ...key.publicJwk }));
  ok(await svc.confirm({ name, kid: key.kid }, OPERATOR_ACTOR));
  const { challenge } = ok(await svc.challenge(name));
  const signature = sign(null, signInInput(name, challenge), key.privateKey).toString('base64url');
  return ok(await svc.signInWithKey(name, challenge, signature)).id;
}

const view = (...tenants: (string | undefined)[]): JsonValue => ({
  records: tenants.map((t) => ({
    entry: t === undefined ? { type: 'checkpoint' } : { type: 'x', tenant: t },
  })),
});

async function read(session: string, v: JsonValue): Promise<string | number> {
  const core = rig.instance.core;
  const deps: ApiDeps = {
    console: core.console.service,
    approvals: core.approvals.service,
    approvalApi: core.approvals.api,
    evidenceOf: () => Promise.resolve(v),
    recordRead: () => Promise.resolve(true),
    signInGuard: createSignInGuard({
      record: () => Promise.resolve(true),
      endSession: () => Promise.resolve(),
      counters: core.console.store,
      now: rig.now,
    }),
    now: rig.now,
  };
  const a = await routeApi(deps, 'GET', 'requests/r1', {}, { session, pending: undefined });
  return isDeny(a) ? a.code : a.status;
}

describe('the evidence page’s tenant rule', () => {
  it('a tenant-scoped approver reads its tenants’ records only; `*` and tenant-less records need every tenant', async () => {
    const acme = await approver('ivy', ['acme']);
    const all = await approver('jon', '*');
    expect(await read(acme, view('acme', 'acme'))).toBe(200);
    expect(await read(acme, view('acme', 'globex'))).toBe('ERR_APPROVER_TENANT');
    expect(await read(acme, view('acme', '*'))).toBe('ERR_APPROVER_TENANT');
    expect(await read(acme, view('acme', undefined))).toBe('ERR_APPROVER_TENANT');
    expect(await read(all, view('acme', '*', undefined))).toBe(200);
  });
});
