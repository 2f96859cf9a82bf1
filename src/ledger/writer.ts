/**
 * The single ledger writer with group commit (SPEC §4, §8 "durable writes"): callers' appends
 * are queued; the writer assigns `index` and `prev_hash` in memory, commits a batch in one
 * transaction, and resolves each caller only after the commit. A failed commit rejects every
 * caller of the batch with `ERR_LEDGER_UNAVAILABLE` and the in-memory head stays at the last
 * confirmed entry (no gaps, no phantom entries): GEI "If the ledger write fails, the tool does
 * not run", L7 degraded mode: deny.
 */
import {
  FailclosedError,
  hexDigestEquals,
  sha256Hex,
  type Clock,
  type DurableWrites,
  type JsonValue,
  type Observer,
} from '../kernel/index.js';
import { performance } from 'node:perf_hooks';
import { createMerkleTree, settlesAttempt, type MerkleTree } from '../kernel/index.js';
import { GENESIS_PREV_HASH, entryLeafHash, parseEntryInput, sealEntry } from './entry.js';
import type { EntryInput, EntryRef, LedgerEntry } from './entry.js';
import type { EntryType } from './entry-types.js';
import type { LedgerStore } from './store.js';
import {
  createCheckpointer,
  ledgerKeyFor,
  type CheckpointSigner,
  type CheckpointWitness,
  type Checkpointer,
  type LedgerKey,
} from './checkpoint.js';
import { REQUEST_OUTCOME_TYPES } from './store.js';
import type { EnvelopeContext, EvidenceBlob, OpenRequest, StoredCheckpoint } from './store.js';
import { restoreTree, snapshotChunks } from './open.js';

/** Options for {@link createLedger}. */
export interface LedgerOptions {
  readonly store: LedgerStore;
  readonly clock: Clock;
  /**
   * Signs checkpoints; its key name is the checkpoint origin's signer. Or a
   * {@link CheckpointWitness}: the ledger process signs, this writer holds the public key only
   * and verifies each checkpoint it is given against its own tree (docs/deployment.md "The ledger
   * process").
   */
  readonly checkpointSigner: CheckpointSigner | CheckpointWitness;
  /** The checkpoint origin line, naming this ledger, e.g. `failclosed.local/<ledger id>`. */
  readonly origin: string;
  /** Sign a checkpoint after this many new entries or this much time with new entries (checked on commit). */
  readonly checkpointEvery?: { readonly entries?: number; readonly ms?: number };
  /** Largest batch per transaction. Default 1024. */
  readonly maxBatch?: number;
  /**
   * Told each batch's size and write time (metrics; docs/deployment.md "Observability"), and,
   * for {@link Ledger.follow} only, the `ledger_verify` stage of every trace among the entries
   * of the last five minutes it read and verified (each page once, timed from its read to its
   * last check).
   */
  readonly observer?: Pick<Observer, 'ledgerBatch' | 'stage'>;
  /**
   * Re-hash every entry when opening; never restore the tree from the stored snapshot. The
   * snapshot's inner nodes are checked only through the root and the last leaf at its size, so
   * whoever can write the store could plant nodes that give other roots at smaller sizes: the
   * ledger process (`serve ledger`), which signs roots at any size it is asked for, trusts only
   * what it hashed itself (it still writes snapshots for the others).
   */
  readonly rehash?: boolean;
  /**
   * Told of the store's latest checkpoint once the open verified it, then of every checkpoint
   * this writer signed, once durable in the store, or accepted from the ledger process, once
   * verified over its own root (the data directory remembers the largest: ledger-binding.ts in
   * `src/embedded/`).
   * Called synchronously; it must not throw.
   */
  readonly onCheckpoint?: (cp: StoredCheckpoint) => void;
  /**
   * Awaited after a checkpoint this writer signed and before it is stored or handed out: a
   * rejection refuses the checkpoint (`ERR_LEDGER_UNAVAILABLE`, nothing stored). The ledger
   * process records it in its binding file there, so no checkpoint leaves it unremembered.
   */
  readonly beforeCheckpointStored?: (cp: StoredCheckpoint) => Promise<void>;
}

/** Options of one {@link Ledger.append}. */
export interface AppendOptions {
  /**
   * A conditional append of an outcome record (`gateway.completed`, `gateway.failed`,
   * `request.abandoned`), or of the `envelope.issued` of a keyless Gate's request (which closes
   * nothing: an envelope is never issued for an attempt a sweep recorded abandoned): the index of
   * the `gateway.accepted` entry of the request it closes or continues. The
   * entry is appended only if that entry is an open request of the same request id and trace
   * when its batch is sealed (read under
   * the shared store's append lock, or in the staging transaction); otherwise nothing is written
   * and the append rejects with `ERR_LEDGER_REQUEST_CLOSED`. Outcomes that may race (a retried
   * outcome whose first attempt may have committed, a sweep abandoning a request its owner is
   * closing, two answers to one queued job) use it, so a request never gets two outcomes
   * (FC-INV-5, verify's `OUTCOME_DUPLICATE`).
   */
  readonly ifOpen?: number;
}

