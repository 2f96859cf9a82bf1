/**
 * The `mcp` adapter on its own (docs/adapters.md "`mcp`"; OE-INV-006/024, FC-INV-4): what it
 * refuses before anything is launched, a sandbox that cannot be set up, and the pin compared
 * field by field with what the upstream lists. The upstream is the fixture server on the
 * official SDK (test/fixtures/mcp-upstream/server.mjs), run in the real bubblewrap sandbox; it
 * logs every `tools/call` it receives, so a test sees whether it was called.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createMcpAdapter, listMcpTools } from '../../src/execution/index.js';
import type { ExecutionConstraints } from '../../src/execution/index.js';
import { pinMcpDefinition } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const FIXTURE = realpathSync(join(REPO_ROOT, 'test', 'fixtures', 'mcp-upstream'));
const state = realpathSync(mkdtempSync(join(tmpdir(), 'fc-mcp-adapter-')));
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
    spec: { type: 'mcp', command: COMMAND, tool: 'echo', ...spec },
    params: params as never,
    constraints,
    signal: new AbortController().signal,
  });
}

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

  it.each([
    ['annotations', { ...ECHO, annotations: { readOnlyHint: false } }],
    ['input schema', { ...ECHO, inputSchema: { ...ECHO.inputSchema, properties: {} } }],
    ['title', { ...ECHO, title: 'Echo' }],
  ])(
    'a pin that differs from the listed definition in its %s → ERR_TOOL_DEFINITION_CHANGED, not called',
    async (_, pinned) => {
      const before = calls().length;
      const r = await run({ definition_sha256: pinMcpDefinition(pinned).sha256 });
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
