/**
 * One ledger per data directory (docs/storage.md "One ledger per data directory", SPEC §4, L7
 * ledger protection). A data directory's checkpoint key and origin sign one ledger. The same keys
 * over a second store would sign a second history under the same origin and key: two
 * checkpoints of one size with different roots, each of which `verify` accepts with the pinned
 * key (a fork an auditor cannot tell from the real ledger). The storage backend is chosen by
 * `--backend`, `FAILCLOSED_BACKEND` or `failclosed.json`, so one changed variable, a database
 * recreated under the same URL or a `ledger.db` deleted to "start again" would start that second
 * ledger.
 *
 * So the data directory records which ledger it writes: the hash of that ledger's first entry
 * (`ledger-binding.json`), written by `init` once its first entries are durable, or at the first
 * open of a directory made before the file existed. Every open compares it with the store's first
 * entry before anything is read as the head or appended; a store without that entry (empty, or
 * another ledger) is refused, and so is a bound directory whose file cannot be read. An unbound
 * directory meeting an empty store is refused as well outside `init`: every `init` leaves entries
 * behind, so that store is not the one the directory was made with.
 *
 * It does not see a store rolled back to an older copy of the same ledger (its first entry is the
 * same): restoring a backup is a documented step of its own (docs/storage.md).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseJson } from '../kernel/index.js';
import type { LedgerStore } from '../ledger/index.js';

/** The file, in the data directory, naming the ledger its keys sign. */
export const LEDGER_BINDING_FILE = 'ledger-binding.json';

/** The contents of {@link LEDGER_BINDING_FILE}. */
export interface LedgerBinding {
  readonly version: 1;
  /** `entry_hash` of the ledger's entry 0 (lowercase hex SHA-256). */
  readonly first_entry_hash: string;
}

const HASH = /^[0-9a-f]{64}$/;

/** Why an open was refused: the store is not the ledger this data directory signs. */
export class LedgerBindingError extends Error {
  override readonly name = 'LedgerBindingError';
}

/** The binding recorded in `root`; undefined when there is none. Throws when the file is unreadable or malformed. */
export function readLedgerBinding(root: string): LedgerBinding | undefined {
  const path = join(root, LEDGER_BINDING_FILE);
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = parseJson(readFileSync(path), { maxBytes: 4096 });
  } catch (err) {
    throw new LedgerBindingError(
      `${path} cannot be read (${err instanceof Error ? err.message : 'unreadable'}): it names the ledger this data directory signs, so nothing is opened without it`,
    );
  }
  const v = value as Record<string, unknown> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    Object.keys(v).length !== 2 ||
    v['version'] !== 1 ||
    typeof v['first_entry_hash'] !== 'string' ||
    !HASH.test(v['first_entry_hash'])
  )
    throw new LedgerBindingError(
      `${path} is malformed: it names the ledger this data directory signs, so nothing is opened without it`,
    );
  return { version: 1, first_entry_hash: v['first_entry_hash'] };
}

/** Records `binding` in `root`, durably (a new file renamed over the old, then the directory synced). */
export function writeLedgerBinding(root: string, binding: LedgerBinding): void {
  const path = join(root, LEDGER_BINDING_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(binding, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(root, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** How {@link checkLedgerBinding} treats an unbound data directory over an empty store. */
export type BindingMode =
  /** `init`: it writes the ledger's first entries, then calls {@link bindLedger}. */
  | 'init'
  /** Any other open: refused (every `init` left entries behind). */
  | 'open';

/**
 * Before a data directory's roles touch `store` (named `storeName` in messages): refuses a store
 * whose entry 0 is not the one the directory is bound to, and binds an unbound directory to a
 * store that has entries. Throws {@link LedgerBindingError} when refused.
 */
export async function checkLedgerBinding(
  root: string,
  store: LedgerStore,
  storeName: string,
  mode: BindingMode,
): Promise<void> {
  const binding = readLedgerBinding(root);
  const first = await store.entry(0);
  if (binding !== undefined) {
    if (first === undefined)
      throw new LedgerBindingError(
        `the storage (${storeName}) holds no ledger, but the keys of ${root} sign the ledger whose first entry is ${binding.first_entry_hash} (${LEDGER_BINDING_FILE}): another ledger under the same checkpoint key would be a fork of its evidence. Point the data directory at its own storage, or make a new data directory (failclosed init) for a new ledger`,
      );
    if (first.entry_hash !== binding.first_entry_hash)
      throw new LedgerBindingError(
        `the storage (${storeName}) holds another ledger (first entry ${first.entry_hash}) than the one the keys of ${root} sign (first entry ${binding.first_entry_hash}, ${LEDGER_BINDING_FILE}): another ledger under the same checkpoint key would be a fork of its evidence. Point the data directory at its own storage, or make a new data directory (failclosed init) for that one`,
      );
    return;
  }
  if (first !== undefined) {
    writeLedgerBinding(root, { version: 1, first_entry_hash: first.entry_hash });
    return;
  }
  if (mode === 'open')
    throw new LedgerBindingError(
      `the storage (${storeName}) holds no ledger, and ${root} names none it signs (no ${LEDGER_BINDING_FILE}): every init leaves entries behind, so this is not the storage the directory was made with. Point it at that storage; a directory whose init never finished is removed and made again (failclosed init)`,
    );
}

/** After `init` wrote the first entries of a new ledger: binds `root` to it. */
export async function bindLedger(root: string, store: LedgerStore, storeName: string): Promise<void> {
  const first = await store.entry(0);
  if (first === undefined)
    throw new LedgerBindingError(`the storage (${storeName}) holds no ledger after init`);
  writeLedgerBinding(root, { version: 1, first_entry_hash: first.entry_hash });
}
