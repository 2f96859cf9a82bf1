/**
 * A real OpenID Connect identity provider for the console tests (`oidc-provider`, its own login
 * and consent pages: any login name signs in as that subject), and the browser's way through it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import Provider from 'oidc-provider';
import type { Page } from 'playwright-core';
export { freePort } from '../support/ports.js';

/** A running identity provider. */
export interface Idp {
  readonly issuer: string;
  readonly key: CryptoKey;
  close(): Promise<void>;
}

/** Starts an identity provider with one confidential client allowed back to `redirectUris`. */
export async function startIdp(
  client: { readonly id: string; readonly secret: string },
  redirectUris: readonly string[],
): Promise<Idp> {
  const pair = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(pair.privateKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.id,
        client_secret: client.secret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [...redirectUris],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    features: { devInteractions: { enabled: true } },
  });
  server.on('request', provider.callback());
  return {
    issuer,
    key: pair.privateKey,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * Runs `go` (which sends the browser to the issuer), then goes through the issuer's own pages
 * (login as `sub`, consent) until the browser is sent back to `back` with a `state`; a remembered
 * login and grant go straight back. Answers the URL the browser was sent back to.
 */
export async function throughIdp(
  page: Page,
  sub: string,
  back: string,
  go: () => Promise<unknown>,
): Promise<string> {
  let returned: string | undefined;
  const back$ = page
    .waitForRequest(
      (r) => r.isNavigationRequest() && r.url().startsWith(back) && r.url().includes('state='),
      {
        timeout: 60_000,
      },
    )
    .then((r) => {
      returned = r.url();
    });
  await go();
  const submit = page.locator('.login-card button[type="submit"]');
  for (let step = 0; step < 6 && returned === undefined; step += 1) {
    await Promise.race([
      back$,
      submit
        .first()
        .waitFor({ timeout: 30_000 })
        .catch(() => undefined),
    ]);
    if (returned !== undefined) break;
    const login = page.locator('input[name="login"]');
    if ((await login.count()) > 0) {
      await login.fill(sub);
      await page.locator('input[name="password"]').fill('any');
    }
    const nav = page.waitForNavigation();
    await submit.first().click();
    await nav;
  }
  await back$;
  await page.waitForLoadState();
  return returned ?? '';
}
