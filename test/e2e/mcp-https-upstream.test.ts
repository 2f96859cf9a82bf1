/**
 * https MCP upstreams behind the gateway, pinned and called as an operator would (docs/mcp.md
 * "HTTP upstreams"; OE-INV-009/011, FC-INV-4): the official server-everything behind real TLS
 * fronts whose certificates come from the development PKI, one requiring a client certificate
 * (mutual TLS), one requiring a bearer from a real authorization server (`oidc-provider`, client
 * credentials, its audience the upstream's url). `failclosed policy pin-mcp --url https://…
 * --ca … [--client-cert-ref … --client-key-ref …] [--oauth-…]` lists each under that trust and
 * writes the tool files; the bundle is built and activated with the CLI; the official SDK client
 * calls through the `failclosed mcp` stdio relay. Refusals are asserted by code, by their ledger
 * record, and by the upstream not having received a request.
 */
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { runCli } from '../../src/cli/run.js';
import { announceServer, initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { startServerEverything } from '../support/mcp-http-upstream.js';
import type { RunningEverything } from '../support/mcp-http-upstream.js';
import { createTestPki, startHttpsFront } from '../support/https-upstream.js';
import type { HttpsFront, TestPki } from '../support/https-upstream.js';
import { startClientCredentialsIdp } from '../support/client-credentials-idp.js';
import type { ClientCredentialsIdp } from '../support/client-credentials-idp.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const CLIENT_SECRET = 'cc-secret-e2e-77f0';

let work: string;
let dir: string;
let src: string;
let instance: EmbeddedInstance;
let client: Client;
let everything: RunningEverything;
let pki: TestPki;
let idp: ClientCredentialsIdp;
let mutual: HttpsFront;
let guarded: HttpsFront;
let foreign: HttpsFront;
let caFile: string;
const runs = new Map<string, number>();

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env,
  });
  return { code, out: out.join(''), err: err.join('') };
}

const pin = (server: string, url: string, extra: string[], env: Record<string, string> = {}) =>
  cli(
    [
      'policy',
      'pin-mcp',
      src,
      '--server',
      server,
      '--url',
      url,
      '--ca',
      caFile,
      '--only',
      'echo',
      '--allow-loopback',
      ...extra,
    ],
    env,
  );

const oauthFlags = (secretRef: string) => [
  '--oauth-token-url',
  idp.tokenUrl,
  '--oauth-client-id',
  'failclosed-gate',
  '--oauth-client-secret-ref',
  secretRef,
  '--oauth-scope',
  'mcp',
];

type Answer = { isError?: boolean; structuredContent?: Record<string, unknown>; _meta?: unknown };

async function call(name: string, args: Record<string, unknown>): Promise<Answer> {
  return (await client.callTool({ name, arguments: args })) as Answer;
}

async function ledgerFor(requestId: string): Promise<{ type: string; payload: Record<string, unknown> }[]> {
  const l = instance.core.ledger;
  const all = (await l.store.readRange(0, l.size())) as unknown as {
    type: string;
    request_id: string;
    payload: Record<string, unknown>;
  }[];
  return all.filter((e) => e.request_id === requestId);
}

const requestIdOf = (r: Answer): string =>
  (r._meta as Record<string, Record<string, string>> | undefined)?.['failclosed.dev/call']?.['request_id'] ??
  (r.structuredContent?.['request_id'] as string);

