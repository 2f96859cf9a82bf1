/**
 * HTTPS upstreams for the tests, on loopback only: a TLS front (node:https) that relays every
 * request to a real Streamable HTTP MCP server (the official server-everything of
 * mcp-http-upstream.ts) and records each request it received, so a test sees that nothing
 * reached it; optionally it requires a client certificate (mutual TLS) or a bearer token it
 * verifies itself (a JWT from the test's identity provider, its audience the front's url). It
 * also answers `GET /plain` itself, for the declarative `http` tool. Certificates come from the
 * repository's development PKI (src/transport/dev-pki.ts, what `failclosed certs` writes): a CA,
 * a server certificate for 127.0.0.1, one naming another host, two whose common name spells that
 * host while their subject alternative names do not (none, or only an IP address), an expired
 * one, one from another CA, and a client certificate.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCa, issueCert } from '../../src/transport/index.js';

/** PEM text of one certificate and its key. */
export interface Pair {
  readonly cert: string;
  readonly key: string;
}

/** The test PKI: two CAs and the certificates the tests present. */
export interface TestPki {
  /** The CA the bundle pins. */
  readonly ca: string;
  /** A CA nobody pins. */
  readonly otherCa: string;
  /** For 127.0.0.1 under `ca`. */
  readonly server: Pair;
  /** For upstream.example only, under `ca`. */
  readonly wrongHost: Pair;
  /** Under `ca`, naming no host or IP address; its common name is upstream.example. */
  readonly cnOnly: Pair;
  /** Under `ca`, naming only 127.0.0.1; its common name is upstream.example. */
  readonly ipOnly: Pair;
  /** For 127.0.0.1 under `ca`, expired yesterday. */
  readonly expired: Pair;
  /** For 127.0.0.1 under `otherCa`. */
  readonly foreign: Pair;
  /** A client certificate under `ca`. */
  readonly client: Pair;
  /** A client certificate under `otherCa`. */
  readonly foreignClient: Pair;
  remove(): void;
}

const DAY_MS = 86_400_000;

async function issue(dir: string, options: Parameters<typeof issueCert>[1]): Promise<Pair> {
  const r = await issueCert(dir, options);
  return { cert: readFileSync(r.cert, 'utf8'), key: readFileSync(r.key, 'utf8') };
}

/** Creates the test PKI in a temporary directory. */
export async function createTestPki(): Promise<TestPki> {
  const root = mkdtempSync(join(tmpdir(), 'fc-upstream-pki-'));
  const a = join(root, 'a');
  const b = join(root, 'b');
  const ca = await createDevCa(a);
  const other = await createDevCa(b);
  const server = await issue(a, { role: 'gate', name: 'upstream', hosts: ['127.0.0.1'] });
  const wrongHost = await issue(a, { role: 'gate', name: 'wrong-host', hosts: ['upstream.example'] });
  // The file name is the common name: issued one after the other, each read before the next.
  const cnOnly = await issue(a, { role: 'gate', name: 'upstream.example', hosts: [] });
  const ipOnly = await issue(a, { role: 'gate', name: 'upstream.example', hosts: ['127.0.0.1'] });
  const expired = await issue(a, {
    role: 'gate',
    name: 'expired',
    hosts: ['127.0.0.1'],
    notBefore: Date.now() - 3 * DAY_MS,
    days: 2,
  });
  const foreign = await issue(b, { role: 'gate', name: 'foreign', hosts: ['127.0.0.1'] });
  const client = await issue(a, { role: 'client', name: 'gate-client' });
  const foreignClient = await issue(b, { role: 'client', name: 'foreign-client' });
  return {
    ca: readFileSync(ca.caCert, 'utf8'),
    otherCa: readFileSync(other.caCert, 'utf8'),
    server,
    wrongHost,
    cnOnly,
    ipOnly,
    expired,
    foreign,
    client,
    foreignClient,
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** What a front requires of its clients. */
export interface FrontOptions {
  /** The certificate it presents. */
  readonly pair: Pair;
  /** Require a client certificate under this CA (mutual TLS). */
  readonly clientCa?: string;
  /** Require `Authorization: Bearer <token>` for which this resolves true. */
  readonly bearer?: (token: string, url: string) => Promise<boolean>;
}

/** A running HTTPS front. */
export interface HttpsFront {
  readonly url: string;
  readonly port: number;
  /** Headers of every HTTP request that reached it (past TLS). */
  readonly requests: IncomingHttpHeaders[];
  /** Requests refused for their bearer. */
  readonly refused: number;
  close(): Promise<void>;
}

/** Starts an HTTPS front on 127.0.0.1 that relays to the MCP server at `targetPort`. */
export async function startHttpsFront(targetPort: number, options: FrontOptions): Promise<HttpsFront> {
  const requests: IncomingHttpHeaders[] = [];
  let refused = 0;
  let url = '';
  const server: Server = createServer(
    {
      cert: options.pair.cert,
      key: options.pair.key,
      ...(options.clientCa === undefined
        ? {}
        : { ca: options.clientCa, requestCert: true, rejectUnauthorized: true }),
    },
    (req, res) => {
      requests.push(req.headers);
      void (async () => {
        if (options.bearer !== undefined) {
          const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
          if (m === null || !(await options.bearer(m[1] ?? '', url).catch(() => false))) {
            refused += 1;
            res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
            return;
          }
        }
        if (req.url === '/plain') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"plain":true}');
          return;
        }
        const headers = { ...req.headers, host: `127.0.0.1:${targetPort}` };
        delete headers.authorization;
        delete headers.connection;
        const up = httpRequest(
          { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers, agent: false },
          (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        up.on('error', () => res.destroy());
        req.pipe(up);
      })();
    },
  );
  // A client refused in the handshake is not an error of the test.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  url = `https://127.0.0.1:${port}/mcp`;
  return {
    url,
    port,
    requests,
    get refused() {
      return refused;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
