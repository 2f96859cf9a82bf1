/**
 * The one signed request format (src/kernel/request.ts; docs/request-format.md "Signature",
 * SPEC §2 step 1, FC-INV-3): the exact bytes a client signs and the derived trace id, pinned as
 * known answers so that client, Gate and offline verifier cannot drift together.
 */
import { describe, expect, it } from 'vitest';
import {
  REQUEST_FIELDS,
  REQUEST_SIGNING_CONTEXT,
  requestSigningInput,
  requestTraceId,
  sha256Hex,
} from '../../src/kernel/index.js';
import type { SignedRequest } from '../../src/kernel/index.js';

const fields = {
  request_id: 'req-1',
  identity: 'agent-1',
  tenant: 'acme',
  action: 'echo',
  parameters: { z: [1, 'two'], a: { y: null, b: true } },
  timestamp: '2025-06-01T12:00:00.000Z',
  nonce: 'AAAAAAAAAAAAAAAAAAAAAA',
  session: 's-1',
} as const;
const CANONICAL =
  '{"action":"echo","identity":"agent-1","nonce":"AAAAAAAAAAAAAAAAAAAAAA",' +
  '"parameters":{"a":{"b":true,"y":null},"z":[1,"two"]},"request_id":"req-1","session":"s-1",' +
  '"tenant":"acme","timestamp":"2025-06-01T12:00:00.000Z"}';

describe('FC-INV-3: the request signing input (docs/request-format.md "Signature")', () => {
  it('is the context string followed by the canonical JSON of every field but the signature', () => {
    expect(REQUEST_SIGNING_CONTEXT).toBe('failclosed-request-v1\n');
    expect(requestSigningInput(fields).toString('utf8')).toBe(`failclosed-request-v1\n${CANONICAL}`);
  });

  it('covers a null session, and ignores anything but the eight signed fields', () => {
    const withSig = { ...fields, session: null, signature: 'sig', extra: 1 } as unknown as SignedRequest;
    expect(requestSigningInput(withSig).toString('utf8')).toBe(
      `failclosed-request-v1\n${CANONICAL.replace('"session":"s-1"', '"session":null')}`,
    );
  });

  it('the documented field list, in order', () => {
    expect(REQUEST_FIELDS).toEqual([
      'request_id',
      'identity',
      'tenant',
      'action',
      'parameters',
      'timestamp',
      'nonce',
      'session',
      'signature',
    ]);
  });
});

describe('GEI determinism: trace_id of a request (docs/request-format.md)', () => {
  it('is the first 32 hex characters of SHA-256 over the canonical request, signature included', () => {
    const req: SignedRequest = { ...fields, signature: 'c2ln' };
    // The signature sorts between "session" and "tenant".
    const canonical = CANONICAL.replace('"tenant"', '"signature":"c2ln","tenant"');
    expect(requestTraceId(req)).toBe(sha256Hex(canonical).slice(0, 32));
    expect(requestTraceId(req)).toHaveLength(32);
    expect(requestTraceId({ ...req, signature: 'c2lo' })).not.toBe(requestTraceId(req));
  });
});