beforeAll(async () => {
  work = realpathSync(mkdtempSync('/var/tmp/fc-e2e-mcp-https-'));
  dir = join(work, 'data');
  src = join(work, 'policy');
  [everything, pki] = await Promise.all([startServerEverything(), createTestPki()]);
  idp = await startClientCredentialsIdp({ id: 'failclosed-gate', secret: CLIENT_SECRET });
  [mutual, guarded, foreign] = await Promise.all([
    startHttpsFront(everything.port, { pair: pki.server, clientCa: pki.ca }),
    startHttpsFront(everything.port, { pair: pki.server, bearer: (t, url) => idp.verify(t, url) }),
    startHttpsFront(everything.port, { pair: pki.foreign }),
  ]);
  caFile = join(work, 'upstream-ca.pem');
  writeFileSync(caFile, pki.ca);
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'mcp-https-upstreams.cedar'),
    '@reason("the pinned https upstream tools")\npermit (principal, action in [Action::"secure.echo", Action::"issued.echo", Action::"refused.echo"], resource);\n',
  );
  await initDataDir(dir);
  // The data directory's secrets: the client certificate and key, the OAuth client secret.
  const secrets = join(dir, 'secrets.json');
  const values: Record<string, string> = {
    UP_CERT: pki.client.cert,
    UP_KEY: pki.client.key,
    CC_SECRET: CLIENT_SECRET,
  };
  writeFileSync(secrets, JSON.stringify(values), { mode: 0o600 });
  for (const [server, url, extra, env] of [
    ['secure', mutual.url, ['--client-cert-ref', 'UP_CERT', '--client-key-ref', 'UP_KEY'], {}],
    ['issued', guarded.url, oauthFlags('CC_SECRET'), {}],
    // Pinned while CC_STALE holds the right secret; the Execution Layer will hold a stale one.
    ['refused', guarded.url, oauthFlags('CC_STALE'), { FC_SECRET_CC_STALE: CLIENT_SECRET }],
  ] as const) {
    const r = await pin(server, url, [...extra], { ...env });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  }
  writeFileSync(secrets, JSON.stringify({ ...values, CC_STALE: 'rotated-away' }), { mode: 0o600 });
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    allowLoopbackMcpUpstreams: true,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
  announceServer(dir, instance.url);
  const file = join(work, 'bundle.json');
  const built = await cli(['policy', 'build', src, '--out', file]);
  expect(built.err).toBe('');
  expect(built.code).toBe(0);
  expect((await cli(['policy', 'activate', file])).code).toBe(0);
  client = new Client({ name: 'fc-test-mcp-https', version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp', '--data', dir, '--client', 'demo-agent'],
      stderr: 'pipe',
    }),
  );
}, 120_000);

afterAll(async () => {
  await client?.close();
  await instance?.close();
  await Promise.all([mutual?.close(), guarded?.close(), foreign?.close(), everything?.stop()]);
  await idp?.close();
  pki?.remove();
  rmSync(work, { recursive: true, force: true });
});

describe('policy pin-mcp --url https://… --ca', () => {
  it('writes the pinned CA into the tool file, the client certificate and key as references only', () => {
    const spec = JSON.parse(readFileSync(join(src, 'tools', 'secure.echo.json'), 'utf8')) as {
      adapter: Record<string, unknown>;
    };
    expect(spec.adapter).toMatchObject({
      url: mutual.url,
      tls: { ca: pki.ca, client_cert_ref: 'UP_CERT', client_key_ref: 'UP_KEY' },
      limits: { network: true, egress: [`127.0.0.1:${mutual.port}`] },
    });
    expect(JSON.stringify(spec)).not.toContain('PRIVATE KEY');
  });

  it('writes the OAuth declaration, the token endpoint on the egress allowlist, the secret a reference', () => {
    const text = readFileSync(join(src, 'tools', 'issued.echo.json'), 'utf8');
    const spec = JSON.parse(text) as { adapter: Record<string, unknown> };
    expect(spec.adapter).toMatchObject({
      oauth: {
        token_url: idp.tokenUrl,
        client_id: 'failclosed-gate',
        client_secret_ref: 'CC_SECRET',
        scope: 'mcp',
      },
      limits: { egress: [`127.0.0.1:${guarded.port}`, `127.0.0.1:${idp.port}`] },
    });
    expect(text).not.toContain(CLIENT_SECRET);
  });

  it('lists under the same trust: a certificate from another CA → ERR_UPSTREAM_TLS, nothing written', async () => {
    const r = await pin('foreign', foreign.url, []);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ERR_UPSTREAM_TLS/);
    expect(existsSync(join(src, 'tools', 'foreign.echo.json'))).toBe(false);
    expect(foreign.requests).toHaveLength(0);
  });
});

