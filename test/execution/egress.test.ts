/**
 * Egress control for sandboxed executors, for real (SPEC §6 Redaction and egress, OE-INV-011,
 * OE-INV-006/024): a tool granted `network` has no host network, reaches exactly the listed
 * `host:port` destinations through the Execution Layer's egress proxy, and every refused
 * connection ends the call with its code. Real bubblewrap, real curl inside, real HTTP servers
 * on 127.0.0.1 that count the connections they accept.
 */
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createBwrapSandbox, createCommandAdapter } from '../../src/execution/index.js';
import type { BwrapSandboxOptions, SandboxExit, SandboxRequest } from '../../src/execution/index.js';
import type { Deny } from '../../src/kernel/index.js';
import { EGRESS_SOCKET_NAME, startEgressProxy } from '../../src/execution/sandbox/egress.js';
import type { EgressLimits } from '../../src/execution/sandbox/egress.js';
import { constraints } from './support.js';

const CURL = '/usr/bin/curl';
const BASH = '/usr/bin/bash';

interface Counting {
  readonly server: Server;
  port: number;
  connections: number;
}

/** An HTTP/1.1 server answering every request with `body` (or a redirect) and counting connections. */
async function counting(body: string | ((port: number) => string)): Promise<Counting> {
  const c: Counting = { server: createServer(), port: 0, connections: 0 };
  c.server.on('connection', (s) => {
    c.connections += 1;
    s.on('error', () => undefined);
    s.once('data', () => {
      const text = typeof body === 'string' ? body : body(c.port);
      s.end(text);
    });
  });
  await new Promise<void>((r) => c.server.listen(0, '127.0.0.1', r));
  c.port = (c.server.address() as { port: number }).port;
  return c;
}

const ok = (text: string): string =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`;

let listed: Counting;
let unlisted: Counting;
let redirecting: Counting;
let big: Counting;
let badStatus: Counting;
let bigHead: Counting;

beforeAll(async () => {
  listed = await counting(ok('hello from the listed service\n'));
  unlisted = await counting(ok('secret from an unlisted service\n'));
  redirecting = await counting(
    () =>
      `HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:${unlisted.port}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  );
  big = await counting(ok('x'.repeat(64 * 1024)));
  bigHead = await counting(
    `HTTP/1.1 200 OK\r\nX-Fill: ${'a'.repeat(12_000)}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok`,
  );
  badStatus = await counting('HTTP/1.1 099 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
});

afterAll(async () => {
  for (const c of [listed, unlisted, redirecting, big, badStatus, bigHead])
    await new Promise<void>((r) => c.server.close(() => r()));
});

beforeEach(() => {
  for (const c of [listed, unlisted, redirecting, big, badStatus, bigHead]) c.connections = 0;
});

function run(
  argv: string[],
  egress: string[],
  options: BwrapSandboxOptions = {},
  over: Partial<SandboxRequest> = {},
): Promise<SandboxExit | Deny> {
  return createBwrapSandbox(options).run({
    argv,
    constraints: constraints({ network: true, egress, timeout_ms: 10_000 }),
    signal: new AbortController().signal,
    ...over,
  });
}

function exited(r: SandboxExit | Deny): SandboxExit {
  if (r.outcome !== 'exited') throw new Error(`expected exit, got ${r.code}: ${r.reason}`);
  return r;
}

