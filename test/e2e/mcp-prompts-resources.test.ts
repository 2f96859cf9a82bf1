/**
 * Upstream MCP prompts and resources behind the gateway (docs/mcp.md "Prompts and resources";
 * SPEC §2, FC-INV-3/4/6, OE-INV-005/010/013/023). A real embedded gate (loopback upstreams
 * admitted by its embedding option, as for tests); the official SDK client over the
 * `failclosed mcp` stdio relay; the upstreams are the official
 * `@modelcontextprotocol/server-everything` (Streamable HTTP on loopback, and over stdio launched
 * per call by the Execution Layer inside bubblewrap) and the recording
 * hostile server of test/support/mcp-http-upstream.ts, pinned with `failclosed policy pin-mcp
 * --url --prompt --resource`, built and activated with the CLI. Every `prompts/get` and
 * `resources/read` is a governed call: asserted by its ledger records (decision and envelope
 * before the receipt), by what the upstream received, and, for refusals, by the upstream not
 * having been asked at all.
 */
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { createApproverClient } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { announceServer, initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { pinHostileArgs, startHostileUpstream, startServerEverything } from '../support/mcp-http-upstream.js';
import type { HostileUpstream, RunningEverything } from '../support/mcp-http-upstream.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const DOC_URI = 'demo://resource/static/document/instructions.md';
const LOCAL_DOC_URI = 'demo://resource/static/document/features.md';
const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const EVERYTHING_STDIO = join(NODE_MODULES, '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

let work: string;
let dir: string;
let src: string;
let instance: EmbeddedInstance;
let client: Client;
let everything: RunningEverything;
let hostile: HostileUpstream;
const runs = new Map<string, number>();
const quiet = { out: () => undefined, err: () => undefined, env: {} };

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env: {},
  });
  return { code, out: out.join(''), err: err.join('') };
}

type Entry = { index: number; type: string; request_id: string; payload: Record<string, unknown> };

async function ledgerFor(requestId: string): Promise<Entry[]> {
  const l = instance.core.ledger;
  await l.settled();
  const all = (await l.store.readRange(0, l.size())) as unknown as Entry[];
  return all.filter((e) => e.request_id === requestId);
}

const requestIdOf = (r: { _meta?: unknown }): string =>
  ((r._meta as Record<string, Record<string, string>>)['failclosed.dev/call'] ?? {})['request_id'] ?? '';

/** The JSON-RPC error of a refused get or read. */
async function refusal(p: Promise<unknown>): Promise<{ code: number; data: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; data: Record<string, unknown> };
  }
  throw new Error('expected a refusal');
}

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-mcp-entries-'));
  dir = join(work, 'data');
  src = join(work, 'policy');
  [everything, hostile] = await Promise.all([startServerEverything(), startHostileUpstream()]);
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-entries.cedar'),
    [
      '@reason("the pinned upstream prompts and resources")',
      `permit (principal, action in [${[
        'everything.prompts.simple-prompt',
        'everything.prompts.args-prompt',
        'everything.resources.instructions_md',
        'hostile.resources.notes',
        'local.prompts.simple-prompt',
        'local.resources.features_md',
      ]
        .map((a) => `Action::"${a}"`)
        .join(', ')}], resource);`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(src, 'policies', 'mcp-greet-carol.cedar'),
    '@reason("greeting carol needs one approval")\n@approvals("1")\npermit (principal, action == Action::"hostile.prompts.greet", resource) when { context.params.who == "carol" };\n',
  );
  writeFileSync(
    join(src, 'policies', 'mcp-greet-complete.cedar'),
    '@reason("complete names starting with b")\npermit (principal, action == Action::"hostile.prompts.greet.complete", resource) when { context.params.argument == "who" && context.params.value like "b*" };\n',
  );
  writeFileSync(
    join(src, 'policies', 'mcp-greet.cedar'),
    '@reason("greet anyone but mallory")\npermit (principal, action == Action::"hostile.prompts.greet", resource) when { context.params.who != "mallory" && context.params.who != "carol" };\n',
  );
  await initDataDir(dir);
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    allowLoopbackMcpUpstreams: true,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
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
    '--prompt',
    'simple-prompt',
    '--prompt',
    'args-prompt',
    '--resource',
    DOC_URI,
    '--allow-loopback',
  ]);
  expect(pinned.err).toBe('');
  expect(pinned.code).toBe(0);
  const pinnedHostile = await cli(pinHostileArgs(src, hostile.url));
  expect(pinnedHostile.err).toBe('');
  expect(pinnedHostile.code).toBe(0);
  // The same server over stdio, launched in the sandbox with only its package readable.
  const pinnedLocal = await cli([
    'policy',
    'pin-mcp',
    src,
    '--server',
    'local',
    '--read',
    NODE_MODULES,
    '--only',
    'echo',
    '--prompt',
    'simple-prompt',
    '--resource',
    LOCAL_DOC_URI,
    '--',
    '/usr/bin/node',
    EVERYTHING_STDIO,
    'stdio',
  ]);
  expect(pinnedLocal.err).toBe('');
  expect(pinnedLocal.code).toBe(0);
  const file = join(work, 'bundle.json');
  const built = await cli(['policy', 'build', src, '--out', file]);
  expect(built.err).toBe('');
  expect(built.code).toBe(0);
  expect((await cli(['policy', 'activate', file])).code).toBe(0);
  client = new Client({ name: 'fc-test-mcp-entries', version: '1.0.0' });
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

