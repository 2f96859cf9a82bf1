/** SQLite ledger backend (embedded default, SPEC §4). */
export { createSqliteLedgerStore } from './sqlite-store.js';
export type { SqliteLedgerStore, SqliteLedgerStoreOptions } from './sqlite-store.js';
