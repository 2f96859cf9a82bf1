/**
 * The `mcp` adapter on its own (docs/adapters.md "`mcp`"; OE-INV-006/024, FC-INV-4): what it
 * refuses before anything is launched, a sandbox that cannot be set up, and the pin compared
 * field by field with what the upstream lists. The upstream is the fixture server on the
 * official SDK (test/fixtures/mcp-upstream/server.mjs), run in the real bubblewrap sandbox; it
 * logs every `tools/call` it receives, so a test sees whether it was called.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMcpAdapter, listMcpTools } from '../../src/execution/index.js';
import { parsePinnedTool } from '../../src/execution/adapters/mcp-session.js';
import type { ExecutionConstraints } from '../../src/execution/index.js';
import { pinMcpDefinition } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const FIXTURE = realpathSync(join(REPO_ROOT, 'test', 'fixtures', 'mcp-upstream'));
const state = realpathSync(mkdtempSync('/var/tmp/fc-mcp-adapter-'));
const COMMAND = ['/usr/bin/node', join(FIXTURE, 'server.mjs'), state];
const GRANTS: ExecutionConstraints = {
  timeout_ms: 10_000,
  max_output_bytes: 1024 * 1024,
  memory_bytes: 2 ** 31,
  network: false,
  egress: [],
  fs_read: [NODE_MODULES, FIXTURE],
  fs_write: [state],
  max_cost_cents: null,
};
const ECHO = {
  name: 'echo',
  description: 'Echoes text.',
  inputSchema: {
    type: 'object',
    properties: { text: { type: 'string' } },
    required: ['text'],
    additionalProperties: false,
  },
  annotations: { readOnlyHint: true },
};
const adapter = createMcpAdapter();

afterAll(() => rmSync(state, { recursive: true, force: true }));

const calls = (): string[] =>
  existsSync(join(state, 'calls.log'))
    ? readFileSync(join(state, 'calls.log'), 'utf8').split('\n').filter(Boolean)
    : [];

function run(spec: Record<string, unknown>, params: unknown = { text: 'hi' }, constraints = GRANTS) {
  return adapter.run({
    tool: 'up.echo',
    spec: { type: 'mcp', command: COMMAND, tool: 'echo', definition: ECHO, ...spec },
    params: params as never,
    constraints,
    signal: new AbortController().signal,
  });
}

describe('mcp adapter: egress through the proxy (OE-INV-011)', () => {
  let server: Server;
  let port = 0;
  let hits = 0;
  let other: Server;
  let otherPort = 0;
  let otherHits = 0;

  beforeAll(async () => {
    server = createServer((_, res) => {
      hits += 1;
      res.end('from the listed service');
    });
    other = createServer((_, res) => {
      otherHits += 1;
      res.end('from an unlisted service');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    otherPort = (other.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => other.close(() => r()));
  });

  async function fetchVia(url: string, egress: string[]) {
    const grants = { ...GRANTS, network: true, egress };
    const listed = await listMcpTools(COMMAND, grants);
    if ('outcome' in listed) throw new Error(listed.reason);
    const { definition, sha256 } = pinMcpDefinition(listed.find((t) => t['name'] === 'fetch')!);
    return run({ tool: 'fetch', definition, definition_sha256: sha256 }, { url }, grants);
  }

  it('an upstream granted one loopback host:port reaches it through the proxy', async () => {
    const r = await fetchVia(`http://127.0.0.1:${port}/`, [`127.0.0.1:${port}`]);
    expect(r).toEqual({
      outcome: 'ok',
      result: { content: [{ type: 'text', text: '200 from the listed service' }] },
    });
    expect(hits).toBe(1);
  });

  it('an unlisted destination → ERR_EGRESS_DENIED, the upstream ended, the service never reached', async () => {
    const r = await fetchVia(`http://127.0.0.1:${otherPort}/`, [`127.0.0.1:${port}`]);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(otherHits).toBe(0);
  });
});

describe('mcp adapter', () => {
  it('lists the upstream tools in the sandbox, definitions as the server lists them', async () => {
    const listed = await listMcpTools(COMMAND, GRANTS);
    if ('outcome' in listed) throw new Error(listed.reason);
    expect(pinMcpDefinition(listed.find((t) => t['name'] === 'echo')!).sha256).toBe(
      pinMcpDefinition(ECHO).sha256,
    );
  });

  it('calls the pinned tool with exactly the parameters it is given', async () => {
    const r = await run({ definition_sha256: pinMcpDefinition(ECHO).sha256 }, { text: 'exactly this' });
    expect(r).toEqual({ outcome: 'ok', result: { content: [{ type: 'text', text: 'exactly this' }] } });
  });

  /** Pins `tool` as the fixture lists it (as `policy pin-mcp` would) and calls it. */
  async function pinAndCall(tool: string) {
    const listed = await listMcpTools(COMMAND, GRANTS);
    if ('outcome' in listed) throw new Error(listed.reason);
    const { definition, sha256 } = pinMcpDefinition(listed.find((t) => t['name'] === tool)!);
    return run({ tool, definition, definition_sha256: sha256 }, {});
  }

  it.each([
    ['does not match', 'shaped'],
    ['is missing', 'unshaped'],
  ])(
    'structuredContent that %s the pinned outputSchema → ERR_TOOL_FAILED, though the upstream cleared the SDK client cache with tools/list_changed',
    async (_, tool) => {
      const r = await pinAndCall(tool);
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
      expect(JSON.stringify(r)).not.toContain('not in schema');
      if (r.outcome === 'deny') expect(r.reason).toContain('outputSchema');
      expect(calls()).toContain(tool);
    },
  );

  it('a JSON-RPC error answer is recorded as such, not as an upstream that exited', async () => {
    const r = await pinAndCall('rpcerror');
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    if (r.outcome === 'deny') {
      expect(r.reason).toContain('JSON-RPC code');
      expect(r.reason).not.toContain('exited');
    }
  });

  it('a server that does not advertise the tools capability → ERR_TOOL_FAILED, nothing called', async () => {
    const before = calls().length;
    writeFileSync(join(state, 'no-tools'), '');
    try {
      const r = await run({ definition_sha256: pinMcpDefinition(ECHO).sha256 });
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
      if (r.outcome === 'deny') expect(r.reason).toContain('does not advertise the capability');
    } finally {
      rmSync(join(state, 'no-tools'));
    }
    expect(calls().length).toBe(before);
  });

  it.each([
    ['annotations', { ...ECHO, annotations: { readOnlyHint: false } }],
    ['input schema', { ...ECHO, inputSchema: { ...ECHO.inputSchema, properties: {} } }],
    ['title', { ...ECHO, title: 'Echo' }],
  ])(
    'a pin that differs from the listed definition in its %s → ERR_TOOL_DEFINITION_CHANGED, not called',
    async (_, pinned) => {
      const before = calls().length;
      const r = await run({ definition: pinned, definition_sha256: pinMcpDefinition(pinned).sha256 });
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
      expect(calls().length).toBe(before);
    },
  );

  it('refuses a malformed spec or non-object parameters before launching anything', async () => {
    const before = calls().length;
    expect(await run({ definition_sha256: 'not-a-hash' })).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(await run({ definition_sha256: pinMcpDefinition(ECHO).sha256, command: [] })).toMatchObject({
      code: 'ERR_ADAPTER_UNAVAILABLE',
    });
    expect(await run({ definition_sha256: pinMcpDefinition(ECHO).sha256 }, ['hi'])).toMatchObject({
      code: 'ERR_PARAMS_INVALID',
    });
    // The pinned definition is what the hash vouches for, and its outputSchema must compile.
    expect(
      await run({
        definition: { ...ECHO, description: 'other' },
        definition_sha256: pinMcpDefinition(ECHO).sha256,
      }),
    ).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    const uncheckable = { ...ECHO, outputSchema: { type: 'object', 'x-unknown-keyword': true } };
    expect(
      await run({ definition: uncheckable, definition_sha256: pinMcpDefinition(uncheckable).sha256 }),
    ).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(calls().length).toBe(before);
  });

  it('a profile the sandbox cannot enforce or set up → ERR_SANDBOX_UNAVAILABLE, nothing runs', async () => {
    const before = calls().length;
    const sha = pinMcpDefinition(ECHO).sha256;
    expect(
      await run(
        { definition_sha256: sha },
        { text: 'x' },
        { ...GRANTS, network: true, egress: ['example.com'] },
      ),
    ).toMatchObject({ code: 'ERR_SANDBOX_UNAVAILABLE' });
    // Network without an allowlist would be the host network: refused (OE-INV-011).
    expect(
      await run({ definition_sha256: sha }, { text: 'x' }, { ...GRANTS, network: true, egress: [] }),
    ).toMatchObject({ code: 'ERR_SANDBOX_UNAVAILABLE' });
    expect(
      await run(
        { definition_sha256: sha },
        { text: 'x' },
        { ...GRANTS, fs_read: [...GRANTS.fs_read, '/nonexistent/path'] },
      ),
    ).toMatchObject({ code: 'ERR_SANDBOX_UNAVAILABLE' });
    expect(calls().length).toBe(before);
  });

  it('a server that cannot start in its address-space limit is a failed call, not a hang', async () => {
    const r = await run(
      { definition_sha256: pinMcpDefinition(ECHO).sha256 },
      { text: 'x' },
      {
        ...GRANTS,
        memory_bytes: 64 * 1024 * 1024,
      },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
  });
});

describe('pinned outputSchema validators', () => {
  it('are compiled once per pinned definition, and a definition that does not hash to its pin gets none', () => {
    const { definition, sha256 } = pinMcpDefinition({
      name: 'weather',
      inputSchema: { type: 'object' },
      outputSchema: { type: 'object', properties: { c: { type: 'number' } }, required: ['c'] },
    });
    const a = parsePinnedTool({ tool: 'weather', definition, definition_sha256: sha256 });
    const b = parsePinnedTool({ tool: 'weather', definition, definition_sha256: sha256 });
    expect(a?.output).toBeTypeOf('function');
    expect(b?.output).toBe(a?.output);
    expect(a?.output?.({ c: 1 })).toBe(true);
    expect(a?.output?.({ c: 'warm' })).toBe(false);
    // The cache is keyed by a hash the definition was just checked against, never trusted alone.
    const swapped = { ...definition, outputSchema: { type: 'object' } };
    expect(
      parsePinnedTool({ tool: 'weather', definition: swapped, definition_sha256: sha256 }),
    ).toBeUndefined();
  });
});
