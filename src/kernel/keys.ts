/**
 * Ed25519 public keys: JWK parsing, RFC 7638 thumbprint `kid`, small-order and non-canonical
 * rejection, the pinned {@link KeyRing} with revocation, and signature verification.
 *
 * Node's `crypto.verify` accepts low-order and non-canonically encoded public keys (SPEC §8), so
 * every key is decoded and checked here before it can verify anything. No private key code lives
 * in this file: signing is behind `./signing/index.js` (SPEC §1, GEI).
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { decodeBase64url, encodeBase64url } from './base64url.js';
import { FailclosedError } from './errors.js';
import { sha256 } from './hash.js';
import { parseJson } from './json.js';
import { isCanonicalLargeOrderPoint, isSmallOrderEncoding } from './ed25519-point.js';

/** An Ed25519 public key as a JWK (RFC 8037). `kid`, when present, is the RFC 7638 thumbprint. */
export interface Ed25519PublicJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid?: string;
}

/** A checked Ed25519 public key: canonical, on the curve, not of small order. */
export interface PublicKey {
  /** RFC 7638 JWK thumbprint (base64url SHA-256), the `kid` everywhere in failclosed. */
  readonly kid: string;
  /** The public JWK, with `kid`. */
  readonly jwk: Ed25519PublicJwk & { readonly kid: string };
  /** The 32-byte encoded point. */
  readonly raw: Buffer;
  /** The cached `KeyObject` used for verification. */
  readonly keyObject: KeyObject;
}

/** Result of {@link KeyRing.lookup}. */
export type KeyLookup =
  | { readonly status: 'active'; readonly key: KeyObject; readonly publicKey: PublicKey }
  | { readonly status: 'revoked' }
  | { readonly status: 'unknown' };

/**
 * A JWKS as exported by {@link KeyRing.toJwks}: `keys` holds every known public key (revoked ones
 * too, so old evidence stays verifiable offline) and `revoked` lists the kids that must no longer
 * verify anything. A revoked kid stays revoked even when the key itself is not listed.
 */
export interface Ed25519Jwks {
  readonly keys: readonly (Ed25519PublicJwk & { readonly kid: string })[];
  readonly revoked: readonly string[];
}

/** The pinned issuer (or client) keys. Revocation is permanent for the life of the ring. */
export interface KeyRing {
  /** Adds a key (a JWK, parsed by {@link parsePublicJwk}, or a {@link PublicKey}); returns it. */
  add(key: unknown): PublicKey;
  /** Revokes `kid`, whether or not the key is in the ring. */
  revoke(kid: string): void;
  /** Looks `kid` up; revocation wins over presence. */
  lookup(kid: unknown): KeyLookup;
  /** The ring as a JWKS with its revocation list, sorted by kid. */
  toJwks(): Ed25519Jwks;
}

const KEY_LENGTH = 32;
const SIGNATURE_LENGTH = 64;
const KID_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const JWK_MEMBERS = new Set(['kty', 'crv', 'x', 'kid', 'alg', 'use']);
const JWKS_MEMBERS = new Set(['keys', 'revoked']);

const issuedPublicKeys = new WeakSet<PublicKey>();
// Every KeyObject that passed the point checks, and those that failed, so verification pays once.
const checkedKeyObjects = new WeakMap<KeyObject, boolean>();

function invalid(message: string): FailclosedError {
  return new FailclosedError('ERR_KEY_INVALID', message);
}

/** RFC 7638 thumbprint of an Ed25519 JWK: base64url SHA-256 of `{"crv","kty","x"}` in that order. */
export function jwkThumbprint(jwk: Pick<Ed25519PublicJwk, 'x'>): string {
  return encodeBase64url(sha256(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x: jwk.x })));
}

/**
 * Checks a raw 32-byte public key and wraps it. Throws `FailclosedError('ERR_KEY_INVALID')` for a
 * wrong length, a non-canonical encoding (y ≥ p, or x = 0 with the sign bit set), a point not on
 * the curve, or a point of small order (SPEC §8, §7 scenario 10).
 */
export function publicKeyFromRaw(raw: Uint8Array): PublicKey {
  if (raw.length !== KEY_LENGTH) throw invalid('an Ed25519 public key is 32 bytes');
  const bytes = Buffer.from(raw);
  if (!isCanonicalLargeOrderPoint(bytes))
    throw invalid('the public key is not a canonical curve point of large order');
  const x = encodeBase64url(bytes);
  const kid = jwkThumbprint({ x });
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch (err) {
    throw new FailclosedError('ERR_KEY_INVALID', 'the public key was refused', { cause: err });
  }
  checkedKeyObjects.set(keyObject, true);
  const key: PublicKey = Object.freeze({
    kid,
    jwk: Object.freeze({ kty: 'OKP', crv: 'Ed25519', x, kid }),
    raw: bytes,
    keyObject,
  });
  issuedPublicKeys.add(key);
  return key;
}

