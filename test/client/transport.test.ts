/**
 * The client library's own HTTP transport (`src/client/http.ts`): calls go through `node:http` /
 * `node:https` and their keep-alive agents, not the global `fetch` (which cost the load generator
 * about 1.26 ms of CPU per governed call in `bench:e2e`, against 0.46–0.60 ms after). Whatever the
 * transport, a call that never left is a deny, and one whose answer was lost or cannot be read is
 * `unknown` (it may have run), never a success and never a deny (FC-INV-3 client side; a caller
 * told deny never sees the effect: docs/client.md "Outcomes"); an aborted call rejects with its
 * signal's reason.
 *
 * The misbehaving servers here are plain `node:http` servers standing in for a network that cuts
 * an answer or a Gate that never answers: they exercise the transport, not the Gate.
 */
import { execFile, spawn } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdminClient, createClient, neverSent, readJob } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  operatorAction,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { createDevCa, issueCert, pkiPaths } from '../../src/transport/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let work: string;
let dir: string;
let instance: EmbeddedInstance;
const servers: Server[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-client-transport-'));
  dir = join(work, 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
}, 60_000);

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

afterAll(async () => {
  await instance?.close();
  rmSync(work, { recursive: true, force: true });
});

/** A local server answering with `handle`; its URL and the connections it accepted. */
async function serve(
  handle: (res: ServerResponse) => void,
): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const s = createServer((req, res) => {
    req.resume();
    req.once('end', () => handle(res));
  });
  s.on('connection', () => (connections += 1));
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, connections: () => connections };
}

function demoClient(url = instance.url, ownFetch?: typeof fetch) {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({
    url,
    identity: file.identity,
    tenant: file.tenant,
    key: file.key,
    ...(ownFetch === undefined ? {} : { fetch: ownFetch }),
  });
}

