/**
 * The Gate's state as one interface, whatever holds it (SQLite file, shared PostgreSQL): the
 * client registry and the request replay store (FC-INV-3), plus their administration. Every
 * method is async, so a networked store fits the same port; a rejection on the enforcement path
 * makes the Gate deny (client lookup and replay claims run under the Gate's deadline).
 */
import type { DurableWrites, Ed25519Jwks } from '../kernel/index.js';
import type { ClientRegistry, RegisteredClient, RequestReplayStore } from './types.js';

/** A client row as listed by {@link GateStateStore.listClients}. */
export interface ClientRecord {
  readonly identity: string;
  readonly tenant: string;
  readonly kid: string;
  readonly status: 'active' | 'revoked';
  readonly registered_at: number;
  /** Roles given at registration; Cedar sees them as `principal.roles`. */
  readonly roles: readonly string[];
}

/** A role name: the same alphabet as `@approver_role`. */
export const CLIENT_ROLE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Most roles one client may hold. */
export const MAX_CLIENT_ROLES = 16;

/**
 * Checks and normalises a client's roles: sorted, without duplicates. Throws `TypeError` for a
 * malformed name or more than {@link MAX_CLIENT_ROLES}.
 */
export function parseClientRoles(roles: unknown): readonly string[] {
  if (!Array.isArray(roles) || roles.length > MAX_CLIENT_ROLES)
    throw new TypeError(`roles must be a list of at most ${MAX_CLIENT_ROLES} names`);
  for (const r of roles as unknown[])
    if (typeof r !== 'string' || !CLIENT_ROLE_RE.test(r)) throw new TypeError('a role name is malformed');
  return Object.freeze([...new Set(roles as string[])].sort());
}

/** What {@link GateStateStore.registerClient} takes. */
export interface ClientRegistration {
  readonly identity: string;
  readonly tenant: string;
  /** The client's public JWK; checked (canonical Ed25519, not small-order) before it is stored. */
  readonly jwk: unknown;
  readonly atMs: number;
  /** Checked by {@link parseClientRoles}; default none. */
  readonly roles?: readonly string[];
}

/**
 * The Gate's state: a {@link ClientRegistry} and a {@link RequestReplayStore} plus administration
 * (FC-INV-3). Several instances may share one storage (processes on one file, Gate replicas on
 * one database): a registration or revocation through one is seen by the next lookup of every
 * other, and a nonce or request id is fresh for exactly one claim across all of them.
 */
export interface GateStateStore extends ClientRegistry, RequestReplayStore {
  /** Reads the client's row on every call (a revocation takes effect on the next request). Rejects when a stored row is malformed. */
  lookup(identity: string): Promise<RegisteredClient | undefined>;
  /**
   * Records `nonce` and `requestId` for `identity` atomically: `'fresh'` only when neither was seen
   * before, and a replayed half never consumes the other (both recorded or neither). Resolves only
   * once durable; rejects when the store cannot confirm (the Gate denies `ERR_NONCE_STORE_UNAVAILABLE`).
   * With `writes`, a store whose writes share commits may answer once the claim is decided in
   * the open transaction, registering its commit there (`durability.ts`).
   */
  claim(
    input: {
      identity: string;
      nonce: string;
      requestId: string;
      atMs: number;
    },
    writes?: DurableWrites,
  ): Promise<'fresh' | 'replayed'>;
  /** Records the nonce alone (a retry reuses its request id), like {@link GateStateStore.claim}. */
  claimNonce(input: { identity: string; nonce: string; atMs: number }): Promise<'fresh' | 'replayed'>;
  /** Registers a client; rejects with `TypeError` for a malformed key or roles, or when the identity exists. */
  registerClient(input: ClientRegistration): Promise<ClientRecord>;
  /** Marks a client revoked; false when unknown. */
  revokeClient(identity: string): Promise<boolean>;
  /**
   * Replaces an active client's key `previousKid` (rotation): the next lookup answers the new key
   * only, so the old one stops at once. Resolves to the updated record, or undefined when the
   * client is unknown, revoked (a revoked client stays revoked) or no longer holds `previousKid`
   * (another rotation came first: one rotation of a key wins). Rejects (`ERR_KEY_INVALID`) for a
   * malformed key, and leaves the key as it was.
   */
  rotateClientKey(identity: string, jwk: unknown, previousKid: string): Promise<ClientRecord | undefined>;
  /** Every client, by identity in byte order. */
  listClients(): Promise<readonly ClientRecord[]>;
  /** Every client public key as a JWKS with the revoked kids, for audit bundles (FC-INV-3 evidence). */
  clientJwks(): Promise<Ed25519Jwks>;
  /**
   * Prunes replay rows by count and age; resolves to how many were deleted. Runs by itself every
   * 1000 claims. A row goes only when it is older than the retention measured against the LATEST
   * time recorded (never the clock now, so a clock set back deletes nothing) AND it is not among
   * the newest rows its client recorded (so a clock jumped forward cannot empty the memory).
   * Deletes in bounded batches through indexes until none is left (the automatic prune runs in
   * the background within a time budget, never inside a claim's transaction); rejects when the
   * store closes meanwhile or the storage fails, which only keeps rows longer.
   */
  pruneReplay(): Promise<number>;
  /** Releases the store; claims and lookups after it reject (fail closed). */
  close(): Promise<void>;
}

/** The JWKS of `rows` as {@link GateStateStore.clientJwks} answers it: keys by kid, revoked kids once each. */
export function clientJwksOf(
  rows: readonly {
    readonly jwk: Ed25519Jwks['keys'][number];
    readonly kid: string;
    readonly status: 'active' | 'revoked';
  }[],
): Ed25519Jwks {
  const keys = rows.map((r) => r.jwk).sort((a, b) => (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0));
  const revoked = rows
    .filter((r) => r.status === 'revoked')
    .map((r) => r.kid)
    .sort();
  return Object.freeze({ keys: Object.freeze(keys), revoked: Object.freeze([...new Set(revoked)]) });
}