/** Wraps an Ed25519 public `KeyObject` after the same checks as {@link publicKeyFromRaw}. */
export function publicKeyFromKeyObject(keyObject: KeyObject): PublicKey {
  if (keyObject.type !== 'public' || keyObject.asymmetricKeyType !== 'ed25519') {
    throw invalid('not an Ed25519 public key');
  }
  const { x } = keyObject.export({ format: 'jwk' });
  const raw = typeof x === 'string' ? decodeBase64url(x) : undefined;
  if (raw === undefined) throw invalid('the public key could not be exported');
  return publicKeyFromRaw(raw);
}

/**
 * Parses an untrusted Ed25519 public JWK (RFC 8037). Accepts only `kty`, `crv`, `x` and the
 * optional `kid` (must equal the thumbprint), `alg` (`EdDSA`/`Ed25519`) and `use` (`sig`); a `d`
 * or any other member is refused. Throws `FailclosedError('ERR_KEY_INVALID')` for malformed,
 * non-canonical or small-order keys (SPEC §8, FC-INV-3).
 */
export function parsePublicJwk(input: unknown): PublicKey {
  if (issuedPublicKeys.has(input as PublicKey)) return input as PublicKey;
  // Attacker-controlled: a JWK from configuration or a JWKS document.
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid('a JWK is an object');
  const jwk = input as Record<string, unknown>;
  for (const name of Object.keys(jwk)) {
    if (!JWK_MEMBERS.has(name)) throw invalid('the JWK holds an unexpected member');
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') throw invalid('the JWK is not an Ed25519 key');
  if (jwk.alg !== undefined && jwk.alg !== 'EdDSA' && jwk.alg !== 'Ed25519')
    throw invalid('the JWK alg is wrong');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid('the JWK use is not sig');
  const raw = typeof jwk.x === 'string' ? decodeBase64url(jwk.x) : undefined;
  if (raw === undefined) throw invalid('the JWK x is not strict base64url');
  const key = publicKeyFromRaw(raw);
  if (jwk.kid !== undefined && jwk.kid !== key.kid)
    throw invalid('the JWK kid is not its RFC 7638 thumbprint');
  return key;
}

function keyObjectIsChecked(keyObject: KeyObject): boolean {
  const known = checkedKeyObjects.get(keyObject);
  if (known !== undefined) return known;
  let ok = false;
  try {
    ok = publicKeyFromKeyObject(keyObject).raw.length === KEY_LENGTH;
  } catch {
    ok = false;
  }
  checkedKeyObjects.set(keyObject, ok);
  return ok;
}

/** The checks before the curve: a 64-byte signature whose R is not small-order, a checked key. */
function checkable(publicKey: KeyObject, signature: Uint8Array): boolean {
  return (
    signature.length === SIGNATURE_LENGTH &&
    keyObjectIsChecked(publicKey) &&
    !isSmallOrderEncoding(signature.subarray(0, KEY_LENGTH))
  );
}

/**
 * Verifies an Ed25519 signature (RFC 8032) on `data`, for envelopes, signed requests, approvals
 * and notes. Returns false, never throws, when the key is not a checked Ed25519 public key
 * (small-order or non-canonical keys never verify), the signature is not 64 bytes, its R is a
 * small-order point, S ≥ L, or the signature does not verify (SPEC §3, §8).
 */
export function verifyEd25519(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    // OpenSSL rejects S ≥ L and non-canonical R itself (Wycheproof, CCTV vectors).
    return checkable(publicKey, signature) && cryptoVerify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * How long {@link verifyEd25519Async} waits for libuv's thread pool before it verifies on the
 * event loop instead (ms). The pool's four threads are shared with `fsync`, `dns.lookup` and the
 * file system: a stuck disk or resolver fills it, and a signature check must not wait on that.
 */
export const VERIFY_POOL_WAIT_MS = 25;

/** libuv's thread pool size (`UV_THREADPOOL_SIZE`, read once at its first use; default 4). */
const POOL_THREADS = ((): number => {
  const n = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  return Number.isSafeInteger(n) && n >= 1 && n <= 1024 ? n : 4;
})();

/**
 * Verifications {@link verifyEd25519Async} leaves queued on the pool at most: sixteen per thread
 * (64 by default), about as many as a Gate's calls in flight may ask for at once, so a loaded
 * gate keeps them off its event loop (measured here at 32 clients: with a bound of 8, a third of
 * them were verified in place). Past it a signature is verified on the event loop at once: with
 * the pool stuck, the jobs queued meanwhile, each holding its call's data, stay bounded, and so
 * does the work they put ahead of the log `fsync`s queued behind them when it frees.
 */
export const VERIFY_POOL_MAX_QUEUED = 16 * POOL_THREADS;

/** How {@link verifyEd25519Async} answered, since the process started. */
export interface VerifyCounts {
  /** Queued on the pool, which answered first. */
  readonly pool: number;
  /** Queued on the pool, which had not answered within {@link VERIFY_POOL_WAIT_MS}: verified on the event loop. */
  readonly waited: number;
  /** Not queued: {@link VERIFY_POOL_MAX_QUEUED} were queued already; verified on the event loop. */
  readonly overflow: number;
}

let queued = 0;
const counts = { pool: 0, waited: 0, overflow: 0 };

/** How {@link verifyEd25519Async} has answered so far (a snapshot). */
export function verifyCounts(): VerifyCounts {
  return { ...counts };
}

/**
 * {@link verifyEd25519} with the same checks, the curve arithmetic on libuv's thread pool (Node's
 * `crypto.verify` with a callback): the hot path's two verifications (the request's signature at
 * the Gate, the envelope's at the executor) leave the event loop, which serves every call. A pool
 * that has not answered within {@link VERIFY_POOL_WAIT_MS} is not waited for: the signature is
 * verified on the event loop, with the same answer; so is one that finds
 * {@link VERIFY_POOL_MAX_QUEUED} verifications queued already. Resolves false, never rejects, on
 * every failure.
 */
export function verifyEd25519Async(
  publicKey: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let inPlace: NodeJS.Timeout | undefined;
    /** The first answer wins: the pool's, or the event loop's after the wait. */
    const answer = (ok: boolean): void => {
      if (inPlace === undefined) return;
      clearTimeout(inPlace);
      inPlace = undefined;
      resolve(ok);
    };
    try {
      if (!checkable(publicKey, signature)) return resolve(false);
      if (queued >= VERIFY_POOL_MAX_QUEUED) {
        counts.overflow += 1;
        return resolve(verifyEd25519(publicKey, data, signature));
      }
      // Timers run before the pool's answers are delivered in a turn of the loop: after a turn
      // that held the loop past the wait, every verification in flight would be done again in
      // place. The check phase comes after their delivery, so the pool's answers win first.
      inPlace = setTimeout(
        () =>
          setImmediate(() => {
            if (inPlace === undefined) return;
            counts.waited += 1;
            answer(verifyEd25519(publicKey, data, signature));
          }),
        VERIFY_POOL_WAIT_MS,
      );
      cryptoVerify(null, data, publicKey, signature, (err, ok) => {
        queued -= 1;
        if (inPlace !== undefined) counts.pool += 1;
        answer(err === null && ok === true);
      });
      queued += 1;
    } catch {
      answer(false);
      resolve(false);
    }
  });
}

