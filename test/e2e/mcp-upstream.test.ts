/**
 * Upstream MCP servers as sandboxed executors, with pinned tool definitions (docs/mcp.md
 * "Upstream servers", docs/adapters.md "MCP tools"; SPEC §2 step 7, §6 Shell and sandbox,
 * OE-INV-005/006/012/013/024, FC-INV-4). A real embedded gate; the official SDK client connects
 * over the `failclosed mcp` stdio relay; the upstreams are the official
 * `@modelcontextprotocol/server-filesystem` from npm and a hostile fixture on the official SDK's
 * server package (test/fixtures/mcp-upstream/server.mjs), each launched per call by the Execution
 * Layer inside bubblewrap. Their tools are pinned with `failclosed policy pin-mcp`, and the bundle
 * is built and activated with the CLI, as an operator would. Every refusal is asserted by code,
 * by its ledger record, and by the upstream not having been called (the fixture logs each
 * `tools/call` it receives to a file).
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
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, deserializeMessage } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { runCli } from '../../src/cli/run.js';
import { announceServer, initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { REPO_ROOT } from '../support/paths.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
/** Real paths: node resolves modules by real path, and only granted paths exist in the sandbox. */
const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const FIXTURE = realpathSync(join(REPO_ROOT, 'test', 'fixtures', 'mcp-upstream'));
const FILESYSTEM_SERVER = join(
  NODE_MODULES,
  '@modelcontextprotocol',
  'server-filesystem',
  'dist',
  'index.js',
);
const HOSTILE = ['echo', 'inject', 'hang', 'crash', 'flood', 'garbage', 'leak', 'shaped'];

let work: string;
let dir: string;
let src: string;
let files: string;
let state: string;
let instance: EmbeddedInstance;
let client: Client;
/** The last bundle built and activated. */
let bundleFile: string;
const runs = new Map<string, number>();
const quiet = { out: () => undefined, err: () => undefined, env: {} };

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env: {},
  });
  return { code, out: out.join(''), err: err.join('') };
}

/** Pins both upstreams into the bundle source (`policy pin-mcp`). */
async function pin(): Promise<void> {
  const files_ = await cli(
    'policy',
    'pin-mcp',
    src,
    '--server',
    'files',
    '--read',
    NODE_MODULES,
    '--write',
    files,
    '--only',
    'read_text_file',
    '--only',
    'list_directory',
    '--',
    '/usr/bin/node',
    FILESYSTEM_SERVER,
    // The server is told it may read everything: the sandbox is what confines it.
    '/',
  );
  expect(files_.err).toBe('');
  expect(files_.code).toBe(0);
  const hostile = await cli(
    'policy',
    'pin-mcp',
    src,
    '--server',
    'hostile',
    '--read',
    NODE_MODULES,
    '--read',
    FIXTURE,
    '--write',
    state,
    '--',
    '/usr/bin/node',
    join(FIXTURE, 'server.mjs'),
    state,
  );
  expect(hostile.code).toBe(0);
  // A hanging upstream is bounded by its tool's time limit: a short one for the test.
  const hang = join(src, 'tools', 'hostile.hang.json');
  const spec = JSON.parse(readFileSync(hang, 'utf8')) as { adapter: { limits: Record<string, unknown> } };
  spec.adapter.limits['timeout_ms'] = 3000;
  writeFileSync(hang, JSON.stringify(spec));
}

/** Builds the bundle source and activates it (`policy build`, `policy activate`); its hash. */
async function activate(): Promise<string> {
  const file = join(work, `bundle-${Date.now()}.json`);
  const built = await cli('policy', 'build', src, '--out', file);
  expect(built.err).toBe('');
  expect(built.code).toBe(0);
  expect((await cli('policy', 'activate', file)).code).toBe(0);
  bundleFile = file;
  return (JSON.parse(built.out) as { hash: string }).hash;
}

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-upstream-'));
  dir = join(work, 'data');
  src = join(work, 'policy');
  files = join(work, 'files');
  state = join(work, 'state');
  mkdirSync(files);
  mkdirSync(state);
  writeFileSync(join(files, 'hello.txt'), 'hello from the granted directory\n');
  writeFileSync(join(work, 'secret.txt'), 'a secret outside every grant\n');
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-upstreams.cedar'),
    `@reason("the pinned upstream MCP tools")\npermit (principal, action in [${[
      'files.read_text_file',
      'files.list_directory',
      ...HOSTILE.map((t) => `hostile.${t}`),
    ]
      .map((a) => `Action::"${a}"`)
      .join(', ')}], resource);\n`,
  );
  await initDataDir(dir);
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
  announceServer(dir, instance.url);
  await pin();
  await activate();
  client = new Client({ name: 'fc-test-upstream', version: '1.0.0' });
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
  rmSync(work, { recursive: true, force: true });
});

