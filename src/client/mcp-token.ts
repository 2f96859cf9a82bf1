/**
 * The bearer token a registered client presents to the Gate's MCP endpoint instead of an OAuth
 * access token (docs/mcp.md "stdio"): a compact JWS (RFC 7515) over `{iss, sub, aud, iat, exp,
 * jti}` (and `body_sha256` when bound to one message), `typ: failclosed-client+jwt`, signed
 * EdDSA with the client's own key. Short-lived; the Gate checks it against the client registry
 * (FC-INV-3).
 */
import { createHash, randomUUID, sign } from 'node:crypto';
import { encodeBase64url } from '../kernel/index.js';
import type { SigningKey } from '../kernel/signing/index.js';

/** The JWT `typ` the Gate routes client-key tokens by. */
export const CLIENT_TOKEN_TYPE = 'failclosed-client+jwt';

/**
 * Signs a client-key token for `identity` and the resource `audience`, valid `ttlSec` from
 * `nowMs`. With `body`, the token is bound to that message: its `body_sha256` claim is the
 * SHA-256 of those exact bytes, which the Gate and a Control Plane behind a keyless Gate check
 * (docs/mcp.md "Through keyless Gates").
 */
export function signClientToken(
  key: SigningKey,
  identity: string,
  audience: string,
  nowMs: number,
  ttlSec = 60,
  body?: Uint8Array,
): string {
  const iat = Math.floor(nowMs / 1000);
  const part = (v: object): string => encodeBase64url(Buffer.from(JSON.stringify(v), 'utf8'));
  const input = `${part({ alg: 'EdDSA', typ: CLIENT_TOKEN_TYPE, kid: key.kid })}.${part({
    iss: identity,
    sub: identity,
    aud: audience,
    iat,
    exp: iat + ttlSec,
    jti: randomUUID(),
    ...(body === undefined ? {} : { body_sha256: createHash('sha256').update(body).digest('hex') }),
  })}`;
  return `${input}.${encodeBase64url(sign(null, Buffer.from(input, 'ascii'), key.privateKey))}`;
}
