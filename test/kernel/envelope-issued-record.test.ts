/**
 * The `envelope.issued` record (SPEC §3 "an envelope is never a bearer token at rest": record its
 * claims and a digest): what the payload holds, and reading the claims back strictly.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  claimsOfIssued,
  envelopeSha256,
  issuedPayload,
  sha256Hex,
  type EnvelopeClaims,
  type IssuedEntryLike,
  type JsonValue,
} from '../../src/kernel/index.js';
import { signEnvelope } from '../../src/kernel/signing/index.js';
import { baseClaims, TEST_KEY } from '../fixtures/envelope-reject/generate.js';

const CLAIMS: EnvelopeClaims = {
  ...baseClaims(),
  approvals: ['approval:alice', 'approval:bob'],
  constraints: {
    ...baseClaims().constraints,
    network: true,
    egress: ['api.example.com:443'],
    fs_write: ['/tmp/out'],
    max_cost_cents: 250,
  },
};
// Signed inside the tests, not while collecting them: a mutant that makes signing throw must
// fail tests, not the file's collection (which the mutation runner does not count as a kill).
let signed: string | undefined;
const token = (): string => (signed ??= signEnvelope(CLAIMS, TEST_KEY));
const digest = (): string => envelopeSha256(token());

function entry(payload = issuedPayload(CLAIMS, TEST_KEY.kid, digest())): IssuedEntryLike {
  return { tenant: CLAIMS.tenant, trace_id: CLAIMS.trace_id, request_id: CLAIMS.request_id, payload };
}

describe('SPEC §3: envelopeSha256 is the digest of the compact JWS', () => {
  it('is lower-hex SHA-256 of the envelope string, one byte per character', () => {
    expect(digest()).toBe(sha256Hex(Buffer.from(token(), 'ascii')));
    expect(envelopeSha256('\u00e9')).toBe(sha256Hex(Buffer.from([0xe9])));
    expect(digest()).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('SPEC §3: the envelope.issued payload holds the claims and a digest, never the JWS', () => {
  const payloadOf = (): ReturnType<typeof issuedPayload> => issuedPayload(CLAIMS, TEST_KEY.kid, digest());

  it('is exactly these members, taken from the claims', () => {
    expect(payloadOf()).toStrictEqual({
      decision_id: CLAIMS.decision_id,
      jti: CLAIMS.jti,
      envelope_sha256: digest(),
      kid: TEST_KEY.kid,
      iss: CLAIMS.iss,
      aud: CLAIMS.aud,
      sub: CLAIMS.sub,
      iat: CLAIMS.iat,
      exp: CLAIMS.exp,
      tool: CLAIMS.tool,
      params_sha256: CLAIMS.params_sha256,
      policy_bundle: CLAIMS.policy_bundle,
      ledger_ref: { index: CLAIMS.ledger.index, entry_hash: CLAIMS.ledger.entry_hash },
      approvals: ['approval:alice', 'approval:bob'],
      constraints: {
        timeout_ms: 5000,
        max_output_bytes: 65536,
        memory_bytes: 134217728,
        network: true,
        egress: ['api.example.com:443'],
        fs_read: ['/srv/reports'],
        fs_write: ['/tmp/out'],
        max_cost_cents: 250,
      },
    });
  });

  it('holds no part of the token and copies every list', () => {
    const payload = payloadOf();
    const text = canonicalize(payload);
    for (const segment of token().split('.')) expect(text).not.toContain(segment);
    expect(payload.approvals).not.toBe(CLAIMS.approvals);
    const k = payload.constraints as Record<string, JsonValue>;
    expect(k.egress).not.toBe(CLAIMS.constraints.egress);
    expect(k.fs_read).not.toBe(CLAIMS.constraints.fs_read);
    expect(k.fs_write).not.toBe(CLAIMS.constraints.fs_write);
  });
});

describe('SPEC §3 / L7 Boundary B: claimsOfIssued reads the recorded claims back strictly', () => {
  it('round-trips the claims, frozen, from the entry and its payload', () => {
    const claims = claimsOfIssued(entry());
    expect(claims).toStrictEqual(CLAIMS);
    expect(Object.isFrozen(claims)).toBe(true);
    expect(Object.isFrozen(claims?.constraints)).toBe(true);
    expect(Object.isFrozen(claims?.constraints.egress)).toBe(true);
    expect(Object.isFrozen(claims?.ledger)).toBe(true);
    expect(Object.isFrozen(claims?.approvals)).toBe(true);
  });

  it('takes tenant, trace_id and request_id from the entry, not the payload', () => {
    const e = { ...entry(), tenant: 'other', trace_id: 'trace-2', request_id: 'req-2' };
    expect(claimsOfIssued(e)).toMatchObject({ tenant: 'other', trace_id: 'trace-2', request_id: 'req-2' });
  });

  it.each([
    'decision_id',
    'jti',
    'iss',
    'aud',
    'sub',
    'iat',
    'exp',
    'tool',
    'params_sha256',
    'policy_bundle',
    'ledger_ref',
    'approvals',
    'constraints',
  ])('an entry without %s, or with it mistyped, carries no claims', (name) => {
    const payload: Record<string, JsonValue> = { ...issuedPayload(CLAIMS, TEST_KEY.kid, digest()) };
    delete payload[name];
    expect(claimsOfIssued(entry(payload))).toBeUndefined();
    expect(claimsOfIssued(entry({ ...payload, [name]: {} }))).toBeUndefined();
  });

  it('an entry with an empty tenant carries no claims', () => {
    expect(claimsOfIssued({ ...entry(), tenant: '' })).toBeUndefined();
  });
});
