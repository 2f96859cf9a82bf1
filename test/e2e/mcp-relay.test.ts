/**
 * What the gateway relays from an upstream MCP server during a governed `tools/call`
 * (docs/mcp.md "What is served", "While a call runs"; OE-INV-010, OE-INV-013, FC-INV-4): the
 * upstream's own content blocks and `structuredContent`, redacted, with the receipt's hash over
 * exactly what is answered; its progress (only for a client that sent a progress token) and log
 * messages, as notifications on the call's SSE stream, redacted and bounded; and the client's
 * cancellation, which ends the upstream call with a receipt saying so. A real embedded gate; the
 * official SDK client over Streamable HTTP with the demo client's key tokens; the upstream a
 * fixture on the official SDK's server package (test/fixtures/mcp-relay-upstream/server.mjs),
 * launched per call in bubblewrap and pinned with `failclosed policy pin-mcp`.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { signClientToken } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { canonicalize, sha256Hex } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { MAX_RELAYED_NOTICES } from '../../src/execution/index.js';
import {
  announceServer,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { cancelledRecords, demoAgentTransport, relayFixturePin } from '../support/mcp-relay.js';
import { startServerEverything } from '../support/mcp-http-upstream.js';
import type { RunningEverything } from '../support/mcp-http-upstream.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const TOOLS = ['mixed', 'chatty', 'flood', 'oops', 'sample', 'slow'];
/** The fixture's tools that ask the client, pinned again as `asking` with `--client-requests`. */
const ASKING = ['sample', 'overreach', 'insist'];
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=';

let work: string;
let dir: string;
let state: string;
let instance: EmbeddedInstance;
let client: Client;
/** The same client key, speaking the 2026-07-28 revision (per-request, no handshake state). */
let modern: Client;
let everything: RunningEverything;
const logs: { level: string; logger?: string; data: unknown }[] = [];
/**
 * Progress notifications as received. Taken raw: the SDK client's own progress dispatch runs a
 * microtask after the message, and drops a notification that arrived in the same read as the
 * answer (the answer removed its token first).
 */
const progressed: Record<string, unknown>[] = [];
/** Requests the client was asked by the server side (none may reach it unless pinned to). */
const asked: string[] = [];
/** The same, with their params and JSON-RPC ids. */
const askedWith: { method: string; params: unknown; id: unknown }[] = [];
/** Runs before the client answers a request (a test's chance to post something else first). */
let beforeAnswer: ((id: unknown) => Promise<void>) | undefined;
let onLog: ((data: unknown) => void) | undefined;
/** A fresh Streamable HTTP transport to the gateway with the demo client's key tokens. */
let transportFor: () => StreamableHTTPClientTransport;

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

type Entry = { type: string; request_id: string; payload: Record<string, unknown> };

async function entries(): Promise<Entry[]> {
  const l = instance.core.ledger;
  return await l.store.readRange(0, l.size());
}

const requestIdOf = (r: { _meta?: unknown }): string =>
  ((r._meta as Record<string, Record<string, string>>)['failclosed.dev/call'] ?? {})['request_id'] ?? '';

