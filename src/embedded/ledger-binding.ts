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
 * (`ledger-binding.json`), written by `init` once its first entries are durable. Every open
 * compares it with the store's first entry before anything is read as the head or appended; a
 * store without that entry (empty, or another ledger) is refused, and so is a bound directory
 * whose file cannot be read. An unbound directory meeting an empty store is refused as well
 * outside `init`: every `init` leaves entries behind, so that store is not the one the directory
 * was made with. A directory made before the file existed is bound once its ledger opened, and
 * only with a proof that the store is its ledger ({@link proveOpenedLedger}).
 *
 * A store rolled back to an older copy of the same ledger has the same first entry: a backup
 * restored, a database restored to an earlier point in time. Continuing it would sign other roots
 * at sizes already signed, a fork of checkpoints auditors may hold. So the file also remembers
 * the largest checkpoint of the ledger the deployment has seen: the store's latest once an open
 * verified it, and each one it signs or accepts from its ledger process once durable (written in
 * the background, one at a time, the largest only, never before the open's checks passed), and an
 * open whose ledger is shorter than it, or has another root at its size, is refused. A write of
 * the memory that fails leaves the one before, which still catches a rollback behind it. What is
 * remembered depends on the shape (docs/storage.md "One ledger per data directory").
 *
 * The ledger process, the key's holder in the separated shape, keeps a file of the same format
 * (its `binding`, `ledger-node.ts`): written at every start, and each checkpoint it signs recorded
 * there before it is stored ({@link CheckpointMemory.record}). A file is one process's: two
 * writers could leave the smaller of their checkpoints.
 */
import { existsSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { parseJson } from '../kernel/index.js';
import type { LedgerStore } from '../ledger/index.js';

/** The file, in the data directory, naming the ledger its keys sign. */
export const LEDGER_BINDING_FILE = 'ledger-binding.json';

/** The contents of {@link LEDGER_BINDING_FILE}. */
export interface LedgerBinding {
  readonly version: 1;
  /** `entry_hash` of the ledger's entry 0 (lowercase hex SHA-256). */
  readonly first_entry_hash: string;
  /** The largest checkpoint this directory's deployment signed (or accepted from its ledger process). */
  readonly checkpoint?: { readonly size: number; readonly root_hash: string };
}

const HASH = /^[0-9a-f]{64}$/;

/** Why an open was refused: the store is not the ledger this data directory signs. */
export class LedgerBindingError extends Error {
  override readonly name = 'LedgerBindingError';
}

/** The binding recorded in `root`; undefined when there is none. Throws when the file is unreadable or malformed. */
export function readLedgerBinding(root: string): LedgerBinding | undefined {
  return readLedgerBindingFile(join(root, LEDGER_BINDING_FILE), 'this data directory');
}

/**
 * The binding recorded at `path` (the format of {@link LEDGER_BINDING_FILE}, kept by `whose`: "this
 * data directory", "this ledger process"); undefined when there is no file. Throws when the file
 * is unreadable or malformed.
 */
export function readLedgerBindingFile(path: string, whose: string): LedgerBinding | undefined {
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = parseJson(readFileSync(path), { maxBytes: 4096 });
  } catch (err) {
    throw new LedgerBindingError(
      `${path} cannot be read (${err instanceof Error ? err.message : 'unreadable'}): it names the ledger ${whose} signs, so nothing is opened without it`,
    );
  }
  const malformed = (): LedgerBindingError =>
    new LedgerBindingError(
      `${path} is malformed: it names the ledger ${whose} signs, so nothing is opened without it`,
    );
  const v = value as Record<string, unknown> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    v['version'] !== 1 ||
    typeof v['first_entry_hash'] !== 'string' ||
    !HASH.test(v['first_entry_hash'])
  )
    throw malformed();
  for (const key of Object.keys(v))
    if (key !== 'version' && key !== 'first_entry_hash' && key !== 'checkpoint') throw malformed();
  const first_entry_hash = v['first_entry_hash'];
  const cp = v['checkpoint'] as Record<string, unknown> | null | undefined;
  if (cp === undefined) return { version: 1, first_entry_hash };
  if (
    typeof cp !== 'object' ||
    cp === null ||
    Array.isArray(cp) ||
    Object.keys(cp).length !== 2 ||
    typeof cp['size'] !== 'number' ||
    !Number.isSafeInteger(cp['size']) ||
    cp['size'] < 1 ||
    typeof cp['root_hash'] !== 'string' ||
    !HASH.test(cp['root_hash'])
  )
    throw malformed();
  return { version: 1, first_entry_hash, checkpoint: { size: cp['size'], root_hash: cp['root_hash'] } };
}

