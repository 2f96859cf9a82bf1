/**
 * `failclosed verify` on approvals (OE-INV-019/020, L7): an exported bundle with two approvals
 * and a break-glass use passes; every forgery an attacker could make to the approval evidence is
 * named. Only the approvals check runs (`--invariant OE-INV-019`), so the tampering need not
 * re-hash entries to reach it; the ledger checks catch unhashed edits on their own.
 */
import { v1Of } from '../verify/v1.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from './support.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Mutable = Record<string, any>;

let rig: Rig;
/** The deployment's trust file (`failclosed trust-roots`). */
let trust: string;
let original: string;

beforeAll(async () => {
  rig = await startRig();
  for (const [n, r] of [
    ['alice', 'treasury'],
    ['bob', 'treasury'],
    ['dave', 'L4'],
  ] as const)
    expect((await rig.cli('approvers', 'add', n, '--role', r)).code).toBe(0);
  const params = { from_account: 'acct_a', to_account: 'acct_b', amount: 5000, currency: 'USD' };
  const first = await rig.agent().call('transfer_funds', params);
  if (first.outcome !== 'pending') throw new Error('expected pending');
  for (const n of ['alice', 'bob'])
    await rig.cli('approvals', 'approve', first.decision_id, '--as', n, '--justification', 'ok');
  expect((await rig.agent().call('transfer_funds', params, { requestId: first.request_id })).outcome).toBe(
    'executed',
  );
  await rig.cli(
    'break-glass',
    '--as',
    'dave',
    '--tool',
    'transfer_funds',
    '--tenant',
    'acme',
    '--reason-category',
    'incident',
    '--reason',
    'outage',
    '--ttl',
    '300',
  );
  expect((await rig.agent().call('transfer_funds', { ...params, amount: 6000 })).outcome).toBe('executed');
  const out = join(rig.dir, 'bundle.json');
  expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
  // The export is v2; these tests tamper with the bundle as one object (v1, same verdict).
  original = v1Of(readFileSync(out, 'utf8'));
  const trustPath = join(rig.dir, 'trust-roots.json');
  expect((await rig.cli('trust-roots', '--out', trustPath)).code).toBe(0);
  trust = readFileSync(trustPath, 'utf8');
}, 60_000);

afterAll(async () => {
  await rig.close();
});

const codes = (b: Mutable): string[] => {
  const r = verifyBundle(Buffer.from(JSON.stringify(b)), { invariant: 'OE-INV-019' });
  return [...new Set(r.checks.flatMap((c) => c.findings.map((f) => f.code)))].sort();
};
const fresh = (): Mutable => JSON.parse(original) as Mutable;
const entries = (b: Mutable, type: string): Mutable[] =>
  (b['entries'] as Mutable[]).filter((e) => e['type'] === type);

/** Edits the envelope claims an `envelope.issued` record states (it never holds the JWS). */
function rewriteEnvelope(e: Mutable, change: (claims: Mutable) => void): void {
  change(e['payload']);
}