/** What {@link Ledger.append} resolves with, once the entry is durable: the envelope's `ledger` claim. */
export type AppendReceipt = EntryRef;

/**
 * The entry {@link Ledger.appendThen} seals right after another, in the same batch and commit: an
 * entry that must name the one before it (the `envelope.issued` whose envelope is signed over
 * its decision's index and hash, SPEC §2 steps 4–5), so that both land or neither does.
 */
export interface Continuation {
  /** The continued entry's type: `build` must return an entry of it. */
  readonly type: EntryType;
  /** {@link AppendOptions.ifOpen} of the continued entry (it needs the same request and trace as the first). */
  readonly ifOpen?: number;
  /**
   * Builds the continued entry from the first entry's index and hash, synchronously, when the
   * batch is sealed. It is called again each time the batch is sealed again (after another writer
   * committed first, on a shared store); only the entry of its last call is stored. Undefined,
   * or a throw: no continued entry (the first is still appended).
   */
  build(first: EntryRef): EntryInput | undefined;
}

/** What {@link Ledger.appendThen} resolves with once both entries are durable. */
export interface ContinuedReceipt {
  readonly first: AppendReceipt;
  /**
   * The continued entry's receipt; or why it was not appended: `ERR_LEDGER_REQUEST_CLOSED` (its
   * attempt was not open), the error its `build` threw, or the refusal of what it built (a
   * `TypeError`, `ERR_LEDGER_PAYLOAD_FIELD`); undefined when `build` returned undefined.
   */
  readonly next: AppendReceipt | Error | undefined;
}

/**
 * The ledger: append (group commit), evidence, confirmation lookups, checkpoints and proofs.
 * It satisfies the Execution Layer's `ExecutionLedger` (`readEnvelopeContext`, `append`) structurally;
 * `hasEntry` confirms one committed entry (tests and tools; the hot path reads the context).
 */
export interface Ledger {
  readonly origin: string;
  readonly store: LedgerStore;
  /** The checkpoint key, as a C2SP vkey and a public JWK (exported in bundles). */
  readonly ledgerKey: LedgerKey;
  /**
   * Appends one entry; resolves after its batch is durably committed. Rejects with
   * `ERR_LEDGER_PAYLOAD_FIELD` (payload not allowlisted or not strict JSON) or
   * `ERR_LEDGER_UNAVAILABLE` (not confirmed: treat as not written). (SPEC §4, OE-INV-009)
   *
   * With `writes`, over a store that stages (`LedgerStore.stageBatch`, the embedded deployment's
   * shared connection), it resolves as soon as the entry is sealed and written into the open
   * transaction, and registers the commit in `writes`: the caller must `writes.sync()` before
   * anything that depends on the entry leaves the process. Any other store resolves after the
   * commit, as without `writes`.
   */
  append(input: EntryInput, writes?: DurableWrites, options?: AppendOptions): Promise<AppendReceipt>;
  /**
   * Appends `input` as {@link append} does, and the entry `next` builds from its index and hash
   * right after it, in the same batch and the same commit: both are durable or neither is. Rejects
   * as {@link append} does when the first is not appended; the continued entry's own refusal is
   * in the receipt.
   */
  appendThen(
    input: EntryInput,
    next: Continuation,
    writes?: DurableWrites,
    options?: AppendOptions,
  ): Promise<ContinuedReceipt>;
  /**
   * Stores an evidence blob and resolves with its lower-hex SHA-256 once durable: the blob joins
   * the writer's next batch and commits in the same transaction as that batch's entries (SPEC §8
   * durable writes). Rejects with `ERR_LEDGER_UNAVAILABLE` when the batch is not confirmed, and
   * with `TypeError` for a malformed call.
   */
  putEvidence(body: Uint8Array, mediaType: string, writes?: DurableWrites): Promise<string>;
  /** The committed entry at `index` if its hash is `entryHash`, else undefined; rejects with `ERR_LEDGER_UNAVAILABLE`. */
  lookup(index: number, entryHash: string): Promise<LedgerEntry | undefined>;
  /**
   * True only when the committed entry at `ref.index` has hash `ref.entry_hash`, type
   * `expect.type`, `payload.decision_id === expect.decision_id` and tenant `expect.tenant`
   * (L7 Boundary B ledger confirmation). Rejects with `ERR_LEDGER_UNAVAILABLE` when the store fails.
   */
  hasEntry(
    ref: EntryRef,
    expect: { readonly type: EntryType; readonly decision_id: string; readonly tenant: string },
  ): Promise<boolean>;
  /**
   * The Execution Layer's reading before it consumes a nonce (L7 Boundary B): the committed entry
   * at `query.index`, the `envelope.issued` entries for `query.jti` and the `approval.finalized`
   * entries for `query.decision_id`, in one snapshot. Rejects with `ERR_LEDGER_UNAVAILABLE`.
   */
  readEnvelopeContext(query: {
    readonly index: number;
    readonly jti: string;
    readonly decision_id: string;
  }): Promise<EnvelopeContext>;
  /** Number of committed entries. */
  size(): number;
  /**
   * Reads the entries other writers committed to a shared store since, verifies that they
   * continue the confirmed chain and applies them (serialized with commits), then signs a
   * checkpoint when the cadence says so; resolves with the committed size. The ledger process
   * (`serve ledger`), which appends nothing, follows the store this way. Over a store this writer
   * stages into (the embedded SQLite connection) it reads nothing: it owns that store. Rejects
   * with `ERR_LEDGER_UNAVAILABLE` when the store cannot be read or does not continue the chain.
   */
  follow(): Promise<number>;
  /**
   * Signs (or returns the existing) checkpoint at `size` (default: the committed size; at most
   * it) and stores it (SPEC §4); with a {@link CheckpointWitness} the ledger process signs it.
   */
  checkpoint(size?: number): Promise<StoredCheckpoint>;
  /** Inclusion proof (hex hashes, leaf level first) for `index` in the tree of `size` entries (default: committed size). */
  proveInclusion(index: number, size?: number): string[];
  /** Consistency proof (hex hashes) from `size1` to `size2` entries (default: committed size). */
  proveConsistency(size1: number, size2?: number): string[];
  /** Lower-hex root of the first `size` entries (default: committed size). */
  rootHash(size?: number): string;
  /** Resolves once every append queued so far has been committed or rejected. */
  settled(): Promise<void>;
  /** Waits for queued appends, then closes the store. */
  close(): Promise<void>;
}

