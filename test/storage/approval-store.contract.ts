/**
 * The contract of the approval state (OE-INV-019/020, FC-INV-4 single use, L7 Break-glass), run
 * against every implementation of `ApprovalStore`: approvers registered once with checked keys,
 * pending approvals inserted once and read back as stored, a vote recorded at most once per
 * approver and decision with its signed approval hash used once, every state transition true
 * exactly once (finalize only from `pending`, issue only from `approved`, a review closed once),
 * break-glass grants in scope until they expire, another instance over the same storage seeing
 * every change, one decision's critical section entered by one caller at a time across
 * instances, tampered rows refused, and a closed store rejecting.
 */
import { describe, expect, it } from 'vitest';
import type {
  ApprovalStore,
  BreakGlassGrant,
  PendingRecord,
  ReviewRecord,
  VoteRecord,
} from '../../src/control-plane/index.js';
import { sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

/** A store over fresh, empty storage, and ways to reach that storage from outside. */
export interface ApprovalStoreFixture {
  readonly store: ApprovalStore;
  /** Another instance over the same storage (another process, another replica); the fixture closes it. */
  readonly openAnother: () => Promise<ApprovalStore>;
  /** Runs one statement (plain SQL both backends accept) on the storage, as tampering would. */
  readonly exec: (sql: string) => Promise<void>;
  /** Closes everything the fixture opened and removes the storage. */
  readonly dispose: () => Promise<void>;
}

const T = 1_750_000_000_000;
const hex = (s: string): string => sha256Hex(s);

/** A pending approval of a call. */
export function pendingRecord(id: string, over: Partial<PendingRecord> = {}): PendingRecord {
  return {
    decision_id: id,
    kind: 'call',
    request_id: `req-${id}`,
    trace_id: `trace-${id}`,
    identity: 'agent-1',
    owner: 'olga',
    tenant: 'acme',
    tool: 'wire',
    session: 'sess-1',
    params_sha256: hex(`params-${id}`),
    intent_sha256: hex(`intent-${id}`),
    params_view: { amount_cents: 100, note: '[REDACTED]' },
    preview: null,
    preview_sha256: null,
    risk: 'high',
    required: 2,
    roles: ['ops'],
    policy_bundle: hex('bundle'),
    decision_ref: { index: 3, entry_hash: hex('entry-3') },
    constraints: { max_cost_cents: null, egress: [], fs_read: [], fs_write: [] },
    created_at: T,
    expires_at: T + 3_600_000,
    status: 'pending',
    approvals: [],
    grant_id: null,
    ...over,
  };
}

/** A vote of `approver` on `id` whose approval hash derives from `tag`. */
export function voteRecord(id: string, approver: string, tag = `${id}:${approver}`, index = 5): VoteRecord {
  return {
    decision_id: id,
    approver,
    verdict: 'approve',
    role: 'ops',
    method: 'key',
    approval_sha256: hex(`approval-${tag}`),
    at: T + 1000,
    ledger_index: index,
    candidate: { statement: { approver, decision_id: id }, signature: 'sig' },
  };
}

function grant(id: string, over: Partial<BreakGlassGrant> = {}): BreakGlassGrant {
  return {
    grant_id: id,
    approver: 'sam',
    role: 'L4',
    tenant: 'acme',
    tool: 'wire',
    reason_category: 'incident',
    reason: 'outage',
    created_at: T,
    expires_at: T + 600_000,
    ledger_index: 7,
    statement_sha256: hex(`grant-${id}`),
    ...over,
  };
}

function review(id: string): ReviewRecord {
  return {
    review_id: id,
    grant_id: 'bg_1',
    decision_id: 'd-1',
    opened_for: 'sam',
    opened_at: T,
    status: 'open',
    closed_by: null,
    closed_at: null,
    notes: null,
  };
}

/** Runs the contract against the stores `make` opens (each over fresh storage). */
export function runApprovalStoreContract(name: string, make: () => Promise<ApprovalStoreFixture>): void {
  const withFixture = (fn: (f: ApprovalStoreFixture) => Promise<void>) => async () => {
    const f = await make();
    try {
      await fn(f);
    } finally {
      await f.dispose();
    }
  };

  describe(`ApprovalStore contract: ${name} (OE-INV-019/020)`, () => {
    it(
      'registers an approver once, with its checked key; lists and exports the keys',
      withFixture(async ({ store }) => {
        const ann = generateSigningKey();
        const ben = generateSigningKey();
        const rec = await store.registerApprover({
          name: 'ben',
          roles: ['ops', 'L4'],
          tenants: '*',
          jwk: ben.publicJwk,
          atMs: T,
        });
        expect(rec).toEqual({
          name: 'ben',
          roles: ['L4', 'ops'],
          tenants: '*',
          kid: ben.kid,
          status: 'active',
          registered_at: T,
        });
        await store.registerApprover({
          name: 'ann',
          roles: ['ops'],
          tenants: ['acme'],
          jwk: ann.publicJwk,
          atMs: T + 1,
        });
        await expect(
          store.registerApprover({
            name: 'ann',
            roles: ['ops'],
            tenants: ['acme'],
            jwk: ben.publicJwk,
            atMs: T,
          }),
        ).rejects.toThrow(TypeError);
        await expect(
          store.registerApprover({
            name: 'cid',
            roles: ['ops'],
            tenants: ['acme'],
            jwk: { kty: 'RSA' },
            atMs: T,
          }),
        ).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
        const a = await store.approver('ann');
        expect(a).toMatchObject({ name: 'ann', kid: ann.kid, status: 'active' });
        expect(a?.publicKey.asymmetricKeyType).toBe('ed25519');
        expect(await store.approver('cid')).toBeUndefined();
        expect((await store.listApprovers()).map((x) => x.name)).toEqual(['ann', 'ben']);
        const jwks = await store.approverJwks();
        expect(jwks.keys.map((k) => k.kid)).toEqual([ann.kid, ben.kid].sort());
        expect(jwks.revoked).toEqual([]);
      }),
    );

    it(
      'keeps an approver’s tenant scope, refuses an empty one, and removes an approver once (OE-INV-020)',
      withFixture(async ({ store }) => {
        const ann = generateSigningKey();
        await store.registerApprover({
          name: 'ann',
          roles: ['ops'],
          tenants: ['beta', 'acme', 'acme'],
          jwk: ann.publicJwk,
          atMs: T,
        });
        expect(await store.approver('ann')).toMatchObject({ tenants: ['acme', 'beta'], status: 'active' });
        await expect(
          store.registerApprover({ name: 'cid', roles: ['ops'], tenants: [], jwk: ann.publicJwk, atMs: T }),
        ).rejects.toThrow(TypeError);
        expect(await store.approver('cid')).toBeUndefined();
        expect(await store.revokeApprover('ann')).toBe(true);
        expect(await store.revokeApprover('ann')).toBe(false);
        expect(await store.revokeApprover('nobody')).toBe(false);
        expect(await store.approver('ann')).toMatchObject({ status: 'revoked', tenants: ['acme', 'beta'] });
        expect((await store.approverJwks()).revoked).toEqual([ann.kid]);
      }),
    );

    it(
      'an approver row that omits its scope never reads as every tenant: reading it refuses',
      withFixture(async ({ store, exec }) => {
        const old = generateSigningKey();
        const jwk = JSON.stringify(old.publicJwk).replace(/'/g, "''");
        await exec(
          `INSERT INTO approval_approvers (name, roles, kid, jwk, status, registered_at) VALUES ('olga', '["ops"]', '${old.kid}', '${jwk}', 'active', ${T})`,
        );
        // Rows from before scopes existed are set to "*" by the migration itself (upgrade.test.ts).
        await expect(store.approver('olga')).rejects.toThrow(TypeError);
      }),
    );

    it(
      'records client owners, the last one standing',
      withFixture(async ({ store }) => {
        expect(await store.ownerOf('agent-1')).toBeUndefined();
        await store.setOwner('agent-1', 'olga');
        await store.setOwner('agent-1', 'oscar');
        expect(await store.ownerOf('agent-1')).toBe('oscar');
      }),
    );

    it(
      'inserts a pending approval once and reads it back as stored; the first stays',
      withFixture(async ({ store }) => {
        const rec = pendingRecord('d-1');
        expect(await store.insertPending(rec)).toBe(true);
        expect(await store.insertPending(pendingRecord('d-1', { required: 9 }))).toBe(false);
        expect(await store.pending('d-1')).toEqual(rec);
        expect(await store.pending('d-2')).toBeUndefined();
        await store.insertPending(pendingRecord('d-0', { created_at: T - 1 }));
        expect((await store.listPending()).map((p) => p.decision_id)).toEqual(['d-0', 'd-1']);
      }),
    );

    it(
      'a vote counts once per approver and decision, and its signed approval hash once (FC-INV-4)',
      withFixture(async ({ store }) => {
        await store.insertPending(pendingRecord('d-1'));
        expect(await store.addVote(voteRecord('d-1', 'ann'))).toBe('ok');
        expect(await store.addVote(voteRecord('d-1', 'ann'))).toBe('duplicate');
        expect(await store.addVote(voteRecord('d-1', 'ann', 'other statement'))).toBe('duplicate');
        // Another approver presenting ann's signed approval: replayed, and not recorded.
        expect(await store.addVote(voteRecord('d-1', 'ben', 'd-1:ann'))).toBe('replayed');
        expect(await store.markUsed(hex('approval-d-1:ann'), T)).toBe(false);
        // A statement hash used by break-glass or a review can never become a vote.
        expect(await store.markUsed(hex('approval-d-1:cid'), T)).toBe(true);
        expect(await store.markUsed(hex('approval-d-1:cid'), T)).toBe(false);
        expect(await store.addVote(voteRecord('d-1', 'cid'))).toBe('replayed');
        expect(await store.addVote(voteRecord('d-1', 'ben', 'd-1:ben', 6))).toBe('ok');
        const votes = await store.votes('d-1');
        expect(votes).toEqual([voteRecord('d-1', 'ann'), voteRecord('d-1', 'ben', 'd-1:ben', 6)]);
        expect(await store.votes('d-2')).toEqual([]);
      }),
    );

    it(
      'finalize only from pending, issue only from approved: each true exactly once',
      withFixture(async ({ store }) => {
        await store.insertPending(pendingRecord('d-1'));
        await store.insertPending(pendingRecord('d-2'));
        expect(await store.markIssued('d-1')).toBe(false);
        expect(await store.finalize('d-1', 'approved', ['a1', 'a2'])).toBe(true);
        expect(await store.finalize('d-1', 'rejected', [])).toBe(false);
        expect(await store.pending('d-1')).toMatchObject({ status: 'approved', approvals: ['a1', 'a2'] });
        expect(await store.markIssued('d-1')).toBe(true);
        expect(await store.markIssued('d-1')).toBe(false);
        expect((await store.pending('d-1'))?.status).toBe('issued');
        expect(await store.finalize('d-1', 'expired', [])).toBe(false);
        expect(await store.finalize('d-2', 'rejected', [])).toBe(true);
        expect(await store.markIssued('d-2')).toBe(false);
        expect(await store.finalize('d-3', 'approved', [])).toBe(false);
        expect(await store.markIssued('d-3')).toBe(false);
        await store.insertPending(pendingRecord('d-4'));
        expect(await store.finalize('d-4', 'approved', ['bg-ref'], 'bg_1')).toBe(true);
        expect(await store.pending('d-4')).toMatchObject({ status: 'approved', grant_id: 'bg_1' });
      }),
    );

    it(
      'a break-glass grant is in scope of its tenant and tool until it expires; the latest wins',
      withFixture(async ({ store }) => {
        await store.insertGrant(grant('bg_1'));
        await store.insertGrant(grant('bg_2', { expires_at: T + 900_000 }));
        await store.insertGrant(grant('bg_3', { tool: 'pay', expires_at: T + 999_000 }));
        expect(await store.activeGrant('acme', 'wire', T)).toEqual(
          grant('bg_2', { expires_at: T + 900_000 }),
        );
        expect((await store.activeGrant('acme', 'wire', T + 900_000))?.grant_id).toBeUndefined();
        expect(await store.activeGrant('other', 'wire', T)).toBeUndefined();
        // Every unexpired grant, of any tenant and tool, the latest expiry first.
        expect((await store.activeGrants(T)).map((g) => g.grant_id)).toEqual(['bg_3', 'bg_2', 'bg_1']);
        expect((await store.activeGrants(T + 900_000)).map((g) => g.grant_id)).toEqual(['bg_3']);
        expect(await store.activeGrants(T + 999_000)).toEqual([]);
        await expect(store.insertGrant(grant('bg_1'))).rejects.toThrow(Error);
      }),
    );

    it(
      'an ended (revoked) grant is found by no lookup from then on; ending is true once',
      withFixture(async ({ store }) => {
        await store.insertGrant(grant('bg_1', { expires_at: T + 900_000 }));
        await store.insertGrant(grant('bg_2', { expires_at: T + 800_000 }));
        expect(await store.endGrant('bg_1', T + 1000)).toBe(true);
        expect(await store.endGrant('bg_1', T + 2000)).toBe(false);
        expect(await store.endGrant('bg_unknown', T + 1000)).toBe(false);
        expect((await store.activeGrant('acme', 'wire', T + 1000))?.grant_id).toBe('bg_2');
        expect((await store.activeGrants(T + 1000)).map((g) => g.grant_id)).toEqual(['bg_2']);
        // An expired grant cannot be ended again.
        expect(await store.endGrant('bg_2', T + 800_000)).toBe(false);
      }),
    );

    it(
      'a review item is opened once and closed once',
      withFixture(async ({ store }) => {
        await store.insertReview(review('rv_1'));
        await store.insertReview({ ...review('rv_1'), opened_for: 'someone else' });
        expect(await store.review('rv_1')).toEqual(review('rv_1'));
        expect(await store.closeReview('rv_1', 'rita', 'checked', T + 5)).toBe(true);
        expect(await store.closeReview('rv_1', 'rob', 'again', T + 6)).toBe(false);
        expect(await store.review('rv_1')).toEqual({
          ...review('rv_1'),
          status: 'closed',
          closed_by: 'rita',
          closed_at: T + 5,
          notes: 'checked',
        });
        expect(await store.closeReview('rv_2', 'rita', 'none', T)).toBe(false);
        expect((await store.listReviews()).map((r) => r.review_id)).toEqual(['rv_1']);
      }),
    );

    it(
      'another instance over the same storage sees every change and every single use',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        await store.insertPending(pendingRecord('d-1'));
        expect(await other.insertPending(pendingRecord('d-1'))).toBe(false);
        expect(await store.addVote(voteRecord('d-1', 'ann'))).toBe('ok');
        expect(await other.addVote(voteRecord('d-1', 'ann'))).toBe('duplicate');
        expect(await other.finalize('d-1', 'approved', ['x'])).toBe(true);
        expect(await store.finalize('d-1', 'approved', ['x'])).toBe(false);
        expect(await store.markIssued('d-1')).toBe(true);
        expect(await other.markIssued('d-1')).toBe(false);
        expect((await other.pending('d-1'))?.status).toBe('issued');
      }),
    );

    it(
      'refuses tampered rows: the read rejects, it never answers a forged record',
      withFixture(async ({ store, exec }) => {
        const key = generateSigningKey();
        await store.registerApprover({
          name: 'ann',
          roles: ['ops'],
          tenants: ['acme'],
          jwk: key.publicJwk,
          atMs: T,
        });
        await store.insertPending(pendingRecord('d-1'));
        await store.insertPending(pendingRecord('d-2'));
        await store.insertPending(pendingRecord('d-3'));
        await store.addVote(voteRecord('d-1', 'ann'));
        await exec(`UPDATE approval_pending SET approvals = '{"forged":true}' WHERE decision_id = 'd-1'`);
        await expect(store.pending('d-1')).rejects.toThrow(TypeError);
        await expect(store.listPending()).rejects.toThrow(TypeError);
        // A body moved to another decision's row.
        await exec(
          `UPDATE approval_pending SET body = (SELECT body FROM approval_pending WHERE decision_id = 'd-3') WHERE decision_id = 'd-2'`,
        );
        await expect(store.pending('d-2')).rejects.toThrow(TypeError);
        await exec(`UPDATE approval_votes SET candidate = '[1]'`);
        await expect(store.votes('d-1')).rejects.toThrow(TypeError);
        // A public key swapped for another: its kid no longer matches.
        const other = generateSigningKey();
        await exec(`UPDATE approval_approvers SET jwk = '${JSON.stringify(other.publicJwk)}'`);
        await expect(store.approver('ann')).rejects.toThrow(TypeError);
        await expect(store.approverJwks()).rejects.toThrow(TypeError);
        await exec(`UPDATE approval_approvers SET jwk = '{"kty":"OKP","crv":"Ed25519","x":"AAAA"}'`);
        await expect(store.approver('ann')).rejects.toThrow(TypeError);
      }),
    );

    it(
      'one decision’s critical section: its steps run one at a time across instances, other decisions pass, a failing step leaves it',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        const events: string[] = [];
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let entered!: () => void;
        const inside = new Promise<void>((r) => (entered = r));
        const first = store.withDecisionLock('d-1', async () => {
          events.push('first in');
          entered();
          await held;
          events.push('first out');
          return 'first';
        });
        await inside;
        const second = other.withDecisionLock('d-1', () => {
          events.push('second in');
          return Promise.resolve('second');
        });
        // Another decision's section is free meanwhile, on either instance.
        expect(await other.withDecisionLock('d-2', () => Promise.resolve('d-2'))).toBe('d-2');
        expect(await store.withDecisionLock('d-3', () => Promise.resolve('d-3'))).toBe('d-3');
        expect(events).toEqual(['first in']);
        release();
        expect(await Promise.all([first, second])).toEqual(['first', 'second']);
        expect(events).toEqual(['first in', 'first out', 'second in']);
        // A step that fails passes its rejection on and leaves the section.
        await expect(
          store.withDecisionLock('d-1', () => Promise.reject(new Error('step failed'))),
        ).rejects.toThrow('step failed');
        expect(await other.withDecisionLock('d-1', () => Promise.resolve('after'))).toBe('after');
      }),
    );

    it(
      'approvals watched: rate-limit slots never exceed the limit across instances, per window (L7 hardening)',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        const H = 3_600_000;
        const taken = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            (i % 2 === 0 ? store : other).takeApprovalSlot('ann', T, H, 5),
          ),
        );
        expect(taken.filter(Boolean)).toHaveLength(5);
        expect(await other.takeApprovalSlot('ann', T, H, 5)).toBe(false);
        // Another approver, another window: their own slots.
        expect(await store.takeApprovalSlot('ben', T, H, 5)).toBe(true);
        expect(await store.takeApprovalSlot('ann', T + H, H, 5)).toBe(true);
        await expect(store.takeApprovalSlot('ann', T, H, 0)).rejects.toThrow(TypeError);
        await expect(store.takeApprovalSlot('ann', T, 0, 5)).rejects.toThrow(TypeError);
      }),
    );

    it(
      'approvals watched: a replica past the window boundary never resets the window a lagging one counts in',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        const W = 60_000;
        const w10 = 10 * W;
        // Limit 2; the fourth slot is asked for by a replica whose clock is already in window 11.
        const asked = [w10, w10, w10, w10 + W, w10, w10, w10];
        const taken: boolean[] = [];
        for (const [i, start] of asked.entries())
          taken.push(await (i % 2 === 0 ? store : other).takeApprovalSlot('ann', start, W, 2));
        expect(taken).toEqual([true, true, false, true, false, false, false]);
        // Two windows on: the old ones are pruned, the limit is whole again.
        expect(await store.takeApprovalSlot('ann', w10 + 2 * W, W, 2)).toBe(true);
        expect(await other.takeApprovalSlot('ann', w10 + 2 * W, W, 2)).toBe(true);
        expect(await store.takeApprovalSlot('ann', w10 + 2 * W, W, 2)).toBe(false);
      }),
    );

    it(
      "approvals watched: a window's rate-limit refusal is marked recorded exactly once",
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        const W = 60_000;
        // No window on record: nothing to mark.
        expect(await store.markRateRefusal('ann', T)).toBe(false);
        expect(await store.takeApprovalSlot('ann', T, W, 1)).toBe(true);
        const marks = await Promise.all([
          store.markRateRefusal('ann', T),
          other.markRateRefusal('ann', T),
          store.markRateRefusal('ann', T),
        ]);
        expect(marks.filter(Boolean)).toHaveLength(1);
        expect(await other.markRateRefusal('ann', T)).toBe(false);
        // The next window marks anew.
        expect(await other.takeApprovalSlot('ann', T + W, W, 1)).toBe(true);
        expect(await store.markRateRefusal('ann', T + W)).toBe(true);
      }),
    );

    it(
      'approvals watched: a flag is kept per decision and human; require_extra only ever rises',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        const flag = (extra: boolean, flags: ('unviewed_quick' | 'burst')[], at: number) => ({
          decision_id: 'd-1',
          approver: 'ann',
          tenant: 'acme',
          at,
          flags,
          extra,
        });
        await store.recordFlag(flag(false, ['burst'], T));
        await other.recordFlag(flag(true, ['unviewed_quick'], T + 1));
        // A later flag without require_extra never lowers it.
        await store.recordFlag(flag(false, ['burst'], T + 2));
        expect(await other.flagged('d-1')).toEqual([flag(true, ['burst'], T)]);
        expect(await store.flagged('d-2')).toEqual([]);
      }),
    );

    it(
      'approvals watched: the first view stays; activity reads back as recorded',
      withFixture(async ({ store, openAnother }) => {
        const other = await openAnother();
        expect(await store.viewedAt('d-1', 'ann')).toBeUndefined();
        await store.recordView('d-1', 'ann', T + 5);
        await other.recordView('d-1', 'ann', T + 9);
        expect(await other.viewedAt('d-1', 'ann')).toBe(T + 5);
        const hour = 3_600_000;
        await store.recordActivity({
          decision_id: 'd-1',
          approver: 'ann',
          tenant: 'acme',
          at: T,
          flags: [],
          extra: false,
        });
        await other.recordActivity({
          decision_id: 'd-2',
          approver: 'ann',
          tenant: 'globex',
          at: T + hour,
          flags: ['unviewed_quick', 'burst'],
          extra: true,
        });
        // A repeat is kept as it is.
        await store.recordActivity({
          decision_id: 'd-2',
          approver: 'ann',
          tenant: 'x',
          at: T,
          flags: [],
          extra: false,
        });
        const a = await store.activity('ann', T + 1);
        expect(a).toEqual({
          total: 2,
          recent: 1,
          tenants: ['acme', 'globex'],
          hours: [new Date(T).getUTCHours(), new Date(T + hour).getUTCHours()].sort((x, y) => x - y),
        });
        expect(await other.activity('nobody', T)).toEqual({ total: 0, recent: 0, tenants: [], hours: [] });
      }),
    );

    it(
      'a closed store rejects every call',
      withFixture(async ({ openAnother }) => {
        const other = await openAnother();
        await other.close();
        await expect(other.pending('d-1')).rejects.toThrow(Error);
        await expect(other.markIssued('d-1')).rejects.toThrow(Error);
        await expect(other.addVote(voteRecord('d-1', 'ann'))).rejects.toThrow(Error);
        let ran = false;
        await expect(
          other.withDecisionLock('d-1', () => {
            ran = true;
            return Promise.resolve();
          }),
        ).rejects.toThrow(Error);
        expect(ran).toBe(false);
      }),
    );
  });
}
