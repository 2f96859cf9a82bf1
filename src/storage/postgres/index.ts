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
export { createPostgresWriteProbe } from './probe.js';
export { WRITER_LOCK_CLASS, writerSessionConfig } from './writer-lock.js';
export { acquireInstanceLease, GATE_INSTANCE_PREFIX } from './instance-lease.js';
export type { InstanceLease, InstanceLeaseOptions } from './instance-lease.js';
export { createPostgresGateState } from './gate-state.js';
export type { PostgresGateStateOptions } from './gate-state.js';
export { createPostgresNonceStore, postgresNonceStoreIdentity } from './nonce-store.js';
export type { PostgresNonceStoreOptions } from './nonce-store.js';
export { createPostgresGovernanceState } from './governance-state.js';
export type { PostgresGovernanceState } from './governance-state.js';
export { createPostgresApprovalStore, DECISION_LOCK_CLASS } from './approval-store.js';
export { createPostgresBreakerStore } from './breaker-store.js';
export { createPostgresConsoleStore } from './console-store.js';
export { createPostgresOperatorStore } from './operator-store.js';
export { createPostgresScheduleStore } from './schedule-store.js';
export { createPostgresDecisionClaims } from './decision-claims.js';
export { createPostgresBundleMirror } from './bundle-mirror.js';
export { openPostgresBackend } from './backend.js';
export type { PostgresBackendOptions } from './backend.js';
