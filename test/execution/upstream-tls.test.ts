/**
 * https upstreams and OAuth client credentials to an upstream (docs/mcp.md "HTTP upstreams",
 * docs/adapters.md; OE-INV-011 egress, OE-INV-009 secrets, FC-INV-4). The upstream is the
 * official server-everything behind a real TLS front (test/support/https-upstream.ts) whose
 * certificates come from the repository's development PKI; the token endpoint is a real
 * authorization server (`oidc-provider`, client credentials, RFC 8707 resource indicators).
 * Every refusal is asserted by its code and by the upstream not having received a request.
 */
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:tls';
import type { Server, ServerResponse } from 'node:http';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEnvSecretResolver,
  createHttpAdapter,
  createMcpHttpAdapter,
  createUpstreamTokenCache,
  listMcpHttpTools,
} from '../../src/execution/index.js';
import type { ExecutionConstraints, ToolAdapter } from '../../src/execution/index.js';
import { connectVerifiedTls } from '../../src/execution/adapters/upstream-tls.js';
import { parseEgressDestination, pinMcpDefinition } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { startServerEverything } from '../support/mcp-http-upstream.js';
import type { RunningEverything } from '../support/mcp-http-upstream.js';
import { createTestPki, startHttpsFront } from '../support/https-upstream.js';
import type { HttpsFront, TestPki } from '../support/https-upstream.js';
import { startClientCredentialsIdp } from '../support/client-credentials-idp.js';
import type { ClientCredentialsIdp } from '../support/client-credentials-idp.js';

const CLIENT_SECRET = 'cc-secret-5e1d0a';

let everything: RunningEverything;
let pki: TestPki;
let idp: ClientCredentialsIdp;
let good: HttpsFront;
let wrongHost: HttpsFront;
let expired: HttpsFront;
let foreign: HttpsFront;
let mutual: HttpsFront;
let guarded: HttpsFront;
let echo: { definition: JsonObject; sha256: string };
/** The guarded upstream refuses every bearer while set (a revoked token). */
let refuseBearers = false;

const grants = (
  ports: readonly number[],
  over: Partial<ExecutionConstraints> = {},
): ExecutionConstraints => ({
  timeout_ms: 10_000,
  max_output_bytes: 1024 * 1024,
  memory_bytes: 2 ** 31,
  network: true,
  egress: ports.map((p) => `127.0.0.1:${p}`),
  fs_read: [],
  fs_write: [],
  max_cost_cents: null,
  ...over,
});

const adapter = createMcpHttpAdapter({ allowLoopback: true });

function secrets(extra: Record<string, string> = {}) {
  return createEnvSecretResolver({
    env: {
      FC_SECRET_UP_CERT: pki.client.cert,
      FC_SECRET_UP_KEY: pki.client.key,
      FC_SECRET_FOREIGN_CERT: pki.foreignClient.cert,
      FC_SECRET_FOREIGN_KEY: pki.foreignClient.key,
      FC_SECRET_UP_TOKEN: 'static-token-91b2',
      FC_SECRET_CC_SECRET: CLIENT_SECRET,
      ...extra,
    },
  });
}

/** Calls server-everything's `echo` at `front` with the given spec additions. */
function callEcho(
  front: HttpsFront,
  spec: Record<string, unknown>,
  options: {
    a?: ToolAdapter;
    ports?: readonly number[];
    extraSecrets?: Record<string, string>;
    timeoutMs?: number;
  } = {},
) {
  return (options.a ?? adapter).run({
    tool: 'up.echo',
    spec: {
      type: 'mcp',
      server: 'up',
      url: front.url,
      tool: 'echo',
      definition: echo.definition,
      definition_sha256: echo.sha256,
      ...spec,
    },
    params: { message: 'over tls' },
    constraints: grants(
      options.ports ?? [front.port],
      options.timeoutMs === undefined ? {} : { timeout_ms: options.timeoutMs },
    ),
    secrets: secrets(options.extraSecrets),
    signal: new AbortController().signal,
  });
}

