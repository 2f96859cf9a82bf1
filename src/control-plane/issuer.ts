/**
 * The envelope issuer (SPEC §1, §3, GEI Issuer): the only holder of the signing key. It signs
 * approval envelopes over claims the decision pipeline built, publishes its public keys (current,
 * retired and revoked) as a JWKS, and rotates and revokes keys, ledgering each change before it
 * takes effect (OE-INV-025 "key rotation with kids and revocation").
 */
import { createKeyRing, deny, keyRingFromJwks } from '../kernel/index.js';
import type { Clock, Deny, Ed25519Jwks, EnvelopeClaims, JsonObject } from '../kernel/index.js';
import { generateSigningKey, signEnvelope } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import {
  adminRequestId,
  appendConfirmed,
  GLOBAL_TENANT,
  type Actor,
  type LedgerAppender,
  type LedgerRef,
} from './ledger-port.js';

/** Longest envelope lifetime the issuer accepts, in seconds (SPEC §3: `exp` is short). */
export const MAX_ENVELOPE_TTL_SEC = 3_600;

/** Issuer configuration (the `issuer` member of the Control Plane's dependencies). */
export interface IssuerConfig {
  /** The current signing key. */
  readonly key: SigningKey;
  /** The `iss` claim. */
  readonly iss: string;
  /** The `aud` claim: the Execution Layer's identity. */
  readonly audience: string;
  /** `exp − iat`, whole seconds, 1 … {@link MAX_ENVELOPE_TTL_SEC}. */
  readonly envelopeTtlSec: number;
  /** Earlier public keys to keep publishing, with their revocations (a JWKS as {@link Ed25519Jwks}). */
  readonly retired?: unknown;
}

/** The claims the pipeline supplies; the issuer adds `iss`, `aud`, `iat` and `exp`. */
export type EnvelopeRequestClaims = Omit<EnvelopeClaims, 'iss' | 'aud' | 'iat' | 'exp'>;

/** A signed envelope and what the `envelope.issued` entry records about it. */
export interface IssuedEnvelope {
  readonly envelope: string;
  /** The signed claims, for the `envelope.issued` record. */
  readonly claims: EnvelopeClaims;
  readonly kid: string;
  readonly iat: number;
  readonly exp: number;
}

/** The result of a key change: the ledger entry that recorded it, or a deny. */
export type KeyChangeResult =
  | {
      readonly outcome: 'ok';
      readonly kid: string;
      readonly previous_kid?: string;
      readonly ledger: LedgerRef;
    }
  | Deny;

/** The issuer (GEI Issuer). */
export interface Issuer {
  /** The kid of the key that signs now. */
  currentKid(): string;
  /**
   * Signs an envelope with `iat = floor(nowMs / 1000)` and `exp = iat + ttl`, or `floor(notAfterMs /
   * 1000)` when that is sooner (a scheduled run's slot end, docs/schedules.md: the Execution Layer
   * then refuses the envelope after the slot, FC-INV-6). `TypeError` when that leaves no lifetime.
   * Deterministic for
   * equal inputs (Ed25519 is deterministic). Throws `FailclosedError('ERR_ENVELOPE_CLAIMS')` for
   * claims the verifier would refuse; the pipeline turns that into a deny.
   */
  issue(claims: EnvelopeRequestClaims, nowMs: number, notAfterMs?: number): IssuedEnvelope;
  /** Public keys and revocations: `{keys, revoked}`, sorted by kid. Never a private key. */
  jwks(): Ed25519Jwks;
  /**
   * Generates (or takes) a new key, ledgers `admin.key_rotated` with both kids, then signs with
   * it. The old public key stays published until revoked. Ledger failure → deny
   * `ERR_LEDGER_UNAVAILABLE` and nothing changes.
   */
  rotate(actor: Actor, reason: string, newKey?: SigningKey): Promise<KeyChangeResult>;
  /**
   * Ledgers `admin.key_revoked`, then lists `kid` as revoked in the JWKS, so executors refuse
   * its envelopes (`ERR_ENVELOPE_KID_REVOKED`). The current key cannot be revoked: rotate first
   * (`TypeError`). Ledger failure → deny `ERR_LEDGER_UNAVAILABLE` and nothing changes.
   */
  revoke(kid: string, actor: Actor, reason: string): Promise<KeyChangeResult>;
}

