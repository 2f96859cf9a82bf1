/**
 * The client, the Gate and the verifier share the kernel's one request format (src/kernel/request.ts;
 * the verifier may import the kernel only, SPEC §5); this test fails if they drift apart: the same signing bytes, the same
 * trace id, and a request the Gate accepts parses as evidence (FC-INV-3, FC-INV-5).
 */
import { describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/request.js';
import {
  parseSignedRequest,
  requestSigningInput,
  REQUEST_SIGNING_CONTEXT,
  traceIdOf,
} from '../../src/gate/request.js';
import { isDeny } from '../../src/kernel/index.js';
import { signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import * as verifier from '../../src/verify/request-evidence.js';

const key = signingKeyFromSeed(Buffer.alloc(32, 3));

describe('Gate and verifier agree on the signed request', () => {
  it('same context, signing bytes and trace id; the Gate-parsed request parses as evidence', () => {
    expect(verifier.REQUEST_SIGNING_CONTEXT).toBe(REQUEST_SIGNING_CONTEXT);
    for (const session of [null, 'session-1']) {
      const body = Buffer.from(
        JSON.stringify(
          buildSignedRequest({
            key,
            identity: 'agent@x',
            tenant: 'acme',
            action: 'echo',
            parameters: { message: 'é', n: [1, { b: true, a: null }] },
            timestampMs: Date.UTC(2025, 0, 1),
            session,
          }),
        ),
      );
      const gate = parseSignedRequest(body);
      if (isDeny(gate)) throw new Error(gate.code);
      const ev = verifier.parseEvidenceRequest(body);
      if (typeof ev === 'string') throw new Error(ev);
      expect(verifier.requestSigningInput(ev).equals(requestSigningInput(gate.request))).toBe(true);
      expect(verifier.requestTraceId(ev)).toBe(traceIdOf(gate.request));
      expect(verifier.requestSignatureBytes(ev)?.equals(gate.signatureBytes)).toBe(true);
    }
  });

  it('evidence that is not a signed request is refused', () => {
    for (const bad of [
      '{}',
      '[]',
      'not json',
      '{"request_id":"r","identity":"a","tenant":"t","action":"x","parameters":[],"timestamp":"","nonce":"","session":null,"signature":""}',
    ]) {
      expect(typeof verifier.parseEvidenceRequest(Buffer.from(bad))).toBe('string');
    }
  });
});
