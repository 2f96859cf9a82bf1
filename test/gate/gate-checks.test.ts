/**
 * The Gate's checks one by one, in process (SPEC §2 steps 1, 2, 6, 8; docs/request-format.md
 * "What the Gate checks, in order"): each check can be seen to deny on its own, each deny is
 * ledgered with its code and with the verified (never the claimed) client, tenant and tool, and
 * nothing reaches the Control Plane or the tool (FC-INV-3, FC-INV-4, FC-INV-5).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGate, MAX_CALL_WAIT_MS, MAX_REQUEST_BYTES } from '../../src/gate/index.js';
import type { Gate, GateAnswer, GateDeps, GatewayEvent } from '../../src/gate/index.js';
import { canonicalize, sha256Hex } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import type { SignedRequestBody } from '../../src/client/index.js';
import { OPERATOR_TOKEN, startHarness, T0 } from './harness.js';
import type { Harness, HarnessOptions } from './harness.js';
import { createLocalJobQueue } from '../../src/embedded/local-queue.js';
import type { GateExecutor } from '../../src/gate/index.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(opts: HarnessOptions = {}): Promise<Harness> {
  h = await startHarness(opts);
  return h;
}

const bytesOf = (req: unknown): Buffer => Buffer.from(JSON.stringify(req), 'utf8');
type Body = Record<string, unknown>;
const send = async (x: Harness, req: unknown): Promise<GateAnswer<Body>> => await x.gate.call(bytesOf(req));
const traceOf = (req: SignedRequestBody): string =>
  sha256Hex(canonicalize(req as unknown as JsonValue)).slice(0, 32);
const failed = (x: Harness): GatewayEvent[] => x.ledger.events.filter((e) => e.type === 'gateway.failed');

describe('SPEC §2 step 1: unauthenticated denials are recorded by hash only (FC-INV-3, FC-INV-5)', () => {
  it('an unknown client: the record holds no claimed request id, tenant or identity', async () => {
    const x = await start();
    const req = x.request({ identity: 'mallory', tenant: 'globex' });
    const res = await send(x, req);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      outcome: 'deny',
      code: 'ERR_CLIENT_UNKNOWN',
      reason: expect.any(String) as string,
      request_id: req.request_id,
      trace_id: traceOf(req),
    });
    expect(x.ledger.events).toEqual([
      {
        type: 'gateway.failed',
        trace_id: traceOf(req),
        request_id: null,
        tenant: null,
        identity: null,
        payload: {
          code: 'ERR_CLIENT_UNKNOWN',
          status: 'ingress',
          outcome: 'deny',
          auth_method: 'none',
          request_sha256: sha256Hex(bytesOf(req)),
        },
      },
    ]);
    expect(x.ledger.evidence.size).toBe(0);
    expect(x.cpCalls).toHaveLength(0);
  });

  it('an unparseable body: trace id from the raw hash, request id null', async () => {
    const x = await start();
    const raw = Buffer.from('{"request_id":');
    const res = (await x.gate.call(raw)) as unknown as GateAnswer<Body>;
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ request_id: null, trace_id: sha256Hex(raw).slice(0, 32) });
    expect(x.ledger.events[0]).toMatchObject({ trace_id: sha256Hex(raw).slice(0, 32), request_id: null });
  });

  it('a forged signature claiming a registered client is recorded unattributed', async () => {
    const x = await start();
    const req = { ...x.request(), tenant: 'globex' };
    const res = await send(x, req);
    expect(res.body['code']).toBe('ERR_REQUEST_SIGNATURE');
    expect(x.ledger.events).toHaveLength(1);
    expect(x.ledger.events[0]).toMatchObject({ request_id: null, tenant: null, identity: null });
    expect(x.ledger.events[0]!.payload).toMatchObject({ auth_method: 'none', code: 'ERR_REQUEST_SIGNATURE' });
  });

  it('a revoked client is denied before its signature is checked, unattributed', async () => {
    const x = await start();
    await x.state.revokeClient('agent-1');
    const res = await send(x, x.request());
    expect(res.status).toBe(401);
    expect(res.body['code']).toBe('ERR_CLIENT_REVOKED');
    expect(x.ledger.events[0]).toMatchObject({ identity: null, payload: { auth_method: 'none' } });
    expect(x.cpCalls).toHaveLength(0);
  });

  it('a client registry that fails → ERR_CLIENT_REGISTRY_UNAVAILABLE, denied before policy', async () => {
    const x = await start({
      extra: {
        clients: {
          lookup: () => {
            throw new Error('registry down');
          },
        },
      },
    });
    const req = x.request();
    const res = await send(x, req);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({
      outcome: 'deny',
      code: 'ERR_CLIENT_REGISTRY_UNAVAILABLE',
      trace_id: traceOf(req),
    });
    expect(x.failedCodes()).toEqual(['ERR_CLIENT_REGISTRY_UNAVAILABLE']);
    expect(x.cpCalls).toHaveLength(0);
  });

  it('a null body (the transport stopped reading) and an oversized body → ERR_REQUEST_TOO_LARGE', async () => {
    const x = await start();
    const nul = (await x.gate.call(null)) as unknown as GateAnswer<Body>;
    expect(nul.status).toBe(413);
    expect(nul.body).toMatchObject({ code: 'ERR_REQUEST_TOO_LARGE', request_id: null });
    // A valid request padded past the limit with whitespace is still refused unread.
    const text = JSON.stringify(x.request());
    const big = Buffer.from(text + ' '.repeat(MAX_REQUEST_BYTES + 1 - text.length));
    const over = (await x.gate.call(big)) as unknown as GateAnswer<Body>;
    expect(over.body).toMatchObject({ code: 'ERR_REQUEST_TOO_LARGE', request_id: null });
    expect(x.failedCodes()).toEqual(['ERR_REQUEST_TOO_LARGE', 'ERR_REQUEST_TOO_LARGE']);
    // Two null bodies are two distinct records (distinct placeholder hashes).
    await x.gate.call(null);
    const hashes = failed(x).map((e) => e.payload['request_sha256']);
    expect(new Set(hashes).size).toBe(3);
    expect(hashes[1]).toBe(sha256Hex(big));
    // At exactly the limit, the body is parsed (and here authenticates and runs).
    const exact = Buffer.from(text + ' '.repeat(MAX_REQUEST_BYTES - text.length));
    expect((await x.gate.call(exact)).status).toBe(200);
  });
});

describe('SPEC §2 step 1: authenticated denials carry the verified client and tenant (FC-INV-3, FC-INV-5)', () => {
  it('tenant mismatch: the record names the registered tenant, never the claimed one', async () => {
    const x = await start();
    const req = x.request({ tenant: 'globex' });
    const res = await send(x, req);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ code: 'ERR_REQUEST_TENANT', request_id: req.request_id });
    expect(x.ledger.events).toEqual([
      {
        type: 'gateway.failed',
        trace_id: traceOf(req),
        request_id: req.request_id,
        tenant: 'acme',
        identity: 'agent-1',
        payload: {
          code: 'ERR_REQUEST_TENANT',
          status: 'ingress',
          outcome: 'deny',
          auth_method: 'signature',
          request_sha256: sha256Hex(bytesOf(req)),
          client: 'agent-1',
        },
      },
    ]);
    expect(x.cpCalls).toHaveLength(0);
    // The nonce was not consumed by a denied request: the same nonce passes in a correct one.
    expect((await send(x, x.request({ nonce: req.nonce }))).status).toBe(200);
  });

  it('authenticated denials are not limited by the unauthenticated record budget', async () => {
    const x = await start({ extra: { unauthenticatedRecordsPerSecond: 1 } });
    for (let i = 0; i < 3; i += 1) await send(x, x.request({ tenant: 'globex' }));
    expect(x.failedCodes()).toEqual(['ERR_REQUEST_TENANT', 'ERR_REQUEST_TENANT', 'ERR_REQUEST_TENANT']);
  });

  it('a configured timestamp tolerance is used instead of the default', async () => {
    const x = await start({ extra: { timestampToleranceMs: 1000 } });
    expect((await send(x, x.request({ timestampMs: T0 + 1000 }))).status).toBe(200);
    expect((await send(x, x.request({ timestampMs: T0 - 1000 }))).status).toBe(200);
    const late = await send(x, x.request({ timestampMs: T0 - 1001 }));
    expect(late.status).toBe(401);
    expect(late.body['code']).toBe('ERR_REQUEST_TIMESTAMP');
    expect((await send(x, x.request({ timestampMs: T0 + 1001 }))).body['code']).toBe('ERR_REQUEST_TIMESTAMP');
    expect(failed(x).map((e) => [e.identity, e.payload['auth_method']])).toEqual([
      ['agent-1', 'signature'],
      ['agent-1', 'signature'],
    ]);
    expect(x.cpCalls).toHaveLength(2);
  });

  it('the timestamp is checked against the injected clock, not the wall clock', async () => {
    const x = await start();
    x.clock.now = T0 + 10 * 60_000;
    expect((await send(x, x.request({ timestampMs: T0 }))).body['code']).toBe('ERR_REQUEST_TIMESTAMP');
    expect((await send(x, x.request({ timestampMs: x.clock.now }))).status).toBe(200);
  });
});

describe('SPEC §2 step 1 (docs/request-format.md 8a): parameters carrying a secret (OE-INV-009)', () => {
  it('a secret found → ERR_PARAMS_SECRET, attributed, nothing stored, nonce not consumed', async () => {
    const seen: unknown[] = [];
    const x = await start({
      extra: {
        secretScanner: (params) => {
          seen.push(params);
          return JSON.stringify(params).includes('AKIA');
        },
      },
    });
    const req = x.request({ parameters: { key: 'AKIA0000' } });
    const res = await send(x, req);
    expect(res.status).toBe(400);
    expect(res.body['code']).toBe('ERR_PARAMS_SECRET');
    // The parameters with the session and the request id, which are stored too; then the id alone,
    // to learn whether the record may name it.
    expect(seen).toEqual([
      { parameters: { key: 'AKIA0000' }, session: null, request_id: req.request_id },
      req.request_id,
    ]);
    expect(x.ledger.events).toHaveLength(1);
    expect(x.ledger.events[0]).toMatchObject({
      type: 'gateway.failed',
      tenant: 'acme',
      identity: 'agent-1',
      payload: { code: 'ERR_PARAMS_SECRET', auth_method: 'signature' },
    });
    expect(JSON.stringify(x.ledger.events)).not.toContain('AKIA');
    expect(x.ledger.evidence.size).toBe(0);
    expect(x.cpCalls).toHaveLength(0);
    // Clean parameters pass the same scanner, and the refused request's nonce is still unused.
    expect((await send(x, x.request({ nonce: req.nonce }))).status).toBe(200);
  });

  it('a scanner that throws denies (fail closed)', async () => {
    const x = await start({
      extra: {
        secretScanner: () => {
          throw new Error('scanner broke');
        },
      },
    });
    expect((await send(x, x.request())).body['code']).toBe('ERR_PARAMS_SECRET');
    expect(x.cpCalls).toHaveLength(0);
  });
});

describe('SPEC §2 step 1: replay and the nonce store (FC-INV-3)', () => {
  it('the claim is for the verified client, the nonce, the request id and the Gate clock', async () => {
    const claims: unknown[] = [];
    const x = await start();
    const state = x.state;
    const replay: GateDeps['replay'] = {
      claim: (input) => {
        claims.push(input);
        return state.claim(input);
      },
    };
    const gate = createGate({ ...depsOf(x), replay });
    const req = x.request();
    expect((await gate.call(bytesOf(req))).status).toBe(200);
    expect(claims).toEqual([{ identity: 'agent-1', nonce: req.nonce, requestId: req.request_id, atMs: T0 }]);
  });

  const stores: [string, GateDeps['replay']['claim']][] = [
    ['rejects', () => Promise.reject(new Error('locked'))],
    ['answers something else', () => 'maybe' as never],
    ['hangs past the deadline', () => new Promise(() => undefined)],
  ];
  it.each(stores)('a store that %s → ERR_NONCE_STORE_UNAVAILABLE, attributed', async (_n, claim) => {
    const x = await start({ extra: { replay: { claim } } });
    const res = await send(x, x.request());
    expect(res.status).toBe(503);
    expect(res.body['code']).toBe('ERR_NONCE_STORE_UNAVAILABLE');
    expect(x.ledger.events).toEqual([
      expect.objectContaining({ tenant: 'acme', identity: 'agent-1', type: 'gateway.failed' }),
    ]);
    expect(x.cpCalls).toHaveLength(0);
  });

  it('a replay is recorded attributed to the client with its code', async () => {
    const x = await start();
    const req = x.request();
    await send(x, req);
    x.ledger.events.length = 0;
    const res = await send(x, req);
    expect(res.status).toBe(409);
    expect(x.ledger.events).toEqual([
      expect.objectContaining({
        request_id: req.request_id,
        tenant: 'acme',
        identity: 'agent-1',
        payload: expect.objectContaining({
          code: 'ERR_REQUEST_REPLAYED',
          auth_method: 'signature',
        }) as unknown,
      }),
    ]);
    expect(x.execCalls).toHaveLength(1);
  });
});

/** The Gate dependencies of a harness, for a second Gate over the same state with one port changed. */
function depsOf(x: Harness, over: Partial<GateDeps> = {}): GateDeps {
  return {
    clock: () => x.clock.now,
    clients: x.state,
    replay: x.state,
    ledger: x.ledger,
    controlPlane: {
      decide: (req) => {
        x.cpCalls.push(req);
        return Promise.resolve({
          outcome: 'allow',
          decision_id: 'dec-1',
          envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
          decision_ref: { index: 3, entry_hash: 'ef'.repeat(32) },
          policy_bundle: 'bundle',
        });
      },
      ready: () => Promise.resolve({ ready: true }),
      issuerJwks: () => ({ keys: [], revoked: [] }),
    },
    executor: {
      execute: (call) => {
        x.execCalls.push(call);
        return Promise.resolve({
          outcome: 'executed',
          result: { ok: 1 },
          receipt: { index: 4, entry_hash: '01'.repeat(32) },
        });
      },
      void: () => Promise.resolve({ outcome: 'voided', recorded: true }),
    },
    operatorTokenSha256: sha256Hex(OPERATOR_TOKEN),
    timeouts: { controlPlaneMs: 200, executionMs: 200, ledgerMs: 200 },
    ...over,
  };
}

