/**
 * The stdio relay (`failclosed mcp`, docs/mcp.md "While a call runs") against an endpoint played
 * by this test, announced in the data directory as the running server: what the Gate sends on a
 * call's event stream reaches the client while the call runs, so the client can answer a request
 * the Gate sends it mid-call (the call could not end otherwise), and the client's answers to such
 * requests are posted to the Gate without anything coming back on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runMcpStdio } from '../../src/cli/mcp.js';
import { announceServer, DEMO_CLIENT, initDataDir } from '../../src/embedded/index.js';

type Message = Record<string, unknown>;

/**
 * How long the endpoint waits for something it expects the relay to have passed on before it
 * carries on regardless, so that a relay that holds messages back fails the assertions instead of
 * hanging the test. Never a measure of speed: nothing asserts how long anything took.
 */
const GIVE_UP_MS = 3000;

let work: string;
let dir: string;
let server: Server;
let url: string;
/** What the endpoint does with a POST to /mcp (set by each test). */
let handle: (msg: Message, res: ServerResponse) => void | Promise<void>;
/** Every message posted to /mcp, in order. */
let posted: Message[];
/** Requests that reached /elsewhere, where a redirect points. */
let elsewhere = 0;

function readBody(req: IncomingMessage): Promise<Message> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Message));
    req.on('error', reject);
  });
}

/** Resolves true when `p` settles first, false when GIVE_UP_MS passes first. */
function within(p: Promise<unknown>): Promise<boolean> {
  return Promise.race([
    p.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), GIVE_UP_MS).unref()),
  ]);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const sseEvent = (m: Message): string => `event: message\ndata: ${JSON.stringify(m)}\n\n`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-mcp-stdio-'));
  dir = join(work, 'data');
  await initDataDir(dir);
  server = createServer((req, res) => {
    void (async () => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      } else if (req.url === '/.well-known/oauth-protected-resource') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ resource: `${url}/mcp` }));
      } else if (req.url === '/mcp' && req.method === 'POST') {
        const msg = await readBody(req);
        posted.push(msg);
        await handle(msg, res);
      } else {
        if (req.url === '/elsewhere') elsewhere += 1;
        res.writeHead(404).end();
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The relay connects to the running server the data directory announces: this endpoint.
  announceServer(dir, url);
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
});

/** A relay on in-memory streams, and what it writes to stdout and to its diagnostics. */
let relay: {
  send(m: Message): void;
  next(): Promise<Message>;
  out: Message[];
  err: string[];
  stop(): Promise<number>;
};

beforeEach(() => {
  posted = [];
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const out: Message[] = [];
  const err: string[] = [];
  const waiting: ((m: Message) => void)[] = [];
  let unread = 0;
  let buffered = '';
  stdout.on('data', (c: Buffer) => {
    buffered += c.toString('utf8');
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const m = JSON.parse(buffered.slice(0, i)) as Message;
      buffered = buffered.slice(i + 1);
      out.push(m);
      const w = waiting.shift();
      if (w === undefined) unread++;
      else w(m);
    }
  });
  const stop = new AbortController();
  const done = runMcpStdio(dir, DEMO_CLIENT.identity, { stdin, stdout }, (t) => err.push(t), stop.signal);
  relay = {
    send: (m) => stdin.write(`${JSON.stringify(m)}\n`),
    next: () => {
      if (unread > 0) return Promise.resolve(out[out.length - unread--]!);
      return new Promise((r) => waiting.push(r));
    },
    out,
    err,
    stop: () => {
      stop.abort();
      return done;
    },
  };
});

afterEach(async () => {
  expect(await relay.stop()).toBe(0);
});