const upstreamCalls = (): string[] =>
  readFileSync(join(state, 'calls.log'), 'utf8').split('\n').filter(Boolean);

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-relay-'));
  dir = join(work, 'data');
  state = join(work, 'state');
  const src = join(work, 'policy');
  mkdirSync(state);
  writeFileSync(join(state, 'calls.log'), '');
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-relay.cedar'),
    `@reason("the relay fixture's tools")\npermit (principal, action in [${[
      ...TOOLS.map((t) => `relay.${t}`),
      ...ASKING.map((t) => `asking.${t}`),
      'everything.get-tiny-image',
      'everything.trigger-long-running-operation',
    ]
      .map((a) => `Action::"${a}"`)
      .join(', ')}], resource);\n`,
  );
  await initDataDir(dir);
  everything = await startServerEverything();
  instance = await startEmbedded(dir, { port: 0, executionPort: 0, allowLoopbackMcpUpstreams: true });
  announceServer(dir, instance.url);
  // The fixture pinned twice: as `relay` (it may ask the client nothing) and, its asking tools
  // only, as `asking` (it may ask for sampling and elicitation).
  const pinFixture = (server: string, ...extra: string[]) =>
    cli(...relayFixturePin(src, state, server, ...extra));
  for (const pinned of [
    await pinFixture('relay'),
    await pinFixture(
      'asking',
      ...ASKING.flatMap((t) => ['--only', t]),
      '--client-requests',
      'sampling,elicitation',
    ),
  ]) {
    expect(pinned.err).toBe('');
    expect(pinned.code).toBe(0);
  }
  const pinnedHttp = await cli(
    'policy',
    'pin-mcp',
    src,
    '--server',
    'everything',
    '--url',
    everything.url,
    '--only',
    'get-tiny-image',
    '--only',
    'trigger-long-running-operation',
    '--allow-loopback',
  );
  expect(pinnedHttp.err).toBe('');
  expect(pinnedHttp.code).toBe(0);
  // Another principal of the same tenant: it may not answer what demo-agent was asked.
  expect((await cli('clients', 'add', 'other-agent', '--tenant', 'acme')).code).toBe(0);
  const file = join(work, 'bundle.json');
  const built = await cli('policy', 'build', src, '--out', file);
  expect(built.err).toBe('');
  expect((await cli('policy', 'activate', file)).code).toBe(0);

  // The demo client's key signs a fresh token for every HTTP request, as `failclosed mcp` does.
  // A client that would sample and elicit: the gateway still relays neither to it.
  client = new Client(
    { name: 'fc-test-relay', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} } } },
  );
  client.setRequestHandler('sampling/createMessage', async (r, ctx) => {
    asked.push('sampling/createMessage');
    askedWith.push({ method: 'sampling/createMessage', params: r.params, id: ctx.mcpReq.id });
    await beforeAnswer?.(ctx.mcpReq.id);
    return { role: 'assistant', content: { type: 'text', text: 'sampled' }, model: 'test' } as const;
  });
  client.setRequestHandler('elicitation/create', async (r, ctx) => {
    asked.push('elicitation/create');
    askedWith.push({ method: 'elicitation/create', params: r.params, id: ctx.mcpReq.id });
    await beforeAnswer?.(ctx.mcpReq.id);
    return { action: 'accept', content: { ok: true } } as const;
  });
  client.setNotificationHandler('notifications/message', (n) => {
    logs.push(n.params as (typeof logs)[number]);
    onLog?.(n.params.data);
  });
  client.setNotificationHandler('notifications/progress', (n) => {
    progressed.push(n.params);
  });
  const transport = demoAgentTransport(dir, instance.url);
  transportFor = transport;
  await client.connect(transport());
  modern = new Client(
    { name: 'fc-test-relay-modern', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  modern.setNotificationHandler('notifications/progress', (n) => {
    progressed.push(n.params);
  });
  await modern.connect(transport());
}, 120_000);

