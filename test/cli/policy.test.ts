/**
 * Policy that cannot run does not activate, the dry run, bundle diffs and client roles, through
 * the CLI over a real data directory (issue 8 point 9; SPEC §6 "Policy as code", OE-INV-005/014).
 * Operator commands use an in-process instance (no server runs).
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli/run.js';
import { canonicalize, sha256Hex } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

let dir: string;
let work: string;
let demoBundle: string;

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...argv, '--data', dir], {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
  });
  return { code, out, err };
}

/** A copy of the demo bundle source with `list_files`'s adapter replaced. */
function demoWith(name: string, adapter: unknown): string {
  const src = join(work, name);
  cpSync(join(REPO_ROOT, 'examples/demo-policy'), src, { recursive: true });
  const path = join(src, 'tools', 'list-files.json');
  const tool = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  writeFileSync(path, JSON.stringify({ ...tool, adapter }));
  return src;
}

const LIST_ADAPTER = {
  type: 'command',
  argv: ['/usr/bin/ls', '-la', '--', '{path}'],
  limits: { timeout_ms: 5000, max_output_bytes: 65536, network: false },
};

/** The three bundles of the issue: misspelled limits.timeout, relative argv[0], type "comand". */
const BAD: [string, unknown, string][] = [
  ['limits.timeout', { ...LIST_ADAPTER, limits: { timeout: 5000 } }, 'adapter.limits: unknown key "timeout"'],
  ['relative argv[0]', { ...LIST_ADAPTER, argv: ['ls', '-la', '--', '{path}'] }, 'adapter.argv[0]'],
  ['type "comand"', { ...LIST_ADAPTER, type: 'comand' }, 'adapter.type: unknown adapter type "comand"'],
];

function activePointer(): string {
  return readFileSync(join(dir, 'bundles', 'ACTIVE'), 'utf8').trim();
}

