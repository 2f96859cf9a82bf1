/**
 * The egress proxy for sandboxed executors (SPEC §6 Redaction and egress, OE-INV-011,
 * OE-INV-006/024): a tool granted `network` gets no host network at all. Its sandbox keeps a
 * private network namespace with only `lo`; the Execution Layer runs this proxy on a Unix
 * socket in a private host directory bound into the sandbox, and a small forwarder inside the
 * sandbox ({@link EGRESS_FORWARDER}) exposes that socket on `127.0.0.1:3128`, with
 * `HTTP_PROXY`/`HTTPS_PROXY` pointing there. The forwarder starts the tool only after the proxy
 * answered it, so a tool never runs with network it cannot be refused.
 *
 * The proxy speaks HTTP `CONNECT host:port` (any TCP protocol, TLS included, end to end) and
 * plain-HTTP forwarding (`GET http://host:port/path`). Per destination it enforces:
 * - **the allowlist**: exactly one of the envelope's `egress` entries (`host:port`,
 *   `parseEgressDestination`), compared exactly; anything else → `ERR_EGRESS_DENIED`.
 * - **resolution once**: a listed name is resolved once per connection and the connection goes
 *   to that address (no second lookup a rebinding DNS could answer differently). A name that
 *   resolves to a loopback, private, link-local, shared, multicast or reserved address is refused
 *   `ERR_EGRESS_DENIED`: internal destinations must be listed as literal IP addresses.
 * - **no redirects**: the proxy never follows one; a client that follows it asks the proxy again
 *   and the new destination is checked like any other.
 * - **caps per call**: bytes sent and received (payload relayed, both directions) and
 *   connections opened (CONNECT tunnels plus forwarded requests) → `ERR_EGRESS_LIMIT`.
 *
 * Every refusal is a denial of the whole call: the first one is reported through `onDenial`
 * (the sandbox then kills the tool and the call is denied with that code, its destination in
 * the ledgered reason). A proxy that cannot start means no network: the sandbox is not set up
 * (`ERR_SANDBOX_UNAVAILABLE`).
 */
import { lstatSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { lookup } from 'node:dns/promises';
import { BlockList, connect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Writable } from 'node:stream';
import { deny, isIpLiteral, parseEgressDestination } from '../../kernel/index.js';
import type { Deny, EgressDestination } from '../../kernel/index.js';

/** Caps one call's egress (every connection of the call together). */
export interface EgressLimits {
  /** Payload bytes the tool may send (request bodies, tunnelled bytes). Default 1 MiB. */
  readonly maxBytesOut: number;
  /** Payload bytes the tool may receive. Default 16 MiB. */
  readonly maxBytesIn: number;
  /** Connections (tunnels and forwarded requests) the tool may open per call. Default 32. */
  readonly maxConnections: number;
}

/** The defaults of {@link EgressLimits}. */
export const DEFAULT_EGRESS_LIMITS: EgressLimits = Object.freeze({
  maxBytesOut: 1024 * 1024,
  maxBytesIn: 16 * 1024 * 1024,
  maxConnections: 32,
});

/** Where the proxy's socket directory is bound inside the sandbox. */
export const EGRESS_SANDBOX_DIR = '/run/failclosed-egress';
/** The socket's file name in that directory. */
export const EGRESS_SOCKET_NAME = 'proxy.sock';
/** The forwarder's port on the sandbox's own loopback. */
export const EGRESS_PORT = 3128;
/** The origin-form path the forwarder asks before it starts the tool. */
export const EGRESS_READY_PATH = '/.failclosed-egress-ready';
/** The environment a sandbox with egress gets (reserved: a spec cannot set these). */
export const EGRESS_ENV: Readonly<Record<string, string>> = Object.freeze({
  HTTP_PROXY: `http://127.0.0.1:${EGRESS_PORT}`,
  HTTPS_PROXY: `http://127.0.0.1:${EGRESS_PORT}`,
  http_proxy: `http://127.0.0.1:${EGRESS_PORT}`,
  https_proxy: `http://127.0.0.1:${EGRESS_PORT}`,
});

/**
 * The forwarder run inside the sandbox (`node -e`, argv: socket, port, tool argv...): listens on
 * `127.0.0.1:port`, relays each connection to the proxy's socket, asks the proxy for
 * {@link EGRESS_READY_PATH}, and only then starts the tool with its stdio, exiting with its
 * status. If anything fails before the tool starts it exits 125 and the tool never runs.
 */
export const EGRESS_FORWARDER = `'use strict';
const net = require('node:net'), http = require('node:http'), cp = require('node:child_process');
const os = require('node:os');
const [sock, port, ...argv] = process.argv.slice(1);
const fail = () => process.exit(125);
const server = net.createServer((c) => {
  const u = net.connect(sock);
  c.pipe(u); u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
});
server.on('error', fail);
server.listen(Number(port), '127.0.0.1', () => {
  const req = http.get({ socketPath: sock, path: ${JSON.stringify(EGRESS_READY_PATH)} }, (res) => {
    res.resume();
    if (res.statusCode !== 204) return fail();
    const child = cp.spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
    child.on('error', fail);
    child.on('exit', (code, sig) => process.exit(code ?? 128 + (os.constants.signals[sig] ?? 0)));
  });
  req.on('error', fail);
});
`;

/**
 * The Execution Layer's runtime directory for proxy sockets: `<tmpdir>/failclosed-egress-<uid>`,
 * mode 0700, owned by this process's user. Every call's socket directory is created inside it, and
 * the sandbox refuses any `fs_read`/`fs_write` grant that is this directory, inside it or above it
 * (and the same for the temporary directory as a whole), so a tool without `network` cannot bind
 * in and use another concurrent call's proxy (OE-INV-011).
 */
export function egressRuntimeDir(): string {
  return join(tmpdir(), `failclosed-egress-${process.getuid?.() ?? 'user'}`);
}

/** Whether granting `path` would expose `dir` (the same, above it or inside it). */
export function grantOverlaps(path: string, dir: string): boolean {
  return (
    path === '/' || dir === '/' || path === dir || dir.startsWith(`${path}/`) || path.startsWith(`${dir}/`)
  );
}

/** Creates the runtime directory or checks it is ours alone; throws when it is not. */
function ensureRuntimeDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0)
    throw new Error('the egress runtime directory is not private to this process');
}

