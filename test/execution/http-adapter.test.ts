/**
 * The declarative `http` adapter against real HTTP servers on 127.0.0.1 (OE-INV-011 egress,
 * OE-INV-009 secrets): the origin is fixed by the spec, parameters fill only the path and query
 * (percent-encoded), secrets only headers and body, the destination must be on the envelope's
 * egress allowlist, responses are capped, redirects are not followed. The servers record every
 * request they receive, so a test sees what was (not) reached.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHttpAdapter } from '../../src/execution/index.js';
import type { ExecutionConstraints, SecretResolver } from '../../src/execution/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { constraints } from './support.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

let api: Server;
let other: Server;
let port = 0;
let otherPort = 0;
let seen: Seen[] = [];
let otherSeen = 0;

beforeAll(async () => {
  api = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: `http://127.0.0.1:${otherPort}/` }).end();
      } else if (req.url?.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(10_000));
      } else if (req.url?.startsWith('/fail')) {
        res.writeHead(500).end('no');
      } else {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ok: true, url: req.url }));
      }
    });
  });
  other = createServer((_, res) => {
    otherSeen += 1;
    res.end('other');
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  port = (api.address() as { port: number }).port;
  otherPort = (other.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((r) => api.close(() => r()));
  await new Promise<void>((r) => other.close(() => r()));
});

beforeEach(() => {
  seen = [];
  otherSeen = 0;
});

const SECRETS: SecretResolver = {
  resolve: (name) => {
    if (name === 'API_TOKEN') return 'tok-123';
    throw new Error('unknown');
  },
  knownValues: () => ['tok-123'],
};

const adapter = createHttpAdapter();

function run(spec: Record<string, unknown>, params: JsonValue, over: Partial<ExecutionConstraints> = {}) {
  return adapter.run({
    tool: 'api',
    spec: { type: 'http', method: 'GET', ...spec },
    params,
    constraints: constraints({ network: true, egress: [`127.0.0.1:${port}`], ...over }),
    secrets: SECRETS,
    signal: new AbortController().signal,
  });
}

describe('http adapter', () => {
  it('fills path and query from parameters, percent-encoded; the host never changes', async () => {
    const r = await run(
      { url: `http://127.0.0.1:${port}/items/{id}?q={q}` },
      { id: '../admin@evil.example:80/x', q: 'a&b=c #' },
    );
    expect(r).toMatchObject({ outcome: 'ok', result: { status: 200, body: { ok: true } } });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe('/items/..%2Fadmin%40evil.example%3A80%2Fx?q=a%26b%3Dc%20%23');
    expect(seen[0]?.headers.host).toBe(`127.0.0.1:${port}`);
    expect(otherSeen).toBe(0);
  });

  it('puts secrets in headers and body, parameters in the JSON body', async () => {
    const r = await run(
      {
        method: 'POST',
        url: `http://127.0.0.1:${port}/post`,
        headers: { Authorization: 'Bearer {secret:API_TOKEN}', 'X-Who': '{who}' },
        body: { who: '{who}', count: '{count}', note: 'hi {who}' },
      },
      { who: 'ann', count: 3 },
    );
    expect(r).toMatchObject({ outcome: 'ok', result: { status: 200 } });
    expect(seen[0]?.headers.authorization).toBe('Bearer tok-123');
    expect(seen[0]?.headers['x-who']).toBe('ann');
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual({ who: 'ann', count: 3, note: 'hi ann' });
  });

  it('a destination not on the envelope allowlist → ERR_EGRESS_DENIED, nothing sent', async () => {
    const r = await run({ url: `http://127.0.0.1:${otherPort}/` }, {});
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    const noNetwork = await run({ url: `http://127.0.0.1:${port}/` }, {}, { network: false });
    expect(noNetwork).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(otherSeen).toBe(0);
    expect(seen).toHaveLength(0);
  });

  it('a listed name resolving to a non-public address → ERR_EGRESS_DENIED, nothing sent', async () => {
    const r = await run({ url: `http://localhost:${port}/` }, {}, { egress: [`localhost:${port}`] });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(seen).toHaveLength(0);
  });

  it('a URL whose origin is templated, or a secret in the URL → ERR_ADAPTER_UNAVAILABLE, nothing sent', async () => {
    for (const url of [
      'http://{host}/x',
      `http://127.0.0.1:{port}/x`,
      `http://127.0.0.1:${port}/x?t={secret:API_TOKEN}`,
      `ftp://127.0.0.1:${port}/`,
      `http://user@127.0.0.1:${port}/`,
    ])
      expect(await run({ url }, { host: 'a', port: 1 }), url).toMatchObject({
        code: 'ERR_ADAPTER_UNAVAILABLE',
      });
    expect(seen).toHaveLength(0);
  });

  it('does not follow redirects; a non-2xx answer is ERR_TOOL_FAILED', async () => {
    expect(await run({ url: `http://127.0.0.1:${port}/redirect` }, {})).toMatchObject({
      code: 'ERR_TOOL_FAILED',
    });
    expect(otherSeen).toBe(0);
    expect(await run({ url: `http://127.0.0.1:${port}/fail` }, {})).toMatchObject({
      code: 'ERR_TOOL_FAILED',
    });
  });

  it('a response over max_output_bytes → ERR_TOOL_OUTPUT_LIMIT', async () => {
    expect(await run({ url: `http://127.0.0.1:${port}/big` }, {}, { max_output_bytes: 1000 })).toMatchObject({
      code: 'ERR_TOOL_OUTPUT_LIMIT',
    });
  });

  it('a parameter that is not a scalar, or a header value with a line break → ERR_PARAMS_INVALID', async () => {
    expect(await run({ url: `http://127.0.0.1:${port}/{id}` }, { id: { a: 1 } })).toMatchObject({
      code: 'ERR_PARAMS_INVALID',
    });
    expect(
      await run({ url: `http://127.0.0.1:${port}/`, headers: { 'X-A': '{v}' } }, { v: 'a\r\nX-Injected: 1' }),
    ).toMatchObject({ code: 'ERR_PARAMS_INVALID' });
    expect(seen).toHaveLength(0);
  });

  it('a path parameter that is empty or only dots cannot climb out of the template → ERR_PARAMS_INVALID', async () => {
    const url = `http://127.0.0.1:${port}/api/users/{org}/{id}/profile`;
    for (const params of [
      { org: '..', id: '..' },
      { org: 'a', id: '.' },
      { org: '', id: 'b' },
      { org: 'a', id: '...' },
    ])
      expect(await run({ url }, params), JSON.stringify(params)).toMatchObject({
        code: 'ERR_PARAMS_INVALID',
      });
    expect(seen).toHaveLength(0);
    // Dots inside a value, and dots in the query, stay values.
    expect(await run({ url: `http://127.0.0.1:${port}/a/{x}/b` }, { x: 'v1..2' })).toMatchObject({
      outcome: 'ok',
    });
    expect(await run({ url: `http://127.0.0.1:${port}/a?p={v}` }, { v: '..' })).toMatchObject({
      outcome: 'ok',
    });
    expect(seen.map((r) => r.url)).toEqual(['/a/v1..2/b', '/a?p=..']);
  });
});
