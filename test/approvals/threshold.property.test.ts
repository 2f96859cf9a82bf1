/**
 * Threshold logic as properties (OE-INV-019/020, SPEC §7 scenario 11): a set of approvals meets
 * the threshold exactly when it holds at least `required` distinct valid approvals and no valid
 * rejection. Duplicates, self-approvals, agents, wrong roles, expired, forged, unknown,
 * foreign-intent or out-of-scope (another tenant's approver) approvals never count, whatever
 * their number or order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url } from '../../src/kernel/index.js';
import type { ApprovalStatement } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { checkApproval, tallyApprovals } from '../../src/control-plane/index.js';
import type { ApprovalCandidate, ApprovalRules } from '../../src/control-plane/index.js';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const VALID = ['a1', 'a2', 'a3', 'a4', 'a5'];
const people = new Map<string, { key: SigningKey; roles: string[] }>([
  ...VALID.map((n): [string, { key: SigningKey; roles: string[] }] => [
    n,
    { key: generateSigningKey(), roles: ['treasury'] },
  ]),
  ['owner', { key: generateSigningKey(), roles: ['treasury'] }],
  ['agent', { key: generateSigningKey(), roles: ['treasury'] }],
  ['fin', { key: generateSigningKey(), roles: ['finance'] }],
  ['glo', { key: generateSigningKey(), roles: ['treasury'] }],
]);
/** Tenant scopes (OE-INV-020): `glo` decides for another tenant only; everyone else for every tenant. */
const scopeOf = (name: string): readonly string[] | '*' => (name === 'glo' ? ['globex'] : '*');

function rules(required: number): ApprovalRules {
  return {
    decision_id: 'dec-1',
    intent_sha256: 'a'.repeat(64),
    preview_sha256: null,
    tenant: 'acme',
    required,
    roles: ['treasury'],
    requester: 'bot',
    owner: 'owner',
    created_at: NOW - 60_000,
    expires_at: NOW + 3600_000,
    now: NOW,
    skewMs: 120_000,
    maxAgeMs: 900_000,
    approver: (name) => {
      const p = people.get(name);
      return p === undefined
        ? undefined
        : { roles: p.roles, tenants: scopeOf(name), publicKey: p.key.publicKey, status: 'active' };
    },
    isClient: (name) => name === 'agent' || name === 'bot',
  };
}

type Kind =
  'valid' | 'reject' | 'self' | 'agent' | 'role' | 'expired' | 'forged' | 'unknown' | 'intent' | 'tenant';

function candidate(kind: Kind, who: string): ApprovalCandidate {
  const name =
    kind === 'self'
      ? 'owner'
      : kind === 'agent'
        ? 'agent'
        : kind === 'role'
          ? 'fin'
          : kind === 'unknown'
            ? 'nobody'
            : kind === 'tenant'
              ? 'glo'
              : who;
  const s: ApprovalStatement = {
    decision_id: 'dec-1',
    intent_sha256: kind === 'intent' ? 'b'.repeat(64) : 'a'.repeat(64),
    preview_sha256: null,
    verdict: kind === 'reject' ? 'reject' : 'approve',
    justification: 'ok',
    timestamp: new Date(kind === 'expired' ? NOW - 3600_000 : NOW - 1000).toISOString(),
    approver: name,
  };
  const key = kind === 'forged' || kind === 'unknown' ? generateSigningKey() : people.get(name)!.key;
  return { statement: { ...s }, signature: encodeBase64url(signEd25519(key, approvalSigningInput(s))) };
}

const BAD: Kind[] = ['self', 'agent', 'role', 'expired', 'forged', 'unknown', 'intent', 'tenant'];
const arbCandidate = fc.record({
  kind: fc.constantFrom<Kind>('valid', 'valid', ...BAD),
  who: fc.constantFrom(...VALID),
});