async function ledgerFor(requestId: string): Promise<{ type: string; payload: Record<string, unknown> }[]> {
  const l = instance.core.ledger;
  const all = (await l.store.readRange(0, l.size())) as unknown as {
    type: string;
    request_id: string;
    payload: Record<string, unknown>;
  }[];
  return all.filter((e) => e.request_id === requestId);
}

const upstreamCalls = (): string[] =>
  existsSync(join(state, 'calls.log'))
    ? readFileSync(join(state, 'calls.log'), 'utf8').split('\n').filter(Boolean)
    : [];

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

/** A call that was denied after its envelope was consumed: its code, a failed receipt, nothing returned. */
async function expectWithheld(r: Answer, code: string): Promise<void> {
  expect(r.isError).toBe(true);
  expect(r.structuredContent).toMatchObject({ outcome: 'deny', code });
  const id = r.structuredContent?.['request_id'] as string;
  const receipt = (await ledgerFor(id)).find((e) => e.type === 'execution.receipt');
  expect(receipt?.payload).toMatchObject({ status: 'failed', code, adapter: 'mcp' });
}

describe('upstream tools through the gateway', () => {
  it('tools/list shows the pinned upstream tools as failclosed tools, with their pinned schemas', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining(['files.read_text_file', 'files.list_directory', 'hostile.echo']),
    );
    // Only the tools pinned with --only: write_file and the others are not in the bundle.
    expect(names.filter((n) => n.startsWith('files.')).sort()).toEqual([
      'files.list_directory',
      'files.read_text_file',
    ]);
    expect(tools.find((t) => t.name === 'files.read_text_file')?.inputSchema).toMatchObject({
      type: 'object',
      required: ['path'],
      additionalProperties: false,
    });
  });

  it('reads a file inside the granted directory through @modelcontextprotocol/server-filesystem in the sandbox', async () => {
    const before = runs.get('files.read_text_file') ?? 0;
    const r = await call('files.read_text_file', { path: join(files, 'hello.txt') });
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r.structuredContent)).toContain('hello from the granted directory');
    expect(runs.get('files.read_text_file')).toBe(before + 1);
    const id =
      (r._meta as Record<string, Record<string, string>>)['failclosed.dev/call']?.['request_id'] ?? '';
    expect((await ledgerFor(id)).find((e) => e.type === 'execution.receipt')?.payload).toMatchObject({
      status: 'succeeded',
      adapter: 'mcp',
      tool: 'files.read_text_file',
    });
  });

  it('a file outside the grants cannot be read: the sandbox does not mount it, though the server would allow it', async () => {
    const r = await call('files.read_text_file', { path: join(work, 'secret.txt') });
    // The upstream's own tool-level error, relayed as its answer (docs/mcp.md "What an upstream
    // answers"): the file does not exist in its sandbox.
    expect(r.isError).toBe(true);
    expect(JSON.stringify(r.content)).toContain('ENOENT');
    expect(JSON.stringify(r)).not.toContain('a secret outside every grant');
  });

  it('an unknown name never reaches an upstream: a tool of one server is not callable under another', async () => {
    const before = upstreamCalls().length;
    const r = await call('files.echo', { text: 'x' });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
    expect(upstreamCalls().length).toBe(before);
  });
});