describe('docs/approvals.md "Retries": a reused request id passes only as a retry (FC-INV-3)', () => {
  async function retrySetup(
    isRetry: ((req: unknown) => Promise<boolean>) | undefined,
    withClaimNonce = true,
  ) {
    const x = await start();
    const asked: unknown[] = [];
    const base = depsOf(x);
    const state = x.state;
    const gate: Gate = createGate({
      ...base,
      replay: withClaimNonce ? state : { claim: (input) => state.claim(input) },
      controlPlane: {
        ...base.controlPlane,
        ...(isRetry === undefined
          ? {}
          : {
              isRetry: (req: unknown) => {
                asked.push(req);
                return isRetry(req);
              },
            }),
      },
    });
    const first = x.request({ session: 's-1', parameters: { a: 1 } });
    expect((await gate.call(bytesOf(first))).status).toBe(200);
    const again = x.request({ requestId: first.request_id, session: 's-1', parameters: { a: 1 } });
    return { x, gate, first, again, asked };
  }

  it('a retry the Control Plane recognises, with a fresh nonce, is admitted', async () => {
    const { x, gate, first, again, asked } = await retrySetup(() => Promise.resolve(true));
    expect((await gate.call(bytesOf(again))).status).toBe(200);
    expect(asked).toEqual([
      {
        request_id: first.request_id,
        identity: 'agent-1',
        tenant: 'acme',
        tool: 'echo',
        params: { a: 1 },
        session: 's-1',
      },
    ]);
    expect(x.cpCalls).toHaveLength(2);
    // Its nonce is now used: the same retry again is a replay.
    expect(((await gate.call(bytesOf(again))) as unknown as GateAnswer<Body>).body['code']).toBe(
      'ERR_REQUEST_REPLAYED',
    );
  });

  it('a retry that reuses the nonce too is a replay even if the Control Plane recognises it', async () => {
    const { gate, first } = await retrySetup(() => Promise.resolve(true));
    const res = (await gate.call(bytesOf(first))) as unknown as GateAnswer<Body>;
    expect(res.body['code']).toBe('ERR_REQUEST_REPLAYED');
  });

  const refusals: [string, ((req: unknown) => Promise<boolean>) | undefined, boolean][] = [
    ['the Control Plane says no', () => Promise.resolve(false), true],
    ['the Control Plane answers something else', () => Promise.resolve('yes' as never), true],
    ['the Control Plane throws', () => Promise.reject(new Error('down')), true],
    ['the Control Plane cannot tell retries', undefined, true],
    ['the store cannot claim a nonce alone', () => Promise.resolve(true), false],
  ];
  it.each(refusals)('%s → ERR_REQUEST_REPLAYED, nothing decided', async (_n, isRetry, claimNonce) => {
    const { x, gate, again } = await retrySetup(isRetry, claimNonce);
    const res = (await gate.call(bytesOf(again))) as unknown as GateAnswer<Body>;
    expect(res.status).toBe(409);
    expect(res.body['code']).toBe('ERR_REQUEST_REPLAYED');
    expect(x.cpCalls).toHaveLength(1);
    expect(x.failedCodes()).toEqual(['ERR_REQUEST_REPLAYED']);
  });

  const nonceStores: [string, () => unknown][] = [
    ['replayed', () => 'replayed'],
    ['throws', () => Promise.reject(new Error('locked'))],
    ['answers something else', () => 'maybe'],
  ];
  it.each(nonceStores)('a nonce claim that is %s → ERR_REQUEST_REPLAYED', async (_n, claimNonce) => {
    const x = await start();
    const state = x.state;
    const base = depsOf(x);
    const gate = createGate({
      ...base,
      replay: { claim: (i) => state.claim(i), claimNonce: claimNonce as never },
      controlPlane: { ...base.controlPlane, isRetry: () => Promise.resolve(true) },
    });
    const first = x.request();
    expect((await gate.call(bytesOf(first))).status).toBe(200);
    const again = x.request({ requestId: first.request_id });
    const res = (await gate.call(bytesOf(again))) as unknown as GateAnswer<Body>;
    expect(res.body['code']).toBe('ERR_REQUEST_REPLAYED');
    expect(x.cpCalls).toHaveLength(1);
  });
});

