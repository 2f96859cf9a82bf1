/**
 * Storage backends behind one seam (SPEC §4): SQLite for the embedded default, PostgreSQL for
 * the distributed shape.
 */
export type { ReadinessProbe, StorageBackend } from './backend.js';
export { openSqliteBackend } from './sqlite/backend.js';
export type { SqliteBackendOptions } from './sqlite/backend.js';
export { createSqliteWriteProbe } from './sqlite/write-probe.js';
export type { SqliteWriteProbe } from './sqlite/write-probe.js';
export { createSqliteBreakerStore } from './sqlite/breaker-store.js';
export type { SqliteBreakerStore } from './sqlite/breaker-store.js';