describe('egress proxy: the allowlist (OE-INV-011)', () => {
  it('a tool granted network with a one-port allowlist reaches that port through the proxy (plain HTTP)', async () => {
    const r = exited(
      await run([CURL, '-sS', `http://127.0.0.1:${listed.port}/x`], [`127.0.0.1:${listed.port}`]),
    );
    expect(r.exit_code).toBe(0);
    expect(r.stdout.toString()).toBe('hello from the listed service\n');
    expect(listed.connections).toBe(1);
  });

  it('and through an HTTP CONNECT tunnel', async () => {
    const r = exited(
      await run([CURL, '-sS', '-p', `http://127.0.0.1:${listed.port}/x`], [`127.0.0.1:${listed.port}`]),
    );
    expect(r.stdout.toString()).toBe('hello from the listed service\n');
    expect(listed.connections).toBe(1);
  });

  it('an unlisted loopback destination → ERR_EGRESS_DENIED, never reached, the call ended', async () => {
    for (const argv of [
      [CURL, '-sS', `http://127.0.0.1:${unlisted.port}/`],
      [CURL, '-sS', '-p', `http://127.0.0.1:${unlisted.port}/`],
    ]) {
      const r = await run(argv, [`127.0.0.1:${listed.port}`]);
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
      expect((r as Deny).reason).toContain(`127.0.0.1:${unlisted.port}`);
    }
    expect(unlisted.connections).toBe(0);
  });

  it('bypassing the proxy finds no host network at all (private namespace, only lo)', async () => {
    const r = exited(
      await run(
        [BASH, '-c', `exec 3<>/dev/tcp/127.0.0.1/${listed.port} && cat <&3; echo "rc=$?"`],
        [`127.0.0.1:${listed.port}`],
      ),
    );
    expect(r.stdout.toString()).not.toContain('hello');
    expect(listed.connections).toBe(0);
    const iface = exited(
      await run(
        ['/usr/bin/awk', '-F:', 'NR > 2 { gsub(/ /, "", $1); print $1 }', '/proc/net/dev'],
        [`127.0.0.1:${listed.port}`],
      ),
    );
    expect(iface.stdout.toString().trim()).toBe('lo');
  });

  it('a redirect to an unlisted destination is not followed by the proxy, and a client that follows it is denied', async () => {
    const allow = [`127.0.0.1:${redirecting.port}`];
    const notFollowed = exited(
      await run(
        [CURL, '-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${redirecting.port}/`],
        allow,
      ),
    );
    expect(notFollowed.stdout.toString()).toBe('302');
    const followed = await run([CURL, '-sS', '-L', `http://127.0.0.1:${redirecting.port}/`], allow);
    expect(followed).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(unlisted.connections).toBe(0);
  });

  it('a listed name that resolves to a non-public address → ERR_EGRESS_DENIED (literal IPs only for internal hosts)', async () => {
    const r = await run([CURL, '-sS', `http://localhost:${listed.port}/`], [`localhost:${listed.port}`]);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(listed.connections).toBe(0);
  });

  it('a request that is not an absolute http:// URL (https in the clear, credentials) → ERR_EGRESS_DENIED', async () => {
    const r = await run(
      [
        BASH,
        '-c',
        `exec 3<>/dev/tcp/127.0.0.1/3128; printf 'GET http://u:p@127.0.0.1:${listed.port}/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3`,
      ],
      [`127.0.0.1:${listed.port}`],
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(listed.connections).toBe(0);
  });
});

describe('egress proxy: caps per call', () => {
  it('more bytes received than allowed → ERR_EGRESS_LIMIT', async () => {
    const r = await run([CURL, '-sS', `http://127.0.0.1:${big.port}/`], [`127.0.0.1:${big.port}`], {
      egressLimits: { maxBytesIn: 1024 },
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_LIMIT' });
  });

  it('more bytes sent than allowed → ERR_EGRESS_LIMIT', async () => {
    const r = await run(
      [CURL, '-sS', '--data-binary', 'y'.repeat(4096), `http://127.0.0.1:${listed.port}/`],
      [`127.0.0.1:${listed.port}`],
      { egressLimits: { maxBytesOut: 1024 } },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_LIMIT' });
  });

  it('more connections than allowed → ERR_EGRESS_LIMIT, the extra one never reached', async () => {
    const url = `http://127.0.0.1:${listed.port}/`;
    const r = await run(
      [BASH, '-c', `${CURL} -sS ${url} && ${CURL} -sS ${url} && ${CURL} -sS ${url}`],
      [`127.0.0.1:${listed.port}`],
      { egressLimits: { maxConnections: 2 } },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_LIMIT' });
    expect(listed.connections).toBe(2);
  });
});

/** Talks to a proxy directly (as the forwarder would): each text on its own connection; ends at the first refusal. */
async function direct(allow: string[], limits: Partial<EgressLimits>, texts: string[]): Promise<Deny[]> {
  const denials: Deny[] = [];
  let refused = (): void => undefined;
  const first = new Promise<void>((r) => (refused = r));
  const p = await startEgressProxy({
    allow,
    limits,
    onDenial: (d) => {
      denials.push(d);
      refused();
    },
  });
  const sockets = texts.map((text) => {
    const c = connect(join(p.socketDir, EGRESS_SOCKET_NAME));
    c.on('error', () => undefined);
    c.on('data', () => undefined);
    c.write(text);
    return c;
  });
  try {
    await Promise.race([first, Promise.all(sockets.map((c) => new Promise((r) => c.on('close', r))))]);
  } finally {
    for (const c of sockets) c.destroy();
    await p.close();
  }
  return denials;
}

describe('egress proxy: request and answer heads count (OE-INV-011)', () => {
  it('a request line and headers count toward the bytes sent → ERR_EGRESS_LIMIT, never forwarded', async () => {
    const get = `GET http://127.0.0.1:${listed.port}/${'p'.repeat(2000)} HTTP/1.1\r\nHost: x\r\nX-Exfil: ${'e'.repeat(3000)}\r\nConnection: close\r\n\r\n`;
    const denials = await direct([`127.0.0.1:${listed.port}`], { maxBytesOut: 1000 }, [get]);
    expect(denials[0]).toMatchObject({ code: 'ERR_EGRESS_LIMIT' });
    const connect1 = `CONNECT 127.0.0.1:${listed.port} HTTP/1.1\r\nX-Exfil: ${'e'.repeat(3000)}\r\n\r\n`;
    expect((await direct([`127.0.0.1:${listed.port}`], { maxBytesOut: 1000 }, [connect1]))[0]).toMatchObject({
      code: 'ERR_EGRESS_LIMIT',
    });
    expect(listed.connections).toBe(0);
  });

  it('a request head over the proxy’s header bound → ERR_EGRESS_LIMIT, never forwarded', async () => {
    const get = `GET http://127.0.0.1:${listed.port}/ HTTP/1.1\r\nHost: x\r\nX-Exfil: ${'e'.repeat(40_000)}\r\n\r\n`;
    const denials = await direct([`127.0.0.1:${listed.port}`], {}, [get]);
    expect(denials[0]).toMatchObject({ code: 'ERR_EGRESS_LIMIT' });
    expect(listed.connections).toBe(0);
  });

  it('an answer’s status line and headers count toward the bytes received → ERR_EGRESS_LIMIT', async () => {
    const r = await run([CURL, '-sS', `http://127.0.0.1:${bigHead.port}/`], [`127.0.0.1:${bigHead.port}`], {
      egressLimits: { maxBytesIn: 1000 },
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_LIMIT' });
  });

  it('idle connections count: more accepted sockets than the connection cap → ERR_EGRESS_LIMIT', async () => {
    // Four sockets that never send a request (the first could be the readiness probe).
    const denials = await direct([`127.0.0.1:${listed.port}`], { maxConnections: 2 }, ['', '', '', '']);
    expect(denials[0]).toMatchObject({ code: 'ERR_EGRESS_LIMIT' });
    expect(listed.connections).toBe(0);
  });
});

describe('egress proxy: fail closed', () => {
  it('network without an egress allowlist is refused: the host network is never shared', async () => {
    const r = await run([CURL, '-sS', `http://127.0.0.1:${listed.port}/`], []);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    expect(listed.connections).toBe(0);
  });

  it('an allowlist entry that is not host:port → ERR_SANDBOX_UNAVAILABLE, nothing runs', async () => {
    for (const bad of [
      'example.com',
      'https://example.com:443',
      '*.example.com:443',
      '127.0.0.1:0',
      'a b:80',
    ]) {
      const r = await run([CURL, '-sS', `http://127.0.0.1:${listed.port}/`], [bad]);
      expect(r, bad).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    }
    expect(listed.connections).toBe(0);
  });

  it('no forwarder inside (node missing) → ERR_SANDBOX_UNAVAILABLE and the tool never runs', async () => {
    const r = await run([CURL, '-sS', `http://127.0.0.1:${listed.port}/`], [`127.0.0.1:${listed.port}`], {
      nodePath: '/usr/bin/nonexistent-node',
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    expect(listed.connections).toBe(0);
  });

  it('the proxy variables cannot be overridden by a spec', async () => {
    const r = await run(
      [CURL, '-sS', `http://127.0.0.1:${unlisted.port}/`],
      [`127.0.0.1:${listed.port}`],
      {},
      {
        env: { HTTP_PROXY: 'http://127.0.0.1:1' },
      },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(unlisted.connections).toBe(0);
  });

  it('an upstream status outside 200–599 (099) → ERR_EGRESS_DENIED, the call ended, the proxy still serving', async () => {
    const r = await run(
      [CURL, '-sS', `http://127.0.0.1:${badStatus.port}/`],
      [`127.0.0.1:${badStatus.port}`],
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect((r as Deny).reason).toContain('malformed response');
    // The process survived: the next call is served normally.
    const next = exited(
      await run([CURL, '-sS', `http://127.0.0.1:${listed.port}/`], [`127.0.0.1:${listed.port}`]),
    );
    expect(next.stdout.toString()).toBe('hello from the listed service\n');
  });

  it('through the command adapter: a denied egress is the call’s deny, output withheld', async () => {
    const adapter = createCommandAdapter({ sandbox: createBwrapSandbox() });
    const r = await adapter.run({
      tool: 'fetch',
      spec: { type: 'command', argv: [CURL, '-sS', '{url}'] },
      params: { url: `http://127.0.0.1:${unlisted.port}/` },
      constraints: constraints({ network: true, egress: [`127.0.0.1:${listed.port}`] }),
      signal: new AbortController().signal,
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(unlisted.connections).toBe(0);
  });
});
