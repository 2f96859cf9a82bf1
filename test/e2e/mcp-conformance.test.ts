/**
 * The MCP project's own conformance suite (`@modelcontextprotocol/conformance`, every server
 * scenario) run against its reference server, directly and through the gateway
 * (docs/mcp.md "Conformance"). Directly, every scenario passes: the fixture is right. Through the
 * gateway (a real embedded gate; the reference server pinned over Streamable HTTP with
 * `policy pin-mcp --url --names upstream`, a policy permitting every pinned entry, the bundle built
 * and activated with the CLI; the suite connects through a forwarder that adds the demo client's
 * token) every scenario passes except those listed in test/fixtures/mcp-conformance/
 * expected-failures.yml, each with its reason; and a listed scenario that passes fails the test
 * too, so the list only shrinks as the gateway learns to relay more.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { signClientToken } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { announceServer, initDataDir, readClientFile, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import {
  EXPECTED_FAILURES,
  REFERENCE_SERVER,
  runConformance,
  startForwarder,
  startReferenceServer,
} from '../support/mcp-conformance.js';
import type { ConformanceRun, Forwarder, RunningReference } from '../support/mcp-conformance.js';
import { REPO_ROOT } from '../support/paths.js';

/** The reference server's prompts and resources (its tools are all pinned). */
const PROMPTS = [
  'test_simple_prompt',
  'test_prompt_with_arguments',
  'test_prompt_with_embedded_resource',
  'test_prompt_with_image',
];
const RESOURCES = ['test://static-text', 'test://static-binary', 'test://watched-resource'];

let work: string;
let dir: string;
let src: string;
let reference: RunningReference;
let instance: EmbeddedInstance;
let forwarder: Forwarder;

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

/** The scenarios also run over stdio: each calls the upstream once; the last one fails by design. */
const OVER_STDIO = [
  'tools-call-simple-text',
  'tools-call-error',
  'prompts-get-with-args',
  'resources-read-binary',
  'tools-call-image',
  'tools-call-sampling',
  'tools-call-elicitation',
];

const overHttp = () => ['--url', reference.url, '--allow-loopback'];
/** The reference server over stdio, in the sandbox with only what it needs to read. */
const overStdio = () => [
  '--read',
  realpathSync(join(REPO_ROOT, 'node_modules')),
  '--read',
  realpathSync(join(REPO_ROOT, 'test', 'fixtures', 'mcp-conformance')),
  '--',
  '/usr/bin/node',
  realpathSync(REFERENCE_SERVER),
  'stdio',
];

const pinArgs = (server: string, transport: () => string[] = overHttp) => [
  'policy',
  'pin-mcp',
  src,
  '--server',
  server,
  '--names',
  'upstream',
  ...PROMPTS.flatMap((p) => ['--prompt', p]),
  ...RESOURCES.flatMap((r) => ['--resource', r]),
  '--resource-template',
  'test://template/{id}/data',
  // Its sampling and elicitation tools ask the client; the gateway relays only what is pinned.
  '--client-requests',
  'sampling,elicitation',
  // The completion of each pinned prompt's arguments and the template's variables.
  '--completions',
  ...transport(),
];

/** The baseline: scenario names (the YAML's `server` list). */
const baseline = (): string[] =>
  (parse(readFileSync(EXPECTED_FAILURES, 'utf8')) as { server: string[] }).server;

/** Scenarios with a failed or warned check, the suite's own rule for its baseline. */
const failing = (run: ConformanceRun): string[] =>
  run.scenarios
    .filter((s) => s.failures.length > 0 || s.warnings.length > 0)
    .map((s) => s.scenario)
    .sort();