beforeAll(async () => {
  [everything, pki] = await Promise.all([startServerEverything(), createTestPki()]);
  idp = await startClientCredentialsIdp({ id: 'failclosed-gate', secret: CLIENT_SECRET });
  const at = everything.port;
  [good, wrongHost, expired, foreign, mutual, guarded] = await Promise.all([
    startHttpsFront(at, { pair: pki.server }),
    startHttpsFront(at, { pair: pki.wrongHost }),
    startHttpsFront(at, { pair: pki.expired }),
    startHttpsFront(at, { pair: pki.foreign }),
    startHttpsFront(at, { pair: pki.server, clientCa: pki.ca }),
    startHttpsFront(at, {
      pair: pki.server,
      bearer: async (token, url) => !refuseBearers && (await idp.verify(token, url)),
    }),
  ]);
  const listed = await listMcpHttpTools(
    { url: good.url, tls: { ca: pki.ca } },
    grants([good.port]),
    undefined,
    { allowLoopback: true },
  );
  if ('outcome' in listed) throw new Error(`${listed.code}: ${listed.reason}`);
  echo = pinMcpDefinition(listed.find((t) => t['name'] === 'echo')!);
}, 60_000);

afterAll(async () => {
  await Promise.all(
    [good, wrongHost, expired, foreign, mutual, guarded].map((f) => f?.close()).concat([everything?.stop()]),
  );
  await idp?.close();
  pki?.remove();
});

const executed = { outcome: 'ok', result: { content: [{ type: 'text', text: 'Echo: over tls' }] } };

