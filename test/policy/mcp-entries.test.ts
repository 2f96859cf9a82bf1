/**
 * An upstream MCP server's prompts and resources in the bundle (docs/mcp.md "Prompts and
 * resources"): what `policy pin-mcp --prompt/--resource` writes loads, and an entry whose pin,
 * binding or parameters do not hold never loads. (OE-INV-005/013/023)
 */
import { describe, expect, it } from 'vitest';
import { PINNED_PROMPT_FIELDS, PINNED_RESOURCE_FIELDS, pinMcpDefinition } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { loadBundle, pinMcpPrompts, pinMcpResources, pinMcpTools } from '../../src/policy/index.js';
import { PAY_TOOL, baseDoc, mustLoad } from './fixtures.js';

const SERVER = {
  name: 'up',
  url: 'https://mcp.example.com/mcp',
  fs_read: [],
  fs_write: [],
  network: true,
  egress: ['mcp.example.com:443'],
  memory_bytes: 2 ** 31,
};

const PROMPT = {
  name: 'greet',
  title: 'Greet',
  description: 'Greets someone.',
  arguments: [
    { name: 'who', description: 'whom', required: true },
    { name: 'tone', required: false },
  ],
  _meta: { 'vendor/x': 1 },
};

const RESOURCE = {
  uri: 'docs://handbook/security',
  name: 'Security.md',
  description: 'The security handbook.',
  mimeType: 'text/markdown',
  size: 1234,
  annotations: { lastModified: '2026-01-01T00:00:00Z' },
};

/** The pinned entry, renamed `echo` (the fixture schema's action), changed by `over`. */
function entry(
  kind: 'prompt' | 'resource',
  over: (spec: Record<string, unknown>) => void = () => undefined,
): Record<string, unknown> {
  const { pinned } =
    kind === 'prompt'
      ? pinMcpPrompts(SERVER, [PROMPT], ['greet'])
      : pinMcpResources(SERVER, [RESOURCE], [RESOURCE.uri]);
  const spec = structuredClone(pinned[0]!.spec) as Record<string, unknown>;
  spec['name'] = 'echo';
  over(spec);
  return spec;
}

/** The pinned entry under its own name, with its Cedar action appended to the fixture schema. */
function loads(kind: 'prompt' | 'resource') {
  const { pinned } =
    kind === 'prompt'
      ? pinMcpPrompts(SERVER, [PROMPT], ['greet'])
      : pinMcpResources(SERVER, [RESOURCE], [RESOURCE.uri]);
  const doc = baseDoc() as Record<string, unknown> & { schema: string };
  return mustLoad({
    ...doc,
    schema: `${doc.schema}\n${pinned[0]!.cedar}`,
    tools: [pinned[0]!.spec, PAY_TOOL],
  });
}

const adapterOf = (spec: Record<string, unknown>) => spec['adapter'] as Record<string, unknown>;

function reasonOf(tools: unknown[]): string {
  const r = loadBundle(JSON.stringify({ ...baseDoc(), tools }));
  if (!('outcome' in r)) throw new Error('loaded');
  expect(r.code).toBe('ERR_POLICY_BUNDLE_INVALID');
  return r.reason;
}

describe('pin-mcp --client-requests', () => {
  const TOOL = { name: 'ask', inputSchema: { type: 'object', properties: {} } };
  const pinned = (kinds: readonly ('sampling' | 'elicitation')[]) =>
    pinMcpTools({ ...SERVER, client_requests: kinds }, [TOOL]).pinned[0]!.spec;

  it("writes the kinds into the tool's adapter, and nothing when there are none", () => {
    expect(adapterOf(pinned(['sampling', 'elicitation']))['client_requests']).toEqual([
      'sampling',
      'elicitation',
    ]);
    expect(adapterOf(pinned([]))['client_requests']).toBeUndefined();
  });

  it('refuses a kind it does not know, and one listed twice', () => {
    for (const bad of [
      ['sampling', 'roots'],
      ['sampling', 'sampling'],
    ]) {
      const spec = structuredClone(pinned(['sampling'])) as Record<string, unknown>;
      spec['name'] = 'echo';
      adapterOf(spec)['client_requests'] = bad;
      expect(reasonOf([spec, PAY_TOOL])).toContain('client_requests');
    }
  });
});

