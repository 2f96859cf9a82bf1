/**
 * Recording the inventory of execution-capable interfaces in the ledger (FC-INV-6 evidence,
 * docs/inventory.md "In the ledger"): the document is stored as evidence (its canonical bytes,
 * named by SHA-256) and an `inventory.recorded` entry names it, with the policy bundle it lists
 * the tools of. Recorded when a gate opens its storage (if it differs from the one last recorded)
 * and before every policy activation (for the bundle being activated, so no call under the new
 * bundle can run before its inventory is in the ledger). A recording the ledger did not confirm
 * refuses the activation, or the start: no interface runs unlisted.
 */
import {
  deny,
  INVENTORY_MEDIA_TYPE,
  inventoryBytes,
  inventorySha256,
  isDeny,
  withDeadline,
} from '../kernel/index.js';
import type { InventoryDocument } from '../kernel/index.js';
import type { Actor, LedgerStore } from '../ledger/index.js';
import type { BundleStore } from '../control-plane/index.js';
import type { LedgerPort } from './ports.js';
import { buildInventory } from './inventory.js';
import type { InventorySources } from './inventory.js';

/** Why an inventory was recorded. */
export type InventoryReason = 'start' | 'policy_activated';

/** Records inventories; one per process, serialised. */
export interface InventoryRecorder {
  /**
   * Records `doc` as `inventory.recorded` unless it is the one this ledger last recorded;
   * resolves with its SHA-256. Rejects when the ledger did not confirm.
   */
  record(doc: InventoryDocument, reason: InventoryReason, actor: Actor): Promise<string>;
  /** Reads what the ledger recorded so far (once); rejects when the store cannot be read. */
  load(): Promise<void>;
  /** Who last activated the bundle `hash`, as the ledger says (after `load`). */
  activatorOf(hash: string): string | undefined;
}

/** The tenant of global entries. */
const GLOBAL_TENANT = '*';
const PAGE = 1000;
/** How long one ledger write of a recording may take before the recording fails. */
export const INVENTORY_LEDGER_MS = 2000;

/** The value of a bounded ledger call, or a throw: a hang past the deadline fails the recording. */
async function bounded<T>(fn: () => Promise<T>): Promise<T> {
  const r = await withDeadline(fn, INVENTORY_LEDGER_MS);
  if (r.status === 'ok') return r.value;
  throw new Error(`the ledger did not confirm the inventory (${r.status})`);
}

/**
 * The recorder that appends through `port`. `load` reads the ledger's global entries once (the
 * last recorded inventory, who activated each bundle); `record` waits for it.
 */
export function createInventoryRecorder(
  port: Pick<LedgerPort, 'append' | 'putEvidence'>,
  store: Pick<LedgerStore, 'readByTenant'>,
): InventoryRecorder {
  let last: string | undefined;
  const activators = new Map<string, string>();
  let loading: Promise<void> | undefined;
  const load = (): Promise<void> =>
    (loading ??= (async () => {
      for (let from = 0; ;) {
        const page = await store.readByTenant(GLOBAL_TENANT, { from, limit: PAGE });
        for (const e of page) {
          const p = e.payload;
          if (e.type === 'inventory.recorded' && typeof p['inventory_sha256'] === 'string')
            last = p['inventory_sha256'];
          else if (e.type === 'admin.policy_activated' && typeof p['policy_bundle'] === 'string')
            activators.set(p['policy_bundle'], e.actor.id);
        }
        const end = page[page.length - 1];
        if (end === undefined || page.length < PAGE) return;
        from = end.index + 1;
      }
    })().catch((err: unknown) => {
      // A failed read is retried by the next caller.
      loading = undefined;
      throw err;
    }));
  let queue: Promise<unknown> = Promise.resolve();
  return {
    record(doc, reason, actor) {
      const run = async (): Promise<string> => {
        await load();
        const sha = inventorySha256(doc);
        if (sha === last) return sha;
        const stored = await bounded(() => port.putEvidence(inventoryBytes(doc), INVENTORY_MEDIA_TYPE));
        if (stored !== sha) throw new Error('the inventory evidence was stored under another digest');
        await bounded(() =>
          port.append({
            type: 'inventory.recorded',
            trace_id: '',
            request_id: '',
            tenant: GLOBAL_TENANT,
            actor,
            payload: {
              inventory_sha256: sha,
              policy_bundle: doc.policy_bundle,
              interfaces: doc.interfaces.length,
              reason,
            },
          }),
        );
        last = sha;
        if (reason === 'policy_activated' && doc.policy_bundle !== null)
          activators.set(doc.policy_bundle, actor.id);
        return sha;
      };
      const next = queue.then(run, run);
      queue = next.catch(() => undefined);
      return next;
    },
    load,
    activatorOf: (hash) => activators.get(hash),
  };
}

/**
 * `bundles` whose activations first record the inventory of the bundle being activated (its
 * tools, this deployment's listeners, the activator as owner of what names none). A recording
 * the ledger did not confirm refuses the activation `ERR_LEDGER_UNAVAILABLE`; nothing changes.
 */
export function recordingInventory(
  bundles: BundleStore,
  recorder: InventoryRecorder,
  config: InventorySources['config'],
): BundleStore {
  return {
    active: () => bundles.active(),
    get: (hash) => bundles.get(hash),
    put: (bundle) => bundles.put(bundle),
    reload: () => bundles.reload(),
    async activate(hash, actor, reason, approval) {
      const runtime = bundles.get(hash);
      if (isDeny(runtime)) return runtime;
      try {
        await recorder.record(
          buildInventory({ config, bundle: runtime.bundle, activator: actor.id }),
          'policy_activated',
          actor,
        );
      } catch {
        return deny('ERR_LEDGER_UNAVAILABLE', 'the inventory of the bundle was not recorded');
      }
      return bundles.activate(hash, actor, reason, approval);
    },
  };
}

/** Records the inventory in force when a gate opens: the active bundle's tools and the listeners. */
export async function recordStartInventory(
  recorder: InventoryRecorder,
  bundles: Pick<BundleStore, 'active'>,
  config: InventorySources['config'],
  actor: Actor,
): Promise<string> {
  // The owners of what names none come from the ledger's activations: read them first.
  await recorder.load();
  return recorder.record(currentInventory(recorder, bundles, config), 'start', actor);
}

/** The inventory in force now: the active bundle (none when it is unavailable) and the listeners. */
export function currentInventory(
  recorder: Pick<InventoryRecorder, 'activatorOf'>,
  bundles: Pick<BundleStore, 'active'>,
  config: InventorySources['config'],
): InventoryDocument {
  const active = bundles.active();
  const bundle = isDeny(active) ? undefined : active.bundle;
  const activator = bundle === undefined ? undefined : recorder.activatorOf(bundle.hash);
  return buildInventory({
    config,
    ...(bundle === undefined ? {} : { bundle }),
    ...(activator === undefined ? {} : { activator }),
  });
}
