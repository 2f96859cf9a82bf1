/**
 * What the linkage checks share (SPEC §5: envelopes, receipts, traces, outcomes): the entries
 * indexed by decision, nonce and trace, the declared executor, the issuer and client keys with
 * the ledger's own records of them, and memoized envelope and request-evidence decoding. Built
 * once per verification (memoized on the context). Kernel only.
 */
import {
  claimsOfIssued,
  keyRingFromJwks,
  parsePublicJwk,
  type EnvelopeClaims,
  type JsonObject,
  type JsonValue,
  type PublicKey,
} from '../kernel/index.js';
import type { EntryView, VerifyContext } from './context.js';
import { decodeEnvelope, type DecodedEnvelope } from './envelope-offline.js';
import type { BundleEntry } from './entry-format.js';
import {
  parseEvidenceRequest,
  parseMintedEvidence,
  type EvidenceRequest,
  type MintedEvidence,
} from './request-evidence.js';
import { parsedViews } from './checks/util.js';

/** A view whose entry parsed. */
export type View = EntryView & { readonly entry: BundleEntry };

/** Entry types the linkage index is keyed by, and the payload field each is keyed on. */
export const INDEXED = {
  'approval.finalized': 'decision_id',
  'envelope.issued': 'jti',
  'envelope.voided': 'jti',
  'execution.receipt': 'jti',
  'admin.key_rotated': 'kid',
} as const;
/** An indexed entry type. */
export type IndexedType = keyof typeof INDEXED;
const INDEXED_FIELD: ReadonlyMap<string, string> = new Map(Object.entries(INDEXED));

/** The executor the bundle declares (docs/ledger.md "Audit bundle" `executor`). */
export interface DeclaredExecutor {
  readonly audience: string;
  readonly clockToleranceSec: number;
  readonly maxLifetimeSec: number;
}

/** The shared linkage index of one bundle. */
export interface Linkage {
  readonly views: readonly View[];
  readonly byIndex: ReadonlyMap<number, View>;
  /** The first `decision` entry of each decision id. */
  readonly decisions: ReadonlyMap<string, View>;
  /** Every entry of each trace, in bundle order. */
  readonly traces: ReadonlyMap<string, readonly View[]>;
  /** Entries of an indexed `type` whose payload names `value` in its key field ({@link INDEXED}), in bundle order. */
  find(type: IndexedType, value: string): readonly View[];
  /** The declared executor, or the reason there is none. */
  readonly executor: DeclaredExecutor | string;
  /**
   * Issuer keys by kid (revoked ones included: evidence signed before revocation stays checkable),
   * or why the JWKS is unusable: the pinned trust file's when given, else the bundle's.
   */
  readonly issuerKeys: ReadonlyMap<string, PublicKey> | string;
  /** Revoked issuer kids: the pinned ones and the bundle's (a pinned revocation is never undone). */
  readonly issuerRevoked: ReadonlySet<string>;
  /** Where `issuerKeys` came from, for findings. */
  readonly issuerSource: string;
  /** Index of the ledgered revocation of each issuer kid (`admin.key_revoked`). */
  readonly issuerRevokedAt: ReadonlyMap<string, number>;
  /**
   * Client keys by identity. With a pinned ledger key (`--trusted-key` or `--trust`): only keys
   * bound by a ledgered `admin.client_registered` record the verified checkpoint covers. Without
   * one (`--trust-bundle-keys`): those, else the bundle's unsigned `jwks.clients` with
   * `jwks.client_identities`.
   */
  clientKeys(identity: string): {
    readonly keys: readonly PublicKey[];
    readonly tenants: ReadonlySet<string>;
  };
  /** True when client keys come from checkpoint-covered ledgered registrations only (see `clientKeys`). */
  readonly clientKeysLedgeredOnly: boolean;
  /**
   * True when ledgered-only client keys have no verified checkpoint to be covered by: then no
   * registration counts and no request signature can verify (the checkpoint check names why).
   */
  readonly clientKeysUncovered: boolean;
  /**
   * The decoded JWS an entry carries in its `envelope` field: the consumed envelope of an
   * `execution.receipt` (memoized). `envelope.issued` records carry claims and a digest only.
   */
  envelope(v: View): DecodedEnvelope | string;
  /** The claims an `envelope.issued` entry records, or undefined when incomplete or mistyped (memoized). */
  issuedClaims(v: View): EnvelopeClaims | undefined;
  /** The signed request stored as evidence under `sha` (memoized); undefined when not in the bundle. */
  request(sha: JsonValue | undefined): EvidenceRequest | string | undefined;
  /** The minted call of an MCP principal stored under `sha`; undefined when not in the bundle or not one. */
  minted(sha: JsonValue | undefined): MintedEvidence | string | undefined;
  /** True when index `i` lies inside the bundle's own scope (a missing entry there is missing, not cut). */
  inScope(i: number): boolean;
}

