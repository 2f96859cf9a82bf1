/**
 * Client keys (FC-INV-3, docs/client.md): an Ed25519 key pair for an agent client, in the forms
 * the client and the Gate use. The private JWK is a secret: store it 0600 and never send it
 * anywhere; only the public JWK is registered with the Gate (`clients-add`).
 */
import type { Ed25519PublicJwk } from '../kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey, importSigningKeyJwk } from '../kernel/signing/index.js';
import type { Ed25519PrivateJwk, SigningKey } from '../kernel/signing/index.js';

/** One client key pair. */
export interface ClientKey {
  /** The signing key, as {@link createClient} takes it. */
  readonly key: SigningKey;
  /** The private JWK (RFC 8037, with `kid`): a secret, for storage only. */
  readonly privateJwk: Ed25519PrivateJwk;
  /** The public JWK (with `kid`) to register with the Gate. */
  readonly publicJwk: Ed25519PublicJwk & { readonly kid: string };
  /** The key id: the RFC 7638 JWK thumbprint of the public key. */
  readonly kid: string;
}

function describe(key: SigningKey): ClientKey {
  return Object.freeze({
    key,
    privateJwk: Object.freeze(exportSigningKeyJwk(key)),
    publicJwk: Object.freeze({ ...key.publicJwk, kid: key.kid }),
    kid: key.kid,
  });
}

/** Generates a fresh Ed25519 client key pair. */
export function generateClientKey(): ClientKey {
  return describe(generateSigningKey());
}

/**
 * Loads a client key pair from its stored private JWK. Throws `FailclosedError('ERR_KEY_INVALID')`
 * for anything but a well-formed Ed25519 private JWK whose `x` (and `kid`, if present) match `d`.
 */
export function loadClientKey(privateJwk: unknown): ClientKey {
  return describe(importSigningKeyJwk(privateJwk));
}