describe('SPEC §2 steps 2-8: what the Gate records and forwards (FC-INV-5, FC-INV-6)', () => {
  it('gateway.accepted and gateway.completed carry the verified client, the tool and the hashes', async () => {
    const y = await start();
    await y.state.registerClient({
      identity: 'agent-2',
      tenant: 'acme',
      jwk: y.key.publicJwk,
      atMs: T0,
      roles: ['ops', 'admin'],
    });
    const req = y.request({ identity: 'agent-2', session: 's-9', parameters: { n: 1 } });
    const res = await send(y, req);
    expect(res.status).toBe(200);
    const rawSha = sha256Hex(bytesOf(req));
    const trace = traceOf(req);
    const base = { trace_id: trace, request_id: req.request_id, tenant: 'acme', identity: 'agent-2' };
    expect(y.ledger.events).toEqual([
      {
        ...base,
        type: 'gateway.accepted',
        payload: {
          request_sha256: rawSha,
          tool: 'echo',
          session: 's-9',
          client: 'agent-2',
          auth_method: 'signature',
        },
      },
      {
        ...base,
        // The attempt it closes: the accepted entry's index (FC-INV-5).
        closes: 0,
        type: 'gateway.completed',
        payload: {
          decision_id: 'dec-1',
          outcome: 'executed',
          tool: 'echo',
          client: 'agent-2',
          result_sha256: sha256Hex(canonicalize({ echoed: { n: 1 } })),
        },
      },
    ]);
    expect(y.ledger.evidence.get(rawSha)?.equals(bytesOf(req))).toBe(true);
    expect(y.cpCalls).toEqual([
      {
        request_id: req.request_id,
        trace_id: trace,
        identity: 'agent-2',
        tenant: 'acme',
        roles: ['admin', 'ops'],
        tool: 'echo',
        params: { n: 1 },
        timestamp: T0,
        session: 's-9',
        request_sha256: rawSha,
      },
    ]);
    expect(y.execCalls).toEqual([
      {
        envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
        tool: 'echo',
        tenant: 'acme',
        params: { n: 1 },
        trace_id: trace,
        request_id: req.request_id,
      },
    ]);
    expect(res.body).toEqual({
      outcome: 'executed',
      request_id: req.request_id,
      trace_id: trace,
      decision_id: 'dec-1',
      result: { echoed: { n: 1 } },
      receipt: { index: 4, entry_hash: '01'.repeat(32) },
    });
  });

  it('a registry entry without a roles member is decided with no roles', async () => {
    const x = await start();
    const state = x.state;
    const gate = createGate(
      depsOf(x, {
        clients: {
          lookup: async (identity) => {
            const c = await state.lookup(identity);
            if (c === undefined) return undefined;
            const { roles: _r, ...rest } = c;
            return rest;
          },
        },
      }),
    );
    expect((await gate.call(bytesOf(x.request()))).status).toBe(200);
    expect(x.cpCalls[0]).toMatchObject({ roles: [] });
  });

  it('a client registered without roles is decided with no roles', async () => {
    const x = await start();
    await send(x, x.request());
    expect(x.cpCalls[0]).toMatchObject({ roles: [] });
  });

  it('evidence confirmed under another hash → ERR_LEDGER_UNAVAILABLE, Control Plane never called', async () => {
    const x = await start();
    x.ledger.putEvidence = () => Promise.resolve('00'.repeat(32));
    const res = await send(x, x.request());
    expect(res.status).toBe(503);
    expect(res.body['code']).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(x.cpCalls).toHaveLength(0);
    expect(failed(x)[0]!.payload).toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE', status: 'ledger' });
  });

  it('gateway.accepted not confirmed (evidence stored) → ERR_LEDGER_UNAVAILABLE, Control Plane never called', async () => {
    const x = await start();
    x.ledger.failTypes = ['gateway.accepted'];
    const res = await send(x, x.request());
    expect(res.body['code']).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(x.cpCalls).toHaveLength(0);
    expect(x.failedCodes()).toEqual(['ERR_LEDGER_UNAVAILABLE']);
  });

  it('a ledger append confirmed with a malformed reference counts as unconfirmed', async () => {
    const x = await start();
    const append = x.ledger.appendGatewayEvent.bind(x.ledger);
    x.ledger.appendGatewayEvent = async (e) =>
      e.type === 'gateway.accepted' ? { index: -1, entry_hash: '' } : append(e);
    const res = await send(x, x.request());
    expect(res.body['code']).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(x.cpCalls).toHaveLength(0);
  });

  it('a Control Plane deny is recorded at the control-plane stage with the verified client and tool', async () => {
    const x = await start({
      decide: () =>
        Promise.resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: 'd-7' }),
    });
    const req = x.request();
    await send(x, req);
    expect(failed(x)).toEqual([
      {
        type: 'gateway.failed',
        trace_id: traceOf(req),
        request_id: req.request_id,
        tenant: 'acme',
        identity: 'agent-1',
        closes: 0,
        payload: {
          code: 'ERR_POLICY_DENY',
          status: 'control-plane',
          outcome: 'deny',
          tool: 'echo',
          client: 'agent-1',
          decision_id: 'd-7',
        },
      },
    ]);
    expect(x.execCalls).toHaveLength(0);
  });

  it('a Control Plane deny without a decision id carries none', async () => {
    const x = await start({
      decide: () =>
        Promise.resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: null }),
    });
    const res = await send(x, x.request());
    expect(res.body).not.toHaveProperty('decision_id');
    expect(failed(x)[0]!.payload).not.toHaveProperty('decision_id');
  });

  it('ERR_APPROVAL_PENDING with a decision id → 202 pending, recorded as pending', async () => {
    const x = await start({
      decide: () =>
        Promise.resolve({
          outcome: 'deny',
          code: 'ERR_APPROVAL_PENDING',
          reason: 'wait',
          decision_id: 'd-1',
        }),
    });
    const req = x.request();
    const res = await send(x, req);
    expect(res).toEqual({
      status: 202,
      body: {
        outcome: 'pending',
        code: 'ERR_APPROVAL_PENDING',
        reason: 'wait',
        request_id: req.request_id,
        trace_id: traceOf(req),
        decision_id: 'd-1',
      },
    });
    expect(failed(x)[0]!.payload).toMatchObject({ outcome: 'pending', code: 'ERR_APPROVAL_PENDING' });
    expect(x.execCalls).toHaveLength(0);
  });

  it('ERR_APPROVAL_PENDING without a decision id is a plain deny', async () => {
    const x = await start({
      decide: () =>
        Promise.resolve({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING', reason: 'wait', decision_id: null }),
    });
    const res = await send(x, x.request());
    expect(res.body['outcome']).toBe('deny');
    expect(res.status).toBe(202);
  });

  it('an execution failure is recorded at the execution stage with the decision id', async () => {
    const x = await start({
      execute: () => Promise.resolve({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE', reason: 'x' }),
    });
    await send(x, x.request());
    expect(failed(x)[0]!.payload).toMatchObject({
      status: 'execution',
      decision_id: 'dec-1',
      tool: 'echo',
      client: 'agent-1',
    });
  });

  it('an execution that throws a thrown error after issuance voids and records it', async () => {
    const x = await start({
      execute: () => {
        throw new Error('sync throw');
      },
    });
    const res = await send(x, x.request());
    expect(res.body).toMatchObject({ outcome: 'deny', envelope_voided: true, decision_id: 'dec-1' });
    expect(x.voidCalls).toHaveLength(1);
    expect(failed(x)).toHaveLength(1);
  });

  it('a hook that throws after acceptance is caught: denied, recorded, nothing runs', async () => {
    const x = await start();
    x.ledger.appendGatewayEvent = () => {
      throw new Error('sync throw');
    };
    const res = await send(x, x.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    expect(x.execCalls).toHaveLength(0);
  });
});

describe('SPEC §2 step 3: how long an escalated call may wait (Prefer: wait)', () => {
  const later10 = <T>(v: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(v), 10));
  const waits: [number | undefined, number | undefined][] = [
    [undefined, undefined],
    [0, undefined],
    [-5, undefined],
    [1.5, undefined],
    [Number.NaN, undefined],
    [1, 1],
    [5000, 5000],
    [MAX_CALL_WAIT_MS, MAX_CALL_WAIT_MS],
    [MAX_CALL_WAIT_MS + 1, MAX_CALL_WAIT_MS],
    [-1_000_000, undefined],
  ];
  it.each(waits)('waitMs %s → the Control Plane is asked to wait %s', async (given, expected) => {
    const options: unknown[] = [];
    const x = await start();
    const gate = createGate(
      depsOf(x, {
        controlPlane: {
          ...depsOf(x).controlPlane,
          decide: (_req, opts) => {
            options.push(opts);
            // Answered after a timer: a deadline shortened below zero would fire first.
            return later10({
              outcome: 'deny',
              code: 'ERR_POLICY_DENY',
              reason: 'no',
              decision_id: null,
            });
          },
        },
      }),
    );
    const res = (await gate.call(
      bytesOf(x.request()),
      given === undefined ? undefined : { waitMs: given },
    )) as unknown as GateAnswer<Body>;
    // Every decision also carries the call's pending durable writes (durability.ts).
    expect(options.map((o) => (o as { waitMs?: number } | undefined)?.waitMs)).toEqual([expected]);
    expect(options.map((o) => typeof (o as { writes?: { sync?: unknown } }).writes?.sync)).toEqual([
      'function',
    ]);
    expect(res.body['code']).toBe('ERR_POLICY_DENY');
  });

  it('the deadline of a waiting decision is extended by the wait', async () => {
    const x = await start();
    const gate = createGate(
      depsOf(x, {
        timeouts: { controlPlaneMs: 20, executionMs: 200, ledgerMs: 200 },
        controlPlane: {
          ...depsOf(x).controlPlane,
          decide: () =>
            new Promise((resolve) =>
              setTimeout(
                () => resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: null }),
                60,
              ),
            ),
        },
      }),
    );
    const res = (await gate.call(bytesOf(x.request()), { waitMs: 2000 })) as unknown as GateAnswer<Body>;
    expect(res.body['code']).toBe('ERR_POLICY_DENY');
  });
});

