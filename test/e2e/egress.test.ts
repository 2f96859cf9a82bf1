/**
 * Egress control end to end (OE-INV-011, SPEC §6 Redaction and egress): a command tool granted
 * network with an egress allowlist of one loopback port, approved by policy and run through the
 * real Gate, Control Plane, envelope, Execution Layer and bubblewrap sandbox. It reaches the
 * listed service through the egress proxy; a destination not on the list is refused
 * `ERR_EGRESS_DENIED`, the unlisted service never sees a connection, and the ledgered receipt
 * names the code and the refused destination.
 */
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPolicyDir } from '../../src/embedded/index.js';
import type { E2e } from './harness.js';
import { session, startE2e } from './harness.js';

let work: string;
let e2e: E2e;

interface Service {
  readonly server: Server;
  connections: number;
  port(): number;
}

async function service(body: string): Promise<Service> {
  const s: Service = {
    server: createServer((socket) => {
      s.connections += 1;
      socket.on('error', () => undefined);
      socket.once('data', () =>
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`),
      );
    }),
    connections: 0,
    port: () => (s.server.address() as AddressInfo).port,
  };
  await new Promise<void>((done) => s.server.listen(0, '127.0.0.1', done));
  return s;
}

let listed: Service;
let unlisted: Service;

function egressPolicyDir(): string {
  const dir = join(work, 'policy');
  cpSync(demoPolicyDir(), dir, { recursive: true });
  writeFileSync(
    join(dir, 'tools', 'fetch_url.json'),
    JSON.stringify({
      name: 'fetch_url',
      description: 'fetches a URL through the egress proxy',
      risk: 'low',
      adapter: {
        type: 'command',
        argv: ['/usr/bin/curl', '-sS', '--max-time', '5', '--', '{url}'],
        limits: {
          timeout_ms: 10_000,
          max_output_bytes: 65536,
          network: true,
          egress: [`127.0.0.1:${listed.port()}`],
        },
      },
      parameters: {
        type: 'object',
        properties: { url: { type: 'string', maxLength: 256, pattern: '^http://' } },
        required: ['url'],
        additionalProperties: false,
      },
    }),
  );
  writeFileSync(
    join(dir, 'tools', 'api_get.json'),
    JSON.stringify({
      name: 'api_get',
      description: 'GETs an item of the listed service (http adapter)',
      risk: 'low',
      adapter: {
        type: 'http',
        method: 'GET',
        url: `http://127.0.0.1:${listed.port()}/items/{id}`,
        limits: {
          timeout_ms: 5000,
          max_output_bytes: 65536,
          network: true,
          egress: [`127.0.0.1:${listed.port()}`],
        },
      },
      parameters: {
        type: 'object',
        properties: { id: { type: 'string', maxLength: 128 } },
        required: ['id'],
        additionalProperties: false,
      },
    }),
  );
  appendFileSync(
    join(dir, 'schema.cedarschema'),
    '\naction "api_get" appliesTo { principal: Agent, resource: Tenant, context: { params: { id: String }, risk: String, tainted: Bool } };\n',
  );
  appendFileSync(
    join(dir, 'schema.cedarschema'),
    '\naction "fetch_url" appliesTo { principal: Agent, resource: Tenant, context: { params: { url: String }, risk: String, tainted: Bool } };\n',
  );
  writeFileSync(
    join(dir, 'policies', 'allow-fetch-url.cedar'),
    '@reason("egress test")\npermit (principal, action in [Action::"fetch_url", Action::"api_get"], resource);\n',
  );
  return dir;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-egress-'));
  listed = await service('listed service says hi');
  unlisted = await service('unlisted service secret');
  e2e = await startE2e({ policyDir: egressPolicyDir() });
});

afterAll(async () => {
  await e2e?.close();
  for (const s of [listed, unlisted]) await new Promise<void>((done) => s.server.close(() => done()));
  rmSync(work, { recursive: true, force: true });
});

const call = (url: string) => e2e.client().call('fetch_url', { url }, { session: session() });

describe('egress allowlist through the embedded gate (OE-INV-011)', () => {
  it('the listed loopback port is reached through the egress proxy', async () => {
    const r = await call(`http://127.0.0.1:${listed.port()}/`);
    expect(r).toMatchObject({
      outcome: 'executed',
      result: { exit_code: 0, stdout: 'listed service says hi' },
    });
    expect(listed.connections).toBe(1);
  });

  it('an unlisted loopback service → ERR_EGRESS_DENIED, never reached, the receipt names it', async () => {
    const before = e2e.runs.get('fetch_url') ?? 0;
    const r = await call(`http://127.0.0.1:${unlisted.port()}/`);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
    expect(JSON.stringify(r)).not.toContain('unlisted service secret');
    expect(unlisted.connections).toBe(0);
    // The tool process was started (inside the sandbox) and ended at its first refused connection.
    expect(e2e.runs.get('fetch_url')).toBe(before + 1);
    const view = await e2e.evidence(r.request_id ?? '');
    const records = view.body['records'] as { entry: { type: string; payload: Record<string, unknown> } }[];
    const receipt = records.find((x) => x.entry.type === 'execution.receipt');
    expect(receipt?.entry.payload).toMatchObject({
      status: 'failed',
      code: 'ERR_EGRESS_DENIED',
      reason: `egress to 127.0.0.1:${unlisted.port()} is not on the allowlist`,
    });
  });
});

describe('http tools through the embedded gate', () => {
  it('an http tool reaches its fixed origin; a parameter cannot change the host', async () => {
    const before = listed.connections;
    const r = await e2e
      .client()
      .call('api_get', { id: `x@127.0.0.1:${unlisted.port()}/` }, { session: session() });
    expect(r).toMatchObject({ outcome: 'executed', result: { status: 200, body: 'listed service says hi' } });
    expect(listed.connections).toBe(before + 1);
    expect(unlisted.connections).toBe(0);
  });
});
