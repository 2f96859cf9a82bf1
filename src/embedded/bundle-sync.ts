/**
 * Policy bundles when the storage backend holds them (SPEC §6 "Policy as hash-addressed
 * bundles"; PostgreSQL): the backend is the source of truth, the data directory's `bundles/` a
 * local cache the bundle store reads synchronously on the hot path.
 *
 * - On open, once the writer lease is held (so no one else activates meanwhile), every bundle the
 *   backend has and the cache lacks is written into the cache, and the cache's `ACTIVE` pointer
 *   follows the backend's. A gate started from an older copy of the data directory thus
 *   serves the bundle the ledger last activated, with no operator step.
 * - An activation stores the bundle in the backend first, then ledgers `admin.policy_activated`
 *   and moves the local pointer (the bundle store), then moves the backend's pointer. When that
 *   last write fails the activation is answered `ERR_POLICY_UNAVAILABLE` although the ledger
 *   records it and this gate serves the new bundle; a gate opened later sees the backend's older
 *   pointer disagree with the ledger and withholds it (`policy-guard.ts`): a deny, never the
 *   replaced bundle. The gate that activated, opened again on its own directory, finds its
 *   pointer agreeing with the ledger and writes it to the backend.
 */
import {
  readActivePointer,
  readBundleFile,
  writeActivePointer,
  writeBundleFile,
} from '../control-plane/index.js';
import type { BundleStore } from '../control-plane/index.js';
import { deny, isDeny } from '../kernel/index.js';
import type { PolicyBundleMirror } from '../storage/index.js';

/**
 * Brings the bundle directory `dir` in line with the backend before the bundle store opens it:
 * missing bundles are written (each verified against its hash by the mirror, and again on
 * write), and `ACTIVE` is set to the backend's active hash. When the backend lags behind the
 * ledger (`ledgerActive`, its last activation) and the local pointer does not, the backend is
 * brought up to the local pointer instead. Rejects on any backend failure or mismatch: the gate
 * then does not open.
 */
export async function syncBundlesFromBackend(
  dir: string,
  mirror: PolicyBundleMirror,
  ledgerActive: string | null,
): Promise<void> {
  for (const hash of await mirror.list()) {
    if (readBundleFile(dir, hash) !== undefined) continue;
    const bytes = await mirror.get(hash);
    if (bytes !== undefined) writeBundleFile(dir, hash, bytes);
  }
  const remote = await mirror.active();
  const pointer = readActivePointer(dir);
  const local = isDeny(pointer) ? null : pointer;
  if (remote === local) return;
  if (local !== null && local === ledgerActive) {
    const bytes = readBundleFile(dir, local);
    if (bytes !== undefined) {
      await mirror.put(local, bytes);
      await mirror.setActive(local);
      return;
    }
  }
  if (remote !== null) writeActivePointer(dir, remote);
}

/**
 * `bundles` (over the cache `dir`) with every activation written through to the backend: the
 * bundle before the ledger entry, the pointer after it (see the module comment for a failed
 * pointer write). Activations are serialized here, so the backend's pointer moves in the
 * ledger's order.
 */
export function mirroredBundleStore(
  bundles: BundleStore,
  mirror: PolicyBundleMirror,
  dir: string,
): BundleStore {
  let queue: Promise<unknown> = Promise.resolve();
  return Object.freeze({
    active: () => bundles.active(),
    get: (hash: string) => bundles.get(hash),
    put: (bundle: string | Uint8Array) => bundles.put(bundle),
    activate(...args: Parameters<BundleStore['activate']>): ReturnType<BundleStore['activate']> {
      const [hash] = args;
      const run = queue.then(async () => {
        let bytes: Uint8Array | undefined;
        try {
          bytes = readBundleFile(dir, hash);
        } catch {
          bytes = undefined;
        }
        // Unknown, unreadable or tampered: the store itself refuses it; nothing reaches the backend.
        if (bytes === undefined) return bundles.activate(...args);
        try {
          await mirror.put(hash, bytes);
        } catch {
          return deny('ERR_POLICY_UNAVAILABLE', 'the storage backend did not store the policy bundle');
        }
        const r = await bundles.activate(...args);
        if (isDeny(r)) return r;
        try {
          await mirror.setActive(hash);
        } catch {
          return deny(
            'ERR_POLICY_UNAVAILABLE',
            'the storage backend did not record the active policy bundle',
          );
        }
        return r;
      });
      queue = run.catch(() => undefined);
      return run;
    },
    reload: () => bundles.reload(),
  });
}
