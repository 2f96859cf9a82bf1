/**
 * Fault injection for the embedded deployment, as decorators around its real ports (SPEC §7
 * scenarios 5, 8, 9; STYLE "Fault injection for every dependency of the enforcement path:
 * throws, hangs past timeout, returns garbage"). Every switch only makes a dependency fail
 * (reject, never answer, or answer garbage): no switch skips a check or forges an answer that a
 * healthy dependency would give. Switches are read on every call, so a test flips them on a
 * running instance.
 */
import type { PolicyRuntime } from '../../src/control-plane/index.js';
import type { CoreDecorators, LedgerPort } from '../../src/embedded/index.js';
import type { NonceStore } from '../../src/execution/index.js';
import type { EntryRef } from '../../src/ledger/index.js';
import type { GateControlPlane, GateExecutor } from '../../src/gate/index.js';

/** How a faulty dependency misbehaves: `off` is healthy. */
export type FaultMode = 'off' | 'throw' | 'hang' | 'garbage';

/** Fault switches, read on every call. */
export interface InjectedFaults {
  /** `decide` throws, never answers, or answers something that is not a decision. */
  controlPlane: FaultMode;
  /** `consume`/`void` reject, never answer, or answer neither `fresh` nor `replayed`. */
  nonceStore: FaultMode;
  /** Ledger writes and lookups reject, never answer, or answer garbage. */
  ledger: FaultMode;
  /** Entry types the ledger fault applies to (`null`: every write and lookup). */
  ledgerTypes: readonly string[] | null;
  /** Policy evaluation throws, never answers, or answers something that is not a decision. */
  policyEngine: FaultMode;
  /**
   * The next append of this entry type reaches the ledger only `ms` later: its caller's deadline
   * passes first (an answer lost), and then the append is made as asked (it may still commit).
   * Cleared once used.
   */
  ledgerLate: {
    readonly type: string;
    readonly ms: number;
    /** Told the late append's outcome once it is made. */
    readonly made?: (append: Promise<unknown>) => void;
  } | null;
}

/** A fresh set of {@link InjectedFaults}, all off. */
export function noFaults(): InjectedFaults {
  return {
    controlPlane: 'off',
    nonceStore: 'off',
    ledger: 'off',
    ledgerTypes: null,
    policyEngine: 'off',
    ledgerLate: null,
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
export function faultyLedgerPort(ledger: LedgerPort, faults: InjectedFaults): LedgerPort {
  const mode = (type: string | null): FaultMode => {
    const m = faults.ledger;
    if (m === 'off' || faults.ledgerTypes === null) return m;
    return type !== null && faults.ledgerTypes.includes(type) ? m : 'off';
  };
  const faultyThen =
    (appendThen: NonNullable<LedgerPort['appendThen']>): NonNullable<LedgerPort['appendThen']> =>
    async (e, next, _writes, options) => {
      // Either entry's type makes the joint append late: one commit holds both.
      const late = faults.ledgerLate;
      const isLate = late !== null && (late.type === e.type || late.type === next.type);
      if (isLate) {
        faults.ledgerLate = null;
        await new Promise((resolve) => setTimeout(resolve, late.ms));
      }
      const m = mode(e.type) === 'off' ? mode(next.type) : mode(e.type);
      const made =
        m === 'off'
          ? appendThen(e, next, undefined, options)
          : misbehave<Awaited<ReturnType<typeof appendThen>>>(m, 'ledger', { first: { index: 'garbage' } });
      if (isLate) late.made?.(made);
      return made;
    };
  return {
    append: async (e, _writes, options) => {
      const late = faults.ledgerLate;
      if (late !== null && late.type === e.type) {
        faults.ledgerLate = null;
        await new Promise((resolve) => setTimeout(resolve, late.ms));
      }
      const m = mode(e.type);
      // Conditions pass through (an outcome closing one attempt stays conditional).
      const made =
        m === 'off'
          ? ledger.append(e, undefined, options)
          : misbehave<EntryRef>(m, 'ledger', { index: 'garbage' });
      if (late?.type === e.type) late.made?.(made);
      return made;
    },
    // Two entries of one commit: a fault of either fails both, as a failed commit does.
    ...(ledger.appendThen === undefined ? {} : { appendThen: faultyThen(ledger.appendThen.bind(ledger)) }),
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
export function faultyNonceStore(store: NonceStore, faults: InjectedFaults): NonceStore {
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
export function faultyPolicyRuntime(runtime: PolicyRuntime, faults: InjectedFaults): PolicyRuntime {
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

/** The Gate's Control Plane port whose `decide` honours the Control Plane fault. */
export function faultyControlPlane(port: GateControlPlane, faults: InjectedFaults): GateControlPlane {
  return {
    ...port,
    decide: (req, options) => {
      const m = faults.controlPlane;
      return m === 'off' ? port.decide(req, options) : misbehave(m, 'control plane', { outcome: 'allow' });
    },
  };
}

/**
 * Decorators that honour `faults` (and `gateExecutor`, when given, around the Gate's port to the
 * Execution Layer), for `startEmbedded`/`openCore`'s `decorate` option.
 */
export function faultDecorators(
  faults: InjectedFaults,
  gateExecutor?: (port: GateExecutor) => GateExecutor,
): CoreDecorators {
  return {
    ledgerPort: (port) => faultyLedgerPort(port, faults),
    nonceStore: (store) => faultyNonceStore(store, faults),
    policyRuntime: (runtime) => faultyPolicyRuntime(runtime, faults),
    controlPlane: (port) => faultyControlPlane(port, faults),
    ...(gateExecutor === undefined ? {} : { gateExecutor }),
  };
}
