/**
 * The signing client against the embedded deployment (FC-INV-3, FC-INV-6): a real governed call
 * through Gate → Control Plane → Execution Layer → ledger, and the denials the client must see.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index.js';
import { buildSignedRequest, parseCallResult } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { faultDecorators, noFaults } from '../support/faults.js';

let dir: string;
let instance: EmbeddedInstance;
const faults = noFaults();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-client-'));
  expect((await initDataDir(dir)).created).toBe(true);
  expect((await initDataDir(dir)).created).toBe(false);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0, decorate: faultDecorators(faults) });
}, 60_000);

afterAll(async () => {
  await instance?.close();
  rmSync(dir, { recursive: true, force: true });
});

function demoClient(overrides: { now?: () => number } = {}) {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({
    url: instance.url,
    identity: file.identity,
    tenant: file.tenant,
    key: file.key,
    ...overrides,
  });
}

describe('client → embedded deployment', () => {
  it('keeps private keys and the operator token 0600', () => {
    expect(statSync(join(dir, 'clients', 'demo-agent.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'operator.token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'keys', 'issuer.jwk')).mode & 0o777).toBe(0o600);
  });

  it('an allowed call executes and leaves evidence with inclusion proofs (FC-INV-5)', async () => {
    const r = await demoClient().call('echo', { message: 'hello' });
    expect(r).toMatchObject({ outcome: 'executed' });
    if (r.outcome !== 'executed') return;
    const res = await fetch(`${instance.url}/v1/requests/${r.request_id}`, {
      headers: { authorization: `Bearer ${readOperatorToken(dir)}` },
    });
    expect(res.status).toBe(200);
    const view = (await res.json()) as {
      outcome: string;
      records: { entry: { type: string }; inclusion: unknown }[];
    };
    expect(view.outcome).toBe('executed');
    const types = view.records.map((x) => x.entry.type);
    expect(types).toContain('gateway.accepted');
    expect(types).toContain('decision');
    expect(types).toContain('execution.receipt');
    expect(types).toContain('gateway.completed');
    expect(view.records.every((x) => x.inclusion !== null)).toBe(true);
  });

  it('a clock skewed past the tolerance is denied (scenario 18)', async () => {
    const r = await demoClient({ now: () => Date.now() + 10 * 60_000 }).call('echo', { message: 'x' });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_TIMESTAMP' });
  });

  it('an unknown tool is denied by the Control Plane', async () => {
    const r = await demoClient().call('no_such_tool', {});
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
  });

  it('the Control Plane switched off → ERR_CONTROL_PLANE_UNAVAILABLE (scenario 5)', async () => {
    faults.controlPlane = 'throw';
    try {
      const r = await demoClient().call('echo', { message: 'x' });
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE' });
    } finally {
      faults.controlPlane = 'off';
    }
  });

  it('the nonce store failing → deny, nothing executed (scenario 8)', async () => {
    faults.nonceStore = 'throw';
    try {
      const r = await demoClient().call('echo', { message: 'x' });
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    } finally {
      faults.nonceStore = 'off';
    }
  });

  it('the ledger failing → ERR_LEDGER_UNAVAILABLE (scenario 9)', async () => {
    faults.ledger = 'throw';
    try {
      const r = await demoClient().call('echo', { message: 'x' });
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    } finally {
      faults.ledger = 'off';
    }
  });

  it('a direct call to the Execution Layer without an envelope is denied (scenario 3)', async () => {
    const res = await fetch(`${instance.executionUrl}/v1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tool: 'echo', tenant: 'acme', params: { message: 'x' } }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_MISSING' });
  });

  it('a tampered request is denied and a replay of a good one too', async () => {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const key = importSigningKeyJwk(file.key);
    const req = buildSignedRequest({
      key,
      identity: file.identity,
      tenant: file.tenant,
      action: 'echo',
      parameters: { message: 'a' },
      timestampMs: Date.now(),
    });
    const post = async (body: unknown) => {
      const res = await fetch(`${instance.url}/v1/calls`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return parseCallResult(res.status, await res.json(), req.request_id);
    };
    expect(await post({ ...req, parameters: { message: 'b' } })).toMatchObject({
      code: 'ERR_REQUEST_SIGNATURE',
    });
    expect(await post(req)).toMatchObject({ outcome: 'executed' });
    expect(await post(req)).toMatchObject({ code: 'ERR_REQUEST_REPLAYED' });
  });

  it('an unreachable Gate is a deny, never a success', async () => {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const client = createClient({
      url: 'http://127.0.0.1:1',
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const r = await client.call('echo', { message: 'x' });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', status: 0 });
  });

  it('parseCallResult refuses an executed answer without a receipt', () => {
    expect(
      parseCallResult(200, { outcome: 'executed', trace_id: 't', decision_id: 'd', result: 1 }, 'r'),
    ).toMatchObject({ outcome: 'unknown', code: 'ERR_INTERNAL', status: 200 });
  });
});
