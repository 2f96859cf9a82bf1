/**
 * GEI Determinism (SPEC §3): identical request, bundle, keys and clock give byte-identical
 * decision records and envelopes; `decision_id` and `jti` are keyed hashes of the request.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  deriveDecisionId,
  deriveId,
  deriveJti,
  type GovernedRequest,
} from '../../src/control-plane/index.js';
import { DERIVATION_KEY, entriesOf, request, rig, type Rig } from './support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

async function run(reqs: GovernedRequest[]) {
  const r = await rig();
  opened.push(r);
  const results = [];
  for (const q of reqs) results.push(await r.cp.decide(q));
  const entries = await entriesOf(r.ledger);
  return { results, entries };
}

describe('determinism (GEI)', () => {
  it('two control planes with the same inputs produce identical envelopes and decision payloads', async () => {
    const reqs = [
      request('echo', { message: 'hi' }),
      request('echo', { message: 'forbidden' }, { request_id: 'req-2' }),
      request('rm', {}, { request_id: 'req-3' }),
      request('wire', { amount_cents: 7 }, { request_id: 'req-4' }),
    ];
    const a = await run(reqs);
    const b = await run(reqs);
    expect(a.results[0]!.outcome).toBe('allow');
    expect(b.results).toEqual(a.results);
    const payloads = (x: typeof a) => x.entries.map((e) => JSON.stringify([e.type, e.payload]));
    expect(payloads(b)).toEqual(payloads(a));
    // Same clocks too: the ledger entries themselves are byte-identical.
    expect(b.entries.map((e) => e.entry_hash)).toEqual(a.entries.map((e) => e.entry_hash));
  });

  it('a different request or derivation key changes the identifiers', () => {
    const base = request('echo', { message: 'hi' });
    const sha = 'a'.repeat(64);
    expect(deriveDecisionId(DERIVATION_KEY, base, sha)).toBe(deriveDecisionId(DERIVATION_KEY, base, sha));
    expect(deriveDecisionId(DERIVATION_KEY, base, sha)).not.toBe(deriveJti(DERIVATION_KEY, base, sha));
    expect(deriveDecisionId(Buffer.alloc(32, 1), base, sha)).not.toBe(
      deriveDecisionId(DERIVATION_KEY, base, sha),
    );
    expect(deriveDecisionId(DERIVATION_KEY, { ...base, session: null }, sha)).not.toBe(
      deriveDecisionId(DERIVATION_KEY, base, sha),
    );
    expect(() => deriveId(Buffer.alloc(16), 'decision', {})).toThrow(TypeError);
  });

  it('a retry (new nonce, timestamp, trace and raw hash; same request id and intent) maps to the same decision', () => {
    const base = request('echo', { message: 'hi' });
    const sha = 'c'.repeat(64);
    const retry = {
      ...base,
      trace_id: 'f'.repeat(32),
      timestamp: base.timestamp + 5000,
      request_sha256: 'd'.repeat(64),
    };
    expect(deriveDecisionId(DERIVATION_KEY, retry, sha)).toBe(deriveDecisionId(DERIVATION_KEY, base, sha));
    expect(deriveJti(DERIVATION_KEY, retry, sha)).toBe(deriveJti(DERIVATION_KEY, base, sha));
    expect(deriveDecisionId(DERIVATION_KEY, base, 'e'.repeat(64))).not.toBe(
      deriveDecisionId(DERIVATION_KEY, base, sha),
    );
  });

  it('distinct request fields never share a decision_id or jti (property)', () => {
    const field = fc.constantFrom('request_id', 'identity', 'tenant', 'tool', 'session');
    fc.assert(
      fc.property(field, fc.string({ minLength: 1, maxLength: 20 }), (name, value) => {
        const base = request('echo', { message: 'hi' });
        fc.pre(base[name] !== value);
        const changed = { ...base, [name]: value };
        const sha = 'b'.repeat(64);
        return (
          deriveDecisionId(DERIVATION_KEY, changed, sha) !== deriveDecisionId(DERIVATION_KEY, base, sha) &&
          deriveJti(DERIVATION_KEY, changed, sha) !== deriveJti(DERIVATION_KEY, base, sha)
        );
      }),
    );
  });

  it('iat is floor(now / 1000) and exp = iat + ttl', async () => {
    const r = await rig();
    opened.push(r);
    r.clock.set(Date.UTC(2025, 0, 1, 0, 0, 0, 999));
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    if (res.outcome !== 'allow') throw new Error('expected allow');
    const claims = JSON.parse(Buffer.from(res.envelope.split('.')[1]!, 'base64url').toString());
    expect(claims.iat).toBe(Date.UTC(2025, 0, 1) / 1000);
    expect(claims.exp).toBe(claims.iat + 60);
  });
});
