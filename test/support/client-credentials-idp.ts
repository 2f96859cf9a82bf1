/**
 * A real OAuth authorization server for upstream tokens (`oidc-provider` with its client
 * credentials grant and RFC 8707 resource indicators enabled), on loopback: it issues JWT access
 * tokens whose audience is the `resource` asked for, counts the token requests it answered, and
 * gives the upstream side a verifier (signature, issuer, audience, expiry) with its public key.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import Provider from 'oidc-provider';

/** A running authorization server. */
export interface ClientCredentialsIdp {
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly port: number;
  /** Token requests it received. */
  readonly tokenRequests: number;
  /** Whether `token` is one it issued for `audience`, unexpired. */
  verify(token: string, audience: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Starts the authorization server with one confidential client. */
export async function startClientCredentialsIdp(client: {
  readonly id: string;
  readonly secret: string;
}): Promise<ClientCredentialsIdp> {
  const pair = await generateKeyPair('RS256', { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'up-1', alg: 'RS256', use: 'sig' };
  const jwk: JWK = { ...(await exportJWK(pair.privateKey)), kid: 'up-1', alg: 'RS256', use: 'sig' };
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.id,
        client_secret: client.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => ({
          scope: 'mcp',
          audience: indicator,
          accessTokenFormat: 'jwt' as const,
          accessTokenTTL: 300,
          jwt: { sign: { alg: 'RS256' as const } },
        }),
      },
    },
  });
  let tokenRequests = 0;
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/token') tokenRequests += 1;
    callback(req, res);
  });
  const keys = createLocalJWKSet({ keys: [publicJwk] });
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    port,
    get tokenRequests() {
      return tokenRequests;
    },
    async verify(token, audience) {
      try {
        await jwtVerify(token, keys, { issuer, audience, algorithms: ['RS256'] });
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
