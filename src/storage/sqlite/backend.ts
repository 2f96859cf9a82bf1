/**
 * The SQLite backend of the embedded deployment (SPEC §1 "Embedded"): ONE file, `ledger.db`,
 * holding the ledger and every other store's tables, on one connection whose commits the stores
 * share (`sqlite-commit.ts`; durable once the write-ahead log is `fsync`ed, off the event loop): a governed call's writes up to its
 * decision, its envelope nonce, and its receipt with the Gate's completion are three commits,
 * shared with every other call written in the same turn (SPEC §8 "durable writes").
 * A data directory of the older layout (`state.db`, `nonces.db` beside it) is merged into it at
 * open (`merge-files.ts`).
 */
import Database from 'better-sqlite3';
import {
  createSqliteCommitUnit,
  type Clock,
  type FileSync,
  type SqliteCommitOptions,
} from '../../kernel/index.js';
import { createSqliteLedgerStore } from '../../ledger/index.js';
import {
  createSqliteApprovalStore,
  createSqliteDecisionClaims,
  createSqliteGovernanceState,
} from '../../control-plane/index.js';
import { createSqliteConsoleStore } from '../../console/index.js';
import { createSqliteNonceStore, sqliteNonceStoreIdentityOn } from '../../execution/index.js';
import { createSqliteGateState, createSqliteOperatorStore } from '../../gate/index.js';
import { createSqliteScheduleStore } from '../../schedules/index.js';
import type { StorageBackend } from '../backend.js';
import type { WriterLease } from '../writer-lock.js';
import { createSqliteBreakerStore } from './breaker-store.js';
import { createSqliteUnitProbe } from './write-probe.js';
import { mergeLegacyFile } from './merge-files.js';

/** Where the SQLite backend keeps its files. */
export interface SqliteBackendOptions {
  /** The ledger (`ledger.db`). */
  readonly ledgerPath: string;
  /**
   * Where the older layout kept the governance state, circuit breakers, approval state and the
   * Gate's clients and request nonces (`state.db`): merged into the ledger's file when present.
   */
  readonly statePath: string;
  /** Where the older layout kept the envelope nonces (`nonces.db`): merged likewise. */
  readonly noncesPath: string;
  readonly clock: Clock;
  /** Nonce rows are kept this long past `exp`: clock tolerance plus the longest envelope life. */
  readonly retainAfterExpSec: number;
  /**
   * Request nonces and ids, and the Control Plane's decision claims, are kept this long (ms): at
   * least twice the request timestamp tolerance.
   */
  readonly replayRetentionMs: number;
  /** How the write-ahead log is made durable (default: `fsync`, `src/kernel/sqlite-commit.ts`). */
  readonly fileSync?: FileSync;
  /** Told each shared transaction's size and commit time (`SqliteCommitOptions.observer`). */
  readonly observer?: SqliteCommitOptions['observer'];
}

/** The lease of a data directory whose writer lock the composition holds for the process's life. */
const dataDirLease: WriterLease = Object.freeze({
  epoch: 0,
  lost: new Promise<void>(() => undefined),
  isHeld: () => true,
  release: () => Promise.resolve(),
});

