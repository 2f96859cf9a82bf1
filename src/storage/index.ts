/**
 * Storage backends behind one seam (SPEC §4): SQLite for the embedded default, PostgreSQL for
 * the distributed shape, and the ledger's single-writer lock (SPEC §4 "one writer", L7 ledger
 * protection) on each.
 */
export type { PolicyBundleMirror, ReadinessProbe, StorageBackend } from './backend.js';
export { openSqliteBackend } from './sqlite/backend.js';
export type { SqliteBackendOptions } from './sqlite/backend.js';
export { createSqliteWriteProbe } from './sqlite/write-probe.js';
export type { SqliteWriteProbe } from './sqlite/write-probe.js';
export { WriterLockBusy, WRITER_LOCK_BUSY, pauseUnlessAborted } from './writer-lock.js';
export type { AcquireOptions, WriterLease, WriterLock } from './writer-lock.js';
export { createFileWriterLock, tryAcquireFileLease } from './sqlite/index.js';
export type { FileWriterLease } from './sqlite/index.js';
export {
  openPostgresBackend,
  openPostgresPool,
  migrate,
  assertSchemaCurrent,
  createPostgresNonceStore,
  postgresNonceStoreIdentity,
  createPostgresLedgerStore,
  createPostgresGateState,
  createPostgresOperatorStore,
  createPostgresWriteProbe,
  acquireInstanceLease,
  GATE_INSTANCE_PREFIX,
} from './postgres/index.js';
export type { PostgresBackendOptions, PostgresPool } from './postgres/index.js';
export { createSqliteBreakerStore } from './sqlite/breaker-store.js';
export type { SqliteBreakerStore } from './sqlite/breaker-store.js';
