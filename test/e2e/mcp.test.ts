/**
 * failclosed as an MCP server (docs/mcp.md; SPEC §2 step 1, FC-INV-3, FC-INV-5, FC-INV-6): the
 * official SDK's client over stdio (the built `failclosed mcp` relay, as a client would spawn it)
 * and over Streamable HTTP against a real embedded gate. The OAuth issuer is a real authorization
 * server run locally (`oidc-provider`: client credentials, RFC 8707 resource indicators, RFC 9068
 * JWT access tokens); tokens it would never issue (expired, unsigned, another key or issuer) are
 * made here. Every refusal is asserted by code and by the tool not having run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import Provider from 'oidc-provider';
import type { CryptoKey, JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { createApproverClient, createClient } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { oauthIdentity } from '../../src/gate/index.js';
import {
  announceServer,
  DEMO_CLIENT,
  dataPaths,
  readClientFile,
  initDataDir,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { REPO_ROOT } from '../support/paths.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

let work: string;
let dir: string;
let instance: EmbeddedInstance;
let idp: Server;
let issuer: string;
let resource: string;
let signingKey: CryptoKey;
let strangerKey: CryptoKey;
const SECRET = 'a-client-secret-for-tests-only-0123456789';
/** `mcp.approval_wait_ms`: how long a call with a progress token waits for its approvers. */
const WAIT_MS = 10_000;
const runs = new Map<string, number>();
/** Every bearer token the tests presented: none may appear in the ledger or its export. */
const issued: string[] = [];
const totalRuns = (): number => [...runs.values()].reduce((a, b) => a + b, 0);

/** Claims the next `agent-owned` tokens carry besides its own (a token naming another owner). */
let ownerOverride: Record<string, string> = {};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-mcp-'));
  dir = join(work, 'data');
  await initDataDir(dir);
  const pair = await generateKeyPair('RS256', { extractable: true });
  signingKey = pair.privateKey;
  strangerKey = (await generateKeyPair('RS256')).privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.privateKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
  idp = createServer();
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  // What each OAuth client is: its tenant and roles, as the authorization server asserts them.
  const principals: Record<string, { tenant: string; roles: string[]; owner?: string }> = {
    'agent-http': { tenant: 'acme', roles: [] },
    // An agent acting for a human: the token names its owner (`oauth.owner_claim`).
    'agent-owned': { tenant: 'acme', roles: [], owner: 'treasurer-owner' },
    'agent-ops': { tenant: 'acme', roles: ['operator'] },
    'agent-globex': { tenant: 'globex', roles: [] },
    // An OAuth client that took the name of a registered signing client.
    'demo-agent': { tenant: 'acme', roles: [] },
  };
  const provider = new Provider(issuer, {
    clients: Object.keys(principals).map((client_id) => ({
      client_id,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => ({
          scope: 'mcp',
          audience: indicator,
          accessTokenFormat: 'jwt' as const,
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' as const } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, t: { clientId?: string }) => ({
      ...(principals[t.clientId ?? ''] ?? {}),
      ...(t.clientId === 'agent-owned' ? ownerOverride : {}),
    }),
  });
  idp.on('request', provider.callback());
  const p = dataPaths(dir).config;
  const config = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  config['mcp'] = {
    oauth: { issuer, jwks_uri: `${issuer}/jwks`, algorithms: ['RS256'], owner_claim: 'owner' },
    approval_wait_ms: WAIT_MS,
  };
  writeFileSync(p, JSON.stringify(config));
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
  announceServer(dir, instance.url);
  resource = `${instance.url}/mcp`;
}, 60_000);

afterAll(async () => {
  await instance.close();
  await new Promise((r) => idp.close(r));
  rmSync(work, { recursive: true, force: true });
});

/**
 * A token the authorization server would never issue, signed here with its key (or `key`):
 * expired, or naming another issuer. `over` replaces claims.
 */
async function token(
  over: Record<string, unknown> = {},
  options: { key?: CryptoKey; iss?: string; expSec?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT({ tenant: 'acme', roles: [], ...over })
    .setProtectedHeader({ alg: 'RS256', kid: 'idp-1', typ: 'at+jwt' })
    .setIssuer(options.iss ?? issuer)
    .setSubject((over['sub'] as string | undefined) ?? 'agent-http')
    .setAudience((over['aud'] as string | undefined) ?? resource)
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (options.expSec ?? 300))
    .sign(options.key ?? signingKey);
  issued.push(jwt);
  return jwt;
}

/** An access token from the authorization server (client credentials, RFC 8707 `resource`). */
async function issue(clientId: string, audience: string = resource): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${clientId}:${SECRET}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience, scope: 'mcp' }),
  });
  const body = (await res.json()) as { access_token?: string };
  expect(res.status).toBe(200);
  issued.push(body.access_token!);
  return body.access_token!;
}

