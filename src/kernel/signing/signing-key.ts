/**
 * Ed25519 signing keys: generation, private JWK export and import, and raw signing. Private
 * key material lives only behind this face (SPEC §1, GEI "The signing key never leaves the trust
 * boundary").
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';
import {
  decodeBase64url,
  encodeBase64url,
  FailclosedError,
  publicKeyFromKeyObject,
  type Ed25519PublicJwk,
} from '../index.js';

/** An Ed25519 key pair with cached `KeyObject`s; `kid` is the RFC 7638 thumbprint. */
export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: Ed25519PublicJwk;
}

/** An Ed25519 private JWK (RFC 8037): `d` is the 32-byte seed, `x` the public key. */
export interface Ed25519PrivateJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly d: string;
  readonly kid: string;
}

const PRIVATE_JWK_MEMBERS = new Set(['kty', 'crv', 'x', 'd', 'kid', 'alg', 'use']);
// RFC 8410 PKCS#8 prefix for an Ed25519 private key; the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function keyError(message: string, cause?: unknown): FailclosedError {
  return new FailclosedError('ERR_KEY_INVALID', message, { cause });
}

function fromPrivateKeyObject(privateKey: KeyObject): SigningKey {
  // publicKeyFromKeyObject also refuses small-order and non-canonical points (SPEC §8).
  const publicKey = publicKeyFromKeyObject(createPublicKey(privateKey));
  return Object.freeze({
    kid: publicKey.kid,
    privateKey,
    publicKey: publicKey.keyObject,
    publicJwk: publicKey.jwk,
  });
}

/** Generates a fresh Ed25519 signing key. (SPEC §3) */
export function generateSigningKey(): SigningKey {
  return fromPrivateKeyObject(generateKeyPairSync('ed25519').privateKey);
}

/**
 * Builds a signing key from a 32-byte RFC 8032 seed. For deterministic test keys and vectors;
 * production keys come from {@link generateSigningKey} or {@link importSigningKeyJwk}.
 * Throws `FailclosedError('ERR_KEY_INVALID')` for a wrong length.
 */
export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw keyError('an Ed25519 seed is 32 bytes');
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  return fromPrivateKeyObject(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** Exports a signing key as a private JWK with `kid`. Handle the result as a secret. */
export function exportSigningKeyJwk(key: SigningKey): Ed25519PrivateJwk {
  const jwk = key.privateKey.export({ format: 'jwk' });
  if (typeof jwk.d !== 'string' || typeof jwk.x !== 'string') throw keyError('the key cannot be exported');
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d, kid: key.kid };
}

/**
 * Imports an Ed25519 private JWK. Requires `kty`, `crv`, `x` and `d` as strict base64url of 32
 * bytes, `x` equal to the public key derived from `d`, and `kid` (optional) equal to the RFC 7638
 * thumbprint; `alg` and `use` may be present; anything else, a mismatch or a small-order public
 * key → `FailclosedError('ERR_KEY_INVALID')`. (SPEC §3, §8)
 */
export function importSigningKeyJwk(jwk: unknown): SigningKey {
  // Attacker-controlled in the sense of configuration: check every member.
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw keyError('a JWK is an object');
  const input = jwk as Record<string, unknown>;
  for (const name of Object.keys(input)) {
    if (!PRIVATE_JWK_MEMBERS.has(name)) throw keyError('the JWK holds an unexpected member');
  }
  if (input.kty !== 'OKP' || input.crv !== 'Ed25519') throw keyError('the JWK is not an Ed25519 key');
  if (input.alg !== undefined && input.alg !== 'EdDSA' && input.alg !== 'Ed25519')
    throw keyError('wrong alg');
  if (input.use !== undefined && input.use !== 'sig') throw keyError('the JWK use is not sig');
  const seed = typeof input.d === 'string' ? decodeBase64url(input.d) : undefined;
  const x = typeof input.x === 'string' ? decodeBase64url(input.x) : undefined;
  if (seed === undefined || x === undefined || x.length !== 32)
    throw keyError('d and x must be strict base64url');
  const key = signingKeyFromSeed(seed);
  if (key.publicJwk.x !== encodeBase64url(x)) throw keyError('x does not match d');
  if (input.kid !== undefined && input.kid !== key.kid) throw keyError('the JWK kid is not its thumbprint');
  return key;
}

/** Ed25519 signature (RFC 8032, deterministic) over `data` with the cached private key. */
export function signEd25519(key: SigningKey, data: Uint8Array): Buffer {
  return cryptoSign(null, data, key.privateKey);
}
