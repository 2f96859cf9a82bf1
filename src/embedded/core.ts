/**
 * The composition root of the embedded deployment (SPEC §1): the four roles in one process,
 * talking only through their interfaces, with SQLite files under the data directory (`ledger.db`;
 * `state.db` for clients, request nonces and governance; `nonces.db` for the Execution Layer).
 * The Execution Layer gets the issuer's PUBLIC keys only and verifies every envelope itself.
 */
import { readFileSync } from 'node:fs';
import { isDeny, keyRingFromJwks, systemClock } from '../kernel/index.js';
import type { Clock } from '../kernel/index.js';
import { noteSignerFor } from '../kernel/signing/index.js';
import { createLedger, createSqliteLedgerStore } from '../ledger/index.js';
import type { EntryInput, Ledger } from '../ledger/index.js';
import {
  compilePolicyBundle,
  createBundleStore,
  createControlPlane,
  createSqliteGovernanceState,
} from '../control-plane/index.js';
import type { BundleStore, ControlPlaneService, SqliteGovernanceState } from '../control-plane/index.js';
import {
  createCommandAdapter,
  createDefaultBuiltinAdapter,
  createBwrapSandbox,
  createExecutor,
  createRedactor,
  createSqliteNonceStore,
} from '../execution/index.js';
import type { Executor, NonceStore, Sandbox } from '../execution/index.js';
import { createGate, createSqliteGateState } from '../gate/index.js';
import type { Gate, GateLedger, GateStateStore, LedgerEntryView } from '../gate/index.js';
import { dataPaths, operatorTokenSha256, readConfig, readSigningKey } from './data-dir.js';
import type { EmbeddedConfig } from './data-dir.js';
import { createOperatorActions } from './admin.js';

/**
 * Fault switches for tests and the demo (SPEC §7 scenarios 5, 8, 9). Each only makes a
 * dependency fail, so by construction it can only ever cause denies.
 */
export interface EmbeddedFaults {
  /** The Control Plane rejects every decision. */
  controlPlaneDown: boolean;
  /** The Execution Layer's nonce store rejects every consumption. */
  nonceStoreDown: boolean;
  /** Every ledger write rejects. */
  ledgerDown: boolean;
}

/** A fresh set of {@link EmbeddedFaults}, all off. */
export function noFaults(): EmbeddedFaults {
  return { controlPlaneDown: false, nonceStoreDown: false, ledgerDown: false };
}

/** The opened roles and stores. */
export interface Core {
  readonly dir: string;
  readonly config: EmbeddedConfig;
  readonly clock: Clock;
  readonly faults: EmbeddedFaults;
  readonly ledger: Ledger;
  /** The ledger as every role writes to it (honours `faults.ledgerDown`). */
  readonly ledgerPort: Pick<Ledger, 'append' | 'putEvidence' | 'hasEntry'>;
  readonly state: GateStateStore;
  readonly governance: SqliteGovernanceState;
  readonly bundles: BundleStore;
  readonly controlPlane: ControlPlaneService;
  readonly executor: Executor;
  readonly nonces: NonceStore;
  readonly sandbox: Sandbox;
  readonly gate: Gate;
  close(): Promise<void>;
}

/** Options of {@link openCore}. */
export interface CoreOptions {
  readonly faults?: EmbeddedFaults;
  readonly clock?: Clock;
}

const down = (what: string): Promise<never> => Promise.reject(new Error(`${what} unavailable (fault injected)`));

function gateLedgerOver(ledger: Ledger, port: Core['ledgerPort']): GateLedger {
  return {
    putEvidence: (bytes, mediaType) => port.putEvidence(bytes, mediaType),
    appendGatewayEvent: (e) =>
      port.append({
        type: e.type,
        trace_id: e.trace_id,
        // Requests that never authenticated have no trustworthy id or tenant: recorded as ''.
        request_id: e.request_id ?? '',
        tenant: e.tenant ?? '',
        actor: { id: e.identity ?? 'anonymous', role: 'gate' },
        payload: e.payload,
      }),
    entriesForRequest: async (id) => (await ledger.store.readByRequest(id)) as unknown as LedgerEntryView[],
    // A fresh checkpoint at the committed size, so every record of the request has a proof.
    latestCheckpoint: async () => (ledger.size() === 0 ? null : await ledger.checkpoint()),
    proveInclusion: (index, size) => Promise.resolve(ledger.proveInclusion(index, size)),
  };
}

