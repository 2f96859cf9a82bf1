/**
 * Replicas on one shared backend follow each other (SPEC §1 "Distributed", SPEC §6 "Policy as
 * hash-addressed bundles", OE-INV-025 key revocation). Every `follow_ms` the follower reads the
 * backend's active bundle pointer and the ledger's global admin entries appended since its last
 * round, then:
 *
 * - brings the local bundle cache in line: a bundle the backend points at and the ledger last
 *   activated is fetched (verified by hash, as at open: bundle-sync.ts), the cache's `ACTIVE`
 *   moves to it and the bundle store reloads. A pointer the ledger's last activation does not
 *   name is never followed (a lost pointer write, an edit in the database, or an activation
 *   caught halfway);
 * - serves the active bundle only while it is the ledger's last activation (the guard of
 *   policy-guard.ts, kept current instead of fixed at open);
 * - compares this data directory's issuer keys with the ledger's last rotation and its
 *   revocations: a replica that would sign with, or trust, a key the deployment gave up through
 *   another replica refuses every decision and every execution until it is restarted with
 *   `keys/` copied from where the change was made;
 * - denies while unsure: when no round has succeeded for longer than the staleness bound
 *   (2 × `follow_ms`, at least 5 s, measured on the injected clock from the start of the last good round), an
 *   activation, rotation or revocation may have happened unseen, so every decision and
 *   execution is refused until a round succeeds again.
 *
 * Every refusal is `ERR_POLICY_UNAVAILABLE` (503): this replica cannot confirm it decides under
 * the deployment's current, ledgered policy and issuer keys. The reason says which, and the
 * notice callback says it once when it starts and once when it ends.
 *
 * Governance (kill switch, lockdowns, quarantines) needs no following: every check reads it from
 * the database (storage/postgres/governance-state.ts).
 */
import {
  readActivePointer,
  readBundleFile,
  writeActivePointer,
  writeBundleFile,
} from '../control-plane/index.js';
import type { BundleStore } from '../control-plane/index.js';
import { deny, isDeny } from '../kernel/index.js';
import type { Clock, Deny } from '../kernel/index.js';
import type { Executor } from '../execution/index.js';
import type { LedgerStore } from '../ledger/index.js';
import type { PolicyBundleMirror } from '../storage/index.js';
import { issuerKeysDisagreement, readLedgerAdminState } from './policy-guard.js';
import type { LedgerAdminState, LocalIssuerKeys } from './policy-guard.js';

/** Default period of the follower's rounds (ms); the staleness bound is twice it. */
export const DEFAULT_FOLLOW_MS = 1000;

/** Dependencies of {@link createReplicaFollower}. */
export interface ReplicaFollowerDeps {
  /** The bundle directory: the local cache of the backend's bundles. */
  readonly dir: string;
  /** The backend's bundles and active pointer. */
  readonly mirror: PolicyBundleMirror;
  /** The ledger's store (shared by every replica on the backend). */
  readonly ledger: LedgerStore;
  /** The ledger's admin state as read when the gate opened; rounds read on from its `next`. */
  readonly admin: LedgerAdminState;
  /**
   * When `admin` was read (the clock's reading just before): the staleness bound counts from it,
   * not from the follower's creation (default: now).
   */
  readonly adminReadAt?: number;
  /** This data directory's issuer keys as they are now (they change with a local rotation). */
  readonly issuerKeys: () => LocalIssuerKeys;
  readonly clock: Clock;
  /** Period of the rounds (ms), positive. */
  readonly followMs: number;
  /** Told, in one line, when this replica starts or stops refusing, and why. */
  readonly notice?: (message: string) => void;
}

