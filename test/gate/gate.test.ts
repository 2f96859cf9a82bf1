/**
 * The Gate over real HTTP with real SQLite state (SPEC §2 steps 1, 2, 6, 8). Every FC-INV-3
 * deny happens before policy evaluation (the Control Plane is never called) and is ledgered
 * (FC-INV-5); dependency faults deny (FC-INV-4, SPEC §7 scenarios 5 and 18).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { buildSignedRequest } from '../../src/client/index.js';
import { MAX_REQUEST_BYTES } from '../../src/gate/index.js';
import type { GateDeps } from '../../src/gate/index.js';
import { OPERATOR_TOKEN, startHarness, T0 } from './harness.js';
import type { Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('Gate: a governed call (SPEC §2, FC-INV-6)', () => {
  it('accepts, decides, executes and records accepted then completed', async () => {
    h = await startHarness();
    const req = h.request();
    const res = await h.post(req);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      outcome: 'executed',
      request_id: req.request_id,
      decision_id: 'dec-1',
      result: { echoed: { text: 'hi' } },
    });
    expect(res.body['trace_id']).toMatch(/^[0-9a-f]{32}$/);
    expect(h.ledger.events.map((e) => e.type)).toEqual(['gateway.accepted', 'gateway.completed']);
    const accepted = h.ledger.events[0]!;
    // The raw bytes are evidence, referenced by hash (FC-INV-5).
    expect(h.ledger.evidence.has(accepted.payload['request_sha256'] as string)).toBe(true);
    expect(h.cpCalls).toHaveLength(1);
    expect(h.cpCalls[0]).toMatchObject({
      request_id: req.request_id,
      identity: 'agent-1',
      tenant: 'acme',
      tool: 'echo',
      timestamp: T0,
    });
    expect(h.execCalls[0]).toMatchObject({
      envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
      tool: 'echo',
      tenant: 'acme',
    });
  });

  it('FC-INV-6: a listener without calls (the Control Plane process’s client port) takes none, by any spelling of the path or method', async () => {
    h = await startHarness({ calls: false });
    const body = JSON.stringify(h.request());
    const at = (path: string, init: RequestInit = {}) =>
      fetch(`${h!.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        ...init,
      });
    for (const path of [
      '/v1/calls',
      '/v1/calls?x=1',
      '/v1/calls/',
      '//v1/calls',
      '/v1/%63alls',
      '/V1/calls',
      '/mcp',
    ])
      expect((await at(path)).status, path).toBe(404);
    for (const method of ['PUT', 'PATCH'])
      expect((await at('/v1/calls', { method })).status, method).toBe(404);
    expect((await fetch(`${h.url}/v1/calls`, { method: 'HEAD' })).status).toBe(404);
    // Nothing accepted, decided, run or recorded.
    expect(h.cpCalls).toHaveLength(0);
    expect(h.execCalls).toHaveLength(0);
    expect(h.ledger.events).toHaveLength(0);
    // The rest of the listener serves as before.
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('serves 32 concurrent clients', async () => {
    h = await startHarness();
    const harness = h;
    const results = await Promise.all(Array.from({ length: 32 }, () => harness.post(harness.request())));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(h.execCalls).toHaveLength(32);
  });
});

describe('Gate: denials before policy evaluation (FC-INV-3)', () => {
  const cases: [
    string,
    (h: Harness) => Promise<{ status: number; body: Record<string, unknown> }>,
    string,
  ][] = [
    [
      'missing field',
      (x) => {
        const { nonce: _n, ...rest } = x.request();
        return x.post(rest);
      },
      'ERR_REQUEST_MALFORMED',
    ],
    ['unknown field', (x) => x.post({ ...x.request(), extra: 1 }), 'ERR_REQUEST_MALFORMED'],
    ['wrong type', (x) => x.post({ ...x.request(), session: 5 }), 'ERR_REQUEST_MALFORMED'],
    ['short nonce', (x) => x.post(x.request({ nonce: 'AAAAAAAAAAAAAAAAAAAA' })), 'ERR_REQUEST_MALFORMED'],
    ['unknown client', (x) => x.post(x.request({ identity: 'nobody' })), 'ERR_CLIENT_UNKNOWN'],
    [
      'bad signature (parameters changed)',
      (x) => x.post({ ...x.request(), parameters: { text: 'other' } }),
      'ERR_REQUEST_SIGNATURE',
    ],
    [
      'signature by another key',
      (x) => x.post(x.request({ key: generateSigningKey() })),
      'ERR_REQUEST_SIGNATURE',
    ],
    ['tenant mismatch', (x) => x.post(x.request({ tenant: 'globex' })), 'ERR_REQUEST_TENANT'],
    [
      'timestamp too far in the future (scenario 18)',
      (x) => x.post(x.request({ timestampMs: T0 + 120_001 })),
      'ERR_REQUEST_TIMESTAMP',
    ],
    [
      'timestamp too far in the past (scenario 18)',
      (x) => x.post(x.request({ timestampMs: T0 - 120_001 })),
      'ERR_REQUEST_TIMESTAMP',
    ],
    [
      'duplicate JSON keys',
      (x) => {
        const t = JSON.stringify(x.request());
        return x.postRaw(`${t.slice(0, -1)},"tenant":"acme"}`);
      },
      'ERR_JSON_DUPLICATE_KEY',
    ],
    ['oversized body', (x) => x.postRaw(Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x20)), 'ERR_REQUEST_TOO_LARGE'],
    ['not JSON', (x) => x.postRaw('hello'), 'ERR_JSON_SYNTAX'],
  ];

  it.each(cases)('%s → denied, recorded, Control Plane never called', async (_name, send, code) => {
    h = await startHarness();
    const res = await send(h);
    expect(res.body).toMatchObject({ outcome: 'deny', code });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(h.cpCalls).toHaveLength(0);
    expect(h.execCalls).toHaveLength(0);
    expect(h.failedCodes()).toEqual([code]);
    expect(h.ledger.events.map((e) => e.type)).toEqual(['gateway.failed']);
  });

  it('a revoked client is denied', async () => {
    h = await startHarness();
    await h.state.revokeClient('agent-1');
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_CLIENT_REVOKED' });
    expect(h.cpCalls).toHaveLength(0);
    expect(h.failedCodes()).toEqual(['ERR_CLIENT_REVOKED']);
  });

  it('timestamps at the edge of the tolerance are accepted', async () => {
    h = await startHarness();
    expect((await h.post(h.request({ timestampMs: T0 + 120_000 }))).status).toBe(200);
    expect((await h.post(h.request({ timestampMs: T0 - 120_000 }))).status).toBe(200);
  });

  it('a byte-identical replay is denied', async () => {
    h = await startHarness();
    const req = h.request();
    expect((await h.post(req)).status).toBe(200);
    const again = await h.post(req);
    expect(again.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    expect(h.cpCalls).toHaveLength(1);
  });

  it('a reused nonce with a new request id is denied', async () => {
    h = await startHarness();
    const first = h.request();
    expect((await h.post(first)).status).toBe(200);
    const res = await h.post(h.request({ nonce: first.nonce }));
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    expect(h.cpCalls).toHaveLength(1);
    expect(h.failedCodes()).toEqual(['ERR_REQUEST_REPLAYED']);
  });

  it('a reused request id with a new nonce is denied', async () => {
    h = await startHarness();
    const first = h.request();
    expect((await h.post(first)).status).toBe(200);
    const res = await h.post(h.request({ requestId: first.request_id }));
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED' });
    expect(h.cpCalls).toHaveLength(1);
  });

  it('concurrent replays of one request: exactly one reaches the Control Plane', async () => {
    h = await startHarness();
    const harness = h;
    const req = h.request();
    const results = await Promise.all(Array.from({ length: 16 }, () => harness.post(req)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(h.cpCalls).toHaveLength(1);
  });

  it('unauthenticated failures are recorded at most the budget per second (bounded flood)', async () => {
    h = await startHarness({ extra: { unauthenticatedRecordsPerSecond: 2 } });
    for (let i = 0; i < 5; i += 1) expect((await h.postRaw('nope')).body['code']).toBe('ERR_JSON_SYNTAX');
    expect(h.failedCodes()).toHaveLength(2);
    h.clock.now += 1000;
    await h.postRaw('nope');
    expect(h.failedCodes()).toHaveLength(3);
  });
});

describe('Gate: dependency faults deny (FC-INV-4, scenario 5)', () => {
  const cpFaults: [string, () => Promise<never> | Promise<unknown>][] = [
    ['throws', () => Promise.reject(new Error('down'))],
    ['hangs past the deadline', () => new Promise(() => undefined)],
    ['answers garbage', () => Promise.resolve({ outcome: 'allow', envelope: 42 })],
    ['answers an unknown code', () => Promise.resolve({ outcome: 'deny', code: 'ERR_NOPE', reason: 'x' })],
  ];
  it.each(cpFaults)(
    'Control Plane %s → ERR_CONTROL_PLANE_UNAVAILABLE, nothing executed',
    async (_n, fault) => {
      h = await startHarness({ decide: fault as never });
      const res = await h.post(h.request());
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_CONTROL_PLANE_UNAVAILABLE' });
      expect(JSON.stringify(res.body)).not.toContain('down');
      expect(h.execCalls).toHaveLength(0);
      expect(h.ledger.events.map((e) => e.type)).toEqual(['gateway.accepted', 'gateway.failed']);
    },
  );

  it('a Control Plane deny passes through with its decision id', async () => {
    h = await startHarness({
      decide: () =>
        Promise.resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: 'dec-9' }),
    });
    const res = await h.post(h.request());
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ code: 'ERR_POLICY_DENY', decision_id: 'dec-9' });
    expect(h.execCalls).toHaveLength(0);
  });

  it('Execution Layer hang → ERR_EXECUTION_UNAVAILABLE', async () => {
    h = await startHarness({ execute: () => new Promise(() => undefined) });
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    expect(h.failedCodes()).toEqual(['ERR_EXECUTION_UNAVAILABLE']);
  });

  it('ledger failure before acceptance → ERR_LEDGER_UNAVAILABLE, Control Plane never called (scenario 9)', async () => {
    h = await startHarness();
    h.ledger.failAppends = true;
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    expect(h.cpCalls).toHaveLength(0);
  });

  it('a replay store that cannot confirm → deny before policy', async () => {
    h = await startHarness({
      extra: {
        replay: {
          claim: () => {
            throw new Error('locked');
          },
        },
      },
    });
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    expect(h.cpCalls).toHaveLength(0);
  });
});

describe('Gate: operator endpoints (SPEC §5)', () => {
  it('the evidence view needs the operator token and lists the request records', async () => {
    h = await startHarness();
    const req = h.request();
    await h.post(req);
    const anonymous = await fetch(`${h.url}/v1/requests/${req.request_id}`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ outcome: 'deny', code: 'ERR_UNAUTHENTICATED' });
    const wrong = await fetch(`${h.url}/v1/requests/${req.request_id}`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ outcome: 'deny', code: 'ERR_UNAUTHENTICATED' });
    const res = await fetch(`${h.url}/v1/requests/${req.request_id}`, {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(res.status).toBe(200);
    const view = (await res.json()) as Record<string, unknown>;
    expect(view['outcome']).toBe('executed');
    expect((view['records'] as unknown[]).length).toBe(2);
    const missing = await fetch(`${h.url}/v1/requests/none`, {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(missing.status).toBe(404);
  });

  it('healthz, readyz and jwks', async () => {
    h = await startHarness({ extra: { readiness: [{ name: 'sandbox', check: () => false }] } });
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${h.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, boolean> }).checks['sandbox']).toBe(false);
    const jwks = await fetch(`${h.url}/v1/jwks`);
    expect(await jwks.json()).toEqual({ keys: [], revoked: [] });
    expect((await fetch(`${h.url}/nothing`)).status).toBe(404);
  });

  it('readyz is 200 when everything answers', async () => {
    h = await startHarness();
    expect((await fetch(`${h.url}/readyz`)).status).toBe(200);
  });

  it('concurrent readyz requests share one probe of each dependency; a later request probes again', async () => {
    let probes = 0;
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const check = async (): Promise<boolean> => {
      probes += 1;
      await held;
      return true;
    };
    const harness = await startHarness({ extra: { readiness: [{ name: 'ledger', check }] } });
    h = harness;
    // A flood of probes while one is under way: all wait for that one.
    const flood = Array.from({ length: 20 }, () => harness.gate.ready());
    release();
    const answers = await Promise.all(flood);
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(probes).toBe(1);
    expect((await fetch(`${harness.url}/readyz`)).status).toBe(200);
    expect(probes).toBe(2);
  });
});

describe('client/gate agreement on the signing input', () => {
  it('a request built by the client verifies at the Gate and any field change breaks it', async () => {
    h = await startHarness();
    const base = buildSignedRequest({
      key: h.key,
      identity: 'agent-1',
      tenant: 'acme',
      action: 'echo',
      parameters: {},
      timestampMs: T0,
      session: 's1',
    });
    const tampered = { ...base, session: 's2' };
    expect((await h.post(tampered)).body['code']).toBe('ERR_REQUEST_SIGNATURE');
    expect((await h.post(base)).status).toBe(200);
  });
});

describe('Gate: a failure after issuance voids the envelope before the answer (issue 8 Why 1)', () => {
  const failures: [string, Parameters<typeof startHarness>[0], string][] = [
    [
      'the Execution Layer denies',
      {
        execute: () => Promise.resolve({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE', reason: 'x' }),
      },
      'ERR_NONCE_STORE_UNAVAILABLE',
    ],
    [
      'the Execution Layer hangs',
      { execute: () => new Promise(() => undefined) },
      'ERR_EXECUTION_UNAVAILABLE',
    ],
    [
      'the Execution Layer throws',
      { execute: () => Promise.reject(new Error('down')) },
      'ERR_EXECUTION_UNAVAILABLE',
    ],
    [
      'the Execution Layer answers garbage',
      { execute: () => Promise.resolve({ outcome: 'ran' } as never) },
      'ERR_EXECUTION_UNAVAILABLE',
    ],
  ];
  it.each(failures)('%s → voided first, the answer says envelope_voided: true', async (_n, opts, code) => {
    h = await startHarness(opts);
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({ outcome: 'deny', code, envelope_voided: true });
    expect(h.voidCalls).toHaveLength(1);
    expect(h.voidCalls[0]!.call).toMatchObject({
      envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
      code,
      stage: 'execution',
    });
    // Voided before the Gate recorded its outcome and answered.
    expect(h.voidCalls[0]!.recordsBefore).toBe(1);
    expect(h.failedCodes()).toEqual([code]);
  });

  it('gateway.completed not confirmed → the envelope is voided (here: already consumed) and the result withheld', async () => {
    h = await startHarness({ void: () => Promise.resolve({ outcome: 'consumed' }) });
    h.ledger.failTypes = ['gateway.completed'];
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({
      outcome: 'deny',
      code: 'ERR_LEDGER_UNAVAILABLE',
      envelope_voided: false,
      envelope_consumed: true,
    });
    expect(res.body).not.toHaveProperty('result');
    expect(h.voidCalls).toHaveLength(1);
  });

  const voidFaults: [string, GateDeps['executor']['void']][] = [
    ['fails', () => Promise.resolve({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE', reason: 'x' })],
    ['throws', () => Promise.reject(new Error('down'))],
    ['hangs', () => new Promise(() => undefined)],
    ['answers garbage', () => Promise.resolve({ outcome: 'maybe' } as never)],
  ];
  it.each(voidFaults)('voiding that %s → the answer says envelope_voided: false', async (_n, v) => {
    h = await startHarness({
      execute: () => Promise.resolve({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE', reason: 'x' }),
      void: v,
      extra: { timeouts: { controlPlaneMs: 200, executionMs: 200, ledgerMs: 200, voidMs: 100 } },
    });
    const res = await h.post(h.request());
    expect(res.body).toMatchObject({
      outcome: 'deny',
      code: 'ERR_NONCE_STORE_UNAVAILABLE',
      envelope_voided: false,
    });
    expect(res.body).not.toHaveProperty('envelope_consumed');
  });

  it('no envelope, nothing to void: a Control Plane deny carries no envelope_voided', async () => {
    h = await startHarness({
      decide: () =>
        Promise.resolve({ outcome: 'deny', code: 'ERR_POLICY_DENY', reason: 'no', decision_id: 'd' }),
    });
    const res = await h.post(h.request());
    expect(res.body).not.toHaveProperty('envelope_voided');
    expect(h.voidCalls).toHaveLength(0);
  });
});