/** One call's egress proxy. */
export interface EgressProxy {
  /** Host directory holding the socket; bind it at {@link EGRESS_SANDBOX_DIR}. */
  readonly socketDir: string;
  /** The forwarder inside the sandbox reached the proxy (so the tool may have started). */
  ready(): boolean;
  /** The first refusal, once there is one. */
  denial(): Deny | undefined;
  /** Closes the proxy, every connection it holds, and removes its socket directory. */
  close(): Promise<void>;
}

/** Options for {@link startEgressProxy}. */
export interface EgressProxyOptions {
  /** The envelope's `egress` entries. */
  readonly allow: readonly string[];
  readonly limits?: Partial<EgressLimits>;
  /** Called once, with the first refusal. */
  readonly onDenial: (d: Deny) => void;
  /** Where socket directories are created; {@link egressRuntimeDir} by default. */
  readonly runtimeDir?: string;
}

// Addresses a *name* may never resolve to (a literal entry may still name one explicitly).
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** Whether `address` (an IP literal) is loopback, private, link-local, shared, multicast or reserved. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return NON_PUBLIC.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

export { isLoopbackAddress } from '../../kernel/index.js';

/** Only these characters of a destination reach the ledgered reason; anything else is elided. */
function shown(text: string): string {
  return /^[A-Za-z0-9.:[\]-]{1,300}$/.test(text) ? text : '(malformed destination)';
}

/** Validates an allowlist: every entry a `host:port`; undefined when one is not. */
export function parseEgressAllowlist(list: readonly string[]): ReadonlySet<string> | undefined {
  const keys = new Set<string>();
  for (const entry of list) {
    const d = parseEgressDestination(entry);
    if (d === undefined) return undefined;
    keys.add(d.key);
  }
  return keys;
}

/**
 * The one address a listed destination is reached at, or `ERR_EGRESS_DENIED`: a literal IP is
 * used as is; a name is resolved once, and refused when any address it resolves to is not public
 * (list internal hosts by IP). The caller checked the allowlist.
 */
