/**
 * What the checks share: the entries of one segment (a run of entries, a group of requests, or
 * none for whole-bundle checks; see `CheckUnit`) parsed into typed values (or the reason they are
 * malformed), the checkpoint keys (pinned or the bundle's own), the pinned trust file, the verified checkpoint, state
 * carried across segments, the Merkle summary of every entry, and memoized entry hashes. The
 * key, checkpoint and carried state are built once per verification; checks stay small and
 * independent.
 */
import {
  noteVerifierFromVkey,
  rootOf,
  parsePublicJwk,
  verifyCheckpoint,
  type Checkpoint,
  type JsonObject,
  type JsonValue,
  type NoteVerifier,
} from '../kernel/index.js';
import type { Bundle } from './bundle.js';
import { computeEntryHash, entryLeaf, isEntryType, type BundleEntry } from './entry-format.js';
import { parseTrustRoots, type TrustRoots } from './trust-roots.js';
import type { CheckUnit, Finding, VerifyOptions } from './types.js';

/** One element of `entries`: parsed, or why not. */
export interface EntryView {
  readonly position: number;
  readonly entry?: BundleEntry;
  readonly problem?: string;
}

/** Every entry of the bundle summarised for the Merkle checks (RFC 9162 §2.1.1). */
export interface MerkleSummary {
  /** Entries in the bundle. */
  readonly count: number;
  /** Root over every entry's leaf (the claimed entry_hash), in bundle order. */
  readonly root: Buffer;
  /** Root over the first `size` leaves, when it was asked for before the entries were read. */
  prefixRoot(size: number): Buffer | undefined;
}

/** Facts computed once per verification and shared by every segment. */
export interface SharedFacts {
  readonly key: VerifyContext['key'];
  /** The pinned trust file (`--trust`), when given. */
  readonly roots?: TrustRoots;
  readonly checkpoint: VerifyContext['checkpoint'];
  readonly complete: boolean;
  /** Per-check state carried across segments (keyed by the check's own names). */
  readonly carried: Map<string, unknown>;
}

/** Where a context sits in a streamed verification. */
export interface SegmentPlace {
  readonly shared: SharedFacts;
  readonly unit: CheckUnit;
  readonly final: boolean;
  /** Bundle position of each element of `bundle.entries` (default: its array index). */
  readonly positions?: readonly number[];
  /** Entries read so far, this segment's included. */
  readonly entriesSeen: number;
  /** The Merkle summary (complete once every entry was read), or undefined when an entry is malformed. */
  readonly merkle: () => MerkleSummary | undefined;
  /**
   * Positions of the records seen by every request group (`schedule.created`) whose own request's
   * group is in this segment (default: every position, a bundle taken whole).
   */
  readonly owned?: readonly number[];
}

