/**
 * Approvers who hold their own keys, scoped to tenants, removable; client keys rotated and
 * revoked from the CLI; `approvals list` showing what waits (OE-INV-020 distinct humans,
 * OE-INV-002, OE-INV-019, OE-INV-025 key rotation, FC-INV-3 client keys, L7 Identity & Signing).
 * Each block reproduces one shortcoming of the earlier CLI on a real embedded gate over a temp
 * data directory, with the approvers' own homes elsewhere.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approverKeyPath } from '../../src/cli/approver-keys.js';
import { DEMO_CLIENT, readClientFile } from '../../src/embedded/index.js';
import { encodeBase64url } from '../../src/kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { startRig, type Rig } from './support.js';

let rig: Rig;
const BIG = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };
const SMALL = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 10, currency: 'USD' };

beforeAll(async () => {
  rig = await startRig();
}, 60_000);

afterAll(async () => {
  await rig.close();
});

/** Ledger entries of the deployment, from an export through the CLI. */
async function entries(
  name: string,
): Promise<{ type: string; tenant: string; request_id: string; payload: Record<string, unknown> }[]> {
  const out = join(rig.home, `${name}.jsonl`);
  expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{"record":"entry"'))
    .map(
      (l) =>
        (
          JSON.parse(l) as {
            entry: { type: string; tenant: string; request_id: string; payload: Record<string, unknown> };
          }
        ).entry,
    );
}

async function pending(): Promise<string> {
  const first = await rig.agent().call('transfer_funds', BIG);
  if (first.outcome !== 'pending') throw new Error(`expected pending, got ${first.outcome}`);
  return first.decision_id;
}

describe('approvers make their own keys; the gate host never holds one (OE-INV-020)', () => {
  it('keygen writes the private key in the approver’s home (0600 in 0700) and prints only the public JWK', async () => {
    const made = await rig.cli('approvers', 'keygen', 'kim');
    expect(made.code).toBe(0);
    const printed = JSON.parse(made.out) as { public_jwk: Record<string, unknown> };
    expect(printed.public_jwk['kty']).toBe('OKP');
    expect('d' in printed.public_jwk).toBe(false);
    const path = approverKeyPath({ XDG_CONFIG_HOME: rig.home }, 'kim');
    expect(path.startsWith(rig.home)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(rig.home, 'failclosed', 'approvers')).mode & 0o777).toBe(0o700);
    // A second keygen never overwrites a key that may be registered already.
    expect((await rig.cli('approvers', 'keygen', 'kim')).code).toBe(1);
  });

  it('add without --public-key is refused and writes no private key into the data directory', async () => {
    const r = await rig.cli('approvers', 'add', 'lee', '--role', 'treasury', '--tenant', 'acme');
    expect(r.code).toBe(2);
    expect(r.err).toContain('approvers keygen lee');
    expect(existsSync(join(rig.dir, 'approvers'))).toBe(false);
    expect((await rig.operator('approvers-list', {})).body).not.toMatchObject({
      approvers: expect.arrayContaining([expect.objectContaining({ name: 'lee' })]),
    });
  });

  it('registers a key made elsewhere (file or stdin), and signs with --key; nothing lands in the data directory', async () => {
    const key = generateSigningKey();
    const pub = join(rig.home, 'elsewhere.pub.json');
    writeFileSync(pub, JSON.stringify(key.publicJwk));
    expect(
      (
        await rig.cli(
          'approvers',
          'add',
          'mia',
          '--role',
          'treasury',
          '--tenant',
          'acme',
          '--public-key',
          pub,
        )
      ).code,
    ).toBe(0);
    const keyFile = join(rig.home, 'mia-device.json');
    writeFileSync(keyFile, JSON.stringify({ name: 'mia', key: exportSigningKeyJwk(key) }), { mode: 0o600 });
    const id = await pending();
    const a = await rig.cli(
      'approvals',
      'approve',
      id,
      '--as',
      'mia',
      '--key',
      keyFile,
      '--justification',
      'ok',
    );
    expect(a.code).toBe(0);
    expect(JSON.parse(a.out)).toMatchObject({ outcome: 'ok', approvals: 1 });
    expect(existsSync(join(rig.dir, 'approvers'))).toBe(false);
    // No key file of mia's in her default place: without --key the CLI has nothing to sign with.
    const none = await rig.cli('approvals', 'reject', id, '--as', 'mia', '--justification', 'x');
    expect(none.code).toBe(1);
    expect(none.err).toContain('approvers keygen mia');
  });

  it('refuses a private key, a small-order key and a non-canonical key as the public key', async () => {
    const key = generateSigningKey();
    const priv = join(rig.home, 'private.json');
    writeFileSync(priv, JSON.stringify(exportSigningKeyJwk(key)));
    const p = await rig.cli(
      'approvers',
      'add',
      'ned',
      '--role',
      'ops',
      '--tenant',
      'acme',
      '--public-key',
      priv,
    );
    expect(p.code).toBe(2);
    expect(p.err).toContain('private key');
    const identity = Buffer.alloc(32);
    identity[0] = 1; // the neutral element: small order
    const nonCanonical = Buffer.alloc(32, 0xff);
    nonCanonical[0] = 0xed;
    nonCanonical[31] = 0x7f; // y = p: not reduced
    for (const raw of [identity, nonCanonical]) {
      const file = join(rig.home, 'weak.json');
      writeFileSync(file, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: encodeBase64url(raw) }));
      const r = await rig.cli(
        'approvers',
        'add',
        'ned',
        '--role',
        'ops',
        '--tenant',
        'acme',
        '--public-key',
        file,
      );
      expect(r.code).toBe(1);
      expect(r.err).toContain('ERR_KEY_INVALID');
    }
  });

  it('an earlier data directory’s approvers/NAME.json still signs, with a warning to move it', async () => {
    expect(await rig.enrol('olaf', 'treasury')).toBe(0);
    const own = approverKeyPath({ XDG_CONFIG_HOME: rig.home }, 'olaf');
    mkdirSync(join(rig.dir, 'approvers'), { recursive: true });
    renameSync(own, join(rig.dir, 'approvers', 'olaf.json'));
    try {
      const id = await pending();
      const a = await rig.cli('approvals', 'approve', id, '--as', 'olaf', '--justification', 'ok');
      expect(a.code).toBe(0);
      expect(a.err).toContain('warning');
      expect(a.err).toContain(own);
      // Any approval command warns while such a key lies in the data directory.
      expect((await rig.cli('approvers', 'list')).err).toContain('private approver key');
    } finally {
      renameSync(join(rig.dir, 'approvers', 'olaf.json'), own);
    }
    expect(readdirSync(join(rig.dir, 'approvers'))).toEqual([]);
  });
});