/** The follower of one replica. */
export interface ReplicaFollower {
  /**
   * Why this replica refuses every decision and execution now (stale, or its issuer keys
   * disagree with the ledger), or null when it may serve.
   */
  unsure(): Deny | null;
  /**
   * `bundles` as the roles see it: `active()` denies while {@link unsure} does, and while the
   * active bundle is not the ledger's last activation; activations are serialized with rounds.
   * Pass the store the follower's rounds reload (the one over `deps.dir`).
   */
  guard(bundles: BundleStore): BundleStore;
  /** `executor`, refusing every call before any check while {@link unsure} denies. */
  guardExecutor(executor: Executor): Executor;
  /** Runs one round now (serialized with rounds and activations); true when it succeeded. */
  round(): Promise<boolean>;
  /** Starts the rounds, every `followMs`. */
  start(): void;
  /** Stops the rounds and waits for one in progress. Idempotent. */
  stop(): Promise<void>;
}

/** The least staleness bound (ms): `max(2 × follow_ms, MIN_STALE_MS)`. */
const MIN_STALE_MS = 5000;

/**
 * Creates the follower of a replica whose backend holds the policy bundles (PostgreSQL). The gate
 * that opened has just synced its cache and read the ledger: that counts as the first good round.
 * Throws `TypeError` for a period that is not a positive integer.
 */