describe('policy pin-mcp trust options: misuse is refused before anything is listed', () => {
  it.each([
    ['a client certificate without its key', ['--client-cert-ref', 'UP_CERT'], 'go together'],
    ['a CA file holding a key', ['--ca', 'KEYFILE'], 'PEM certificates only'],
    [
      'OAuth without its token endpoint',
      ['--oauth-client-id', 'x', '--oauth-client-secret-ref', 'CC_SECRET'],
      'needed together',
    ],
  ])('%s', async (_, extra, expected) => {
    const keyFile = join(work, 'not-a-ca.pem');
    writeFileSync(keyFile, pki.client.key, { mode: 0o600 });
    const from = mutual.requests.length;
    const args = extra.map((a) => (a === 'KEYFILE' ? keyFile : a));
    const r = await cli([
      'policy',
      'pin-mcp',
      src,
      '--server',
      'misused',
      '--url',
      mutual.url,
      '--allow-loopback',
      ...args,
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(expected);
    expect(existsSync(join(src, 'tools', 'misused.echo.json'))).toBe(false);
    expect(mutual.requests.length).toBe(from);
  });
});

describe('https upstreams through the gateway', () => {
  it('mutual TLS with the pinned CA: the call executes, with its receipt', async () => {
    const r = await call('secure.echo', { message: 'over mutual tls' });
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r)).toContain('Echo: over mutual tls');
    const receipt = (await ledgerFor(requestIdOf(r))).find((e) => e.type === 'execution.receipt');
    expect(receipt?.payload).toMatchObject({ status: 'succeeded', adapter: 'mcp', tool: 'secure.echo' });
  });

  it('OAuth client credentials: the upstream gets a bearer for its own url, never the agent token', async () => {
    const from = guarded.requests.length;
    const r = await call('issued.echo', { message: 'with a bearer' });
    expect(r.isError).not.toBe(true);
    expect(JSON.stringify(r)).toContain('Echo: with a bearer');
    const seen = guarded.requests.slice(from);
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) {
      const token = /^Bearer (\S+)$/.exec(h.authorization ?? '')?.[1] ?? '';
      expect(await idp.verify(token, guarded.url)).toBe(true);
      expect(JSON.stringify(h)).not.toContain('demo-agent');
    }
  });

  it('the token endpoint refusing the client → ERR_UPSTREAM_TOKEN, ledgered with its reason, the upstream saw nothing', async () => {
    const from = guarded.requests.length;
    const before = runs.get('refused.echo') ?? 0;
    const r = await call('refused.echo', { message: 'never sent' });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_UPSTREAM_TOKEN' });
    expect(runs.get('refused.echo')).toBe(before + 1);
    const receipt = (await ledgerFor(requestIdOf(r))).find((e) => e.type === 'execution.receipt');
    expect(receipt?.payload).toMatchObject({ status: 'failed', code: 'ERR_UPSTREAM_TOKEN' });
    expect(String(receipt?.payload['reason'])).toContain('answered HTTP 401');
    expect(guarded.requests.length).toBe(from);
  });
});

describe('evidence', () => {
  it('the exported ledger, https upstream calls and a token refusal included, verifies offline', async () => {
    const trust = join(work, 'trust.json');
    const quiet = { out: () => undefined, err: () => undefined, env: {} };
    expect(await runCli(['--data', dir, 'trust-roots', '--out', trust], quiet)).toBe(0);
    const exp = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exp.status).toBe(200);
    const bundle = join(work, 'ledger.jsonl');
    const text = await exp.text();
    expect(text).toContain('ERR_UPSTREAM_TOKEN');
    // Neither the client secret nor the client key is anywhere in the evidence.
    expect(text).not.toContain(CLIENT_SECRET);
    expect(text).not.toContain('PRIVATE KEY');
    writeFileSync(bundle, text);
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