describe('createGate configuration', () => {
  it('refuses an operator token digest that is not hex SHA-256', async () => {
    const x = await start();
    expect(() => createGate(depsOf(x, { operatorTokenSha256: 'AB'.repeat(32) }))).toThrow(TypeError);
    expect(() => createGate(depsOf(x, { operatorTokenSha256: `${'ab'.repeat(32)}0` }))).toThrow(TypeError);
    expect(() => createGate(depsOf(x, { operatorTokenSha256: `0${'ab'.repeat(32)}` }))).toThrow(TypeError);
  });

  it('refuses an in-flight limit that is not a positive integer', async () => {
    const x = await start();
    for (const maxInflight of [0, -1, 1.5, Number.NaN])
      expect(() => createGate(depsOf(x, { maxInflight }))).toThrow(TypeError);
    expect(() => createGate(depsOf(x, { maxInflight: 1 }))).not.toThrow();
  });

  it('works with every timeout left at its default', async () => {
    const x = await start();
    const { timeouts: _t, ...rest } = depsOf(x);
    const gate = createGate(rest);
    expect((await gate.call(bytesOf(x.request()))).status).toBe(200);
    const partial = createGate({ ...rest, timeouts: {} });
    expect((await partial.call(bytesOf(x.request()))).status).toBe(200);
  });
});