/** Creates an empty {@link KeyRing}. */
export function createKeyRing(): KeyRing {
  const keys = new Map<string, PublicKey>();
  const revoked = new Set<string>();
  // The published JWKS, rebuilt only when the ring changes: a new object means a new key set.
  let published: Ed25519Jwks | undefined;
  return Object.freeze({
    add(input: unknown): PublicKey {
      const key = parsePublicJwk(input);
      keys.set(key.kid, key);
      published = undefined;
      return key;
    },
    revoke(kid: string): void {
      if (typeof kid !== 'string' || !KID_PATTERN.test(kid))
        throw new TypeError('kid must be a JWK thumbprint');
      revoked.add(kid);
      published = undefined;
    },
    lookup(kid: unknown): KeyLookup {
      if (typeof kid !== 'string') return { status: 'unknown' };
      if (revoked.has(kid)) return { status: 'revoked' };
      const key = keys.get(kid);
      return key === undefined
        ? { status: 'unknown' }
        : { status: 'active', key: key.keyObject, publicKey: key };
    },
    toJwks(): Ed25519Jwks {
      if (published === undefined) {
        const sorted = [...keys.keys()].sort();
        published = Object.freeze({
          keys: Object.freeze(sorted.map((kid) => (keys.get(kid) as PublicKey).jwk)),
          revoked: Object.freeze([...revoked].sort()),
        });
      }
      return published;
    },
  });
}

/**
 * Builds a {@link KeyRing} from a JWKS (text, bytes, or an already parsed value) in the format of
 * {@link Ed25519Jwks}: `{"keys":[...],"revoked":[kid,...]}`, `revoked` optional. Unknown members,
 * duplicate kids, malformed revocation entries or any bad key → `FailclosedError('ERR_KEY_INVALID')`
 * (strict JSON errors keep their `ERR_JSON_*` code). (SPEC §3: pinned, unrevoked issuer keys.)
 */
export function keyRingFromJwks(json: unknown): KeyRing {
  // Attacker-controlled when read from disk or a peer: parse strictly, then check every member.
  const value: unknown = typeof json === 'string' || json instanceof Uint8Array ? parseJson(json) : json;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('a JWKS is an object');
  const jwks = value as Record<string, unknown>;
  for (const name of Object.keys(jwks)) {
    if (!JWKS_MEMBERS.has(name)) throw invalid('the JWKS holds an unexpected member');
  }
  if (!Array.isArray(jwks.keys)) throw invalid('the JWKS has no keys array');
  const revokedList: unknown = jwks.revoked ?? [];
  if (!Array.isArray(revokedList)) throw invalid('the JWKS revoked member is not an array');
  const ring = createKeyRing();
  const seen = new Set<string>();
  for (const item of jwks.keys as unknown[]) {
    const key = parsePublicJwk(item);
    if (seen.has(key.kid)) throw invalid('the JWKS lists a key twice');
    seen.add(key.kid);
    ring.add(key);
  }
  for (const kid of revokedList as unknown[]) {
    if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) throw invalid('a revoked kid is malformed');
    ring.revoke(kid);
  }
  return ring;
}