afterAll(async () => {
  await modern?.close();
  await client?.close();
  await instance?.close();
  await everything?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('the result, relayed', () => {
  it("answers the upstream's own content blocks and structuredContent, redacted; the receipt hashes exactly them", async () => {
    const r = await client.callTool({ name: 'relay.mixed', arguments: {} });
    expect(r.isError).not.toBe(true);
    expect(r.content).toEqual([
      { type: 'text', text: 'found in the config: [REDACTED:aws_access_key_id]' },
      { type: 'image', data: PNG, mimeType: 'image/png' },
      { type: 'audio', data: WAV, mimeType: 'audio/wav' },
      { type: 'resource_link', uri: 'file:///srv/report.txt', name: 'report.txt', mimeType: 'text/plain' },
      { type: 'resource', resource: { uri: 'file:///srv/notes.txt', mimeType: 'text/plain', text: 'notes' } },
      { type: 'resource', resource: { uri: 'file:///srv/pixel.png', mimeType: 'image/png', blob: PNG } },
    ]);
    expect(r.structuredContent).toEqual({ ok: true, key: '[REDACTED:aws_access_key_id]' });
    expect(JSON.stringify(r)).not.toContain('AKIAIOSFODNN7EXAMPLE');

    const id = requestIdOf(r);
    const mine = (await entries()).filter((e) => e.request_id === id);
    const receipt = mine.find((e) => e.type === 'execution.receipt');
    const completed = mine.find((e) => e.type === 'gateway.completed');
    const answered = sha256Hex(
      canonicalize({ content: r.content, structuredContent: r.structuredContent } as JsonValue),
    );
    expect(receipt?.payload).toMatchObject({ status: 'succeeded', result_sha256: answered });
    expect(completed?.payload['result_sha256']).toBe(answered);
  });
});

describe('a tool-level error, relayed', () => {
  it("answers the upstream's isError and its content, redacted; the receipt hashes exactly them", async () => {
    const r = await client.callTool({ name: 'relay.oops', arguments: {} });
    expect(r.isError).toBe(true);
    expect(r.content).toEqual([
      { type: 'text', text: 'cannot reach the database with password=[REDACTED:credential_assignment]' },
    ]);
    const mine = (await entries()).filter((e) => e.request_id === requestIdOf(r));
    const answered = sha256Hex(canonicalize({ content: r.content, isError: true } as JsonValue));
    expect(mine.find((e) => e.type === 'execution.receipt')?.payload).toMatchObject({
      status: 'succeeded',
      result_sha256: answered,
    });
    expect(mine.find((e) => e.type === 'gateway.completed')?.payload['result_sha256']).toBe(answered);
  });
});

/** POSTs `body` to the MCP endpoint as the registered client `name` (a fresh token). */
async function postAs(
  name: string,
  body: unknown,
  headers: Record<string, string> = { 'mcp-protocol-version': '2025-11-25' },
): Promise<{ status: number; text: string }> {
  const c = readClientFile(dir, name);
  const resource = `${instance.url}/mcp`;
  const res = await fetch(resource, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
      authorization: `Bearer ${signClientToken(importSigningKeyJwk(c.key), c.identity, resource, Date.now())}`,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

const SAMPLED = { role: 'assistant', content: { type: 'text', text: 'sampled' }, model: 'test' };

/** What the fixture says came back for each of its requests: the answer's result, or the refusal. */
const answersOf = (r: { content?: unknown }): unknown[] =>
  (r.content as { text: string }[]).map((c) =>
    c.text.startsWith('answered: ') ? (JSON.parse(c.text.slice('answered: '.length)) as unknown) : c.text,
  );

/**
 * A session of its own for each call: the same call repeated in one session would trip the
 * demo policy's loop breaker for the session (and, with none named, for the client).
 */
const asSession = (id: string) => ({ 'failclosed.dev/session': id });

const receiptOf = async (r: { _meta?: unknown }) =>
  (await entries()).find((e) => e.request_id === requestIdOf(r) && e.type === 'execution.receipt');

describe('sampling and elicitation, relayed when the bundle lets the tool ask (client_requests)', () => {
  it("reach the client on the call's stream; its answers reach the upstream; the receipt counts and hashes them", async () => {
    const before = askedWith.length;
    const r = await client.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-1') });
    expect(r.isError).not.toBe(true);
    expect(answersOf(r)).toEqual([SAMPLED, { action: 'accept', content: { ok: true } }]);
    const seen = askedWith.slice(before);
    expect(seen.map((a) => a.method).sort()).toEqual(['elicitation/create', 'sampling/createMessage']);
    // Under ids of the gateway's own, in the closed shapes relayed.
    for (const a of seen) expect(String(a.id)).toMatch(/^failclosed-[0-9a-f-]{36}$/);
    expect(seen.find((a) => a.method === 'elicitation/create')?.params).toMatchObject({
      mode: 'form',
      // Attributed: the question is the tool's, not failclosed's.
      message: 'The tool asking.sample asks: Approve the transfer?',
    });
    const receipt = await receiptOf(r);
    expect(receipt?.payload).toMatchObject({ status: 'succeeded', notices: { relayed: 2, dropped: 0 } });
  });

  it('the client answering an elicitation is never an approval: a transfer afterwards still waits for its approvers', async () => {
    // The upstream asked "Approve the transfer?" and the client accepted (above and here).
    await client.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-2') });
    const t = await client.callTool({
      name: 'transfer_funds',
      arguments: { from_account: 'acct_a', to_account: 'acct_b', amount: 2500, currency: 'USD' },
    });
    expect(t.isError).toBe(true);
    expect(t.structuredContent).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
  });

  it("refuses what it does not relay (another servers' context, a URL to open) and redacts what it does", async () => {
    const before = askedWith.length;
    const r = await client.callTool({
      name: 'asking.overreach',
      arguments: {},
      _meta: asSession('asking-3'),
    });
    // includeContext: refused by the gateway's guard (-32603); a URL elicitation: refused by its
    // MCP client, which declared form elicitation only (-32602).
    expect(answersOf(r)).toEqual(['refused: -32603', 'refused: -32602', SAMPLED]);
    // Only the third reached the client, its credential redacted.
    const seen = askedWith.slice(before);
    expect(seen.map((a) => a.method)).toEqual(['sampling/createMessage']);
    expect(JSON.stringify(seen[0]?.params)).toContain('[REDACTED:aws_access_key_id]');
    expect(JSON.stringify(seen)).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(JSON.stringify(seen)).not.toContain('includeContext');
    expect((await receiptOf(r))?.payload).toMatchObject({ notices: { relayed: 1, dropped: 1 } });
  });

  it('relays at most 8 requests of one call; the rest are refused to the upstream', async () => {
    const before = askedWith.length;
    const r = await client.callTool({ name: 'asking.insist', arguments: {}, _meta: asSession('asking-4') });
    const texts = (r.content as { text: string }[]).map((c) => c.text);
    expect(texts.filter((t) => t.startsWith('answered: '))).toHaveLength(8);
    expect(texts.slice(8)).toEqual(['refused: -32603', 'refused: -32603']);
    expect(askedWith.length - before).toBe(8);
    expect((await receiptOf(r))?.payload).toMatchObject({ notices: { relayed: 8, dropped: 2 } });
  });

  it("takes an answer only from the principal asked: another client's answer, or one to no request, is refused and recorded", async () => {
    const refusals: { status: number; text: string }[] = [];
    beforeAnswer = async (id) => {
      const answer = { jsonrpc: '2.0', id, result: { action: 'decline' } };
      refusals.push(await postAs('other-agent', answer));
    };
    try {
      const r = await client.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-5') });
      // The forged declines did not reach the upstream: the real answers did.
      expect(JSON.stringify(r.content)).not.toContain('decline');
      expect(JSON.stringify(r.content)).toContain('accept');
    } finally {
      beforeAnswer = undefined;
    }
    expect(refusals).toHaveLength(2);
    for (const f of refusals) {
      expect(f.status).toBe(400);
      expect(JSON.parse(f.text)).toMatchObject({
        error: { code: -32600, data: { code: 'ERR_REQUEST_MALFORMED' } },
      });
    }
    const stray = await postAs('demo-agent', { jsonrpc: '2.0', id: 'failclosed-0', result: {} });
    expect(stray.status).toBe(400);
    const failed = (await entries()).filter(
      (e) => e.type === 'gateway.failed' && e.payload['code'] === 'ERR_REQUEST_MALFORMED',
    );
    expect(failed.length).toBeGreaterThanOrEqual(3);
  });

  it('over stdio (failclosed mcp): the request reaches the client before the call ends, and its answer the upstream', async () => {
    const c = new Client(
      { name: 'fc-test-relay-stdio', version: '1.0.0' },
      { capabilities: { sampling: {}, elicitation: { form: {} } } },
    );
    const seen: string[] = [];
    c.setRequestHandler('sampling/createMessage', () => {
      seen.push('sampling/createMessage');
      return { role: 'assistant', content: { type: 'text', text: 'from stdio' }, model: 'stdio' } as const;
    });
    c.setRequestHandler('elicitation/create', () => {
      seen.push('elicitation/create');
      return { action: 'decline' } as const;
    });
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', dir],
        stderr: 'pipe',
      }),
    );
    try {
      const r = await c.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-6') });
      expect(answersOf(r)).toEqual([
        { role: 'assistant', content: { type: 'text', text: 'from stdio' }, model: 'stdio' },
        { action: 'decline' },
      ]);
      expect(seen.sort()).toEqual(['elicitation/create', 'sampling/createMessage']);
    } finally {
      await c.close();
    }
  });

  it('a 2026-07-28 client is asked in input_required rounds of the one governed call; its answers reach the upstream', async () => {
    const m = new Client(
      { name: 'fc-test-relay-rounds', version: '1.0.0' },
      {
        capabilities: { sampling: {}, elicitation: { form: {} } },
        versionNegotiation: { mode: { pin: '2026-07-28' } },
      },
    );
    const seen: string[] = [];
    m.setRequestHandler('sampling/createMessage', () => {
      seen.push('sampling/createMessage');
      return { role: 'assistant', content: { type: 'text', text: 'in a round' }, model: 'rounds' } as const;
    });
    m.setRequestHandler('elicitation/create', () => {
      seen.push('elicitation/create');
      return { action: 'accept', content: { ok: false } } as const;
    });
    await m.connect(transportFor());
    try {
      const before = (await entries()).filter((e) => e.type === 'execution.receipt').length;
      const r = await m.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-7') });
      expect(answersOf(r)).toEqual([
        { role: 'assistant', content: { type: 'text', text: 'in a round' }, model: 'rounds' },
        { action: 'accept', content: { ok: false } },
      ]);
      expect(seen.sort()).toEqual(['elicitation/create', 'sampling/createMessage']);
      // One governed call, however many rounds: one receipt, the requests counted in it.
      const receipts = (await entries()).filter((e) => e.type === 'execution.receipt');
      expect(receipts.length - before).toBe(1);
      expect((await receiptOf(r))?.payload).toMatchObject({
        status: 'succeeded',
        notices: { relayed: 2, dropped: 0 },
      });
    } finally {
      await m.close();
    }
  });

  it('a round state that names no held call of this client is refused and starts nothing', async () => {
    const res = await postAs(
      'demo-agent',
      {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: {
          name: 'asking.sample',
          arguments: {},
          requestState: 'failclosed-00000000-0000-4000-8000-000000000000',
          inputResponses: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'x', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
          },
        },
      },
      { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'asking.sample' },
    );
    const calls = upstreamCalls().length;
    expect(res.text).toContain('ERR_REQUEST_MALFORMED');
    expect(upstreamCalls().length).toBe(calls);
  });

  it('a 2026-07-28 client that takes no such request is not asked: the upstream is refused', async () => {
    const r = await modern.callTool({ name: 'asking.sample', arguments: {}, _meta: asSession('asking-8') });
    expect(r.content).toEqual([
      { type: 'text', text: 'refused: -32601' },
      { type: 'text', text: 'refused: -32601' },
    ]);
  });
});