/** A queued append: sealed with `index` and `prev_hash` when its batch is committed. */
interface PendingEntry {
  readonly kind: 'entry';
  readonly input: EntryInput;
  readonly atMs: number;
  /** {@link AppendOptions.ifOpen}. */
  readonly ifOpen: number | undefined;
  /** {@link Ledger.appendThen}: the continuation, and what became of it at the last sealing. */
  readonly next?: { readonly continuation: Continuation; outcome: AppendReceipt | Error | undefined };
  readonly resolve: (r: AppendReceipt) => void;
  readonly reject: (e: unknown) => void;
}

/** A queued evidence blob: committed in the same transaction as the entries of its batch. */
interface PendingEvidence {
  readonly kind: 'evidence';
  readonly blob: EvidenceBlob;
  readonly resolve: (sha256: string) => void;
  readonly reject: (e: unknown) => void;
}

/** How recent an entry must be for {@link Ledger.follow} to tell the observer of its trace. */
const VERIFY_TRACE_WINDOW_MS = 5 * 60_000;

/** A queued {@link Ledger.follow}: served between commits, never during one. */
interface PendingFollow {
  readonly kind: 'follow';
  readonly resolve: (size: number) => void;
  readonly reject: (e: unknown) => void;
}

type Pending = PendingEntry | PendingEvidence | PendingFollow;

const RECOVERY_PAGE = 10_000;

/**
 * On a shared store, how many entries of other writers a commit may still read under the append
 * lock; a writer further behind catches up before taking it (a few ms of reading at most).
 */
const SHARED_BEHIND_UNDER_LOCK = 64;

function unavailable(message: string, cause?: unknown): FailclosedError {
  return new FailclosedError('ERR_LEDGER_UNAVAILABLE', message, { cause });
}

function requestClosed(): FailclosedError {
  return new FailclosedError('ERR_LEDGER_REQUEST_CLOSED', 'the request already has an outcome record');
}

/** The conditions of a queued append: its own `ifOpen`, then its continuation's. */
function conditionsOf(p: PendingEntry): number[] {
  const own = p.ifOpen === undefined ? [] : [p.ifOpen];
  const next = p.next?.continuation.ifOpen;
  return next === undefined ? own : [...own, next];
}

/**
 * The open requests a batch's conditional appends name, assumed still open (`appendIfHead`
 * checks them): undefined when two name one accepted index for different requests. A continued
 * entry names the request and trace of the entry before it.
 */
function assumedOpen(appends: readonly PendingEntry[]): OpenRequest[] | undefined {
  const open = new Map<number, OpenRequest>();
  for (const p of appends) {
    const { request_id, trace_id } = p.input;
    for (const ifOpen of conditionsOf(p)) {
      if (typeof request_id !== 'string' || typeof trace_id !== 'string') return undefined;
      const known = open.get(ifOpen);
      if (known !== undefined && (known.request_id !== request_id || known.trace_id !== trace_id))
        return undefined;
      open.set(ifOpen, { accepted_index: ifOpen, request_id, trace_id });
    }
  }
  return [...open.values()];
}

/**
 * Admits the appends of a batch, in the order they are sealed: a conditional one needs the
 * attempt it names (its request and trace, accepted at its `ifOpen` index) open, given the
 * requests `open` before the batch and the outcome records sealed before it in the batch (an
 * outcome closes every open attempt of its request and trace accepted before it, as the stores'
 * open-request index does).
 */
