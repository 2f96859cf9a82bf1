/**
 * The SQLite backend of the embedded deployment (SPEC §1 "Embedded"): files under the data
 * directory, each with its own connection and durable (`synchronous=FULL`) commits.
 */
import type { Clock } from '../../kernel/index.js';
import { createSqliteLedgerStore } from '../../ledger/index.js';
import { createSqliteApprovalStore, createSqliteGovernanceState } from '../../control-plane/index.js';
import { createSqliteNonceStore } from '../../execution/index.js';
import { createSqliteGateState } from '../../gate/index.js';
import type { StorageBackend } from '../backend.js';
import type { WriterLease } from '../writer-lock.js';
import { createSqliteBreakerStore } from './breaker-store.js';
import { createSqliteWriteProbe } from './write-probe.js';

/** Where the SQLite backend keeps its files. */
export interface SqliteBackendOptions {
  /** The ledger (`ledger.db`). */
  readonly ledgerPath: string;
  /**
   * Governance state, circuit breakers and the approval state, beside the Gate's clients and
   * request nonces (`state.db`).
   */
  readonly statePath: string;
  /** Envelope nonces of the Execution Layer (`nonces.db`). */
  readonly noncesPath: string;
  readonly clock: Clock;
  /** Nonce rows are kept this long past `exp`: clock tolerance plus the longest envelope life. */
  readonly retainAfterExpSec: number;
  /** Request nonces and ids are kept this long (ms): at least twice the request timestamp tolerance. */
  readonly replayRetentionMs: number;
}

/** The lease of a data directory whose writer lock the composition holds for the process's life. */
const dataDirLease: WriterLease = Object.freeze({
  epoch: 0,
  lost: new Promise<void>(() => undefined),
  isHeld: () => true,
  release: () => Promise.resolve(),
});

/** Opens the SQLite stores (creating their files and tables when missing). */
export function openSqliteBackend(options: SqliteBackendOptions): StorageBackend {
  const ledger = createSqliteLedgerStore({ path: options.ledgerPath });
  const opened: { close(): unknown }[] = [];
  try {
    const governance = createSqliteGovernanceState(options.statePath);
    opened.push(governance);
    const gateState = createSqliteGateState({
      path: options.statePath,
      replayRetentionMs: options.replayRetentionMs,
    });
    opened.push(gateState);
    const breakers = createSqliteBreakerStore(options.statePath);
    opened.push(breakers);
    const approvals = createSqliteApprovalStore(options.statePath);
    opened.push(approvals);
    const nonces = createSqliteNonceStore({
      path: options.noncesPath,
      now: options.clock,
      retainAfterExpSec: options.retainAfterExpSec,
    });
    opened.push(nonces);
    const probes = [
      createSqliteWriteProbe('ledger', options.ledgerPath),
      createSqliteWriteProbe('state', options.statePath),
      createSqliteWriteProbe('nonce_store', options.noncesPath),
    ];
    let closing: Promise<void> | undefined;
    return {
      name: 'sqlite',
      // The data directory's kernel-held writer lock (`lockDataDir`), taken by the composition
      // before it opens the backend, is this backend's lease: its files have no other writer. A
      // second lock object on the same file here would drop that lock (POSIX record locks).
      acquireWriter: () => Promise.resolve(dataDirLease),
      shared: false,
      instance: () => 'local',
      // One process owns the files: at its start, every open request was left by an earlier one.
      async claimOrphanedRequests() {
        if (ledger.openRequests === undefined)
          throw new Error('crash recovery needs a ledger store with open requests');
        return { requests: await ledger.openRequests(), release: () => Promise.resolve() };
      },
      ledger,
      openLedgerReader: () => createSqliteLedgerStore({ path: options.ledgerPath, readonly: true }),
      nonces,
      governance,
      gateState,
      breakers,
      approvals,
      probes,
      close: () =>
        (closing ??= (async () => {
          for (const probe of probes) probe.close();
          await ledger.close();
          await nonces.close();
          await gateState.close();
          breakers.close();
          await approvals.close();
          governance.close();
        })()),
    };
  } catch (err) {
    for (const o of opened) void o.close();
    void ledger.close();
    throw err;
  }
}
