/**
 * Fault injection for the embedded deployment (SPEC §7 scenarios 5, 8, 9; STYLE "Fault injection
 * for every dependency of the enforcement path: throws, hangs past timeout, returns garbage").
 * Every switch only makes a dependency fail (reject, never answer, or answer garbage), so by
 * construction a fault can only ever cause denies: no switch skips a check or forges an answer
 * that a healthy dependency would give.
 */
import type { KeyRing } from '../kernel/index.js';
import { keyRingFromJwks } from '../kernel/index.js';
import type { EntryInput, Ledger } from '../ledger/index.js';
import type { PolicyRuntime } from '../control-plane/index.js';
import type { NonceStore, ToolAdapter } from '../execution/index.js';

/** How a faulty dependency misbehaves: `off` is healthy. */
export type FaultMode = 'off' | 'throw' | 'hang' | 'garbage';

/** Fault switches for tests and the demo, read on every call (flip them on a running instance). */
export interface EmbeddedFaults {
  /** `decide` throws, never answers, or answers something that is not a decision. */
  controlPlane: FaultMode;
  /** `consume` rejects, never answers, or answers neither `fresh` nor `replayed`. */
  nonceStore: FaultMode;
  /** Ledger writes and lookups reject, never answer, or answer garbage. */
  ledger: FaultMode;
  /** Entry types the ledger fault applies to (`null`: every write and lookup). */
  ledgerTypes: readonly string[] | null;
  /** Policy evaluation throws, never answers, or answers something that is not a decision. */
  policyEngine: FaultMode;
}

/** A fresh set of {@link EmbeddedFaults}, all off. */
export function noFaults(): EmbeddedFaults {
  return {
    controlPlane: 'off',
    nonceStore: 'off',
    ledger: 'off',
    ledgerTypes: null,
    policyEngine: 'off',
  };
}

const injected = (what: string): Error => new Error(`${what} unavailable (fault injected)`);
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** Rejects, hangs or resolves `garbage`, per `mode` (never `off`). */
export function misbehave<T>(mode: Exclude<FaultMode, 'off'>, what: string, garbage: unknown): Promise<T> {
  if (mode === 'throw') return Promise.reject(injected(what));
  if (mode === 'hang') return never<T>();
  return Promise.resolve(garbage as T);
}

/** The ledger port every role writes through, honouring the ledger faults. */
export function faultyLedgerPort(
  ledger: Ledger,
  faults: EmbeddedFaults,
): Pick<Ledger, 'append' | 'putEvidence' | 'readEnvelopeContext'> {
  const mode = (type: string | null): FaultMode => {
    const m = faults.ledger;
    if (m === 'off' || faults.ledgerTypes === null) return m;
    return type !== null && faults.ledgerTypes.includes(type) ? m : 'off';
  };
  return {
    append: (e: EntryInput) => {
      const m = mode(e.type);
      return m === 'off' ? ledger.append(e) : misbehave(m, 'ledger', { index: 'garbage' });
    },
    putEvidence: (b, t) => {
      const m = mode(null);
      return m === 'off' ? ledger.putEvidence(b, t) : misbehave(m, 'ledger', 42);
    },
    // The executor's reading of the decision and issuance records (typed as `decision`).
    readEnvelopeContext: (query) => {
      const m = mode('decision');
      return m === 'off' ? ledger.readEnvelopeContext(query) : misbehave(m, 'ledger', 'yes');
    },
  };
}

/** The nonce store as the executor sees it, honouring the nonce store faults. */
export function faultyNonceStore(store: NonceStore, faults: EmbeddedFaults): NonceStore {
  return {
    consume: (input) => {
      const m = faults.nonceStore;
      return m === 'off' ? store.consume(input) : misbehave(m, 'nonce store', 'maybe');
    },
    void: (input) => {
      const m = faults.nonceStore;
      return m === 'off' ? store.void(input) : misbehave(m, 'nonce store', 'maybe');
    },
    prune: (input) => store.prune(input),
    close: () => store.close(),
  };
}

/** A compiled policy runtime whose `evaluate` honours the policy engine fault. */
export function faultyPolicyRuntime(runtime: PolicyRuntime, faults: EmbeddedFaults): PolicyRuntime {
  return Object.freeze({
    ...runtime,
    getTool: (name: string) => runtime.getTool(name),
    validateParams: (tool: string, params: Parameters<PolicyRuntime['validateParams']>[1]) =>
      runtime.validateParams(tool, params),
    evaluate: (input: Parameters<PolicyRuntime['evaluate']>[0]) => {
      const m = faults.policyEngine;
      if (m === 'off') return runtime.evaluate(input);
      if (m === 'throw') throw injected('policy engine');
      return misbehave<Awaited<ReturnType<PolicyRuntime['evaluate']>>>(m, 'policy engine', {
        outcome: 'allow',
      });
    },
  });
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