/** Opens every role over an initialised data directory (see `initDataDir`). */
export async function openCore(dir: string, options: CoreOptions = {}): Promise<Core> {
  const p = dataPaths(dir);
  const config = readConfig(dir);
  const clock = options.clock ?? systemClock;
  const faults = options.faults ?? noFaults();
  const ledgerKey = readSigningKey(p.ledgerKey);
  const ledger = await createLedger({
    store: createSqliteLedgerStore({ path: p.ledgerDb }),
    clock,
    checkpointSigner: noteSignerFor(config.origin, ledgerKey.privateKey),
    origin: config.origin,
    checkpointEvery: { entries: 256, ms: 10_000 },
  });
  const ledgerPort: Core['ledgerPort'] = {
    append: (e: EntryInput) => (faults.ledgerDown ? down('ledger') : ledger.append(e)),
    putEvidence: (b, m) => (faults.ledgerDown ? down('ledger') : ledger.putEvidence(b, m)),
    hasEntry: (ref, expect) => (faults.ledgerDown ? down('ledger') : ledger.hasEntry(ref, expect)),
  };
  const state = createSqliteGateState({ path: p.stateDb, replayRetentionMs: Math.max(7 * 86_400_000, 2 * config.timestamp_tolerance_ms) });
  const governance = createSqliteGovernanceState(p.stateDb);
  const bundles = createBundleStore({ dir: p.bundles, compile: compilePolicyBundle, ledger: ledgerPort, now: clock, ledgerTimeoutMs: 2000 });
  const controlPlane = createControlPlane({
    ledger: ledgerPort,
    now: clock,
    issuer: { key: readSigningKey(p.issuerKey), iss: config.issuer, audience: config.audience, envelopeTtlSec: config.envelope_ttl_sec },
    bundles,
    state: governance,
    derivationKey: Buffer.from(readFileSync(p.derivationKey, 'utf8').trim(), 'hex'),
  });
  const sqliteNonces = createSqliteNonceStore({ path: p.noncesDb, now: clock });
  const nonces: NonceStore = {
    consume: (input) => (faults.nonceStoreDown ? down('nonce store') : sqliteNonces.consume(input)),
    prune: (input) => sqliteNonces.prune(input),
    close: () => sqliteNonces.close(),
  };
  const sandbox = createBwrapSandbox();
  const executor = createExecutor({
    audience: config.audience,
    // Public keys only: the Execution Layer never sees the issuer's private key (SPEC §1, GEI).
    keys: keyRingFromJwks(controlPlane.issuerJwks()),
    now: clock,
    clockToleranceSec: config.clock_tolerance_sec,
    maxLifetimeSec: config.max_envelope_lifetime_sec,
    isKnownPolicyBundle: (hash) => !isDeny(bundles.get(hash)),
    ledger: ledgerPort,
    nonces,
    resolveTool: (hash, name) => {
      const runtime = bundles.get(hash);
      if (isDeny(runtime)) return undefined;
      return runtime.getTool(name)?.adapter;
    },
    adapters: { builtin: createDefaultBuiltinAdapter({ now: clock }), command: createCommandAdapter({ sandbox }) },
    redactor: createRedactor({ secrets: () => [] }),
    timeouts: { ledgerMs: 2000, nonceMs: 1000 },
  });
  const gate = createGate({
    clock,
    clients: state,
    replay: state,
    ledger: gateLedgerOver(ledger, ledgerPort),
    controlPlane: {
      decide: (req) => (faults.controlPlaneDown ? down('control plane') : controlPlane.decide(req)),
      ready: () => (faults.controlPlaneDown ? Promise.resolve({ ready: false }) : controlPlane.ready()),
      issuerJwks: () => controlPlane.issuerJwks(),
    },
    executor: { execute: (call) => executor.execute(call) },
    timestampToleranceMs: config.timestamp_tolerance_ms,
    operatorTokenSha256: operatorTokenSha256(dir),
    operator: createOperatorActions({ clock, ledger, ledgerPort, state, controlPlane, bundles }),
    readiness: [
      { name: 'ledger', check: async () => !faults.ledgerDown && (await ledger.store.head()).size >= 0 },
      { name: 'state', check: () => state.ping() },
      { name: 'nonce_store', check: () => !faults.nonceStoreDown },
      { name: 'policy', check: () => !isDeny(bundles.active()) },
      { name: 'sandbox', check: async () => (await sandbox.probe()).outcome === 'ok' },
    ],
  });
  return {
    dir: p.root,
    config,
    clock,
    faults,
    ledger,
    ledgerPort,
    state,
    governance,
    bundles,
    controlPlane,
    executor,
    nonces,
    sandbox,
    gate,
    async close() {
      await ledger.close();
      await sqliteNonces.close();
      state.close();
      governance.close();
    },
  };
}
