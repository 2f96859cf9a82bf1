/**
 * The relay of a running call across the Gate ↔ Execution Layer connection (docs/mcp.md "While a
 * call runs", "Sampling and elicitation"; docs/deployment.md "The relay between the Gate and the
 * Execution Layer"): a Gate with `executor_url` and a separate Execution Layer
 * (`startExecutorNode`) over mutual TLS, and the official SDK client at the Gate's `/mcp`. The
 * upstream is the relay fixture (test/fixtures/mcp-relay-upstream/server.mjs), launched per call
 * in bubblewrap by the Execution Layer, pinned with `failclosed policy pin-mcp`.
 *
 * - progress and log notifications, guarded (redacted) by the Execution Layer, reach the client;
 * - a client's cancellation reaches the Execution Layer: the upstream call ends, and the receipt
 *   says `ERR_CALL_CANCELLED`;
 * - an upstream's sampling and elicitation requests reach the client and its answers the upstream;
 * - the Execution Layer takes an answer only for a request of its own that waits;
 * - a malformed or oversized line from an Execution Layer (a test-owned mTLS server) is
 *   `ERR_EXECUTION_UNAVAILABLE`, and nothing is relayed.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { runCli } from '../../src/cli/run.js';
import {
  announceServer,
  createRemoteExecutor,
  initDataDir,
  startEmbedded,
  startExecutorNode,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode } from '../../src/embedded/index.js';
import type { CallRelay, RelayedAsk, RelayedNotice } from '../../src/execution/index.js';
import { parseExecutionAnswer } from '../../src/gate/answers.js';
import { createMtlsAgent, createMtlsServer, pkiPaths } from '../../src/transport/index.js';
import type { MtlsAgent, MtlsServer } from '../../src/transport/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { cancelledRecords, demoAgentTransport, relayFixturePin } from '../support/mcp-relay.js';
import { separateExecutorLayout } from './topology.js';

let work: string;
let dir: string;
let state: string;
let pki: string;
let instance: EmbeddedInstance;
let node: ExecutorNode;
let client: Client;
const logs: { level: string; logger?: string; data: unknown }[] = [];
const progressed: Record<string, unknown>[] = [];
const asked: string[] = [];
let onLog: ((data: unknown) => void) | undefined;

type Entry = { type: string; request_id: string; payload: Record<string, unknown> };

async function entries(): Promise<Entry[]> {
  const l = instance.core.ledger;
  return await l.store.readRange(0, l.size());
}

const requestIdOf = (r: { _meta?: unknown }): string =>
  ((r._meta as Record<string, Record<string, string>>)['failclosed.dev/call'] ?? {})['request_id'] ?? '';

const receiptOf = async (r: { _meta?: unknown }): Promise<Entry | undefined> =>
  (await entries()).find((e) => e.request_id === requestIdOf(r) && e.type === 'execution.receipt');

const upstreamCalls = (): string[] =>
  readFileSync(join(state, 'calls.log'), 'utf8').split('\n').filter(Boolean);

/** The calls the upstream noted, without the note of a cancellation it may have read before it was ended. */
const sansCancelNote = (calls: string[]): string[] =>
  calls.filter((c, i) => c !== 'cancelled' || calls[i - 1] !== 'slow');

async function cli(...args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: () => undefined,
    err: (t) => err.push(t),
    env: {},
  });
  return { code, err: err.join('') };
}

