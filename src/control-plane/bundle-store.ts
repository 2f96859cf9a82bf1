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
      if (bytes.length > MAX_BUNDLE_BYTES) return deny('ERR_POLICY_BUNDLE_INVALID', 'bundle file too large');
      if (!hexDigestEquals(sha256Hex(bytes), hash))
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

  function readPointer(): string | null | Deny {
    const path = join(dir, ACTIVE_POINTER);
    try {
      if (!existsSync(path)) return null;
      const text = readFileSync(path, 'utf8').trim();
      return HASH_RE.test(text) ? text : deny('ERR_POLICY_UNAVAILABLE', 'the active pointer is malformed');
    } catch {
      return deny('ERR_POLICY_UNAVAILABLE', 'the active pointer cannot be read');
    }
  }

  function loadActive(): void {
    const pointer = readPointer();
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

  function writePointer(hash: string): void {
    const tmp = join(dir, `${ACTIVE_POINTER}.tmp`);
    writeFileSync(tmp, `${hash}\n`, { mode: 0o644 });
    syncPath(tmp);
    renameSync(tmp, join(dir, ACTIVE_POINTER));
    syncPath(dir);
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
        const path = join(dir, `${hash}.json`);
        if (!existsSync(path)) {
          const tmp = `${path}.tmp`;
          writeFileSync(tmp, bytes, { mode: 0o444 });
          syncPath(tmp);
          renameSync(tmp, path);
          syncPath(dir);
        }
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
          writePointer(hash);
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

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
