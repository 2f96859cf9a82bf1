import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  canonicalize,
  computeParamsSha256,
  encodeEnvelopeClaims,
  isEnvelopeClaims,
  verifyEnvelope,
  type EnvelopeClaims,
  type JsonValue,
  type VerifyEnvelopeContext,
} from '../../src/kernel/index.js';
import { signEnvelope, signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import { baseClaims, baseContext, TEST_KEY, toVerifyContext } from '../fixtures/envelope-reject/generate.js';

// Signed inside the tests, not while collecting them: a mutant that makes signing throw must
// fail tests, not the file's collection (which the mutation runner does not count as a kill).
let signed: string | undefined;
const token = (): string => (signed ??= signEnvelope(baseClaims(), TEST_KEY));
const BASE_CTX = toVerifyContext(baseContext());

function ctxFor(call: VerifyEnvelopeContext['call']): VerifyEnvelopeContext {
  return { ...BASE_CTX, call };
}

const scalar = fc.oneof(fc.integer(), fc.string({ maxLength: 12 }), fc.boolean(), fc.constant(null));
const paramsArb = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), scalar, {
  minKeys: 1,
  maxKeys: 6,
});

describe('envelope properties (fast-check, SPEC §3)', () => {
  it('the unmodified envelope verifies (guards the properties below)', () => {
    expect(verifyEnvelope(token(), BASE_CTX).outcome).toBe('allow');
  });

  it('flipping any bit of the envelope string makes it fail', () => {
    const bytes = Buffer.from(token(), 'latin1');
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.nat({ max: 7 }), (index, bit) => {
        const copy = Buffer.from(bytes);
        copy[index] = copy[index]! ^ (1 << bit);
        const r = verifyEnvelope(copy.toString('latin1'), BASE_CTX);
        expect(r.outcome).toBe('deny');
        // Which check fails depends on the bit; every one of them is an envelope denial.
        expect(r.outcome === 'deny' ? r.code : 'ALLOWED').toMatch(/^ERR_ENVELOPE_/);
      }),
      { numRuns: 2000 },
    );
  });

  it('every single bit flip, exhaustively, fails', () => {
    const bytes = Buffer.from(token(), 'latin1');
    let allowed = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[i] = copy[i]! ^ (1 << bit);
        if (verifyEnvelope(copy.toString('latin1'), BASE_CTX).outcome !== 'deny') allowed++;
      }
    }
    expect(allowed).toBe(0);
  });

  it('changing the tool or the tenant makes it fail', () => {
    const call = baseContext().call;
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (other) => {
        fc.pre(other !== call.tool && other !== call.tenant);
        const byTool = verifyEnvelope(token(), ctxFor({ ...call, tool: other }));
        const byTenant = verifyEnvelope(token(), ctxFor({ ...call, tenant: other }));
        expect(byTool).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_TOOL_MISMATCH' });
        expect(byTenant).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_TENANT_MISMATCH' });
      }),
    );
  });

  it('changing, adding or removing any parameter makes it fail', () => {
    fc.assert(
      fc.property(
        paramsArb,
        fc.string({ minLength: 1, maxLength: 8 }),
        scalar,
        fc.nat(),
        (params, key, value, pick) => {
          const claims = { ...baseClaims(), params_sha256: computeParamsSha256(params) };
          const token = signEnvelope(claims, TEST_KEY);
          const call = { ...baseContext().call, params: params as JsonValue };
          expect(verifyEnvelope(token, ctxFor(call)).outcome).toBe('allow');
          const keys = Object.keys(params);
          const victim = keys[pick % keys.length]!;
          const edits: Record<string, JsonValue>[] = [];
          if (!Object.prototype.hasOwnProperty.call(params, key)) edits.push({ ...params, [key]: value });
          if (params[victim] !== value && !Object.is(params[victim], -0))
            edits.push({ ...params, [victim]: value });
          const removed: Record<string, JsonValue> = { ...params };
          delete removed[victim];
          edits.push(removed);
          for (const edited of edits) {
            const result = verifyEnvelope(token, ctxFor({ ...call, params: edited }));
            expect(result).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_PARAMS_MISMATCH' });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('issuance is deterministic: same claims and key give the identical string', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ minLength: 1, maxLength: 30 }),
        fc.nat({ max: 2 ** 40 }),
        (seed, tenant, iat) => {
          const claims = { ...baseClaims(), tenant, iat, exp: iat + 60 };
          const a = signEnvelope(claims, signingKeyFromSeed(seed));
          const b = signEnvelope({ ...claims }, signingKeyFromSeed(seed));
          expect(a).toBe(b);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('the fixed-order claims encoder equals canonicalize for every valid claims value (RFC 8785)', () => {
    const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 });
    const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });
    const hex = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
    const list = fc.array(text, { maxLength: 4 });
    const claimsArb = fc.record({
      iss: text,
      aud: text,
      sub: text,
      tenant: text,
      tool: text,
      params_sha256: hex,
      jti: text,
      iat: count,
      exp: count,
      decision_id: text,
      request_id: text,
      trace_id: text,
      policy_bundle: hex,
      ledger: fc.record({ index: count, entry_hash: hex }),
      approvals: list,
      constraints: fc.record({
        timeout_ms: count,
        max_output_bytes: count,
        memory_bytes: count,
        network: fc.boolean(),
        egress: list,
        fs_read: list,
        fs_write: list,
        max_cost_cents: fc.option(count, { nil: null }),
      }),
    });
    fc.assert(
      fc.property(claimsArb, (claims: EnvelopeClaims) => {
        expect(isEnvelopeClaims(claims)).toBe(true);
        expect(encodeEnvelopeClaims(claims)).toBe(canonicalize(claims as unknown as JsonValue));
      }),
      { numRuns: 500 },
    );
  });
});