const gateFiles = () => ({
  ca: pkiPaths(pki).caCert,
  cert: pkiPaths(pki).cert('gate'),
  key: pkiPaths(pki).key('gate'),
});

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-relay-remote-'));
  dir = join(work, 'data');
  state = join(work, 'state');
  const src = join(work, 'policy');
  mkdirSync(state);
  writeFileSync(join(state, 'calls.log'), '');
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-relay.cedar'),
    `@reason("the relay fixture's tools")\npermit (principal, action in [${[
      'relay.chatty',
      'relay.deep',
      'relay.slow',
      'asking.sample',
    ]
      .map((a) => `Action::"${a}"`)
      .join(', ')}], resource);\n`,
  );
  await initDataDir(dir);
  const layout = await separateExecutorLayout(work, dir);
  pki = layout.pki;
  // A short execute deadline (long enough for a busy machine): a call still running past it is cut by the Gate (see the last test).
  instance = await startEmbedded(dir, { port: 0, deadlines: { gate: { executionMs: 8000 } } });
  announceServer(dir, instance.url);
  node = await startExecutorNode(layout.executorConfig(join(work, 'executor')), {
    defaultLogLevel: 'silent',
  });
  const pin = (server: string, ...extra: string[]) => cli(...relayFixturePin(src, state, server, ...extra));
  const relay = await pin('relay', '--only', 'chatty', '--only', 'deep', '--only', 'slow');
  expect(relay.err).toBe('');
  expect(relay.code).toBe(0);
  const asking = await pin('asking', '--only', 'sample', '--client-requests', 'sampling,elicitation');
  expect(asking.err).toBe('');
  expect(asking.code).toBe(0);
  const file = join(work, 'bundle.json');
  const built = await cli('policy', 'build', src, '--out', file);
  expect(built.err).toBe('');
  const activated = await cli('policy', 'activate', file);
  expect(activated.err).toBe('');
  expect(activated.code).toBe(0);

  client = new Client(
    { name: 'fc-test-relay-remote', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} } } },
  );
  client.setRequestHandler('sampling/createMessage', () => {
    asked.push('sampling/createMessage');
    return { role: 'assistant', content: { type: 'text', text: 'sampled' }, model: 'test' } as const;
  });
  client.setRequestHandler('elicitation/create', () => {
    asked.push('elicitation/create');
    return { action: 'accept', content: { ok: true } } as const;
  });
  client.setNotificationHandler('notifications/message', (n) => {
    logs.push(n.params as (typeof logs)[number]);
    onLog?.(n.params.data);
  });
  client.setNotificationHandler('notifications/progress', (n) => {
    progressed.push(n.params);
  });
  await client.connect(demoAgentTransport(dir, instance.url)());
}, 120_000);