describe('verify: approvals', () => {
  it('the exported bundle passes every check, approvals included', () => {
    const report = verifyBundle(Buffer.from(original), { trust });
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.id === 'approvals')?.status).toBe('pass');
    expect(report.requirements['OE-INV-019']).toBe('pass');
  });

  it('approvals verify only under pinned approver keys: an approver key the trust file lacks fails', () => {
    const pinned = JSON.parse(trust) as Mutable;
    expect((pinned['approvers'] as Mutable)['keys'].length).toBeGreaterThan(0);
    // The bundle's own approver keys are what a forger would swap; the pinned ones decide.
    const withoutApprovers = JSON.stringify({ ...pinned, approvers: { keys: [], revoked: [] } });
    const report = verifyBundle(Buffer.from(original), { trust: withoutApprovers });
    expect(report.exitCode).toBe(1);
    expect(report.checks.find((c) => c.id === 'approvals')?.findings[0]).toMatchObject({
      code: 'APPROVAL_SIGNATURE',
    });
    expect(report.checks.find((c) => c.id === 'trust-roots')?.findings[0]).toMatchObject({
      code: 'TRUST_ROOT_MISMATCH',
    });
  });

  it('an approval by the requesting agent’s owner is named (OE-INV-002, re-checked offline)', () => {
    const b = fresh();
    const reg = entries(b, 'admin.client_registered').find((e) => e['payload']['client'] === 'demo-agent');
    expect(reg?.['payload']['owner']).toBe('operator');
    expect(codes(b)).not.toContain('APPROVAL_SELF');
    reg!['payload']['owner'] = 'alice';
    expect(codes(b)).toContain('APPROVAL_SELF');
  });

  it('names each forgery', () => {
    let b = fresh();
    b['jwks']['approvers'] = { keys: [{ ...generateSigningKey().publicJwk }], revoked: [] };
    expect(codes(b)).toContain('APPROVAL_SIGNATURE');

    b = fresh();
    const sha = entries(b, 'approval.added')[0]!['payload']['approval_sha256'] as string;
    delete b['evidence'][sha];
    expect(codes(b)).toContain('APPROVAL_MISSING');

    b = fresh();
    entries(b, 'approval.finalized').forEach((e) => (e['type'] = 'audit.read'));
    expect(codes(b)).toContain('APPROVAL_MISSING');

    b = fresh();
    const issued = entries(b, 'envelope.issued').find((e) =>
      entries(b, 'approval.added').some((a) => a['payload']['decision_id'] === e['payload']['decision_id']),
    )!;
    rewriteEnvelope(issued, (c) => (c['approvals'] = [c['approvals'][0], c['approvals'][0]]));
    expect(codes(b)).toContain('APPROVAL_DISTINCT');

    b = fresh();
    entries(b, 'approval.added')[1]!['payload']['justification'] = 'rewritten';
    expect(codes(b)).toContain('APPROVAL_BINDING');

    b = fresh();
    entries(b, 'approval.requested')[0]!['payload']['roles'] = ['board'];
    expect(codes(b)).toContain('APPROVAL_ROLE');

    b = fresh();
    entries(b, 'approval.requested')[0]!['payload']['expires_at'] = '2000-01-01T00:00:00.000Z';
    expect(codes(b)).toContain('APPROVAL_EXPIRED');

    b = fresh();
    const reg = entries(b, 'admin.client_registered').find((e) => e['payload']['key_use'] === 'request')!;
    reg['payload']['client'] = 'alice';
    expect(codes(b)).toContain('APPROVAL_AGENT');

    b = fresh();
    const receipt = entries(b, 'execution.receipt').find(
      (r) => r['payload']['jti'] === issued['payload']['jti'],
    )!;
    receipt['index'] = 0;
    expect(codes(b)).toContain('APPROVAL_ORDER');

    b = fresh();
    entries(b, 'review.opened').forEach((e) => (e['type'] = 'audit.read'));
    expect(codes(b)).toContain('APPROVAL_MISSING');
  });
});

/** The codes of the approvals check alone, for a bundle edited without re-hashing (only that check runs). */
const only = (b: Mutable): string[] => codes(b);
const first = (b: Mutable, type: string): Mutable => entries(b, type)[0]!;
/** The envelope.issued record of the decision approved by alice and bob. */
const approvedIssued = (b: Mutable): Mutable =>
  entries(b, 'envelope.issued').find(
    (e) => e['payload']['decision_id'] === first(b, 'approval.added')['payload']['decision_id'],
  )!;
const breakGlassFinal = (b: Mutable): Mutable =>
  entries(b, 'approval.finalized').find((e) => e['payload']['verdict'] === 'break_glass')!;
/** The break_glass.used record of the break-glass decision. */
const breakGlassUse = (b: Mutable): Mutable =>
  entries(b, 'break_glass.used').find(
    (e) => e['payload']['decision_id'] === breakGlassFinal(b)['payload']['decision_id'],
  )!;

