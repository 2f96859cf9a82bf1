/**
 * MCP through keyless Gates (docs/mcp.md "Through keyless Gates"; SPEC §1 separation of powers,
 * SPEC §2 step 1, FC-INV-3, FC-INV-6): a `failclosed serve gate` with `mcp` serves the MCP
 * endpoint, holding no key, and the Control Plane process authenticates every MCP call again from
 * the bearer token the Gate forwards with it, never from the Gate's word. On the real components:
 * PostgreSQL, the Control Plane process, a separate Execution Layer, a keyless Gate; the official
 * SDK's client over Streamable HTTP, and the built `failclosed mcp --gate` relay over stdio. The
 * OAuth issuer's keys are served by a local JWKS endpoint and its tokens signed here.
 *
 * A compromised Gate is played by altering what the real Gate asks the Control Plane (the port
 * wrapper `gateControlPlane`): no token, another principal's token, a client-key token already
 * used, other parameters than the evidence holds. Each is denied by its code; the tool never ran
 * and no envelope was issued.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { createApproverClient, signClientToken } from '../../src/client/index.js';
import pg from 'pg';
import { DEMO_CLIENT, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import { parseBackendSpec } from '../../src/embedded/backend-spec.js';
import { oauthIdentity } from '../../src/gate/index.js';
import type { GateControlPlane } from '../../src/gate/index.js';
import type { DecideOptions, GovernedRequest } from '../../src/control-plane/index.js';
import { generateSigningKey, importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { startE2e } from './harness.js';
import type { E2e } from './harness.js';
import { forgingGate } from './keyless-forge.js';
import type { ForgingGate } from './keyless-forge.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
/** The resource every Gate serves and the Control Plane names: the tokens' audience. */
const RESOURCE = 'https://mcp.gates.test/mcp';

let e2e: E2e;
let idp: Server;
let issuer: string;
let idpKey: CryptoKey;

/**
 * What the compromised Gate changes in the next decision it asks for (undefined: nothing). The
 * decision it alters is remembered in `altered`.
 */
let tamper:
  | ((
      req: GovernedRequest,
      options: DecideOptions | undefined,
    ) => [GovernedRequest, DecideOptions | undefined])
  | undefined;
/** The credentials the Gate forwarded, in order (to replay one). */
const forwarded: string[] = [];

function compromisable(port: GateControlPlane): GateControlPlane {
  return {
    ...port,
    decide: (req, options) => {
      if (options?.credential !== undefined) forwarded.push(options.credential);
      const t = tamper;
      tamper = undefined;
      const [r, o] = t === undefined ? [req, options] : t(req, options);
      return port.decide(r, o);
    },
  };
}

