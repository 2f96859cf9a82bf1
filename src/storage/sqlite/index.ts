/**
 * The embedded (SQLite) side of the storage layer: the ledger's single-writer lock file.
 */
export { createFileWriterLock, tryAcquireFileLease } from './writer-lock.js';
export type { FileWriterLease } from './writer-lock.js';