/** Opens the SQLite stores (creating their files and tables when missing). */
export async function openSqliteBackend(options: SqliteBackendOptions): Promise<StorageBackend> {
  const db = new Database(options.ledgerPath);
  let unit;
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    // The unit sets `synchronous=NORMAL` and syncs the log itself, off the event loop.
    unit = createSqliteCommitUnit(db, {
      ...(options.fileSync === undefined ? {} : { fileSync: options.fileSync }),
      ...(options.observer === undefined ? {} : { observer: options.observer }),
    });
  } catch (err) {
    db.close();
    throw err;
  }
  const opened: { close(): unknown }[] = [];
  let ledger: ReturnType<typeof createSqliteLedgerStore> | undefined;
  try {
    ledger = createSqliteLedgerStore({ path: options.ledgerPath, unit });
    const governance = createSqliteGovernanceState(options.ledgerPath, { unit });
    opened.push(governance);
    const gateState = createSqliteGateState({
      path: options.ledgerPath,
      unit,
      replayRetentionMs: options.replayRetentionMs,
    });
    opened.push(gateState);
    const breakers = createSqliteBreakerStore(options.ledgerPath, { unit });
    opened.push(breakers);
    const approvals = createSqliteApprovalStore(options.ledgerPath, { unit });
    opened.push(approvals);
    const decisionClaims = createSqliteDecisionClaims(options.ledgerPath, {
      unit,
      retentionMs: options.replayRetentionMs,
    });
    opened.push(decisionClaims);
    const consoleStore = createSqliteConsoleStore(options.ledgerPath, { unit });
    opened.push(consoleStore);
    const operators = createSqliteOperatorStore(options.ledgerPath, { unit });
    opened.push(operators);
    const schedules = createSqliteScheduleStore(options.ledgerPath, { unit });
    opened.push(schedules);
    const nonces = createSqliteNonceStore({
      path: options.ledgerPath,
      unit,
      now: options.clock,
      retainAfterExpSec: options.retainAfterExpSec,
    });
    opened.push(nonces);
    // The older layout's files: their stores bring them to this build's schema, then their rows move.
    await mergeLegacyFile(unit, options.statePath, async (path) => {
      createSqliteGovernanceState(path).close();
      await createSqliteGateState({ path }).close();
      createSqliteBreakerStore(path).close();
      await createSqliteApprovalStore(path).close();
    });
    await mergeLegacyFile(unit, options.noncesPath, async (path) => {
      await createSqliteNonceStore({ path, now: options.clock }).close();
    });
    const ledgerStore = ledger;
    // The checks keep their names (`/readyz`); each is a real durable write to the one file.
    const probes = [
      createSqliteUnitProbe('ledger', unit),
      createSqliteUnitProbe('state', unit),
      createSqliteUnitProbe('nonce_store', unit),
    ];
    let closing: Promise<void> | undefined;
    return {
      name: 'sqlite',
      // The nonces live in the one file, with the ledger: asked and written on its connection.
      nonceStoreIdentity: () =>
        Promise.resolve().then(() => unit.writeNow(() => sqliteNonceStoreIdentityOn(unit.db))),
      // The data directory's kernel-held writer lock (`lockDataDir`), taken by the composition
      // before it opens the backend, is this backend's lease: its files have no other writer. A
      // second lock object on the same file here would drop that lock (POSIX record locks).
      acquireWriter: () => Promise.resolve(dataDirLease),
      commits: () => unit.commits,
      shared: false,
      instance: () => 'local',
      // One process owns the files: at its start, every open request was left by an earlier one.
      async claimOrphanedRequests() {
        if (ledgerStore.openRequests === undefined)
          throw new Error('crash recovery needs a ledger store with open requests');
        return { requests: await ledgerStore.openRequests(), release: () => Promise.resolve() };
      },
      ledger: ledgerStore,
      openLedgerReader: () => createSqliteLedgerStore({ path: options.ledgerPath, readonly: true }),
      nonces,
      governance,
      gateState,
      breakers,
      approvals,
      decisionClaims,
      console: consoleStore,
      operators,
      schedules,
      probes,
      close: () =>
        (closing ??= (async () => {
          for (const probe of probes) probe.close();
          await ledgerStore.close();
          await nonces.close();
          await gateState.close();
          breakers.close();
          await approvals.close();
          await decisionClaims.close();
          await consoleStore.close();
          await operators.close();
          await schedules.close();
          governance.close();
          unit.close();
        })()),
    };
  } catch (err) {
    for (const o of opened) void o.close();
    void ledger?.close();
    unit.close();
    throw err;
  }
}