describe('policy pin-mcp --prompt --resource', () => {
  it('writes a prompt entry with its arguments as parameters and a resource entry bound to its URI', () => {
    const prompt = JSON.parse(
      readFileSync(join(src, 'tools', 'everything.prompts.args-prompt.json'), 'utf8'),
    ) as {
      untrusted_output: boolean;
      parameters: Record<string, unknown>;
      adapter: Record<string, unknown>;
    };
    expect(prompt.untrusted_output).toBe(true);
    expect(prompt.parameters).toMatchObject({
      properties: { city: { type: 'string' }, state: { type: 'string' } },
      required: ['city'],
      additionalProperties: false,
    });
    expect(prompt.adapter).toMatchObject({ type: 'mcp', server: 'everything', prompt: 'args-prompt' });
    const resource = JSON.parse(
      readFileSync(join(src, 'tools', 'everything.resources.instructions_md.json'), 'utf8'),
    ) as { parameters: Record<string, unknown>; adapter: Record<string, unknown> };
    expect(resource.parameters).toMatchObject({ properties: { uri: { const: DOC_URI } }, required: ['uri'] });
    expect(resource.adapter).toMatchObject({ resource: DOC_URI, definition: { uri: DOC_URI } });
    const cedar = readFileSync(join(src, 'schema', 'mcp-everything.cedarschema'), 'utf8');
    expect(cedar).toContain('action "everything.prompts.args-prompt"');
    expect(cedar).toContain('params: { "city": String, "state"?: String }');
  });
});

