/**
 * Every exception caught at a role's edge still leaves a ledger record carrying the request id
 * (FC-INV-5 "attributable audit records for every request", FC-INV-3/4, STYLE "Errors and
 * denials"): the Gate's outer catch, the executor's and the Execution Layer listener's. Each is
 * reached with a fault-injecting wrapper around a real component that throws where no guard of
 * the call path catches it; the answer is a deny with its code and the tool never runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/index.js';
import {
  gateLedgerOver,
  createExecutionServer,
  DEMO_CLIENT,
  readClientFile,
  readOperatorToken,
} from '../../src/embedded/index.js';
import { createGate } from '../../src/gate/index.js';
import type { Gate, GateDeps } from '../../src/gate/index.js';
import { sha256Hex } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import type { LedgerEntry } from '../../src/ledger/index.js';
import { session, startE2e } from './harness.js';
import type { E2e } from './harness.js';

let e2e: E2e;
beforeAll(async () => {
  e2e = await startE2e();
});
afterAll(async () => {
  await e2e?.close();
});

/** Throws on every read: an answer no guard of the call path expects to explode. */
const exploding = (what: string): object =>
  new Proxy(
    {},
    {
      // Not a thenable (so it survives promise resolution); every other read throws.
      get: (_t, key) => {
        if (key === 'then') return undefined;
        throw new Error(`${what} (fault injected)`);
      },
      has: () => {
        throw new Error(`${what} (fault injected)`);
      },
    },
  );

/** A Gate over the deployment's real roles, with `over` replacing some of them. */
function gateWith(over: Partial<GateDeps>, executed: { count: number }): Gate {
  const core = e2e.instance.core;
  return createGate({
    clock: e2e.clock.now,
    clients: core.state,
    replay: core.state,
    ledger: gateLedgerOver(e2e.instance.core.ledger, e2e.instance.core.ledgerPort),
    controlPlane: core.controlPlane,
    executor: {
      execute: (call) => {
        executed.count += 1;
        return core.executor.execute(call);
      },
      void: (input) => core.executor.void(input),
    },
    operatorTokenSha256: sha256Hex(readOperatorToken(e2e.dir)),
    ...over,
  });
}

function signedBody(params: JsonObject = { message: 'edge' }): { body: Buffer; requestId: string } {
  const demo = readClientFile(e2e.dir, DEMO_CLIENT.identity);
  const req = buildSignedRequest({
    key: importSigningKeyJwk(demo.key),
    identity: demo.identity,
    tenant: demo.tenant,
    action: 'echo',
    parameters: params,
    timestampMs: e2e.clock.now(),
    session: session(),
  });
  return { body: Buffer.from(JSON.stringify(req)), requestId: req.request_id };
}

const recordsOf = (requestId: string): Promise<LedgerEntry[]> =>
  e2e.instance.core.ledger.store.readByRequest(requestId);