describe('FC-INV-4: an exception escaping the call is a recorded deny', () => {
  it('a clock that throws after authentication → ERR_INTERNAL recorded for the client, nothing decided', async () => {
    const x = await start();
    let calls = 0;
    const gate = createGate(
      depsOf(x, {
        clock: () => {
          calls += 1;
          if (calls > 0) throw new Error('clock broke');
          return T0;
        },
      }),
    );
    const req = x.request();
    const res = (await gate.call(bytesOf(req))) as unknown as GateAnswer<Body>;
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', request_id: req.request_id });
    expect(x.ledger.events).toEqual([
      expect.objectContaining({
        type: 'gateway.failed',
        request_id: req.request_id,
        tenant: 'acme',
        identity: 'agent-1',
        payload: expect.objectContaining({ code: 'ERR_INTERNAL', status: 'internal' }) as unknown,
      }),
    ]);
    expect(x.cpCalls).toHaveLength(0);
  });
});

describe('SPEC §5: operator endpoints need the operator token', () => {
  const auth = `Bearer ${OPERATOR_TOKEN}`;

  it('operatorOf accepts exactly "Bearer <token>" (surrounding space trimmed)', async () => {
    const x = await start();
    expect((await x.gate.operatorOf(auth)) !== undefined).toBe(true);
    expect((await x.gate.operatorOf(`Bearer  ${OPERATOR_TOKEN} `)) !== undefined).toBe(true);
    expect((await x.gate.operatorOf(undefined)) !== undefined).toBe(false);
    expect((await x.gate.operatorOf(OPERATOR_TOKEN)) !== undefined).toBe(false);
    expect((await x.gate.operatorOf(`bearer ${OPERATOR_TOKEN}`)) !== undefined).toBe(false);
    expect((await x.gate.operatorOf(`XBearer ${OPERATOR_TOKEN}`)) !== undefined).toBe(false);
    expect((await x.gate.operatorOf(`Bearer ${OPERATOR_TOKEN}x`)) !== undefined).toBe(false);
    expect((await x.gate.operatorOf('Bearer ')) !== undefined).toBe(false);
    expect((await x.gate.operatorOf('Bearer    ')) !== undefined).toBe(false);
  });

  it('an empty operator token never matches, even when its digest is configured', async () => {
    const x = await start();
    const gate = createGate(depsOf(x, { operatorTokenSha256: sha256Hex('') }));
    expect((await gate.operatorOf('Bearer ')) !== undefined).toBe(false);
    expect((await gate.operatorOf('Bearer   ')) !== undefined).toBe(false);
  });

  it('evidence: 401 without the token, 503 when the ledger fails, 404 unknown, 200 known', async () => {
    const x = await start();
    const req = x.request();
    await send(x, req);
    expect(await x.gate.evidence(req.request_id, undefined)).toEqual({
      status: 401,
      body: { outcome: 'deny', code: 'ERR_UNAUTHENTICATED', reason: 'ERR_UNAUTHENTICATED' },
    });
    expect(await x.gate.evidence('none', auth)).toEqual({
      status: 404,
      body: { error: 'not_found', request_id: 'none' },
    });
    const ok = await x.gate.evidence(req.request_id, auth);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ request_id: req.request_id });
    x.ledger.entriesForRequest = () => Promise.reject(new Error('down'));
    expect(await x.gate.evidence(req.request_id, auth)).toEqual({
      status: 503,
      body: { outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', reason: 'ERR_LEDGER_UNAVAILABLE' },
    });
  });

  it('L7 read path: every evidence read is recorded with who read it before anything is returned', async () => {
    const x = await start();
    const req = x.request();
    await send(x, req);
    expect(x.ledger.reads).toEqual([]);
    expect((await x.gate.evidence(req.request_id, undefined)).status).toBe(401);
    // An unauthenticated attempt reads nothing and is not a read.
    expect(x.ledger.reads).toEqual([]);
    expect((await x.gate.evidence(req.request_id, auth)).status).toBe(200);
    expect((await x.gate.evidence('none', auth)).status).toBe(404);
    // A signed-in person reads as themselves (the reader is an input).
    expect((await x.gate.readEvidence(req.request_id, { id: 'alice', role: 'operator' })).status).toBe(200);
    expect(x.ledger.reads).toEqual([
      { reader: { id: 'operator', role: 'operator' }, request_id: req.request_id, scope: 'request' },
      { reader: { id: 'operator', role: 'operator' }, request_id: 'none', scope: 'request' },
      { reader: { id: 'alice', role: 'operator' }, request_id: req.request_id, scope: 'request' },
    ]);
  });

  it('L7 read path: a read the ledger cannot record is refused, and nothing is read (fail closed)', async () => {
    const x = await start();
    const req = x.request();
    await send(x, req);
    let read = 0;
    const entries = x.ledger.entriesForRequest.bind(x.ledger);
    x.ledger.entriesForRequest = (id) => {
      read += 1;
      return entries(id);
    };
    x.ledger.failTypes = ['audit.read'];
    expect(await x.gate.evidence(req.request_id, auth)).toEqual({
      status: 503,
      body: { outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE', reason: 'ERR_LEDGER_UNAVAILABLE' },
    });
    expect(read).toBe(0);
    x.ledger.recordRead = () => new Promise(() => undefined);
    expect((await x.gate.readEvidence(req.request_id, { id: 'alice', role: 'operator' })).status).toBe(503);
    expect(read).toBe(0);
  });

  it('jwks: the Control Plane keys, 503 when it fails', async () => {
    const x = await start();
    expect(await x.gate.jwks()).toEqual({ status: 200, body: { keys: [], revoked: [] } });
    const base = depsOf(x);
    const gate = createGate({
      ...base,
      controlPlane: { ...base.controlPlane, issuerJwks: () => Promise.reject(new Error('down')) },
    });
    expect(await gate.jwks()).toEqual({
      status: 503,
      body: {
        outcome: 'deny',
        code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
        reason: 'ERR_CONTROL_PLANE_UNAVAILABLE',
      },
    });
  });

  it('trust roots: 404 when not configured, 503 when they fail, 200 with the file', async () => {
    const x = await start();
    expect(await x.gate.trustRoots()).toEqual({ status: 404, body: { error: 'not_found' } });
    const ok = createGate(depsOf(x, { trustRoots: () => ({ format: 'roots' }) }));
    expect(await ok.trustRoots()).toEqual({ status: 200, body: { format: 'roots' } });
    const bad = createGate(
      depsOf(x, {
        trustRoots: () => {
          throw new Error('unreadable');
        },
      }),
    );
    expect(await bad.trustRoots()).toEqual({
      status: 503,
      body: {
        outcome: 'deny',
        code: 'ERR_CONTROL_PLANE_UNAVAILABLE',
        reason: 'ERR_CONTROL_PLANE_UNAVAILABLE',
      },
    });
  });

  it('admin: 401 without the token, 404 without operator actions, 500 on failure, the answer otherwise', async () => {
    const x = await start();
    const runs: unknown[] = [];
    const gate = createGate(
      depsOf(x, {
        operator: {
          run: (action, body) => {
            runs.push([action, body]);
            if (action === 'boom') throw new Error('boom');
            return Promise.resolve({ status: 200, body: { done: action } });
          },
        },
      }),
    );
    expect((await gate.admin('rotate', {}, undefined)).status).toBe(401);
    expect(runs).toEqual([]);
    expect(await gate.admin('rotate', { a: 1 }, auth)).toEqual({ status: 200, body: { done: 'rotate' } });
    expect(runs).toEqual([['rotate', { a: 1 }]]);
    expect(await gate.admin('boom', {}, auth)).toEqual({
      status: 500,
      body: { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'ERR_INTERNAL' },
    });
    expect(await x.gate.admin('rotate', {}, auth)).toEqual({ status: 404, body: { error: 'not_found' } });
  });
});