describe('OE-INV-019/020: each approval finding on its own (approvals check only)', () => {
  it('the untouched export has no approval finding', () => {
    expect(only(fresh())).toEqual([]);
  });

  it.each([
    ['the approver named in the entry', (a: Mutable) => void (a['payload']['approver'] = 'mallory')],
    ['the approving actor', (a: Mutable) => void (a['actor']['id'] = 'mallory')],
    ['the decision id', (a: Mutable) => void (a['payload']['decision_id'] = 'd-other')],
  ])('OE-INV-019: an approval entry whose %s is not the signed statement’s: APPROVAL_BINDING', (_n, edit) => {
    const b = fresh();
    edit(first(b, 'approval.added'));
    expect(only(b)).toContain('APPROVAL_BINDING');
  });

  it('OE-INV-019: an approval bound to another intent or preview than requested: APPROVAL_BINDING', () => {
    for (const field of ['intent_sha256', 'preview_sha256']) {
      const b = fresh();
      for (const r of entries(b, 'approval.requested')) r['payload'][field] = 'ab'.repeat(32);
      expect(only(b)).toContain('APPROVAL_BINDING');
    }
  });

  it('OE-INV-019: a decision for another tool than the approved intent: APPROVAL_BINDING', () => {
    const b = fresh();
    const id = first(b, 'approval.added')['payload']['decision_id'];
    entries(b, 'decision').find((d) => d['payload']['decision_id'] === id)!['payload']['tool'] = 'echo';
    expect(only(b)).toEqual(['APPROVAL_BINDING']);
  });

  it('OE-INV-020: an approval before its request: APPROVAL_ORDER', () => {
    const b = fresh();
    for (const r of entries(b, 'approval.requested')) r['index'] = 1_000_000;
    expect(only(b)).toContain('APPROVAL_ORDER');
  });

  it('OE-INV-002: the requesting agent approving its own call: APPROVAL_AGENT', () => {
    const b = fresh();
    const id = first(b, 'approval.added')['payload']['decision_id'];
    entries(b, 'decision').find((d) => d['payload']['decision_id'] === id)!['payload']['client'] = 'alice';
    expect(only(b)).toContain('APPROVAL_AGENT');
  });

  it('OE-INV-017: an approval recorded after its window closed, or signed before it opened: APPROVAL_EXPIRED', () => {
    const late = fresh();
    first(late, 'approval.added')['at'] = '2100-01-01T00:00:00.000Z';
    expect(only(late)).toEqual(['APPROVAL_EXPIRED']);
    const early = fresh();
    for (const r of entries(early, 'approval.requested')) r['at'] = '2100-01-01T00:00:00.000Z';
    expect(only(early)).toContain('APPROVAL_EXPIRED');
  });

  it('L7 identity & signing: an approval under a role the entry’s actor does not hold, or a key not registered to the approver: APPROVAL_ROLE', () => {
    const role = fresh();
    first(role, 'approval.added')['actor']['role'] = 'L4';
    expect(only(role)).toEqual(['APPROVAL_ROLE']);
    const held = fresh();
    const reg = entries(held, 'admin.client_registered').find((e) => e['payload']['client'] === 'alice')!;
    reg['payload']['roles'] = ['L4'];
    expect(only(held)).toEqual(['APPROVAL_ROLE']);
    const kid = fresh();
    entries(kid, 'admin.client_registered').find((e) => e['payload']['client'] === 'alice')!['payload'][
      'kid'
    ] = 'other-kid';
    expect(only(kid)).toEqual(['APPROVAL_ROLE']);
  });

  it('OE-INV-019: an envelope issued before the finalisation, or after a rejection: APPROVAL_MISSING / APPROVAL_BINDING', () => {
    const b = fresh();
    const fin = entries(b, 'approval.finalized').find((e) => e['payload']['verdict'] === 'approve')!;
    fin['index'] = approvedIssued(b)['index'] + 1;
    expect(only(b)).toContain('APPROVAL_MISSING');
    const rejected = fresh();
    const added = entries(rejected, 'approval.added')[1]!;
    const copy = structuredClone(added);
    copy['type'] = 'approval.rejected';
    (rejected['entries'] as Mutable[]).push(copy);
    copy['index'] = approvedIssued(rejected)['index'] - 1;
    expect(only(rejected)).toContain('APPROVAL_BINDING');
  });

  it('OE-INV-020: fewer distinct approvals than required: APPROVAL_DISTINCT', () => {
    const b = fresh();
    for (const f of entries(b, 'approval.finalized'))
      if (f['payload']['verdict'] === 'approve') f['payload']['required'] = 3;
    expect(only(b)).toEqual(['APPROVAL_DISTINCT']);
  });

  it('OE-INV-019: an envelope naming an approval recorded after the finalisation: APPROVAL_MISSING', () => {
    const b = fresh();
    const fin = entries(b, 'approval.finalized').find((e) => e['payload']['verdict'] === 'approve')!;
    entries(b, 'approval.added')[1]!['index'] = fin['index'] + 0.5;
    expect(only(b)).toContain('APPROVAL_MISSING');
  });

  it('L7 break-glass: a use recorded after the finalisation: APPROVAL_MISSING', () => {
    const b = fresh();
    breakGlassUse(b)['index'] = breakGlassFinal(b)['index'] + 0.5;
    expect(only(b)).toEqual(['APPROVAL_MISSING']);
  });

  it('L7 break-glass: an envelope that does not name the grant, or a grant by another approver: APPROVAL_BINDING', () => {
    const refs = fresh();
    const fin = breakGlassFinal(refs);
    const issued = entries(refs, 'envelope.issued').find(
      (e) => e['payload']['decision_id'] === fin['payload']['decision_id'],
    )!;
    issued['payload']['approvals'] = [...(issued['payload']['approvals'] as string[]), 'x'];
    expect(only(refs)).toEqual(['APPROVAL_BINDING']);
    const who = fresh();
    breakGlassFinal(who)['payload']['approvers'] = ['alice'];
    expect(only(who)).toEqual(['APPROVAL_BINDING']);
  });

  it('L7 break-glass: a grant for another tool, or a use by a role the approver does not hold', () => {
    const tool = fresh();
    const id = breakGlassFinal(tool)['payload']['decision_id'];
    entries(tool, 'decision').find((d) => d['payload']['decision_id'] === id)!['payload']['tool'] = 'echo';
    expect(only(tool)).toContain('APPROVAL_BINDING');
    const role = fresh();
    breakGlassUse(role)['actor']['role'] = 'treasury';
    expect(only(role)).toEqual(['APPROVAL_ROLE']);
  });
});
