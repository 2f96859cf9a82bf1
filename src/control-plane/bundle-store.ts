/**
 * Hash-addressed, immutable policy bundles on disk and the `ACTIVE` pointer (SPEC §6 "Policy as
 * code", L7 policy tampering, SPEC §7 scenario 13). Each bundle is stored as its canonical bytes
 * in `<dir>/<hash>.json`; a file whose content no longer hashes to its name is refused
 * (`ERR_POLICY_BUNDLE_INVALID`), and then no bundle is active: decisions deny with
 * `ERR_POLICY_UNAVAILABLE`, never falling back to another bundle. Each verified bundle is
 * compiled once and cached by hash.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  canonicalBytes,
  deny,
  denyFromError,
  hexDigestEquals,
  isDeny,
  parseJson,
  sha256Hex,
} from '../kernel/index.js';
import type { Clock, Deny } from '../kernel/index.js';
import {
  adminRequestId,
  appendConfirmed,
  GLOBAL_TENANT,
  type Actor,
  type LedgerAppender,
  type LedgerRef,
} from './ledger-port.js';
import { MAX_BUNDLE_BYTES } from '../policy/index.js';
import type { CompileBundle, PolicyRuntime } from './ports.js';

/** Name of the pointer file holding the active bundle's hash. */
export const ACTIVE_POINTER = 'ACTIVE';

const HASH_RE = /^[0-9a-f]{64}$/;

/** The result of an activation. */
export type ActivationResult =
  | {
      readonly outcome: 'ok';
      readonly hash: string;
      readonly previous: string | null;
      readonly ledger: LedgerRef;
    }
  | Deny;

/** The approved decision behind an activation that needed multi-party approval (OE-INV-020). */
export interface ActivationApproval {
  readonly decision_id: string;
  readonly approvals: readonly string[];
}

/** Hash-addressed bundles and the active pointer (SPEC §6). */
export interface BundleStore {
  /** The verified active runtime; `ERR_POLICY_UNAVAILABLE` when none is set or it failed to load. */
  active(): PolicyRuntime | Deny;
  /** Loads, verifies and compiles the bundle `hash` (cached); `ERR_POLICY_BUNDLE_INVALID` if unknown or tampered. */
  get(hash: string): PolicyRuntime | Deny;
  /** Stores a bundle document (JSON text or bytes) as its canonical bytes after it compiles; returns its hash or a deny. */
  put(bundle: string | Uint8Array): { readonly outcome: 'ok'; readonly hash: string } | Deny;
  /**
   * Verifies the bundle `hash` loads, ledgers `admin.policy_activated` (bundle, previous bundle,
   * actor) and only then moves the pointer. Ledger failure → `ERR_LEDGER_UNAVAILABLE`, nothing
   * changes. Multi-party approval of activation (OE-INV-020) is enforced by the caller, which
   * passes the approved decision and its approval references to be ledgered with it.
   */
  activate(
    hash: string,
    actor: Actor,
    reason: string,
    approval?: ActivationApproval,
  ): Promise<ActivationResult>;
  /** Drops the cache and re-reads and re-verifies the pointer and the active bundle from disk. */
  reload(): void;
}

/** Dependencies of {@link createBundleStore}. */
export interface BundleStoreDeps {
  readonly dir: string;
  readonly compile: CompileBundle;
  readonly ledger: LedgerAppender;
  readonly now: Clock;
  readonly ledgerTimeoutMs: number;
}