/**
 * Records `binding` in `root`, durably: a new file (mode 0600, as the directory's other files)
 * renamed over the old, then the directory synced. Off the event loop (the thread pool's file
 * calls); a temporary name of its own, so processes sharing a volume never write one file.
 */
export function writeLedgerBinding(root: string, binding: LedgerBinding): Promise<void> {
  return writeLedgerBindingFile(join(root, LEDGER_BINDING_FILE), binding);
}

/** {@link writeLedgerBinding} at `path`, its directory synced. */
export async function writeLedgerBindingFile(path: string, binding: LedgerBinding): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const file = await open(tmp, 'w', 0o600);
  try {
    try {
      await file.writeFile(`${JSON.stringify(binding, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // Not left behind: the next write makes a file of its own.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** What {@link checkLedgerBinding} found: the directory's binding, or the entry 0 to bind it to once proved. */
export type BindingCheck = { readonly bound: LedgerBinding } | { readonly unbound: string | undefined };

/**
 * Before a data directory's roles touch `store` (named `storeName` in messages), writing nothing:
 * refuses a store whose entry 0 is not the one the directory is bound to, and an unbound
 * directory over an empty store unless `initialising` (`init`, which writes the ledger's first
 * entries, then calls {@link bindLedger}; every `init` leaves entries behind). An unbound directory over a store with entries is
 * bound only once the ledger opened (see {@link proveOpenedLedger}). Throws
 * {@link LedgerBindingError} when refused.
 */
export async function checkLedgerBinding(
  root: string,
  store: LedgerStore,
  storeName: string,
  initialising: boolean,
): Promise<BindingCheck> {
  const binding = readLedgerBinding(root);
  const first = await store.entry(0);
  if (first === undefined && (binding !== undefined || !initialising))
    throw noLedger(root, storeName, binding);
  if (binding !== undefined && first !== undefined) {
    if (first.entry_hash !== binding.first_entry_hash)
      throw new LedgerBindingError(
        `the storage (${storeName}) holds another ledger (first entry ${first.entry_hash}) than the one the keys of ${root} sign (first entry ${binding.first_entry_hash}, ${LEDGER_BINDING_FILE}): another ledger under the same checkpoint key would be a fork of its evidence. Point the data directory at its own storage, or make a new data directory (failclosed init) for that one`,
      );
    return { bound: binding };
  }
  return { unbound: first?.entry_hash };
}

/** The refusal of a store that holds no ledger, for a directory bound (`binding`) or not. */
function noLedger(root: string, storeName: string, binding: LedgerBinding | undefined): LedgerBindingError {
  return new LedgerBindingError(
    binding !== undefined
      ? `the storage (${storeName}) holds no ledger, but the keys of ${root} sign the ledger whose first entry is ${binding.first_entry_hash} (${LEDGER_BINDING_FILE}): another ledger under the same checkpoint key would be a fork of its evidence. Point the data directory at its own storage, or make a new data directory (failclosed init) for a new ledger`
      : `the storage (${storeName}) holds no ledger, and ${root} names none it signs (no ${LEDGER_BINDING_FILE}): every init leaves entries behind, so this is not the storage the directory was made with. Point it at that storage; a directory whose init never finished is removed and made again (failclosed init)`,
  );
}

/**
 * The SQLite default, before its file is opened (opening creates it, and merges the files of the
 * layout before the one-file layout into it): an initialised directory without its `ledger.db`
 * has lost its ledger, whatever else is there. Refused as an empty store is, creating nothing.
 */
export function checkLocalLedgerFile(root: string, ledgerDb: string): void {
  if (!existsSync(ledgerDb)) throw noLedger(root, 'sqlite', readLedgerBinding(root));
}

/**
 * The binding of a directory that has none yet (made before {@link LEDGER_BINDING_FILE}
 * existed), over a store with entries, once its ledger opened: createLedger verified the store's
 * latest checkpoint under this directory's key (or pinned vkey) and origin, or refused. That
 * checkpoint proves the store is this directory's ledger (`checkpoint`); with no checkpoint, so
 * does the store being the directory's own SQLite file (`local`). A shared store without a
 * checkpoint proves nothing: refused, naming the file an operator who knows better may write.
 * The caller writes it once the whole open succeeded.
 */
export function proveOpenedLedger(
  root: string,
  firstEntryHash: string,
  proof: 'checkpoint' | 'local' | 'none',
  storeName: string,
): LedgerBinding {
  const made: LedgerBinding = { version: 1, first_entry_hash: firstEntryHash };
  if (proof === 'none')
    throw new LedgerBindingError(
      `${root} names no ledger it signs (no ${LEDGER_BINDING_FILE}), and the storage (${storeName}) holds no checkpoint that would show its ledger is this directory's: it may be another deployment's. If it is this directory's ledger, record it by writing ${JSON.stringify(made)} to ${join(root, LEDGER_BINDING_FILE)}`,
    );
  return made;
}

/** What {@link checkSignedCheckpoint} needs of the opened ledger. */
export interface OpenedLedger {
  size(): number;
  rootHash(size: number): string;
}

/**
 * Once the ledger is open (its tree read and verified, nothing signed or appended yet): refuses
 * a store behind the largest checkpoint the data directory remembers, or holding other entries
 * up to it. A store restored from an older copy, or a database restored to an earlier point in
 * time, would have the gate sign other roots at sizes it signed before: a fork, under the
 * pinned key, of checkpoints auditors may already hold.
 */
export function checkSignedCheckpoint(
  root: string,
  binding: LedgerBinding | undefined,
  ledger: OpenedLedger,
  storeName: string,
): void {
  const cp = binding?.checkpoint;
  const mismatch = rolledBack(cp, ledger);
  if (cp === undefined || mismatch === undefined) return;
  const size = ledger.size();
  throw new LedgerBindingError(
    mismatch === 'behind'
      ? `the storage (${storeName}) holds ${size} entries, but ${root} signed a checkpoint of this ledger at size ${cp.size} (${LEDGER_BINDING_FILE}): the store was rolled back (restored from an older copy?) and has lost entries auditors may hold a checkpoint over; continuing it would sign other roots at sizes already signed (a fork). Restore a copy holding at least ${cp.size} entries, or keep its export and make a new data directory (failclosed init) for a new ledger`
      : `the storage (${storeName}) holds other entries up to size ${cp.size} than the checkpoint ${root} signed there (${LEDGER_BINDING_FILE}): continuing it would sign a fork of that checkpoint. Restore the store the checkpoint was signed over, or keep its export and make a new data directory (failclosed init)`,
  );
}

/**
 * How the opened `ledger` departs from the remembered checkpoint `cp`: `behind` (shorter than it),
 * `other` (another root at its size), or undefined (it continues it, or nothing is remembered).
 */
export function rolledBack(
  cp: LedgerBinding['checkpoint'],
  ledger: OpenedLedger,
): 'behind' | 'other' | undefined {
  if (cp === undefined) return undefined;
  if (ledger.size() < cp.size) return 'behind';
  return ledger.rootHash(cp.size) === cp.root_hash ? undefined : 'other';
}

/**
 * Remembers, in a binding file (the data directory's, or the ledger process's `binding`), the
 * largest checkpoint the open deployment verified, signed or accepted.
 */
export interface CheckpointMemory {
  /**
   * The directory's binding, once the open checked the ledger against it (or bound an unbound
   * directory): from here on checkpoints are written, starting with the largest told so far.
   */
  bound(binding: LedgerBinding): void;
  /** A checkpoint of this ledger, durable in the store: recorded when larger than every one before. */
  remember(cp: { readonly size: number; readonly root_hash: string }): void;
  /**
   * `remember`, resolving once the file durably holds `cp` or a larger checkpoint; rejecting when
   * that write failed, or before {@link CheckpointMemory.bound} and after close (the ledger
   * process signs nothing it has not recorded).
   */
  record(cp: { readonly size: number; readonly root_hash: string }): Promise<void>;
  /** Records nothing more (the ledger closed): a checkpoint told later is ignored. */
  close(): void;
  /** Resolves once the last recorded checkpoint is written (or its write failed). */
  settled(): Promise<void>;
}

/**
 * The memory {@link checkSignedCheckpoint} reads at the next open. Nothing is written before
 * {@link CheckpointMemory.bound}: the checkpoint the open verified is only recorded once the
 * store passed the checks against the file. Writes one at a time, the largest checkpoint only; a
 * failed write is told to `onError` and leaves the memory at the previous checkpoint, which the
 * next open still checks (it catches a rollback behind that one).
 */
export function createCheckpointMemory(path: string, onError: (err: unknown) => void): CheckpointMemory {
  let current: LedgerBinding | undefined;
  /** The largest checkpoint told or remembered: a smaller one never replaces it. */
  let highest = 0;
  let pending: { readonly size: number; readonly root_hash: string } | undefined;
  /** Callers of `record`, each settled by the first write covering its size (or its failure). */
  let waiters: { size: number; resolve: () => void; reject: (err: unknown) => void }[] = [];
  let writing: Promise<void> = Promise.resolve();
  let busy = false;
  let closed = false;
  /** Settles the waiters of sizes in (`above`, `size`]: resolved, or rejected with `err`. */
  const settle = (size: number, err?: unknown, above = 0): void => {
    const done = waiters.filter((w) => w.size <= size && w.size > above);
    waiters = waiters.filter((w) => w.size > size || w.size <= above);
    for (const w of done)
      if (err === undefined) w.resolve();
      else w.reject(err);
  };
  /** What is queued for the next write (set by remember and record while a write is under way). */
  const pendingSize = (): number => pending?.size ?? 0;
  const drain = async (): Promise<void> => {
    busy = true;
    try {
      while (pending !== undefined && current !== undefined) {
        const cp = pending;
        pending = undefined;
        const next: LedgerBinding = { ...current, checkpoint: cp };
        try {
          await writeLedgerBindingFile(path, next);
          current = next;
          settle(cp.size);
        } catch (err) {
          onError(err);
          // Rejected: the callers whose checkpoint this write held, not those of the next one
          // (already pending). What was told since stays to be written by a later remember.
          settle(cp.size, err, pendingSize());
          highest = Math.max(current.checkpoint?.size ?? 0, pendingSize());
        }
      }
    } finally {
      busy = false;
    }
  };
  const start = (): void => {
    if (!busy && current !== undefined && pending !== undefined) writing = drain();
  };
  const remember = (cp: { readonly size: number; readonly root_hash: string }): void => {
    if (closed || cp.size <= highest) return;
    highest = cp.size;
    pending = { size: cp.size, root_hash: cp.root_hash };
    start();
  };
  return {
    bound(b) {
      current = b;
      const known = b.checkpoint?.size ?? 0;
      if (pending !== undefined && pending.size <= known) pending = undefined;
      highest = Math.max(highest, known);
      settle(known);
      start();
    },
    remember,
    record(cp) {
      if (closed || current === undefined)
        return Promise.reject(new Error('the checkpoint memory is not open: nothing can be recorded'));
      if (cp.size <= (current.checkpoint?.size ?? 0)) return Promise.resolve();
      const recorded = new Promise<void>((resolve, reject) => {
        waiters.push({ size: cp.size, resolve, reject });
      });
      // Written even when a larger one was told before (its write may have failed): the waiter is
      // settled by this write, or by a larger one under way.
      highest = Math.max(highest, cp.size);
      if (pending === undefined || pending.size < cp.size)
        pending = { size: cp.size, root_hash: cp.root_hash };
      start();
      return recorded;
    },
    close() {
      closed = true;
      settle(Number.MAX_SAFE_INTEGER, new Error('the checkpoint memory closed'));
    },
    settled: () => writing,
  };
}

/** After `init` wrote the first entries of a new ledger: binds `root` to it. */
export async function bindLedger(root: string, store: LedgerStore, storeName: string): Promise<void> {
  const first = await store.entry(0);
  if (first === undefined)
    throw new LedgerBindingError(`the storage (${storeName}) holds no ledger after init`);
  await writeLedgerBinding(root, { version: 1, first_entry_hash: first.entry_hash });
}