/** Shared, lazily computed facts about one bundle segment. */
export interface VerifyContext {
  readonly bundle: Bundle;
  readonly options: VerifyOptions;
  /** The entries of this segment. */
  readonly views: readonly EntryView[];
  /** Which unit this segment is, and whether it is the last `entries` run. */
  readonly segment: { readonly unit: CheckUnit; readonly final: boolean };
  /**
   * True when the record at `position`, one every request group sees (`schedule.created`), is
   * checked here with its own request's records: the segment where what it names must be found.
   */
  owns(position: number): boolean;
  /** Entries read so far (every entry in a `bundle` segment). */
  readonly entriesSeen: number;
  /** State a check carries from one segment to the next (created by `init` on first use). */
  carry<T>(name: string, init: () => T): T;
  /**
   * The checkpoint verifiers: the pinned keys (`--trusted-key`, the trust file), else the bundle's
   * own; `verifier` is the one naming the bundle's ledger_key (older checkpoints, `--since`);
   * `problem` the finding why the key is unusable or not pinned.
   */
  readonly key: {
    readonly verifiers: readonly NoteVerifier[];
    readonly verifier?: NoteVerifier;
    readonly pinned: boolean;
    readonly problem?: Finding;
  };
  /** The pinned trust file (`--trust`), when given; the key checks take issuer and approver keys from it. */
  readonly roots?: TrustRoots;
  /** The bundle checkpoint, verified against `key` and the bundle origin; or the finding why not. */
  readonly checkpoint: { readonly verified?: Checkpoint; readonly problem?: Finding };
  /** True for a range export from index 0 without inclusion proofs: the root is recomputed from every entry. */
  readonly complete: boolean;
  /** Every entry's Merkle leaf summarised, or undefined if an entry is malformed. */
  merkle(): MerkleSummary | undefined;
  /** Entry hash recomputed from the entry's fields (memoized). */
  computedHash(view: EntryView & { readonly entry: BundleEntry }): string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAX_ID = 256;
const ENTRY_MEMBERS = 10;

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type WellFormed = { isWellFormed(): boolean };
const isId = (v: JsonValue | undefined): v is string =>
  typeof v === 'string' && v.length <= MAX_ID && (v as unknown as WellFormed).isWellFormed();

/** Checks one bundle entry's shape (docs/ledger.md "Entry"); returns the typed entry or the problem. */
export function parseBundleEntry(v: JsonValue | undefined): BundleEntry | string {
  // Attacker-controlled: every member of an exported entry.
  if (!isObject(v)) return 'not an object';
  if (Object.keys(v).length !== ENTRY_MEMBERS) return 'has missing or unknown members';
  const { index, prev_hash, type, at, trace_id, request_id, tenant, actor, payload, entry_hash } = v;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)
    return 'index is not a non-negative integer';
  if (typeof prev_hash !== 'string' || !HEX64.test(prev_hash)) return 'prev_hash is not 64 lower-hex digits';
  if (typeof entry_hash !== 'string' || !HEX64.test(entry_hash))
    return 'entry_hash is not 64 lower-hex digits';
  if (!isEntryType(type)) return 'type is not a known entry type';
  if (typeof at !== 'string' || !ISO_MS.test(at) || Number.isNaN(Date.parse(at)))
    return 'at is not ISO-8601 UTC with milliseconds';
  if (!isId(trace_id) || !isId(request_id) || !isId(tenant))
    return 'trace_id, request_id or tenant is not a short string';
  if (!isObject(actor) || Object.keys(actor).length !== 2 || !isId(actor['id']) || !isId(actor['role']))
    return 'actor is not { id, role }';
  if (!isObject(payload)) return 'payload is not an object';
  return {
    index,
    prev_hash,
    type,
    at,
    trace_id,
    request_id,
    tenant,
    actor: { id: actor['id'], role: actor['role'] },
    payload,
    entry_hash,
  };
}

/** The pinned ledger vkeys: `--trusted-key` values and the trust file's, deduplicated. */
function pinnedVkeys(options: VerifyOptions, roots: TrustRoots | undefined): string[] {
  const all = [
    ...(options.trustedKeys ?? []),
    ...(options.trustedKey !== undefined ? [options.trustedKey] : []),
    ...(roots !== undefined ? [roots.ledgerVkey] : []),
  ];
  return [...new Set(all)];
}

function keyOf(
  bundle: Pick<Bundle, 'ledgerKey'>,
  options: VerifyOptions,
  roots: TrustRoots | undefined,
): VerifyContext['key'] {
  const pinnedKeys = pinnedVkeys(options, roots);
  const pinned = pinnedKeys.length > 0;
  const bundleVkey = bundle.ledgerKey.vkey;
  let verifiers: NoteVerifier[];
  try {
    verifiers = (pinned ? pinnedKeys : [typeof bundleVkey === 'string' ? bundleVkey : '']).map((k) =>
      noteVerifierFromVkey(k),
    );
  } catch {
    const what = pinned ? 'a pinned ledger key is not a valid vkey' : 'ledger_key.vkey is not a valid vkey';
    return { verifiers: [], pinned, problem: { code: 'LEDGER_KEY', message: what } };
  }
  // With pinned roots the checkpoint verifies under a pinned key only; the bundle's ledger_key must be one of them.
  const at = typeof bundleVkey === 'string' ? pinnedKeys.indexOf(bundleVkey) : -1;
  const verifier = verifiers[Math.max(at, 0)];
  const base = { verifiers, pinned, ...(verifier !== undefined ? { verifier } : {}) };
  if (pinned && at < 0)
    return {
      ...base,
      problem: { code: 'LEDGER_KEY', message: 'the bundle ledger_key is not a pinned ledger key' },
    };
  // The JWK and the vkey must be the same key; otherwise the bundle names two ledger keys.
  try {
    const jwk = parsePublicJwk(bundle.ledgerKey.jwk);
    const material = typeof bundleVkey === 'string' ? bundleVkey.split('+').slice(2).join('+') : '';
    const raw = Buffer.from(material, 'base64').subarray(1);
    if (!raw.equals(jwk.raw)) throw new Error('mismatch');
  } catch {
    return {
      ...base,
      problem: { code: 'LEDGER_KEY', message: 'ledger_key.jwk is not the key named by ledger_key.vkey' },
    };
  }
  return base;
}