describe('the client transport', () => {
  it('does not go through the global fetch: calls and admin reads work with it unusable', async () => {
    const saved = globalThis.fetch;
    globalThis.fetch = () => Promise.reject(new Error('the global fetch must not be used'));
    try {
      const r = await demoClient().call('echo', { message: 'no fetch' });
      expect(r).toMatchObject({ outcome: 'executed', result: { message: 'no fetch' } });
      const ready = await createAdminClient({ url: instance.url, token: readOperatorToken(dir) }).ready();
      expect(ready.status).toBe(200);
    } finally {
      globalThis.fetch = saved;
    }
  });

  it('a fetch passed by the caller is used as given', async () => {
    const seen: string[] = [];
    const client = demoClient(instance.url, (input, init) => {
      seen.push(input instanceof URL ? input.href : typeof input === 'string' ? input : input.url);
      return fetch(input, init);
    });
    expect(await client.call('echo', { message: 'own fetch' })).toMatchObject({ outcome: 'executed' });
    expect(seen).toEqual([`${instance.url}/v1/calls`]);
  });

  it('keeps one connection for calls in sequence', async () => {
    const gate = await serve((res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"outcome":"deny","code":"ERR_POLICY_DENY","reason":"no"}');
    });
    const client = demoClient(gate.url);
    for (let i = 0; i < 5; i += 1)
      expect(await client.call('echo', { message: `${i}` })).toMatchObject({ code: 'ERR_POLICY_DENY' });
    expect(gate.connections()).toBe(1);
  });

  it('an answer cut off mid-body is unknown with its status, never a success nor a deny', async () => {
    const gate = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
      res.write('{"outcome":"executed","result":');
      setTimeout(() => res.destroy(), 20);
    });
    const r = await demoClient(gate.url).call('echo', { message: 'cut' });
    // Before, a deny: the answer had begun "executed".
    expect(r).toMatchObject({ outcome: 'unknown', code: 'ERR_INTERNAL', status: 200 });
    const job = await readJob(gate.url, 'req_x', 'token');
    expect(job).toMatchObject({ outcome: 'unknown', status: 0 });
  });

  it('an answer past 1 MiB is cut off where it passes the bound: unknown, not a read of everything sent', async () => {
    // Something at the Gate's address sends an endless answer: before, the client buffered all of
    // it (here 64 MiB, the server's whole supply) and only then refused to parse it.
    const SUPPLY = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let written = 0;
    let closed!: () => void;
    const gone = new Promise<void>((resolve) => (closed = resolve));
    const flood = (res: ServerResponse): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.once('close', () => closed());
      const more = (): void => {
        while (written < SUPPLY && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        if (!res.destroyed) res.end();
      };
      more();
    };
    for (const ownFetch of [undefined, fetch]) {
      written = 0;
      const gate = await serve(flood);
      const r = await demoClient(gate.url, ownFetch).call('echo', { message: 'flood' });
      expect(r).toMatchObject({ outcome: 'unknown', code: 'ERR_INTERNAL', status: 200 });
      await gone;
      // Cut off near the bound (plus what the socket buffers held), far from the whole supply.
      expect(written).toBeLessThan(SUPPLY / 4);
    }
    const admin = await serve(flood);
    written = 0;
    const a = await createAdminClient({ url: admin.url, token: 't' }).ready();
    expect(a).toMatchObject({ status: 200, body: { outcome: 'deny', code: 'ERR_INTERNAL' } });
    expect(written).toBeLessThan(SUPPLY / 4);
  });

  it('an aborted call rejects with the signal reason and closes the connection', async () => {
    let closed = false;
    const gate = await serve((res) => {
      res.once('close', () => (closed = true));
    });
    const ac = new AbortController();
    const reason = new Error('the agent gave up');
    setTimeout(() => ac.abort(reason), 50);
    await expect(demoClient(gate.url).call('echo', { message: 'held' }, { signal: ac.signal })).rejects.toBe(
      reason,
    );
    await expect.poll(() => closed).toBe(true);
    // Aborted before it is sent: nothing is sent at all.
    const before = gate.connections();
    await expect(
      demoClient(gate.url).call('echo', { message: 'never' }, { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    expect(gate.connections()).toBe(before);
  });

  it('follows no redirect: a 3xx is unknown with its status, and the target hears nothing', async () => {
    let asked = 0;
    const target = await serve((res) => {
      asked += 1;
      res.end('{}');
    });
    const gate = await serve((res) => {
      res.writeHead(307, { location: `${target.url}/v1/calls` });
      res.end();
    });
    const r = await demoClient(gate.url).call('echo', { message: 'moved' });
    expect(r).toMatchObject({ outcome: 'unknown', code: 'ERR_INTERNAL', status: 307 });
    expect(asked).toBe(0);
  });

  it("a caller's own fetch follows no redirect either", async () => {
    let asked = 0;
    const target = await serve((res) => {
      asked += 1;
      res.setHeader('content-type', 'application/json');
      res.end('{"outcome":"executed"}');
    });
    const gate = await serve((res) => {
      res.writeHead(307, { location: `${target.url}/v1/calls` });
      res.end();
    });
    const client = demoClient(gate.url, fetch);
    expect(await client.call('echo', { message: 'moved' })).toMatchObject({
      outcome: 'unknown',
      status: 307,
    });
    expect(asked).toBe(0);
  });

  it('a 101 answer (an upgrade nobody asked for) is unknown, not a wait for ever', async () => {
    const s = createNetServer((socket) => {
      socket.once('data', () =>
        socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'),
      );
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
      expect(await demoClient(url).call('echo', { message: 'up' })).toMatchObject({
        outcome: 'unknown',
        code: 'ERR_INTERNAL',
        status: 0,
      });
      expect(await readJob(url, 'req_1', 'tok')).toEqual({ outcome: 'unknown', status: 0 });
    } finally {
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
      });
    }
  });

  it('an abort while the body arrives rejects with its reason, whatever the reason', async () => {
    const gate = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
      res.write('{"outcome":');
    });
    for (const reason of [new Error('enough'), null]) {
      const ac = new AbortController();
      setTimeout(() => ac.abort(reason), 50);
      await expect(
        demoClient(gate.url).call('echo', { message: 'slow' }, { signal: ac.signal }),
      ).rejects.toBe(reason);
    }
  });

  it('one signal shared by many calls: one listener, no warning, none left behind', async () => {
    const gate = await serve((res) => {
      res.setHeader('content-type', 'application/json');
      setTimeout(() => res.end('{"outcome":"deny","code":"ERR_POLICY_DENY","reason":"no"}'), 20);
    });
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.name);
    };
    process.on('warning', onWarning);
    try {
      const ac = new AbortController();
      const client = demoClient(gate.url);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.call('echo', { message: `${i}` }, { signal: ac.signal })),
      );
      expect(answers.every((a) => a.outcome === 'deny' && a.code === 'ERR_POLICY_DENY')).toBe(true);
      expect(getEventListeners(ac.signal, 'abort').length).toBeLessThanOrEqual(1);
      // Aborting now reaches no finished call.
      ac.abort(new Error('late'));
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a call after the event loop was blocked past the keep-alive timeout opens a new connection', async () => {
    // The server in a process of its own, closing idle connections after 2 s (it announces
    // `Keep-Alive: timeout=2`): blocking this process blocks neither its timer nor its FIN.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => {
           r.setHeader('content-type', 'application/json');
           r.end('{"outcome":"deny","code":"ERR_POLICY_DENY","reason":"no"}'); }); });
         s.keepAliveTimeout = 2000;
         s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const port = await new Promise<string>((resolve) =>
        child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())),
      );
      const client = demoClient(`http://127.0.0.1:${port}`);
      expect(await client.call('echo', { message: 'first' })).toMatchObject({ code: 'ERR_POLICY_DENY' });
      // Blocked (a synchronous child process, a suspended machine) past the server's timeout.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3_600);
      expect(await client.call('echo', { message: 'second' })).toMatchObject({ code: 'ERR_POLICY_DENY' });
    } finally {
      child.kill();
    }
  });

  it('a Gate URL carrying credentials is refused before anything is sent', async () => {
    const gate = await serve((res) => res.end('{}'));
    const url = gate.url.replace('http://', 'http://user:secret@');
    expect(await demoClient(url).call('echo', { message: 'x' })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
      status: 0,
    });
    expect(gate.connections()).toBe(0);
  });

  it('a connection cut after the Gate read the call is unknown (it may have run), for call and submit', async () => {
    let read = 0;
    const gate = await serve((res) => {
      read += 1;
      // The whole call arrived; the connection goes before any answer (a Gate killed mid-call).
      res.socket?.destroy();
    });
    for (const ownFetch of [undefined, fetch]) {
      const client = demoClient(gate.url, ownFetch);
      const r = await client.call('echo', { message: 'lost' });
      // Before, a deny: a caller told deny could see the effect happen.
      expect(r).toMatchObject({ outcome: 'unknown', code: 'ERR_INTERNAL', status: 0 });
      expect(r.request_id).toMatch(/\S/);
      expect(await client.submit('echo', { message: 'lost' })).toMatchObject({
        outcome: 'unknown',
        status: 0,
      });
    }
    expect(read).toBe(4);
  });

  it("an operator's action whose answer was lost says it may have taken effect; one never sent says so", async () => {
    // In front of the real Gate: the action goes through, its answer never comes back.
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.once('end', () => {
        const out = httpRequest(
          new URL(req.url ?? '/', instance.url),
          { method: req.method, headers: req.headers },
          (up) => {
            up.resume();
            up.once('end', () => res.socket?.destroy());
          },
        );
        out.end(Buffer.concat(chunks));
      });
    });
    servers.push(proxy);
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const token = readOperatorToken(dir);
    const lost = createAdminClient({
      url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      token,
    });
    const direct = createAdminClient({ url: instance.url, token });
    // The CLI's operator commands go through the same exchange.
    const cli = {
      url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      token,
      inProcess: false,
      close: () => Promise.resolve(),
    };
    try {
      const viaCli = await operatorAction(cli, 'kill-switch', { on: true });
      expect(viaCli).toMatchObject({ status: 0, body: { code: 'ERR_INTERNAL', sent: true } });
      expect((viaCli.body as { reason: string }).reason).toMatch(/may have taken effect/);
      expect((await direct.killSwitch(false)).status).toBe(200);
      const a = await lost.killSwitch(true, 'answer lost on the way back');
      // Before: "the Gate could not be reached", while the kill switch was on.
      expect(a).toMatchObject({ status: 0, body: { outcome: 'deny', code: 'ERR_INTERNAL', sent: true } });
      expect((a.body as { reason: string }).reason).toMatch(/may have taken effect/);
      const calls = await demoClient(instance.url).call('echo', { message: 'stopped' });
      expect(calls).toMatchObject({ outcome: 'deny', code: 'ERR_KILL_SWITCH' });
    } finally {
      expect((await direct.killSwitch(false)).status).toBe(200);
    }
    const closed = createAdminClient({ url: 'http://127.0.0.1:1', token });
    const never = await closed.killSwitch(true);
    expect(never).toMatchObject({ status: 0, body: { code: 'ERR_INTERNAL', sent: false } });
    expect((never.body as { reason: string }).reason).toMatch(/nothing was sent/);
    const unreachable = await operatorAction({ ...cli, url: 'http://127.0.0.1:1' }, 'kill-switch', {
      on: true,
    });
    expect((unreachable.body as { reason: string }).reason).toMatch(/nothing was sent/);
  });

  it('a failure counts as never sent only where it can come before the request is written', () => {
    const err = (code: string, syscall?: string) =>
      Object.assign(new Error(code), { code, ...(syscall === undefined ? {} : { syscall }) });
    // Before the request: no connection, no name, a certificate the handshake refused.
    expect(neverSent(err('ECONNREFUSED', 'connect'))).toBe(true);
    expect(neverSent(err('ENOTFOUND', 'getaddrinfo'))).toBe(true);
    expect(neverSent(err('DEPTH_ZERO_SELF_SIGNED_CERT'))).toBe(true);
    expect(neverSent(new TypeError('fetch failed', { cause: err('ECONNREFUSED', 'connect') }))).toBe(true);
    // Every address of a name (Node's autoSelectFamily): an AggregateError whose own code has no
    // syscall; never sent only when every attempt failed to connect.
    const all = (...errors: Error[]) =>
      Object.assign(new AggregateError(errors, 'connect failed'), { code: 'ECONNREFUSED' });
    expect(neverSent(all(err('ECONNREFUSED', 'connect'), err('ECONNREFUSED', 'connect')))).toBe(true);
    expect(neverSent(new TypeError('fetch failed', { cause: all(err('ECONNREFUSED', 'connect')) }))).toBe(
      true,
    );
    expect(neverSent(all(err('ECONNREFUSED', 'connect'), err('ECONNRESET', 'read')))).toBe(false);
    expect(neverSent(all())).toBe(false);
    // Possibly after it: the same codes on an open connection, any other TLS error, resets, timeouts.
    expect(neverSent(err('ECONNREFUSED', 'read'))).toBe(false);
    expect(neverSent(err('EHOSTUNREACH', 'write'))).toBe(false);
    expect(neverSent(err('ECONNREFUSED'))).toBe(false);
    expect(neverSent(err('ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC'))).toBe(false);
    expect(neverSent(err('ECONNRESET', 'read'))).toBe(false);
    expect(neverSent(new Error('the Gate did not answer in time'))).toBe(false);
  });

  it('a 404 that is no Gate deny is a deny with its status: nothing at that address takes calls', async () => {
    for (const body of ['{"error":"not_found"}', '<html>not found</html>']) {
      const gate = await serve((res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(body);
      });
      expect(await demoClient(gate.url).call('echo', { message: 'x' })).toMatchObject({
        outcome: 'deny',
        code: 'ERR_INTERNAL',
        status: 404,
      });
    }
  });

  it('an unsupported scheme or a closed port is unreachable: a deny, status 0', async () => {
    expect(await demoClient('ftp://127.0.0.1:1').call('echo', { message: 'x' })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
      status: 0,
    });
    const admin = createAdminClient({ url: 'http://127.0.0.1:1', token: 'x' });
    expect(await admin.ready()).toMatchObject({ status: 0, body: { code: 'ERR_INTERNAL' } });
  });

  it('speaks HTTPS to a Gate whose CA the process trusts (NODE_EXTRA_CA_CERTS)', async () => {
    const pki = join(work, 'pki');
    await createDevCa(pki);
    await issueCert(pki, { role: 'gate' });
    const s = createHttpsServer(
      { cert: readFileSync(pkiPaths(pki).cert('gate')), key: readFileSync(pkiPaths(pki).key('gate')) },
      (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ outcome: 'queued', status: 'running', request_id: req.url }));
      },
    );
    servers.push(s);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(s.address() as AddressInfo).port}`;
    // The CA is read at process start: a process of its own, with the built client (not a
    // synchronous one: the server answers from this process).
    const read = async (env: NodeJS.ProcessEnv): Promise<string> =>
      (
        await promisify(execFile)(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `import { readJob } from './dist/src/client/index.js';
           console.log(JSON.stringify(await readJob(${JSON.stringify(url)}, 'req_1', 'tok')));`,
          ],
          { cwd: ROOT, env, encoding: 'utf8' },
        )
      ).stdout;
    expect(
      JSON.parse(await read({ ...process.env, NODE_EXTRA_CA_CERTS: pkiPaths(pki).caCert })),
    ).toMatchObject({
      outcome: 'queued',
      status: 'running',
      request_id: '/v1/jobs/req_1',
    });
    const { NODE_EXTRA_CA_CERTS: _unused, ...without } = process.env;
    // Without the CA, the certificate is refused: unreachable, never read.
    expect(JSON.parse(await read(without))).toEqual({ outcome: 'unknown', status: 0 });
  });
});
