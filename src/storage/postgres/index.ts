/**
 * The PostgreSQL backend (SPEC §1 "Distributed"): one pool, versioned migrations, and the stores
 * of every role over them.
 */
export { openPostgresPool, inTransaction, assertSchemaName } from './pool.js';
export type { PostgresPool, PostgresPoolOptions } from './pool.js';
export { migrate, assertSchemaCurrent, MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
export type { Migration, MigrationReport } from './migrations.js';
export { createPostgresLedgerStore } from './ledger-store.js';
export type { PostgresLedgerStoreOptions } from './ledger-store.js';
export { createPostgresBreakerStore } from './breaker-store.js';