describe('approvers are scoped to tenants (OE-INV-020)', () => {
  it('needs --tenant or an explicit --all-tenants, recorded as such in the state and the ledger', async () => {
    const key = generateSigningKey();
    const pub = join(rig.home, 'pam.pub.json');
    writeFileSync(pub, JSON.stringify({ public_jwk: key.publicJwk }));
    expect((await rig.cli('approvers', 'add', 'pam', '--role', 'ops', '--public-key', pub)).code).toBe(2);
    expect(
      (
        await rig.cli(
          'approvers',
          'add',
          'pam',
          '--role',
          'ops',
          '--tenant',
          'a',
          '--all-tenants',
          '--public-key',
          pub,
        )
      ).code,
    ).toBe(2);
    // The operator endpoint refuses a registration without a scope too.
    const bare = await rig.operator('approvers-add', {
      name: 'pam',
      roles: ['ops'],
      public_jwk: { ...key.publicJwk },
    });
    expect(bare.body).toMatchObject({ code: 'ERR_APPROVAL_INVALID' });
    expect(
      (await rig.cli('approvers', 'add', 'pam', '--role', 'ops', '--all-tenants', '--public-key', pub)).code,
    ).toBe(0);
    expect(await rig.enrol('quinn', 'ops', ['globex', 'acme'])).toBe(0);
    const listed = JSON.parse((await rig.cli('approvers', 'list')).out) as {
      approvers: Record<string, unknown>[];
    };
    expect(listed.approvers.find((a) => a['name'] === 'pam')).toMatchObject({ tenants: '*' });
    expect(listed.approvers.find((a) => a['name'] === 'quinn')).toMatchObject({
      tenants: ['acme', 'globex'],
    });
    const regs = (await entries('scopes')).filter(
      (e) => e.type === 'admin.client_registered' && e.payload['key_use'] === 'approval',
    );
    expect(regs.find((e) => e.payload['client'] === 'pam')?.payload['tenants']).toBe('*');
    expect(regs.find((e) => e.payload['client'] === 'quinn')?.payload['tenants']).toEqual(['acme', 'globex']);
  });

  it('a vote on another tenant’s call is refused with ERR_APPROVER_TENANT and counts for nothing', async () => {
    expect(await rig.enrol('gus', 'treasury', ['globex'])).toBe(0);
    expect(await rig.enrol('gwen', 'treasury', ['acme'])).toBe(0);
    const first = await rig.agent().call('transfer_funds', BIG);
    if (first.outcome !== 'pending') throw new Error('expected pending');
    const id = first.decision_id;
    const refused = await rig.cli('approvals', 'approve', id, '--as', 'gus', '--justification', 'not mine');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('ERR_APPROVER_TENANT');
    const rejected = await rig.cli('approvals', 'reject', id, '--as', 'gus', '--justification', 'not mine');
    expect(rejected.err).toContain('ERR_APPROVER_TENANT');
    expect((await rig.cli('approvals', 'approve', id, '--as', 'gwen', '--justification', 'ok')).code).toBe(0);
    const shown = JSON.parse((await rig.cli('approvals', 'show', id)).out) as {
      votes: { approver: string }[];
    };
    expect(shown.votes.map((v) => v.approver)).toEqual(['gwen']);
    // One counted approval of two: the retry still waits and nothing runs.
    const retry = await rig.agent().call('transfer_funds', BIG, { requestId: first.request_id });
    expect(retry.outcome).toBe('pending');
    // Break-glass outside the scope is refused as well.
    expect(await rig.enrol('gale', 'L4', ['globex'])).toBe(0);
    const bg = await rig.cli(
      'break-glass',
      '--as',
      'gale',
      '--tool',
      'transfer_funds',
      '--tenant',
      DEMO_CLIENT.tenant,
      '--reason-category',
      'incident',
      '--reason',
      'outage',
      '--ttl',
      '60',
    );
    expect(bg.code).toBe(1);
    expect(bg.err).toContain('ERR_APPROVER_TENANT');
  });
});