describe('tallyApprovals (property)', () => {
  it('meets the threshold iff distinct valid approvals ≥ required (no rejections in the set)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(arbCandidate, { maxLength: 12 }),
        (required, list) => {
          const t = tallyApprovals(
            rules(required),
            list.map((c) => candidate(c.kind, c.who)),
          );
          const distinctValid = new Set(list.filter((c) => c.kind === 'valid').map((c) => c.who)).size;
          expect(t.met).toBe(distinctValid >= required);
          expect(new Set(t.approvers).size).toBe(t.approvers.length);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('invalid approvals and duplicates added to an insufficient set never meet the threshold', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.array(fc.constantFrom(...BAD), { minLength: 1, maxLength: 10 }),
        (required, bad) => {
          const valid = VALID.slice(0, required - 1).map((w) => candidate('valid', w));
          const duplicates = valid.map((_, i) => candidate('valid', VALID[i]!));
          const t = tallyApprovals(rules(required), [
            ...valid,
            ...duplicates,
            ...bad.map((k) => candidate(k, 'a1')),
          ]);
          expect(t.met).toBe(false);
          expect(t.approvers.length).toBe(required - 1);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('one valid rejection denies, however many approvals there are', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.constantFrom(...VALID), (required, rejecter) => {
        const approvals = VALID.filter((w) => w !== rejecter).map((w) => candidate('valid', w));
        const t = tallyApprovals(rules(required), [...approvals, candidate('reject', rejecter)]);
        expect(t.rejected).toBe(true);
        expect(t.met).toBe(false);
      }),
      { numRuns: 30 },
    );
  });

  it('a rejection counts after the same approver approved first, and once older than the statements’ age', () => {
    // The first decision of a human is the one counted for approvals; a valid rejection refuses
    // whenever it is among the votes (a refusal is never outvoted by its own author's approval).
    const t = tallyApprovals(rules(1), [candidate('valid', 'a1'), candidate('reject', 'a1')]);
    expect(t).toMatchObject({ rejected: true, met: false });
    // An hour on, the approvals have aged out of the count; the rejection has not.
    const later = { ...rules(1), now: NOW + 3600_000, expires_at: NOW + 7200_000 };
    const aged = tallyApprovals(later, [candidate('valid', 'a2'), candidate('reject', 'a1')]);
    expect(aged).toMatchObject({ rejected: true, met: false, approvers: [] });
    // An aged rejection that fails another check (another decision's intent) still does not count.
    const foreign = { ...candidate('intent', 'a1') };
    const st = { ...(foreign.statement as ApprovalStatement), verdict: 'reject' as const };
    const forgedOld = {
      statement: st,
      signature: encodeBase64url(signEd25519(people.get('a1')!.key, approvalSigningInput(st))),
    };
    expect(tallyApprovals(later, [forgedOld])).toMatchObject({ rejected: false });
  });

  it('each kind of invalid approval is refused with its code', () => {
    const code = (k: Kind): string | undefined => {
      const r = checkApproval(rules(1), candidate(k, 'a1'));
      return 'code' in r ? r.code : undefined;
    };
    expect(code('valid')).toBeUndefined();
    expect(code('self')).toBe('ERR_APPROVAL_SELF');
    expect(code('agent')).toBe('ERR_APPROVER_AGENT');
    expect(code('role')).toBe('ERR_APPROVER_ROLE');
    expect(code('expired')).toBe('ERR_APPROVAL_EXPIRED');
    expect(code('forged')).toBe('ERR_APPROVAL_SIGNATURE');
    expect(code('unknown')).toBe('ERR_APPROVER_UNKNOWN');
    expect(code('intent')).toBe('ERR_APPROVAL_INVALID');
    expect(code('tenant')).toBe('ERR_APPROVER_TENANT');
    // A policy activation (tenant `*`) is covered by every-tenant approvers only.
    expect(checkApproval({ ...rules(1), tenant: '*' }, candidate('valid', 'a1'))).not.toHaveProperty('code');
    expect(checkApproval({ ...rules(1), tenant: '*' }, candidate('tenant', 'a1'))).toMatchObject({
      code: 'ERR_APPROVER_TENANT',
    });
    expect(checkApproval({ ...rules(1), owner: null }, candidate('valid', 'a1'))).toMatchObject({
      code: 'ERR_APPROVAL_SELF',
    });
    expect(checkApproval(rules(1), { statement: { nope: true }, signature: 'x' })).toMatchObject({
      code: 'ERR_APPROVAL_INVALID',
    });
    expect(() => tallyApprovals(rules(0), [])).toThrow(TypeError);
  });
});