describe('pin-mcp --prompt', () => {
  it('pins name, title, description and arguments; its parameters are its arguments as strings; its action types them', () => {
    const { pinned, skipped } = pinMcpPrompts(SERVER, [PROMPT], ['greet', 'missing']);
    expect(skipped).toEqual([{ upstream: 'missing', reason: expect.stringContaining('no such prompt') }]);
    const p = pinned[0]!;
    expect(p.name).toBe('up.prompts.greet');
    expect(p.sha256).toBe(pinMcpDefinition(PROMPT, PINNED_PROMPT_FIELDS).sha256);
    expect(pinMcpDefinition({ ...PROMPT, _meta: {} }, PINNED_PROMPT_FIELDS).sha256).toBe(p.sha256);
    expect(
      pinMcpDefinition({ ...PROMPT, description: 'Greets. Then transfer.' }, PINNED_PROMPT_FIELDS).sha256,
    ).not.toBe(p.sha256);
    expect(p.spec['parameters']).toEqual({
      type: 'object',
      properties: { who: { type: 'string', description: 'whom' }, tone: { type: 'string' } },
      required: ['who'],
      additionalProperties: false,
    });
    expect(p.spec['untrusted_output']).toBe(true);
    expect(adapterOf(p.spec)).toMatchObject({ type: 'mcp', prompt: 'greet', url: SERVER.url });
    expect(adapterOf(p.spec)['tool']).toBeUndefined();
    expect(p.cedar).toContain('action "up.prompts.greet"');
    expect(p.cedar).toContain('params: { "who": String, "tone"?: String }');
  });

  it('an argument named like an Object member is a name like any other; one named __proto__ or listed twice is refused', () => {
    const named = (args: JsonValue[]) =>
      pinMcpPrompts(SERVER, [{ name: 'greet', arguments: args }], ['greet']);
    const { pinned } = named([{ name: 'toString', required: true }, { name: 'constructor' }]);
    expect(pinned[0]?.spec['parameters']).toMatchObject({
      properties: { toString: { type: 'string' }, constructor: { type: 'string' } },
      required: ['toString'],
    });
    // As the MCP client parses a listing: JSON.parse keeps `__proto__` as an own member.
    for (const args of [
      JSON.parse('[{"name":"__proto__"}]') as JsonValue[],
      [{ name: 'who' }, { name: 'who' }],
    ]) {
      const { pinned: none, skipped } = named(args);
      expect(none).toEqual([]);
      expect(skipped[0]?.reason).toContain('malformed');
    }
  });

  it('what it writes loads', () => {
    const bundle = loads('prompt');
    expect(bundle.document.tools.find((t) => t.name === 'up.prompts.greet')?.adapter['prompt']).toBe('greet');
  });

  it('refuses a prompt whose parameters are not its pinned arguments (an argument dropped or retyped)', () => {
    const spec = entry('prompt', (s) => {
      (s['parameters'] as { properties: Record<string, unknown> }).properties['who'] = { type: 'integer' };
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain('the parameters of a prompt must be its pinned arguments');
  });

  it('refuses a definition whose hash is not its pin, and a field a prompt does not pin', () => {
    const changed = entry('prompt', (s) => {
      (adapterOf(s)['definition'] as Record<string, unknown>)['description'] = 'other';
    });
    expect(reasonOf([changed, PAY_TOOL])).toContain('definition_sha256');
    const extra = entry('prompt', (s) => {
      (adapterOf(s)['definition'] as Record<string, unknown>)['inputSchema'] = { type: 'object' };
    });
    expect(reasonOf([extra, PAY_TOOL])).toContain('is not pinned for an MCP prompt');
  });

  it('refuses client_requests on a prompt: only a tool may ask the client', () => {
    const spec = entry('prompt', (s) => {
      adapterOf(s)['client_requests'] = ['sampling'];
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain("only a tool's upstream may ask the client");
  });

  it('refuses an entry that names both a tool and a prompt', () => {
    const spec = entry('prompt', (s) => {
      adapterOf(s)['tool'] = 'greet';
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain('exactly one of tool, prompt');
  });

  it('a tool named prompts.* or resources.* is not pinned: it would shadow them', () => {
    const { pinned, skipped } = pinMcpTools(SERVER, [
      { name: 'prompts.greet', inputSchema: { type: 'object', properties: {} } },
    ]);
    expect(pinned).toEqual([]);
    expect(skipped[0]?.reason).toContain('shadow');
  });
});

describe('pin-mcp --resource', () => {
  it('pins uri, name, title, description and mimeType, not size or annotations; its parameters are {uri} fixed to it', () => {
    const { pinned } = pinMcpResources(SERVER, [RESOURCE], [RESOURCE.uri]);
    const r = pinned[0]!;
    expect(r.name).toBe('up.resources.security_md');
    expect(pinMcpDefinition({ ...RESOURCE, size: 99, annotations: {} }, PINNED_RESOURCE_FIELDS).sha256).toBe(
      r.sha256,
    );
    expect(pinMcpDefinition({ ...RESOURCE, mimeType: 'text/html' }, PINNED_RESOURCE_FIELDS).sha256).not.toBe(
      r.sha256,
    );
    expect(r.spec['parameters']).toEqual({
      type: 'object',
      properties: { uri: { type: 'string', const: RESOURCE.uri } },
      required: ['uri'],
      additionalProperties: false,
    });
    expect(r.cedar).toContain('params: { "uri": String }');
    expect(loads('resource').document.tools.map((t) => t.name)).toContain('up.resources.security_md');
  });

  it('refuses a resource whose parameters admit another URI', () => {
    const spec = entry('resource', (s) => {
      (s['parameters'] as { properties: Record<string, unknown> }).properties['uri'] = { type: 'string' };
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain('the parameters of a resource must be exactly {uri}');
  });

  it('refuses a resource bound to another URI than its pinned definition', () => {
    const spec = entry('resource', (s) => {
      adapterOf(s)['resource'] = 'docs://handbook/other';
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain('must equal the upstream resource URI');
  });

  it('refuses one URI pinned by two entries', () => {
    const other = entry('resource', (s) => {
      s['name'] = 'pay';
    });
    expect(reasonOf([entry('resource'), other])).toContain('the URI is pinned by tool "echo" too');
  });
});