describe('approvers are removed, client keys rotated and revoked, from the CLI', () => {
  it('approvers remove: ledgered, later votes refused, earlier ones no longer count', async () => {
    expect(await rig.enrol('rex', 'treasury')).toBe(0);
    expect(await rig.enrol('ros', 'treasury')).toBe(0);
    expect(await rig.enrol('rui', 'treasury')).toBe(0);
    const first = await rig.agent().call('transfer_funds', BIG);
    if (first.outcome !== 'pending') throw new Error('expected pending');
    const id = first.decision_id;
    expect((await rig.cli('approvals', 'approve', id, '--as', 'rex', '--justification', 'ok')).code).toBe(0);
    const removed = await rig.cli('approvers', 'remove', 'rex', '--reason', 'left the team');
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.out)).toMatchObject({ name: 'rex', status: 'revoked' });
    expect((await rig.cli('approvers', 'remove', 'rex')).err).toContain('ERR_APPROVER_UNKNOWN');
    // rex's earlier vote is re-counted under his current status when ros approves: one of two.
    expect((await rig.cli('approvals', 'approve', id, '--as', 'ros', '--justification', 'ok')).code).toBe(0);
    expect((await rig.agent().call('transfer_funds', BIG, { requestId: first.request_id })).outcome).toBe(
      'pending',
    );
    const later = await pending();
    const refused = await rig.cli(
      'approvals',
      'approve',
      later,
      '--as',
      'rex',
      '--justification',
      'still here',
    );
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('ERR_APPROVER_UNKNOWN');
    expect((await rig.cli('approvals', 'approve', id, '--as', 'rui', '--justification', 'ok')).code).toBe(0);
    expect((await rig.agent().call('transfer_funds', BIG, { requestId: first.request_id })).outcome).toBe(
      'executed',
    );
    const revoked = (await entries('removal')).filter(
      (e) => e.type === 'admin.key_revoked' && e.payload['key_use'] === 'approval',
    );
    expect(revoked.map((e) => e.payload['client'])).toEqual(['rex']);
  });

  it('an approver removed after the call was approved, before its retry: the call never runs', async () => {
    expect(await rig.enrol('xa', 'treasury')).toBe(0);
    expect(await rig.enrol('xb', 'treasury')).toBe(0);
    // Its own parameters (and session): the calls above count towards the loop breaker.
    const call = { ...BIG, amount: BIG.amount + 17 };
    const first = await rig.agent().call('transfer_funds', call, { session: 'removed-before-issue' });
    if (first.outcome !== 'pending') throw new Error(`expected pending, got ${JSON.stringify(first)}`);
    const id = first.decision_id;
    expect((await rig.cli('approvals', 'approve', id, '--as', 'xa', '--justification', 'ok')).code).toBe(0);
    expect((await rig.cli('approvals', 'approve', id, '--as', 'xb', '--justification', 'ok')).code).toBe(0);
    expect((await rig.cli('approvers', 'remove', 'xa', '--reason', 'key stolen')).code).toBe(0);
    const retry = await rig
      .agent()
      .call('transfer_funds', call, { session: 'removed-before-issue', requestId: first.request_id });
    expect(retry.outcome === 'deny' && retry.code).toBe('ERR_APPROVER_UNKNOWN');
    const types = (await entries('removed-before-issue'))
      .filter((e) => e.request_id === first.request_id)
      .map((e) => e.type);
    expect(types).not.toContain('envelope.issued');
    expect(types).not.toContain('execution.receipt');
  });

  it('clients rotate: the old key stops at once, the new one (embedded file or made elsewhere) works; ledgered', async () => {
    expect((await rig.cli('clients', 'add', 'rot-agent', '--tenant', 'acme')).code).toBe(0);
    const before = readClientFile(rig.dir, 'rot-agent');
    const old = rig.agent('rot-agent');
    expect((await old.call('transfer_funds', SMALL)).outcome).toBe('executed');
    const rotated = await rig.cli('clients', 'rotate', 'rot-agent', '--reason', 'laptop lost');
    expect(rotated.code).toBe(0);
    const stale = await old.call('transfer_funds', SMALL);
    expect(stale.outcome === 'deny' && stale.code).toBe('ERR_REQUEST_SIGNATURE');
    expect(readClientFile(rig.dir, 'rot-agent').key).not.toEqual(before.key);
    expect((await rig.agent('rot-agent').call('transfer_funds', SMALL)).outcome).toBe('executed');
    // A key made elsewhere: only its public half is sent; the stale private key file goes.
    const elsewhere = generateSigningKey();
    const pub = join(rig.home, 'rot-agent.pub.json');
    writeFileSync(pub, JSON.stringify(elsewhere.publicJwk));
    expect((await rig.cli('clients', 'rotate', 'rot-agent', '--public-key', pub)).code).toBe(0);
    expect(existsSync(join(rig.dir, 'clients', 'rot-agent.json'))).toBe(false);
    const rotations = (await entries('rotation')).filter(
      (e) => e.type === 'admin.key_rotated' && e.payload['key_use'] === 'request',
    );
    expect(rotations.map((e) => [e.payload['client'], e.tenant])).toEqual([
      ['rot-agent', 'acme'],
      ['rot-agent', 'acme'],
    ]);
    expect(rotations[1]?.payload['kid']).toBe(elsewhere.kid);
  });

  it('clients revoke: ledgered, calls denied ERR_CLIENT_REVOKED and nothing runs; a revoked client stays revoked', async () => {
    expect((await rig.cli('clients', 'add', 'rev-agent', '--tenant', 'acme')).code).toBe(0);
    const agent = rig.agent('rev-agent');
    expect((await agent.call('transfer_funds', SMALL)).outcome).toBe('executed');
    expect((await rig.cli('clients', 'revoke', 'rev-agent', '--reason', 'decommissioned')).code).toBe(0);
    const denied = await agent.call('transfer_funds', SMALL);
    expect(denied.outcome === 'deny' && denied.code).toBe('ERR_CLIENT_REVOKED');
    const again = await rig.cli('clients', 'rotate', 'rev-agent');
    expect(again.code).toBe(1);
    expect(again.err).toContain('ERR_CLIENT_REVOKED');
    const revoked = (await entries('revocation')).filter(
      (e) => e.type === 'admin.key_revoked' && e.payload['key_use'] === 'request',
    );
    expect(revoked.map((e) => e.payload['client'])).toEqual(['rev-agent']);
  });
});

describe('approvals list', () => {
  it('shows pending items by default and finished ones with --all', async () => {
    const all = JSON.parse((await rig.cli('approvals', 'list', '--all')).out) as {
      approvals: { status: string }[];
    };
    const open = JSON.parse((await rig.cli('approvals', 'list')).out) as { approvals: { status: string }[] };
    expect(all.approvals.some((p) => p.status !== 'pending')).toBe(true);
    expect(open.approvals.length).toBeGreaterThan(0);
    expect(open.approvals.every((p) => p.status === 'pending')).toBe(true);
    expect(open.approvals.length).toBe(all.approvals.filter((p) => p.status === 'pending').length);
  });
});

describe('the export still verifies offline with scoped, removed approvers and rotated client keys', () => {
  it('passes every check', async () => {
    const out = join(rig.home, 'final.jsonl');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const trust = join(rig.home, 'trust.json');
    expect((await rig.cli('trust-roots', '--out', trust)).code).toBe(0);
    const report = verifyBundle(readFileSync(out), { trust: readFileSync(trust) });
    expect(
      report.checks.filter((c) => c.status === 'fail').map((c) => [c.id, c.findings.slice(0, 2)]),
    ).toEqual([]);
    expect(report.exitCode).toBe(0);
  });
});