function openTracker(
  open: readonly OpenRequest[],
): (input: EntryInput, ifOpen: number | undefined) => boolean {
  const stillOpen = new Map(open.map((o) => [o.accepted_index, o]));
  return (input, ifOpen) => {
    const { request_id, trace_id } = input;
    if (ifOpen !== undefined) {
      const o = stillOpen.get(ifOpen);
      if (o === undefined || o.request_id !== request_id || o.trace_id !== trace_id) return false;
    }
    if (settlesAttempt(input))
      for (const [i, o] of stillOpen)
        if (o.request_id === request_id && o.trace_id === trace_id) stillOpen.delete(i);
    return true;
  };
}

/**
 * The entry `continuation` builds after the sealed `first` (appended from `firstInput`),
 * checked: strict, of its declared type, of the same request and trace. Throws what refuses it.
 */
function continuedInput(
  firstInput: EntryInput,
  continuation: Continuation,
  first: EntryRef,
): EntryInput | undefined {
  const built = continuation.build({ index: first.index, entry_hash: first.entry_hash });
  if (built === undefined) return undefined;
  const checked = parseEntryInput(built);
  if (checked.type !== continuation.type)
    throw new TypeError('the continuation built an entry of another type');
  if (checked.request_id !== firstInput.request_id || checked.trace_id !== firstInput.trace_id)
    throw new TypeError('a continued entry belongs to the request and trace of the entry before it');
  return checked;
}

/** Checks an append's `ifOpen` for an entry of `type` (conditional: outcomes and issuances only). */
function checkIfOpen(type: EntryType, ifOpen: number | undefined): void {
  if (ifOpen === undefined) return;
  if (!Number.isSafeInteger(ifOpen) || ifOpen < 0)
    throw new TypeError('ifOpen must be the index of a gateway.accepted entry');
  if (!REQUEST_OUTCOME_TYPES.has(type) && type !== 'envelope.issued')
    throw new TypeError('only an outcome record or an envelope.issued is appended conditionally');
}

/**
 * Checks that `page`, read for [start, end), holds every index of that range in order and
 * continues the hash chain from `prevHash` (rows already passed parseStoredEntry: their own
 * hash); returns the hash of its last entry.
 */
function verifyPage(page: readonly LedgerEntry[], start: number, end: number, prevHash: string): string {
  if (page.length !== end - start) throw unavailable(`ledger has a gap in [${start}, ${end})`);
  let prev = prevHash;
  for (const [i, e] of page.entries()) {
    if (e.index !== start + i || !hexDigestEquals(e.prev_hash, prev))
      throw unavailable(`ledger chain is broken at entry ${start + i}`);
    prev = e.entry_hash;
  }
  return prev;
}

/**
 * Opens the ledger over `store`: restores the Merkle tree from the snapshot stored at the last
 * checkpoint (verified against that signed checkpoint, see `open.ts`), then reads the entries
 * after it, verifies their hash chain and appends them: O(entries since the last checkpoint).
 * Without a usable snapshot it reads and re-hashes every entry. Refuses a broken or rolled-back
 * ledger (rejects with `ERR_LEDGER_UNAVAILABLE`: fail closed, L7 ledger protection). The latest
 * stored checkpoint must match the rebuilt root.
 */
