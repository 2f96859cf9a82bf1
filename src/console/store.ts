/**
 * What the console keeps (docs/console.md "What the gate stores"): the people invited as approvers
 * with the SHA-256 of their one-time enrolment code and, once enrolled, their device's public key;
 * the sign-in sessions, named by the SHA-256 of their cookie value; and the ids of the sign-in
 * challenges used (a challenge itself is stateless, MAC-ed by the gate).
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

/** The console's state, one implementation per backend (SQLite: `sqlite-store.ts`). */
export interface ConsoleStore {
  /** Inserts or replaces the invitation of `name`; false when `name` is already confirmed. */
  putInvitation(p: InvitedPerson): Promise<boolean>;
  person(name: string): Promise<InvitedPerson | undefined>;
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
  close(): Promise<void>;
}
