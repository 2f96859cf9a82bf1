/**
 * The trust file (docs/ledger.md "Trust roots"): the deployment's public trust roots as one JSON
 * document, published by `failclosed trust-roots` and `GET /v1/trust-roots` and pinned by the
 * auditor out of band before looking at any bundle (SPEC §5 "Trust roots out of band"). It is
 * deliberately unsigned: its authority is the channel the auditor obtained it from (the operator,
 * TLS, a configuration repository), never the bundle. Parsed strictly: an unusable trust file is
 * unusable input (exit 2), never a silent fallback to the bundle's own keys.
 */
import {
  FailclosedError,
  keyRingFromJwks,
  noteVerifierFromVkey,
  parseJson,
  parsePublicJwk,
  type JsonObject,
  type JsonValue,
  type PublicKey,
} from '../kernel/index.js';

/** The trust file's format tag. */
export const TRUST_ROOTS_FORMAT = 'failclosed.trust-roots/v1';

/** Largest trust file accepted, in bytes. */
export const TRUST_ROOTS_MAX_BYTES = 4 * 1024 * 1024;

/** A parsed, checked trust file. */
export interface TrustRoots {
  /** The ledger origin (the checkpoint's first line). */
  readonly origin: string;
  /** The ledger verifier key in C2SP vkey form; checkpoints verify under it alone. */
  readonly ledgerVkey: string;
  /** Issuer keys by kid, current, retired and revoked alike. */
  readonly issuerKeys: ReadonlyMap<string, PublicKey>;
  /** Revoked issuer kids: revoked here stays revoked whatever a bundle says. */
  readonly issuerRevoked: ReadonlySet<string>;
  /**
   * Approver keys by kid, revoked ones included: an approval given before a revocation still
   * verifies (the approval service refuses new ones at run time).
   */
  readonly approverKeys: ReadonlyMap<string, PublicKey>;
  /** Revoked approver kids (informative). */
  readonly approverRevoked: ReadonlySet<string>;
}

const MEMBERS = new Set(['format', 'origin', 'ledger', 'issuer', 'approvers']);

const isObj = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A JWKS with its revocation list, parsed strictly by the kernel (throws when unusable). */
function jwksOf(jwks: JsonValue | undefined): { keys: Map<string, PublicKey>; revoked: Set<string> } {
  const doc = keyRingFromJwks(jwks).toJwks();
  return { keys: new Map(doc.keys.map((k) => [k.kid, parsePublicJwk(k)])), revoked: new Set(doc.revoked) };
}

/**
 * Parses a trust file (text, bytes or parsed JSON) into {@link TrustRoots}, or returns why it is
 * unusable. Every key must parse; the vkey must be a valid Ed25519 note verifier named after the
 * origin, and `ledger.jwk`, when present, must be the same key.
 */
export function parseTrustRoots(input: unknown): TrustRoots | string {
  let value: JsonValue;
  try {
    // Attacker-controlled in the worst case (a tampered copy): strict JSON, bounded.
    value =
      typeof input === 'string' || input instanceof Uint8Array
        ? parseJson(input, { maxBytes: TRUST_ROOTS_MAX_BYTES, maxDepth: 16 })
        : (input as JsonValue);
  } catch (err) {
    return `not strict JSON (${err instanceof FailclosedError ? err.code : 'unreadable'})`;
  }
  if (!isObj(value)) return 'not a JSON object';
  if (value['format'] !== TRUST_ROOTS_FORMAT) return `format is not ${TRUST_ROOTS_FORMAT}`;
  const unknown = Object.keys(value).filter((k) => !MEMBERS.has(k));
  if (unknown.length > 0) return `unknown member(s): ${unknown.join(', ')}`;
  const { origin, ledger } = value;
  if (typeof origin !== 'string' || origin.length === 0) return 'origin is not a string';
  if (!isObj(ledger) || typeof ledger['vkey'] !== 'string') return 'ledger.vkey is missing';
  const vkey = ledger['vkey'];
  try {
    const verifier = noteVerifierFromVkey(vkey);
    if (verifier.name !== origin) return 'ledger.vkey is not named after the origin';
    if (ledger['jwk'] !== undefined) {
      const raw = Buffer.from(vkey.split('+').slice(2).join('+'), 'base64').subarray(1);
      if (!parsePublicJwk(ledger['jwk']).raw.equals(raw)) return 'ledger.jwk is not the key of ledger.vkey';
    }
  } catch {
    return 'ledger.vkey or ledger.jwk is not a valid Ed25519 key';
  }
  try {
    const issuer = jwksOf(value['issuer']);
    const approvers = jwksOf(value['approvers']);
    if (issuer.keys.size === 0) return 'issuer holds no key';
    return Object.freeze({
      origin,
      ledgerVkey: vkey,
      issuerKeys: issuer.keys,
      issuerRevoked: issuer.revoked,
      approverKeys: approvers.keys,
      approverRevoked: approvers.revoked,
    });
  } catch {
    return 'issuer or approvers is not a valid Ed25519 JWKS';
  }
}
