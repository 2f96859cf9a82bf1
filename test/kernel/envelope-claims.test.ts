/**
 * SPEC §3 step 6, "all required claims present and typed": the claim validator shared by the
 * issuer and the verifier, on inputs JSON cannot produce but a caller can (it is exported), and
 * at the exact edges of each member's type.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  encodeEnvelopeClaims,
  isEnvelopeClaims,
  parseEnvelopeClaims,
  type EnvelopeClaims,
  type JsonValue,
} from '../../src/kernel/index.js';
import { baseClaims } from '../fixtures/envelope-reject/generate.js';

const HEX = 'ab'.repeat(32);

function full(): EnvelopeClaims {
  return {
    ...baseClaims(),
    approvals: ['approval:alice', 'approval:bob'],
    constraints: {
      ...baseClaims().constraints,
      network: true,
      egress: ['api.example.com:443'],
      fs_read: ['/srv/reports'],
      fs_write: ['/tmp/out'],
      max_cost_cents: 0,
    },
  };
}

describe('SPEC §3 step 6: claims are exactly the required members, as own properties', () => {
  it('a value that is not an object is not claims, and never throws', () => {
    for (const v of [undefined, null, 0, 'claims', true, [], [full()]])
      expect(isEnvelopeClaims(v)).toBe(false);
  });

  it('an array carrying every claim as a member is not claims', () => {
    expect(isEnvelopeClaims(Object.assign([], full()))).toBe(false);
  });

  it('a claim inherited from a prototype does not count, even when the member count matches', () => {
    const { jti, ...rest } = full();
    const inherited = Object.assign(Object.create({ jti }) as object, rest, { other: 'x' });
    expect(Object.keys(inherited)).toHaveLength(Object.keys(full()).length);
    expect(isEnvelopeClaims(inherited)).toBe(false);
    const { network, ...k } = full().constraints;
    const constraints = Object.assign(Object.create({ network }) as object, k, { other: 1 });
    expect(isEnvelopeClaims({ ...full(), constraints })).toBe(false);
    const ledger = Object.assign(Object.create({ index: 41 }) as object, { entry_hash: HEX, other: 1 });
    expect(isEnvelopeClaims({ ...full(), ledger })).toBe(false);
  });

  it.each<[string, Record<string, unknown>]>([
    ['ledger null', { ledger: null }],
    ['ledger an array with its members', { ledger: Object.assign([], { index: 1, entry_hash: HEX }) }],
    ['constraints null', { constraints: null }],
    ['constraints undefined', { constraints: undefined }],
    ['constraints an array with its members', { constraints: Object.assign([], full().constraints) }],
    ['approvals null', { approvals: null }],
  ])('%s is refused, not thrown', (_n, patch) => {
    expect(isEnvelopeClaims({ ...full(), ...patch })).toBe(false);
  });
});

describe('SPEC §3 step 6: each member has its type, at its edges', () => {
  it.each<[string, Record<string, unknown>]>([
    ['a digest of 65 hex digits', { policy_bundle: `${HEX}a` }],
    ['a digest with a leading non-hex character', { policy_bundle: `z${HEX}` }],
    ['a digest with a trailing non-hex character', { params_sha256: `${HEX}z` }],
    ['a digest in a one-item list', { params_sha256: [HEX] }],
    ['a ledger hash in a one-item list', { ledger: { index: 1, entry_hash: [HEX] } }],
    ['a negative max_cost_cents', { constraints: { ...full().constraints, max_cost_cents: -1 } }],
    ['a string max_cost_cents', { constraints: { ...full().constraints, max_cost_cents: '5' } }],
    ['a missing max_cost_cents', { constraints: { ...full().constraints, max_cost_cents: undefined } }],
    ['network as a number', { constraints: { ...full().constraints, network: 0 } }],
    ['a fractional iat', { iat: 1.5 }],
    ['a negative exp', { exp: -1 }],
    ['a ledger index as a string', { ledger: { index: '1', entry_hash: HEX } }],
    ['a string as a list', { approvals: 'approval:alice' }],
    ['a list with a number', { constraints: { ...full().constraints, fs_read: [7] } }],
    ['a list item over 512 units', { constraints: { ...full().constraints, egress: ['e'.repeat(513)] } }],
    ['a list of 65 items', { constraints: { ...full().constraints, fs_write: Array(65).fill('/w') } }],
    ['a count as a string', { constraints: { ...full().constraints, memory_bytes: '1' } }],
    ['a string claim as a number', { trace_id: 7 }],
  ])('refuses %s', (_n, patch) => {
    expect(isEnvelopeClaims({ ...full(), ...patch })).toBe(false);
  });

  it.each<[string, Record<string, unknown>]>([
    ['zero counts and max_cost_cents', { iat: 0, exp: 0, ledger: { index: 0, entry_hash: HEX } }],
    [
      'a list of exactly 64 items',
      { constraints: { ...full().constraints, fs_write: Array(64).fill('/w') } },
    ],
    ['a list item of exactly 512 units', { approvals: ['a'.repeat(512)] }],
    ['a one-unit string claim', { jti: 'j' }],
    ['max_cost_cents null', { constraints: { ...full().constraints, max_cost_cents: null } }],
  ])('accepts %s', (_n, patch) => {
    expect(isEnvelopeClaims({ ...full(), ...patch })).toBe(true);
  });
});

describe('SPEC §3: parsed claims are a frozen deep copy', () => {
  it('copies every list, so later edits of the input change nothing', () => {
    const input = full();
    const parsed = parseEnvelopeClaims(input);
    expect(parsed).toStrictEqual(full());
    (input.constraints.egress as string[]).push('evil.example:443');
    (input.constraints.fs_read as string[]).push('/');
    (input.constraints.fs_write as string[]).push('/');
    (input.approvals as string[]).push('approval:mallory');
    (input.ledger as { index: number }).index = 99;
    expect(parsed).toStrictEqual(full());
    for (const frozen of [parsed, parsed.ledger, parsed.approvals, parsed.constraints]) {
      expect(Object.isFrozen(frozen)).toBe(true);
    }
    for (const list of [parsed.constraints.egress, parsed.constraints.fs_read, parsed.constraints.fs_write]) {
      expect(Object.isFrozen(list)).toBe(true);
    }
  });

  it('the fixed-order encoder is the canonical JSON of full claims', () => {
    const claims = full();
    expect(encodeEnvelopeClaims(claims)).toBe(canonicalize(claims as unknown as JsonValue));
    const noCost = { ...claims, constraints: { ...claims.constraints, max_cost_cents: null } };
    expect(encodeEnvelopeClaims(noCost)).toBe(canonicalize(noCost as unknown as JsonValue));
  });
});