describe("the Gate's edge", () => {
  it('a throw after acceptance answers ERR_INTERNAL and records gateway.failed with the request id', async () => {
    const executed = { count: 0 };
    const real = e2e.instance.core.controlPlane;
    const gate = gateWith(
      {
        controlPlane: {
          decide: () => Promise.resolve(exploding('control plane answer') as never),
          ready: () => real.ready(),
          issuerJwks: () => real.issuerJwks(),
        },
      },
      executed,
    );
    const runs = e2e.totalRuns();
    const { body, requestId } = signedBody();
    const a = await gate.call(body);
    expect(a.status).toBe(500);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', request_id: requestId });
    const records = await recordsOf(requestId);
    expect(records.map((r) => r.type)).toEqual(['gateway.accepted', 'gateway.failed']);
    expect(records[1]).toMatchObject({
      request_id: requestId,
      tenant: DEMO_CLIENT.tenant,
      actor: { id: DEMO_CLIENT.identity, role: 'gate' },
      // After acceptance: an outcome of the attempt, which settles it (status `gate`, FC-INV-5).
      payload: { code: 'ERR_INTERNAL', status: 'gate', outcome: 'deny', tool: 'echo' },
    });
    expect(records[1]!.trace_id).toBe(records[0]!.trace_id);
    expect(executed.count).toBe(0);
    expect(e2e.totalRuns()).toBe(runs);
  });

  it('a throw before acceptance still records the authenticated request by id', async () => {
    const executed = { count: 0 };
    let reads = 0;
    // The Gate's clock fails on every read; the first comes after the signature verified.
    const gate = gateWith(
      {
        clock: () => {
          reads += 1;
          throw new Error('clock (fault injected)');
        },
      },
      executed,
    );
    const { body, requestId } = signedBody();
    const a = await gate.call(body);
    expect(reads).toBeGreaterThan(0);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', request_id: requestId });
    const records = await recordsOf(requestId);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'gateway.failed',
      actor: { id: DEMO_CLIENT.identity, role: 'gate' },
      payload: { code: 'ERR_INTERNAL', status: 'internal', auth_method: 'signature' },
    });
    expect(executed.count).toBe(0);
  });

  it('a throw on a request that does not authenticate is recorded by hash only, never under its claimed id', async () => {
    const executed = { count: 0 };
    let failed = false;
    // Fails once (inside the Gate's own unauthenticated denial), then works again.
    const gate = gateWith(
      {
        clock: () => {
          if (!failed) {
            failed = true;
            throw new Error('clock (fault injected)');
          }
          return e2e.clock.now();
        },
      },
      executed,
    );
    const { body } = signedBody();
    const forged = JSON.parse(body.toString('utf8')) as Record<string, string>;
    forged['request_id'] = 'req_claimed_by_someone_else';
    const bytes = Buffer.from(JSON.stringify(forged));
    const a = await gate.call(bytes);
    expect(failed).toBe(true);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    expect(await recordsOf('req_claimed_by_someone_else')).toEqual([]);
    const { ledger } = e2e.instance.core;
    const [last] = await ledger.store.readRange(ledger.size() - 1, ledger.size());
    expect(last).toMatchObject({
      type: 'gateway.failed',
      request_id: '',
      actor: { id: 'anonymous', role: 'gate' },
      payload: { code: 'ERR_INTERNAL', auth_method: 'none', request_sha256: sha256Hex(bytes) },
    });
    expect(executed.count).toBe(0);
  });
});

describe("the executor's edge", () => {
  it('an input that throws on read is a deny ERR_INTERNAL with a denial record carrying its request id', async () => {
    const runs = e2e.totalRuns();
    const input = {
      envelope: 'a.b.c',
      tool: 'echo',
      params: { message: 'edge' },
      trace_id: 'trace-executor-edge',
      request_id: 'req_executor_edge',
      get tenant(): string {
        throw new Error('tenant (fault injected)');
      },
    };
    const r = await e2e.instance.core.executor.execute(input);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    const records = await recordsOf('req_executor_edge');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'denial',
      trace_id: 'trace-executor-edge',
      actor: { role: 'executor' },
      payload: { code: 'ERR_INTERNAL', stage: 'execution', tool: 'echo' },
    });
    expect(e2e.totalRuns()).toBe(runs);
  });
});

describe("the Execution Layer listener's edge", () => {
  it('an executor that throws answers 500 ERR_INTERNAL and leaves a denial record with the request id', async () => {
    const core = e2e.instance.core;
    const server = await createExecutionServer(
      {
        execute: () => {
          throw new Error('executor (fault injected)');
        },
        void: () => {
          throw new Error('executor (fault injected)');
        },
      },
      { host: '127.0.0.1', port: 0, ledger: core.ledgerPort, audience: core.config.audience },
    );
    try {
      const res = await fetch(`${server.url}/v1/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          envelope: 'a.b.c',
          tool: 'echo',
          tenant: 'acme',
          params: { message: 'edge' },
          trace_id: 'trace-listener-edge',
          request_id: 'req_listener_edge',
        }),
      });
      expect(res.status).toBe(500);
      expect(await res.json()).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    } finally {
      await server.close();
    }
    const records = await recordsOf('req_listener_edge');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'denial',
      tenant: 'acme',
      trace_id: 'trace-listener-edge',
      actor: { id: core.config.audience, role: 'executor' },
      payload: { code: 'ERR_INTERNAL', stage: 'execution', tool: 'echo' },
    });
  });
});
