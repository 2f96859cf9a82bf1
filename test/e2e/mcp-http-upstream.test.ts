/**
 * Streamable HTTP upstream MCP servers behind the gateway (docs/mcp.md "Upstream servers",
 * docs/adapters.md "MCP tools"; SPEC §2 step 7, OE-INV-005/010/011/013/023, FC-INV-4). A real
 * embedded gate (loopback upstreams admitted by its embedding option, as for tests); the
 * official SDK client connects over the `failclosed mcp` stdio relay; the upstreams are the
 * official `@modelcontextprotocol/server-everything` run as a Streamable HTTP server on
 * loopback, and the recording hostile server of test/support/mcp-http-upstream.ts. Both are
 * pinned with `failclosed policy pin-mcp --url`, and the bundle is built and activated with the
 * CLI, as an operator would. Refusals are asserted by code, by their ledger record, and by the
 * upstream not having been called.
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { runCli } from '../../src/cli/run.js';
import { announceServer, initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { startHostileUpstream, startServerEverything } from '../support/mcp-http-upstream.js';
import type { HostileUpstream, RunningEverything } from '../support/mcp-http-upstream.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

let work: string;
let dir: string;
let src: string;
let instance: EmbeddedInstance;
let client: Client;
let everything: RunningEverything;
let hostile: HostileUpstream;
const runs = new Map<string, number>();
const quiet = { out: () => undefined, err: () => undefined, env: {} };

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env,
  });
  return { code, out: out.join(''), err: err.join('') };
}

/** Pins the hostile upstream's two tools, its header a secret reference, under `env`. */
const pinHostile = (env: Record<string, string> = {}) =>
  cli(
    [
      'policy',
      'pin-mcp',
      src,
      '--server',
      'hostile',
      '--url',
      hostile.url,
      '--header',
      'Authorization: Bearer {secret:HOSTILE_TOKEN}',
      '--only',
      'echo',
      '--only',
      'leak',
      '--allow-loopback',
    ],
    env,
  );

type Answer = {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content?: unknown;
  _meta?: unknown;
};

async function call(name: string, args: Record<string, unknown>, session?: string): Promise<Answer> {
  return (await client.callTool({
    name,
    arguments: args,
    ...(session === undefined ? {} : { _meta: { 'failclosed.dev/session': session } }),
  })) as Answer;
}

async function ledgerFor(requestId: string): Promise<{ type: string; payload: Record<string, unknown> }[]> {
  const l = instance.core.ledger;
  const all = (await l.store.readRange(0, l.size())) as unknown as {
    type: string;
    request_id: string;
    payload: Record<string, unknown>;
  }[];
  return all.filter((e) => e.request_id === requestId);
}

const requestIdOf = (r: Answer): string =>
  (r._meta as Record<string, Record<string, string>> | undefined)?.['failclosed.dev/call']?.['request_id'] ??
  (r.structuredContent?.['request_id'] as string);

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-mcp-http-'));
  dir = join(work, 'data');
  src = join(work, 'policy');
  [everything, hostile] = await Promise.all([startServerEverything(), startHostileUpstream()]);
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-http-upstreams.cedar'),
    `@reason("the pinned HTTP upstream MCP tools")\npermit (principal, action in [${[
      'everything.echo',
      'everything.get-sum',
      'hostile.echo',
      'hostile.leak',
    ]
      .map((a) => `Action::"${a}"`)
      .join(', ')}], resource);\n`,
  );
  await initDataDir(dir);
  // The Execution Layer's secret resolver reads its environment once, when the gate opens.
  process.env['FC_SECRET_HOSTILE_TOKEN'] = 'gate-token-7c21';
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    allowLoopbackMcpUpstreams: true,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
  delete process.env['FC_SECRET_HOSTILE_TOKEN'];
  announceServer(dir, instance.url);
  const pinned = await cli([
    'policy',
    'pin-mcp',
    src,
    '--server',
    'everything',
    '--url',
    everything.url,
    '--only',
    'echo',
    '--only',
    'get-sum',
    '--allow-loopback',
  ]);
  expect(pinned.err).toBe('');
  expect(pinned.code).toBe(0);
  const rugged = await pinHostile({ FC_SECRET_HOSTILE_TOKEN: 'pin-time-token' });
  expect(rugged.err).toBe('');
  expect(rugged.code).toBe(0);
  const file = join(work, 'bundle.json');
  const built = await cli(['policy', 'build', src, '--out', file]);
  expect(built.err).toBe('');
  expect(built.code).toBe(0);
  expect((await cli(['policy', 'activate', file])).code).toBe(0);
  client = new Client({ name: 'fc-test-mcp-http', version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--data', dir, '--client', 'demo-agent'],
      stderr: 'pipe',
    }),
  );
}, 120_000);

afterAll(async () => {
  await client?.close();
  await instance?.close();
  await Promise.all([everything?.stop(), hostile?.close()]);
  rmSync(work, { recursive: true, force: true });
});