function table(run: ConformanceRun): string {
  return run.scenarios
    .map(
      (s) =>
        `${s.failures.length > 0 ? 'FAIL' : s.warnings.length > 0 ? 'warn' : 'pass'}  ${s.scenario}${[
          ...s.failures,
          ...s.warnings,
        ]
          .map((f) => `\n        ${f.slice(0, 200)}`)
          .join('')}`,
    )
    .join('\n');
}

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-mcp-conformance-'));
  dir = join(work, 'data');
  src = join(work, 'policy');
  reference = await startReferenceServer();
  await initDataDir(dir);
  const client = readClientFile(dir, 'demo-agent');
  const key = importSigningKeyJwk(client.key);
  // The forwarder listens first, so the gate can be told its name: the Gate accepts the Host and
  // Origin of a proxy in front of it only when configured to (docs/mcp.md "Configuration").
  forwarder = await startForwarder(
    () => instance.url,
    () => signClientToken(key, client.identity, `${instance.url}/mcp`, Date.now()),
  );
  const config = join(dir, 'failclosed.json');
  const parsed = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    config,
    `${JSON.stringify(
      {
        ...parsed,
        mcp: {
          allowed_hosts: [forwarder.authority],
          allowed_origins: [`http://${forwarder.authority}`],
        },
      },
      null,
      2,
    )}\n`,
  );
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  instance = await startEmbedded(dir, { port: 0, executionPort: 0, allowLoopbackMcpUpstreams: true });
  announceServer(dir, instance.url);
  await pinAndActivate(overHttp);
}, 120_000);

/** Pins the reference server (again) under `conformance`, permits every entry, builds and activates. */
async function pinAndActivate(transport: () => string[]): Promise<void> {
  const pinned = await cli(pinArgs('conformance', transport));
  expect(pinned.code).toBe(0);
  const names = (JSON.parse(pinned.out) as { pinned: { tool: string }[] }).pinned.map((p) => p.tool);
  writeFileSync(
    join(src, 'policies', 'mcp-conformance.cedar'),
    `@reason("the conformance reference server's pinned tools, prompts and resources")\npermit (principal, action in [${names
      .map((a) => `Action::"${a}"`)
      .join(', ')}], resource);\n`,
  );
  const file = join(work, `bundle-${Date.now()}.json`);
  const built = await cli(['policy', 'build', src, '--out', file]);
  expect(built.err).toBe('');
  expect(built.code).toBe(0);
  const activated = await cli(['policy', 'activate', file]);
  expect(activated.err).toBe('');
  expect(activated.code).toBe(0);
}

afterAll(async () => {
  await forwarder?.close();
  await instance?.close();
  await reference?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('pin-mcp --names upstream', () => {
  it('pins the tools and prompts under their upstream names, a local $ref inlined', async () => {
    const again = await cli(pinArgs('conformance'));
    expect(again.code).toBe(0);
    const out = JSON.parse(again.out) as {
      pinned: { tool: string; upstream: string }[];
      skipped: { upstream: string; reason: string }[];
    };
    const tools = out.pinned.map((p) => p.tool);
    expect(tools).toContain('test_simple_text');
    expect(tools).toContain('test_prompt_with_arguments');
    expect(tools).toContain('conformance.resources.static-text');
    expect(tools).toContain('conformance.resources.template');
    expect(tools).toContain('test_prompt_with_arguments.complete');
    expect(tools).toContain('conformance.resources.template.complete');
    // A prompt without arguments has nothing to complete.
    expect(tools).not.toContain('test_simple_prompt.complete');
    // Its $ref into $defs is inlined, so the tool is pinned and typed in Cedar.
    expect(tools).toContain('json_schema_2020_12_tool');
    expect(out.skipped).toEqual([]);
    const spec = JSON.parse(readFileSync(join(src, 'tools', 'test_simple_text.json'), 'utf8')) as {
      adapter: Record<string, unknown>;
    };
    expect(spec.adapter).toMatchObject({ type: 'mcp', server: 'conformance', tool: 'test_simple_text' });
  });

  it('refuses, writing nothing, names another server already holds', async () => {
    const before = readFileSync(join(src, 'tools', 'test_simple_text.json'), 'utf8');
    const other = await cli(pinArgs('other'));
    expect(other.code).toBe(1);
    expect(other.err).toContain('is already an entry of the bundle source');
    expect(readFileSync(join(src, 'tools', 'test_simple_text.json'), 'utf8')).toBe(before);
  });
});

describe('the MCP conformance suite', () => {
  it('passes every server scenario against the reference server directly', async () => {
    const run = await runConformance(reference.url, mkdtempSync(join(work, 'direct-')));
    console.log(`directly:\n${table(run)}`);
    expect(run.scenarios.length).toBeGreaterThanOrEqual(32);
    expect(run.scenarios.filter((s) => s.failures.length > 0)).toEqual([]);
    // Warnings (SHOULDs) only where the SDK itself decides: it sends the priming event and retry
    // field of a resumable stream only to 2025-11-25 clients, and the scenario asks as 2025-03-26.
    expect(run.scenarios.filter((s) => s.warnings.length > 0).map((s) => s.scenario)).toEqual([
      'server-sse-polling',
    ]);
    expect(run.code).toBe(0);
  }, 120_000);

  it('through the gateway fails exactly the scenarios of the baseline, each for its reason', async () => {
    const run = await runConformance(
      `${forwarder.url}/mcp`,
      mkdtempSync(join(work, 'gateway-')),
      EXPECTED_FAILURES,
    );
    console.log(`through the gateway:\n${table(run)}`);
    expect(run.scenarios.length).toBeGreaterThanOrEqual(32);
    // A scenario failing that is not listed is a regression; a listed one passing, a stale entry.
    expect(failing(run)).toEqual([...baseline()].sort());
    // The suite's own baseline check agrees (it exits 1 on either).
    expect(run.code).toBe(0);
  }, 300_000);

  it('over stdio, the server launched per call in the sandbox, the same scenarios give the same results', async () => {
    // Pinning the same server again replaces its upstream-named entries with the stdio ones.
    await pinAndActivate(overStdio);
    const spec = JSON.parse(readFileSync(join(src, 'tools', 'test_simple_text.json'), 'utf8')) as {
      adapter: Record<string, unknown>;
    };
    expect(spec.adapter['url']).toBeUndefined();
    expect(spec.adapter['command']).toEqual(overStdio().slice(-3));
    expect(existsSync(join(src, 'tools', 'conformance.resources.static-text.json'))).toBe(true);
    for (const scenario of OVER_STDIO) {
      const run = await runConformance(
        `${forwarder.url}/mcp`,
        mkdtempSync(join(work, 'stdio-')),
        EXPECTED_FAILURES,
        scenario,
      );
      console.log(`through the gateway, over stdio:\n${table(run)}`);
      expect(run.scenarios.map((s) => s.scenario)).toEqual([scenario]);
      expect(failing(run)).toEqual(baseline().includes(scenario) ? [scenario] : []);
      expect(run.code).toBe(0);
    }
  }, 300_000);
});

describe('resource templates (pin-mcp --resource-template)', () => {
  async function connected(): Promise<Client> {
    const client = new Client({ name: 'templates', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${forwarder.url}/mcp`)));
    return client;
  }

  it('lists the pinned template and reads a URI it expands to as a governed call', async () => {
    await pinAndActivate(overHttp);
    const client = await connected();
    try {
      const listed = await client.listResourceTemplates();
      expect(listed.resourceTemplates.map((t) => t.uriTemplate)).toEqual(['test://template/{id}/data']);
      const read = await client.readResource({ uri: 'test://template/7/data' });
      expect(JSON.stringify(read.contents)).toContain('Data for ID: 7');
      expect(read._meta?.['failclosed.dev/call']).toMatchObject({ receipt: expect.anything() as unknown });
    } finally {
      await client.close();
    }
  }, 60_000);

  it("completes the template's variable through its completion entry, as a governed call", async () => {
    const client = await connected();
    try {
      const done = await client.complete({
        ref: { type: 'ref/resource', uri: 'test://template/{id}/data' },
        argument: { name: 'id', value: '7' },
      });
      expect(done.completion).toEqual({ values: [], total: 0, hasMore: false });
      expect(done._meta?.['failclosed.dev/call']).toMatchObject({ receipt: expect.anything() as unknown });
      // A variable the template does not have is denied by the entry's parameters, nothing asked.
      const err = await client
        .complete({
          ref: { type: 'ref/resource', uri: 'test://template/{id}/data' },
          argument: { name: 'other', value: '7' },
        })
        .then(
          () => undefined,
          (e: unknown) => e as { code?: number; data?: { code?: string } },
        );
      expect(err).toMatchObject({ code: -32001, data: { code: 'ERR_PARAMS_INVALID' } });
    } finally {
      await client.close();
    }
  }, 60_000);

  it.each([
    'test://template/../data',
    'test://template/%2e%2e/data',
    'test://template/%2F/data',
    'test://template/1/2/data',
    'test://template//data',
    `test://template/${'a'.repeat(3000)}/data`,
  ])(
    'refuses %s, which the template does not expand to (or past 2048 characters): ERR_TOOL_UNKNOWN, no decision, nothing read',
    async (uri) => {
      const client = await connected();
      try {
        const err = await client.readResource({ uri }).then(
          () => undefined,
          (e: unknown) => e as { code?: number; data?: { code?: string } },
        );
        expect(err).toMatchObject({ code: -32001, data: { code: 'ERR_TOOL_UNKNOWN' } });
      } finally {
        await client.close();
      }
    },
    30_000,
  );
});
