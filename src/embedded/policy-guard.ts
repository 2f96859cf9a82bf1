/**
 * The active policy must be the one the ledger last activated (SPEC §6 "Policy as hash-addressed
 * bundles"; scenario 13). The bundle files and their `ACTIVE` pointer live in the data directory
 * (on PostgreSQL, a cache of the database's: bundle-sync.ts), the ledger in the storage backend;
 * they can disagree: a crash fell between the ledgered activation and the pointer write, or the
 * database lost the pointer write of an activation that a gate opened later now reads. Serving the older
 * bundle would decide under a policy the evidence says was replaced, so the stale bundle is
 * withheld: every decision denies `ERR_POLICY_UNAVAILABLE` until an operator activates a bundle
 * (which is ledgered, and then agrees).
 */
import { deny, isDeny } from '../kernel/index.js';
import type { BundleStore } from '../control-plane/index.js';
import type { LedgerStore } from '../ledger/index.js';

/** The tenant of admin entries that are not scoped to one tenant. */
const GLOBAL_TENANT = '*';
const PAGE = 1000;

/** What the ledger's global admin entries say the deployment's policy and issuer keys are. */
export interface LedgerAdminState {
  /** The bundle of the last `admin.policy_activated`, or null. */
  readonly activeBundle: string | null;
  /** The kid of the last `admin.key_rotated` of the envelope issuer key, or null. */
  readonly issuerKid: string | null;
  /** Every issuer kid an `admin.key_revoked` revoked. */
  readonly revokedIssuerKids: ReadonlySet<string>;
  /** The ledger index to read on from: one past the last global entry read (0 when none). */
  readonly next: number;
}

/**
 * Reads the ledger's global admin entries (a page at a time) into a {@link LedgerAdminState}:
 * all of them, or, given the state an earlier read returned, only those appended since (the
 * replica follower reads the ledger this way on every round, cheaply).
 */
export async function readLedgerAdminState(
  store: LedgerStore,
  since?: LedgerAdminState,
): Promise<LedgerAdminState> {
  let activeBundle = since?.activeBundle ?? null;
  let issuerKid = since?.issuerKid ?? null;
  const revokedIssuerKids = new Set<string>(since?.revokedIssuerKids ?? []);
  for (let from = since?.next ?? 0; ;) {
    const page = await store.readByTenant(GLOBAL_TENANT, { from, limit: PAGE });
    for (const e of page) {
      const p = e.payload;
      if (e.type === 'admin.policy_activated' && typeof p['policy_bundle'] === 'string')
        activeBundle = p['policy_bundle'];
      else if (e.type === 'admin.key_rotated' && p['key_use'] === 'envelope' && typeof p['kid'] === 'string')
        issuerKid = p['kid'];
      else if (e.type === 'admin.key_revoked' && p['key_use'] === 'envelope' && typeof p['kid'] === 'string')
        revokedIssuerKids.add(p['kid']);
    }
    const end = page[page.length - 1];
    if (end !== undefined) from = end.index + 1;
    if (page.length < PAGE || end === undefined)
      return Object.freeze({ activeBundle, issuerKid, revokedIssuerKids, next: from });
  }
}

/**
 * Throws unless this data directory's issuer keys agree with the ledger: its signing key is the
 * one the ledger last rotated to (when it rotated at all), and every issuer key the ledger
 * revoked is revoked here too. A gate started from a copy made before a rotation or a
 * revocation would otherwise sign with, and trust, a key the deployment gave up (OE-INV-025 key
 * revocation): it refuses to open instead, until `keys/` is copied from the active gate again.
 */
export function assertIssuerKeysAgree(ledger: LedgerAdminState, local: LocalIssuerKeys): void {
  const disagreement = issuerKeysDisagreement(ledger, local);
  if (disagreement !== null) throw new Error(`${disagreement}: copy keys/ from the active gate`);
}

/** This data directory's issuer keys: the kid that signs now, and every kid it treats as revoked. */
export interface LocalIssuerKeys {
  readonly currentKid: string;
  readonly revoked: readonly string[];
}

/**
 * Why the issuer keys `local` disagree with the ledger (see {@link assertIssuerKeysAgree}), or
 * null when they agree (OE-INV-025 key revocation).
 */
export function issuerKeysDisagreement(ledger: LedgerAdminState, local: LocalIssuerKeys): string | null {
  if (ledger.issuerKid !== null && ledger.issuerKid !== local.currentKid)
    return 'the issuer key of this data directory is not the one the ledger last rotated to';
  for (const kid of ledger.revokedIssuerKids)
    if (!local.revoked.includes(kid))
      return 'the ledger revoked an issuer key this data directory still trusts';
  return null;
}

/**
 * `bundles` as the roles see it: while its active bundle is not `ledgerActive` (the ledger's last
 * activation), `active()` denies; a successful activation through it ends that (the pointer is
 * then the ledger's last activation too).
 */
export function withholdStaleBundle(bundles: BundleStore, ledgerActive: string | null): BundleStore {
  const local = bundles.active();
  const localHash = isDeny(local) ? null : local.hash;
  if (ledgerActive === null || localHash === ledgerActive) return bundles;
  let agreed = false;
  return {
    active() {
      const a = bundles.active();
      if (agreed || isDeny(a)) return a;
      return deny(
        'ERR_POLICY_UNAVAILABLE',
        'the active policy bundle is not the one the ledger last activated',
      );
    },
    get: (hash) => bundles.get(hash),
    put: (bundle) => bundles.put(bundle),
    async activate(hash, actor, reason, approval) {
      const r = await bundles.activate(hash, actor, reason, approval);
      if (r.outcome === 'ok') agreed = true;
      return r;
    },
    reload: () => bundles.reload(),
  };
}
