/** Circuit breakers: rate, loop, lifetime and spend limits; tripping quarantines the session (OE-INV-021). */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createCircuitBreakers,
  declaredCostCents,
  DEFAULT_BREAKERS,
  usdToCents,
  type ControlPlaneResult,
} from '../../src/control-plane/index.js';
import { entriesOf, OPERATOR, request, rig, type Rig } from './support.js';

const opened: Rig[] = [];
async function open(...args: Parameters<typeof rig>): Promise<Rig> {
  const r = await rig(...args);
  opened.push(r);
  return r;
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

const code = (res: ControlPlaneResult): string => (res.outcome === 'deny' ? res.code : 'ALLOWED');
let n = 0;
const req = (...args: Parameters<typeof request>) =>
  request(args[0], args[1], { request_id: `req-${++n}`, ...args[2] });

describe('breakers in the pipeline (OE-INV-021)', () => {
  it('loop detection: the same call repeated past the threshold trips, quarantines the session (ledgered first)', async () => {
    const r = await open({ breakers: { loopThreshold: 3 } });
    for (let i = 0; i < 3; i++)
      expect(code(await r.cp.decide(req('echo', { message: 'again' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('echo', { message: 'again' })))).toBe('ERR_CIRCUIT_OPEN');
    const entries = await entriesOf(r.ledger);
    const q = entries.find((e) => e.type === 'admin.quarantine');
    expect(q?.payload).toMatchObject({
      engaged: true,
      session: 'sess-1',
      breaker: 'loop',
      client: 'agent-1',
    });
    expect(entries.at(-1)).toMatchObject({
      type: 'decision',
      payload: { outcome: 'deny', code: 'ERR_CIRCUIT_OPEN' },
    });
    expect(entries.indexOf(q!)).toBeLessThan(entries.length - 1);
    expect((await r.state.snapshot()).quarantined_sessions).toEqual(['sess-1']);
    // A different call in the same session is now refused by the quarantine.
    expect(code(await r.cp.decide(req('echo', { message: 'other' })))).toBe('ERR_SESSION_QUARANTINED');
    // Other sessions are unaffected.
    expect(code(await r.cp.decide(req('echo', { message: 'again' }, { session: 'sess-2' })))).toBe('ALLOWED');
  });

  it('session rate limit over the window trips; a new window does not reopen a tripped session', async () => {
    const r = await open({ breakers: { maxCallsPerSessionWindow: 2, windowMs: 1000 } });
    expect(code(await r.cp.decide(req('echo', { message: 'a' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('echo', { message: 'b' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('echo', { message: 'c' })))).toBe('ERR_CIRCUIT_OPEN');
    r.clock.advance(5000);
    expect(code(await r.cp.decide(req('echo', { message: 'd' }, { session: 'sess-2' })))).toBe('ALLOWED');
  });

  it('calls spread over windows stay under the rate limit', async () => {
    const r = await open({ breakers: { maxCallsPerSessionWindow: 2, windowMs: 1000 } });
    for (const m of ['a', 'b', 'c', 'd']) {
      expect(code(await r.cp.decide(req('echo', { message: m })))).toBe('ALLOWED');
      r.clock.advance(600);
    }
  });

  it('max calls per session (lifetime) trips', async () => {
    const r = await open({ breakers: { maxCallsPerSession: 2 } });
    await r.cp.decide(req('echo', { message: 'a' }));
    await r.cp.decide(req('echo', { message: 'b' }));
    expect(code(await r.cp.decide(req('echo', { message: 'c' })))).toBe('ERR_CIRCUIT_OPEN');
  });

  it('tenant rate limit denies without quarantining the session', async () => {
    const r = await open({ breakers: { maxCallsPerTenantWindow: 2 } });
    await r.cp.decide(req('echo', { message: 'a' }, { session: 's-a' }));
    await r.cp.decide(req('echo', { message: 'b' }, { session: 's-b' }));
    expect(code(await r.cp.decide(req('echo', { message: 'c' }, { session: 's-c' })))).toBe(
      'ERR_CIRCUIT_OPEN',
    );
    expect((await r.state.snapshot()).quarantined_sessions).toEqual([]);
  });

  it('a sessionless client is limited by identity; nothing to quarantine', async () => {
    const r = await open({ breakers: { loopThreshold: 1 } });
    await r.cp.decide(req('echo', { message: 'x' }, { session: null }));
    expect(code(await r.cp.decide(req('echo', { message: 'x' }, { session: null })))).toBe(
      'ERR_CIRCUIT_OPEN',
    );
    expect((await entriesOf(r.ledger)).some((e) => e.type === 'admin.quarantine')).toBe(false);
    expect(
      code(await r.cp.decide(req('echo', { message: 'x' }, { session: null, identity: 'agent-2' }))),
    ).toBe('ALLOWED');
  });

  it('a sessionless client that tripped the rate breaker is admitted again once the window passed', async () => {
    const r = await open({ breakers: { maxCallsPerSessionWindow: 2, windowMs: 1000 } });
    const sessionless = (m: string) => req('echo', { message: m }, { session: null });
    expect(code(await r.cp.decide(sessionless('a')))).toBe('ALLOWED');
    expect(code(await r.cp.decide(sessionless('b')))).toBe('ALLOWED');
    expect(code(await r.cp.decide(sessionless('c')))).toBe('ERR_CIRCUIT_OPEN');
    r.clock.advance(500);
    expect(code(await r.cp.decide(sessionless('d')))).toBe('ERR_CIRCUIT_OPEN');
    r.clock.advance(1000);
    expect(code(await r.cp.decide(sessionless('e')))).toBe('ALLOWED');
  });

  it('an operator reset closes a breaker at once, ledgered as admin.breaker_reset first', async () => {
    const r = await open({ breakers: { maxCallsPerSessionWindow: 1, windowMs: 60_000 } });
    const sessionless = (m: string) => req('echo', { message: m }, { session: null });
    expect(code(await r.cp.decide(sessionless('a')))).toBe('ALLOWED');
    expect(code(await r.cp.decide(sessionless('b')))).toBe('ERR_CIRCUIT_OPEN');
    // The ledger refuses: nothing is reset.
    r.faulty.mode = 'fail';
    const failed = await r.cp.resetBreaker({ scope: 'client', client: 'agent-1' }, OPERATOR, 'drill');
    expect(failed).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    r.faulty.mode = 'ok';
    expect(code(await r.cp.decide(sessionless('c')))).toBe('ERR_CIRCUIT_OPEN');
    const done = await r.cp.resetBreaker({ scope: 'client', client: 'agent-1' }, OPERATOR, 'drill');
    expect(done).toMatchObject({ outcome: 'ok', breaker: 'session_rate' });
    const entry = (await entriesOf(r.ledger)).find((e) => e.type === 'admin.breaker_reset');
    expect(entry?.payload).toEqual({
      breaker: 'session_rate',
      scope: 'client',
      client: 'agent-1',
      session: null,
      reason: 'drill',
    });
    expect(code(await r.cp.decide(sessionless('d')))).toBe('ALLOWED');
  });

  it('a tenant reset clears its rate window', async () => {
    const r = await open({ breakers: { maxCallsPerTenantWindow: 1 } });
    expect(code(await r.cp.decide(req('echo', { message: 'a' }, { session: 's-a' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('echo', { message: 'b' }, { session: 's-b' })))).toBe(
      'ERR_CIRCUIT_OPEN',
    );
    expect(await r.cp.resetBreaker({ scope: 'tenant', tenant: 'acme' }, OPERATOR, 'drill')).toMatchObject({
      outcome: 'ok',
      breaker: null,
    });
    expect(code(await r.cp.decide(req('echo', { message: 'c' }, { session: 's-c' })))).toBe('ALLOWED');
  });

  it('quarantine of client:NAME applies to that client’s sessionless calls; a session may not take that form', async () => {
    const r = await open();
    expect(await r.cp.admin.setSessionQuarantine('client:agent-1', true, OPERATOR, 'drill')).toMatchObject({
      outcome: 'ok',
    });
    expect(code(await r.cp.decide(req('echo', { message: 'a' }, { session: null })))).toBe(
      'ERR_SESSION_QUARANTINED',
    );
    expect(code(await r.cp.decide(req('echo', { message: 'a' }, { session: 'client:agent-2' })))).toBe(
      'ERR_REQUEST_MALFORMED',
    );
    await r.cp.admin.setSessionQuarantine('client:agent-1', false, OPERATOR, 'drill');
    expect(code(await r.cp.decide(req('echo', { message: 'b' }, { session: null })))).toBe('ALLOWED');
  });

  it('per-call spend above the obligation max_cost_usd trips (pay is capped at $50)', async () => {
    const r = await open();
    expect(code(await r.cp.decide(req('pay', { amount_cents: 5000 })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('pay', { amount_cents: 5001 }, { session: 'sess-2' })))).toBe(
      'ERR_CIRCUIT_OPEN',
    );
    expect((await r.state.snapshot()).quarantined_sessions).toEqual(['sess-2']);
  });

  it('the envelope carries the cost cap as max_cost_cents', async () => {
    const r = await open();
    const res = await r.cp.decide(req('pay', { amount_cents: 10 }));
    if (res.outcome !== 'allow') throw new Error('expected allow');
    const claims = JSON.parse(Buffer.from(res.envelope.split('.')[1]!, 'base64url').toString('utf8'));
    expect(claims.constraints.max_cost_cents).toBe(5000);
  });

  it('tenant spend per UTC day trips, and a new day starts from zero', async () => {
    const r = await open({ breakers: { maxSpendCentsPerTenantDay: 10_000 } });
    expect(code(await r.cp.decide(req('pay', { amount_cents: 4000 }, { session: 's1' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('pay', { amount_cents: 4000 }, { session: 's2' })))).toBe('ALLOWED');
    expect(code(await r.cp.decide(req('pay', { amount_cents: 4000 }, { session: 's3' })))).toBe(
      'ERR_CIRCUIT_OPEN',
    );
    r.clock.advance(86_400_000);
    expect(code(await r.cp.decide(req('pay', { amount_cents: 4000 }, { session: 's4' })))).toBe('ALLOWED');
  });

  it('spend of a call whose decision was not recorded is released', async () => {
    const r = await open({ breakers: { maxSpendCentsPerTenantDay: 5_000 } });
    r.faulty.mode = 'fail';
    expect(code(await r.cp.decide(req('pay', { amount_cents: 5000 }, { session: 's1' })))).toBe(
      'ERR_LEDGER_UNAVAILABLE',
    );
    r.faulty.mode = 'ok';
    expect(code(await r.cp.decide(req('pay', { amount_cents: 5000 }, { session: 's2' })))).toBe('ALLOWED');
  });
});

describe('breaker units', () => {
  const call = (over: Partial<Parameters<ReturnType<typeof createCircuitBreakers>['admit']>[0]> = {}) => ({
    sessionKey: 's',
    tenant: 't',
    tool: 'echo',
    paramsSha256: 'a'.repeat(64),
    now: 0,
    ...over,
  });

  it('rejects non-positive limits', () => {
    expect(() => createCircuitBreakers({ ...DEFAULT_BREAKERS, loopThreshold: 0 })).toThrow(TypeError);
    expect(() => createCircuitBreakers({ ...DEFAULT_BREAKERS, windowMs: 1.5 })).toThrow(TypeError);
  });

  it('loop detection is per session and per exact parameters hash', async () => {
    const b = createCircuitBreakers({ ...DEFAULT_BREAKERS, loopThreshold: 2 });
    expect((await b.admit(call())).tripped).toBe(false);
    expect((await b.admit(call())).tripped).toBe(false);
    expect((await b.admit(call({ paramsSha256: 'b'.repeat(64) }))).tripped).toBe(false);
    expect((await b.admit(call({ sessionKey: 'other' }))).tripped).toBe(false);
    expect(await b.admit(call())).toEqual({ tripped: true, breaker: 'loop' });
    // Open for the session, whatever the call, until its window passed (OE-INV-021 recovery).
    expect(await b.admit(call({ paramsSha256: 'c'.repeat(64), now: DEFAULT_BREAKERS.windowMs - 1 }))).toEqual(
      {
        tripped: true,
        breaker: 'loop',
      },
    );
    expect(
      (await b.admit(call({ paramsSha256: 'c'.repeat(64), now: DEFAULT_BREAKERS.windowMs }))).tripped,
    ).toBe(false);
  });

  it('an open breaker recovers after its window; a clock moved backwards keeps it open', async () => {
    const b = createCircuitBreakers({ ...DEFAULT_BREAKERS, maxCallsPerSessionWindow: 1, windowMs: 1000 });
    expect((await b.admit(call({ now: 5000 }))).tripped).toBe(false);
    expect(await b.admit(call({ now: 5001, paramsSha256: 'b'.repeat(64) }))).toEqual({
      tripped: true,
      breaker: 'session_rate',
    });
    expect(await b.openBreaker('s', 5500)).toBe('session_rate');
    expect((await b.admit(call({ now: 0, paramsSha256: 'c'.repeat(64) }))).tripped).toBe(true);
    expect((await b.admit(call({ now: 6001, paramsSha256: 'd'.repeat(64) }))).tripped).toBe(false);
    expect(await b.openBreaker('s', 6001)).toBeNull();
  });

  it('the lifetime breaker stays open until an operator reset, which also clears the counts', async () => {
    const b = createCircuitBreakers({ ...DEFAULT_BREAKERS, maxCallsPerSession: 1 });
    expect((await b.admit(call())).tripped).toBe(false);
    expect(await b.admit(call({ now: 1, paramsSha256: 'b'.repeat(64) }))).toEqual({
      tripped: true,
      breaker: 'session_calls',
    });
    expect((await b.admit(call({ now: 10 ** 12 }))).tripped).toBe(true);
    await b.reset({ principal: 's' });
    expect((await b.admit(call({ now: 10 ** 12 + 1 }))).tripped).toBe(false);
  });

  it('declared cost and USD conversion', () => {
    expect(declaredCostCents({ amount_cents: 12 }, 'amount_cents')).toBe(12);
    expect(declaredCostCents({ other: 1 }, 'amount_cents')).toBeNull();
    expect(declaredCostCents(['amount_cents'], 'amount_cents')).toBeNull();
    expect(declaredCostCents({ amount_cents: -1 }, 'amount_cents')).toBeNaN();
    expect(declaredCostCents({ amount_cents: '5' }, 'amount_cents')).toBeNaN();
    expect(usdToCents('50')).toBe(5000);
    expect(usdToCents('0.5')).toBe(50);
    expect(usdToCents('12.34')).toBe(1234);
    expect(usdToCents(null)).toBeNull();
    for (const bad of ['1.234', '-1', '1e3', '', ' 1']) expect(usdToCents(bad)).toBeNaN();
  });

  it('an invalid declared cost is ERR_PARAMS_INVALID in the pipeline', async () => {
    const r = await open();
    // The schema requires an integer ≥ 0, so the schema refuses first; both are denies.
    expect(code(await r.cp.decide(req('pay', { amount_cents: -5 })))).toBe('ERR_PARAMS_INVALID');
  });
});