/** Dependencies of {@link createIssuer}. */
export interface IssuerDeps {
  readonly config: IssuerConfig;
  readonly ledger: LedgerAppender;
  readonly now: Clock;
  readonly ledgerTimeoutMs: number;
}

/** Creates the issuer. Throws `TypeError` for a malformed configuration. (GEI Issuer, SPEC §3) */
export function createIssuer(deps: IssuerDeps): Issuer {
  const { config, ledger, now, ledgerTimeoutMs } = deps;
  assertIssuerConfig(config);
  // Configuration: parsed strictly by the kernel (unknown members, bad keys → ERR_KEY_INVALID).
  const ring = config.retired === undefined ? createKeyRing() : keyRingFromJwks(config.retired);
  let current = config.key;
  ring.add(current.publicJwk);
  if (ring.lookup(current.kid).status === 'revoked') throw new TypeError('the current issuer key is revoked');
  // Admin changes are serialized so a rotation and a revocation never interleave.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  async function record(type: 'admin.key_rotated' | 'admin.key_revoked', actor: Actor, payload: JsonObject) {
    const at = now();
    const id = adminRequestId(type, GLOBAL_TENANT, payload, at);
    return appendConfirmed(
      ledger,
      { type, trace_id: id, request_id: id, tenant: GLOBAL_TENANT, actor, payload },
      ledgerTimeoutMs,
    );
  }

  return Object.freeze({
    currentKid: () => current.kid,
    issue(claims: EnvelopeRequestClaims, nowMs: number, notAfterMs?: number): IssuedEnvelope {
      const iat = Math.floor(nowMs / 1000);
      const exp =
        notAfterMs === undefined
          ? iat + config.envelopeTtlSec
          : Math.min(iat + config.envelopeTtlSec, Math.floor(notAfterMs / 1000));
      if (!(exp > iat)) throw new TypeError('the envelope would expire before it is issued');
      const full: EnvelopeClaims = { ...claims, iss: config.iss, aud: config.audience, iat, exp };
      return Object.freeze({
        envelope: signEnvelope(full, current),
        claims: full,
        kid: current.kid,
        iat,
        exp,
      });
    },
    jwks: () => ring.toJwks(),
    rotate(actor: Actor, reason: string, newKey?: SigningKey): Promise<KeyChangeResult> {
      return serial(async () => {
        const next = newKey ?? generateSigningKey();
        // The current key is in the ring, so this also refuses it.
        if (ring.lookup(next.kid).status !== 'unknown') {
          throw new TypeError('the new issuer key must be a key not seen before');
        }
        const payload = {
          kid: next.kid,
          previous_kid: current.kid,
          key_use: 'envelope',
          public_jwk: { ...next.publicJwk },
          reason,
        };
        const ref = await record('admin.key_rotated', actor, payload);
        if ('outcome' in ref) return ref;
        const previous = current.kid;
        ring.add(next.publicJwk);
        current = next;
        return { outcome: 'ok', kid: next.kid, previous_kid: previous, ledger: ref };
      });
    },
    revoke(kid: string, actor: Actor, reason: string): Promise<KeyChangeResult> {
      return serial(async () => {
        if (kid === current.kid) throw new TypeError('rotate before revoking the current issuer key');
        if (ring.lookup(kid).status === 'unknown')
          return deny('ERR_ENVELOPE_KID_UNKNOWN', 'no such issuer key');
        const payload = { kid, key_use: 'envelope', reason, revoked_at: new Date(now()).toISOString() };
        const ref = await record('admin.key_revoked', actor, payload);
        if ('outcome' in ref) return ref;
        ring.revoke(kid);
        return { outcome: 'ok', kid, ledger: ref };
      });
    },
  });
}

function assertIssuerConfig(config: IssuerConfig): void {
  if (typeof config.iss !== 'string' || config.iss.length === 0)
    throw new TypeError('issuer.iss must be a non-empty string');
  if (typeof config.audience !== 'string' || config.audience.length === 0) {
    throw new TypeError('issuer.audience must be a non-empty string');
  }
  const ttl = config.envelopeTtlSec;
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_ENVELOPE_TTL_SEC) {
    throw new TypeError(`issuer.envelopeTtlSec must be an integer in 1..${MAX_ENVELOPE_TTL_SEC}`);
  }
}
