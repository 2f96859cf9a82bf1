/**
 * Signed checkpoints in the C2SP `tlog-checkpoint` signed-note format (SPEC §4, L7 ledger
 * protection): origin line, decimal tree size, base64 root, then an Ed25519 note signature.
 * Signed on a cadence (entries / elapsed time, checked on commit) and on demand; every
 * checkpoint is stored.
 */
import { createPublicKey } from 'node:crypto';
import {
  FailclosedError,
  formatCheckpoint,
  hexDigestEquals,
  noteVerifierFromVkey,
  publicKeyFromKeyObject,
  publicKeyFromRaw,
  verifyCheckpoint,
  vkeyFor,
  type Clock,
  type Ed25519PublicJwk,
  type MerkleTree,
} from '../kernel/index.js';
import { signNote, type NoteSigner } from '../kernel/signing/index.js';
import type { LedgerStore, StoredCheckpoint } from './store.js';

/**
 * The checkpoint signer: a kernel `NoteSigner` (`noteSignerFor(name, privateKey)`); its name is
 * conventionally the ledger origin.
 */
export type CheckpointSigner = NoteSigner;

/** The ledger's public checkpoint key, as exported in audit bundles. */
export interface LedgerKey {
  /** C2SP signed-note verifier key: `name+keyid+base64(0x01||pubkey)`. */
  readonly vkey: string;
  /** The same key as a public JWK (RFC 8037), `kid` the RFC 7638 thumbprint. */
  readonly jwk: Ed25519PublicJwk;
}

/**
 * Checkpoints signed elsewhere: by the ledger process (`failclosed serve ledger`), the only
 * holder of the checkpoint key, which reads the shared store, verifies the hash chain itself and
 * signs (docs/deployment.md "The ledger process"). A writer given one holds only the public key.
 */
export interface CheckpointWitness {
  /** The ledger's public checkpoint key, pinned in the writer's configuration. */
  readonly ledgerKey: LedgerKey;
  /**
   * Asks for the checkpoint at exactly `size` entries, signed and stored; rejects when it cannot
   * be had. Its answer is untrusted: the checkpointer verifies it against `ledgerKey` and its own tree.
   */
  sign(size: number): Promise<StoredCheckpoint>;
}

/** Internal: the writer's checkpoint scheduler. */
export interface Checkpointer {
  readonly ledgerKey: LedgerKey;
  /** Signs and stores a checkpoint when the cadence says so; never throws (entries are already durable). */
  afterCommit(size: number): Promise<void>;
  /** Signs and stores a checkpoint at `size` (or returns the stored one at that size). */
  checkpoint(size: number): Promise<StoredCheckpoint>;
}

interface CheckpointerOptions {
  readonly store: LedgerStore;
  readonly clock: Clock;
  readonly tree: MerkleTree;
  /** Signs here; or {@link CheckpointWitness}: asks the ledger process, and signs nothing here. */
  readonly signer: CheckpointSigner | CheckpointWitness;
  readonly origin: string;
  readonly every: { readonly entries?: number; readonly ms?: number } | undefined;
  /** Runs after each new checkpoint is stored (the writer persists its tree snapshot); never fails it. */
  readonly afterStore?: (cp: StoredCheckpoint) => Promise<void>;
  /** `LedgerOptions.onCheckpoint` (writer.ts). */
  readonly onCheckpoint?: (cp: StoredCheckpoint) => void;
  /** `LedgerOptions.beforeCheckpointStored` (writer.ts): a rejection refuses the checkpoint. */
  readonly beforeStore?: (cp: StoredCheckpoint) => Promise<void>;
  /**
   * Reads and verifies the entries up to the store's head into `tree` (as the open does);
   * rejects with `ERR_LEDGER_UNAVAILABLE` when they do not continue it or the store lost some.
   */
  readonly catchUp?: () => Promise<void>;
}

/** The ledger's public checkpoint key for `signer`. */
export function ledgerKeyOf(signer: CheckpointSigner): LedgerKey {
  const publicKey = createPublicKey(signer.privateKey);
  return Object.freeze({
    vkey: vkeyFor(signer.name, publicKey),
    jwk: publicKeyFromKeyObject(publicKey).jwk,
  });
}

