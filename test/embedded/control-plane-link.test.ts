/**
 * A separate Gate's link to the Control Plane process parses every answer as untrusted input
 * (docs/deployment.md "Separate Gate"; FC-INV-4, FC-INV-6, L7 "wire answers are parsed as
 * untrusted input"): a real mutual-TLS listener answers what each case says, and the Gate's ports
 * turn anything but a well-formed answer into a deny (`ERR_CONTROL_PLANE_UNAVAILABLE`) or a
 * rejection (`ERR_LEDGER_UNAVAILABLE`), never an allow. Also: the configuration of `serve gate`
 * is closed (no key of any kind) and its URLs are https origins, its state PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRemoteControlPlane,
  createRemoteGateLedger,
  decisionOf,
  parseGateConfig,
} from '../../src/embedded/index.js';
import type { GovernedRequest } from '../../src/control-plane/index.js';
import {
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
} from '../../src/transport/index.js';
import type { MtlsAgent, MtlsServer } from '../../src/transport/index.js';

const ENVELOPE = 'eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln';
const HASH = 'a'.repeat(64);
const ALLOW = {
  outcome: 'allow',
  decision_id: 'dec_1',
  envelope: ENVELOPE,
  decision_ref: { index: 3, entry_hash: HASH },
  policy_bundle: HASH,
};
const REQ: GovernedRequest = {
  request_id: 'r1',
  trace_id: 't1',
  identity: 'demo-agent',
  tenant: 'acme',
  tool: 'echo',
  params: { message: 'x' },
  timestamp: 1,
  session: null,
  request_sha256: HASH,
};

describe('the Gate reads its Control Plane process as untrusted', () => {
  let root: string;
  let server: MtlsServer;
  let agent: MtlsAgent;
  /** What the listener answers next: status and raw body, or `hang` to never answer. */
  let next: { status: number; body: string } | 'hang' = { status: 200, body: '{}' };
  /** Answers taken before `next`, one per request, in order. */
  let queue: ({ status: number; body: string } | 'hang')[] = [];
  /** The requests the listener received: path and parsed body. */
  let seen: { url: string; body: unknown }[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fc-cp-link-'));
    const pki = join(root, 'pki');
    await createDevCa(pki);
    // The Control Plane's internal listener serves its own role's certificate.
    await issueCert(pki, { role: 'control-plane' });
    // The Gate's own certificate, as `serve gate` requires: only to connect out with.
    await issueCert(pki, { role: 'gate', name: 'gate-1', clientOnly: true });
    const files = {
      ca: pkiPaths(pki).caCert,
      cert: pkiPaths(pki).cert('control-plane'),
      key: pkiPaths(pki).key('control-plane'),
    };
    server = await createMtlsServer(
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          seen.push({ url: req.url ?? '', body: text === '' ? undefined : (JSON.parse(text) as unknown) });
          const a = queue.shift() ?? next;
          if (a === 'hang') return;
          res.writeHead(a.status, { 'content-type': 'application/json' });
          res.end(a.body);
        });
      },
      { files, allow: ['gate'], host: '127.0.0.1', port: 0 },
    );
    agent = await createMtlsAgent({
      files: { ...files, cert: pkiPaths(pki).cert('gate-1'), key: pkiPaths(pki).key('gate-1') },
      expect: ['control-plane'],
      clientOnly: true,
    });
  });
  afterAll(async () => {
    agent.close();
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  const link = () => ({ url: server.url, agent, timeoutMs: 500 });

  it('takes a well-formed allow, and a deny with its own code', async () => {
    const cp = createRemoteControlPlane({ link: link() });
    next = { status: 200, body: JSON.stringify(ALLOW) };
    expect(await cp.decide(REQ)).toEqual(ALLOW);
    next = {
      status: 200,
      body: JSON.stringify({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: 'dec_1' }),
    };
    expect(await cp.decide(REQ)).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
  });

  it.each([
    ['not JSON', 200, 'allow'],
    ['an allow without its envelope', 200, JSON.stringify({ ...ALLOW, envelope: undefined })],
    ['an allow with a field more', 200, JSON.stringify({ ...ALLOW, approved: true })],
    ['an envelope that is not a compact JWS', 200, JSON.stringify({ ...ALLOW, envelope: 'x.y' })],
    [
      'a decision record that is not a ledger reference',
      200,
      JSON.stringify({ ...ALLOW, decision_ref: { index: -1, entry_hash: HASH } }),
    ],
    ['a bundle hash that is not one', 200, JSON.stringify({ ...ALLOW, policy_bundle: 'ACTIVE' })],
    ['an allow under an error status', 500, JSON.stringify(ALLOW)],
    [
      'a deny with an unknown code',
      200,
      JSON.stringify({ outcome: 'deny', code: 'ERR_NOPE', reason: '', decision_id: null }),
    ],
    ['an outcome that is neither', 200, JSON.stringify({ ...ALLOW, outcome: 'executed' })],
  ])('denies ERR_CONTROL_PLANE_UNAVAILABLE on %s', async (_what, status, body) => {
    next = { status, body };
    const d = await createRemoteControlPlane({ link: link() }).decide(REQ);
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE', decision_id: null });
  });

  it('denies ERR_CONTROL_PLANE_UNAVAILABLE when no answer comes within the deadline', async () => {
    next = 'hang';
    const d = await createRemoteControlPlane({ link: link() }).decide(REQ);
    expect(d).toMatchObject({ outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE' });
  });

  it('sends no OAuth owner without its token: the Control Plane takes the owner from the token alone', async () => {
    next = { status: 200, body: JSON.stringify(ALLOW) };
    // A deadline no loaded machine misses: an allow is expected.
    const cp = createRemoteControlPlane({ link: { ...link(), timeoutMs: 10_000 } });
    seen = [];
    expect(await cp.decide({ ...REQ, owner: 'alice' })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
    });
    expect(seen).toEqual([]);
    // With the token: sent with it, and never the owner itself.
    expect(await cp.decide({ ...REQ, owner: 'alice' }, { credential: 'tok.en.sig' })).toEqual(ALLOW);
    expect(seen[0]!.body).toMatchObject({ credential: 'tok.en.sig' });
    expect(seen[0]!.body).not.toHaveProperty('owner');
  });

  it('takes a listing of exactly the listing shape; a template pattern is derived, never read from the wire', async () => {
    const cp = createRemoteControlPlane({ link: { ...link(), timeoutMs: 10_000 } });
    const tool = { name: 'echo', description: 'd', inputSchema: { type: 'object' } };
    const template = {
      name: 'files.read',
      description: 'd',
      inputSchema: { type: 'object' },
      mcp: { kind: 'template', upstream: 'file:///{path}', definition: { uriTemplate: 'file:///{path}' } },
    };
    next = { status: 200, body: JSON.stringify({ tools: [tool] }) };
    expect(await cp.callableTools!({ identity: 'a', tenant: 't', roles: [] })).toEqual([tool]);
    next = { status: 200, body: JSON.stringify({ entries: [{ ...template, pattern: '.*' }] }) };
    await expect(cp.mcpEntries!()).rejects.toThrow('garbage');
    next = {
      status: 200,
      body: JSON.stringify({ entries: [{ ...template, mcp: { ...template.mcp, pattern: '.*' } }] }),
    };
    await expect(cp.mcpEntries!()).rejects.toThrow('garbage');
    next = { status: 200, body: JSON.stringify({ entries: [template] }) };
    const [entry] = await cp.mcpEntries!();
    expect(entry!.mcp!.pattern!.test('file:///notes.txt')).toBe(true);
    expect(entry!.mcp!.pattern!.test('http://elsewhere/x')).toBe(false);
  });

  it.each([
    ['a field more', { tools: [{ name: 'e', description: '', inputSchema: {}, run: true }] }],
    ['no input schema', { tools: [{ name: 'e', description: '' }] }],
    [
      'an unknown entry kind',
      {
        tools: [
          { name: 'e', description: '', inputSchema: {}, mcp: { kind: 'x', upstream: 'u', definition: {} } },
        ],
      },
    ],
    [
      'a template that is not one',
      {
        tools: [
          {
            name: 'e',
            description: '',
            inputSchema: {},
            mcp: { kind: 'template', upstream: '', definition: {} },
          },
        ],
      },
    ],
    ['not a list', { tools: {} }],
    ['another field', { tools: [], more: 1 }],
  ])('rejects a listing with %s (the Gate then lists nothing)', async (_what, body) => {
    next = { status: 200, body: JSON.stringify(body) };
    await expect(
      createRemoteControlPlane({ link: link() }).callableTools!({ identity: 'a', tenant: 't', roles: [] }),
    ).rejects.toThrow('garbage');
  });

  it('rejects a ledger confirmation that is not one and evidence stored under another hash, and reads no raw evidence', async () => {
    const ledger = createRemoteGateLedger(link(), 500);
    const event = {
      type: 'gateway.accepted' as const,
      trace_id: 't',
      request_id: 'r',
      tenant: 'acme',
      identity: 'demo-agent',
      payload: {},
    };
    next = { status: 200, body: JSON.stringify({ index: 1, entry_hash: HASH }) };
    expect(await ledger.appendGatewayEvent(event)).toEqual({ index: 1, entry_hash: HASH });
    for (const body of ['{"index":1}', '{"index":1,"entry_hash":"x"}', 'null', '[]']) {
      next = { status: 200, body };
      await expect(ledger.appendGatewayEvent(event)).rejects.toMatchObject({
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
    }
    next = { status: 503, body: JSON.stringify({ index: 1, entry_hash: HASH }) };
    await expect(ledger.appendGatewayEvent(event)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    next = { status: 200, body: JSON.stringify({ sha256: HASH }) };
    await expect(ledger.putEvidence(new Uint8Array([1, 2, 3]), 'application/json')).rejects.toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    // Raw evidence is never read through the link, whatever the other side would answer.
    next = { status: 200, body: JSON.stringify({ body: Buffer.from('other').toString('base64') }) };
    await expect(ledger.getEvidence(HASH)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    next = 'hang';
    await expect(ledger.appendGatewayEvent(event)).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });
    // Its read-backs of the acceptances whose answer was lost are not this test's.
    ledger.close();
  });

  describe('an outcome closing one attempt (FC-INV-5)', () => {
    const outcome = {
      type: 'gateway.completed' as const,
      trace_id: 't',
      request_id: 'r',
      tenant: 'acme',
      identity: 'demo-agent',
      payload: { outcome: 'executed', result_sha256: HASH },
      closes: 4,
    };
    const closed = {
      status: 409,
      body: JSON.stringify({ outcome: 'deny', code: 'ERR_LEDGER_REQUEST_CLOSED', reason: 'closed' }),
    };
    const lost = {
      status: 503,
      body: JSON.stringify({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', reason: '' }),
    };
    const stored = (over: Record<string, unknown> = {}) => ({
      index: 9,
      entry_hash: 'c'.repeat(64),
      type: 'gateway.completed',
      trace_id: 't',
      request_id: 'r',
      tenant: 'acme',
      actor: { id: 'demo-agent', role: 'gate' },
      payload: { result_sha256: HASH, outcome: 'executed' },
      ...over,
    });
    const entries = (...list: unknown[]) => ({ status: 200, body: JSON.stringify({ entries: list }) });
    const events = () => seen.filter((x) => x.url === '/v1/internal/gate/event');

    it('sends the attempt it closes and is tried again after a lost answer, until confirmed', async () => {
      seen = [];
      queue = [lost, 'hang', { status: 200, body: JSON.stringify({ index: 9, entry_hash: HASH }) }];
      const ledger = createRemoteGateLedger(link(), 3000);
      expect(await ledger.appendGatewayEvent(outcome)).toEqual({ index: 9, entry_hash: HASH });
      expect(events()).toHaveLength(3);
      expect(events().every((x) => (x.body as { closes?: unknown }).closes === 4)).toBe(true);
    });

    it('after a lost answer, a request found closed by exactly this outcome is confirmed from its entries', async () => {
      seen = [];
      queue = [lost, closed, entries(stored({ type: 'gateway.accepted', index: 4 }), stored())];
      const ledger = createRemoteGateLedger(link(), 3000);
      expect(await ledger.appendGatewayEvent(outcome)).toEqual({ index: 9, entry_hash: 'c'.repeat(64) });
    });

    it.each([
      ['another outcome type', { type: 'request.abandoned' }],
      ['another payload', { payload: { outcome: 'executed', result_sha256: 'd'.repeat(64) } }],
      ['another trace', { trace_id: 'u' }],
      ['another identity', { actor: { id: 'other', role: 'gate' } }],
      ['an entry before the attempt', { index: 3 }],
    ])('after a lost answer, a request closed by %s is ERR_LEDGER_REQUEST_CLOSED', async (_what, over) => {
      queue = [lost, closed, entries(stored(over))];
      const ledger = createRemoteGateLedger(link(), 3000);
      await expect(ledger.appendGatewayEvent(outcome)).rejects.toMatchObject({
        code: 'ERR_LEDGER_REQUEST_CLOSED',
      });
    });

    it('a request closed at the first try is ERR_LEDGER_REQUEST_CLOSED without reading its entries; a definite refusal is not tried again', async () => {
      seen = [];
      queue = [closed];
      const ledger = createRemoteGateLedger(link(), 3000);
      await expect(ledger.appendGatewayEvent(outcome)).rejects.toMatchObject({
        code: 'ERR_LEDGER_REQUEST_CLOSED',
      });
      expect(seen.map((x) => x.url)).toEqual(['/v1/internal/gate/event']);
      seen = [];
      queue = [
        { status: 400, body: JSON.stringify({ outcome: 'deny', code: 'ERR_REQUEST_MALFORMED', reason: '' }) },
      ];
      await expect(ledger.appendGatewayEvent(outcome)).rejects.toMatchObject({
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect(seen).toHaveLength(1);
    });

    it('a gateway.accepted whose answer was lost is read back later: found without an outcome, its attempt gets the denial the Gate gave, closing exactly it', async () => {
      const acceptedEvent = {
        type: 'gateway.accepted' as const,
        trace_id: 't',
        request_id: 'r',
        tenant: 'acme',
        identity: 'demo-agent',
        payload: { tool: 'echo', client: 'demo-agent', request_sha256: HASH },
      };
      seen = [];
      queue = [
        lost,
        entries(stored({ type: 'gateway.accepted', index: 4, payload: acceptedEvent.payload })),
        { status: 200, body: JSON.stringify({ index: 9, entry_hash: HASH }) },
      ];
      const ledger = createRemoteGateLedger(link(), 700);
      try {
        await expect(ledger.appendGatewayEvent(acceptedEvent)).rejects.toMatchObject({
          code: 'ERR_LEDGER_UNAVAILABLE',
        });
        await expect
          .poll(() => events().map((x) => x.body as { type?: unknown; closes?: unknown }), {
            timeout: 8000,
            message: JSON.stringify(seen),
          })
          .toContainEqual(expect.objectContaining({ type: 'gateway.failed', closes: 4 }));
        expect(
          seen.map((x) => x.url),
          JSON.stringify(seen),
        ).toEqual(['/v1/internal/gate/event', '/v1/internal/gate/entries', '/v1/internal/gate/event']);
      } finally {
        ledger.close();
      }
    });

    it('gives up with ERR_LEDGER_UNAVAILABLE when no try is confirmed within its deadline, and tries it again in the background until one answers', async () => {
      queue = [];
      next = lost;
      const ledger = createRemoteGateLedger(link(), 700);
      try {
        await expect(ledger.appendGatewayEvent(outcome)).rejects.toMatchObject({
          code: 'ERR_LEDGER_UNAVAILABLE',
        });
        expect(ledger.unsettled()).toBe(1);
        seen = [];
        next = { status: 200, body: JSON.stringify({ index: 9, entry_hash: HASH }) };
        await expect.poll(() => ledger.unsettled(), { timeout: 5000 }).toBe(0);
        expect(events().map((x) => (x.body as { closes?: unknown }).closes)).toEqual([4]);
        // A request closed meanwhile (by the lost try itself, or a sweep) is settled too.
        next = lost;
        await expect(ledger.appendGatewayEvent({ ...outcome, closes: 5 })).rejects.toMatchObject({
          code: 'ERR_LEDGER_UNAVAILABLE',
        });
        next = closed;
        await expect.poll(() => ledger.unsettled(), { timeout: 5000 }).toBe(0);
        // Stopped, it tries nothing more.
        next = lost;
        await expect(ledger.appendGatewayEvent({ ...outcome, closes: 6 })).rejects.toMatchObject({
          code: 'ERR_LEDGER_UNAVAILABLE',
        });
        ledger.close();
        seen = [];
        await new Promise((r) => setTimeout(r, 1500));
        expect(events()).toEqual([]);
      } finally {
        ledger.close();
        next = { status: 200, body: '{}' };
      }
    });
  });

  it('decisionOf accepts exactly the two shapes', () => {
    expect(decisionOf(ALLOW)).toEqual(ALLOW);
    expect(
      decisionOf({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'r', decision_id: null }),
    ).toMatchObject({
      code: 'ERR_POLICY_DENY',
    });
    expect(
      decisionOf({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'r', decision_id: null, x: 1 }),
    ).toBe(undefined);
  });
});

describe('serve gate configuration', () => {
  const base = {
    listen: { host: '127.0.0.1', port: 0 },
    control_plane_url: 'https://127.0.0.1:7444',
    executor_url: 'https://127.0.0.1:7443',
    tls: { ca: 'ca.pem', cert: 'gate.pem', key: 'gate.key' },
    state: 'postgres://failclosed@127.0.0.1:5432/failclosed?schema=failclosed',
  };
  const parse = (o: object) => parseGateConfig(Buffer.from(JSON.stringify(o)), '/etc/failclosed');

  it('resolves paths against its directory and defaults its deadlines', () => {
    const c = parse(base);
    expect(c.tls.cert).toBe('/etc/failclosed/gate.pem');
    expect(c.control_plane_timeout_ms).toBe(5000);
    expect(c.timestamp_tolerance_ms).toBe(120_000);
  });

  it.each([
    ['a key of any kind', { ...base, issuer_key: 'keys/issuer.jwk' }, 'unknown field issuer_key'],
    ['an operator token', { ...base, operator_token: 'x' }, 'unknown field operator_token'],
    [
      'plain HTTP to the Control Plane',
      { ...base, control_plane_url: 'http://127.0.0.1:7444' },
      'https://HOST:PORT',
    ],
    [
      'a path in the executor URL',
      { ...base, executor_url: 'https://127.0.0.1:7443/x' },
      'https://HOST:PORT',
    ],
    ['SQLite state (not shared)', { ...base, state: 'sqlite' }, 'postgres:// URL'],
    ['a host name to listen on', { ...base, listen: { host: 'localhost', port: 1 } }, 'IP address'],
    ['an unknown TLS field', { ...base, tls: { ...base.tls, pass: 'x' } }, 'tls: unknown field pass'],
    ['mcp without its resource', { ...base, mcp: {} }, 'mcp.resource is required'],
    [
      'a local job queue (it would die with the Gate)',
      { ...base, jobs: { queue: 'local' } },
      'jobs.queue must be "nats"',
    ],
    [
      'queue workers (a Gate runs no tool)',
      { ...base, jobs: { queue: 'nats', url: 'nats://127.0.0.1:4222', workers: 2 } },
      'a Gate runs no tool',
    ],
    [
      'an mcp issuer on plain HTTP off loopback',
      {
        ...base,
        mcp: {
          resource: 'https://mcp.example/mcp',
          oauth: { issuer: 'i', jwks_uri: 'http://idp.example/jwks' },
        },
      },
      'oauth.jwks_uri must be https',
    ],
    [
      'an unknown mcp field',
      { ...base, mcp: { resource: 'https://mcp.example/mcp', token: 'x' } },
      'unknown field',
    ],
  ])('refuses %s', (_what, config, message) => {
    expect(() => parse(config)).toThrow(message);
  });
});