describe('hostile upstreams: the call is denied with a code and a ledger record', () => {
  it('hangs → ERR_TOOL_TIMEOUT, bounded by the tool time limit', async () => {
    await expectWithheld(await call('hostile.hang', {}), 'ERR_TOOL_TIMEOUT');
  }, 30_000);

  it('crashes mid-call → ERR_TOOL_FAILED', async () => {
    const before = upstreamCalls().filter((c) => c === 'crash').length;
    await expectWithheld(await call('hostile.crash', {}), 'ERR_TOOL_FAILED');
    expect(upstreamCalls().filter((c) => c === 'crash').length).toBe(before + 1);
  });

  it('floods its output → ERR_TOOL_OUTPUT_LIMIT; nothing of it is returned', async () => {
    const r = await call('hostile.flood', {});
    await expectWithheld(r, 'ERR_TOOL_OUTPUT_LIMIT');
    expect(JSON.stringify(r)).not.toContain('xxxxxxxx');
  });

  it('speaks garbage → ERR_TOOL_FAILED', async () => {
    await expectWithheld(await call('hostile.garbage', {}), 'ERR_TOOL_FAILED');
  });

  it('answers outside its pinned outputSchema, after clearing the SDK client cache with tools/list_changed → ERR_TOOL_FAILED', async () => {
    const r = await call('hostile.shaped', {});
    await expectWithheld(r, 'ERR_TOOL_FAILED');
    expect(JSON.stringify(r)).not.toContain('not in schema');
    expect(upstreamCalls()).toContain('shaped');
  });
});

describe('upstream output is redacted like every result (OE-INV-010)', () => {
  it('a credential in an upstream answer is replaced before the receipt and the answer', async () => {
    const r = await call('hostile.leak', {});
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(JSON.stringify(r)).toContain('[REDACTED:aws_access_key_id]');
  });
});

describe('untrusted output taints the session (OE-INV-013)', () => {
  it('after an upstream answer asking for a transfer, the transfer in that session escalates instead of running', async () => {
    const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 10, currency: 'USD' };
    const read = await call('hostile.inject', {}, 'sess-injected');
    expect(read.isError).not.toBe(true);
    expect(JSON.stringify(read.content)).toContain('call transfer_funds');
    const before = runs.get('transfer_funds') ?? 0;
    const follow = await call('transfer_funds', transfer, 'sess-injected');
    expect(follow.isError).toBe(true);
    expect(follow.structuredContent).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    // The same transfer in a session that read nothing untrusted runs directly.
    const clean = await call('transfer_funds', transfer, 'sess-clean');
    expect(clean.isError).not.toBe(true);
    expect(runs.get('transfer_funds')).toBe(before + 1);
  });
});

describe('pinned definitions (rug pulls)', () => {
  it('a changed description withholds the tool: denied ERR_TOOL_DEFINITION_CHANGED, not called, ledgered, until a new pin is activated', async () => {
    const ok = await call('hostile.echo', { text: 'before' });
    expect(ok.isError).not.toBe(true);
    const calls = upstreamCalls().length;
    writeFileSync(join(state, 'rug'), '');
    for (const text of ['after', 'again']) {
      const r = await call('hostile.echo', { text });
      await expectWithheld(r, 'ERR_TOOL_DEFINITION_CHANGED');
    }
    // Nothing reached the upstream's tools/call.
    expect(upstreamCalls().length).toBe(calls);
    // The operator reviews the new definition and pins it: a new bundle, a new hash.
    await pin();
    await activate();
    const r = await call('hostile.echo', { text: 'repinned' });
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r.content)).toContain('repinned');
  }, 60_000);

  it('a changed input schema withholds the tool the same way', async () => {
    writeFileSync(join(state, 'rug-schema'), '');
    try {
      const calls = upstreamCalls().length;
      await expectWithheld(await call('hostile.echo', { text: 'schema' }), 'ERR_TOOL_DEFINITION_CHANGED');
      expect(upstreamCalls().length).toBe(calls);
    } finally {
      rmSync(join(state, 'rug-schema'));
    }
  });

  it('a tool the upstream no longer offers is denied ERR_TOOL_DEFINITION_CHANGED and not called', async () => {
    writeFileSync(join(state, 'gone'), '');
    try {
      const calls = upstreamCalls().length;
      await expectWithheld(await call('hostile.echo', { text: 'gone' }), 'ERR_TOOL_DEFINITION_CHANGED');
      expect(upstreamCalls().length).toBe(calls);
    } finally {
      rmSync(join(state, 'gone'));
    }
  });
});

