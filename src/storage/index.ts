/**
 * The storage layer's face for the layers above it: the ledger's single-writer lock (SPEC §4
 * "one writer", L7 ledger protection) and its two backends.
 */
export { WriterLockBusy, WRITER_LOCK_BUSY } from './writer-lock.js';
export type { AcquireOptions, WriterLease, WriterLock } from './writer-lock.js';
export { createFileWriterLock, tryAcquireFileLease } from './sqlite/index.js';
export type { FileWriterLease } from './sqlite/index.js';
export { createPostgresWriterLock } from './postgres/index.js';
export type { PostgresWriterLockOptions } from './postgres/index.js';