describe('policy pin-mcp --url', () => {
  it('writes tool files that declare the url, the header as a secret reference, and only the destination', () => {
    const spec = JSON.parse(readFileSync(join(src, 'tools', 'hostile.echo.json'), 'utf8')) as {
      untrusted_output: boolean;
      adapter: Record<string, unknown>;
    };
    expect(spec.untrusted_output).toBe(true);
    expect(spec.adapter).toMatchObject({
      type: 'mcp',
      server: 'hostile',
      url: hostile.url,
      headers: { Authorization: { secret: 'HOSTILE_TOKEN', prefix: 'Bearer ' } },
      tool: 'echo',
      limits: { network: true, egress: [`127.0.0.1:${hostile.port}`] },
    });
    expect(spec.adapter['command']).toBeUndefined();
    expect(JSON.stringify(spec)).not.toContain('pin-time-token');
    // The listing itself was sent with the resolved secret.
    expect(hostile.headers.some((h) => h['authorization'] === 'Bearer pin-time-token')).toBe(true);
  });

  it("reads a secret from the data directory's secrets.json, as the Execution Layer does", async () => {
    const secrets = join(dir, 'secrets.json');
    writeFileSync(secrets, JSON.stringify({ HOSTILE_TOKEN: 'file-token-91' }), { mode: 0o600 });
    try {
      const r = await pinHostile();
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(hostile.headers.some((h) => h['authorization'] === 'Bearer file-token-91')).toBe(true);
      expect(readFileSync(join(src, 'tools', 'hostile.echo.json'), 'utf8')).not.toContain('file-token-91');
    } finally {
      rmSync(secrets, { force: true });
    }
  });

  it('refuses a loopback upstream without --allow-loopback; nothing written', async () => {
    const r = await cli(['policy', 'pin-mcp', src, '--server', 'loop', '--url', everything.url]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ERR_EGRESS_DENIED/);
    expect(existsSync(join(src, 'tools', 'loop.echo.json'))).toBe(false);
  });
});

describe('server-everything through the gateway', () => {
  it('tools/list shows the pinned upstream tools with their pinned schemas', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['everything.echo', 'everything.get-sum']));
    expect(names.filter((n) => n.startsWith('everything.')).sort()).toEqual([
      'everything.echo',
      'everything.get-sum',
    ]);
    expect(tools.find((t) => t.name === 'everything.echo')?.inputSchema).toMatchObject({
      type: 'object',
      required: ['message'],
      additionalProperties: false,
    });
  });

  it('calls echo and get-sum upstream; each call has its decision, envelope and receipt in the ledger', async () => {
    const before = runs.get('everything.echo') ?? 0;
    const r = await call('everything.echo', { message: 'through failclosed' });
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r)).toContain('Echo: through failclosed');
    expect(runs.get('everything.echo')).toBe(before + 1);
    const records = await ledgerFor(requestIdOf(r));
    expect(records.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'gateway.accepted',
        'decision',
        'session.tainted',
        'envelope.issued',
        'execution.receipt',
        'gateway.completed',
      ]),
    );
    expect(records.find((e) => e.type === 'execution.receipt')?.payload).toMatchObject({
      status: 'succeeded',
      adapter: 'mcp',
      tool: 'everything.echo',
    });
    const sum = await call('everything.get-sum', { a: 2, b: 40 });
    expect(sum.isError).not.toBe(true);
    expect(JSON.stringify(sum)).toContain('42');
  });

  it('its output taints the session: a transfer after it escalates instead of running (OE-INV-013)', async () => {
    const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 10, currency: 'USD' };
    expect((await call('everything.echo', { message: 'hello' }, 'sess-http')).isError).not.toBe(true);
    const before = runs.get('transfer_funds') ?? 0;
    const follow = await call('transfer_funds', transfer, 'sess-http');
    expect(follow.structuredContent).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
  });
});

describe('a hostile HTTP upstream through the gateway', () => {
  it('its output is redacted like every result (OE-INV-010)', async () => {
    const r = await call('hostile.leak', {});
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(JSON.stringify(r)).toContain('[REDACTED:aws_access_key_id]');
  });

  it('a tool changed after pinning is denied ERR_TOOL_DEFINITION_CHANGED, ledgered, and not called', async () => {
    const calls = hostile.calls.length;
    hostile.state.rug = true;
    try {
      const r = await call('hostile.echo', { text: 'after the rug pull' });
      expect(r.isError).toBe(true);
      expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
      const receipt = (await ledgerFor(requestIdOf(r))).find((e) => e.type === 'execution.receipt');
      expect(receipt?.payload).toMatchObject({
        status: 'failed',
        code: 'ERR_TOOL_DEFINITION_CHANGED',
        adapter: 'mcp',
      });
    } finally {
      hostile.state.rug = false;
    }
    expect(hostile.calls.length).toBe(calls);
  });

  it('the upstream gets the bundle headers with the gate secret, and nothing of the agent request', async () => {
    const seen = hostile.headers.length;
    const r = await call('hostile.echo', { text: 'headers' }, 'sess-headers');
    expect(r.isError).not.toBe(true);
    const sent = hostile.headers.slice(seen);
    expect(sent.length).toBeGreaterThan(0);
    for (const h of sent) {
      expect(h['authorization']).toBe('Bearer gate-token-7c21');
      const text = JSON.stringify(h);
      for (const agentPart of ['demo-agent', 'sess-headers', 'failclosed.dev', 'signature'])
        expect(text).not.toContain(agentPart);
    }
  });
});

describe('evidence', () => {
  it('the exported ledger, HTTP upstream calls and their denials included, verifies offline', async () => {
    const trust = join(work, 'trust.json');
    expect(await runCli(['--data', dir, 'trust-roots', '--out', trust], quiet)).toBe(0);
    const exp = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exp.status).toBe(200);
    const bundle = join(work, 'ledger.jsonl');
    mkdirSync(work, { recursive: true });
    writeFileSync(bundle, await exp.text());
    const out: string[] = [];
    const code = await runCli(['verify', bundle, '--trust', trust, '--json'], {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
      env: {},
    });
    const report = JSON.parse(out.join('')) as VerifyReport;
    expect(report.checks.flatMap((c) => c.findings.map((f) => `${f.code}: ${f.message}`))).toEqual([]);
    expect(code).toBe(0);
  }, 60_000);
});
