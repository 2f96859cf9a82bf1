/**
 * The demo bundle (examples/demo-policy) builds, is stable, and decides as docs/policy.md says;
 * buildBundleFromDir rejects broken sources. (SPEC §6 "Policy as code", §7 scenario 13)
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundleFromDir, createPolicyEngine, loadBundle } from '../../src/policy/index.js';
import type { BuiltBundle, PolicyEngine } from '../../src/policy/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { call } from './fixtures.js';

const DEMO = join(REPO_ROOT, 'examples/demo-policy');
let built: BuiltBundle;
let engine: PolicyEngine;

beforeAll(async () => {
  const b = await buildBundleFromDir(DEMO);
  if ('outcome' in b) throw new Error(`demo bundle denied: ${b.reason}`);
  built = b;
  const e = createPolicyEngine(b.bundle);
  if ('outcome' in e) throw new Error('engine denied');
  engine = e;
});

const transfer = (amount: number) => ({
  from_account: 'acct_a',
  to_account: 'acct_b',
  amount,
  currency: 'USD',
});

describe('demo bundle (examples/demo-policy)', () => {
  it('builds to the same hash twice and reloads from its text with that hash', async () => {
    const again = await buildBundleFromDir(DEMO);
    expect('hash' in again && again.hash).toBe(built.hash);
    const reloaded = loadBundle(built.text, built.hash);
    expect('hash' in reloaded && reloaded.hash).toBe(built.hash);
    expect(built.bundle.document.tools.map((t) => t.name)).toEqual([
      'delete_records',
      'echo',
      'get_time',
      'list_files',
      'math.add',
      'read_inbox',
      'send_email',
      'transfer_funds',
    ]);
  });

  it('allows the basic tools', () => {
    expect(engine.evaluate(call('echo', { message: 'hi' })).outcome).toBe('allow');
    expect(engine.evaluate(call('math.add', { a: 2, b: 3 })).outcome).toBe('allow');
    expect(engine.evaluate(call('get_time', {})).outcome).toBe('allow');
    expect(engine.evaluate(call('list_files', { path: './reports' })).outcome).toBe('allow');
  });

  it('keeps list_files inside the work directory (OE-INV-012)', () => {
    for (const path of ['/etc', '../x', './../x', './-rf', './/x', './.ssh', 'x']) {
      expect(engine.evaluate(call('list_files', { path }))).toMatchObject({ code: 'ERR_PARAMS_INVALID' });
    }
  });

  it('transfers: allow ≤ 1000, escalate to 2 treasury approvals above, forbid above 50000', () => {
    expect(engine.evaluate(call('transfer_funds', transfer(999.99)))).toMatchObject({
      outcome: 'allow',
      rules_fired: ['transfer-within-limit'],
      risk: 'high',
    });
    expect(engine.evaluate(call('transfer_funds', transfer(5000)))).toMatchObject({
      outcome: 'escalate',
      rules_fired: ['transfer-above-threshold'],
      obligations: { approvals: 2, approver_roles: ['treasury'], preview: false, max_cost_usd: '50000' },
      risk: 'critical',
    });
    expect(engine.evaluate(call('transfer_funds', transfer(50000.01)))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_DENY',
      rules_fired: ['transfer-hard-cap'],
    });
  });

  it('a tainted session needs review for any transfer (OE-INV-013)', () => {
    expect(engine.evaluate(call('transfer_funds', transfer(10), { tainted: true }))).toMatchObject({
      outcome: 'escalate',
      rules_fired: ['tainted-transfer-review', 'transfer-within-limit'],
      obligations: { approvals: 1, preview: true },
    });
  });

  it('delete_records: operators escalate with preview; others are denied', () => {
    const params = { table: 'orders', ids: ['o1', 'o2'] };
    const operator = { principal: { id: 'agent-1', tenant: 'acme', roles: ['operator'] } };
    expect(engine.evaluate(call('delete_records', params, operator))).toMatchObject({
      outcome: 'escalate',
      obligations: { approvals: 1, preview: true },
      risk: 'high',
    });
    expect(engine.evaluate(call('delete_records', params))).toMatchObject({
      code: 'ERR_POLICY_DENY',
      rules_fired: [],
    });
  });

  it('send_email is forbidden for tenant globex only', () => {
    const mail = { to: 'a@example.com', subject: 's', body: 'b' };
    expect(engine.evaluate(call('send_email', mail)).outcome).toBe('allow');
    const globex = { principal: { id: 'agent-g', tenant: 'globex' }, tenant: 'globex' };
    expect(engine.evaluate(call('send_email', mail, globex))).toMatchObject({
      code: 'ERR_POLICY_DENY',
      rules_fired: ['no-email-globex'],
    });
  });

  it('tenant isolation: an agent cannot act on another tenant (OE-INV-008)', () => {
    expect(engine.evaluate(call('echo', { message: 'hi' }, { tenant: 'globex' }))).toMatchObject({
      code: 'ERR_POLICY_DENY',
      rules_fired: ['tenant-isolation'],
    });
  });
});

describe('buildBundleFromDir rejects broken sources', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fc-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function copyDemo(name: string): Promise<string> {
    const d = join(dir, name);
    await cp(DEMO, d, { recursive: true });
    return d;
  }

  it('a missing directory or schema', async () => {
    expect(await buildBundleFromDir(join(dir, 'nope'))).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    const d = await copyDemo('no-schema');
    await rm(join(d, 'schema.cedarschema'));
    expect(await buildBundleFromDir(d)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });

  it('both tools/ and tools.json, or an unknown bundle.json field', async () => {
    const d = await copyDemo('both');
    await writeFile(join(d, 'tools.json'), '[]');
    expect(await buildBundleFromDir(d)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    const e = await copyDemo('meta');
    await writeFile(join(e, 'bundle.json'), '{"name":"demo","version":2}');
    expect(await buildBundleFromDir(e)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });

  it('a policy file named __proto__.cedar: refused, not left out of the bundle with its forbid unenforced', async () => {
    const d = await copyDemo('proto');
    await writeFile(
      join(d, 'policies', '__proto__.cedar'),
      'forbid (principal, action == Action::"echo", resource);',
    );
    expect(await buildBundleFromDir(d)).toMatchObject({
      code: 'ERR_POLICY_BUNDLE_INVALID',
      reason: expect.stringContaining('__proto__'),
    });
  });

  it('a policy file that is not valid UTF-8', async () => {
    const d = await copyDemo('utf8');
    await writeFile(join(d, 'policies', 'bad.cedar'), Buffer.from([0x70, 0xff, 0x3b]));
    expect(await buildBundleFromDir(d)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });
});