export async function createLedger(opts: LedgerOptions): Promise<Ledger> {
  const { store, clock } = opts;
  const maxBatch = Math.max(1, opts.maxBatch ?? 1024);
  const observer = opts.observer;
  let tree: MerkleTree = createMerkleTree();
  let size = 0;
  let lastHash = GENESIS_PREV_HASH;
  const ledgerKey = ledgerKeyFor(opts.checkpointSigner);
  let restoredSize = 0;

  /**
   * Reads the entries [size, to), verifies that they continue the confirmed chain and applies
   * them to the tree, `size` and `lastHash` together, page by page: a failure leaves the three
   * consistent at a verified page boundary. Runs only while opening or inside a commit, so it
   * is serialized with commits (SPEC §4, L7 ledger protection).
   */
  async function catchUp(to: number, traced = false): Promise<void> {
    while (size < to) {
      const start = size;
      const end = Math.min(to, start + RECOVERY_PAGE);
      const t0 = traced ? performance.now() : 0;
      const page = await store.readRange(start, end);
      const last = verifyPage(page, start, end, lastHash);
      for (const e of page) tree.append(entryLeafHash(e.entry_hash));
      size = end;
      lastHash = last;
      if (traced && observer !== undefined) {
        const t1 = performance.now();
        // Only calls of the last few minutes: catching up after an outage adds no span or sample
        // for each old call (whose trace has long ended), so it costs no telemetry work per entry.
        const since = clock() - VERIFY_TRACE_WINDOW_MS;
        try {
          const traces = new Set<string>();
          for (const e of page) if (e.trace_id !== '' && Date.parse(e.at) >= since) traces.add(e.trace_id);
          for (const traceId of traces) observer.stage('ledger_verify', traceId, t0, t1);
        } catch {
          // Telemetry never fails a follow: the page is verified, and signing must not wait on it.
        }
      }
    }
  }

  /** Catches up to the store's head; rejects when the store holds fewer entries than confirmed. */
  async function catchUpToHead(): Promise<void> {
    const head = await store.head();
    if (head.size < size) throw unavailable('ledger store lost committed entries');
    if (head.size > size) await catchUp(head.size);
    else if (head.last !== undefined && !hexDigestEquals(head.last.entry_hash, lastHash))
      throw unavailable('ledger store head differs from the confirmed head');
  }

  try {
    // The snapshot BEFORE the head: other replicas write snapshots only of committed entries, so
    // an intact store's head read after it is at least its size (restoreTree refuses otherwise).
    const snapshot = opts.rehash === true ? undefined : await store.treeSnapshot?.();
    const head = await store.head();
    // From the snapshot verified against its signed checkpoint when there is one, else from genesis.
    const restored = await restoreTree(store, snapshot, head.size, {
      vkey: ledgerKey.vkey,
      origin: opts.origin,
    });
    if (restored !== undefined) {
      tree = restored.tree;
      size = restored.size;
      lastHash = restored.lastHash;
      restoredSize = restored.size;
    }
    await catchUp(head.size);
  } catch (err) {
    throw err instanceof FailclosedError ? err : unavailable('ledger store cannot be read', err);
  }
  // Merkle levels persisted at each checkpoint, serially, so the next open need not re-hash.
  let snapshotSize = restoredSize;
  let snapshots: Promise<void> = Promise.resolve();
  const persistTree = (cpSize: number): Promise<void> => {
    if (store.putTreeSnapshot === undefined) return Promise.resolve();
    snapshots = snapshots.then(async () => {
      if (cpSize <= snapshotSize) return;
      try {
        await store.putTreeSnapshot?.(snapshotChunks(tree, snapshotSize, cpSize));
        snapshotSize = cpSize;
      } catch {
        // Best effort: the next open re-hashes what the snapshot does not cover.
      }
    });
    return snapshots;
  };
  const checkpointer: Checkpointer = await createCheckpointer({
    store,
    clock,
    tree,
    signer: opts.checkpointSigner,
    origin: opts.origin,
    every: opts.checkpointEvery,
    afterStore: (cp) => persistTree(cp.size),
    ...(opts.onCheckpoint === undefined ? {} : { onCheckpoint: opts.onCheckpoint }),
    ...(opts.beforeCheckpointStored === undefined ? {} : { beforeStore: opts.beforeCheckpointStored }),
    // A checkpoint another replica stored after this open read its head: read up to it first.
    catchUp: async () => {
      try {
        await catchUpToHead();
      } catch (err) {
        throw err instanceof FailclosedError ? err : unavailable('ledger store cannot be read', err);
      }
    },
  });

  /**
   * Pipelined writes (a store that stages, `stageBatch`): each append is sealed at once after the
   * last entry written (`tailSize`/`tailHash`, ahead of the committed `size`/`lastHash` while its
   * commit is under way) and written into the shared connection's open transaction; the
   * committed head advances, in order, as commits succeed. A failed commit rolls back every entry
   * of its transaction and the tail returns to the committed head; the store refuses indices that
   * do not continue what it holds, so nothing can chain from a rolled-back entry.
   */
  const stage = store.appendShared === undefined ? store.stageBatch?.bind(store) : undefined;
  let tailSize = size;
  let tailHash = lastHash;
  let lastStaged: Promise<void> = Promise.resolve();
  let checkpoints: Promise<void> = Promise.resolve();
  function stageNow(
    inputs: readonly { input: EntryInput; atMs: number }[],
    blobs: readonly EvidenceBlob[],
    ifOpen?: number,
  ) {
    if (stage === undefined) throw new Error('the store does not stage');
    const entries: LedgerEntry[] = [];
    let prev = tailHash;
    for (const [i, p] of inputs.entries()) {
      const e = sealEntry(p.input, tailSize + i, prev, p.atMs);
      entries.push(e);
      prev = e.entry_hash;
    }
    let written: Promise<void>;
    try {
      written = stage(entries, blobs, ifOpen).durable;
    } catch (err) {
      // Checked in the staging transaction: nothing was written, the tail stays where it was.
      if (err instanceof FailclosedError && err.code === 'ERR_LEDGER_REQUEST_CLOSED') throw err;
      throw unavailable('ledger write not confirmed', err);
    }
    tailSize += entries.length;
    tailHash = prev;
    const durable = written.then(
      () => {
        if (entries.length === 0) return;
        for (const e of entries) tree.append(entryLeafHash(e.entry_hash));
        size += entries.length;
        lastHash = prev;
        const at = size;
        checkpoints = checkpoints.then(() => checkpointer.afterCommit(at));
      },
      (err: unknown) => {
        tailSize = size;
        tailHash = lastHash;
        // An ambiguous failure may have left more in the store than memory knows: re-read it
        // before the next entry is sealed.
        stagedResync = true;
        throw unavailable('ledger write not confirmed', err);
      },
    );
    lastStaged = durable.catch(() => undefined);
    return { entries, durable };
  }
  let stagedResync = false;
  let resyncing: Promise<void> | undefined;
  /** Runs `fn` once the committed head is known again after a failed commit (at once otherwise). */
  function afterResync<T>(fn: () => Promise<T>): Promise<T> {
    if (!stagedResync) return fn();
    resyncing ??= (async () => {
      try {
        await lastStaged;
        await catchUpToHead();
        tailSize = size;
        tailHash = lastHash;
        stagedResync = false;
      } catch (err) {
        throw err instanceof FailclosedError ? err : unavailable('ledger store cannot be read', err);
      } finally {
        resyncing = undefined;
      }
    })();
    return resyncing.then(fn);
  }

  const queue: Pending[] = [];
  let flushing = false;
  let needsResync = false;
  /**
   * Shared store: how many commits in a row found no entry of another writer before them, and how
   * many such commits the next one-round-trip try (`appendIfHead`) waits for: 1 while tries land,
   * doubled (up to 64) by each refused one, so that with other writers active the tries, mostly
   * refused, do not cost a round trip more per batch.
   */
  let aloneStreak = 0;
  let aloneNeeded = 1;
  let idle: Promise<void> = Promise.resolve();

  /** After a failed commit the store may hold more than memory knows (an ambiguous commit): re-read it. */
  async function resync(): Promise<void> {
    await catchUpToHead();
    needsResync = false;
  }

  async function commitOne(batch: Pending[]): Promise<void> {
    const appends = batch.filter((p): p is PendingEntry => p.kind === 'entry');
    const blobs = batch.flatMap((p) => (p.kind === 'evidence' ? [p.blob] : []));
    const conditional = appends.flatMap(conditionsOf);
    /** The appends that continue with a second entry (`appendThen`). */
    const continued = appends.filter((p) => p.next !== undefined).length;
    if (appends.length + blobs.length === 0) {
      // Only follows: read what the other writers committed, verified, then the cadence. The tip
      // is one indexed read (head() counts every entry); fewer entries than verified, a gap or a
      // page that does not continue the chain all reject.
      try {
        const tip = (await store.tipSize?.()) ?? (await store.head()).size;
        if (tip < size) throw unavailable('ledger store lost committed entries');
        if (tip > size) await catchUp(tip, true);
      } catch (err) {
        const e = err instanceof FailclosedError ? err : unavailable('ledger store cannot be read', err);
        for (const p of batch) p.reject(e);
        return;
      }
      // The cadence before the answer: following and signing is the ledger process's whole job.
      await checkpointer.afterCommit(size);
      for (const p of batch) if (p.kind === 'follow') p.resolve(size);
      return;
    }
    let entries: LedgerEntry[] = [];
    let others: readonly LedgerEntry[] = [];
    /** The appends whose entry was sealed into `entries`, in order, and that entry; the others were refused (request closed). */
    let kept: readonly PendingEntry[] = appends;
    let keptEntries: readonly LedgerEntry[] = [];
    /** Whether the last sealing refused a conditional entry (a first one or a continued one). */
    let refused = false;
    /**
     * Seals the batch to follow `after` (verified to continue the confirmed head), leaving out
     * each conditional append whose request is not among `open` (read in the same transaction),
     * each continued entry right after the one it continues.
     */
    const seal = (after: readonly LedgerEntry[], open: readonly OpenRequest[]): LedgerEntry[] => {
      let prev = lastHash;
      for (const [i, e] of after.entries()) {
        if (e.index !== size + i || !hexDigestEquals(e.prev_hash, prev))
          throw unavailable(`ledger chain is broken at entry ${size + i}`);
        prev = e.entry_hash;
      }
      const admit = conditional.length === 0 ? undefined : openTracker(open);
      const sealed: LedgerEntry[] = [];
      const keptNow: PendingEntry[] = [];
      const firsts: LedgerEntry[] = [];
      refused = false;
      const push = (input: EntryInput, atMs: number): LedgerEntry => {
        const e = sealEntry(input, size + after.length + sealed.length, prev, atMs);
        sealed.push(e);
        prev = e.entry_hash;
        return e;
      };
      for (const p of appends) {
        if (admit !== undefined && !admit(p.input, p.ifOpen)) {
          refused = true;
          continue;
        }
        const first = push(p.input, p.atMs);
        keptNow.push(p);
        firsts.push(first);
        if (p.next === undefined) continue;
        let input: EntryInput | undefined;
        try {
          input = continuedInput(p.input, p.next.continuation, first);
        } catch (err) {
          p.next.outcome = err instanceof Error ? err : new TypeError('the continuation failed');
          continue;
        }
        if (input === undefined) p.next.outcome = undefined;
        else if (admit !== undefined && !admit(input, p.next.continuation.ifOpen)) {
          refused = true;
          p.next.outcome = requestClosed();
        } else {
          const e = push(input, clock());
          p.next.outcome = { index: e.index, entry_hash: e.entry_hash };
        }
      }
      kept = keptNow;
      keptEntries = firsts;
      return sealed;
    };
    const t0 = observer === undefined ? 0 : performance.now();
    try {
      if (needsResync) await resync();
      if (store.appendShared === undefined) {
        // One writer owns the store: what it reads now is what the batch follows.
        let open: readonly OpenRequest[] = [];
        if (conditional.length > 0) {
          if (store.openAmong === undefined) throw new Error('the store cannot tell open requests');
          open = await store.openAmong(conditional);
        }
        entries = seal([], open);
        // Entries and evidence of the batch: one transaction, one durable commit.
        await store.appendBatch(entries, blobs);
      } else {
        // While no other writer appended since this one's last commit, one round trip: the batch
        // sealed after this writer's own head, stored only if that is still the stored head and
        // every request it is conditional on is still open; else nothing is stored and the batch
        // is sealed again below, after what the others committed.
        let stored = false;
        /** Whether another writer's entries were seen before this commit (read before the lock or under it). */
        let sawOthers = false;
        if (aloneStreak >= aloneNeeded && store.appendIfHead !== undefined && appends.length > 0) {
          const assumed = assumedOpen(appends);
          if (assumed !== undefined) {
            entries = seal([], assumed);
            if (!refused) {
              stored = await store.appendIfHead(entries, blobs, assumed);
              aloneNeeded = stored ? 1 : Math.min(aloneNeeded * 2, 64);
              if (!stored) aloneStreak = 0;
            }
          }
        }
        if (!stored) {
          // Far behind the other writers (idle while they appended): read and verify their
          // entries BEFORE taking the append lock, which every writer waits for, so that under it
          // only what they commit meanwhile is read. The tip is one indexed read, not head()'s count.
          const tip = (await store.tipSize?.()) ?? size;
          if (tip < size) throw unavailable('ledger store lost committed entries');
          sawOthers = tip > size;
          if (tip - size > SHARED_BEHIND_UNDER_LOCK) await catchUp(tip);
          // Writers share the store: under its append lock, continue after what the others committed.
          others = await store.appendShared(
            size,
            (committed, open) => {
              entries = seal(committed, open);
              return entries;
            },
            blobs,
            conditional,
          );
        }
        aloneStreak = others.length === 0 && !sawOthers ? aloneStreak + 1 : 0;
      }
    } catch (err) {
      needsResync = true;
      aloneStreak = 0;
      observer?.ledgerBatch(appends.length + continued + blobs.length, (performance.now() - t0) / 1000, true);
      const e = unavailable('ledger write not confirmed', err);
      for (const p of batch) p.reject(e);
      return;
    }
    observer?.ledgerBatch(entries.length + blobs.length, (performance.now() - t0) / 1000, false);
    // Confirmed: only now does the in-memory head advance and do callers hear success.
    for (const e of others) tree.append(entryLeafHash(e.entry_hash));
    size += others.length;
    lastHash = others[others.length - 1]?.entry_hash ?? lastHash;
    for (const e of entries) tree.append(entryLeafHash(e.entry_hash));
    size += entries.length;
    lastHash = entries[entries.length - 1]?.entry_hash ?? lastHash;
    for (const [i, p] of kept.entries()) {
      const e = keptEntries[i] as LedgerEntry;
      p.resolve({ index: e.index, entry_hash: e.entry_hash });
    }
    if (kept.length !== appends.length) {
      const sealed = new Set(kept);
      for (const p of appends) if (!sealed.has(p)) p.reject(requestClosed());
    }
    for (const p of batch) {
      if (p.kind === 'evidence') p.resolve(p.blob.sha256);
      else if (p.kind === 'follow') p.resolve(size);
    }
    if (entries.length + others.length > 0) await checkpointer.afterCommit(size);
  }

  async function flush(): Promise<void> {
    while (queue.length > 0) await commitOne(queue.splice(0, maxBatch));
    flushing = false;
  }

  function schedule(): void {
    if (flushing) return;
    flushing = true;
    // setImmediate lets every caller resumed by the previous commit enqueue first: that is the group.
    idle = new Promise<void>((resolve) => setImmediate(resolve)).then(flush);
  }

  /**
   * {@link Ledger.append} and {@link Ledger.appendThen}: the entry checked, then staged into the
   * open transaction or queued for the next batch; with a continuation, the entry it builds is
   * sealed right after it.
   */
  function appendEntry(
    input: EntryInput,
    continuation: Continuation | undefined,
    writes: DurableWrites | undefined,
    ifOpen: number | undefined,
  ): Promise<ContinuedReceipt> {
    let checked: EntryInput;
    try {
      checked = parseEntryInput(input);
      checkIfOpen(checked.type, ifOpen);
      if (continuation !== undefined) {
        checkIfOpen(continuation.type, continuation.ifOpen);
        if (typeof continuation.build !== 'function') throw new TypeError('a continuation builds its entry');
      }
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TypeError('invalid entry input'));
    }
    const atMs = clock();
    if (stage !== undefined)
      return afterResync(() => {
        let staged: ReturnType<typeof stageNow>;
        try {
          staged = stageNow([{ input: checked, atMs }], [], ifOpen);
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : unavailable('ledger write not confirmed'));
        }
        const e = staged.entries[0] as LedgerEntry;
        const first: AppendReceipt = { index: e.index, entry_hash: e.entry_hash };
        let next: AppendReceipt | Error | undefined;
        let durable = staged.durable;
        // Staged right after the first, into the same open transaction: one commit holds both.
        if (continuation !== undefined)
          try {
            const built = continuedInput(checked, continuation, first);
            if (built !== undefined) {
              const more = stageNow([{ input: built, atMs: clock() }], [], continuation.ifOpen);
              const n = more.entries[0] as LedgerEntry;
              next = { index: n.index, entry_hash: n.entry_hash };
              durable = Promise.all([durable, more.durable]).then(() => undefined);
            }
          } catch (err) {
            next = err instanceof Error ? err : new TypeError('the continuation failed');
          }
        const receipt: ContinuedReceipt = { first, next };
        if (writes === undefined) return durable.then(() => receipt);
        writes.add(durable);
        return Promise.resolve(receipt);
      });
    return new Promise<ContinuedReceipt>((resolve, reject) => {
      const next =
        continuation === undefined
          ? undefined
          : { continuation, outcome: undefined as AppendReceipt | Error | undefined };
      queue.push({
        kind: 'entry',
        input: checked,
        atMs,
        ifOpen,
        ...(next === undefined ? {} : { next }),
        resolve: (first) => resolve({ first, next: next?.outcome }),
        reject,
      });
      schedule();
    });
  }

  const ledger: Ledger = {
    origin: opts.origin,
    store,
    ledgerKey: checkpointer.ledgerKey,
    append: (input, writes, options) =>
      appendEntry(input, undefined, writes, options?.ifOpen).then((r) => r.first),
    appendThen: (input, continuation, writes, options) =>
      appendEntry(input, continuation, writes, options?.ifOpen),
    putEvidence(body, mediaType, writes) {
      if (!(body instanceof Uint8Array)) return Promise.reject(new TypeError('evidence body must be bytes'));
      if (typeof mediaType !== 'string' || mediaType.length === 0 || mediaType.length > 128)
        return Promise.reject(new TypeError('media type must be a short string'));
      // A private copy: the caller's buffer may change before the batch commits.
      const bytes = Buffer.from(body);
      const blob: EvidenceBlob = { sha256: sha256Hex(bytes), media_type: mediaType, body: bytes };
      if (stage !== undefined)
        return afterResync(() => {
          let staged: ReturnType<typeof stageNow>;
          try {
            staged = stageNow([], [blob]);
          } catch (err) {
            return Promise.reject(err instanceof Error ? err : unavailable('ledger write not confirmed'));
          }
          if (writes === undefined) return staged.durable.then(() => blob.sha256);
          writes.add(staged.durable);
          return Promise.resolve(blob.sha256);
        });
      // Joins the writer's next batch: durable, in the same transaction as its entries, before it resolves.
      return new Promise<string>((resolve, reject) => {
        queue.push({ kind: 'evidence', blob, resolve, reject });
        schedule();
      });
    },
    async lookup(index, entryHash) {
      if (!Number.isSafeInteger(index) || index < 0 || typeof entryHash !== 'string') return undefined;
      let e: LedgerEntry | undefined;
      try {
        e = await store.entry(index);
      } catch (err) {
        throw unavailable('ledger lookup failed', err);
      }
      return e !== undefined && hexDigestEquals(e.entry_hash, entryHash) ? e : undefined;
    },
    async hasEntry(ref, expect) {
      const e = await ledger.lookup(ref.index, ref.entry_hash);
      if (e === undefined) return false;
      const decisionId: JsonValue | undefined = e.payload['decision_id'];
      return (
        e.type === expect.type &&
        e.tenant === expect.tenant &&
        typeof decisionId === 'string' &&
        decisionId === expect.decision_id
      );
    },
    async readEnvelopeContext(query) {
      if (!Number.isSafeInteger(query.index) || query.index < 0)
        return { decision: undefined, issued: [], finalized: [] };
      try {
        return await store.readEnvelopeContext(query);
      } catch (err) {
        throw unavailable('ledger lookup failed', err);
      }
    },
    size: () => size,
    follow() {
      // This writer owns a store it stages into: nothing to read there.
      if (stage !== undefined) return Promise.resolve(size);
      return new Promise<number>((resolve, reject) => {
        queue.push({ kind: 'follow', resolve, reject });
        schedule();
      });
    },
    checkpoint(at = size) {
      if (!Number.isSafeInteger(at) || at < 0 || at > size)
        return Promise.reject(
          new RangeError(`no checkpoint at size ${String(at)}: the ledger holds ${size}`),
        );
      return checkpointer.checkpoint(at);
    },
    proveInclusion: (index, at = size) => tree.inclusionProof(index, at).map((h) => h.toString('hex')),
    proveConsistency: (size1, size2 = size) =>
      tree.consistencyProof(size1, size2).map((h) => h.toString('hex')),
    rootHash: (at = size) => tree.root(at).toString('hex'),
    async settled() {
      while (flushing) await idle;
      await lastStaged;
    },
    async close() {
      await idle;
      await lastStaged;
      await checkpoints;
      await snapshots;
      await store.close();
    },
  };
  return ledger;
}