/** The revision a client speaks: the 2025 handshake (the SDK's default), or 2026-07-28 pinned. */
type Era = 'legacy' | '2026-07-28';
const clientOptions = (era: Era) => (era === 'legacy' ? {} : { versionNegotiation: { mode: { pin: era } } });

async function httpClient(bearer: string, era: Era = 'legacy'): Promise<Client> {
  const c = new Client({ name: 'fc-test', version: '1.0.0' }, clientOptions(era));
  await c.connect(
    new StreamableHTTPClientTransport(new URL(resource), {
      requestInit: { headers: { authorization: `Bearer ${bearer}` } },
    }),
  );
  return c;
}

async function ledgerEntries(): Promise<
  { type: string; request_id: string; payload: Record<string, unknown> }[]
> {
  const l = instance.core.ledger;
  return await l.store.readRange(0, l.size());
}

const callMeta = (r: unknown): Record<string, unknown> =>
  ((r as { _meta: Record<string, unknown> })._meta['failclosed.dev/call'] ?? {}) as Record<string, unknown>;

const SAFE_TOOLS = [
  'echo',
  'get_time',
  'list_files',
  'math.add',
  'read_inbox',
  'send_email',
  'transfer_funds',
];

describe('stdio: failclosed mcp, authenticated by the local client key', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ name: 'fc-test-stdio', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', dir, '--client', 'demo-agent'],
        stderr: 'pipe',
      }),
    );
  }, 30_000);
  afterAll(async () => {
    await client.close();
  });

  it('tools/list shows only the tools policy could allow this client, with their input schemas', async () => {
    const { tools } = await client.listTools();
    // delete_records needs the operator role, which demo-agent does not have.
    expect(tools.map((t) => t.name).sort()).toEqual([...SAFE_TOOLS].sort());
    expect(tools.find((t) => t.name === 'echo')?.inputSchema).toMatchObject({
      type: 'object',
      required: ['message'],
    });
  });

  it('an allowed call executes through the governed pipeline and leaves its records (FC-INV-5)', async () => {
    const before = runs.get('echo') ?? 0;
    const r = await client.callTool({ name: 'echo', arguments: { message: 'over stdio' } });
    expect(r.isError).not.toBe(true);
    expect(r.structuredContent).toEqual({ message: 'over stdio' });
    expect(runs.get('echo')).toBe(before + 1);
    const meta = callMeta(r);
    const id = meta['request_id'] as string;
    expect(id).toMatch(/^mcp-/);
    const types = (await ledgerEntries()).filter((e) => e.request_id === id);
    const accepted = types.find((e) => e.type === 'gateway.accepted');
    expect(accepted?.payload).toMatchObject({
      auth_method: 'client_key',
      client: 'demo-agent',
      tool: 'echo',
    });
    expect(types.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'gateway.accepted',
        'decision',
        'envelope.issued',
        'execution.receipt',
        'gateway.completed',
      ]),
    );
  });

  it('a call policy denies answers isError with the code and request id; the tool never ran', async () => {
    const before = totalRuns();
    const r = await client.callTool({ name: 'delete_records', arguments: { table: 'orders', ids: ['1'] } });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    expect((r.structuredContent as { request_id: string }).request_id).toMatch(/^mcp-/);
    expect(totalRuns()).toBe(before);
  });

  it('an escalated call answers a tool error with the decision id and where to approve; nothing ran', async () => {
    const before = totalRuns();
    const r = await client.callTool({
      name: 'transfer_funds',
      arguments: { from_account: 'acct_a', to_account: 'acct_b', amount: 5000, currency: 'USD' },
    });
    expect(r.isError).toBe(true);
    const body = r.structuredContent as Record<string, string>;
    expect(body).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(body['decision_id']).toMatch(/^dec_/);
    expect(body['approve']).toBe(`POST /v1/approvals/${body['decision_id']}/approve`);
    expect(totalRuns()).toBe(before);
  });

  it('tools, prompts, resources and completions are advertised (no subscriptions)', () => {
    const caps = client.getServerCapabilities();
    expect(caps?.tools).toBeDefined();
    expect(caps?.prompts).toEqual({});
    expect(caps?.resources).toEqual({});
    expect(caps?.completions).toEqual({});
  });
});