describe('/readyz: ready only when every probe answers true', () => {
  const answers: [string, () => unknown, number][] = [
    ['true', () => Promise.resolve(true), 200],
    ['{ ready: true }', () => Promise.resolve({ ready: true }), 200],
    ['{ ready: false }', () => Promise.resolve({ ready: false }), 503],
    ['{ ready: "yes" }', () => Promise.resolve({ ready: 'yes' }), 503],
    ['false', () => Promise.resolve(false), 503],
    ['null', () => Promise.resolve(null), 503],
    ['"ready"', () => Promise.resolve('ready'), 503],
    ['a rejection', () => Promise.reject(new Error('down')), 503],
  ];
  it.each(answers)('a Control Plane answering %s', async (_n, ready, status) => {
    const x = await start();
    const base = depsOf(x);
    const gate = createGate({ ...base, controlPlane: { ...base.controlPlane, ready: ready as never } });
    const res = await gate.ready();
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ ready: status === 200, checks: { control_plane: status === 200 } });
  });

  it('injected checks: each named, only true passes', async () => {
    const x = await start();
    const gate = createGate(
      depsOf(x, {
        readiness: [
          { name: 'disk', check: () => true },
          { name: 'odd', check: () => 'true' as never },
          { name: 'broken', check: () => Promise.reject(new Error('x')) },
        ],
      }),
    );
    const res = await gate.ready();
    expect(res).toEqual({
      status: 503,
      body: {
        ready: false,
        checks: { control_plane: true, disk: true, odd: false, broken: false },
        suppressed_ingress_records: 0,
        shed_calls: 0,
        inflight: 0,
      },
    });
  });
});