export function createReplicaFollower(deps: ReplicaFollowerDeps): ReplicaFollower {
  const { dir, mirror, ledger, clock, followMs } = deps;
  if (!Number.isSafeInteger(followMs) || followMs <= 0)
    throw new TypeError('follow_ms must be a positive integer');
  const notice = deps.notice ?? (() => undefined);
  // Never under MIN_STALE_MS: a round waits on the same database as the calls, and under load a
  // round slower than `follow_ms` must not make every gate deny.
  const boundMs = Math.max(2 * followMs, MIN_STALE_MS);
  let admin = deps.admin;
  let lastGoodAt = deps.adminReadAt ?? clock();
  let store: BundleStore | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let queue: Promise<unknown> = Promise.resolve();
  // What was last said, so each condition is told once when it starts and once when it ends.
  let told: string | null = null;
  let pointerTold: string | null = null;
  let failingTold = false;
  let eager: Promise<boolean> | undefined;

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  function unsure(): Deny | null {
    const age = clock() - lastGoodAt;
    let d: Deny | null = null;
    // A negative age is a clock stepped back: unsure too, until a round succeeds on the new time.
    if (!(age >= 0 && age <= boundMs))
      d = deny(
        'ERR_POLICY_UNAVAILABLE',
        `this replica has not confirmed the deployment's policy and issuer keys for over ${boundMs} ms`,
      );
    else {
      let disagreement: string | null;
      try {
        disagreement = issuerKeysDisagreement(admin, deps.issuerKeys());
      } catch {
        disagreement = 'the issuer keys of this gate cannot be read';
      }
      if (disagreement !== null) {
        // A rotation or revocation made through this gate disagrees only until a round reads its
        // ledger entry: read now instead of waiting for the next period.
        if (!stopped) eager ??= round().finally(() => (eager = undefined));
        d = deny(
          'ERR_POLICY_UNAVAILABLE',
          `${disagreement}: restart this gate with keys/ copied from where the key changed`,
        );
      }
    }
    const reason = d?.reason ?? null;
    if (reason !== told) {
      notice(
        reason === null ? 'this replica follows the deployment again' : `refusing every call: ${reason}`,
      );
      told = reason;
    }
    return d;
  }

  /** The bundle the store serves, if it is the ledger's last activation (or the ledger has none). */
  function guardedActive(bundles: BundleStore): ReturnType<BundleStore['active']> {
    const d = unsure();
    if (d !== null) return d;
    const a = bundles.active();
    if (isDeny(a) || admin.activeBundle === null || a.hash === admin.activeBundle) return a;
    return deny(
      'ERR_POLICY_UNAVAILABLE',
      'the active policy bundle is not the one the ledger last activated',
    );
  }

  /** Moves the cache's pointer to `hash`, fetching the bundle first when the cache lacks it. */
  async function follow(hash: string): Promise<void> {
    const pointer = readActivePointer(dir);
    if (pointer === hash) return;
    if (readBundleFile(dir, hash) === undefined) {
      // Database row: the mirror verifies the body hashes to its name, and so does the write.
      const bytes = await mirror.get(hash);
      if (bytes === undefined) throw new Error('the backend points at a bundle it does not hold');
      writeBundleFile(dir, hash, bytes);
    }
    writeActivePointer(dir, hash);
    store?.reload();
    notice(`following the policy bundle ${hash} activated through another replica`);
  }

  async function runRound(): Promise<boolean> {
    const startedAt = clock();
    try {
      // The ledger first, then the pointer: an activation made between the two reads shows as a
      // pointer ahead of the ledger, not followed until the next round reads its entry (this
      // gate keeps serving the ledger's last activation meanwhile).
      const next = await readLedgerAdminState(ledger, admin);
      // Kept even when the pointer read fails next: a revocation read from the ledger holds.
      admin = next;
      const remote = await mirror.active();
      const ledgered = next.activeBundle;
      if (remote !== null && remote === ledgered) {
        await follow(remote);
        pointerTold = null;
      } else if (remote !== ledgered && pointerTold !== remote) {
        // Not followed: the guard withholds whatever the cache serves unless it is `ledgered`.
        notice(
          `the backend's active policy pointer (${remote ?? 'none'}) is not the ledger's last activation (${ledgered ?? 'none'}); not followed`,
        );
        pointerTold = remote;
      }
      // The start of this round, even when the clock went back: the bound then counts from it.
      lastGoodAt = startedAt;
      if (failingTold) notice('follow rounds succeed again');
      failingTold = false;
      return true;
    } catch (err) {
      // Told once per failing streak; the denial past the bound says the rest.
      if (!failingTold) notice(`a follow round failed: ${err instanceof Error ? err.message : String(err)}`);
      failingTold = true;
      return false;
    }
  }

  const round = (): Promise<boolean> => serial(runRound);

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      void round().finally(schedule);
    }, followMs);
    // The rounds never keep the process alive by themselves.
    timer.unref();
  }

  return Object.freeze({
    unsure,
    guard(bundles: BundleStore): BundleStore {
      store = bundles;
      return Object.freeze({
        active: () => guardedActive(bundles),
        get: (hash: string) => bundles.get(hash),
        put: (bundle: string | Uint8Array) => bundles.put(bundle),
        activate(...args: Parameters<BundleStore['activate']>): ReturnType<BundleStore['activate']> {
          const [hash] = args;
          return serial(async () => {
            const before = bundles.active();
            const r = await bundles.activate(...args);
            const after = bundles.active();
            // The store moves its pointer only once the ledger confirmed the activation: a
            // pointer that moved here (even when the backend's pointer write then failed) is the
            // ledger's last activation now.
            const moved = !isDeny(after) && after.hash === hash && (isDeny(before) || before.hash !== hash);
            if (r.outcome === 'ok' || moved) admin = Object.freeze({ ...admin, activeBundle: hash });
            return r;
          });
        },
        reload: () => bundles.reload(),
      });
    },
    guardExecutor(executor: Executor): Executor {
      return Object.freeze({
        execute: (
          call: Parameters<Executor['execute']>[0],
          writes?: Parameters<Executor['execute']>[1],
          relay?: Parameters<Executor['execute']>[2],
          signal?: Parameters<Executor['execute']>[3],
        ) => {
          const d = unsure();
          return d === null ? executor.execute(call, writes, relay, signal) : Promise.resolve(d);
        },
        // Voiding only ever takes authority away: it stays open.
        void: (input: Parameters<Executor['void']>[0]) => executor.void(input),
      });
    },
    round,
    start(): void {
      if (stopped || timer !== undefined) return;
      schedule();
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await queue;
    },
  });
}
