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
