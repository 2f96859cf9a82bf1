/**
 * Values a configuration is checked against (`src/embedded/mcp-config.ts`), apart from the
 * modules that use them, so that reading `failclosed.json` loads neither the Gate nor a JOSE
 * library.
 */

/** Longest wait a client may ask for (ms); the Control Plane caps it further. */
export const MAX_CALL_WAIT_MS = 120_000;

/** Asymmetric JWS algorithms an OAuth issuer may be pinned to (never `none`, never HMAC). */
export const OAUTH_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
]);
