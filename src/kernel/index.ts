/**
 * The kernel: canonical JSON, hashing, keys, envelope verification, Merkle proofs, signed notes,
 * the denial-code catalog and the SQLite schema-version runner (over a connection it is handed).
 * No I/O. Signing lives behind `./signing/index.js`, a separate face that the Execution Layer and
 * the offline verifier can never import (SPEC §1, GEI).
 */
export {
  DENIAL_CODES,
  deny,
  isDeny,
  statusOf,
  isDenialCode,
  FailclosedError,
  denyFromError,
} from './errors.js';
export type { DenialCode, Deny } from './errors.js';
export { parseJson, JSON_DEFAULT_MAX_BYTES, JSON_DEFAULT_MAX_DEPTH, JSON_MAX_DEPTH_CEILING } from './json.js';
export type { JsonValue, JsonObject, JsonLimits } from './json.js';
export { MAX_ANSWER_BYTES, MAX_OUTPUT_BYTES, MAX_RESULT_DEPTH } from './answer-limits.js';
export { canonicalize, canonicalBytes } from './canonical.js';
export {
  OUTPUT_SCHEMA_AJV_OPTIONS,
  outputSchemaDraft,
  pinMcpDefinition,
  mcpEntryKindOf,
  mcpPinnedKindOf,
  uriTemplatePattern,
  uriTemplateVariables,
  MAX_COMPLETION_VALUES,
  MAX_COMPLETION_VALUE_LENGTH,
  uriTemplatePrefix,
  MAX_TEMPLATE_URI_LENGTH,
  PINNED_TEMPLATE_FIELDS,
  PINNED_DEFINITION_FIELDS,
  PINNED_FIELDS_OF,
  PINNED_PROMPT_FIELDS,
  PINNED_RESOURCE_FIELDS,
  CLIENT_REQUEST_KINDS,
} from './mcp-definition.js';
export type { ClientRequestKind, McpEntryKind, McpPinnedKind } from './mcp-definition.js';
export { sha256, sha256Hex, digestEquals, hexDigestEquals } from './hash.js';
export { encodeBase64url, decodeBase64url } from './base64url.js';
export { systemClock, fixedClock } from './clock.js';
export { withDeadline, withCancellableDeadline, isLedgerRef } from './deadline.js';
export type { Settled } from './deadline.js';
export {
  MINTED_CALL_FORMAT,
  REQUEST_SIGNING_CONTEXT,
  REQUEST_FIELDS,
  requestSigningInput,
  requestTraceId,
} from './request.js';
export type { SignedRequest } from './request.js';
export type { Clock } from './clock.js';
export {
  jwkThumbprint,
  parsePublicJwk,
  publicKeyFromRaw,
  publicKeyFromKeyObject,
  verifyEd25519,
  verifyEd25519Async,
  verifyCounts,
  VERIFY_POOL_MAX_QUEUED,
  VERIFY_POOL_WAIT_MS,
  createKeyRing,
  keyRingFromJwks,
} from './keys.js';
export type { Ed25519PublicJwk, Ed25519Jwks, PublicKey, KeyRing, KeyLookup, VerifyCounts } from './keys.js';
export {
  ENVELOPE_TYP,
  ENVELOPE_ALG,
  ENVELOPE_MAX_LENGTH,
  CLAIM_MAX_STRING,
  CLAIM_MAX_ITEMS,
  computeParamsSha256,
  encodeEnvelopeClaims,
  envelopeHeaderText,
  isEnvelopeClaims,
  parseEnvelopeClaims,
} from './envelope/claims.js';
export type {
  EnvelopeClaims,
  EnvelopeConstraints,
  EnvelopeHeader,
  EnvelopeLedgerRef,
} from './envelope/claims.js';
export { verifyEnvelope, verifyEnvelopeAsync } from './envelope/verify.js';
export { claimsOfIssued, envelopeSha256, issuedPayload } from './envelope/issued-record.js';
export type { IssuedEntryLike } from './envelope/issued-record.js';
export type { VerifyEnvelopeContext, VerifiedEnvelope } from './envelope/verify.js';
export {
  HASH_SIZE,
  EMPTY_ROOT,
  leafHash,
  nodeHash,
  rootOf,
  createRootAccumulator,
  createMerkleTree,
  restoreMerkleTree,
  rootFromInclusionProof,
  verifyInclusion,
  verifyConsistency,
} from './merkle.js';
export type { MerkleTree, RootAccumulator } from './merkle.js';
export {
  NOTE_ALG_ED25519,
  NOTE_MAX_BYTES,
  NOTE_MAX_SIGNATURES,
  isValidKeyName,
  isValidNoteText,
  noteKeyId,
  formatNoteSignature,
  parseNote,
  noteVerifierFromVkey,
  noteVerifierFor,
  vkeyFor,
  verifyNote,
  formatCheckpoint,
  parseCheckpoint,
  verifyCheckpoint,
} from './note.js';
export type {
  Note,
  NoteSignature,
  NoteVerifier,
  VerifiedNote,
  Checkpoint,
  VerifiedCheckpoint,
} from './note.js';
export {
  APPROVAL_SIGNING_CONTEXT,
  BREAK_GLASS_SIGNING_CONTEXT,
  REVIEW_SIGNING_CONTEXT,
  STATEMENT_TEXT_MAX,
  intentSha256,
  approvalSigningInput,
  breakGlassSigningInput,
  reviewSigningInput,
  parseStatementTimestamp,
  parseApprovalStatement,
  parseBreakGlassStatement,
  parseReviewStatement,
} from './approval.js';
export type { ApprovalStatement, ApprovalVerdict, BreakGlassStatement, ReviewStatement } from './approval.js';
export {
  ENTRY_TYPES,
  PAYLOAD_ALLOWLIST,
  GENESIS_PREV_HASH,
  BEFORE_ACCEPTANCE_STATUSES,
  settlesAttempt,
  isEntryType,
  disallowedPayloadFields,
  canonicalEntryBody,
  computeEntryHash,
  entryLeafHash,
} from './ledger-format.js';
export type { EntryType, EntryBody } from './ledger-format.js';
export {
  SCHEMA_TABLE_SQL,
  SchemaVersionError,
  checkSchemaVersion,
  migrateSchema,
} from './schema-migrations.js';
export type { SchemaConnection, SchemaMigration, SchemaMigrationResult } from './schema-migrations.js';
export { createDurableWrites } from './durability.js';
export { createInFlight } from './in-flight.js';
export type { InFlight } from './in-flight.js';
export type { DurableWrites } from './durability.js';
export { createSqliteCommitUnit, fileSync } from './sqlite-commit.js';
export { openStoreConnection } from './sqlite-store.js';
export type { StoreConnectionOptions } from './sqlite-store.js';
export { createRequestMemoryPruner } from './request-memory-prune.js';
export type {
  RequestMemoryBatch,
  RequestMemoryPruneOptions,
  RequestMemoryPruner,
  RequestMemoryTable,
} from './request-memory-prune.js';
export type { FileSync, SqliteCommitOptions, SqliteCommitUnit, StagedWrite } from './sqlite-commit.js';
export { isIpLiteral, isLoopbackAddress, parseEgressDestination } from './egress.js';
export { checkServerName } from './server-name.js';
export {
  INVENTORY_FORMAT,
  INVENTORY_MEDIA_TYPE,
  INTERFACE_KINDS,
  TOOL_INTERFACE_KINDS,
  EXECUTOR_INTERFACE_KINDS,
  parseInventory,
  inventoryJson,
  inventoryBytes,
  inventorySha256,
  inventoryLists,
} from './inventory.js';
export type {
  DetailValue,
  InterfaceKind,
  InventoryDocument,
  InventoryEntry,
  OwnerSource,
  PermitReach,
  ReceiptInterface,
} from './inventory.js';
export { NO_OBSERVER, REQUEST_NAME, guardObserver, observedToolName } from './observe.js';
export type { CallEnd, CallStage, Observer } from './observe.js';
export type { EgressDestination } from './egress.js';
export { nextCronTime, nextSlot, parseCron } from './cron.js';
export type { CronSpec, Slot, Timing } from './cron.js';
export {
  DEFAULT_SLOT_SECONDS,
  MAX_SLOT_SECONDS,
  MIN_SLOT_SECONDS,
  SCHEDULE_CREATE_ACTION,
  parseScheduleSpec,
  runRequestId,
} from './schedule-spec.js';
export type { ScheduleSpec } from './schedule-spec.js';