afterAll(async () => {
  await client?.close();
  await node?.close();
  await instance?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('a separate Execution Layer relays a running call', () => {
  it('progress and log notifications reach the MCP client, guarded by the Execution Layer; its receipt counts them', async () => {
    const before = logs.length;
    const seen = progressed.length;
    const r = await client.callTool({ name: 'relay.chatty', arguments: {} }, { onprogress: () => undefined });
    expect(r.content).toEqual([{ type: 'text', text: 'chatty done' }]);
    expect(progressed.slice(seen).map(({ progressToken: _token, ...p }) => p)).toEqual([
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
    const receipt = await receiptOf(r);
    expect(receipt?.payload).toMatchObject({ status: 'succeeded', notices: { relayed: 5, dropped: 0 } });
  });

  it('a notice nested too deep for a line of the stream is dropped at the Execution Layer; the call is answered', async () => {
    const before = logs.length;
    const r = await client.callTool({ name: 'relay.deep', arguments: {} });
    // Before: the Gate refused the line, cut the call (ERR_EXECUTION_UNAVAILABLE) and the
    // Execution Layer cancelled it.
    expect(r.isError).not.toBe(true);
    expect(r.content).toEqual([{ type: 'text', text: 'deep done' }]);
    expect(logs.length).toBe(before);
    expect((await receiptOf(r))?.payload).toMatchObject({
      status: 'succeeded',
      notices: { relayed: 0, dropped: 1 },
    });
  });

  it('a client cancelling a running call ends the upstream call at the Execution Layer; the receipt says ERR_CALL_CANCELLED', async () => {
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
    // The outcome is recorded once the upstream is gone: wait for the Gate's record of it.
    const { receipt, failed } = await cancelledRecords(entries, 'relay.slow');
    expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_CALL_CANCELLED' });
    // The Gate took the Execution Layer's own answer: the same code, not "unavailable".
    expect(failed?.payload).toMatchObject({ code: 'ERR_CALL_CANCELLED' });
    // The upstream got the call once and never answered it: the stdio adapter ends its process
    // group on the abort (as in-process). The sandboxed server runs in a session of its own and
    // dies with bubblewrap, so it may still note the SDK's `notifications/cancelled` first.
    expect(sansCancelNote(upstreamCalls().slice(calls))).toEqual(['slow']);
  });

  it("a Gate that goes away (its deadline cut the request) cancels the Execution Layer's call: the receipt says ERR_CALL_CANCELLED", async () => {
    const calls = upstreamCalls().length;
    const r = await client.callTool({ name: 'relay.slow', arguments: {} });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    const id = requestIdOf(r);
    let receipt: Entry | undefined;
    for (let i = 0; i < 200 && receipt === undefined; i++) {
      receipt = await receiptOf(r);
      if (receipt === undefined) await new Promise((res) => setTimeout(res, 100));
    }
    expect(id).not.toBe('');
    // Not the tool's own time limit (60 s away): the connection closed, the call was cancelled.
    expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_CALL_CANCELLED' });
    expect(sansCancelNote(upstreamCalls().slice(calls))).toEqual(['slow']);
  });

  it("an upstream's sampling and elicitation requests reach the client; its answers reach the upstream", async () => {
    const before = asked.length;
    const r = await client.callTool({ name: 'asking.sample', arguments: {} });
    expect(r.isError).not.toBe(true);
    expect(
      (r.content as { text: string }[]).map((c) => JSON.parse(c.text.replace(/^answered: /, '')) as unknown),
    ).toEqual([
      { role: 'assistant', content: { type: 'text', text: 'sampled' }, model: 'test' },
      { action: 'accept', content: { ok: true } },
    ]);
    expect(asked.slice(before).sort()).toEqual(['elicitation/create', 'sampling/createMessage']);
    expect((await receiptOf(r))?.payload).toMatchObject({
      status: 'succeeded',
      notices: { relayed: 2, dropped: 0 },
    });
  });
});

/** POSTs `body` to the Execution Layer's `path` with the Gate's certificate. */
function postToExecutor(path: string, body: unknown): Promise<{ status: number; text: string }> {
  const files = gateFiles();
  return new Promise((resolve, reject) => {
    const req = request(
      `${node.url}${path}`,
      {
        method: 'POST',
        ca: readFileSync(files.ca),
        cert: readFileSync(files.cert),
        key: readFileSync(files.key),
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe("the Execution Layer's answer and cancel endpoints", () => {
  it('refuses an answer or a cancellation for no running call or no pending request', async () => {
    const id = 'AAAAAAAAAAAAAAAAAAAAAA';
    for (const [path, body] of [
      ['/v1/execute/answer', { call: id, ask: id, result: { action: 'accept' } }],
      ['/v1/execute/answer', { call: id, ask: id, result: {}, error: 'both' }],
      ['/v1/execute/answer', { call: 'x', ask: 'y', error: 'no' }],
      ['/v1/execute/cancel', { call: id }],
    ] as const) {
      const a = await postToExecutor(path, body);
      expect(a.status).toBe(400);
      expect(JSON.parse(a.text)).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_MALFORMED' });
    }
  });
});

describe('the Gate reads a relayed answer as untrusted input', () => {
  let fake: MtlsServer;
  let agent: MtlsAgent;
  /** What the fake Execution Layer streams to the next call. */
  let lines: string[] = [];
  /** When set, answers every request instead. */
  let route: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const CALL = '{"event":"call","call":"BBBBBBBBBBBBBBBBBBBBBB"}';
  const NOTICE = '{"event":"notice","notice":{"kind":"log","level":"info","data":"hello"}}';
  const ANSWER = '{"outcome":"deny","code":"ERR_TOOL_FAILED","reason":"the tool adapter failed"}';
  const call = {
    envelope: 'a.b.c',
    tool: 'relay.chatty',
    tenant: 'acme',
    params: {},
    trace_id: '0123456789abcdef0123456789abcdef',
    request_id: 'r1',
  };
  beforeAll(async () => {
    fake = await createMtlsServer(
      (req, res) => {
        if (route !== undefined) return route(req, res);
        req.resume();
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const l of lines) res.write(l);
        res.end();
      },
      {
        files: {
          ca: pkiPaths(pki).caCert,
          cert: pkiPaths(pki).cert('executor'),
          key: pkiPaths(pki).key('executor'),
        },
        allow: ['gate'],
        host: '127.0.0.1',
        port: 0,
      },
    );
    agent = await createMtlsAgent({ files: gateFiles(), expect: ['executor'] });
  });
  afterAll(async () => {
    agent?.close();
    await fake?.close();
  });

  /** Runs `call` through the Gate's remote port to the fake; what was relayed and the answer. */
  async function run(
    cancelled?: AbortSignal,
  ): Promise<{ answer: unknown; notices: RelayedNotice[]; asks: RelayedAsk[] }> {
    const notices: RelayedNotice[] = [];
    const asks: RelayedAsk[] = [];
    const relay: CallRelay = {
      progress: true,
      ...(cancelled === undefined ? {} : { cancelled }),
      notify: (n) => void notices.push(n),
      ask: (a) => {
        asks.push(a);
        return Promise.resolve({ action: 'decline' });
      },
    };
    const port = createRemoteExecutor({ url: fake.url, agent });
    const answer = parseExecutionAnswer(await port.execute(call, undefined, undefined, relay));
    return { answer, notices, asks };
  }

  it('a well-formed stream: its notice relayed, its answer taken', async () => {
    lines = [`${CALL}\n`, `${NOTICE}\n`, `${ANSWER}\n`];
    const r = await run();
    expect(r.answer).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    expect(r.notices).toEqual([{ kind: 'log', level: 'info', data: 'hello' }]);
  });

  it.each([
    ['a line that is not JSON', [`${CALL}\n`, 'not json\n', `${NOTICE}\n`, `${ANSWER}\n`]],
    ['a duplicate key', [`${CALL}\n`, '{"event":"notice","event":"notice"}\n', `${ANSWER}\n`]],
    [
      'a notice of another shape',
      [
        `${CALL}\n`,
        '{"event":"notice","notice":{"kind":"log","level":"loud","data":1}}\n',
        `${NOTICE}\n`,
        `${ANSWER}\n`,
      ],
    ],
    [
      'a notice with a field more',
      [`${CALL}\n`, '{"event":"notice","notice":{"kind":"progress","progress":1,"x":2}}\n', `${ANSWER}\n`],
    ],
    [
      'a request to the client it would not relay',
      [
        `${CALL}\n`,
        '{"event":"ask","ask":"CCCCCCCCCCCCCCCCCCCCCC","method":"sampling/createMessage","params":{"messages":[],"includeContext":"allServers"}}\n',
        `${ANSWER}\n`,
      ],
    ],
    ['a notice before the call line', [`${NOTICE}\n`, `${CALL}\n`, `${ANSWER}\n`]],
    [
      'an oversized line',
      [`${CALL}\n`, `{"event":"notice","pad":"${'x'.repeat(1024 * 1024)}"}\n`, `${ANSWER}\n`],
    ],
    [
      'an oversized line without its end',
      [`${CALL}\n`, `{"event":"notice","pad":"${'x'.repeat(1024 * 1024)}`],
    ],
    ['a line after the answer', [`${CALL}\n`, `${ANSWER}\n`, `${NOTICE}\n`]],
    ['no answer line', [`${CALL}\n`]],
  ])('%s: ERR_EXECUTION_UNAVAILABLE, and nothing relayed', async (_what, stream) => {
    lines = stream;
    const r = await run();
    expect(r.answer).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    expect(r.notices).toEqual([]);
    expect(r.asks).toEqual([]);
  });
  it('a call that ended before its cancellation arrived keeps its outcome: the Gate takes the answer that follows', async () => {
    const cancel = new AbortController();
    let held: ServerResponse | undefined;
    const told: unknown[] = [];
    route = (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.url === '/v1/execute') {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          res.write(`${CALL}\n`);
          held = res;
          cancel.abort();
          return;
        }
        told.push(JSON.parse(body));
        // The call has ended meanwhile: the cancellation is refused, the answer follows.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"outcome":"deny","code":"ERR_REQUEST_MALFORMED","reason":"no such running call"}');
        held?.end(`${ANSWER}\n`);
      });
    };
    try {
      const r = await run(cancel.signal);
      expect(told).toEqual([{ call: 'BBBBBBBBBBBBBBBBBBBBBB' }]);
      expect(r.answer).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    } finally {
      route = undefined;
    }
  });

  it('a cancellation the Execution Layer cannot be told of cuts the request (which cancels there)', async () => {
    const cancel = new AbortController();
    let cut: Promise<void> | undefined;
    route = (req, res) => {
      req.resume();
      if (req.url !== '/v1/execute') return void req.socket.destroy();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${CALL}\n`);
      cut = new Promise((resolve) => res.once('close', () => resolve()));
      cancel.abort();
    };
    try {
      const r = await run(cancel.signal);
      expect(r.answer).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
      await cut;
    } finally {
      route = undefined;
    }
  });
});