const isObj = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
/** A string payload field, or undefined. */
export const str = (v: JsonValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

/** True when `ref` is exactly `{ index, entry_hash }` naming the given entry. */
export function refNames(ref: JsonValue | undefined, index: number, entryHash: string): boolean {
  return (
    isObj(ref) && Object.keys(ref).length === 2 && ref['index'] === index && ref['entry_hash'] === entryHash
  );
}

function parseExecutor(v: JsonValue): DeclaredExecutor | string {
  if (!isObj(v)) return 'the bundle declares no executor (audience, clock tolerance, maximum lifetime)';
  const { audience, clock_tolerance_sec: tol, max_lifetime_sec: max } = v;
  const count = (n: JsonValue | undefined): n is number =>
    typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof audience !== 'string' || audience.length === 0 || !count(tol) || !count(max) || max === 0)
    return 'the declared executor is malformed';
  return { audience, clockToleranceSec: tol, maxLifetimeSec: max };
}

function issuerKeysOf(jwks: JsonValue | undefined): {
  keys: Map<string, PublicKey> | string;
  revoked: Set<string>;
} {
  try {
    // Attacker-controlled: the bundle's issuer JWKS, parsed strictly by the kernel (bad key → unusable).
    const ring = keyRingFromJwks(jwks);
    const doc = ring.toJwks();
    return { keys: new Map(doc.keys.map((k) => [k.kid, parsePublicJwk(k)])), revoked: new Set(doc.revoked) };
  } catch {
    return { keys: 'the issuer JWKS is missing or malformed', revoked: new Set() };
  }
}

/**
 * True when client keys must come from ledgered registrations only: whenever the ledger key is
 * pinned (`--trusted-key`, or the trust file's), since that pin is what makes a ledgered
 * registration authoritative; the trust file holds no client keys of its own.
 */
export function ledgeredClientKeysOnly(ctx: Pick<VerifyContext, 'key'>): boolean {
  return ctx.key.pinned;
}

function clientIndex(ctx: VerifyContext, views: readonly View[]): Linkage['clientKeys'] {
  const byIdentity = new Map<string, { keys: Map<string, PublicKey>; tenants: Set<string> }>();
  const add = (identity: string, tenant: string, key: PublicKey): void => {
    const slot = byIdentity.get(identity) ?? {
      keys: new Map<string, PublicKey>(),
      tenants: new Set<string>(),
    };
    slot.keys.set(key.kid, key);
    slot.tenants.add(tenant);
    byIdentity.set(identity, slot);
  };
  // Ledgered registrations are covered by the signed checkpoint: the stronger source. With a
  // pinned ledger key only a registration inside the verified checkpoint counts (FC-INV-3).
  const ledgeredOnly = ledgeredClientKeysOnly(ctx);
  const size = ctx.checkpoint.verified?.size;
  for (const v of views) {
    const p = v.entry.payload;
    // A registration, or a rotation (`clients rotate`) that binds a further key to the client.
    if (
      (v.entry.type !== 'admin.client_registered' && v.entry.type !== 'admin.key_rotated') ||
      p['key_use'] !== 'request' ||
      typeof p['client'] !== 'string' ||
      (ledgeredOnly && (size === undefined || v.entry.index >= size))
    )
      continue;
    try {
      add(p['client'], v.entry.tenant, parsePublicJwk(p['public_jwk']));
    } catch {
      // An unusable ledgered key verifies nothing.
    }
  }
  // Client keys are not trust roots (docs/ledger.md "Trust roots"). Without a pinned ledger key
  // the bundle's unsigned client JWKS is a fallback for identities without a ledgered
  // registration in this bundle. With one it is never read: whoever rewrites a bundle (or a
  // ledger writer fabricating requests) could add a key of their own there.
  const jwks = ledgeredOnly ? undefined : ctx.bundle.jwks['clients'];
  const owners = ctx.bundle.jwks['client_identities'];
  if (isObj(jwks) && Array.isArray(jwks['keys']) && isObj(owners)) {
    for (const k of jwks['keys']) {
      try {
        const key = parsePublicJwk(k);
        const owner = owners[key.kid];
        // A kid the ledger already binds to an identity cannot be re-bound by the unsigned bundle member.
        if (isObj(owner) && typeof owner['identity'] === 'string' && typeof owner['tenant'] === 'string') {
          const ledgered = [...byIdentity.values()].some((s) => s.keys.has(key.kid));
          if (!ledgered) add(owner['identity'], owner['tenant'], key);
        }
      } catch {
        // An unusable key verifies nothing.
      }
    }
  }
  return (identity) => {
    const slot = byIdentity.get(identity);
    return { keys: slot === undefined ? [] : [...slot.keys.values()], tenants: slot?.tenants ?? new Set() };
  };
}