describe('https upstream: the certificate is verified before anything is sent', () => {
  it('with the pinned CA, the pinned tool is listed and called over TLS', async () => {
    const before = good.requests.length;
    expect(await callEcho(good, { tls: { ca: pki.ca } })).toEqual(executed);
    expect(good.requests.length).toBeGreaterThan(before);
  });

  it("without a pinned CA, Node's trusted roots apply: a private CA's certificate → ERR_UPSTREAM_TLS, nothing sent", async () => {
    const before = good.requests.length;
    const r = await callEcho(good, { headers: { authorization: { secret: 'UP_TOKEN', prefix: 'Bearer ' } } });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    expect(good.requests.length).toBe(before);
  });

  it('a certificate from another CA → ERR_UPSTREAM_TLS naming the chain; no request, no secret header left', async () => {
    const r = await callEcho(foreign, {
      tls: { ca: pki.ca },
      headers: { authorization: { secret: 'UP_TOKEN', prefix: 'Bearer ' } },
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    if (r.outcome === 'deny') expect(r.reason).toContain('does not chain to the trusted CA');
    expect(foreign.requests).toHaveLength(0);
  });

  it('not one byte of application data reaches a server whose certificate does not verify', async () => {
    // A raw TLS server: whatever a client writes after the handshake is counted here.
    let received = 0;
    const raw = createTlsServer({ cert: pki.foreign.cert, key: pki.foreign.key }, (socket) => {
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => undefined);
    });
    raw.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as AddressInfo).port;
    try {
      const front = { url: `https://127.0.0.1:${port}/mcp`, port } as HttpsFront;
      const mcp = await callEcho(front, {
        tls: { ca: pki.ca },
        headers: { authorization: { secret: 'UP_TOKEN', prefix: 'Bearer ' } },
      });
      expect(mcp).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
      const post = await createHttpAdapter().run({
        tool: 'raw.post',
        spec: {
          type: 'http',
          method: 'POST',
          url: `https://127.0.0.1:${port}/submit`,
          headers: { authorization: 'Bearer {secret:UP_TOKEN}' },
          body: { text: '{text}' },
          tls: { ca: pki.ca },
        },
        params: { text: 'never sent' },
        constraints: grants([port]),
        secrets: secrets(),
        signal: new AbortController().signal,
      });
      expect(post).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
      expect(received).toBe(0);
    } finally {
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });

  it('a certificate for another host → ERR_UPSTREAM_TLS naming the host check', async () => {
    const r = await callEcho(wrongHost, { tls: { ca: pki.ca } });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    if (r.outcome === 'deny') expect(r.reason).toContain('does not name the host');
    expect(wrongHost.requests).toHaveLength(0);
  });

  it('an expired certificate → ERR_UPSTREAM_TLS naming its validity', async () => {
    const r = await callEcho(expired, { tls: { ca: pki.ca } });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    if (r.outcome === 'deny') expect(r.reason).toContain('expired');
    expect(expired.requests).toHaveLength(0);
  });

  it('the listing for pin-mcp uses the same trust: another CA → ERR_UPSTREAM_TLS', async () => {
    const listed = await listMcpHttpTools(
      { url: foreign.url, tls: { ca: pki.ca } },
      grants([foreign.port]),
      undefined,
      {
        allowLoopback: true,
      },
    );
    expect(listed).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    expect(foreign.requests).toHaveLength(0);
  });

  it('a tls member on an http url, or a malformed CA, is refused before connecting', async () => {
    const plain = { ...good, url: good.url.replace('https:', 'http:') };
    expect(await callEcho(plain, { tls: { ca: pki.ca } })).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(await callEcho(good, { tls: { ca: 'not a certificate' } })).toMatchObject({
      code: 'ERR_ADAPTER_UNAVAILABLE',
    });
    expect(await callEcho(good, { tls: { ca: pki.ca, client_cert_ref: 'UP_CERT' } })).toMatchObject({
      code: 'ERR_ADAPTER_UNAVAILABLE',
    });
  });
});

describe('https upstream: the host is read from the subject alternative names only (RFC 9525)', () => {
  /**
   * A raw TLS server presenting `pair`, dialled as `upstream.example` at 127.0.0.1 the way every
   * upstream client of the Execution Layer connects (MCP, the http tool, OAuth token endpoints:
   * the url's host is the name checked, the address the one resolved before). An upstream named
   * by a DNS name is reached only at a public address, so the adapters cannot be pointed at a
   * loopback front by name: the connection they all share is dialled here. Counts every byte a
   * client writes after the handshake.
   */
  async function dialAsUpstreamExample(pair: { cert: string; key: string }, write: string) {
    let received = 0;
    const raw = createTlsServer({ cert: pair.cert, key: pair.key }, (socket) => {
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => undefined);
    });
    raw.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as AddressInfo).port;
    try {
      const r = await connectVerifiedTls({
        to: parseEgressDestination(`upstream.example:${port}`)!,
        address: '127.0.0.1',
        material: { ca: [pki.ca] },
        signal: new AbortController().signal,
      });
      if ('outcome' in r) return { deny: r, received };
      // Verified: the caller's request goes out now (the server counts it).
      await new Promise<void>((done) => r.end(write, () => done()));
      await new Promise<void>((done) => r.once('close', () => done()));
      return { deny: undefined, received };
    } finally {
      raw.close();
    }
  }

  it('a certificate naming upstream.example in its SANs verifies (the dial itself is sound)', async () => {
    const r = await dialAsUpstreamExample(pki.wrongHost, 'GET / HTTP/1.1\r\n\r\n');
    expect(r.deny).toBeUndefined();
    expect(r.received).toBeGreaterThan(0);
  });

  it('no host in its SANs, the common name upstream.example → ERR_UPSTREAM_TLS, nothing written', async () => {
    const r = await dialAsUpstreamExample(pki.cnOnly, 'never sent');
    expect(r.deny).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    expect(r.deny?.reason).toContain('does not name the host');
    expect(r.received).toBe(0);
  });

  it('only an IP address in its SANs, the common name upstream.example → ERR_UPSTREAM_TLS, nothing written', async () => {
    const r = await dialAsUpstreamExample(pki.ipOnly, 'never sent');
    expect(r.deny).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    expect(r.deny?.reason).toContain('does not name the host');
    expect(r.received).toBe(0);
  });

  it('the IP-only certificate still verifies for its address: the url 127.0.0.1 reaches the tool', async () => {
    const front = await startHttpsFront(everything.port, { pair: pki.ipOnly });
    try {
      expect(await callEcho(front, { tls: { ca: pki.ca } })).toEqual(executed);
    } finally {
      await front.close();
    }
  });
});

