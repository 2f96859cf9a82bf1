/**
 * Client-key tokens at the MCP endpoint (docs/mcp.md "stdio", FC-INV-3): only a short-lived
 * EdDSA token signed by an active registered client's own key, for this resource, authenticates;
 * tenant and roles come from the registration. A registry that does not answer is a deny.
 */
import { describe, expect, it } from 'vitest';
import { signClientToken } from '../../src/client/index.js';
import { createMcpAuthenticator } from '../../src/gate/index.js';
import type { RegisteredClient } from '../../src/gate/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

const RESOURCE = 'http://127.0.0.1:7070/mcp';
const NOW = Date.parse('2026-01-01T00:00:00.000Z');
const key = generateSigningKey();
const other = generateSigningKey();
const clients = new Map<string, RegisteredClient>([
  [
    'agent-1',
    {
      identity: 'agent-1',
      tenant: 'acme',
      kid: key.kid,
      status: 'active',
      roles: ['operator'],
      publicKey: key.publicKey,
    },
  ],
  ['gone', { identity: 'gone', tenant: 'acme', kid: key.kid, status: 'revoked', publicKey: key.publicKey }],
]);
/** The Gate's replay memory, reduced to what the authenticator claims: one `jti` once. */
const seen = new Set<string>();
const replay = {
  claimNonce: ({ identity, nonce }: { identity: string; nonce: string }) => {
    const k = `${identity}\u0000${nonce}`;
    if (seen.has(k)) return 'replayed' as const;
    seen.add(k);
    return 'fresh' as const;
  },
};
const auth = createMcpAuthenticator({
  resource: RESOURCE,
  clients: { lookup: (id) => clients.get(id) },
  replay,
  clock: () => NOW,
  clockToleranceSec: 30,
});

describe('client-key tokens', () => {
  it('a token signed by the registered key authenticates with the registration tenant and roles', async () => {
    const p = await auth(`Bearer ${signClientToken(key, 'agent-1', RESOURCE, NOW)}`);
    expect(p).toEqual({
      identity: 'agent-1',
      tenant: 'acme',
      roles: ['operator'],
      auth_method: 'client_key',
      issuer: 'agent-1',
    });
    // The scheme is case-insensitive.
    expect(await auth(`bearer ${signClientToken(key, 'agent-1', RESOURCE, NOW)}`)).toMatchObject({
      identity: 'agent-1',
    });
  });

  it.each([
    ['another key', () => signClientToken(other, 'agent-1', RESOURCE, NOW)],
    ['another audience', () => signClientToken(key, 'agent-1', 'http://elsewhere/mcp', NOW)],
    ['expired', () => signClientToken(key, 'agent-1', RESOURCE, NOW - 10 * 60_000)],
    ['too long-lived', () => signClientToken(key, 'agent-1', RESOURCE, NOW, 3600)],
    ['an unknown client', () => signClientToken(key, 'nobody', RESOURCE, NOW)],
    ['a revoked client', () => signClientToken(key, 'gone', RESOURCE, NOW)],
    [
      'a tampered payload',
      () => {
        const [h, , s] = signClientToken(key, 'agent-1', RESOURCE, NOW).split('.');
        const forged = Buffer.from(
          JSON.stringify({
            iss: 'agent-1',
            sub: 'agent-1',
            aud: RESOURCE,
            iat: NOW / 1000,
            exp: NOW / 1000 + 60,
            tenant: 'globex',
          }),
        ).toString('base64url');
        return `${h}.${forged}.${s}`;
      },
    ],
    ['garbage', () => 'not-a-jwt'],
    // Minted ahead of time: never usable, however short its own life.
    ['issued a year ahead', () => signClientToken(key, 'agent-1', RESOURCE, NOW + 365 * 86_400_000)],
  ])('%s: ERR_TOKEN_INVALID', async (_name, make) => {
    expect(await auth(`Bearer ${make()}`)).toMatchObject({ outcome: 'deny', code: 'ERR_TOKEN_INVALID' });
  });

  it('no header, or another scheme: ERR_UNAUTHENTICATED / ERR_TOKEN_INVALID', async () => {
    expect(await auth(undefined)).toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
    expect(await auth('Basic YWxhZGRpbjpvcGVuc2VzYW1l')).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
  });

  it('without a configured issuer an OAuth-looking token is refused', async () => {
    const token = signClientToken(key, 'agent-1', RESOURCE, NOW).replace(
      /^[^.]+/,
      Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' })).toString('base64url'),
    );
    expect(await auth(`Bearer ${token}`)).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
  });

  it('a registry that hangs denies ERR_CLIENT_REGISTRY_UNAVAILABLE', async () => {
    const hung = createMcpAuthenticator({
      resource: RESOURCE,
      clients: { lookup: () => new Promise(() => undefined) },
      clock: () => NOW,
      clockToleranceSec: 30,
      lookupMs: 20,
    });
    expect(await hung(`Bearer ${signClientToken(key, 'agent-1', RESOURCE, NOW)}`)).toMatchObject({
      code: 'ERR_CLIENT_REGISTRY_UNAVAILABLE',
    });
  });
});

describe('client-key tokens are single use', () => {
  it('the same token presented twice authenticates once', async () => {
    const token = signClientToken(key, 'agent-1', RESOURCE, NOW);
    expect(await auth(`Bearer ${token}`)).toMatchObject({ identity: 'agent-1' });
    expect(await auth(`Bearer ${token}`)).toMatchObject({ outcome: 'deny', code: 'ERR_TOKEN_INVALID' });
  });

  it('without a replay store to claim it in, no client-key token authenticates', async () => {
    const bare = createMcpAuthenticator({
      resource: RESOURCE,
      clients: { lookup: (id) => clients.get(id) },
      clock: () => NOW,
      clockToleranceSec: 30,
    });
    expect(await bare(`Bearer ${signClientToken(key, 'agent-1', RESOURCE, NOW)}`)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_TOKEN_INVALID',
    });
  });
});
