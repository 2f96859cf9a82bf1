/**
 * `failclosed.json` `mcp` is parsed strictly (STYLE "Untrusted input"): unknown members,
 * non-https issuers off loopback and algorithms that are not pinned asymmetric ones are refused;
 * the defaults keep the endpoint on the listener's own names (docs/mcp.md "Configuration").
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, defaultConfig } from '../../src/embedded/index.js';
import { parseMcpConfig, resolveMcpSettings } from '../../src/embedded/mcp-config.js';

const oauth = { issuer: 'https://idp.example', jwks_uri: 'https://idp.example/jwks' };

describe('failclosed.json mcp', () => {
  it('accepts a full configuration and an absent one', () => {
    const full = {
      resource: 'https://gate.example/mcp',
      allowed_hosts: ['gate.example'],
      allowed_origins: ['https://app.example'],
      approval_wait_ms: 30_000,
      oauth: {
        ...oauth,
        algorithms: ['ES256'],
        tenant_claim: 'org',
        roles_claim: 'groups',
        owner_claim: 'owner',
      },
    };
    expect(parseMcpConfig(full)).toEqual(full);
    const text = JSON.stringify({ ...defaultConfig(), mcp: full });
    expect(parseConfig(Buffer.from(text)).mcp).toEqual(full);
    expect(parseConfig(Buffer.from(JSON.stringify(defaultConfig()))).mcp).toBeUndefined();
  });

  it.each([
    ['an unknown member', { extra: 1 }],
    ['an unknown oauth member', { oauth: { ...oauth, audience: 'x' } }],
    ['alg none', { oauth: { ...oauth, algorithms: ['none'] } }],
    ['an HMAC algorithm', { oauth: { ...oauth, algorithms: ['HS256'] } }],
    ['a plain-http JWKS off loopback', { oauth: { ...oauth, jwks_uri: 'http://idp.example/jwks' } }],
    ['a resource with a fragment', { resource: 'https://gate.example/mcp#x' }],
    ['an empty host list', { allowed_hosts: [] }],
    ['an origin with a path', { allowed_origins: ['https://app.example/x'] }],
    ['a negative approval wait', { approval_wait_ms: -1 }],
    ['an approval wait past the longest', { approval_wait_ms: 120_001 }],
    ['a fractional approval wait', { approval_wait_ms: 1.5 }],
    ['a malformed owner claim name', { oauth: { ...oauth, owner_claim: 'has space' } }],
    ['not an object', 'mcp'],
  ])('refuses %s', (_name, value) => {
    expect(() => parseMcpConfig(value)).toThrow(TypeError);
  });

  it('defaults: resource <listener>/mcp, the listener names as hosts and origins, no issuer', () => {
    const { settings, oauth: issuer } = resolveMcpSettings(undefined, 'http://127.0.0.1:7070');
    expect(settings).toEqual({
      resource: 'http://127.0.0.1:7070/mcp',
      allowedHosts: ['127.0.0.1:7070', 'localhost:7070'],
      allowedOrigins: ['http://127.0.0.1:7070', 'http://localhost:7070'],
      authorizationServers: [],
      // A call answers pending at once unless configured to wait.
      approvalWaitMs: 0,
    });
    expect(issuer).toBeUndefined();
    expect(
      resolveMcpSettings({ approval_wait_ms: 500 }, 'http://127.0.0.1:7070').settings.approvalWaitMs,
    ).toBe(500);
    const withIssuer = resolveMcpSettings({ oauth }, 'http://127.0.0.1:7070');
    expect(withIssuer.oauth).toEqual({
      ...oauth,
      algorithms: ['RS256'],
      tenant_claim: 'tenant',
      roles_claim: 'roles',
    });
    // No owner claim unless configured: an OAuth principal then has no owner (nobody may approve).
    expect(withIssuer.oauth).not.toHaveProperty('owner_claim');
    expect(
      resolveMcpSettings({ oauth: { ...oauth, owner_claim: 'owner' } }, 'http://127.0.0.1:7070').oauth,
    ).toMatchObject({ owner_claim: 'owner' });
    expect(withIssuer.settings.authorizationServers).toEqual([oauth.issuer]);
  });
});