function ledgerDigest(): string {
  const h = createHash('sha256');
  for (const f of ['ledger.db', 'ledger.db-wal', 'state.db', 'state.db-wal', 'nonces.db', 'nonces.db-wal'])
    if (existsSync(join(dir, f))) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-policy-'));
  work = mkdtempSync(join(tmpdir(), 'fc-policy-src-'));
  expect(await run('init', dir)).toMatchObject({ code: EXIT.ok });
  demoBundle = join(work, 'demo.json');
  expect(
    (await run('policy', 'build', join(REPO_ROOT, 'examples/demo-policy'), '--out', demoBundle)).code,
  ).toBe(EXIT.ok);
}, 60_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe('policy that cannot run does not activate', () => {
  for (const [what, adapter, path] of BAD) {
    it(`policy build refuses ${what}, naming tool and path`, async () => {
      const out = join(work, `built-${what.replace(/\W/g, '')}.json`);
      const r = await run(
        'policy',
        'build',
        demoWith(`src-${what.replace(/\W/g, '')}`, adapter),
        '--out',
        out,
      );
      expect(r.code).toBe(EXIT.failed);
      expect(r.err).toContain('ERR_POLICY_BUNDLE_INVALID');
      expect(r.err).toContain(`tool "list_files": ${path}`);
      expect(existsSync(out)).toBe(false);
    });

    it(`policy activate refuses ${what}; nothing is stored or activated`, async () => {
      const doc = JSON.parse(readFileSync(demoBundle, 'utf8')) as { tools: Record<string, unknown>[] };
      const tools = doc.tools.map((t) => (t['name'] === 'list_files' ? { ...t, adapter } : t));
      const file = join(work, `bad-${what.replace(/\W/g, '')}.json`);
      writeFileSync(file, JSON.stringify({ ...doc, tools }));
      const before = activePointer();
      const stored = readdirSync(join(dir, 'bundles')).sort();
      const r = await run('policy', 'activate', file);
      expect(r.code).toBe(EXIT.failed);
      expect(JSON.parse(r.err)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
      expect((JSON.parse(r.err) as { reason: string }).reason).toContain(`tool "list_files": ${path}`);
      expect(activePointer()).toBe(before);
      expect(readdirSync(join(dir, 'bundles')).sort()).toEqual(stored);
    });
  }
});

describe('policy test (dry run)', () => {
  it('takes --tenant for a client without a key file here, and refuses it twice', async () => {
    const r = await run(
      'policy',
      'test',
      'echo',
      '--params',
      '{"message":"hi"}',
      '--client',
      'elsewhere-bot',
      '--tenant',
      'globex',
    );
    expect(r.code).not.toBe(EXIT.usage);
    expect((JSON.parse(r.out) as Record<string, unknown>)['tenant']).toBe('globex');
    const twice = await run('policy', 'test', 'echo', '--params', '{}', '--tenant', 'a', '--tenant', 'b');
    expect(twice.code).toBe(EXIT.usage);
  });

  it('allows echo, names the rules fired and the constraints, and records nothing', async () => {
    const before = ledgerDigest();
    const r = await run('policy', 'test', 'echo', '--params', '{"message":"hi"}', '--tenant', 'acme');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as Record<string, unknown>;
    expect(out).toMatchObject({
      dry_run: true,
      decision: 'allow',
      code: null,
      policy_bundle: activePointer(),
    });
    expect(out['rules_fired']).toEqual(['allow-basic-tools']);
    expect(out['constraints']).toMatchObject({ timeout_ms: 10_000 });
    expect(ledgerDigest()).toBe(before);
  });

  it('escalates delete_records for an operator (exit 3) and denies it otherwise (exit 1)', async () => {
    const params = '{"table":"orders","ids":["o1"]}';
    const op = await run('policy', 'test', 'delete_records', '--params', params, '--role', 'operator');
    expect(op.code).toBe(3);
    expect(JSON.parse(op.out)).toMatchObject({
      decision: 'escalate',
      code: 'ERR_APPROVAL_REQUIRED',
      rules_fired: ['delete-records-operators'],
      obligations: { approvals: 1, preview: true },
      principal: { id: 'demo-agent', roles: ['operator'] },
    });
    const none = await run('policy', 'test', 'delete_records', '--params', params);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.out)).toMatchObject({ decision: 'deny', code: 'ERR_POLICY_DENY' });
  });

  it('reports schema errors', async () => {
    const r = await run('policy', 'test', 'echo', '--params', '{"message":1,"x":2}', '--bundle', demoBundle);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.out) as { code: string; schema_errors: string[] };
    expect(out.code).toBe('ERR_PARAMS_INVALID');
    expect(out.schema_errors.join('\n')).toContain('additional properties (x)');
    expect(out.schema_errors.join('\n')).toContain('/message');
  });

  it('refuses a bundle file whose adapter cannot run', async () => {
    const doc = JSON.parse(readFileSync(demoBundle, 'utf8')) as { tools: Record<string, unknown>[] };
    const tools = doc.tools.map((t) => (t['name'] === 'list_files' ? { ...t, adapter: BAD[2]![1] } : t));
    const file = join(work, 'bad-for-test.json');
    writeFileSync(file, JSON.stringify({ ...doc, tools }));
    const r = await run('policy', 'test', 'echo', '--params', '{"message":"hi"}', '--bundle', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain('unknown adapter type "comand"');
  });
});

describe('a stored bundle that cannot run is refused when loaded from the store', () => {
  it('no bundle is active then: the dry run fails and the gate denies ERR_POLICY_UNAVAILABLE', async () => {
    const doc = JSON.parse(readFileSync(demoBundle, 'utf8')) as { tools: Record<string, unknown>[] };
    const tools = doc.tools.map((t) => (t['name'] === 'list_files' ? { ...t, adapter: BAD[0]![1] } : t));
    // Planted as an older release would have stored it: canonical bytes under their hash.
    const bytes = canonicalize({ ...doc, tools } as unknown as JsonValue);
    const hash = sha256Hex(bytes);
    writeFileSync(join(dir, 'bundles', `${hash}.json`), bytes);
    const previous = activePointer();
    writeFileSync(join(dir, 'bundles', 'ACTIVE'), `${hash}\n`);
    try {
      const dry = await run('policy', 'test', 'echo', '--params', '{"message":"hi"}', '--tenant', 'acme');
      expect(dry.code).toBe(1);
      expect(dry.err).toContain('adapter.limits: unknown key "timeout"');
      const r = await run('call', 'echo', '--params', '{"message":"hi"}');
      expect(r.code).toBe(EXIT.failed);
      expect(JSON.parse(r.out)).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_UNAVAILABLE' });
    } finally {
      writeFileSync(join(dir, 'bundles', 'ACTIVE'), `${previous}\n`);
    }
  });
});