/** Opens (creating if needed) the bundle directory `deps.dir`. (SPEC §6, scenario 13) */
export function createBundleStore(deps: BundleStoreDeps): BundleStore {
  const { dir, compile, ledger, now, ledgerTimeoutMs } = deps;
  mkdirSync(dir, { recursive: true });
  const cache = new Map<string, PolicyRuntime>();
  let activeHash: string | null = null;
  let activeRuntime: PolicyRuntime | Deny = deny('ERR_POLICY_UNAVAILABLE', 'no active policy bundle');
  let queue: Promise<unknown> = Promise.resolve();

  function get(hash: string): PolicyRuntime | Deny {
    if (typeof hash !== 'string' || !HASH_RE.test(hash))
      return deny('ERR_POLICY_BUNDLE_INVALID', 'not a bundle hash');
    const cached = cache.get(hash);
    if (cached !== undefined) return cached;
    try {
      const path = join(dir, `${hash}.json`);
      if (!existsSync(path)) return deny('ERR_POLICY_BUNDLE_INVALID', 'unknown policy bundle');
      // Bundle file from disk: treated as hostile until it hashes to its name and compiles.
      const bytes = readFileSync(path);
      if (!bundleMatchesHash(bytes, hash))
        return deny('ERR_POLICY_BUNDLE_INVALID', 'bundle file does not match its hash');
      const runtime = compile(bytes, hash);
      if (!hexDigestEquals(runtime.hash, hash))
        return deny('ERR_POLICY_BUNDLE_INVALID', 'compiled bundle hash differs');
      cache.set(hash, runtime);
      return runtime;
    } catch (err) {
      return denyFromError(err, 'ERR_POLICY_BUNDLE_INVALID');
    }
  }

  function loadActive(): void {
    const pointer = readActivePointer(dir);
    if (pointer === null || isDeny(pointer)) {
      activeHash = null;
      activeRuntime = pointer ?? deny('ERR_POLICY_UNAVAILABLE', 'no active policy bundle');
      return;
    }
    activeHash = pointer;
    const runtime = get(pointer);
    // A tampered or unloadable active bundle leaves no bundle active: never a fallback.
    activeRuntime = isDeny(runtime)
      ? deny('ERR_POLICY_UNAVAILABLE', 'the active policy bundle failed verification')
      : runtime;
  }

  loadActive();

  return Object.freeze({
    active: () => activeRuntime,
    get,
    put(bundle: string | Uint8Array) {
      try {
        // Operator-supplied document: strict JSON, then stored in its canonical form.
        const bytes = canonicalBytes(parseJson(bundle, { maxBytes: MAX_BUNDLE_BYTES }));
        const hash = sha256Hex(bytes);
        const runtime = compile(bytes, hash);
        if (!hexDigestEquals(runtime.hash, hash))
          return deny('ERR_POLICY_BUNDLE_INVALID', 'compiled bundle hash differs');
        writeBundleFile(dir, hash, bytes);
        cache.set(hash, runtime);
        return { outcome: 'ok' as const, hash };
      } catch (err) {
        return denyFromError(err, 'ERR_POLICY_BUNDLE_INVALID');
      }
    },
    activate(
      hash: string,
      actor: Actor,
      reason: string,
      approval?: ActivationApproval,
    ): Promise<ActivationResult> {
      const run = queue.then(async (): Promise<ActivationResult> => {
        cache.delete(hash); // re-verify from disk at activation
        const runtime = get(hash);
        if (isDeny(runtime)) return runtime;
        const previous = activeHash;
        const payload = {
          policy_bundle: hash,
          previous_bundle: previous,
          constitution_version: runtime.constitutionVersion,
          reason,
          ...(approval === undefined
            ? {}
            : { decision_id: approval.decision_id, approvals: [...approval.approvals] }),
        };
        const at = now();
        const id = adminRequestId('admin.policy_activated', GLOBAL_TENANT, payload, at);
        const ref = await appendConfirmed(
          ledger,
          {
            type: 'admin.policy_activated',
            trace_id: id,
            request_id: id,
            tenant: GLOBAL_TENANT,
            actor,
            payload,
          },
          ledgerTimeoutMs,
        );
        if (isDeny(ref)) return ref;
        try {
          writeActivePointer(dir, hash);
        } catch {
          return deny('ERR_POLICY_UNAVAILABLE', 'the active pointer could not be written');
        }
        activeHash = hash;
        activeRuntime = runtime;
        return { outcome: 'ok', hash, previous, ledger: ref };
      });
      queue = run.catch(() => undefined);
      return run;
    },
    reload(): void {
      cache.clear();
      loadActive();
    },
  });
}

/**
 * True when `bytes` are a bundle's stored form for `hash`: `hash` is a lowercase SHA-256 hex
 * digest, the bytes are within {@link MAX_BUNDLE_BYTES} and hash to it (compared in constant
 * time). The one rule every copy of a bundle is checked by, on disk or in a storage backend.
 */
export function bundleMatchesHash(bytes: Uint8Array, hash: string): boolean {
  return (
    typeof hash === 'string' &&
    HASH_RE.test(hash) &&
    bytes.length <= MAX_BUNDLE_BYTES &&
    hexDigestEquals(sha256Hex(bytes), hash)
  );
}

/**
 * The verified bytes of the bundle file `hash` in the bundle directory `dir`, or undefined when
 * there is none or it does not match its hash ({@link bundleMatchesHash}).
 */
export function readBundleFile(dir: string, hash: string): Uint8Array | undefined {
  if (typeof hash !== 'string' || !HASH_RE.test(hash)) return undefined;
  const path = join(dir, `${hash}.json`);
  if (!existsSync(path)) return undefined;
  const bytes = readFileSync(path);
  return bundleMatchesHash(bytes, hash) ? bytes : undefined;
}

/**
 * Writes `bytes` as the bundle file `hash` in `dir` (created if needed), durably (temporary
 * file, fsync, rename), unless it exists. Throws `TypeError` when the bytes do not match the
 * hash: only verified bundles enter the directory.
 */
export function writeBundleFile(dir: string, hash: string, bytes: Uint8Array): void {
  if (!bundleMatchesHash(bytes, hash)) throw new TypeError('bundle bytes do not match their hash');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${hash}.json`);
  if (existsSync(path)) return;
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o444 });
  syncPath(tmp);
  renameSync(tmp, path);
  syncPath(dir);
}

/**
 * The hash in the `ACTIVE` pointer of `dir`: null when there is none, `ERR_POLICY_UNAVAILABLE`
 * when it is malformed or unreadable (never a guess).
 */
export function readActivePointer(dir: string): string | null | Deny {
  const path = join(dir, ACTIVE_POINTER);
  try {
    if (!existsSync(path)) return null;
    // Pointer file from disk: only a well-formed hash is taken.
    const text = readFileSync(path, 'utf8').trim();
    return HASH_RE.test(text) ? text : deny('ERR_POLICY_UNAVAILABLE', 'the active pointer is malformed');
  } catch {
    return deny('ERR_POLICY_UNAVAILABLE', 'the active pointer cannot be read');
  }
}

/** Points `ACTIVE` of `dir` at `hash`, durably and atomically (temporary file, fsync, rename). */
export function writeActivePointer(dir: string, hash: string): void {
  if (typeof hash !== 'string' || !HASH_RE.test(hash)) throw new TypeError('not a bundle hash');
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${ACTIVE_POINTER}.tmp`);
  writeFileSync(tmp, `${hash}\n`, { mode: 0o644 });
  syncPath(tmp);
  renameSync(tmp, join(dir, ACTIVE_POINTER));
  syncPath(dir);
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