describe('both revisions: 2025 (initialize) and 2026-07-28 (per request)', () => {
  it.each(['legacy', '2026-07-28'] as const)('over HTTP, %s: list and a governed call', async (era) => {
    const c = await httpClient(await issue('agent-http'), era);
    expect((await c.listTools()).tools.map((t) => t.name)).toContain('echo');
    const r = await c.callTool({ name: 'echo', arguments: { message: era } });
    expect(r.structuredContent).toEqual({ message: era });
    await c.close();
  });

  it('over stdio, 2026-07-28: list and a governed call', async () => {
    const c = new Client({ name: 'fc-test-stdio-modern', version: '1.0.0' }, clientOptions('2026-07-28'));
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', dir],
        stderr: 'pipe',
      }),
    );
    expect((await c.listTools()).tools.map((t) => t.name)).toContain('echo');
    const r = await c.callTool({ name: 'echo', arguments: { message: 'modern stdio' } });
    expect(r.structuredContent).toEqual({ message: 'modern stdio' });
    await c.close();
  }, 30_000);
});

describe('approvals from MCP', () => {
  const token = (): string => `Bearer ${readOperatorToken(dir)}`;
  const approvers = new Map<string, ReturnType<typeof createApproverClient>>();
  /** The approver `name`, registered with the treasury role for acme on first use. */
  async function approverNamed(name: string) {
    const known = approvers.get(name);
    if (known !== undefined) return known;
    const key = generateSigningKey();
    const added = await instance.core.gate.admin(
      'approvers-add',
      { name, roles: ['treasury'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
      token(),
    );
    expect(added.status).toBe(201);
    const client = createApproverClient({ url: instance.url, name, key, authorization: token() });
    approvers.set(name, client);
    return client;
  }
  const args = { from_account: 'acct_a', to_account: 'acct_b', amount: 2500, currency: 'USD' };

  it('over stdio: a transfer waits for two approvers; the retry named in the pending answer then runs it once', async () => {
    const c = new Client({ name: 'fc-test-approvals', version: '1.0.0' });
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', dir],
        stderr: 'pipe',
      }),
    );
    const before = runs.get('transfer_funds') ?? 0;
    const first = await c.callTool({ name: 'transfer_funds', arguments: args });
    const pending = first.structuredContent as {
      decision_id: string;
      request_id: string;
      retry: { _meta: Record<string, unknown> };
    };
    expect(first.isError).toBe(true);
    expect(pending.retry._meta).toEqual({ 'failclosed.dev/retry': pending.request_id });
    const retry = () => c.callTool({ name: 'transfer_funds', arguments: args, _meta: pending.retry._meta });
    // Not approved yet: still pending, same decision, nothing ran.
    expect((await retry()).structuredContent).toMatchObject({
      outcome: 'pending',
      decision_id: pending.decision_id,
    });
    for (const name of ['treasurer-1', 'treasurer-2']) {
      const approver = await approverNamed(name);
      const decided = await approver.decide(pending.decision_id, 'approve', 'checked the invoice');
      expect(decided.status).toBe(200);
    }
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    // Other parameters under the same request id are not that decision: a replay, nothing runs.
    const other = await c.callTool({
      name: 'transfer_funds',
      arguments: { ...args, amount: 2600 },
      _meta: pending.retry._meta,
    });
    expect(other.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    const done = await retry();
    expect(done.isError).not.toBe(true);
    expect(callMeta(done)).toMatchObject({
      request_id: pending.request_id,
      decision_id: pending.decision_id,
    });
    expect(runs.get('transfer_funds')).toBe(before + 1);
    // Issued once: a further retry is a replay.
    expect((await retry()).structuredContent).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_REPLAYED',
    });
    expect(runs.get('transfer_funds')).toBe(before + 1);
    await c.close();
  }, 30_000);

  it('an OAuth principal whose token names no owner: its escalated call cannot be approved (fails closed)', async () => {
    const c = await httpClient(await issue('agent-http'));
    const before = runs.get('transfer_funds') ?? 0;
    const first = await c.callTool({ name: 'transfer_funds', arguments: { ...args, amount: 3000 } });
    const decision = (first.structuredContent as { decision_id: string }).decision_id;
    const approver = await approverNamed('treasurer-3');
    const decided = await approver.decide(decision, 'approve', 'who owns this agent?');
    expect(decided.body).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect(JSON.stringify(decided.body)).toContain('no known owner');
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    await c.close();
  });

  it("an OAuth principal's owner comes from its token: the owner cannot approve, two others can, the retry runs once (OE-INV-002)", async () => {
    const c = await httpClient(await issue('agent-owned'));
    const before = runs.get('transfer_funds') ?? 0;
    const amounts = { ...args, amount: 2700 };
    const first = await c.callTool({ name: 'transfer_funds', arguments: amounts });
    const pending = first.structuredContent as {
      outcome: string;
      decision_id: string;
      request_id: string;
      retry: { _meta: Record<string, unknown> };
    };
    expect(pending.outcome).toBe('pending');
    // Recorded with the request: the owner the token named.
    const accepted = (await ledgerEntries()).find(
      (e) => e.request_id === pending.request_id && e.type === 'gateway.accepted',
    );
    expect(accepted?.payload).toMatchObject({ auth_method: 'oauth', owner: 'treasurer-owner' });
    const owner = await approverNamed('treasurer-owner');
    const self = await owner.decide(pending.decision_id, 'approve', 'my own agent');
    expect(self.body).toMatchObject({ code: 'ERR_APPROVAL_SELF' });
    expect(
      (await c.callTool({ name: 'transfer_funds', arguments: amounts, _meta: pending.retry._meta }))
        .structuredContent,
    ).toMatchObject({ outcome: 'pending', decision_id: pending.decision_id });
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    for (const name of ['treasurer-4', 'treasurer-5']) {
      const approver = await approverNamed(name);
      const decided = await approver.decide(pending.decision_id, 'approve', 'checked the invoice');
      expect(decided.status).toBe(200);
    }
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    await c.close();
    // The retry may come over a new connection with a new token of the same principal.
    const again = await httpClient(await issue('agent-owned'));
    const retry = () =>
      again.callTool({ name: 'transfer_funds', arguments: amounts, _meta: pending.retry._meta });
    const done = await retry();
    expect(done.isError).not.toBe(true);
    expect(callMeta(done)).toMatchObject({
      request_id: pending.request_id,
      decision_id: pending.decision_id,
    });
    expect(runs.get('transfer_funds')).toBe(before + 1);
    expect((await retry()).structuredContent).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_REPLAYED',
    });
    expect(runs.get('transfer_funds')).toBe(before + 1);
    await again.close();
  }, 30_000);

  it('a retry under a token naming another owner is not the approved call: refused, nothing runs', async () => {
    const before = runs.get('transfer_funds') ?? 0;
    const amounts = { ...args, amount: 2711 };
    const c = await httpClient(await issue('agent-owned'));
    const pending = (await c.callTool({ name: 'transfer_funds', arguments: amounts })).structuredContent as {
      outcome: string;
      decision_id: string;
      request_id: string;
      retry: { _meta: Record<string, unknown> };
    };
    expect(pending.outcome).toBe('pending');
    for (const name of ['treasurer-8', 'treasurer-9']) {
      const decided = await (await approverNamed(name)).decide(pending.decision_id, 'approve', 'ok');
      expect(decided.status).toBe(200);
    }
    await c.close();
    // The same agent, a token naming an approver of this call as its owner.
    ownerOverride = { owner: 'treasurer-8' };
    try {
      const again = await httpClient(await issue('agent-owned'));
      const done = await again.callTool({
        name: 'transfer_funds',
        arguments: amounts,
        _meta: pending.retry._meta,
      });
      expect(done.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
      expect(runs.get('transfer_funds') ?? 0).toBe(before);
      await again.close();
    } finally {
      ownerOverride = {};
    }
  }, 30_000);

  /** The decision id of the next `approval.requested` after ledger index `from` (polls the ledger). */
  async function nextRequested(from: number): Promise<string> {
    for (;;) {
      const e = (await ledgerEntries()).slice(from).find((x) => x.type === 'approval.requested');
      if (e !== undefined) return e.payload['decision_id'] as string;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('with a progress token an escalated call waits for its approvers, telling the client, then runs once; nothing the client sends approves it (OE-INV-002)', async () => {
    const [a6, a7] = [await approverNamed('treasurer-6'), await approverNamed('treasurer-7')];
    const c = await httpClient(await issue('agent-owned'));
    const before = runs.get('transfer_funds') ?? 0;
    const from = instance.core.ledger.size();
    const progress: unknown[] = [];
    const call = c.callTool(
      { name: 'transfer_funds', arguments: { ...args, amount: 2800 } },
      { onprogress: (p) => progress.push(p), timeout: 60_000 },
    );
    const decision = await nextRequested(from);
    // A client cannot answer for the approvers: a posted JSON-RPC response (an elicitation
    // "accept"), an elicitation or progress notification of its own, or a request naming the
    // decision are refused or ignored; the call still waits and nothing ran.
    const auth = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${await issue('agent-owned')}`,
    };
    const send = (body: unknown) =>
      fetch(resource, { method: 'POST', headers: auth, body: JSON.stringify(body) });
    expect(
      (await send({ jsonrpc: '2.0', id: 1, result: { action: 'accept', content: { approve: true } } }))
        .status,
    ).toBe(400);
    await send({
      jsonrpc: '2.0',
      method: 'notifications/elicitation/complete',
      params: { elicitationId: decision },
    });
    await send({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: decision, progress: 1 },
    });
    const asked = await send({
      jsonrpc: '2.0',
      id: 2,
      method: 'elicitation/create',
      params: {
        message: 'approve',
        requestedSchema: { type: 'object', properties: {} },
        decision_id: decision,
      },
    });
    expect(await asked.text()).toContain('"error"');
    const shown = await fetch(`${instance.url}/v1/approvals/${decision}`, {
      headers: { authorization: `Bearer ${readOperatorToken(dir)}` },
    });
    expect(await shown.json()).toMatchObject({ status: 'pending' });
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    // The owner the token names cannot approve; two other approvers can, while the call waits.
    const owner = await approverNamed('treasurer-owner');
    expect((await owner.decide(decision, 'approve', 'mine')).body).toMatchObject({
      code: 'ERR_APPROVAL_SELF',
    });
    for (const approver of [a6, a7])
      expect((await approver.decide(decision, 'approve', 'checked while it waited')).status).toBe(200);
    const done = await call;
    expect(done.isError).not.toBe(true);
    expect(callMeta(done)).toMatchObject({ decision_id: decision });
    expect(runs.get('transfer_funds')).toBe(before + 1);
    expect(progress.length).toBeGreaterThanOrEqual(1);
    await c.close();
  }, 60_000);

  /** The ledger entry after index `from` that `match` accepts (polls the ledger). */
  async function nextEntry(
    from: number,
    match: (e: { type: string; request_id: string; payload: Record<string, unknown> }) => boolean,
    withinMs = Infinity,
  ) {
    const until = Date.now() + withinMs;
    while (Date.now() < until) {
      const e = (await ledgerEntries()).slice(from).find(match);
      if (e !== undefined) return e;
      await new Promise((r) => setTimeout(r, 50));
    }
    return undefined;
  }

  /**
   * How a waiting call ended: its `gateway.failed` (pending, or a deny) or its `gateway.completed`
   * (it ran), whichever the ledger holds first after `from`.
   */
  const ended = (from: number, decision: string, withinMs?: number) =>
    nextEntry(
      from,
      (e) =>
        (e.type === 'gateway.failed' || e.type === 'gateway.completed') &&
        e.payload['decision_id'] === decision,
      withinMs,
    );

  const approvalOf = async (decision: string): Promise<unknown> =>
    await (
      await fetch(`${instance.url}/v1/approvals/${decision}`, {
        headers: { authorization: `Bearer ${readOperatorToken(dir)}` },
      })
    ).json();

  it('a 2025 client that cancels a waiting call (notifications/cancelled) stops it: approvals that come after never make it run', async () => {
    const [a8, a9] = [await approverNamed('treasurer-8'), await approverNamed('treasurer-9')];
    const before = runs.get('transfer_funds') ?? 0;
    const from = instance.core.ledger.size();
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      authorization: `Bearer ${await issue('agent-owned')}`,
    };
    // The waiting call, as a 2025 client sends it (stateless): its answer streams while it waits.
    const waiting = fetch(resource, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'wait-cancel-1',
        method: 'tools/call',
        params: {
          name: 'transfer_funds',
          arguments: { ...args, amount: 3100 },
          _meta: { progressToken: 'wait-cancel-1' },
        },
      }),
    });
    const decision = await nextRequested(from);
    // Another principal naming the same id cancels nothing.
    const foreign = await fetch(resource, {
      method: 'POST',
      headers: { ...headers, authorization: `Bearer ${await issue('agent-http')}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 'wait-cancel-1' },
      }),
    });
    expect(foreign.status).toBe(202);
    expect(await approvalOf(decision)).toMatchObject({ status: 'pending' });
    // Its own client cancels it in a request of its own (another exchange, as 2025 clients do).
    const cancelled = await fetch(resource, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 'wait-cancel-1', reason: 'the user gave up' },
      }),
    });
    expect(cancelled.status).toBe(202);
    for (const a of [a8, a9]) expect((await a.decide(decision, 'approve', 'too late')).status).toBe(200);
    // The wait ended at the cancellation: answered pending (recorded), never run.
    const end = await ended(from, decision);
    expect(end).toMatchObject({
      type: 'gateway.failed',
      payload: { outcome: 'pending', code: 'ERR_APPROVAL_PENDING' },
    });
    await (await waiting).text();
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    // Approved, not issued: only an explicit retry could still run it.
    expect(await approvalOf(decision)).toMatchObject({ status: 'approved' });
  }, 60_000);

  it('a client that closes a waiting call (2026-07-28 cancellation, a stdio client cancelling through the relay) or a waiting POST /v1/calls goes away: nothing runs when approved after', async () => {
    const [a10, a11] = [await approverNamed('treasurer-10'), await approverNamed('treasurer-11')];
    const before = runs.get('transfer_funds') ?? 0;
    const demo = readClientFile(dir, DEMO_CLIENT.identity);
    const signed = createClient({
      url: instance.url,
      key: demo.key,
      identity: demo.identity,
      tenant: demo.tenant,
    });
    const c = await httpClient(await issue('agent-owned'), '2026-07-28');
    const stdio = new Client({ name: 'fc-test-cancel', version: '1.0.0' });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', dir],
        stderr: 'pipe',
      }),
    );
    const cases: [string, (signal: AbortSignal) => Promise<unknown>][] = [
      [
        'mcp',
        (signal) =>
          c.callTool(
            { name: 'transfer_funds', arguments: { ...args, amount: 3200 } },
            { onprogress: () => undefined, timeout: 60_000, signal },
          ),
      ],
      ['http', (signal) => signed.call('transfer_funds', { ...args, amount: 3300 }, { waitSec: 60, signal })],
      [
        // The stdio relay closes the exchange with the Gate when its client cancels.
        'stdio',
        (signal) =>
          stdio.callTool(
            { name: 'transfer_funds', arguments: { ...args, amount: 3400 } },
            { onprogress: () => undefined, timeout: 60_000, signal },
          ),
      ],
    ];
    for (const [name, start] of cases) {
      const from = instance.core.ledger.size();
      const stop = new AbortController();
      const call = start(stop.signal);
      const decision = await nextRequested(from);
      stop.abort();
      // The caller sees its own cancellation, not an answer.
      await expect(call, name).rejects.toThrow('This operation was aborted');
      // The Gate notices the closed exchange and ends the wait at once, not when it would have
      // timed out (WAIT_MS for MCP, the approvals' 25 s cap for HTTP): answered pending into the
      // void, recorded. Half the shorter wait is a bound no loaded machine comes near.
      expect(await ended(from, decision, WAIT_MS / 2), name).toMatchObject({
        type: 'gateway.failed',
        payload: { outcome: 'pending', code: 'ERR_APPROVAL_PENDING' },
      });
      for (const a of [a10, a11]) expect((await a.decide(decision, 'approve', 'too late')).status).toBe(200);
      expect(await approvalOf(decision), name).toMatchObject({ status: 'approved' });
      expect(runs.get('transfer_funds') ?? 0, name).toBe(before);
    }
    await c.close();
    await stdio.close();
  }, 60_000);

  it('a call that waits and is not approved within the wait answers pending, as without a progress token', async () => {
    const c = await httpClient(await issue('agent-owned'));
    const before = runs.get('transfer_funds') ?? 0;
    const progress: unknown[] = [];
    const r = await c.callTool(
      { name: 'transfer_funds', arguments: { ...args, amount: 2900 } },
      { onprogress: (p) => progress.push(p), timeout: 60_000 },
    );
    expect(r.structuredContent).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(runs.get('transfer_funds') ?? 0).toBe(before);
    await c.close();
  }, 60_000);
});