export async function resolveDestination(
  to: EgressDestination,
): Promise<{ readonly to: EgressDestination; readonly address: string } | Deny> {
  if (isIpLiteral(to.host)) return { to, address: to.host };
  try {
    const found = await lookup(to.host, { all: true, verbatim: true });
    const first = found[0];
    if (first === undefined) throw new Error('no address');
    for (const a of found)
      if (NON_PUBLIC.check(a.address, isIP(a.address) === 6 ? 'ipv6' : 'ipv4'))
        return deny('ERR_EGRESS_DENIED', `egress to ${to.key} resolves to a non-public address`);
    return { to, address: first.address };
  } catch {
    return deny('ERR_EGRESS_DENIED', `egress to ${to.key}: the name does not resolve`);
  }
}

const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The proxy's bound on one request's or answer's head (line plus headers), in bytes. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** A request's head must arrive within this; the whole request within {@link REQUEST_TIMEOUT_MS}. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** Bytes of a start line and raw headers as on the wire (`name: value\r\n`). */
function headBytes(line: string, raw: readonly string[]): number {
  let n = Buffer.byteLength(line) + 4;
  for (const part of raw) n += Buffer.byteLength(part) + 2;
  return n;
}

function headersWithout(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1] ?? '');
  }
  return out;
}

/**
 * Starts one call's proxy on a Unix socket in a fresh private directory. Rejects (the caller
 * denies `ERR_SANDBOX_UNAVAILABLE`) when the allowlist is malformed or the socket cannot listen.
 */