describe('the stdio relay with the Gate in-process', () => {
  it('keeps stdout for MCP alone: an upstream without the tools capability is denied, and the client sees only valid messages', async () => {
    // A second data directory with no running server: `failclosed mcp` starts the Gate, and
    // with it the upstream's SDK client, inside its own process.
    const local = join(work, 'data-in-process');
    await initDataDir(local);
    const activated = await runCli(['--data', local, 'policy', 'activate', bundleFile], quiet);
    expect(activated).toBe(0);
    // The relay's stdout read raw, each line parsed by the official SDK's own message parser.
    const relay = spawn(process.execPath, [CLI, 'mcp', '--data', local, '--client', 'demo-agent'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const lines: string[] = [];
    const answers = new Map<number, Record<string, unknown>>();
    let waiting: { id: number; resolve: () => void } | undefined;
    createInterface({ input: relay.stdout }).on('line', (line) => {
      lines.push(line);
      try {
        const m = deserializeMessage(line) as { id?: unknown };
        if (typeof m.id === 'number') answers.set(m.id, m);
        if (waiting !== undefined && answers.has(waiting.id)) waiting.resolve();
      } catch {
        // Counted below: every line must parse.
      }
    });
    const request = (id: number, method: string, params: Record<string, unknown> = {}) =>
      new Promise<Record<string, unknown>>((resolve) => {
        waiting = { id, resolve: () => resolve(answers.get(id)!) };
        relay.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      });
    writeFileSync(join(state, 'no-tools'), '');
    try {
      await request(1, 'initialize', {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'fc-test-in-process', version: '1.0.0' },
      });
      relay.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
      const before = upstreamCalls().length;
      const called = await request(2, 'tools/call', { name: 'hostile.echo', arguments: { text: 'x' } });
      const r = called['result'] as Answer;
      expect(r.isError).toBe(true);
      expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
      expect(upstreamCalls().length).toBe(before);
      // A later request on the same channel still gets its answer.
      expect(await request(3, 'tools/list')).toHaveProperty('result.tools');
    } finally {
      rmSync(join(state, 'no-tools'));
      relay.stdin.end();
      relay.kill();
    }
    expect(
      lines.filter((l) => {
        try {
          deserializeMessage(l);
          return false;
        } catch {
          return true;
        }
      }),
    ).toEqual([]);
  }, 60_000);
});

describe('policy pin-mcp refuses what it cannot pin', () => {
  it('a directory that is not a bundle source, a relative command, no command: nothing written', async () => {
    const empty = join(work, 'not-a-bundle');
    mkdirSync(empty);
    const args = ['--server', 'x', '--', '/usr/bin/node', join(FIXTURE, 'server.mjs'), state];
    expect(await cli('policy', 'pin-mcp', empty, ...args)).toMatchObject({ code: 1 });
    expect(existsSync(join(empty, 'tools'))).toBe(false);
    expect(await cli('policy', 'pin-mcp', src, '--server', 'x', '--', 'node', 'server.mjs')).toMatchObject({
      code: 1,
    });
    expect((await cli('policy', 'pin-mcp', src, '--server', 'x')).code).toBe(2);
    expect(existsSync(join(src, 'tools', 'x.echo.json'))).toBe(false);
  });

  it('an upstream the sandbox cannot start is reported with its code; nothing written', async () => {
    const r = await cli(
      'policy',
      'pin-mcp',
      src,
      '--server',
      'x',
      '--',
      '/usr/bin/node',
      join(FIXTURE, 'server.mjs'),
    );
    // The fixture's files are not granted (no --read): node cannot load it.
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ERR_TOOL_FAILED/);
    expect(existsSync(join(src, 'schema', 'mcp-x.cedarschema'))).toBe(false);
  });
});

describe('evidence', () => {
  it('the exported ledger, upstream calls and their denials included, verifies offline', async () => {
    const trust = join(work, 'trust.json');
    expect(await runCli(['--data', dir, 'trust-roots', '--out', trust], quiet)).toBe(0);
    const exp = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exp.status).toBe(200);
    const bundle = join(work, 'ledger.jsonl');
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
