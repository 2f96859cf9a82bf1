/**
 * The Gate and the verifier agree on the evidence of an MCP principal's call (docs/mcp.md
 * "Evidence", FC-INV-3, FC-INV-5): what the Gate mints parses as minted evidence with the same
 * request id, trace id and fields, and anything else is refused with a reason, never accepted.
 */
import { describe, expect, it } from 'vitest';
import { mintCall } from '../../src/gate/principal.js';
import type { Principal } from '../../src/gate/index.js';
import { MINTED_CALL_FORMAT } from '../../src/kernel/index.js';
import { parseMintedEvidence } from '../../src/verify/request-evidence.js';

const principal: Principal = {
  identity: 'agent-oauth',
  tenant: 'acme',
  roles: ['a', 'b'],
  auth_method: 'oauth',
  issuer: 'https://idp.example',
};

describe('minted-call evidence', () => {
  it('what the Gate mints the verifier reads back: fields, auth method, issuer, trace id', () => {
    for (const session of [null, 's-1']) {
      const m = mintCall(
        principal,
        { tool: 'echo', params: { message: 'hi' }, session },
        Date.UTC(2026, 0, 1),
      );
      const e = parseMintedEvidence(Buffer.from(m.evidence));
      expect(e).toEqual({
        request: {
          request_id: m.request_id,
          identity: 'agent-oauth',
          tenant: 'acme',
          action: 'echo',
          parameters: { message: 'hi' },
          timestamp: '2026-01-01T00:00:00.000Z',
          nonce: m.nonce,
          session,
          signature: '',
        },
        auth_method: 'oauth',
        issuer: 'https://idp.example',
        roles: ['a', 'b'],
        trace_id: m.trace_id,
      });
    }
  });

  it('the owner an OAuth token named is minted with the call and read back; mistyped, refused', () => {
    const m = mintCall(
      { ...principal, owner: 'alice' },
      { tool: 'echo', params: {}, session: null },
      Date.UTC(2026, 0, 1),
    );
    expect(parseMintedEvidence(Buffer.from(m.evidence))).toMatchObject({ owner: 'alice' });
    const o = JSON.parse(Buffer.from(m.evidence).toString('utf8')) as Record<string, unknown>;
    expect(typeof parseMintedEvidence(Buffer.from(JSON.stringify({ ...o, owner: 7 })))).toBe('string');
    // Without an owner the evidence carries no owner field at all.
    const plain = mintCall(principal, { tool: 'echo', params: {}, session: null }, 0);
    expect(parseMintedEvidence(Buffer.from(plain.evidence))).not.toHaveProperty('owner');
  });

  it('another format is not minted evidence; a malformed minted call is refused with a reason', () => {
    const m = mintCall(principal, { tool: 'echo', params: {}, session: null }, 0);
    const o = JSON.parse(Buffer.from(m.evidence).toString('utf8')) as Record<string, unknown>;
    expect(parseMintedEvidence(Buffer.from('{"request_id":"x"}'))).toBeUndefined();
    expect(parseMintedEvidence(Buffer.from('not json'))).toBeUndefined();
    const bad = (v: Record<string, unknown>): unknown => parseMintedEvidence(Buffer.from(JSON.stringify(v)));
    expect(typeof bad({ ...o, extra: 1 })).toBe('string');
    expect(typeof bad({ ...o, tool: 7 })).toBe('string');
    expect(typeof bad({ ...o, parameters: [] })).toBe('string');
    expect(typeof bad({ ...o, roles: [1] })).toBe('string');
    const { nonce: _n, ...missing } = o;
    expect(typeof bad(missing)).toBe('string');
    expect(o['format']).toBe(MINTED_CALL_FORMAT);
  });
});
