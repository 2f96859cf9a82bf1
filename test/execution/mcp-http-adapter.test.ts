/**
 * The `mcp` adapter for Streamable HTTP upstreams on its own (docs/adapters.md "MCP tools";
 * OE-INV-011 egress, OE-INV-005/023 pinned definitions, OE-INV-009 secrets, OE-INV-013, FC-INV-4).
 * Upstreams: the official `@modelcontextprotocol/server-everything` as a real Streamable HTTP
 * server on loopback, and the hostile server of test/support/mcp-http-upstream.ts, which records
 * every request and every `tools/call` so a test sees that nothing reached it. Every refusal is
 * asserted by its code and by the upstream not having been called (or not reached at all).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEnvSecretResolver,
  createMcpHttpAdapter,
  listMcpHttpTools,
  routeMcpAdapter,
  createMcpAdapter,
} from '../../src/execution/index.js';
import type { ExecutionConstraints, ToolAdapter } from '../../src/execution/index.js';
import { pinMcpDefinition } from '../../src/kernel/index.js';
import { runAdapterContract } from './adapter.contract.js';
import { hostileTools, startHostileUpstream, startServerEverything } from '../support/mcp-http-upstream.js';
import type { HostileUpstream, RunningEverything } from '../support/mcp-http-upstream.js';

let everything: RunningEverything;
let hostile: HostileUpstream;
let other: HostileUpstream;

const grants = (port: number, over: Partial<ExecutionConstraints> = {}): ExecutionConstraints => ({
  timeout_ms: 10_000,
  max_output_bytes: 1024 * 1024,
  memory_bytes: 2 ** 31,
  network: true,
  egress: [`127.0.0.1:${port}`],
  fs_read: [],
  fs_write: [],
  max_cost_cents: null,
  ...over,
});

const adapter = createMcpHttpAdapter({ allowLoopback: true });
const echoPin = (rug = false) => pinMcpDefinition(hostileTools({ rug })[0]!);

function run(
  a: ToolAdapter,
  spec: Record<string, unknown>,
  params: unknown,
  constraints: ExecutionConstraints,
  secrets = createEnvSecretResolver({ env: { FC_SECRET_UPSTREAM_TOKEN: 'tok-3f9a1c' } }),
) {
  return a.run({
    tool: 'up.tool',
    spec: { type: 'mcp', server: 'up', ...spec },
    params: params as never,
    constraints,
    secrets,
    signal: new AbortController().signal,
  });
}

/** Calls a hostile tool pinned as the hostile server lists it now. */
function callHostile(
  tool: string,
  params: unknown = {},
  over: Partial<ExecutionConstraints> = {},
  a = adapter,
) {
  const { definition, sha256 } = pinMcpDefinition(hostileTools({}).find((t) => t['name'] === tool)!);
  return run(
    a,
    { url: hostile.url, tool, definition, definition_sha256: sha256 },
    params,
    grants(hostile.port, over),
  );
}