function checkpointOf(
  bundle: Pick<Bundle, 'checkpoint' | 'origin'>,
  key: VerifyContext['key'],
): VerifyContext['checkpoint'] {
  if (key.verifiers.length === 0)
    return { problem: { code: 'CHECKPOINT_UNVERIFIED', message: 'no usable ledger key' } };
  if (typeof bundle.checkpoint !== 'string')
    return { problem: { code: 'CHECKPOINT_MALFORMED', message: 'checkpoint is not a signed note' } };
  const r = verifyCheckpoint(bundle.checkpoint, key.verifiers);
  if (r.outcome === 'deny') {
    const code = r.code === 'ERR_CHECKPOINT_MALFORMED' ? 'CHECKPOINT_MALFORMED' : 'CHECKPOINT_SIGNATURE';
    return { problem: { code, message: `checkpoint: ${r.reason}` } };
  }
  if (r.checkpoint.origin !== bundle.origin)
    return {
      problem: {
        code: 'CHECKPOINT_ORIGIN',
        message: `checkpoint origin ${JSON.stringify(r.checkpoint.origin)} is not the bundle origin`,
      },
    };
  return { verified: r.checkpoint };
}

/** Computes the facts shared by every segment of one bundle (key, checkpoint, completeness). */
export function createSharedFacts(
  bundle: Pick<Bundle, 'ledgerKey' | 'checkpoint' | 'origin' | 'scope'>,
  options: VerifyOptions,
  hasInclusionProofs: boolean,
): SharedFacts {
  // The trust file was found usable before any check ran (`selectChecks`); unusable here is a bug.
  let roots: TrustRoots | undefined;
  if (options.trust !== undefined) {
    const parsed = parseTrustRoots(options.trust);
    if (typeof parsed === 'string') throw new TypeError(`trust file unusable: ${parsed}`);
    roots = parsed;
  }
  const key = keyOf(bundle, options, roots);
  return {
    key,
    ...(roots !== undefined ? { roots } : {}),
    checkpoint: checkpointOf(bundle, key),
    complete: bundle.scope.kind === 'range' && bundle.scope.from === 0 && !hasInclusionProofs,
    carried: new Map(),
  };
}

/** Parses every element of `entries` into a view at its bundle position. */
export function viewsOf(entries: readonly JsonValue[], positions?: readonly number[]): EntryView[] {
  return entries.map((raw, i) => {
    const position = positions?.[i] ?? i;
    const parsed = parseBundleEntry(raw);
    return typeof parsed === 'string' ? { position, problem: parsed } : { position, entry: parsed };
  });
}

/** A Merkle summary of `views` computed at once (a bundle given whole). */
function wholeMerkle(views: readonly EntryView[]): () => MerkleSummary | undefined {
  let memo: MerkleSummary | undefined | null = null;
  return () => {
    if (memo === null) {
      const leaves = views.every((v) => v.entry !== undefined)
        ? views.map((v) => entryLeaf(v.entry?.entry_hash ?? ''))
        : undefined;
      memo =
        leaves === undefined
          ? undefined
          : {
              count: leaves.length,
              root: rootOf(leaves),
              prefixRoot: (size) => (size <= leaves.length ? rootOf(leaves.slice(0, size)) : undefined),
            };
    }
    return memo;
  };
}

/**
 * Builds the context of one segment. Without `place` the bundle is taken whole: one segment
 * holding every entry, final, with its own shared facts.
 */
export function createContext(
  bundle: Bundle,
  options: VerifyOptions,
  place?: SegmentPlace,
  parsed?: readonly EntryView[],
): VerifyContext {
  const views = parsed ?? viewsOf(bundle.entries, place?.positions);
  const shared = place?.shared ?? createSharedFacts(bundle, options, bundle.inclusion.length > 0);
  const hashes = new Map<number, string>();
  const owned = place?.owned === undefined ? undefined : new Set(place.owned);
  return {
    bundle,
    options,
    views,
    key: shared.key,
    ...(shared.roots !== undefined ? { roots: shared.roots } : {}),
    checkpoint: shared.checkpoint,
    complete: shared.complete,
    segment: { unit: place?.unit ?? 'entries', final: place?.final ?? true },
    entriesSeen: place?.entriesSeen ?? views.length,
    carry<T>(name: string, init: () => T): T {
      if (!shared.carried.has(name)) shared.carried.set(name, init());
      return shared.carried.get(name) as T;
    },
    merkle: place?.merkle ?? wholeMerkle(views),
    owns: (position) => owned === undefined || owned.has(position),
    computedHash(view) {
      let h = hashes.get(view.position);
      if (h === undefined) {
        h = computeEntryHash(view.entry);
        hashes.set(view.position, h);
      }
      return h;
    },
  };
}