describe('sampling and elicitation, not relayed', () => {
  it("without client_requests, an upstream's sampling and elicitation requests are refused to it with an error; the client is never asked", async () => {
    const before = asked.length;
    const r = await client.callTool({ name: 'relay.sample', arguments: {} });
    expect(r.isError).not.toBe(true);
    // JSON-RPC -32601: the gateway's MCP client offers neither.
    expect(r.content).toEqual([
      { type: 'text', text: 'refused: -32601' },
      { type: 'text', text: 'refused: -32601' },
    ]);
    expect(asked.length).toBe(before);
  });
});

describe('while a call runs', () => {
  it('relays progress under the client token and log messages, a credential in a log message redacted', async () => {
    const before = logs.length;
    const seen = progressed.length;
    // onprogress makes the client send a progress token.
    const r = await client.callTool({ name: 'relay.chatty', arguments: {} }, { onprogress: () => undefined });
    const received = progressed.slice(seen);
    // Under the token the client's request carried (one token, the SDK's own).
    expect(new Set(received.map((p) => p['progressToken'])).size).toBe(1);
    const progress = received.map(({ progressToken: _token, ...p }) => p);
    expect(r.content).toEqual([{ type: 'text', text: 'chatty done' }]);
    expect(progress).toEqual([
      { progress: 1, total: 3, message: 'first step' },
      { progress: 2, total: 3 },
      { progress: 3, total: 3, message: 'done' },
    ]);
    const mine = logs.slice(before);
    expect(mine).toEqual([
      { level: 'info', logger: 'fixture', data: 'working on it' },
      {
        level: 'warning',
        logger: 'fixture',
        data: { note: 'connecting with password=[REDACTED:credential_assignment]' },
      },
    ]);
    expect(JSON.stringify(mine)).not.toContain('hunter2-relay-secret');
    const receipt = (await entries()).find(
      (e) => e.request_id === requestIdOf(r) && e.type === 'execution.receipt',
    );
    expect(receipt?.payload['notices']).toMatchObject({ relayed: 5, dropped: 0 });
  });

  it('a 2026-07-28 client gets the same progress and result', async () => {
    const seen = progressed.length;
    const r = await modern.callTool({ name: 'relay.chatty', arguments: {} }, { onprogress: () => undefined });
    expect(r.content).toEqual([{ type: 'text', text: 'chatty done' }]);
    expect(progressed.slice(seen).map((p) => p['progress'])).toEqual([1, 2, 3]);
  });

  it('without a progress token the upstream is given none: only its log messages are relayed', async () => {
    const r = await client.callTool({ name: 'relay.chatty', arguments: {} });
    const receipt = (await entries()).find(
      (e) => e.request_id === requestIdOf(r) && e.type === 'execution.receipt',
    );
    expect(receipt?.payload['notices']).toMatchObject({ relayed: 2, dropped: 0 });
  });

  it('an upstream flooding notices: at most the bound relayed, the rest counted as dropped, the call answered', async () => {
    const before = logs.length;
    const seen = progressed.length;
    const r = await client.callTool({ name: 'relay.flood', arguments: {} }, { onprogress: () => undefined });
    const progress = progressed.slice(seen);
    expect(r.isError).not.toBe(true);
    expect(r.content).toEqual([{ type: 'text', text: 'flood done' }]);
    expect(logs.length - before + progress.length).toBeLessThanOrEqual(MAX_RELAYED_NOTICES);
    const receipt = (await entries()).find(
      (e) => e.request_id === requestIdOf(r) && e.type === 'execution.receipt',
    );
    const counted = receipt?.payload['notices'] as { relayed: number; dropped: number };
    expect(counted.relayed).toBe(MAX_RELAYED_NOTICES);
    // Notices still in flight when the call ended are neither relayed nor counted.
    expect(counted.dropped).toBeGreaterThan(0);
    expect(counted.relayed + counted.dropped).toBeLessThanOrEqual(4000);
  });

  it('a client cancelling a running call ends the upstream call; the receipt says ERR_CALL_CANCELLED', async () => {
    const ac = new AbortController();
    const started = new Promise<void>((resolve) => {
      onLog = (data) => {
        if (data === 'slow started') resolve();
      };
    });
    const calls = upstreamCalls().length;
    const pending = client.callTool({ name: 'relay.slow', arguments: {} }, { signal: ac.signal });
    await started;
    onLog = undefined;
    ac.abort();
    await expect(pending).rejects.toThrow(/abort/i);
    // The outcome is recorded once the upstream is gone: wait for it.
    const { receipt, failed } = await cancelledRecords(entries, 'relay.slow');
    expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_CALL_CANCELLED' });
    expect(failed?.payload).toMatchObject({ code: 'ERR_CALL_CANCELLED' });
    // The upstream got the call, and never answered it.
    expect(upstreamCalls().slice(calls)[0]).toBe('slow');
    expect(upstreamCalls()).not.toContain('slow done');
  });
});

