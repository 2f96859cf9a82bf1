/**
 * The storage seam (SPEC §1 deployment shapes, §4 "Backends: SQLite and PostgreSQL"): a backend
 * is opened once and hands every role the async stores it needs. One folder per backend
 * (`sqlite/`, `postgres/`), kysely style; every store interface has one contract suite run
 * against each backend.
 *
 * Stores are strongly consistent where the seeds ask for it (single use of nonces, OE-INV-017,
 * FC-INV-3/4) and every failure rejects: the roles map a rejection to their `*_UNAVAILABLE`
 * denial. No store answers "allow" for a database it cannot read.
 */
import type {
  ApprovalStore,
  BreakerStore,
  DecisionClaimStore,
  GovernanceState,
} from '../control-plane/index.js';
import type { ConsoleStore } from '../console/index.js';
import type { NonceStore } from '../execution/index.js';
import type { GateStateStore, OperatorStore } from '../gate/index.js';
import type { LedgerStore, OpenRequest } from '../ledger/index.js';
import type { ScheduleStore } from '../schedules/index.js';
import type { AcquireOptions, WriterLease } from './writer-lock.js';

/** A named readiness check as the Gate runs it: a real write and read back of one store. */
export interface ReadinessProbe {
  readonly name: string;
  check(): boolean | Promise<boolean>;
}

/**
 * Policy bundles and the active pointer held by the backend (SPEC §6 "Policy as hash-addressed
 * bundles"), for backends shared by several gates: the backend is the source of truth and each
 * gate's bundle directory a local cache of it. Every bundle read back is verified to hash to its
 * name (the bundle store's rule) and a mismatch rejects; every failure rejects.
 */
export interface PolicyBundleMirror {
  /** Hashes of every stored bundle, ascending. */
  list(): Promise<readonly string[]>;
  /** The stored bytes of bundle `hash`, undefined when absent; rejects when they do not hash to it. */
  get(hash: string): Promise<Uint8Array | undefined>;
  /** Stores `bytes` as bundle `hash` (idempotent: a stored hash is kept); rejects on a mismatch. */
  put(hash: string, bytes: Uint8Array): Promise<void>;
  /** The active bundle's hash, null when none was set. */
  active(): Promise<string | null>;
  /** Points the active pointer at `hash`, which must be stored already (rejects otherwise). */
  setActive(hash: string): Promise<void>;
}

/**
 * Open requests a gate instance may record as abandoned (FC-INV-5, SPEC §5), with the right to
 * do so held until {@link release}: no one else closes them meanwhile.
 */
export interface OrphanClaim {
  /** The claimed open requests, ascending by the index of their acceptance. */
  readonly requests: readonly OpenRequest[];
  /** Gives the right back; call it once their outcomes are recorded (or recording failed). */
  release(): Promise<void>;
}

/** The stores of one deployment, over one backend. */
export interface StorageBackend {
  /** `sqlite` or `postgres`. */
  readonly name: string;
  /** The ledger's store, written by the single ledger writer (SPEC §4). */
  readonly ledger: LedgerStore;
  /** A second, read-only view of the ledger for exports that must not queue behind writes. */
  openLedgerReader(): LedgerStore;
  /** Envelope nonces of the Execution Layer (OE-INV-017). */
  readonly nonces: NonceStore;
  /**
   * Which nonce store {@link nonces} is, the same from every process on it (docs/jobs.md "Shared
   * nonce store"): queue workers bind their stream to it.
   */
  nonceStoreIdentity(): Promise<string>;
  /** Kill switch, lockdowns, quarantines and taint (OE-INV-025). */
  readonly governance: GovernanceState;
  /** The Gate's registered clients and its request nonces and ids (FC-INV-3). */
  readonly gateState: GateStateStore;
  /** Circuit breaker counts, open breakers and tenant spend (OE-INV-021). */
  readonly breakers: BreakerStore;
  /**
   * Approvers, client owners, pending approvals, votes, break-glass grants and reviews
   * (OE-INV-019/020): each vote counted once and each approved call issued once across every
   * process on the backend.
   */
  readonly approvals: ApprovalStore;
  /**
   * The Control Plane's claims of the requests it decides for separate Gates (FC-INV-3,
   * FC-INV-6): one atomic insert per request before its decision, so of every Control Plane
   * process on the backend one decides it and the others refuse `ERR_REQUEST_REPLAYED`.
   */
  readonly decisionClaims: DecisionClaimStore;
  /**
   * The browser console's invited people, sessions and used sign-in challenges (docs/console.md):
   * SQLite in `ledger.db`, PostgreSQL in the shared schema.
   */
  readonly console: ConsoleStore;
  /**
   * The operator registry: people, their tenant scopes and token hashes (OE-INV-025); SQLite in
   * `ledger.db`, PostgreSQL in the shared schema, so every replica refuses a rotated token.
   */
  readonly operators: OperatorStore;
  /**
   * Policy bundles and the active pointer, when the backend holds them (PostgreSQL); undefined
   * when the data directory's bundle files are the truth (SQLite, one process).
   */
  readonly bundles?: PolicyBundleMirror;
  /**
   * Schedules and the slot each fires next (docs/schedules.md): SQLite in `ledger.db`, PostgreSQL
   * in the shared schema (every gate ticks; one takes each slot). Undefined on a backend without
   * them: `schedule.create` then denies `ERR_SCHEDULE_UNAVAILABLE`.
   */
  readonly schedules?: ScheduleStore;
  /** Probes of the real stores for `/readyz`. */
  readonly probes: readonly ReadinessProbe[];
  /**
   * Takes the ledger's single-writer lease (SPEC §4 "one writer"). Call it before the ledger is
   * opened, so the writer reads the head it continues only once no one else can append. With
   * `wait: true` a second deployment on the same storage waits as a standby (SQLite; PostgreSQL
   * refuses it: every gate there serves, each under its own instance lease).
   */
  acquireWriter(options: AcquireOptions): Promise<WriterLease>;
  /**
   * True when several gate processes serve on this storage at once (PostgreSQL: every replica
   * active, appending under the ledger's append lock); false when one process owns it (SQLite).
   */
  readonly shared: boolean;
  /**
   * Optional (SQLite): the durable commits made on the deployment's one connection so far. A
   * governed call costs at most three (`durability.ts`); tests and operators count them here.
   */
  commits?(): number;
  /**
   * This gate instance's id, the owner recorded with the requests it accepts (`local` when one
   * process owns the storage). Known once {@link acquireWriter} resolved.
   */
  instance(): string;
  /**
   * The open requests whose gate instance is gone, claimed for this one to record as abandoned
   * (SPEC §5 "a stop or a crash never breaks the record"). One process owning the storage: every
   * open request, at start. Shared: the requests of instances whose lease ended, while the others'
   * stay theirs. Rejects when the storage cannot say; needs the lease.
   */
  claimOrphanedRequests(): Promise<OrphanClaim>;
  /** Closes every store and connection of the backend. Idempotent. */
  close(): Promise<void>;
}