/** The public checkpoint key named by a C2SP vkey; throws `ERR_KEY_INVALID` for a malformed one. */
export function ledgerKeyFromVkey(vkey: string): LedgerKey {
  const verifier = noteVerifierFromVkey(vkey);
  const raw = Buffer.from(vkey.slice(vkey.indexOf('+', vkey.indexOf('+') + 1) + 1), 'base64').subarray(1);
  const key = publicKeyFromRaw(raw);
  // The same name, key id and key, spelled back: the vkey names exactly this key.
  if (vkeyFor(verifier.name, key.keyObject) !== vkey)
    throw new FailclosedError('ERR_KEY_INVALID', 'the vkey is not canonical');
  return Object.freeze({ vkey, jwk: key.jwk });
}

const isWitness = (s: CheckpointSigner | CheckpointWitness): s is CheckpointWitness => 'sign' in s;

/** The public checkpoint key of a signer, or the one a witness pins. */
export function ledgerKeyFor(s: CheckpointSigner | CheckpointWitness): LedgerKey {
  return isWitness(s) ? s.ledgerKey : ledgerKeyOf(s);
}

const ORIGIN = /^[\x21-\x7e]{1,255}$/;

/**
 * Creates the checkpointer and checks the latest stored checkpoint against the rebuilt tree
 * (SPEC §4, L7 ledger protection). On a shared store another replica may have stored a
 * checkpoint beyond the entries this open read: the tree first catches up to the store's head,
 * read after that checkpoint, so an intact store always covers it and one catch-up suffices.
 * A checkpoint still beyond the verified entries (rollback) or over another root (rewrite) refuses.
 */
