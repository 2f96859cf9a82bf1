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
import {
  approvalSigningInput,
  breakGlassSigningInput,
  encodeBase64url,
  reviewSigningInput,
  type JsonValue,
} from '../../src/kernel/index.js';
import {
  generateSigningKey,
  importSigningKeyJwk,
  signEd25519,
  type SigningKey,
} from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { cliApproverKey, startRig, type Rig } from './support.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Mutable = Record<string, any>;

let rig: Rig;
/** The deployment's trust file (`failclosed trust-roots`). */
let trust: string;
let original: string;
/** The approvers' own signing keys (from their key files), to sign statements an attacker holding one could. */
const approverKey = new Map<string, SigningKey>();

beforeAll(async () => {
  rig = await startRig();
  for (const [n, r] of [
    ['alice', 'treasury'],
    ['bob', 'treasury'],
    ['dave', 'L4'],
  ] as const)
    expect(await rig.enrol(n, r)).toBe(0);
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
  // bob closes dave's post-incident review (a signed statement, kept as evidence).
  const listed = JSON.parse((await rig.cli('reviews', 'list')).out) as { reviews: { review_id: string }[] };
  const reviewId = listed.reviews[0]?.review_id ?? '';
  expect((await rig.cli('reviews', 'close', reviewId, '--as', 'bob', '--notes', 'looked at it')).code).toBe(
    0,
  );
  const out = join(rig.dir, 'bundle.json');
  expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
  // The export is v2; these tests tamper with the bundle as one object (v1, same verdict).
  original = v1Of(readFileSync(out, 'utf8'));
  const trustPath = join(rig.dir, 'trust-roots.json');
  expect((await rig.cli('trust-roots', '--out', trustPath)).code).toBe(0);
  trust = readFileSync(trustPath, 'utf8');
  for (const n of ['alice', 'bob', 'dave']) approverKey.set(n, importSigningKeyJwk(cliApproverKey(rig, n)));
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

  it('OE-INV-020: an approval or break-glass outside the approver’s ledgered tenant scope: APPROVAL_TENANT', () => {
    const scoped = fresh();
    entries(scoped, 'admin.client_registered').find((e) => e['payload']['client'] === 'alice')!['payload'][
      'tenants'
    ] = ['globex'];
    expect(only(scoped)).toEqual(['APPROVAL_TENANT']);
    const bg = fresh();
    entries(bg, 'admin.client_registered').find((e) => e['payload']['client'] === 'dave')!['payload'][
      'tenants'
    ] = ['globex'];
    expect(only(bg)).toEqual(['APPROVAL_TENANT']);
    // Every tenant, explicitly or by a registration from before scopes: no finding.
    const all = fresh();
    const reg = entries(all, 'admin.client_registered').find((e) => e['payload']['client'] === 'alice')!;
    reg['payload']['tenants'] = '*';
    expect(only(all)).toEqual([]);
    delete reg['payload']['tenants'];
    expect(only(all)).toEqual([]);
  });

  it('L7 identity & signing: a statement by an approver enrolled bound to an identity provider, without a console session proving it: APPROVAL_SESSION', () => {
    const issuer = 'https://idp.example';
    /** Ledgers `name`'s enrolment bound to `subject`, just after its registration. */
    const bind = (b: Mutable, name: string, subject: string): void => {
      const reg = entries(b, 'admin.client_registered').find((e) => e['payload']['client'] === name)!;
      const enrolled = structuredClone(reg);
      enrolled['type'] = 'admin.approver_enrolled';
      enrolled['payload'] = {
        client: name,
        kid: reg['payload']['kid'],
        public_jwk: reg['payload']['public_jwk'],
        key_use: 'approval',
        oidc: { issuer, subject },
      };
      (b['entries'] as Mutable[]).push(enrolled);
    };
    /** Adds a session proof to the evidence document stored under `sha`. */
    const prove = (b: Mutable, sha: string, session: Mutable): void => {
      const blob = (b['evidence'] as Mutable)[sha];
      const doc = JSON.parse(Buffer.from(blob['body_b64'], 'base64').toString('utf8')) as Mutable;
      blob['body_b64'] = Buffer.from(JSON.stringify({ ...doc, session })).toString('base64');
    };
    const vote = (b: Mutable): string =>
      entries(b, 'approval.added').find((e) => e['payload']['approver'] === 'alice')!['payload'][
        'approval_sha256'
      ];
    const bound = fresh();
    bind(bound, 'alice', 'sub-alice');
    expect(only(bound)).toEqual(['APPROVAL_SESSION']);
    // A proof of another subject, or not of a key+oidc session, proves nothing.
    for (const session of [
      { method: 'key+oidc', issuer, subject: 'sub-mallory' },
      { method: 'key', issuer, subject: 'sub-alice' },
    ]) {
      const b = fresh();
      bind(b, 'alice', 'sub-alice');
      prove(b, vote(b), session);
      expect(only(b)).toEqual(['APPROVAL_SESSION']);
    }
    const proven = fresh();
    bind(proven, 'alice', 'sub-alice');
    prove(proven, vote(proven), {
      method: 'key+oidc',
      issuer,
      subject: 'sub-alice',
      session_started_at: '2026-01-01T00:00:00.000Z',
    });
    expect(only(proven)).toEqual([]);
    // Break-glass too: the grant's evidence must carry the proof.
    const glass = fresh();
    bind(glass, 'dave', 'sub-dave');
    expect(only(glass)).toEqual(['APPROVAL_SESSION']);
    prove(glass, breakGlassFinal(glass)['payload']['approval_sha256'], {
      method: 'key+oidc',
      issuer,
      subject: 'sub-dave',
    });
    expect(only(glass)).toEqual([]);
    // A review closed by a bound approver: only through the console, with its session proof.
    const closed = (b: Mutable): Mutable => first(b, 'review.closed');
    /** Binds bob after his vote (which then needed no proof), before the review he closed. */
    const bindLate = (b: Mutable): void => {
      bind(b, 'bob', 'sub-bob');
      const list = b['entries'] as Mutable[];
      list[list.length - 1]!['index'] = closed(b)['index'] - 1;
    };
    const review = fresh();
    bindLate(review);
    expect(only(review)).toEqual(['APPROVAL_SESSION']);
    const reviewed = fresh();
    bindLate(reviewed);
    closed(reviewed)['payload']['oidc_session'] = {
      method: 'key+oidc',
      issuer,
      subject: 'sub-bob',
      session_started_at: '2026-01-01T00:00:00.000Z',
    };
    expect(only(reviewed)).toEqual([]);
  });

  it('L7 break-glass: a closed review carries its signed statement; a missing, forged or rebound one is named', () => {
    const reviewed = (b: Mutable): Mutable => first(b, 'review.closed');
    expect(reviewed(fresh())['payload']['review_sha256']).toMatch(/^[0-9a-f]{64}$/);
    let b = fresh();
    delete b['evidence'][reviewed(b)['payload']['review_sha256']];
    expect(only(b)).toEqual(['APPROVAL_MISSING']);
    b = fresh();
    reviewed(b)['payload']['justification'] = 'nothing to see';
    expect(only(b)).toEqual(['APPROVAL_BINDING']);
    b = fresh();
    reviewed(b)['payload']['reviewer'] = 'alice';
    reviewed(b)['actor']['id'] = 'alice';
    expect(only(b)).toEqual(['APPROVAL_BINDING']);
    // A statement re-signed by a key the trust roots do not pin.
    b = fresh();
    const sha = reviewed(b)['payload']['review_sha256'] as string;
    const blob = (b['evidence'] as Mutable)[sha];
    const doc = JSON.parse(Buffer.from(blob['body_b64'], 'base64').toString('utf8')) as Mutable;
    blob['body_b64'] = Buffer.from(
      JSON.stringify({
        ...doc,
        signature: doc['signature'].replace(/^./, (c: string) => (c === 'A' ? 'B' : 'A')),
      }),
    ).toString('base64');
    expect(only(b)).toEqual(['APPROVAL_SIGNATURE']);
  });

  it('OE-INV-020: an approval after the approver’s ledgered removal: APPROVAL_REVOKED', () => {
    const b = fresh();
    const reg = entries(b, 'admin.client_registered').find((e) => e['payload']['client'] === 'alice')!;
    // The registration record turned into a removal: it lies before alice's approval.
    reg['type'] = 'admin.key_revoked';
    reg['payload'] = { client: 'alice', kid: reg['payload']['kid'], key_use: 'approval', reason: 'left' };
    expect(only(b)).toContain('APPROVAL_REVOKED');
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
    const late = entries(b, 'approval.added')[1]!;
    late['index'] = fin['index'] + 1;
    expect(findings(b).filter((f) => f.index === approvedIssued(b)['index'])).toEqual([
      finding('APPROVAL_MISSING', approvedIssued(b)),
    ]);
  });

  it('L7 break-glass: a use recorded after the finalisation: APPROVAL_MISSING', () => {
    const b = fresh();
    breakGlassUse(b)['index'] = breakGlassFinal(b)['index'] + 1;
    expect(findings(b)).toEqual([finding('APPROVAL_MISSING', breakGlassIssued(b))]);
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

/** Every finding of the approvals check as code and ledger index, in order (only that check runs). */
function findings(b: Mutable): { code: string; index: number | undefined }[] {
  const r = verifyBundle(Buffer.from(JSON.stringify(b)), { invariant: 'OE-INV-019' });
  return r.checks
    .flatMap((c) => c.findings.map((f) => ({ code: f.code, index: f.index })))
    .sort((x, y) => (x.index ?? -1) - (y.index ?? -1) || x.code.localeCompare(y.code));
}
const finding = (code: string, e: Mutable): { code: string; index: number } => ({ code, index: e['index'] });
const approvalBy = (b: Mutable, name: string): Mutable =>
  entries(b, 'approval.added').find((e) => e['payload']['approver'] === name)!;
const registrationOf = (b: Mutable, name: string): Mutable =>
  entries(b, 'admin.client_registered').find((e) => e['payload']['client'] === name)!;
const approvedDecision = (b: Mutable): Mutable =>
  entries(b, 'decision').find(
    (d) => d['payload']['decision_id'] === first(b, 'approval.added')['payload']['decision_id'],
  )!;
const breakGlassIssued = (b: Mutable): Mutable =>
  entries(b, 'envelope.issued').find(
    (e) => e['payload']['decision_id'] === breakGlassFinal(b)['payload']['decision_id'],
  )!;
/** The signed document stored as evidence under `sha`. */
const docOf = (b: Mutable, sha: string): Mutable =>
  JSON.parse(Buffer.from(b['evidence'][sha]['body_b64'] as string, 'base64').toString('utf8')) as Mutable;
function putDoc(b: Mutable, sha: string, doc: JsonValue, raw?: string): void {
  b['evidence'][sha] = {
    ...b['evidence'][sha],
    body_b64: Buffer.from(raw ?? JSON.stringify(doc)).toString('base64'),
  };
}
/** Edits the statement stored under `sha` and signs it again with `name`'s own key. */
function resign(
  b: Mutable,
  sha: string,
  name: string,
  edit: (statement: Mutable) => void,
  input: (s: never) => Buffer = approvalSigningInput,
): void {
  const doc = docOf(b, sha);
  edit(doc['statement']);
  doc['signature'] = encodeBase64url(signEd25519(approverKey.get(name)!, input(doc['statement'] as never)));
  putDoc(b, sha, doc);
}
const shaOf = (e: Mutable): string => e['payload']['approval_sha256'] as string;
const ms = (t: string): number => Date.parse(t);
const iso = (t: number): string => new Date(t).toISOString();

describe('OE-INV-019/020: each approval finding names its entry (approvals check only)', () => {
  it('the untouched export has no finding at any entry', () => {
    expect(findings(fresh())).toEqual([]);
  });

  it('OE-INV-019: a bundle without approver keys verifies no approval, break-glass grant or review: APPROVAL_SIGNATURE', () => {
    const b = fresh();
    delete b['jwks']['approvers'];
    expect(findings(b)).toEqual(
      [
        finding('APPROVAL_SIGNATURE', approvalBy(b, 'alice')),
        finding('APPROVAL_SIGNATURE', approvalBy(b, 'bob')),
        finding('APPROVAL_SIGNATURE', breakGlassFinal(b)),
        finding('APPROVAL_SIGNATURE', entries(b, 'review.closed')[0]!),
      ].sort((x, y) => x.index - y.index),
    );
  });

  it.each([
    ['not a signature by a key', (d: Mutable) => void (d['method'] = 'oidc')],
    ['a signature that is not text', (d: Mutable) => void (d['signature'] = 12)],
    ['a signature by no exported key', (d: Mutable) => void (d['kid'] = 'unknown-kid')],
  ])('OE-INV-019: an approval document with %s: APPROVAL_SIGNATURE', (_n, edit) => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    const doc = docOf(b, shaOf(a));
    edit(doc);
    putDoc(b, shaOf(a), doc);
    // A kid other than the one registered to the approver is also the wrong key for the role.
    expect(findings(b)).toEqual([
      ...(doc['kid'] === 'unknown-kid' ? [finding('APPROVAL_ROLE', a)] : []),
      finding('APPROVAL_SIGNATURE', a),
    ]);
  });

  it.each([
    ['no evidence under its digest', (b: Mutable, sha: string) => void delete b['evidence'][sha]],
    ['evidence that is not an object', (b: Mutable, sha: string) => void (b['evidence'][sha] = 'x')],
    [
      'a body given as bytes rather than base64',
      (b: Mutable, sha: string) =>
        void (b['evidence'][sha]['body_b64'] = [
          ...Buffer.from(b['evidence'][sha]['body_b64'] as string, 'base64'),
        ]),
    ],
    ['a body that is not JSON', (b: Mutable, sha: string) => putDoc(b, sha, null, '{')],
    ['a body that is not an object', (b: Mutable, sha: string) => putDoc(b, sha, [])],
    [
      'a body over 64 KiB',
      (b: Mutable, sha: string) => putDoc(b, sha, { ...docOf(b, sha), pad: 'x'.repeat(70_000) }),
    ],
    [
      'a malformed statement',
      (b: Mutable, sha: string) => {
        const doc = docOf(b, sha);
        doc['statement']['verdict'] = 'maybe';
        putDoc(b, sha, doc);
      },
    ],
  ])(
    'OE-INV-019: an approval with %s is missing, and so is the envelope’s approval: APPROVAL_MISSING',
    (_n, edit) => {
      const b = fresh();
      const a = approvalBy(b, 'alice');
      edit(b, shaOf(a));
      expect(findings(b)).toEqual([
        finding('APPROVAL_MISSING', a),
        finding('APPROVAL_MISSING', approvedIssued(b)),
      ]);
    },
  );

  it('OE-INV-019: an approval entry naming no digest is missing, whatever the evidence holds', () => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    b['evidence']['undefined'] = b['evidence'][shaOf(a)];
    delete a['payload']['approval_sha256'];
    expect(findings(b).filter((f) => f.index === a['index'])).toEqual([finding('APPROVAL_MISSING', a)]);
  });

  it('OE-INV-019: a statement signed for another decision than its entry’s: APPROVAL_BINDING', () => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    resign(b, shaOf(a), 'alice', (s) => void (s['decision_id'] = 'd-other'));
    expect(findings(b)).toEqual([finding('APPROVAL_BINDING', a)]);
  });

  it('OE-INV-019: a rejection signed as a rejection is recorded; one whose statement approves is named: APPROVAL_BINDING', () => {
    /** A copy of bob's approval recorded as a rejection just before the envelope. */
    const reject = (b: Mutable): Mutable => {
      const copy = structuredClone(approvalBy(b, 'bob'));
      copy['type'] = 'approval.rejected';
      copy['index'] = approvedIssued(b)['index'] - 1;
      (b['entries'] as Mutable[]).push(copy);
      return copy;
    };
    const signed = fresh();
    const r = reject(signed);
    const sha = 'cd'.repeat(32);
    signed['evidence'][sha] = structuredClone(signed['evidence'][shaOf(r)]);
    r['payload']['approval_sha256'] = sha;
    resign(signed, sha, 'bob', (s) => void (s['verdict'] = 'reject'));
    expect(findings(signed)).toEqual([finding('APPROVAL_BINDING', approvedIssued(signed))]);

    const unsigned = fresh();
    const u = reject(unsigned);
    expect(findings(unsigned)).toEqual([
      finding('APPROVAL_BINDING', u),
      finding('APPROVAL_BINDING', approvedIssued(unsigned)),
    ]);
  });

  it('OE-INV-019: a rejection recorded after the envelope does not taint it', () => {
    const b = fresh();
    const copy = structuredClone(approvalBy(b, 'bob'));
    copy['type'] = 'approval.rejected';
    copy['index'] = approvedIssued(b)['index'] + 1;
    (b['entries'] as Mutable[]).push(copy);
    expect(findings(b)).toEqual([finding('APPROVAL_BINDING', copy)]);
  });

  it('OE-INV-002: an OIDC approver whose subject owns the requesting agent: APPROVAL_SELF', () => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    resign(b, shaOf(a), 'alice', (s) => void (s['approver'] = 'oidc:alice'));
    a['payload']['approver'] = 'oidc:alice';
    a['actor']['id'] = 'oidc:alice';
    expect(findings(b)).toEqual([]);
    registrationOf(b, 'demo-agent')['payload']['owner'] = 'alice';
    expect(findings(b)).toEqual([finding('APPROVAL_SELF', a)]);
  });

  it('OE-INV-002: the owner an OAuth token named, recorded in gateway.accepted, cannot approve either: APPROVAL_SELF', () => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    // No registered owner (as for an OAuth principal): the call's gateway.accepted names it.
    delete registrationOf(b, 'demo-agent')['payload']['owner'];
    const accepted = entries(b, 'gateway.accepted').find(
      (e) => e['request_id'] === approvedDecision(b)['request_id'],
    )!;
    accepted['payload']['owner'] = 'carol';
    expect(findings(b)).toEqual([]);
    accepted['payload']['owner'] = 'alice';
    expect(findings(b)).toEqual([finding('APPROVAL_SELF', a)]);
  });

  it('OE-INV-002: an OAuth call that named no owner, or whose retry named an approver as owner, or an owner named oidc:x: APPROVAL_SELF', () => {
    const b = fresh();
    const a = approvalBy(b, 'alice');
    delete registrationOf(b, 'demo-agent')['payload']['owner'];
    const accepted = entries(b, 'gateway.accepted').find(
      (e) => e['request_id'] === approvedDecision(b)['request_id'],
    )!;
    // An OAuth call without an owner: nobody may approve it.
    accepted['payload']['auth_method'] = 'oauth';
    delete accepted['payload']['owner'];
    expect(findings(b).map((f) => f.code)).toContain('APPROVAL_SELF');
    // The owner named as an OIDC approver is the key approver of that name.
    accepted['payload']['owner'] = 'oidc:alice';
    expect(findings(b)).toEqual([finding('APPROVAL_SELF', a)]);
    // A retry of the request whose token named the approver as owner.
    accepted['payload']['owner'] = 'carol';
    expect(findings(b)).toEqual([]);
    const retry = structuredClone(accepted);
    retry['index'] = 1_000_001;
    retry['payload']['owner'] = 'alice';
    (b['entries'] as Mutable[]).push(retry);
    expect(findings(b)).toEqual([finding('APPROVAL_SELF', a)]);
  });

  it('OE-INV-002: only a client registration makes an identity a client', () => {
    const b = fresh();
    const other = structuredClone(first(b, 'decision'));
    other['type'] = 'audit.read';
    other['payload'] = { client: 'alice' };
    (b['entries'] as Mutable[]).push(other);
    expect(findings(b)).toEqual([]);
  });

  it('OE-INV-019: the first approval request of a decision binds its approvals', () => {
    const b = fresh();
    const later = structuredClone(first(b, 'approval.requested'));
    later['index'] = 1_000_000;
    later['payload']['intent_sha256'] = 'ab'.repeat(32);
    (b['entries'] as Mutable[]).push(later);
    expect(findings(b)).toEqual([]);
  });

  describe('OE-INV-017: the approval window is inclusive at its edges', () => {
    /** Alice's approval signed at `signedAt` (ms) and recorded at `recordedAt`. */
    const at = (
      signedAt: (opened: number, expires: number) => number,
      recordedAt?: (e: number) => number,
    ) => {
      const b = fresh();
      const a = approvalBy(b, 'alice');
      const req = first(b, 'approval.requested');
      const opened = ms(req['at'] as string);
      const expires = ms(req['payload']['expires_at'] as string);
      resign(b, shaOf(a), 'alice', (s) => void (s['timestamp'] = iso(signedAt(opened, expires))));
      if (recordedAt !== undefined) a['at'] = iso(recordedAt(expires));
      return { b, a };
    };

    it('signed exactly at the skew before the request, or exactly at its expiry: no finding', () => {
      expect(findings(at((o) => o - 120_000).b)).toEqual([]);
      expect(findings(at((_o, e) => e).b)).toEqual([]);
    });

    it('signed before the skew, after the expiry, or recorded at the expiry: APPROVAL_EXPIRED', () => {
      for (const c of [
        at((o) => o - 120_001),
        at((_o, e) => e + 1),
        at(
          (o) => o,
          (e) => e,
        ),
      ])
        expect(findings(c.b)).toEqual([finding('APPROVAL_EXPIRED', c.a)]);
    });
  });

  it('L7 identity & signing: a request naming no roles takes any approver role', () => {
    for (const roles of [[], undefined]) {
      const b = fresh();
      for (const r of entries(b, 'approval.requested'))
        if (roles === undefined) delete r['payload']['roles'];
        else r['payload']['roles'] = roles;
      for (const n of ['alice', 'bob']) registrationOf(b, n)['payload']['roles'] = ['anyone'];
      for (const a of entries(b, 'approval.added')) {
        a['payload']['role'] = 'anyone';
        a['actor']['role'] = 'anyone';
      }
      expect(findings(b)).toEqual([]);
    }
  });

  it('an approver or break-glass user without a ledgered registration is checked by the request alone', () => {
    const b = fresh();
    for (const n of ['alice', 'dave']) registrationOf(b, n)['type'] = 'audit.read';
    expect(findings(b)).toEqual([]);
  });

  describe('OE-INV-019: which envelopes need approvals', () => {
    it('an envelope of an allowed decision naming no approval needs none', () => {
      const b = fresh();
      approvedDecision(b)['payload']['outcome'] = 'allow';
      approvedIssued(b)['payload']['approvals'] = [];
      expect(findings(b)).toEqual([]);
    });

    it('an envelope of an allowed decision naming an unknown approval: APPROVAL_MISSING', () => {
      const b = fresh();
      approvedDecision(b)['payload']['outcome'] = 'allow';
      approvedIssued(b)['payload']['approvals'] = ['ab'.repeat(32), 'cd'.repeat(32)];
      expect(findings(b)).toEqual([
        finding('APPROVAL_DISTINCT', approvedIssued(b)),
        finding('APPROVAL_MISSING', approvedIssued(b)),
      ]);
    });

    it('an envelope of an escalated decision naming no approval: APPROVAL_DISTINCT', () => {
      const b = fresh();
      approvedIssued(b)['payload']['approvals'] = [];
      expect(findings(b)).toEqual([finding('APPROVAL_DISTINCT', approvedIssued(b))]);
    });

    it('an envelope whose decision is not in the bundle is left to the receipt linkage check', () => {
      const b = fresh();
      approvedDecision(b)['type'] = 'audit.read';
      expect(findings(b)).toEqual([]);
    });

    it('an approve finalisation counts, not an earlier-listed rejection recorded after the envelope', () => {
      const b = fresh();
      const fin = entries(b, 'approval.finalized').find((e) => e['payload']['verdict'] === 'approve')!;
      const rejected = structuredClone(fin);
      rejected['payload']['verdict'] = 'reject';
      rejected['index'] = approvedIssued(b)['index'] + 1;
      (b['entries'] as Mutable[]).unshift(rejected);
      expect(findings(b)).toEqual([]);
    });

    it('OE-INV-020: a finalisation stating no required count requires more than any: APPROVAL_DISTINCT', () => {
      const b = fresh();
      const fin = entries(b, 'approval.finalized').find((e) => e['payload']['verdict'] === 'approve')!;
      delete fin['payload']['required'];
      expect(findings(b)).toEqual([finding('APPROVAL_DISTINCT', approvedIssued(b))]);
    });

    it('an envelope naming a valid approval of another decision: APPROVAL_MISSING', () => {
      const b = fresh();
      const a = approvalBy(b, 'alice');
      const copy = structuredClone(a);
      copy['payload']['decision_id'] = 'd-other';
      copy['payload']['approval_sha256'] = 'cd'.repeat(32);
      b['evidence']['cd'.repeat(32)] = b['evidence'][shaOf(a)];
      (b['entries'] as Mutable[]).push(copy);
      const issued = approvedIssued(b);
      issued['payload']['approvals'] = [shaOf(copy), shaOf(approvalBy(b, 'bob'))];
      expect(findings(b).filter((f) => f.index === issued['index'])).toEqual([
        finding('APPROVAL_MISSING', issued),
      ]);
    });

    it('OE-INV-020: only an execution receipt of the envelope’s nonce before it is out of order', () => {
      const b = fresh();
      const issued = approvedIssued(b);
      const other = structuredClone(issued);
      other['type'] = 'audit.read';
      other['index'] = 0;
      (b['entries'] as Mutable[]).push(other);
      expect(findings(b)).toEqual([]);
      const noJti = fresh();
      const e = approvedIssued(noJti);
      const receipt = entries(noJti, 'execution.receipt').find(
        (r) => r['payload']['jti'] === e['payload']['jti'],
      )!;
      delete e['payload']['jti'];
      delete receipt['payload']['jti'];
      receipt['index'] = 0;
      expect(findings(noJti)).toEqual([]);
    });
  });

  describe('L7 break-glass', () => {
    it.each([
      ['not in the evidence', (b: Mutable, sha: string) => void delete b['evidence'][sha]],
      [
        'malformed',
        (b: Mutable, sha: string) => {
          const doc = docOf(b, sha);
          doc['statement']['ttl_sec'] = 'long';
          putDoc(b, sha, doc);
        },
      ],
    ])('a grant %s: APPROVAL_MISSING at the envelope', (_n, edit) => {
      const b = fresh();
      edit(b, shaOf(breakGlassFinal(b)));
      expect(findings(b)).toEqual([finding('APPROVAL_MISSING', breakGlassIssued(b))]);
    });

    it.each(['break_glass.used', 'review.opened'])(
      'a break-glass finalisation without its %s record: APPROVAL_MISSING at the envelope',
      (type) => {
        const b = fresh();
        const id = breakGlassFinal(b)['payload']['decision_id'];
        entries(b, type).find((e) => e['payload']['decision_id'] === id)!['type'] = 'audit.read';
        // Without its review.opened, the review's closure has no item it closed either.
        expect(findings(b)).toEqual(
          [
            finding('APPROVAL_MISSING', breakGlassIssued(b)),
            ...(type === 'review.opened' ? [finding('APPROVAL_ORDER', first(b, 'review.closed'))] : []),
          ].sort((x, y) => x.index - y.index),
        );
      },
    );

    it('a grant not signed by a key: APPROVAL_SIGNATURE at the finalisation', () => {
      const b = fresh();
      const sha = shaOf(breakGlassFinal(b));
      putDoc(b, sha, { ...docOf(b, sha), method: 'oidc' });
      expect(findings(b)).toEqual([finding('APPROVAL_SIGNATURE', breakGlassFinal(b))]);
    });

    it('a grant for another tenant than the envelope’s: APPROVAL_BINDING at the finalisation', () => {
      const b = fresh();
      breakGlassIssued(b)['tenant'] = 'other';
      expect(findings(b)).toEqual([finding('APPROVAL_BINDING', breakGlassFinal(b))]);
    });

    it('an envelope naming another single approval than the grant: APPROVAL_BINDING', () => {
      const b = fresh();
      breakGlassIssued(b)['payload']['approvals'] = ['ab'.repeat(32)];
      expect(findings(b)).toEqual([finding('APPROVAL_BINDING', breakGlassIssued(b))]);
    });

    it('the grant’s approver is the first named approver; other entries are ignored', () => {
      const b = fresh();
      breakGlassFinal(b)['payload']['approvers'] = [7, 'dave'];
      expect(findings(b)).toEqual([]);
    });

    it('a grant re-signed for another tool: APPROVAL_BINDING at the finalisation', () => {
      const b = fresh();
      resign(b, shaOf(breakGlassFinal(b)), 'dave', (s) => void (s['tool'] = 'echo'), breakGlassSigningInput);
      expect(findings(b)).toEqual([finding('APPROVAL_BINDING', breakGlassFinal(b))]);
    });
  });
});