describe('client roles reach Cedar as principal.roles', () => {
  it('a client registered with the operator role gets the operator rule, one without does not', async () => {
    const add = await run(
      'clients',
      'add',
      'ops-bot',
      '--tenant',
      'acme',
      '--role',
      'operator',
      '--role',
      'ops',
    );
    expect(add.code).toBe(EXIT.ok);
    expect(JSON.parse(add.out)).toMatchObject({ identity: 'ops-bot', roles: ['operator', 'ops'] });
    expect((await run('clients', 'add', 'plain-bot', '--tenant', 'acme')).code).toBe(EXIT.ok);
    const listed = JSON.parse((await run('clients', 'list')).out) as {
      clients: { identity: string; roles: string[] }[];
    };
    expect(listed.clients.find((c) => c.identity === 'ops-bot')?.roles).toEqual(['operator', 'ops']);
    expect(listed.clients.find((c) => c.identity === 'plain-bot')?.roles).toEqual([]);

    const params = '{"table":"orders","ids":["o1"]}';
    const op = await run('call', 'delete_records', '--params', params, '--client', 'ops-bot');
    expect(op.code).toBe(EXIT.failed);
    expect(JSON.parse(op.out)).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    const plain = await run('call', 'delete_records', '--params', params, '--client', 'plain-bot');
    expect(plain.code).toBe(EXIT.failed);
    expect(JSON.parse(plain.out)).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });

    const bad = await run('clients', 'add', 'bad-bot', '--tenant', 'acme', '--role', 'has space');
    expect(bad.code).toBe(EXIT.failed);
    expect(JSON.parse(bad.err)).toMatchObject({ code: 'ERR_REQUEST_MALFORMED' });
  });
});

describe('policy diff', () => {
  it('names changed tools and policies, with the text diff; identical bundles exit 0', async () => {
    const src = demoWith('src-diff', {
      ...LIST_ADAPTER,
      limits: { ...LIST_ADAPTER.limits, timeout_ms: 2000 },
    });
    const policy = join(src, 'policies', 'allow-basic-tools.cedar');
    writeFileSync(policy, readFileSync(policy, 'utf8').replace('permit', '@risk("medium")\npermit'));
    rmSync(join(src, 'policies', 'no-email-globex.cedar'));
    const changed = join(work, 'changed.json');
    expect((await run('policy', 'build', src, '--out', changed)).code).toBe(EXIT.ok);

    const same = await run('policy', 'diff', demoBundle, activePointer());
    expect(same.code).toBe(0);
    expect(same.out).toContain('identical');

    const text = await run('policy', 'diff', activePointer(), changed);
    expect(text.code).toBe(1);
    expect(text.out).toContain('tool changed: list_files');
    expect(text.out).toContain('adapter:');
    expect(text.out).toContain('policy changed: allow-basic-tools');
    expect(text.out).toContain('    + @risk("medium")');
    expect(text.out).toContain('policy removed: no-email-globex');

    const json = await run('policy', 'diff', demoBundle, changed, '--json');
    expect(json.code).toBe(1);
    const d = JSON.parse(json.out) as {
      tools: { changed: { name: string; fields: { field: string }[] }[] };
      policies: { removed: { id: string }[]; changed: { id: string }[] };
      schema: unknown;
    };
    expect(d.tools.changed).toEqual([expect.objectContaining({ name: 'list_files' })]);
    expect(d.tools.changed[0]!.fields.map((f) => f.field)).toEqual(['adapter']);
    expect(d.policies.removed.map((p) => p.id)).toEqual(['no-email-globex']);
    expect(d.policies.changed.map((p) => p.id)).toEqual(['allow-basic-tools']);
    expect(d.schema).toBeNull();

    const missing = await run('policy', 'diff', demoBundle, join(work, 'nope.json'));
    expect(missing.code).toBe(2);
  });

  it('pin-mcp --names takes server or upstream only: anything else is a usage error, nothing listed', async () => {
    const r = await run(
      'policy',
      'pin-mcp',
      join(work, 'nowhere'),
      '--server',
      'x',
      '--names',
      'both',
      '--url',
      'http://127.0.0.1:9/mcp',
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('--names must be server or upstream');
  });

  it.each(['roots', 'sampling,sampling', 'sampling,'])(
    'pin-mcp --client-requests %s is a usage error, nothing listed',
    async (kinds) => {
      const r = await run(
        'policy',
        'pin-mcp',
        join(work, 'nowhere'),
        '--server',
        'x',
        '--client-requests',
        kinds,
        '--url',
        'http://127.0.0.1:9/mcp',
      );
      expect(r.code).toBe(2);
      expect(r.err).toContain('--client-requests must be a comma-separated list of sampling, elicitation');
    },
  );
});