describe('https upstream: mutual TLS', () => {
  it('an upstream requiring a client certificate executes only with it', async () => {
    const without = await callEcho(mutual, { tls: { ca: pki.ca } });
    expect(without).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TLS' });
    // TLS 1.3: the server refuses a client certificate after the client's handshake ended; its
    // alert is ERR_UPSTREAM_TLS, a reset that overtakes the alert ERR_TOOL_FAILED. Either way the
    // request never reaches the server's HTTP layer.
    const foreignClient = await callEcho(mutual, {
      tls: { ca: pki.ca, client_cert_ref: 'FOREIGN_CERT', client_key_ref: 'FOREIGN_KEY' },
    });
    expect(foreignClient.outcome === 'deny' ? foreignClient.code : 'ran').toMatch(
      /^(ERR_UPSTREAM_TLS|ERR_TOOL_FAILED)$/,
    );
    expect(mutual.requests).toHaveLength(0);
    const withCert = await callEcho(mutual, {
      tls: { ca: pki.ca, client_cert_ref: 'UP_CERT', client_key_ref: 'UP_KEY' },
    });
    expect(withCert).toEqual(executed);
    expect(mutual.requests.length).toBeGreaterThan(0);
  });

  it('an unknown client key reference → ERR_ADAPTER_UNAVAILABLE, never connected', async () => {
    const before = mutual.requests.length;
    const r = await callEcho(mutual, {
      tls: { ca: pki.ca, client_cert_ref: 'UP_CERT', client_key_ref: 'NOPE' },
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(mutual.requests.length).toBe(before);
  });
});

describe('https: the declarative http tool', () => {
  const get = (front: HttpsFront, tls?: Record<string, unknown>) =>
    createHttpAdapter().run({
      tool: 'plain.get',
      spec: {
        type: 'http',
        method: 'GET',
        url: `https://127.0.0.1:${front.port}/plain`,
        ...(tls === undefined ? {} : { tls }),
      },
      params: {},
      constraints: grants([front.port]),
      secrets: secrets(),
      signal: new AbortController().signal,
    });

  it('reaches an https service with the pinned CA, and with mutual TLS', async () => {
    expect(await get(good, { ca: pki.ca })).toEqual({
      outcome: 'ok',
      result: { status: 200, body: { plain: true } },
    });
    expect(
      await get(mutual, { ca: pki.ca, client_cert_ref: 'UP_CERT', client_key_ref: 'UP_KEY' }),
    ).toMatchObject({
      outcome: 'ok',
    });
  });

  it('a TLS fault after the request reached the service is ERR_TOOL_FAILED, never ERR_UPSTREAM_TLS ("nothing was sent")', async () => {
    // A relay in front of the service passes the handshake, then answers a corrupt record in
    // place of the service's response once the request has reached it.
    const base = good.requests.length;
    const sockets: { destroy(): void }[] = [];
    const relay = createNetServer((c) => {
      const u = netConnect(good.port, '127.0.0.1');
      sockets.push(c, u);
      c.on('error', () => undefined);
      u.on('error', () => undefined);
      c.pipe(u);
      u.on('data', (chunk: Buffer) => {
        if (good.requests.length > base) {
          c.end(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]));
          u.destroy();
        } else c.write(chunk);
      });
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    try {
      const port = (relay.address() as AddressInfo).port;
      const r = await get({ ...good, port }, { ca: pki.ca });
      expect(good.requests.length).toBe(base + 1);
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    } finally {
      for (const x of sockets) x.destroy();
      await new Promise<void>((r) => relay.close(() => r()));
    }
  });

  it('another CA, no pinned CA, or no client certificate → ERR_UPSTREAM_TLS, nothing sent', async () => {
    const before = mutual.requests.length;
    expect(await get(foreign, { ca: pki.ca })).toMatchObject({ code: 'ERR_UPSTREAM_TLS' });
    expect(await get(foreign)).toMatchObject({ code: 'ERR_UPSTREAM_TLS' });
    expect(await get(mutual, { ca: pki.ca })).toMatchObject({ code: 'ERR_UPSTREAM_TLS' });
    expect(foreign.requests).toHaveLength(0);
    expect(mutual.requests.length).toBe(before);
  });
});

describe('OAuth client credentials to an upstream', () => {
  const oauth = (over: Record<string, unknown> = {}) => ({
    token_url: idp.tokenUrl,
    client_id: 'failclosed-gate',
    client_secret_ref: 'CC_SECRET',
    scope: 'mcp',
    ...over,
  });

  it('obtains a token for the upstream (audience = its url), sends it as the bearer, caches it', async () => {
    const a = createMcpHttpAdapter({ allowLoopback: true, tokens: createUpstreamTokenCache() });
    const tokensBefore = idp.tokenRequests;
    const from = guarded.requests.length;
    const ports = [guarded.port, idp.port];
    expect(await callEcho(guarded, { tls: { ca: pki.ca }, oauth: oauth() }, { a, ports })).toEqual(executed);
    expect(await callEcho(guarded, { tls: { ca: pki.ca }, oauth: oauth() }, { a, ports })).toEqual(executed);
    expect(idp.tokenRequests - tokensBefore).toBe(1);
    const seen = guarded.requests.slice(from);
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) {
      const token = /^Bearer (\S+)$/.exec(h.authorization ?? '')?.[1] ?? '';
      expect(await idp.verify(token, guarded.url)).toBe(true);
    }
  });

  it('a token the upstream refuses (401) is dropped: the next call asks the token endpoint again', async () => {
    const a = createMcpHttpAdapter({ allowLoopback: true, tokens: createUpstreamTokenCache() });
    const ports = [guarded.port, idp.port];
    const spec = { tls: { ca: pki.ca }, oauth: oauth() };
    expect(await callEcho(guarded, spec, { a, ports })).toEqual(executed);
    const tokensBefore = idp.tokenRequests;
    refuseBearers = true;
    try {
      expect(await callEcho(guarded, spec, { a, ports })).toMatchObject({ code: 'ERR_TOOL_FAILED' });
    } finally {
      refuseBearers = false;
    }
    expect(idp.tokenRequests).toBe(tokensBefore);
    expect(await callEcho(guarded, spec, { a, ports })).toEqual(executed);
    expect(idp.tokenRequests).toBe(tokensBefore + 1);
  });

  it('calls that miss the cache together share one token request', async () => {
    const a = createMcpHttpAdapter({ allowLoopback: true, tokens: createUpstreamTokenCache() });
    const ports = [guarded.port, idp.port];
    const tokensBefore = idp.tokenRequests;
    const spec = { tls: { ca: pki.ca }, oauth: oauth() };
    const all = await Promise.all([1, 2, 3].map(() => callEcho(guarded, spec, { a, ports })));
    for (const r of all) expect(r).toEqual(executed);
    expect(idp.tokenRequests - tokensBefore).toBe(1);
  });

  it('the cache hands the redactor every token it obtained', async () => {
    const tokens = createUpstreamTokenCache();
    const a = createMcpHttpAdapter({ allowLoopback: true, tokens });
    await callEcho(guarded, { tls: { ca: pki.ca }, oauth: oauth() }, { a, ports: [guarded.port, idp.port] });
    expect(tokens.knownValues()).toHaveLength(1);
    expect(await idp.verify(tokens.knownValues()[0]!, guarded.url)).toBe(true);
  });

  it('without OAuth, the guarding upstream refuses: the static path does not pass by accident', async () => {
    const r = await callEcho(guarded, { tls: { ca: pki.ca } });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
  });

  it('the token endpoint refuses the client (wrong secret) → ERR_UPSTREAM_TOKEN, the upstream saw nothing', async () => {
    const before = guarded.requests.length;
    const r = await callEcho(
      guarded,
      { tls: { ca: pki.ca }, oauth: oauth() },
      {
        a: createMcpHttpAdapter({ allowLoopback: true }),
        ports: [guarded.port, idp.port],
        extraSecrets: { FC_SECRET_CC_SECRET: 'wrong-secret' },
      },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TOKEN' });
    expect(guarded.requests.length).toBe(before);
  });

  it('the token endpoint down or answering garbage → ERR_UPSTREAM_TOKEN, the upstream saw nothing', async () => {
    const garbage: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token_type":"bearer"}');
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    const gPort = (garbage.address() as AddressInfo).port;
    const down: Server = createServer();
    await new Promise<void>((r) => down.listen(0, '127.0.0.1', r));
    const dPort = (down.address() as AddressInfo).port;
    await new Promise<void>((r) => down.close(() => r()));
    try {
      const before = guarded.requests.length;
      for (const port of [gPort, dPort]) {
        const r = await callEcho(
          guarded,
          { tls: { ca: pki.ca }, oauth: oauth({ token_url: `http://127.0.0.1:${port}/token` }) },
          { ports: [guarded.port, port] },
        );
        expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TOKEN' });
      }
      expect(guarded.requests.length).toBe(before);
    } finally {
      await new Promise<void>((r) => garbage.close(() => r()));
    }
  });

  it('a token endpoint that never answers → ERR_TOOL_TIMEOUT at the time limit, the upstream saw nothing', async () => {
    const held: ServerResponse[] = [];
    const hang: Server = createServer((_req, res) => void held.push(res));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const port = (hang.address() as AddressInfo).port;
    try {
      const before = guarded.requests.length;
      const r = await callEcho(
        guarded,
        { tls: { ca: pki.ca }, oauth: oauth({ token_url: `http://127.0.0.1:${port}/token` }) },
        { ports: [guarded.port, port], timeoutMs: 1500 },
      );
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
      expect(held).toHaveLength(1);
      expect(guarded.requests.length).toBe(before);
    } finally {
      hang.closeAllConnections();
      await new Promise<void>((r) => hang.close(() => r()));
    }
  });

  it('a token endpoint off the egress allowlist → ERR_EGRESS_DENIED, neither it nor the upstream reached', async () => {
    const before = guarded.requests.length;
    const tokensBefore = idp.tokenRequests;
    const r = await callEcho(
      guarded,
      { tls: { ca: pki.ca }, oauth: oauth() },
      { a: createMcpHttpAdapter({ allowLoopback: true }), ports: [guarded.port] },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(idp.tokenRequests).toBe(tokensBefore);
    expect(guarded.requests.length).toBe(before);
  });

  it('without the embedding option neither the loopback upstream nor its token endpoint is reached', async () => {
    const strict = createMcpHttpAdapter();
    const tokensBefore = idp.tokenRequests;
    const r = await callEcho(
      guarded,
      { tls: { ca: pki.ca }, oauth: oauth() },
      { a: strict, ports: [guarded.port, idp.port] },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(idp.tokenRequests).toBe(tokensBefore);
  });

  it('OAuth next to a bundle authorization header is a malformed spec', async () => {
    const r = await callEcho(
      guarded,
      { tls: { ca: pki.ca }, oauth: oauth(), headers: { Authorization: 'Bearer x' } },
      { ports: [guarded.port, idp.port] },
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
  });
});
