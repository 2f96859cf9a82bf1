/**
 * A console whose store fails refuses, closed, with its headers (docs/console.md, STYLE "fault
 * injection wraps real interfaces"): the real console service and endpoint over the real store of
 * an embedded deployment, wrapped here so that every call rejects; sign-in, the inbox and an
 * approval answer 500 `ERR_INTERNAL` with the CSP, and nothing is signed in.
 */
import { connect } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsoleEndpoint, createConsoleService, CONSOLE_CSP } from '../../src/console/index.js';
import { createSignInGuard } from '../../src/console/sign-in-guard.js';
import type { ConsoleStore } from '../../src/console/index.js';
import { startRig, type Rig } from '../approvals/support.js';

let rig: Rig;
let server: Server;
let url: string;

/** The store with every method rejecting. */
function failing(store: ConsoleStore): ConsoleStore {
  return new Proxy(store, {
    get: (target, prop) =>
      prop === 'close'
        ? target.close.bind(target)
        : () => Promise.reject(new Error('injected store failure')),
  });
}

beforeAll(async () => {
  rig = await startRig();
  const core = rig.instance.core;
  const svc = createConsoleService({
    store: failing(core.console.store),
    approvals: core.approvals.service,
    append: (e) => core.ledgerPort.append(e),
    isClient: async (n) => (await core.state.lookup(n)) !== undefined,
    now: rig.now,
  });
  // Built once the listener's URL is known, as the Gate does.
  const at: { endpoint?: ReturnType<typeof createConsoleEndpoint> } = {};
  server = createServer((req, res) => void at.endpoint?.handle(req, res, (req.url ?? '/').split('?')[0]!));
  // No server timeout ends a kept request here: only the console's own close does.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 0;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  at.endpoint = createConsoleEndpoint({
    url,
    console: svc,
    approvals: core.approvals.service,
    approvalApi: core.approvals.api,
    // Sign-ins are guarded as in the composition; recording is not what these faults test.
    signInGuard: createSignInGuard({
      record: () => Promise.resolve(true),
      endSession: () => Promise.resolve(),
      counters: core.console.store,
      now: rig.now,
    }),
    now: rig.now,
  });
}, 60_000);

afterAll(async () => {
  server?.close();
  await rig?.close();
});

describe('a failing console store', () => {
  it('refuses sign-in, reads and approvals with ERR_INTERNAL and the console headers', async () => {
    const json = { 'content-type': 'application/json', origin: url };
    // A real challenge (it costs the store nothing), so the key sign-in reaches the store.
    const c = await fetch(`${url}/console/api/sign-in/challenge`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'alice' }),
    });
    const { challenge } = (await c.json()) as { challenge: string };
    for (const [method, path, body] of [
      ['POST', 'sign-in/code', { name: 'alice', code: 'A'.repeat(24) }],
      ['POST', 'sign-in/key', { name: 'alice', challenge, signature: 'A'.repeat(86) }],
      ['GET', 'inbox', undefined],
      ['POST', 'approvals/d1/approve', { statement: {}, signature: 'x' }],
    ] as const) {
      const r = await fetch(`${url}/console/api/${path}`, {
        method,
        headers: { ...json, cookie: `__Host-failclosed-console=${'A'.repeat(43)}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(r.status, path).toBe(500);
      expect(((await r.json()) as { code: string }).code).toBe('ERR_INTERNAL');
      expect(r.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(r.headers.get('set-cookie')).toBeNull();
    }
  });
});

describe('an oversized body', () => {
  it('is answered 413 and its connection is closed, not kept paused', { timeout: 10_000 }, async () => {
    const { port } = server.address() as AddressInfo;
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const got: Buffer[] = [];
      socket.on('data', (d: Buffer) => got.push(d));
      // Resolves only when the gate ends the connection (a kept socket never closes).
      socket.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
      socket.on('error', () => resolve(Buffer.concat(got).toString('latin1')));
      socket.on('connect', () => {
        socket.write(
          `POST /console/api/sign-in/code HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\norigin: ${url}\r\n` +
            `content-type: application/json\r\ncontent-length: ${256 * 1024}\r\n\r\n`,
        );
        // One byte over the limit, all of it read by the gate: the close is a clean end, never a reset.
        socket.write(Buffer.alloc(64 * 1024 + 1, 0x20));
      });
    });
    expect(reply.startsWith('HTTP/1.1 413')).toBe(true);
    expect(reply).toContain('ERR_REQUEST_TOO_LARGE');
  });
});