describe('Streamable HTTP: an OAuth 2.1 resource server', () => {
  it('publishes RFC 9728 protected-resource metadata', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
    ]) {
      const res = await fetch(`${instance.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ resource, authorization_servers: [issuer] });
    }
  });

  it('a bearer JWT of the issuer lists by its roles and calls through the pipeline (auth_method oauth)', async () => {
    const plain = await httpClient(await issue('agent-http'));
    expect((await plain.listTools()).tools.map((t) => t.name)).not.toContain('delete_records');
    const r = await plain.callTool({ name: 'echo', arguments: { message: 'over http' } });
    expect(r.structuredContent).toEqual({ message: 'over http' });
    const id = callMeta(r)['request_id'] as string;
    const accepted = (await ledgerEntries()).find(
      (e) => e.request_id === id && e.type === 'gateway.accepted',
    );
    // The principal is the token's sub in the issuer's namespace, never a registered client's name.
    expect(accepted?.payload).toMatchObject({
      auth_method: 'oauth',
      issuer,
      client: oauthIdentity(issuer, 'agent-http'),
    });
    await plain.close();
    // A token whose sub is a registered client's name is not that client: another principal,
    // so it can neither resume nor own that client's calls (its retries, approvals, replay memory).
    const impostor = await httpClient(await issue('demo-agent'));
    const ri = await impostor.callTool({ name: 'echo', arguments: { message: 'who am I' } });
    const iid = callMeta(ri)['request_id'] as string;
    const iaccepted = (await ledgerEntries()).find(
      (e) => e.request_id === iid && e.type === 'gateway.accepted',
    );
    expect(iaccepted?.payload['client']).toBe(oauthIdentity(issuer, 'demo-agent'));
    expect(iaccepted?.payload['client']).not.toBe('demo-agent');
    await impostor.close();
    const operator = await httpClient(await issue('agent-ops'));
    expect((await operator.listTools()).tools.map((t) => t.name)).toContain('delete_records');
    await operator.close();
  });

  it('tenant from the token: a globex principal does not see send_email and its call is denied', async () => {
    const c = await httpClient(await issue('agent-globex'));
    expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('send_email');
    const before = totalRuns();
    const r = await c.callTool({
      name: 'send_email',
      arguments: { to: 'a@example.com', subject: 's', body: 'b' },
    });
    expect(r.isError).toBe(true);
    expect((r.structuredContent as { code: string }).code).toBe('ERR_POLICY_DENY');
    expect(totalRuns()).toBe(before);
    await c.close();
  });

  const initialize = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  const post = (headers: Record<string, string>, body: string = initialize): Promise<Response> =>
    fetch(resource, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body,
    });

  it('missing, foreign-audience, expired, unsigned, stranger-signed, foreign-issuer and malformed-owner tokens: 401, nothing accepted or run', async () => {
    const acceptedBefore = (await ledgerEntries()).filter((e) => e.type === 'gateway.accepted').length;
    const runsBefore = totalRuns();
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const claims = Buffer.from(
      JSON.stringify({ iss: issuer, sub: 'x', aud: resource, iat: now, exp: now + 60, tenant: 'acme' }),
    ).toString('base64url');
    const cases: [string | undefined, string][] = [
      [undefined, 'ERR_UNAUTHENTICATED'],
      [await issue('agent-http', 'https://other.example/mcp'), 'ERR_TOKEN_INVALID'],
      [await token({}, { expSec: -120 }), 'ERR_TOKEN_INVALID'],
      [`${header}.${claims}.`, 'ERR_TOKEN_INVALID'],
      [await token({}, { key: strangerKey }), 'ERR_TOKEN_INVALID'],
      [await token({}, { iss: 'https://other-issuer.example' }), 'ERR_TOKEN_INVALID'],
      // An owner claim that is not a name: not a token this resource accepts.
      [await token({ owner: ['alice', 'bob'] }), 'ERR_TOKEN_INVALID'],
      [await token({ owner: 'has spaces' }), 'ERR_TOKEN_INVALID'],
    ];
    for (const [bearer, code] of cases) {
      const res = await post(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain(
        `resource_metadata="${instance.url}/.well-known/oauth-protected-resource/mcp"`,
      );
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
    expect((await ledgerEntries()).filter((e) => e.type === 'gateway.accepted').length).toBe(acceptedBefore);
    expect(totalRuns()).toBe(runsBefore);
  });

  it('a rebinding Host or a foreign Origin: 403 before authentication', async () => {
    const port = new URL(instance.url).port;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { host: `evil.example:${port}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once('error', reject);
      req.end(initialize);
    });
    expect(status).toBe(403);
    const res = await post({
      authorization: `Bearer ${await issue('agent-http')}`,
      origin: 'http://evil.example',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe('ERR_ORIGIN_FORBIDDEN');
    // Each refusal is recorded (hash only), like any other.
    await instance.core.ledger.settled();
    const forbidden = (await ledgerEntries()).filter(
      (e) => e.type === 'gateway.failed' && e.payload['code'] === 'ERR_ORIGIN_FORBIDDEN',
    );
    expect(forbidden.length).toBeGreaterThanOrEqual(2);
  });

  it('subscriptions answer a JSON-RPC error with ERR_MCP_NOT_OFFERED, recorded; nothing runs', async () => {
    const auth = { authorization: `Bearer ${await issue('agent-http')}` };
    const before = totalRuns();
    const methods = ['resources/subscribe', 'resources/unsubscribe'];
    for (const [i, method] of methods.entries()) {
      const res = await post(
        { ...auth, 'mcp-protocol-version': '2025-11-25' },
        JSON.stringify({
          jsonrpc: '2.0',
          id: 90 + i,
          method,
          params: { uri: 'file:///etc/passwd', name: 'p' },
        }),
      );
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toEqual({
        jsonrpc: '2.0',
        id: 90 + i,
        error: { code: -32601, message: 'Method not found', data: { code: 'ERR_MCP_NOT_OFFERED' } },
      });
    }
    // The SDK client sees the same refusal, with the code in `data`.
    const c = await httpClient(await issue('agent-http'));
    await expect(
      c.request({ method: 'resources/subscribe', params: { uri: 'file:///etc/passwd' } }),
    ).rejects.toMatchObject({
      code: -32601,
      data: { code: 'ERR_MCP_NOT_OFFERED' },
    });
    await c.close();
    expect(totalRuns()).toBe(before);
    await instance.core.ledger.settled();
    const recorded = (await ledgerEntries()).filter(
      (e) => e.type === 'gateway.failed' && e.payload['code'] === 'ERR_MCP_NOT_OFFERED',
    );
    expect(recorded.length).toBeGreaterThanOrEqual(methods.length + 1);
  });

  it('prompts and resources the bundle does not pin: none listed; a get, read or completion is refused ERR_TOOL_UNKNOWN, recorded; nothing runs', async () => {
    const before = totalRuns();
    const c = await httpClient(await issue('agent-http'));
    expect((await c.listPrompts()).prompts).toEqual([]);
    expect((await c.listResources()).resources).toEqual([]);
    await expect(c.readResource({ uri: 'file:///etc/passwd' })).rejects.toMatchObject({
      code: -32001,
      data: { outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' },
    });
    await expect(c.getPrompt({ name: 'p' })).rejects.toMatchObject({
      code: -32001,
      data: { outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' },
    });
    // A tool is not a prompt: its name does not reach it through prompts/get.
    await expect(c.getPrompt({ name: 'echo', arguments: { message: 'x' } })).rejects.toMatchObject({
      data: { code: 'ERR_TOOL_UNKNOWN' },
    });
    // Nor through completion/complete, of a prompt or of a template.
    for (const ref of [
      { type: 'ref/prompt' as const, name: 'echo' },
      { type: 'ref/resource' as const, uri: 'file:///{path}' },
    ])
      await expect(c.complete({ ref, argument: { name: 'message', value: 'x' } })).rejects.toMatchObject({
        code: -32001,
        data: { outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' },
      });
    await c.close();
    expect(totalRuns()).toBe(before);
    await instance.core.ledger.settled();
    const recorded = (await ledgerEntries()).filter(
      (e) => e.type === 'gateway.failed' && e.payload['code'] === 'ERR_TOOL_UNKNOWN',
    );
    expect(recorded.length).toBeGreaterThanOrEqual(5);
  });

  it('malformed JSON-RPC, a batch and an oversized body are refused; nothing runs', async () => {
    const auth = { authorization: `Bearer ${await issue('agent-http')}` };
    const before = totalRuns();
    const call = {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'x' } },
    };
    const malformed = await post(auth, '{"jsonrpc":"2.0","id":1,"method":');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: number } }).error.code).toBe(-32700);
    const duplicate = await post(auth, '{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/list"}');
    expect(duplicate.status).toBe(400);
    const batch = await post(auth, JSON.stringify([call, call]));
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as { error: { code: number } }).error.code).toBe(-32600);
    const notRpc = await post(auth, JSON.stringify({ id: 3, method: 'tools/call' }));
    expect(notRpc.status).toBe(400);
    const big = await post(
      auth,
      JSON.stringify({ ...call, params: { name: 'echo', arguments: { message: 'x'.repeat(300_000) } } }),
    );
    expect(big.status).toBe(413);
    expect(totalRuns()).toBe(before);
    // Each refusal is recorded (hash only, the client's token never).
    await instance.core.ledger.settled();
    const codes = (await ledgerEntries())
      .filter((e) => e.type === 'gateway.failed')
      .map((e) => e.payload['code']);
    expect(codes).toContain('ERR_REQUEST_TOO_LARGE');
    expect(codes.filter((c) => c === 'ERR_REQUEST_MALFORMED').length).toBeGreaterThanOrEqual(4);
  });
});

describe('evidence', () => {
  it('the exported ledger, MCP calls included, verifies offline under the pinned trust roots', async () => {
    const trust = join(work, 'trust.json');
    const quiet = { out: () => undefined, err: () => undefined, env: {} };
    expect(await runCli(['--data', dir, 'trust-roots', '--out', trust], quiet)).toBe(0);
    const exp = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exp.status).toBe(200);
    const bundle = join(work, 'bundle.jsonl');
    const text = await exp.text();
    writeFileSync(bundle, text);
    // The client's token is never passed on or kept (MCP authorization: no token passthrough).
    expect(issued.length).toBeGreaterThan(5);
    for (const t of issued) expect(text).not.toContain(t.split('.')[2]);
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