describe('FC-INV-4: every deadline is the configured one', () => {
  const later = <T>(v: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(v), 1500).unref());

  it('a Control Plane answering after controlPlaneMs is unavailable, even if it would allow', async () => {
    const x = await start();
    const base = depsOf(x, { timeouts: { controlPlaneMs: 30, executionMs: 200, ledgerMs: 200 } });
    const gate = createGate({
      ...base,
      controlPlane: {
        ...base.controlPlane,
        decide: () =>
          later({
            outcome: 'allow' as const,
            decision_id: 'dec-1',
            envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
            decision_ref: { index: 3, entry_hash: 'ef'.repeat(32) },
            policy_bundle: 'bundle',
          }),
      },
    });
    const res = (await gate.call(bytesOf(x.request()))) as unknown as GateAnswer<Body>;
    expect(res.body['code']).toBe('ERR_CONTROL_PLANE_UNAVAILABLE');
    expect(x.execCalls).toHaveLength(0);
  });

  it('a replay store confirming after ledgerMs is unavailable, even if it says fresh', async () => {
    const x = await start();
    const gate = createGate(
      depsOf(x, {
        timeouts: { controlPlaneMs: 200, executionMs: 200, ledgerMs: 30 },
        replay: { claim: () => later('fresh' as const) },
      }),
    );
    const res = (await gate.call(bytesOf(x.request()))) as unknown as GateAnswer<Body>;
    expect(res.body['code']).toBe('ERR_NONCE_STORE_UNAVAILABLE');
    expect(x.cpCalls).toHaveLength(0);
  });
});

