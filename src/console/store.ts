/**
 * What the console keeps (docs/console.md "What the gate stores"): the people invited as approvers
 * with the SHA-256 of their one-time enrolment code and, once enrolled, their device's public key;
 * the sign-in sessions of approvers and operators, named by the SHA-256 of their cookie value; the
 * counters of failed sign-ins; and the ids of the sign-in challenges used (a challenge itself is
 * stateless, MAC-ed by the gate). Every gate on the same storage shares them: a session opened
 * through one replica is one of every replica, and the sign-in limits count across replicas.
 * Never a private key, never a code or a session id in clear. Every state change is one atomic
 * statement ("one row changed" is the only success); failures reject and the callers refuse
 * (OE-INV-020, L7 Identity & Signing).
 */
import type { JsonObject } from '../kernel/index.js';
import type { ApproverTenants } from '../control-plane/index.js';

/** A person invited to approve through the console. */
export interface InvitedPerson {
  readonly name: string;
  readonly roles: readonly string[];
  readonly tenants: ApproverTenants;
  /** SHA-256 (hex) of the one-time code; null once it was used for a sign-in. */
  readonly code_sha256: string | null;
  readonly invited_at: number;
  readonly code_expires_at: number;
  /** The device's public JWK (`{kty, crv, x}`) once enrolled, else null. */
  readonly public_jwk: JsonObject | null;
  readonly kid: string | null;
  readonly enrolled_at: number | null;
  readonly confirmed_at: number | null;
  /** The OIDC identity (issuer and subject) the invitation is bound to, else both null. */
  readonly oidc_issuer: string | null;
  readonly oidc_subject: string | null;
}

/**
 * How a session signed in: `code` the enrolment code (may enrol only), `key` the device key;
 * `+oidc` once the person's bound OIDC identity was proven in the same session.
 */
export type SessionMethod = 'code' | 'key' | 'code+oidc' | 'key+oidc';

/** A sign-in session (server side; the browser holds only the opaque id). */
export interface ConsoleSession {
  readonly id_sha256: string;
  readonly name: string;
  readonly method: SessionMethod;
  readonly created_at: number;
  readonly last_seen: number;
}

/** An operator's console session (server side; the browser holds only the opaque id). */
export interface OperatorSession {
  readonly id_sha256: string;
  readonly name: string;
  readonly method: 'token' | 'oidc';
  /** What the sign-in proved (`src/console/operator-api.ts` `credentialOf`); the registry must still show it. */
  readonly credential: string;
  readonly created_at: number;
  readonly last_seen: number;
}

/** What {@link ConsoleStore.admitSignIn} decided. */
export type SignInAdmission =
  | { readonly admitted: true }
  /** Over the limit: nothing counted; `tell` is true once per window and counter over the limit. */
  | { readonly admitted: false; readonly tell: boolean };

/** The console's state, one implementation per backend (SQLite: `sqlite-store.ts`). */
export interface ConsoleStore {
  /** Inserts or replaces the invitation of `name`; false when `name` is already confirmed. */
  putInvitation(p: InvitedPerson): Promise<boolean>;
  person(name: string): Promise<InvitedPerson | undefined>;
  /** The person bound to `issuer` and `subject` (the first by name), undefined when none is. */
  personBoundTo(issuer: string, subject: string): Promise<InvitedPerson | undefined>;
  /** Clears the code when it is `codeSha256` and unexpired at `atMs`; true exactly once. */
  useCode(name: string, codeSha256: string, atMs: number): Promise<boolean>;
  /** Records the device key when none is recorded yet; true exactly once. */
  enrol(name: string, jwk: JsonObject, kid: string, atMs: number): Promise<boolean>;
  /** Marks the enrolment of `kid` confirmed; true exactly once. */
  confirm(name: string, kid: string, atMs: number): Promise<boolean>;
  /** Records a session, dropping those unused since `staleBefore` (idle: ended anyway). */
  createSession(s: ConsoleSession, staleBefore: number): Promise<void>;
  session(idSha256: string): Promise<ConsoleSession | undefined>;
  touchSession(idSha256: string, atMs: number): Promise<void>;
  deleteSession(idSha256: string): Promise<void>;
  /** Replaces session `oldSha256` by `s` (an OIDC step-up: a new id, the same sign-in time), atomically. */
  replaceSession(oldSha256: string, s: ConsoleSession): Promise<boolean>;
  /** Deletes every session of `name` (a new invitation, a confirmation: sign in again). */
  deleteSessionsOf(name: string): Promise<void>;
  /**
   * Records the sign-in challenge `id` as used (dropping used ids expired at `atMs`); true exactly
   * once per id (single use).
   */
  useChallenge(id: string, expiresAt: number, atMs: number): Promise<boolean>;
  /**
   * Records an operator session unless `max` live ones exist, first dropping those last seen
   * before `idleBefore` or created before `createdBefore`; false: too many.
   */
  createOperatorSession(
    s: OperatorSession,
    prune: { readonly idleBefore: number; readonly createdBefore: number },
    max: number,
  ): Promise<boolean>;
  operatorSession(idSha256: string): Promise<OperatorSession | undefined>;
  touchOperatorSession(idSha256: string, atMs: number): Promise<void>;
  deleteOperatorSession(idSha256: string): Promise<void>;
  /**
   * One sign-in attempt against the failure counters of `keys` (a name, a client address), in
   * fixed windows of `windowMs` that start at a counter's first failure: atomically, when every
   * live counter is below `limit`, counts one failure on each (taken back by
   * {@link forgiveSignIn} when the attempt succeeds) and admits; otherwise counts nothing.
   * Attempts sent at once through different gates cannot all pass the check.
   */
  admitSignIn(
    keys: readonly string[],
    atMs: number,
    limit: number,
    windowMs: number,
  ): Promise<SignInAdmission>;
  /** Takes back one counted failure of each live counter of `keys` (the attempt succeeded). */
  forgiveSignIn(keys: readonly string[], atMs: number, windowMs: number): Promise<void>;
  close(): Promise<void>;
}
