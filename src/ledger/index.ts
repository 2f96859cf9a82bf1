/**
 * The Audit System's ledger (SPEC §4): entries, the single group-commit writer, signed
 * checkpoints, proofs, evidence, the `LedgerStore` interface and the audit-bundle export.
 * Backends live in their own folders (`./sqlite/index.js`).
 */
export { ENTRY_TYPES, PAYLOAD_ALLOWLIST, isEntryType, disallowedPayloadFields } from './entry-types.js';
export type { EntryType } from './entry-types.js';
export {
  GENESIS_PREV_HASH,
  computeEntryHash,
  entryLeafHash,
  entryJson,
  parseEntryInput,
  parseStoredEntry,
} from './entry.js';
export type { Actor, EntryInput, EntryRef, LedgerEntry } from './entry.js';
export type {
  EnvelopeContext,
  LedgerStore,
  StoredCheckpoint,
  EvidenceBlob,
  StoreHead,
  OpenRequest,
  TreeChunk,
  TreeSnapshot,
} from './store.js';
export { REQUEST_OUTCOME_TYPES, TREE_CHUNK_HASHES } from './store.js';
export { createLedger } from './writer.js';
export type {
  Ledger,
  LedgerOptions,
  AppendOptions,
  AppendReceipt,
  Continuation,
  ContinuedReceipt,
} from './writer.js';
export type { CheckpointSigner, CheckpointWitness, LedgerKey } from './checkpoint.js';
export { ledgerKeyFromVkey } from './checkpoint.js';
export { exportBundle, AUDIT_BUNDLE_FORMAT } from './export.js';
export type {
  ExportOptions,
  ExportedBundle,
  BundlePublicKeys,
  BundleClientIdentity,
  BundleExecutor,
} from './export.js';
export {
  exportBundleStream,
  writeBundleFile,
  AUDIT_BUNDLE_FORMAT_V2,
  EXPORT_CHUNK_ENTRIES,
} from './export-stream.js';
export type { LedgerReader, StreamExportOptions, StreamedExport } from './export-stream.js';
export { createSqliteLedgerStore } from './sqlite/index.js';
export type { SqliteLedgerStore, SqliteLedgerStoreOptions } from './sqlite/index.js';