describe('server-everything over Streamable HTTP, relayed', () => {
  it('get-tiny-image: its text and image blocks as it sends them', async () => {
    const r = await client.callTool({ name: 'everything.get-tiny-image', arguments: {} });
    expect(r.isError).not.toBe(true);
    const content = r.content as { type: string; data?: string; mimeType?: string }[];
    expect(content.map((b) => b.type)).toEqual(['text', 'image', 'text']);
    const image = content[1]!;
    expect(image.mimeType).toBe('image/png');
    // The PNG signature, decoded from the relayed base64.
    expect(Buffer.from(image.data!, 'base64').subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('trigger-long-running-operation: its progress relayed under the client token', async () => {
    const seen = progressed.length;
    const r = await client.callTool(
      { name: 'everything.trigger-long-running-operation', arguments: { duration: 1, steps: 2 } },
      { onprogress: () => undefined },
    );
    expect(r.isError).not.toBe(true);
    expect(progressed.slice(seen).map((p) => [p['progress'], p['total']])).toEqual([
      [1, 2],
      [2, 2],
    ]);
  });
});

describe('evidence', () => {
  it('the exported ledger, relayed answers, error answers, notice counts and a cancelled call included, verifies offline', async () => {
    const quiet = { out: () => undefined, err: () => undefined, env: {} };
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
