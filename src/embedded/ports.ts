/**
 * Small wirings of the embedded composition: the tool-run observer and the Execution Layer's
 * read-only view of the issuer keys. The port decorators of {@link CoreDecorators} are the only
 * way in for tests and the demo to wrap a dependency; production code injects no faults.
 */
import type { KeyRing, FileSync } from '../kernel/index.js';
import { keyRingFromJwks } from '../kernel/index.js';
import type { Ledger } from '../ledger/index.js';
import type { PolicyRuntime } from '../control-plane/index.js';
import type { NonceStore, ToolAdapter } from '../execution/index.js';
import type { ClientRegistry, GateControlPlane, GateExecutor } from '../gate/index.js';
import type { PolicyBundleMirror } from '../storage/index.js';
import type { ScheduleStore } from '../schedules/index.js';

/** The ledger as every role writes to it. */
export type LedgerPort = Pick<Ledger, 'append' | 'putEvidence' | 'readEnvelopeContext'> &
  Partial<Pick<Ledger, 'appendThen'>>;

/**
 * Decorators applied to the roles' ports as the composition wires them. Tests wrap them to
 * inject faults (throws, hangs, garbage) and the demo to show the denials of SPEC §7 scenarios
 * 5, 8 and 9; only code that embeds the library, and so already holds every key in the process,
 * can pass them: no configuration, flag or route reaches them.
 */
export interface CoreDecorators {
  /** The ledger port of every role (Gate, Control Plane, Execution Layer, admin actions). */
  readonly ledgerPort?: (port: LedgerPort) => LedgerPort;
  /** The Execution Layer's envelope nonce store. */
  readonly nonceStore?: (store: NonceStore) => NonceStore;
  /** Every compiled policy runtime, as the bundle store loads it. */
  readonly policyRuntime?: (runtime: PolicyRuntime) => PolicyRuntime;
  /** The Gate's port to the Control Plane. */
  readonly controlPlane?: (port: GateControlPlane) => GateControlPlane;
  /** The Gate's port to the Execution Layer. */
  readonly gateExecutor?: (port: GateExecutor) => GateExecutor;
  /** The backend's policy bundles and active pointer, when the backend holds them (PostgreSQL). */
  readonly bundleMirror?: (mirror: PolicyBundleMirror) => PolicyBundleMirror;
  /** How the SQLite backend makes its write-ahead log durable (`src/kernel/sqlite-commit.ts`). */
  readonly fileSync?: (sync: FileSync) => FileSync;
  /** The schedule store, as the scheduler and the Control Plane's check of a run read it. */
  readonly scheduleStore?: (store: ScheduleStore) => ScheduleStore;
  /** The client registry as the scheduler reads a schedule creator's registration. */
  readonly scheduleClients?: (registry: ClientRegistry) => ClientRegistry;
}

/** Called just before an adapter runs a tool: the only observable sign that a tool ran. */
export type ToolRunObserver = (run: { readonly tool: string; readonly adapter: string }) => void;

/** Wraps adapters so that `observe` sees every tool run (tests, demo, benchmarks). */
export function observedAdapters(
  adapters: Readonly<Record<string, ToolAdapter>>,
  observe: ToolRunObserver | undefined,
): Readonly<Record<string, ToolAdapter>> {
  if (observe === undefined) return adapters;
  const out: Record<string, ToolAdapter> = {};
  for (const [type, adapter] of Object.entries(adapters)) {
    out[type] = {
      run: (call) => {
        observe({ tool: call.tool, adapter: type });
        return adapter.run(call);
      },
    };
  }
  return out;
}

/**
 * The Execution Layer's view of the issuer keys, following the Control Plane's published JWKS
 * (public keys and revocations only), so a rotation or revocation reaches the executor at once
 * (SPEC §3 "kid is a pinned, unrevoked issuer key", OE-INV-025 key revocation). Read-only.
 */
export function followIssuerKeys(jwks: () => unknown): KeyRing {
  // The issuer publishes a new frozen JWKS object on every change: rebuild only then.
  let seen = jwks();
  let ring = keyRingFromJwks(seen);
  const current = (): KeyRing => {
    const value = jwks();
    if (value !== seen) {
      ring = keyRingFromJwks(value);
      seen = value;
    }
    return ring;
  };
  return Object.freeze({
    add: () => {
      throw new TypeError('the executor key ring follows the issuer JWKS and is read-only');
    },
    revoke: () => {
      throw new TypeError('the executor key ring follows the issuer JWKS and is read-only');
    },
    lookup: (kid: unknown) => current().lookup(kid),
    toJwks: () => current().toJwks(),
  });
}
