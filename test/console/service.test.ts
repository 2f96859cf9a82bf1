/**
 * The console's sign-in and enrolment service over the real embedded deployment (SQLite ledger,
 * approval service, console tables in ledger.db) with an injected clock (docs/console.md
 * "Enrolment and sign-in"): codes are good once and expire; challenges are the gate's own, expire
 * and are good once; a device key signs in only as its own person; sessions end when idle, at
 * their absolute limit and when the approver is removed; confirmation needs the enrolled kid.
 * Every refusal is a deny with its code.
 */
import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDeny, sha256Hex } from '../../src/kernel/index.js';
import type { Deny } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { OPERATOR_ACTOR } from '../../src/embedded/index.js';
import { signInInput } from '../../src/console/index.js';
import type { ConsoleService, SignedIn } from '../../src/console/index.js';
import { startRig, type Rig } from '../approvals/support.js';

let rig: Rig;
let svc: ConsoleService;

beforeAll(async () => {
  rig = await startRig();
  svc = rig.instance.core.console.service;
}, 60_000);

afterAll(async () => {
  await rig.close();
});

function ok<T>(v: T | Deny): T {
  if (isDeny(v)) throw new Error(`denied ${v.code}: ${v.reason}`);
  return v;
}

const code = (v: unknown): string | undefined => (isDeny(v) ? v.code : undefined);

async function who(sessionId: string): Promise<SignedIn> {
  return ok(await svc.authenticate(sessionId));
}

async function invited(name: string): Promise<string> {
  return ok(await svc.invite({ name, roles: ['treasury'], tenants: ['acme'] }, OPERATOR_ACTOR)).code;
}

/** Invites, signs in with the code and enrols `key`; the code session id. */
async function enrolled(name: string, key: SigningKey): Promise<string> {
  const s = ok(await svc.signInWithCode(name, await invited(name)));
  ok(await svc.enrol(await who(s.id), { ...key.publicJwk }));
  return s.id;
}

async function keySignIn(name: string, key: SigningKey): Promise<{ id: string } | Deny> {
  const { challenge } = ok(await svc.challenge(name));
  const signature = sign(null, signInInput(name, challenge), key.privateKey).toString('base64url');
  return svc.signInWithKey(name, challenge, signature);
}