describe('prompts and resources through the gateway', () => {
  it('prompts/list and resources/list show only the pinned entries this principal could be allowed', async () => {
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name).sort()).toEqual([
      'everything.prompts.args-prompt',
      'everything.prompts.simple-prompt',
      'hostile.prompts.greet',
      'local.prompts.simple-prompt',
    ]);
    expect(prompts.find((p) => p.name === 'everything.prompts.args-prompt')?.arguments).toEqual([
      { name: 'city', description: 'Name of the city', required: true },
      { name: 'state', required: false },
    ]);
    const { resources } = await client.listResources();
    // hostile://secret/1 is pinned, but no policy could allow it: not listed.
    expect(resources.map((r) => r.uri).sort()).toEqual([LOCAL_DOC_URI, DOC_URI, 'hostile://notes/1'].sort());
    // Neither a prompt nor a resource is a tool.
    const { tools } = await client.listTools();
    expect(tools.filter((t) => /\.(prompts|resources)\./.test(t.name))).toEqual([]);
  });

  it('an allowed prompts/get runs upstream once, ledgered before it runs, with its receipt', async () => {
    const before = runs.get('everything.prompts.args-prompt') ?? 0;
    const r = await client.getPrompt({
      name: 'everything.prompts.args-prompt',
      arguments: { city: 'Paris' },
    });
    expect(JSON.stringify(r.messages)).toContain("What's weather in Paris?");
    expect(runs.get('everything.prompts.args-prompt')).toBe(before + 1);
    const records = await ledgerFor(requestIdOf(r));
    const seq = (type: string) => records.find((e) => e.type === type)?.index ?? -1;
    for (const t of [
      'gateway.accepted',
      'decision',
      'envelope.issued',
      'execution.receipt',
      'gateway.completed',
    ])
      expect(seq(t)).toBeGreaterThanOrEqual(0);
    expect(seq('gateway.accepted')).toBeLessThan(seq('decision'));
    expect(seq('decision')).toBeLessThan(seq('envelope.issued'));
    expect(seq('envelope.issued')).toBeLessThan(seq('execution.receipt'));
    expect(records.find((e) => e.type === 'execution.receipt')?.payload).toMatchObject({
      status: 'succeeded',
      adapter: 'mcp',
      tool: 'everything.prompts.args-prompt',
    });
    expect((r._meta as Record<string, Record<string, unknown>>)['failclosed.dev/call']).toMatchObject({
      outcome: 'executed',
      receipt: expect.any(Object),
    });
  });

  it('an allowed resources/read returns the upstream text, with its receipt', async () => {
    const r = await client.readResource({ uri: DOC_URI });
    expect(r.contents[0]).toMatchObject({ uri: DOC_URI, mimeType: 'text/markdown' });
    expect(JSON.stringify(r.contents).length).toBeGreaterThan(100);
    const receipt = (await ledgerFor(requestIdOf(r))).find((e) => e.type === 'execution.receipt');
    expect(receipt?.payload).toMatchObject({
      status: 'succeeded',
      tool: 'everything.resources.instructions_md',
    });
  });

  it("a resource's text is redacted and taints the session: a transfer after it escalates (OE-INV-010/013)", async () => {
    const r = await client.readResource({
      uri: 'hostile://notes/1',
      _meta: { 'failclosed.dev/session': 'sess-res' },
    });
    expect(JSON.stringify(r.contents)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(JSON.stringify(r.contents)).toContain('[REDACTED:aws_access_key_id]');
    expect((await ledgerFor(requestIdOf(r))).map((e) => e.type)).toContain('session.tainted');
    const before = runs.get('transfer_funds') ?? 0;
    const follow = await client.callTool({
      name: 'transfer_funds',
      arguments: { from_account: 'acct_a', to_account: 'acct_b', amount: 10, currency: 'USD' },
      _meta: { 'failclosed.dev/session': 'sess-res' },
    });
    expect(follow.structuredContent).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
  });

  it('over stdio in the sandbox: a prompt is got and a resource read, each with its receipt', async () => {
    const p = await client.getPrompt({ name: 'local.prompts.simple-prompt' });
    expect(JSON.stringify(p.messages)).toContain('This is a simple prompt without arguments.');
    // One URI, one entry (the bundle check): this document is pinned from the stdio server only.
    const r = await client.readResource({ uri: LOCAL_DOC_URI });
    expect(r.contents[0]).toMatchObject({ uri: LOCAL_DOC_URI, mimeType: 'text/markdown' });
    const read = (await ledgerFor(requestIdOf(r))).find((e) => e.type === 'execution.receipt');
    expect(read?.payload).toMatchObject({ status: 'succeeded', tool: 'local.resources.features_md' });
    const receipt = (await ledgerFor(requestIdOf(p))).find((e) => e.type === 'execution.receipt');
    expect(receipt?.payload).toMatchObject({
      status: 'succeeded',
      adapter: 'mcp',
      tool: 'local.prompts.simple-prompt',
    });
  });

  it('a prompts/get the policy does not allow is denied by a ledgered decision; nothing is asked upstream', async () => {
    const fetched = hostile.fetched.length;
    const e = await refusal(
      client.getPrompt({ name: 'hostile.prompts.greet', arguments: { who: 'mallory' } }),
    );
    expect(e.code).toBe(-32001);
    expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    const records = await ledgerFor(String(e.data['request_id']));
    expect(records.find((r) => r.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_DENY',
    });
    expect(records.map((r) => r.type)).not.toContain('envelope.issued');
    expect(hostile.fetched.length).toBe(fetched);
    // The same prompt for someone else runs.
    const ok = await client.getPrompt({ name: 'hostile.prompts.greet', arguments: { who: 'alice' } });
    expect(JSON.stringify(ok.messages)).toContain('Hello alice');
    expect(hostile.fetched.slice(fetched)).toEqual(['greet']);
  });

  it('an escalated prompts/get answers pending with its decision; approved, the retry named in it runs once', async () => {
    const fetched = hostile.fetched.length;
    const first = await refusal(
      client.getPrompt({ name: 'hostile.prompts.greet', arguments: { who: 'carol' } }),
    );
    expect(first.code).toBe(-32001);
    const pending = first.data as {
      code: string;
      decision_id: string;
      retry: { _meta: Record<string, unknown> };
    };
    expect(pending).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(hostile.fetched.length).toBe(fetched);
    const key = generateSigningKey();
    const authorization = `Bearer ${readOperatorToken(dir)}`;
    const added = await instance.core.gate.admin(
      'approvers-add',
      { name: 'prompt-reviewer', roles: ['treasury'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
      authorization,
    );
    expect(added.status).toBe(201);
    const approver = createApproverClient({ url: instance.url, name: 'prompt-reviewer', key, authorization });
    expect((await approver.decide(pending.decision_id, 'approve', 'a greeting')).status).toBe(200);
    const retry = () =>
      client.getPrompt({
        name: 'hostile.prompts.greet',
        arguments: { who: 'carol' },
        _meta: pending.retry._meta,
      });
    const done = await retry();
    expect(JSON.stringify(done.messages)).toContain('Hello carol');
    expect(hostile.fetched.slice(fetched)).toEqual(['greet']);
    // Issued once: a further retry is a replay, nothing asked upstream.
    expect((await refusal(retry())).data).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    expect(hostile.fetched.length).toBe(fetched + 1);
  });

  it('a pinned resource no policy allows is not listed, and a read of it is denied; nothing is read upstream', async () => {
    const fetched = hostile.fetched.length;
    const e = await refusal(client.readResource({ uri: 'hostile://secret/1' }));
    expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    expect((await ledgerFor(String(e.data['request_id']))).map((r) => r.type)).toContain('decision');
    expect(hostile.fetched.length).toBe(fetched);
  });

  it('a prompt changed upstream after pinning is denied ERR_TOOL_DEFINITION_CHANGED, ledgered, and not got', async () => {
    const fetched = hostile.fetched.length;
    hostile.state.promptRug = true;
    try {
      const e = await refusal(client.getPrompt({ name: 'hostile.prompts.greet', arguments: { who: 'bob' } }));
      expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
      const receipt = (await ledgerFor(String(e.data['request_id']))).find(
        (r) => r.type === 'execution.receipt',
      );
      expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_TOOL_DEFINITION_CHANGED' });
    } finally {
      hostile.state.promptRug = false;
    }
    expect(hostile.fetched.length).toBe(fetched);
  });

  it('a resource changed upstream after pinning is denied ERR_TOOL_DEFINITION_CHANGED, ledgered, and not read', async () => {
    const fetched = hostile.fetched.length;
    hostile.state.resourceRug = true;
    try {
      const e = await refusal(client.readResource({ uri: 'hostile://notes/1' }));
      expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
      const receipt = (await ledgerFor(String(e.data['request_id']))).find(
        (r) => r.type === 'execution.receipt',
      );
      expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_TOOL_DEFINITION_CHANGED' });
    } finally {
      hostile.state.resourceRug = false;
    }
    expect(hostile.fetched.length).toBe(fetched);
  });

  it('a prompt entry is not a tool: tools/call of its name is refused ERR_TOOL_UNKNOWN; nothing runs', async () => {
    const fetched = hostile.fetched.length;
    const r = await client.callTool({ name: 'hostile.prompts.greet', arguments: { who: 'alice' } });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
    expect(hostile.fetched.length).toBe(fetched);
  });

  it('a completion/complete no policy allows is denied by a ledgered decision; nothing runs upstream; an unpinned one is ERR_TOOL_UNKNOWN', async () => {
    const e = await refusal(
      client.complete({
        ref: { type: 'ref/prompt', name: 'hostile.prompts.greet' },
        argument: { name: 'who', value: 'al' },
      }),
    );
    expect(e.code).toBe(-32001);
    expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    const records = await ledgerFor(String(e.data['request_id']));
    expect(records.find((r) => r.type === 'decision')?.payload).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_DENY',
    });
    expect(records.map((r) => r.type)).not.toContain('envelope.issued');
    expect(runs.get('hostile.prompts.greet.complete')).toBeUndefined();
    // A prompt pinned without --completions has no completion entry.
    const unknown = await refusal(
      client.complete({
        ref: { type: 'ref/prompt', name: 'everything.prompts.args-prompt' },
        argument: { name: 'city', value: 'Pa' },
      }),
    );
    expect(unknown).toMatchObject({ code: -32001, data: { code: 'ERR_TOOL_UNKNOWN' } });
  });

  it('an allowed completion/complete runs upstream once, redacted, with its receipt; changed upstream it is not asked', async () => {
    const fetched = hostile.fetched.length;
    const ask = () =>
      client.complete({
        ref: { type: 'ref/prompt', name: 'hostile.prompts.greet' },
        argument: { name: 'who', value: 'bo' },
      });
    const done = await ask();
    expect(done.completion.values[0]).toBe('bob');
    expect(done.completion.values[1]).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(done.completion.hasMore).toBe(false);
    expect(done._meta?.['failclosed.dev/call']).toMatchObject({ receipt: expect.anything() as unknown });
    expect(runs.get('hostile.prompts.greet.complete')).toBe(1);
    expect(hostile.fetched.slice(fetched)).toEqual(['complete']);
    // An answer that is not a completion (over 100 values, a value not a string) is not relayed.
    for (const value of ['bflood', 'bnum']) {
      const bad = await refusal(
        client.complete({
          ref: { type: 'ref/prompt', name: 'hostile.prompts.greet' },
          argument: { name: 'who', value },
        }),
      );
      expect(bad.data).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    }
    hostile.state.promptRug = true;
    try {
      const e = await refusal(ask());
      expect(e.data).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
    } finally {
      hostile.state.promptRug = false;
    }
    expect(hostile.fetched.length).toBe(fetched + 3);
  });
});

describe('evidence', () => {
  it('the exported ledger, prompt gets and resource reads and their denials included, verifies offline', async () => {
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
