/**
 * The SQLite backend of the embedded deployment (SPEC §1 "Embedded"): files under the data
 * directory, each with its own connection and durable (`synchronous=FULL`) commits.
 */
import type { Clock } from '../../kernel/index.js';
import { createSqliteLedgerStore } from '../../ledger/index.js';
import { createSqliteGovernanceState } from '../../control-plane/index.js';
import { createSqliteNonceStore } from '../../execution/index.js';
import type { StorageBackend } from '../backend.js';
import { createSqliteWriteProbe } from './write-probe.js';

/** Where the SQLite backend keeps its files. */
export interface SqliteBackendOptions {
  /** The ledger (`ledger.db`). */
  readonly ledgerPath: string;
  /** Governance state, beside the Gate's clients and request nonces (`state.db`). */
  readonly statePath: string;
  /** Envelope nonces of the Execution Layer (`nonces.db`). */
  readonly noncesPath: string;
  readonly clock: Clock;
  /** Nonce rows are kept this long past `exp`: clock tolerance plus the longest envelope life. */
  readonly retainAfterExpSec: number;
}

/** Opens the SQLite stores (creating their files and tables when missing). */
export function openSqliteBackend(options: SqliteBackendOptions): StorageBackend {
  const ledger = createSqliteLedgerStore({ path: options.ledgerPath });
  const opened: { close(): unknown }[] = [];
  try {
    const governance = createSqliteGovernanceState(options.statePath);
    opened.push(governance);
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
      ledger,
      openLedgerReader: () => createSqliteLedgerStore({ path: options.ledgerPath, readonly: true }),
      nonces,
      governance,
      probes,
      close: () =>
        (closing ??= (async () => {
          for (const probe of probes) probe.close();
          await ledger.close();
          await nonces.close();
          governance.close();
        })()),
    };
  } catch (err) {
    for (const o of opened) void o.close();
    void ledger.close();
    throw err;
  }
}