describe('failclosed mcp: a call answered with an event stream', () => {
  it('passes on each event as it comes: a notification, then a request the client answers mid-call, then the answer', async () => {
    const notificationSeen = deferred();
    const responsePosted = deferred();
    /** What the endpoint saw before it sent each next event. */
    const order: string[] = [];
    handle = async (msg, res) => {
      if (msg['method'] === 'tools/call') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          sseEvent({
            jsonrpc: '2.0',
            method: 'notifications/progress',
            params: { progressToken: 'p1', progress: 1 },
          }),
        );
        order.push((await within(notificationSeen.promise)) ? 'notification relayed' : 'notification held');
        // A request to the client on the call's stream, with the same id as the call: the client
        // must answer it before the call can end.
        res.write(
          sseEvent({
            jsonrpc: '2.0',
            id: 1,
            method: 'elicitation/create',
            params: { message: 'Which account?', requestedSchema: { type: 'object', properties: {} } },
          }),
        );
        order.push((await within(responsePosted.promise)) ? 'response posted' : 'no response');
        res.end(sseEvent({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'done' }] } }));
      } else if (msg['method'] === undefined && 'result' in msg) {
        responsePosted.resolve();
        res.writeHead(202).end();
      } else if (msg['method'] === 'ping') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ jsonrpc: '2.0', id: msg['id'], result: {} }));
      }
    };

    relay.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: {}, _meta: { progressToken: 'p1' } },
    });
    const first = await relay.next();
    expect(first).toMatchObject({ method: 'notifications/progress', params: { progress: 1 } });
    notificationSeen.resolve();
    const second = await relay.next();
    expect(second).toMatchObject({ id: 1, method: 'elicitation/create' });
    relay.send({ jsonrpc: '2.0', id: 1, result: { action: 'accept', content: {} } });
    const third = await relay.next();
    expect(third).toEqual({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'done' }] } });
    expect(order).toEqual(['notification relayed', 'response posted']);
    // The client's answer reached the Gate as it was sent, and nothing came back for it.
    expect(posted[1]).toEqual({ jsonrpc: '2.0', id: 1, result: { action: 'accept', content: {} } });
    relay.send({ jsonrpc: '2.0', id: 2, method: 'ping' });
    expect(await relay.next()).toEqual({ jsonrpc: '2.0', id: 2, result: {} });
    expect(relay.out).toHaveLength(4);
  });

  it('an event that is not strict JSON ends the exchange with the error answer, after what came before it', async () => {
    handle = (_msg, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        sseEvent({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } }),
      );
      // A duplicate key: JSON.parse would take it, the kernel's strict parser does not.
      res.end('data: {"jsonrpc":"2.0","id":3,"id":4,"result":{}}\n\n');
    };
    relay.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: {} } });
    expect(await relay.next()).toMatchObject({ method: 'notifications/message' });
    expect(await relay.next()).toEqual({
      jsonrpc: '2.0',
      id: 3,
      error: {
        code: -32603,
        message: 'the answer of the Gate was lost or unreadable: the call may have run',
      },
    });
  });

  it('an event stream past 4 MiB ends the exchange with the error answer', async () => {
    handle = (_msg, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Comments carry no message: only the bound on the whole answer can end this one.
      const comment = `: ${'x'.repeat(64 * 1024)}\n`;
      for (let i = 0; i < 65; i++) res.write(comment);
      res.end(sseEvent({ jsonrpc: '2.0', id: 5, result: {} }));
    };
    relay.send({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: {} } });
    expect(await relay.next()).toEqual({
      jsonrpc: '2.0',
      id: 5,
      error: {
        code: -32603,
        message: 'the answer of the Gate was lost or unreadable: the call may have run',
      },
    });
    expect(relay.err.join('')).toContain('answer too large');
  });

  it('a redirect is not followed: the signed call goes nowhere else, and the client is told it may have run', async () => {
    handle = (_msg, res) => {
      res.writeHead(302, { location: `${url}/elsewhere` }).end();
    };
    relay.send({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'echo', arguments: {} } });
    expect(await relay.next()).toEqual({
      jsonrpc: '2.0',
      id: 6,
      error: {
        code: -32603,
        message: 'the answer of the Gate was lost or unreadable: the call may have run',
      },
    });
    // Before, fetch followed the 302 to /elsewhere, with the call's token.
    expect(elsewhere).toBe(0);
    expect(relay.err.join('')).toContain('redirect');
  });

  it('a client response the Gate refuses writes nothing to stdout (it is nobody’s answer), only a diagnostic', async () => {
    const refused = deferred();
    handle = (msg, res) => {
      if (msg['method'] === undefined) {
        // What the Gate answers a posted response today (docs/mcp.md "Approvals"): `400`, and a
        // JSON-RPC error with no id.
        res.writeHead(400, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: null,
            error: { code: -32600, message: 'Invalid Request', data: { code: 'ERR_REQUEST_MALFORMED' } },
          }),
        );
      } else {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ jsonrpc: '2.0', id: msg['id'], result: {} }));
      }
    };
    relay.send({ jsonrpc: '2.0', id: 7, error: { code: -32601, message: 'no sampling here' } });
    // The relay is done with it once it says so, or once it has (wrongly) written something.
    const check = setInterval(() => {
      if (relay.err.some((t) => t.includes('ERR_REQUEST_MALFORMED')) || relay.out.length > 0)
        refused.resolve();
    }, 10);
    await refused.promise;
    clearInterval(check);
    relay.send({ jsonrpc: '2.0', id: 8, method: 'ping' });
    expect(await relay.next()).toEqual({ jsonrpc: '2.0', id: 8, result: {} });
    expect(relay.out).toEqual([{ jsonrpc: '2.0', id: 8, result: {} }]);
  });
});