describe('FC-INV-5: bounded unauthenticated records and shed calls', () => {
  it('the record budget is per second of the Gate clock', async () => {
    const x = await start({ extra: { unauthenticatedRecordsPerSecond: 1 } });
    await x.gate.call(Buffer.from('nope'));
    x.clock.now += 1;
    await x.gate.call(Buffer.from('nope'));
    x.clock.now += 998;
    await x.gate.call(Buffer.from('nope'));
    expect(x.failedCodes()).toHaveLength(1);
    x.clock.now += 1;
    await x.gate.call(Buffer.from('nope'));
    expect(x.failedCodes()).toHaveLength(2);
    expect((await x.gate.ready()).body).toMatchObject({ suppressed_ingress_records: 2 });
  });

  it('a shed call is recorded by the hash of its body, unattributed', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let reached: () => void = () => undefined;
    const holding = new Promise<void>((r) => (reached = r));
    const x = await start({
      extra: { maxInflight: 1 },
      decide: async () => {
        reached();
        await held;
        return { outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: null };
      },
    });
    const first = x.gate.call(bytesOf(x.request()));
    await holding;
    const body = bytesOf(x.request());
    const shed = (await x.gate.call(body)) as unknown as GateAnswer<Body>;
    expect(shed).toEqual({
      status: 503,
      body: {
        outcome: 'deny',
        code: 'ERR_OVERLOADED',
        reason: expect.any(String) as string,
        request_id: null,
        trace_id: sha256Hex(body).slice(0, 32),
      },
    });
    expect(failed(x)).toEqual([
      {
        type: 'gateway.failed',
        trace_id: sha256Hex(body).slice(0, 32),
        request_id: null,
        tenant: null,
        identity: null,
        payload: {
          code: 'ERR_OVERLOADED',
          status: 'ingress',
          outcome: 'deny',
          auth_method: 'none',
          request_sha256: sha256Hex(body),
        },
      },
    ]);
    release();
    await first;
    expect((await x.gate.ready()).body).toMatchObject({ shed_calls: 1, inflight: 0 });
  });
});

describe('SPEC §2 steps 2 and 8: evidence and the last records', () => {
  it('the raw body is stored as application/json evidence', async () => {
    const x = await start();
    const put: unknown[] = [];
    const orig = x.ledger.putEvidence.bind(x.ledger);
    x.ledger.putEvidence = (b, media) => {
      put.push(media);
      return orig(b, media);
    };
    expect((await send(x, x.request())).status).toBe(200);
    expect(put).toEqual(['application/json']);
  });

  it('gateway.accepted not confirmed is recorded at the ledger stage', async () => {
    const x = await start();
    x.ledger.failTypes = ['gateway.accepted'];
    await send(x, x.request());
    expect(failed(x)[0]!.payload).toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE', status: 'ledger' });
  });

  it('a background ask is recorded in its gateway.accepted (docs/jobs.md "Time limits"); a synchronous one is not', async () => {
    const x = await start();
    await x.gate.call(bytesOf(x.request()), { background: true });
    const sync = x.request({ requestId: 'req-sync' });
    await send(x, sync);
    const accepted = x.ledger.events.filter((e) => e.type === 'gateway.accepted');
    expect(accepted).toHaveLength(2);
    expect(accepted[0]!.payload['background']).toBe(true);
    expect(accepted[1]!.request_id).toBe('req-sync');
    expect(accepted[1]!.payload).not.toHaveProperty('background');
  });

  it('gateway.queued not confirmed: the denial is recorded after the void (FC-INV-5), nothing queued', async () => {
    const x = await start({
      // Never started: a job it held would not run; none must reach it.
      extra: { jobs: createLocalJobQueue({} as GateExecutor) },
    });
    x.ledger.failTypes = ['gateway.queued'];
    const res = await x.gate.call(bytesOf(x.request()), { background: true });
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    expect(x.voidCalls).toHaveLength(1);
    expect(failed(x).map((e) => e.payload)).toEqual([
      expect.objectContaining({ code: 'ERR_LEDGER_UNAVAILABLE', status: 'execution' }),
    ]);
  });

  it('gateway.completed not confirmed: no further record is attempted, the result withheld', async () => {
    const x = await start();
    x.ledger.failTypes = ['gateway.completed'];
    const res = await send(x, x.request());
    expect(res.body['code']).toBe('ERR_LEDGER_UNAVAILABLE');
    expect(x.ledger.events.map((e) => e.type)).toEqual(['gateway.accepted']);
  });

  it('an Execution Layer answering pending: a pending answer without void fields', async () => {
    const x = await start({
      execute: () => Promise.resolve({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING', reason: 'wait' }),
    });
    const res = await send(x, x.request());
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ outcome: 'pending', decision_id: 'dec-1' });
    expect(res.body).not.toHaveProperty('envelope_voided');
  });

  it('a fault after execution (a result that breaks on a second read) → ERR_INTERNAL, voided, recorded', async () => {
    let reads = 0;
    const result = {
      get x(): number {
        reads += 1;
        if (reads > 1) throw new Error('second read');
        return 1;
      },
    };
    const x = await start({
      execute: () =>
        Promise.resolve({ outcome: 'executed', result, receipt: { index: 4, entry_hash: '01'.repeat(32) } }),
    });
    const res = await send(x, x.request());
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', envelope_voided: true });
    expect(x.voidCalls).toHaveLength(1);
    expect(failed(x)[0]!.payload).toMatchObject({ code: 'ERR_INTERNAL', status: 'execution' });
  });

  it('approval routes are answered by the approval API, other paths are not', async () => {
    const x = await start();
    expect(await x.gate.approvalRoute('GET', '/v1/approvals', null, undefined)).toEqual({
      status: 404,
      body: { error: 'not_found' },
    });
    expect(x.gate.approvalRoute('GET', '/v1/other', null, undefined)).toBeUndefined();
  });
});