async function oauthToken(sub: string, claims: Record<string, unknown> = {}, expSec = 300): Promise<string> {
  const now = Math.floor(e2e.clock.now() / 1000);
  return await new SignJWT({ tenant: 'acme', roles: [], ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'idp-1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setSubject(sub)
    .setAudience(RESOURCE)
    .setIssuedAt(now)
    .setExpirationTime(now + expSec)
    .sign(idpKey);
}

/** An SDK client over Streamable HTTP to the keyless Gate, each request with a fresh token of `token()`. */
async function httpClient(token: () => Promise<string>): Promise<Client> {
  const c = new Client({ name: 'fc-keyless', version: '1.0.0' });
  await c.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', e2e.url), {
      fetch: async (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${await token()}`);
        return fetch(input, { ...init, headers });
      },
    }),
  );
  return c;
}

/** A fresh client-key token of the demo client per request (as `failclosed mcp` signs them). */
const demoKey = () => importSigningKeyJwk(readClientFile(e2e.dir, DEMO_CLIENT.identity).key);
const clientToken = (): Promise<string> =>
  Promise.resolve(signClientToken(demoKey(), DEMO_CLIENT.identity, RESOURCE, e2e.clock.now()));

/** The types of the request's ledger entries, through the Control Plane's evidence view. */
async function entryTypes(requestId: string): Promise<string[]> {
  const a = await e2e.evidence(requestId);
  expect(a.status).toBe(200);
  return (a.body['records'] as { entry: { type: string } }[]).map((x) => x.entry.type);
}

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  idpKey = pair.privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
  idp = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const mcp = {
    resource: RESOURCE,
    oauth: { issuer, jwks_uri: `${issuer}/jwks`, algorithms: ['RS256'], owner_claim: 'owner' },
  };
  e2e = await startE2e({
    topology: 'keyless',
    gate: { mcp },
    config: { mcp },
    gateControlPlane: compromisable,
  });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  await new Promise<void>((r) => idp?.close(() => r()));
});

describe('MCP through a keyless Gate', () => {
  it('tools/list shows the bundle tools the principal could call, read from the Control Plane', async () => {
    const c = await httpClient(clientToken);
    const names = (await c.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).not.toContain('delete_records');
    await c.close();
  });

  it('a client-key call runs, decided by the Control Plane and run by the Execution Layer', async () => {
    const c = await httpClient(clientToken);
    const before = e2e.runs.get('echo') ?? 0;
    const r = await c.callTool({ name: 'echo', arguments: { message: 'through a keyless gate' } });
    expect(r.isError).toBeFalsy();
    const meta = (r._meta as Record<string, Record<string, string>>)['failclosed.dev/call']!;
    expect(meta['request_id']).toMatch(/^mcp-/);
    expect(e2e.runs.get('echo')).toBe(before + 1);
    const entries = (
      (await e2e.evidence(meta['request_id']!)).body['records'] as {
        entry: { type: string; actor: { role: string }; payload: Record<string, unknown> };
      }[]
    ).map((x) => x.entry);
    const accepted = entries.find((x) => x.type === 'gateway.accepted')!;
    expect(accepted.actor.role).toBe('gate');
    expect(accepted.payload['auth_method']).toBe('client_key');
    expect(entries.find((x) => x.type === 'envelope.issued')!.actor.role).toBe('control-plane');
    expect(entries.map((x) => x.type)).toContain('execution.receipt');
    await c.close();
  });

  it('an OAuth call runs as the token principal, authenticated again by the Control Plane', async () => {
    const c = await httpClient(() => oauthToken('agent-k', { owner: 'owner-k' }));
    const r = await c.callTool({ name: 'echo', arguments: { message: 'oauth through a keyless gate' } });
    expect(r.isError).toBeFalsy();
    const id = (r._meta as Record<string, Record<string, string>>)['failclosed.dev/call']!['request_id']!;
    const entries = (
      (await e2e.evidence(id)).body['records'] as {
        entry: { type: string; actor: { id: string }; payload: Record<string, unknown> };
      }[]
    ).map((x) => x.entry);
    expect(entries.find((x) => x.type === 'gateway.accepted')!.actor.id).toBe(
      oauthIdentity(issuer, 'agent-k'),
    );
    await c.close();
  });

  it('a call policy denies is denied ERR_POLICY_DENY; nothing ran', async () => {
    const c = await httpClient(clientToken);
    const before = e2e.totalRuns();
    const r = await c.callTool({ name: 'delete_records', arguments: { table: 'orders', ids: ['1'] } });
    expect(r.isError).toBe(true);
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    expect(e2e.totalRuns()).toBe(before);
    await c.close();
  });

  it('over stdio (`failclosed mcp --gate`): an escalated transfer, approved on the Control Plane, runs once on retry', async () => {
    const c = new Client({ name: 'fc-keyless-stdio', version: '1.0.0' });
    await c.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--data', e2e.dir, '--gate', e2e.url],
        stderr: 'pipe',
      }),
    );
    // The relay signs its tokens on the real clock: the test clock stands there.
    await e2e.setClock(0);
    const args = { from_account: 'acct_a', to_account: 'acct_b', amount: 2500, currency: 'USD' };
    const before = e2e.runs.get('transfer_funds') ?? 0;
    const first = await c.callTool({ name: 'transfer_funds', arguments: args });
    const pending = first.structuredContent as {
      outcome: string;
      decision_id: string;
      retry: { _meta: Record<string, unknown> };
    };
    expect(pending.outcome).toBe('pending');
    const token = `Bearer ${readOperatorToken(e2e.dir)}`;
    for (const name of ['treasurer-k1', 'treasurer-k2']) {
      const key = generateSigningKey();
      const added = await e2e.instance.core.gate.admin(
        'approvers-add',
        { name, roles: ['treasury'], tenants: ['acme'], public_jwk: { ...key.publicJwk } },
        token,
      );
      expect(added.status).toBe(201);
      const approver = createApproverClient({ url: e2e.instance.url, name, key, authorization: token });
      expect((await approver.decide(pending.decision_id, 'approve', 'checked')).status).toBe(200);
    }
    expect(e2e.runs.get('transfer_funds') ?? 0).toBe(before);
    const retried = await c.callTool({ name: 'transfer_funds', arguments: args, _meta: pending.retry._meta });
    expect(retried.isError).toBeFalsy();
    expect(e2e.runs.get('transfer_funds')).toBe(before + 1);
    // Once issued, the same retry is a replay: it never runs twice.
    const again = await c.callTool({ name: 'transfer_funds', arguments: args, _meta: pending.retry._meta });
    expect(again.isError).toBe(true);
    expect(e2e.runs.get('transfer_funds')).toBe(before + 1);
    await c.close();
  });
});

describe('a compromised keyless Gate cannot have an MCP call decided on its word', () => {
  /** Makes one echo call with the Gate's ask altered by `t`; returns the denial and its request id. */
  async function tampered(
    t: NonNullable<typeof tamper>,
    token: () => Promise<string> = clientToken,
  ): Promise<{ code: string; request_id: string }> {
    const c = await httpClient(token);
    const before = e2e.totalRuns();
    tamper = t;
    const r = await c.callTool({ name: 'echo', arguments: { message: 'tampered' } });
    await c.close();
    expect(tamper).toBeUndefined();
    expect(r.isError).toBe(true);
    expect(e2e.totalRuns()).toBe(before);
    const body = r.structuredContent as { code: string; request_id: string };
    const types = await entryTypes(body.request_id);
    expect(types).not.toContain('envelope.issued');
    expect(types).not.toContain('execution.receipt');
    return body;
  }

  it('no token: ERR_REQUEST_SIGNATURE', async () => {
    const d = await tampered((req, o) => {
      const { credential: _c, ...rest } = o ?? {};
      return [req, rest];
    });
    expect(d.code).toBe('ERR_REQUEST_SIGNATURE');
  });

  it("another principal's valid token: ERR_REQUEST_SIGNATURE", async () => {
    const other = await oauthToken('someone-else');
    const d = await tampered((req, o) => [req, { ...o, credential: other }]);
    expect(d.code).toBe('ERR_REQUEST_SIGNATURE');
  });

  it('a client-key token that already had a call decided: ERR_TOKEN_INVALID', async () => {
    // The credential of an earlier call that was decided (the last one forwarded).
    const c = await httpClient(clientToken);
    expect((await c.callTool({ name: 'echo', arguments: { message: 'first' } })).isError).toBeFalsy();
    await c.close();
    const used = forwarded.at(-1)!;
    const d = await tampered((req, o) => [req, { ...o, credential: used }]);
    expect(d.code).toBe('ERR_TOKEN_INVALID');
  });

  it('a client-key token a Gate decided a call with stays spent, whatever the Gate does to its own replay memory', async () => {
    const c = await httpClient(clientToken);
    expect((await c.callTool({ name: 'echo', arguments: { message: 'spent once' } })).isError).toBeFalsy();
    await c.close();
    const used = forwarded.at(-1)!;
    // The Gate's database role may delete from its replay memory (gate-role.sql): it clears it.
    const spec = parseBackendSpec(e2e.gate!.config.state);
    if (spec.kind !== 'postgres') throw new Error('keyless state is PostgreSQL');
    const db = new pg.Client({ connectionString: spec.url });
    await db.connect();
    try {
      const r = await db.query(`DELETE FROM ${spec.schema}.gate_request_nonces`);
      expect(r.rowCount).toBeGreaterThan(0);
    } finally {
      await db.end();
    }
    const d = await tampered((req, o) => [req, { ...o, credential: used }]);
    expect(d.code).toBe('ERR_TOKEN_INVALID');
    // Nor is it taken at the Control Plane process's own MCP endpoint (`up` serves one).
    const direct = await fetch(new URL('/mcp', e2e.instance.url), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${used}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    await direct.arrayBuffer();
    expect(direct.status).toBe(401);
  });

  it('other parameters than the evidence holds: ERR_REQUEST_SIGNATURE', async () => {
    const d = await tampered((req, o) => [{ ...req, params: { message: 'something else' } }, o]);
    expect(d.code).toBe('ERR_REQUEST_SIGNATURE');
  });

  it('an OAuth token past its expiry: ERR_TOKEN_INVALID', async () => {
    const expired = await oauthToken('agent-k', {}, -120);
    const d = await tampered(
      (req, o) => [req, { ...o, credential: expired }],
      () => oauthToken('agent-k'),
    );
    expect(d.code).toBe('ERR_TOKEN_INVALID');
  });

  it('roles the Gate claims are not what Cedar sees: the token’s are', async () => {
    // The Gate claims an operator role for a principal without one: delete_records stays denied.
    const c = await httpClient(clientToken);
    tamper = (req, o) => [{ ...req, roles: ['operator', 'admin'] }, o];
    const r = await c.callTool({ name: 'delete_records', arguments: { table: 'orders', ids: ['1'] } });
    await c.close();
    expect(r.structuredContent).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
  });
});

describe('a client-key token of the relay is bound to its message (`body_sha256`)', () => {
  let forge: ForgingGate;
  beforeAll(async () => {
    // A compromised Gate: its own certificate, speaking to the Control Plane's routes itself.
    forge = await forgingGate(e2e, RESOURCE);
  });
  afterAll(() => forge?.close());

  /** A tools/call message as the relay posts it, and a token signed for exactly its bytes. */
  const message = (tool: string, args: JsonObject, more: JsonObject = {}): { bytes: Buffer; token: string } =>
    forge.message('tools/call', { name: tool, arguments: args, ...more });
  const decideAs = (tool: string, params: JsonObject, token: string, bytes: Buffer): Promise<JsonObject> =>
    forge.decideAs(tool, params, token, bytes);

  it('the call the message asks for is decided (the route a Gate uses works as the attack below uses it)', async () => {
    const { bytes, token } = message('echo', { message: 'as asked' });
    expect(await decideAs('echo', { message: 'as asked' }, token, bytes)).toMatchObject({ outcome: 'allow' });
  });

  it('a time limit other than its acceptance recorded (docs/jobs.md): ERR_REQUEST_MALFORMED, no envelope', async () => {
    const ask = async (accepted: boolean, asked: boolean): Promise<JsonObject> => {
      const { bytes, token } = message('echo', { message: `mode ${accepted} ${asked}` });
      return forge.decideAs('echo', { message: `mode ${accepted} ${asked}` }, token, bytes, {
        accepted,
        asked,
      });
    };
    const malformed = { outcome: 'deny', code: 'ERR_REQUEST_MALFORMED', decision_id: null };
    // Accepted as synchronous, asked with the background limit; and the reverse.
    expect(await ask(false, true)).toMatchObject(malformed);
    expect(await ask(true, false)).toMatchObject(malformed);
    // Accepted and asked in the background: decided.
    expect(await ask(true, true)).toMatchObject({ outcome: 'allow' });
    // Only an acceptance says it was asked in the background, and only as `true`.
    const event = (type: string, background: unknown) =>
      forge.ask('/v1/internal/gate/event', {
        type,
        trace_id: 'b'.repeat(32),
        request_id: `bg-${Date.now()}-${type}`,
        tenant: 'acme',
        identity: 'demo-agent',
        payload: { tool: 'echo', client: 'demo-agent', background } as JsonObject,
      });
    expect(await event('gateway.accepted', false)).toMatchObject({
      status: 400,
      value: { code: 'ERR_REQUEST_MALFORMED' },
    });
    expect(await event('gateway.failed', true)).toMatchObject({
      status: 400,
      value: { code: 'ERR_REQUEST_MALFORMED' },
    });
  });

  it('another call than the message asks for: ERR_REQUEST_SIGNATURE, no envelope', async () => {
    const { bytes, token } = message('echo', { message: 'what the client asked' });
    expect(await decideAs('echo', { message: 'what the Gate wants' }, token, bytes)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_SIGNATURE',
    });
  });

  it('another message than the token was signed for: ERR_REQUEST_SIGNATURE', async () => {
    const { token } = message('echo', { message: 'signed' });
    const other = message('echo', { message: 'sent' }).bytes;
    expect(await decideAs('echo', { message: 'sent' }, token, other)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_SIGNATURE',
    });
  });

  it('the continuation of a call waiting for input (decided by nothing at the ingress): ERR_REQUEST_SIGNATURE', async () => {
    const { bytes, token } = message('echo', { message: 'round 2' }, { requestState: 'state-1' });
    expect(await decideAs('echo', { message: 'round 2' }, token, bytes)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_SIGNATURE',
    });
  });

  it('no message with a bound token: ERR_REQUEST_SIGNATURE', async () => {
    const { token } = message('echo', { message: 'kept back' });
    expect(await decideAs('echo', { message: 'kept back' }, token, Buffer.alloc(0))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_REQUEST_SIGNATURE',
    });
  });

  it('the Gate refuses a bound token presented with another body (401 ERR_TOKEN_INVALID), nothing runs', async () => {
    const { token } = message('echo', { message: 'signed' });
    const before = e2e.totalRuns();
    const res = await fetch(new URL('/mcp', e2e.url), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'swapped' } },
      }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    expect(e2e.totalRuns()).toBe(before);
  });
});