export async function createCheckpointer(o: CheckpointerOptions): Promise<Checkpointer> {
  if (!ORIGIN.test(o.origin)) throw new TypeError('origin must be printable ASCII without spaces');
  const witness = isWitness(o.signer) ? o.signer : undefined;
  const ledgerKey = ledgerKeyFor(o.signer);
  const verifier = noteVerifierFromVkey(ledgerKey.vkey);
  let latest: StoredCheckpoint | undefined;
  try {
    latest = await o.store.latestCheckpoint();
  } catch (err) {
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'checkpoints cannot be read', { cause: err });
  }
  if (latest !== undefined && latest.size > o.tree.size && o.catchUp !== undefined) await o.catchUp();
  if (latest !== undefined) {
    // A checkpoint beyond the entries, or over a different root, means rollback or rewrite: refuse.
    if (latest.size > o.tree.size || o.tree.root(latest.size).toString('hex') !== latest.root_hash)
      throw new FailclosedError(
        'ERR_LEDGER_UNAVAILABLE',
        `ledger does not match its checkpoint at size ${latest.size}`,
      );
    // Handed out as is when asked for its size: its note must be this ledger's, under its key.
    const v = verifyCheckpoint(latest.note, [verifier], { origin: o.origin });
    if (
      v.outcome !== 'verified' ||
      v.checkpoint.size !== latest.size ||
      !v.checkpoint.rootHash.equals(o.tree.root(latest.size))
    )
      throw new FailclosedError(
        'ERR_LEDGER_UNAVAILABLE',
        `the stored checkpoint at size ${latest.size} is not signed by this ledger's key`,
      );
  }
  // Verified: told as a checkpoint of this ledger (the data directory remembers the largest).
  if (latest !== undefined) o.onCheckpoint?.(latest);
  let lastSize = latest?.size ?? 0;
  let lastAt = o.clock();
  const everyEntries = o.every?.entries;
  const everyMs = o.every?.ms;

  /**
   * The witness's checkpoint at `size`, accepted only when it verifies under the pinned key, names
   * this ledger's origin and `size`, and its root is this writer's own root at `size`: a ledger
   * process that read other entries (a rewritten store) signs a checkpoint this writer refuses.
   */
  async function witnessed(w: CheckpointWitness, size: number): Promise<StoredCheckpoint> {
    let cp: StoredCheckpoint;
    try {
      cp = await w.sign(size);
    } catch (err) {
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger process signed no checkpoint', {
        cause: err,
      });
    }
    if (!isOurs(cp, size))
      throw new FailclosedError(
        'ERR_LEDGER_UNAVAILABLE',
        `the ledger process's checkpoint at size ${size} is not this ledger's`,
      );
    return Object.freeze({
      size,
      root_hash: o.tree.root(size).toString('hex'),
      note: cp.note,
      at: String(cp.at),
    });
  }

  /** `cp` is a checkpoint at `size` signed under the pinned key and origin over this writer's own root. */
  function isOurs(cp: StoredCheckpoint, size: number): boolean {
    const root = o.tree.root(size);
    const v = verifyCheckpoint(cp.note, [verifier], { origin: o.origin });
    return (
      v.outcome === 'verified' &&
      v.checkpoint.size === size &&
      v.checkpoint.rootHash.equals(root) &&
      cp.size === size &&
      typeof cp.root_hash === 'string' &&
      hexDigestEquals(cp.root_hash, root.toString('hex'))
    );
  }

  async function checkpoint(size: number): Promise<StoredCheckpoint> {
    if (latest !== undefined && latest.size === size) return latest;
    if (witness !== undefined) {
      const cp = await witnessed(witness, size);
      if (latest === undefined || size > latest.size) latest = cp;
      o.onCheckpoint?.(cp);
      return cp;
    }
    const root = o.tree.root(size);
    const note = signNote(
      formatCheckpoint({ origin: o.origin, size, rootHash: root }),
      o.signer as CheckpointSigner,
    );
    const cp: StoredCheckpoint = Object.freeze({
      size,
      root_hash: root.toString('hex'),
      note,
      at: new Date(o.clock()).toISOString(),
    });
    if (o.beforeStore !== undefined)
      try {
        await o.beforeStore(cp);
      } catch (err) {
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the checkpoint could not be recorded', {
          cause: err,
        });
      }
    try {
      await o.store.putCheckpoint(cp);
    } catch (err) {
      throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'checkpoint write not confirmed', { cause: err });
    }
    if (latest === undefined || size > latest.size) latest = cp;
    lastSize = Math.max(lastSize, size);
    lastAt = o.clock();
    o.onCheckpoint?.(cp);
    await o.afterStore?.(cp);
    return cp;
  }

  let polledAt = o.clock();
  let polling = false;
  /**
   * Checkpoints others stored: with a witness, the ledger process's (it signs on its own cadence);
   * without, another replica's on one key (another ledger process, or a replica on a shared
   * store). At most once per cadence period (`afterCommit`), the store's latest is read and, once
   * it verifies under the key over this writer's own root at its size, told as a checkpoint of
   * this ledger (the binding file remembers the largest). In the background: appends and follows
   * never wait for it, and a failure only leaves the previous one remembered.
   */
  const rememberStored = async (): Promise<void> => {
    const cp = await o.store.latestCheckpoint();
    if (cp === undefined || cp.size > o.tree.size || (latest !== undefined && cp.size <= latest.size)) return;
    if (!isOurs(cp, cp.size)) return;
    latest = cp;
    o.onCheckpoint?.(cp);
  };
  const pollStored = (): void => {
    if (o.onCheckpoint === undefined || everyMs === undefined || polling) return;
    if (o.clock() - polledAt < everyMs) return;
    polledAt = o.clock();
    polling = true;
    void rememberStored()
      .catch(() => undefined)
      .finally(() => {
        polling = false;
      });
  };

  return {
    ledgerKey,
    checkpoint,
    async afterCommit(size) {
      pollStored();
      // The ledger process keeps the cadence itself, following the store (serve ledger).
      if (witness !== undefined) return;
      if (size <= lastSize) return;
      const dueByCount = everyEntries !== undefined && size - lastSize >= everyEntries;
      const dueByTime = everyMs !== undefined && o.clock() - lastAt >= everyMs;
      if (!dueByCount && !dueByTime) return;
      try {
        await checkpoint(size);
      } catch {
        // The entries are durable; the next commit retries the checkpoint.
      }
    },
  };
}