describe('L7 break-glass: a closed review is re-checked offline as the gate checks it at run time', () => {
  const closed = (b: Mutable): Mutable => first(b, 'review.closed');
  /** The closing statement re-signed by `signer`, naming `reviewer` (the entry follows it). */
  const closeAs = (b: Mutable, signer: string, reviewer: string, kid?: string): void => {
    const sha = closed(b)['payload']['review_sha256'] as string;
    resign(b, sha, signer, (s) => void (s['reviewer'] = reviewer), reviewSigningInput);
    if (kid !== undefined) putDoc(b, sha, { ...docOf(b, sha), kid });
    closed(b)['payload']['reviewer'] = reviewer;
    closed(b)['actor']['id'] = reviewer;
  };

  it('the break-glass user closing its own review, with its own key: APPROVAL_SELF', () => {
    const b = fresh();
    closeAs(b, 'dave', 'dave', registrationOf(b, 'dave')['payload']['kid'] as string);
    expect(findings(b)).toEqual([finding('APPROVAL_SELF', closed(b))]);
  });

  it('a review statement naming bob signed with alice’s key: APPROVAL_ROLE', () => {
    const b = fresh();
    closeAs(b, 'alice', 'bob', registrationOf(b, 'alice')['payload']['kid'] as string);
    expect(findings(b)).toEqual([finding('APPROVAL_ROLE', closed(b))]);
  });

  it('a closing statement signed long before the review opened or after it was recorded: APPROVAL_EXPIRED', () => {
    for (const shift of [-365 * 86_400_000, 365 * 86_400_000]) {
      const b = fresh();
      const sha = closed(b)['payload']['review_sha256'] as string;
      resign(
        b,
        sha,
        'bob',
        (s) => void (s['timestamp'] = iso(ms(closed(b)['at'] as string) + shift)),
        reviewSigningInput,
      );
      expect(findings(b)).toEqual([finding('APPROVAL_EXPIRED', closed(b))]);
    }
  });

  it('a closed review whose entry names another decision than the review opened, or precedes it: APPROVAL_BINDING / APPROVAL_ORDER', () => {
    const other = fresh();
    closed(other)['payload']['decision_id'] = first(other, 'approval.added')['payload']['decision_id'];
    expect(findings(other)).toEqual([finding('APPROVAL_BINDING', closed(other))]);
    const early = fresh();
    closed(early)['index'] = first(early, 'review.opened')['index'] - 1;
    expect(findings(early)).toEqual([finding('APPROVAL_ORDER', closed(early))]);
  });

  it('a review closed twice (its statement and evidence reused by a second entry): APPROVAL_BINDING at the second', () => {
    const b = fresh();
    const again = structuredClone(closed(b));
    again['index'] = (b['entries'] as Mutable[]).length + 1000;
    (b['entries'] as Mutable[]).push(again);
    expect(findings(b)).toEqual([finding('APPROVAL_BINDING', again)]);
  });

  it('a review closed outside the reviewer’s tenant scope or after its removal: APPROVAL_TENANT / APPROVAL_REVOKED', () => {
    const scoped = fresh();
    registrationOf(scoped, 'bob')['payload']['tenants'] = ['globex'];
    expect(findings(scoped)).toEqual(
      [
        finding('APPROVAL_TENANT', approvalBy(scoped, 'bob')),
        finding('APPROVAL_TENANT', closed(scoped)),
      ].sort((x, y) => x.index - y.index),
    );
    const removed = fresh();
    const reg = registrationOf(removed, 'bob');
    const revoked = structuredClone(reg);
    revoked['type'] = 'admin.key_revoked';
    revoked['payload'] = { client: 'bob', kid: reg['payload']['kid'], key_use: 'approval', reason: 'left' };
    revoked['index'] = closed(removed)['index'] - 1;
    (removed['entries'] as Mutable[]).push(revoked);
    expect(findings(removed)).toEqual([finding('APPROVAL_REVOKED', closed(removed))]);
  });
});
