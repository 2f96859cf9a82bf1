/**
 * The active policy must be the one the ledger last activated (SPEC §6 "Policy as hash-addressed
 * bundles"; scenario 13). The bundle files and their `ACTIVE` pointer live in the data directory
 * (on PostgreSQL, a cache of the database's: bundle-sync.ts), the ledger in the storage backend;
 * they can disagree: a crash fell between the ledgered activation and the pointer write, or the
 * database lost the pointer write of an activation a standby now takes over. Serving the older
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

/** The bundle hash of the ledger's last `admin.policy_activated` entry, or null when there is none. */
export async function lastActivatedBundle(store: LedgerStore): Promise<string | null> {
  let last: string | null = null;
  for (let from = 0; ;) {
    const page = await store.readByTenant(GLOBAL_TENANT, { from, limit: PAGE });
    for (const e of page) {
      const hash = e.payload['policy_bundle'];
      if (e.type === 'admin.policy_activated' && typeof hash === 'string') last = hash;
    }
    const end = page[page.length - 1];
    if (page.length < PAGE || end === undefined) return last;
    from = end.index + 1;
  }
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