function evidenceBytes(evidence: JsonObject, sha: JsonValue | undefined): Buffer | undefined {
  const blob = typeof sha === 'string' ? evidence[sha] : undefined;
  const b64 = isObj(blob) ? blob['body_b64'] : undefined;
  // The evidence check proves each blob hashes to its key.
  return typeof b64 === 'string' ? Buffer.from(b64, 'base64') : undefined;
}

function build(ctx: VerifyContext): Linkage {
  const views = parsedViews(ctx.views);
  const byIndex = new Map<number, View>();
  const decisions = new Map<string, View>();
  const traces = new Map<string, View[]>();
  const index = new Map<string, View[]>();
  const issuerRevokedAt = new Map<string, number>();
  for (const v of views) {
    const e = v.entry;
    if (!byIndex.has(e.index)) byIndex.set(e.index, v);
    const id = str(e.payload['decision_id']);
    if (id !== undefined && e.type === 'decision' && !decisions.has(id)) decisions.set(id, v);
    const field = INDEXED_FIELD.get(e.type);
    const value = field === undefined ? undefined : str(e.payload[field]);
    if (value !== undefined) {
      const key = `${e.type}\u0000${value}`;
      const list = index.get(key);
      if (list === undefined) index.set(key, [v]);
      else list.push(v);
    }
    if (e.trace_id !== '') {
      const list = traces.get(e.trace_id);
      if (list === undefined) traces.set(e.trace_id, [v]);
      else list.push(v);
    }
    const kid = str(e.payload['kid']);
    if (
      e.type === 'admin.key_revoked' &&
      e.payload['key_use'] === 'envelope' &&
      kid !== undefined &&
      !issuerRevokedAt.has(kid)
    )
      issuerRevokedAt.set(kid, e.index);
  }
  const fromBundle = issuerKeysOf(ctx.bundle.jwks['issuer']);
  const roots = ctx.roots;
  // Pinned: envelopes verify only under pinned issuer keys; revocations from either side hold.
  const issuer =
    roots === undefined
      ? fromBundle
      : {
          keys: new Map(roots.issuerKeys),
          revoked: new Set([...roots.issuerRevoked, ...fromBundle.revoked]),
        };
  const envelopes = new Map<number, DecodedEnvelope | string>();
  const issued = new Map<number, EnvelopeClaims | undefined>();
  const requests = new Map<string, EvidenceRequest | string>();
  const scope = ctx.bundle.scope;
  return {
    views,
    byIndex,
    decisions,
    traces,
    find: (type, value) => index.get(`${type}\u0000${value}`) ?? [],
    executor: parseExecutor(ctx.bundle.executor),
    issuerKeys: issuer.keys,
    issuerRevoked: issuer.revoked,
    issuerSource: roots === undefined ? "the bundle's issuer JWKS" : 'the pinned issuer keys',
    issuerRevokedAt,
    clientKeys: clientIndex(ctx, views),
    clientKeysLedgeredOnly: ledgeredClientKeysOnly(ctx),
    clientKeysUncovered: ledgeredClientKeysOnly(ctx) && ctx.checkpoint.verified === undefined,
    envelope(v) {
      let d = envelopes.get(v.position);
      if (d === undefined) {
        d = decodeEnvelope(v.entry.payload['envelope']);
        envelopes.set(v.position, d);
      }
      return d;
    },
    issuedClaims(v) {
      if (!issued.has(v.position)) issued.set(v.position, claimsOfIssued(v.entry));
      return issued.get(v.position);
    },
    request(sha) {
      if (typeof sha !== 'string') return undefined;
      let r = requests.get(sha);
      if (r === undefined) {
        const bytes = evidenceBytes(ctx.bundle.evidence, sha);
        if (bytes === undefined) return undefined;
        const m = parseMintedEvidence(bytes);
        r = m === undefined ? parseEvidenceRequest(bytes) : typeof m === 'string' ? m : m.request;
        requests.set(sha, r);
      }
      return r;
    },
    minted(sha) {
      if (typeof sha !== 'string') return undefined;
      const bytes = evidenceBytes(ctx.bundle.evidence, sha);
      return bytes === undefined ? undefined : parseMintedEvidence(bytes);
    },
    inScope: (i) => ctx.complete || (scope.kind === 'range' && i >= scope.from && i <= scope.to),
  };
}

const cache = new WeakMap<VerifyContext, Linkage>();

/** The linkage index of `ctx` (built on first use). */
export function linkageOf(ctx: VerifyContext): Linkage {
  let l = cache.get(ctx);
  if (l === undefined) {
    l = build(ctx);
    cache.set(ctx, l);
  }
  return l;
}