beforeAll(async () => {
  [everything, hostile, other] = await Promise.all([
    startServerEverything(),
    startHostileUpstream(),
    startHostileUpstream(),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([everything?.stop(), hostile?.close(), other?.close()]);
});

describe('mcp adapter over Streamable HTTP: a real upstream (server-everything)', () => {
  it('lists the tools and calls the pinned one with exactly its parameters', async () => {
    const listed = await listMcpHttpTools({ url: everything.url }, grants(everything.port), undefined, {
      allowLoopback: true,
    });
    if ('outcome' in listed) throw new Error(listed.reason);
    const echo = listed.find((t) => t['name'] === 'echo')!;
    const { definition, sha256 } = pinMcpDefinition(echo);
    const r = await run(
      adapter,
      { url: everything.url, tool: 'echo', definition, definition_sha256: sha256 },
      { message: 'exactly this' },
      grants(everything.port),
    );
    expect(r).toEqual({ outcome: 'ok', result: { content: [{ type: 'text', text: 'Echo: exactly this' }] } });
  });

  it('a pin that differs from what server-everything lists → ERR_TOOL_DEFINITION_CHANGED', async () => {
    const listed = await listMcpHttpTools({ url: everything.url }, grants(everything.port), undefined, {
      allowLoopback: true,
    });
    if ('outcome' in listed) throw new Error(listed.reason);
    const changed = { ...listed.find((t) => t['name'] === 'echo')!, description: 'Echoes.' };
    const { definition, sha256 } = pinMcpDefinition(changed);
    const r = await run(
      adapter,
      { url: everything.url, tool: 'echo', definition, definition_sha256: sha256 },
      { message: 'x' },
      grants(everything.port),
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
  });
});

describe('mcp adapter over Streamable HTTP: the pin (rug pulls)', () => {
  it('a changed definition → ERR_TOOL_DEFINITION_CHANGED, and nothing is called upstream', async () => {
    const { definition, sha256 } = echoPin();
    const spec = { url: hostile.url, tool: 'echo', definition, definition_sha256: sha256 };
    expect(await run(adapter, spec, { text: 'before' }, grants(hostile.port))).toMatchObject({
      outcome: 'ok',
    });
    const before = hostile.calls.length;
    hostile.state.rug = true;
    try {
      const r = await run(adapter, spec, { text: 'after' }, grants(hostile.port));
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_DEFINITION_CHANGED' });
    } finally {
      hostile.state.rug = false;
    }
    expect(hostile.calls.length).toBe(before);
  });
});

describe('mcp adapter over Streamable HTTP: destinations (OE-INV-011)', () => {
  it('a url whose host:port is not on the egress allowlist → ERR_EGRESS_DENIED, never reached', async () => {
    const before = hostile.headers.length;
    const r = await callHostile('echo', { text: 'x' }, { egress: [`127.0.0.1:${other.port}`] });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(await callHostile('echo', { text: 'x' }, { network: false, egress: [] })).toMatchObject({
      code: 'ERR_EGRESS_DENIED',
    });
    expect(hostile.headers.length).toBe(before);
  });

  it('a private (non-loopback) address is refused though it is listed, with loopback allowed', async () => {
    const { definition, sha256 } = echoPin();
    for (const host of ['10.0.0.1', '192.168.1.20', '169.254.169.254', '[fd00::1]']) {
      const r = await run(
        adapter,
        { url: `http://${host}:8080/mcp`, tool: 'echo', definition, definition_sha256: sha256 },
        { text: 'x' },
        grants(0, { egress: [`${host}:8080`] }),
      );
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    }
  });

  it('loopback is refused without the embedding option, and by name even with it', async () => {
    const before = hostile.headers.length;
    const strict = createMcpHttpAdapter();
    expect(await callHostile('echo', { text: 'x' }, {}, strict)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_EGRESS_DENIED',
    });
    const { definition, sha256 } = echoPin();
    const byName = await run(
      adapter,
      { url: `http://localhost:${hostile.port}/mcp`, tool: 'echo', definition, definition_sha256: sha256 },
      { text: 'x' },
      grants(hostile.port, { egress: [`localhost:${hostile.port}`] }),
    );
    expect(byName).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(hostile.headers.length).toBe(before);
  });

  it('a redirect is refused → ERR_EGRESS_DENIED; its target is never reached, nothing is called', async () => {
    const before = hostile.calls.length;
    const otherBefore = other.headers.length;
    hostile.state.redirectTo = other.url;
    try {
      const r = await callHostile(
        'echo',
        { text: 'x' },
        { egress: [`127.0.0.1:${hostile.port}`, `127.0.0.1:${other.port}`] },
      );
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
      if (r.outcome === 'deny') expect(r.reason).toContain('redirect');
    } finally {
      delete hostile.state.redirectTo;
    }
    expect(other.headers.length).toBe(otherBefore);
    expect(hostile.calls.length).toBe(before);
  });

  it('more HTTP requests than the per-call bound → ERR_EGRESS_LIMIT, nothing called', async () => {
    const before = hostile.calls.length;
    const r = await callHostile(
      'echo',
      { text: 'x' },
      {},
      createMcpHttpAdapter({ allowLoopback: true, maxRequests: 2 }),
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_LIMIT' });
    expect(hostile.calls.length).toBe(before);
  });
});

describe('mcp adapter over Streamable HTTP: a hostile or absent upstream', () => {
  it('hangs → ERR_TOOL_TIMEOUT at the call time limit', async () => {
    const r = await callHostile('hang', {}, { timeout_ms: 1500 });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
    expect(hostile.calls).toContain('hang');
  });

  it('answers more than the output limit → ERR_TOOL_OUTPUT_LIMIT, nothing of it returned', async () => {
    const r = await callHostile(
      'flood',
      {},
      { max_output_bytes: 64 * 1024 },
      createMcpHttpAdapter({ allowLoopback: true, protocolBudgetBytes: 64 * 1024 }),
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT' });
    expect(JSON.stringify(r)).not.toContain('xxxxxxxx');
  });

  it('is down (nothing listens) → ERR_TOOL_FAILED', async () => {
    const gone = await startHostileUpstream();
    const { port, url } = gone;
    await gone.close();
    const { definition, sha256 } = echoPin();
    const r = await run(
      adapter,
      { url, tool: 'echo', definition, definition_sha256: sha256 },
      { text: 'x' },
      grants(port),
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
  });
});

describe('mcp adapter over Streamable HTTP: headers and spec', () => {
  it('sends the bundle headers, the secret resolved at the call; nothing else carries credentials', async () => {
    const { definition, sha256 } = echoPin();
    const from = hostile.headers.length;
    const r = await run(
      adapter,
      {
        url: hostile.url,
        tool: 'echo',
        definition,
        definition_sha256: sha256,
        headers: { authorization: { secret: 'UPSTREAM_TOKEN', prefix: 'Bearer ' }, 'x-tenant': 'acme' },
      },
      { text: 'x' },
      grants(hostile.port),
    );
    expect(r).toMatchObject({ outcome: 'ok' });
    const seen = hostile.headers.slice(from);
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) {
      expect(h['authorization']).toBe('Bearer tok-3f9a1c');
      expect(h['x-tenant']).toBe('acme');
      expect(h['cookie']).toBeUndefined();
    }
    // Without the header, no authorization at all reaches the upstream.
    const bare = hostile.headers.length;
    await callHostile('echo', { text: 'x' });
    for (const h of hostile.headers.slice(bare)) expect(h['authorization']).toBeUndefined();
  });

  it('an unknown secret reference → ERR_ADAPTER_UNAVAILABLE, never reached', async () => {
    const { definition, sha256 } = echoPin();
    const before = hostile.headers.length;
    const r = await run(
      adapter,
      {
        url: hostile.url,
        tool: 'echo',
        definition,
        definition_sha256: sha256,
        headers: { 'x-key': { secret: 'NOPE' } },
      },
      { text: 'x' },
      grants(hostile.port),
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(hostile.headers.length).toBe(before);
  });

  it('refuses a malformed spec before connecting: placeholders, reserved headers, both command and url', async () => {
    const { definition, sha256 } = echoPin();
    const before = hostile.headers.length;
    const base = { tool: 'echo', definition, definition_sha256: sha256 };
    const g = grants(hostile.port);
    for (const spec of [
      { ...base, url: `http://127.0.0.1:${hostile.port}/{path}` },
      { ...base, url: hostile.url, headers: { 'mcp-session-id': 'x' } },
      { ...base, url: hostile.url, headers: { host: 'elsewhere' } },
      { ...base, url: 'ftp://127.0.0.1/x' },
    ])
      expect(await run(adapter, spec, { text: 'x' }, g)).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    const routed = routeMcpAdapter(createMcpAdapter(), adapter);
    expect(
      await run(routed, { ...base, url: hostile.url, command: ['/usr/bin/node'] }, { text: 'x' }, g),
    ).toMatchObject({
      code: 'ERR_ADAPTER_UNAVAILABLE',
    });
    expect(hostile.headers.length).toBe(before);
    // Routed by url, the same call runs.
    expect(await run(routed, { ...base, url: hostile.url }, { text: 'routed' }, g)).toMatchObject({
      outcome: 'ok',
      result: { content: [{ type: 'text', text: 'routed' }] },
    });
  });
});

/** A hostile tool's spec, pinned as the hostile server lists it. */
function hostileSpec(tool: string, over: Record<string, unknown> = {}) {
  const { definition, sha256 } = pinMcpDefinition(hostileTools({}).find((t) => t['name'] === tool)!);
  return {
    type: 'mcp',
    server: 'up',
    url: hostile.url,
    tool,
    definition,
    definition_sha256: sha256,
    ...over,
  };
}

runAdapterContract('mcp over Streamable HTTP', () => ({
  adapter: createMcpHttpAdapter({ allowLoopback: true, protocolBudgetBytes: 64 * 1024 }),
  echo: hostileSpec('echo'),
  slow: hostileSpec('hang'),
  loud: hostileSpec('flood'),
  failing: hostileSpec('fail'),
  malformed: hostileSpec('echo', { url: 'http://127.0.0.1:1/{x}' }),
  grants: { network: true, egress: [`127.0.0.1:${hostile.port}`] },
}));