describe('console sign-in and enrolment', () => {
  it('a code signs in once, never after it expired, never under another name', async () => {
    const c = await invited('ann');
    expect(code(await svc.signInWithCode('bea', c))).toBe('ERR_UNAUTHENTICATED');
    ok(await svc.signInWithCode('ann', c));
    expect(code(await svc.signInWithCode('ann', c))).toBe('ERR_UNAUTHENTICATED');
    const late = ok(
      await svc.invite({ name: 'amy', roles: ['treasury'], tenants: ['acme'], ttl_sec: 60 }, OPERATOR_ACTOR),
    );
    rig.advance(61_000);
    expect(code(await svc.signInWithCode('amy', late.code))).toBe('ERR_UNAUTHENTICATED');
  });

  it('refuses inviting an agent’s name or a malformed scope', async () => {
    expect(
      code(await svc.invite({ name: 'demo-agent', roles: ['treasury'], tenants: ['acme'] }, OPERATOR_ACTOR)),
    ).toBe('ERR_APPROVER_AGENT');
    expect(code(await svc.invite({ name: 'zed', roles: ['treasury'], tenants: [] }, OPERATOR_ACTOR))).toBe(
      'ERR_APPROVAL_INVALID',
    );
  });

  it('enrols once, in a code session only; the key signs in; tampered, expired or replayed challenges are refused', async () => {
    const key = generateSigningKey();
    const codeSession = await enrolled('cid', key);
    expect(code(await svc.enrol(await who(codeSession), { ...generateSigningKey().publicJwk }))).toBe(
      'ERR_APPROVAL_INVALID',
    );
    const s = ok(await keySignIn('cid', key));
    expect(code(await svc.enrol(await who(s.id), { ...generateSigningKey().publicJwk }))).toBe(
      'ERR_APPROVAL_INVALID',
    );
    // Another key, another name, a forged MAC, an expired challenge, a replay: refused.
    expect(code(await keySignIn('cid', generateSigningKey()))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await keySignIn('ann', key))).toBe('ERR_UNAUTHENTICATED');
    const { challenge } = ok(await svc.challenge('cid'));
    const forged = `${challenge.slice(0, -2)}${challenge.endsWith('AA') ? 'BB' : 'AA'}`;
    const sig = (c: string) => sign(null, signInInput('cid', c), key.privateKey).toString('base64url');
    expect(code(await svc.signInWithKey('cid', forged, sig(forged)))).toBe('ERR_UNAUTHENTICATED');
    const used = ok(await svc.challenge('cid')).challenge;
    ok(await svc.signInWithKey('cid', used, sig(used)));
    expect(code(await svc.signInWithKey('cid', used, sig(used)))).toBe('ERR_UNAUTHENTICATED');
    const old = ok(await svc.challenge('cid')).challenge;
    rig.advance(2 * 60_000 + 1);
    expect(code(await svc.signInWithKey('cid', old, sig(old)))).toBe('ERR_UNAUTHENTICATED');
  });

  it('sessions end when idle, at their absolute limit, and a code session after 10 minutes', async () => {
    const key = generateSigningKey();
    const codeSession = await enrolled('dee', key);
    rig.advance(10 * 60_000);
    expect(code(await svc.authenticate(codeSession))).toBe('ERR_UNAUTHENTICATED');
    const idle = ok(await keySignIn('dee', key));
    rig.advance(14 * 60_000);
    await who(idle.id);
    rig.advance(14 * 60_000);
    await who(idle.id);
    rig.advance(15 * 60_000);
    expect(code(await svc.authenticate(idle.id))).toBe('ERR_UNAUTHENTICATED');
    const busy = ok(await keySignIn('dee', key));
    for (let t = 0; t < 8 * 6 - 1; t += 1) {
      rig.advance(10 * 60_000);
      await who(busy.id);
    }
    rig.advance(10 * 60_000);
    expect(code(await svc.authenticate(busy.id))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await svc.authenticate(undefined))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await svc.authenticate('A'.repeat(43)))).toBe('ERR_UNAUTHENTICATED');
  });

  it('confirmation needs the enrolled kid; a removed approver is signed out and signs in no more', async () => {
    const key = generateSigningKey();
    await enrolled('eve', key);
    const early = ok(await keySignIn('eve', key));
    expect((await who(early.id)).approver).toBeUndefined();
    expect(code(await svc.confirm({ name: 'eve', kid: generateSigningKey().kid }, OPERATOR_ACTOR))).toBe(
      'ERR_KEY_INVALID',
    );
    expect(code(await svc.confirm({ name: 'nobody', kid: key.kid }, OPERATOR_ACTOR))).toBe(
      'ERR_APPROVER_UNKNOWN',
    );
    const rec = ok(await svc.confirm({ name: 'eve', kid: key.kid }, OPERATOR_ACTOR));
    expect(rec.kid).toBe(key.kid);
    // Confirmation ends the sessions of before it: the confirmed key signs in anew.
    expect(code(await svc.authenticate(early.id))).toBe('ERR_UNAUTHENTICATED');
    const s = ok(await keySignIn('eve', key));
    expect((await who(s.id)).approver?.kid).toBe(key.kid);
    // Inviting a confirmed approver again is refused; the invitation cannot replace its key.
    expect(
      code(await svc.invite({ name: 'eve', roles: ['treasury'], tenants: ['acme'] }, OPERATOR_ACTOR)),
    ).toBe('ERR_APPROVAL_INVALID');
    expect((await rig.operator('approvers-remove', { name: 'eve' })).status).toBe(200);
    expect(code(await svc.authenticate(s.id))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await keySignIn('eve', key))).toBe('ERR_UNAUTHENTICATED');
  });
  it('a re-invitation ends the sessions of the earlier one: an old code session cannot enrol into the new invitation', async () => {
    const old = ok(await svc.signInWithCode('fay', await invited('fay')));
    await who(old.id);
    const fresh = await invited('fay');
    expect(code(await svc.authenticate(old.id))).toBe('ERR_UNAUTHENTICATED');
    const real = generateSigningKey();
    const s = ok(await svc.signInWithCode('fay', fresh));
    expect(ok(await svc.enrol(await who(s.id), { ...real.publicJwk })).kid).toBe(real.kid);
  });

  it('an old key session never becomes the approver’s after a re-invitation, enrolment and confirmation', async () => {
    const attacker = generateSigningKey();
    await enrolled('gus', attacker);
    const stolen = ok(await keySignIn('gus', attacker));
    await who(stolen.id);
    rig.advance(1_000);
    const real = generateSigningKey();
    const codeSession = ok(await svc.signInWithCode('gus', await invited('gus')));
    ok(await svc.enrol(await who(codeSession.id), { ...real.publicJwk }));
    ok(await svc.confirm({ name: 'gus', kid: real.kid }, OPERATOR_ACTOR));
    expect(code(await svc.authenticate(stolen.id))).toBe('ERR_UNAUTHENTICATED');
    // Confirmation ends the person's own sessions too; the confirmed key signs in anew.
    expect(code(await svc.authenticate(codeSession.id))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await keySignIn('gus', attacker))).toBe('ERR_UNAUTHENTICATED');
    const s = ok(await keySignIn('gus', real));
    expect((await who(s.id)).approver?.kid).toBe(real.kid);
  });

  it('a session is bound to its invitation and its key: one from before them is refused even when left in the store', async () => {
    const store = rig.instance.core.console.store;
    const key = generateSigningKey();
    const c = await invited('hal');
    rig.advance(1_000);
    const s = ok(await svc.signInWithCode('hal', c));
    ok(await svc.enrol(await who(s.id), { ...key.publicJwk }));
    const p = await store.person('hal');
    if (p?.enrolled_at === null || p === undefined) throw new Error('not enrolled');
    // Sessions as an earlier invitation (before it) or an earlier key (before its enrolment) left them.
    const before = { code: 'c'.repeat(43), key: 'k'.repeat(43) };
    const made = { code: p.invited_at - 1, key: p.enrolled_at - 1 };
    for (const method of ['code', 'key'] as const)
      await store.createSession(
        {
          id_sha256: sha256Hex(before[method]),
          name: 'hal',
          method,
          created_at: made[method],
          last_seen: p.enrolled_at,
        },
        0,
      );
    expect(code(await svc.authenticate(before.code))).toBe('ERR_UNAUTHENTICATED');
    expect(code(await svc.authenticate(before.key))).toBe('ERR_UNAUTHENTICATED');
    ok(await keySignIn('hal', key));
  });
});

describe('console without an OIDC issuer', () => {
  it('refuses an invitation bound to an OIDC subject, and an unbound session has no issuer step', async () => {
    const bound = await svc.invite(
      { name: 'oscar', roles: ['treasury'], tenants: ['acme'], oidc_subject: 'oscar-sub' },
      OPERATOR_ACTOR,
    );
    expect(code(bound)).toBe('ERR_APPROVAL_INVALID');
    const s = ok(await svc.signInWithCode('oscar', await invited('oscar')));
    const w = await who(s.id);
    expect(code(await svc.oidcBegin(w))).toBe('ERR_OIDC_INVALID');
    expect(code(await svc.oidcFinish(w, undefined, { code: 'c', state: 's' }))).toBe('ERR_OIDC_INVALID');
    // The local sign-in stays whole: the code session enrols.
    expect(code(await svc.enrol(w, { ...generateSigningKey().publicJwk }))).toBeUndefined();
  });
});