export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const allow = parseEgressAllowlist(options.allow);
  if (allow === undefined || allow.size === 0) throw new Error('the egress allowlist is malformed');
  const limits: EgressLimits = { ...DEFAULT_EGRESS_LIMITS, ...options.limits };
  const runtimeDir = options.runtimeDir ?? egressRuntimeDir();
  ensureRuntimeDir(runtimeDir);
  const socketDir = mkdtempSync(join(runtimeDir, 'call-'));
  const sockets = new Set<Duplex>();
  let ready = false;
  let first: Deny | undefined;
  let bytesOut = 0;
  let bytesIn = 0;
  let connections = 0;
  let closed = false;

  const track = <T extends Duplex>(s: T): T => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    if (closed) s.destroy();
    return s;
  };
  const refuse = (d: Deny): void => {
    if (first !== undefined) return;
    first = d;
    options.onDenial(d);
  };

  /** The destination's address, or a refusal; resolves the name exactly once. */
  const admit = async (
    text: string,
  ): Promise<{ readonly to: EgressDestination; readonly address: string } | Deny> => {
    const to = parseEgressDestination(text);
    if (to === undefined || !allow.has(to.key))
      return deny('ERR_EGRESS_DENIED', `egress to ${shown(text)} is not on the allowlist`);
    connections += 1;
    if (connections > limits.maxConnections)
      return deny('ERR_EGRESS_LIMIT', `more than ${limits.maxConnections} egress connections`);
    return resolveDestination(to);
  };

  /** Any fault while handling a connection is a refusal of the call; the connection is cut. */
  const failed = (cut: () => void) => (): void => {
    refuse(deny('ERR_EGRESS_DENIED', 'the egress proxy could not handle a connection'));
    cut();
  };

  /** Relays `from` into `to`, counting against a cap; over it → refusal, both ends destroyed. */
  const relay = (from: Duplex | IncomingMessage, to: Writable, dir: 'out' | 'in', ends: () => void): void => {
    from.on('data', (chunk: Buffer) => {
      if (dir === 'out') bytesOut += chunk.length;
      else bytesIn += chunk.length;
      if (bytesOut > limits.maxBytesOut || bytesIn > limits.maxBytesIn) {
        refuse(
          deny(
            'ERR_EGRESS_LIMIT',
            dir === 'out'
              ? `more than ${limits.maxBytesOut} bytes sent`
              : `more than ${limits.maxBytesIn} bytes received`,
          ),
        );
        ends();
        return;
      }
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
  };

  /** Counts a request's line and headers as sent; false (and a refusal) once over the cap. */
  const headOut = (req: IncomingMessage): boolean => {
    bytesOut += headBytes(`${req.method ?? ''} ${req.url ?? ''} HTTP/1.1`, req.rawHeaders);
    if (bytesOut <= limits.maxBytesOut) return true;
    refuse(deny('ERR_EGRESS_LIMIT', `more than ${limits.maxBytesOut} bytes sent`));
    return false;
  };

  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
  });
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    track(s);
    // Every accepted socket counts (idle ones too): the readiness probe plus one per connection.
    accepted += 1;
    if (accepted > limits.maxConnections + 1) {
      refuse(deny('ERR_EGRESS_LIMIT', `more than ${limits.maxConnections} egress connections`));
      s.destroy();
    }
  });
  server.on('clientError', (err: NodeJS.ErrnoException, s: Duplex) => {
    if (err.code === 'HPE_HEADER_OVERFLOW')
      refuse(deny('ERR_EGRESS_LIMIT', `a request head larger than ${MAX_HEADER_BYTES} bytes`));
    s.destroy();
  });
  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    if (!headOut(req)) {
      client.destroy();
      return;
    }
    void admit(req.url ?? '')
      .then((admitted) => {
        if ('outcome' in admitted) {
          refuse(admitted);
          client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
          return;
        }
        const upstream = track(connect({ host: admitted.address, port: admitted.to.port }));
        const ends = (): void => {
          client.destroy();
          upstream.destroy();
        };
        upstream.on('close', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.once('connect', () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          relay(upstream, client, 'in', ends);
          if (head.length > 0) client.unshift(head);
          relay(client, upstream, 'out', ends);
        });
      })
      .catch(failed(() => client.destroy()));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === EGRESS_READY_PATH && req.method === 'GET') {
      ready = true;
      res.writeHead(204).end();
      return;
    }
    let url: URL | undefined;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = undefined;
    }
    if (url === undefined || url.protocol !== 'http:' || url.username !== '' || url.password !== '') {
      refuse(deny('ERR_EGRESS_DENIED', 'egress request is not an absolute http:// URL without credentials'));
      res.writeHead(403, { 'content-length': '0', connection: 'close' }).end();
      return;
    }
    if (!headOut(req)) {
      res.destroy();
      return;
    }
    const target = `${url.hostname}:${url.port === '' ? '80' : url.port}`;
    void admit(target)
      .then((admitted) => {
        if ('outcome' in admitted) {
          refuse(admitted);
          res.writeHead(403, { 'content-length': '0', connection: 'close' }).end();
          return;
        }
        const pairs: string[] = [];
        const raw = headersWithout(req.rawHeaders);
        for (let i = 0; i + 1 < raw.length; i += 2)
          if ((raw[i] ?? '').toLowerCase() !== 'host') pairs.push(raw[i] ?? '', raw[i + 1] ?? '');
        pairs.push('Host', url.host, 'Connection', 'close');
        const out = httpRequest({
          host: admitted.address,
          port: admitted.to.port,
          method: req.method,
          path: `${url.pathname}${url.search}`,
          headers: pairs,
          setHost: false,
          agent: false,
          maxHeaderSize: MAX_HEADER_BYTES,
        });
        const ends = (): void => {
          out.destroy();
          res.destroy();
          req.destroy();
        };
        out.on('socket', (socket: Socket) => track(socket));
        out.on('error', () => res.destroy());
        out.on('response', (answer: IncomingMessage) => {
          track(answer.socket);
          bytesIn += headBytes(`HTTP/1.1 000 ${answer.statusMessage ?? ''}`, answer.rawHeaders);
          if (bytesIn > limits.maxBytesIn) {
            refuse(deny('ERR_EGRESS_LIMIT', `more than ${limits.maxBytesIn} bytes received`));
            ends();
            return;
          }
          const status = answer.statusCode ?? 0;
          // An answer the proxy cannot pass on as it came (a status outside 200–599, or a header
          // Node refuses to write) ends the call: 502 to the tool, a refusal, both ends cut.
          const malformed = (): void => {
            refuse(deny('ERR_EGRESS_DENIED', `egress to ${admitted.to.key} answered a malformed response`));
            if (!res.headersSent) res.writeHead(502, { 'content-length': '0', connection: 'close' }).end();
            ends();
          };
          if (!Number.isInteger(status) || status < 200 || status > 599) {
            malformed();
            return;
          }
          try {
            res.writeHead(status, answer.statusMessage, headersWithout(answer.rawHeaders));
          } catch {
            malformed();
            return;
          }
          relay(answer, res, 'in', ends);
        });
        relay(req, out, 'out', ends);
      })
      .catch(failed(() => res.destroy()));
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(join(socketDir, EGRESS_SOCKET_NAME), () => resolve());
  }).catch((err: unknown) => {
    rmSync(socketDir, { recursive: true, force: true });
    throw err;
  });

  return {
    socketDir,
    ready: () => ready,
    denial: () => first,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(socketDir, { recursive: true, force: true });
    },
  };
}
