/**
 * The Execution Layer: verifies approval envelopes with issuer public keys only, consumes their
 * nonces, runs tools through adapters inside a sandbox, redacts output and appends execution
 * receipts (SPEC §1, §2 step 7). It never imports the signing face of the kernel or the Control
 * Plane (GEI: "The signing key never leaves the trust boundary").
 */
export { callWithTimeout } from './timeout.js';
export type { Bounded } from './timeout.js';
export { createMemoryNonceStore, assertNonceConsumption } from './nonce-store.js';
export type { NonceStore, NonceConsumption, NonceVerdict, VoidVerdict } from './nonce-store.js';
export {
  createSqliteNonceStore,
  sqliteNonceStoreIdentity,
  sqliteNonceStoreIdentityOn,
} from './sqlite-nonce-store.js';
export type { SqliteNonceStoreOptions } from './sqlite-nonce-store.js';
export { createGroupCommit } from './group-commit.js';
export type { GroupCommit, GroupCommitOptions } from './group-commit.js';
export { createEnvSecretResolver, SECRET_NAME, SECRET_ENV_PREFIX } from './secrets.js';
export type { SecretResolver, EnvSecretResolverOptions } from './secrets.js';
export {
  createRedactor,
  secretForms,
  REDACTION_PATTERNS,
  DEFAULT_REDACTION_PATTERNS,
  REDACTED_SECRET,
} from './redaction.js';
export type { Redactor, RedactorOptions, RedactionPatternName } from './redaction.js';
export {
  CLIENT_REQUEST_METHODS,
  guardRelay,
  LOGGING_LEVELS,
  MAX_ASK_BYTES,
  MAX_NOTICE_BYTES,
  MAX_RELAYED_ASKS,
  MAX_RELAYED_BYTES,
  MAX_RELAYED_NOTICES,
  AskNotSent,
  parseRelayedNotice,
  screenAnswer,
  screenAsk,
} from './relay.js';
export type {
  CallRelay,
  LoggingLevel,
  RelayCounts,
  RelayedAsk,
  RelayedNotice,
  UpstreamNotices,
} from './relay.js';
export type {
  ToolAdapter,
  ToolCall,
  ToolOutput,
  ToolExecutionSpec,
  ExecutionConstraints,
  BuiltinContext,
  BuiltinFunction,
} from './adapters/types.js';
export {
  createBuiltinAdapter,
  createDefaultBuiltins,
  createDefaultBuiltinAdapter,
} from './adapters/builtin.js';
export type { BuiltinAdapterOptions } from './adapters/builtin.js';
export { parseArgvTemplate, renderArgv } from './adapters/argv-template.js';
export type { ArgvTemplate } from './adapters/argv-template.js';
export { createCommandAdapter } from './adapters/command.js';
export { createMcpAdapter, listMcpCatalog, listMcpTools, PROTOCOL_BUDGET_BYTES } from './adapters/mcp.js';
export type { McpListing } from './adapters/mcp-entries.js';
export type { McpAdapterOptions } from './adapters/mcp.js';
export {
  createMcpHttpAdapter,
  listMcpHttpCatalog,
  listMcpHttpTools,
  routeMcpAdapter,
  MAX_UPSTREAM_REQUESTS,
} from './adapters/mcp-http.js';
export type { McpHttpAdapterOptions, McpHeaderValue, McpHttpUpstreamSpec } from './adapters/mcp-http.js';
export {
  createUpstreamTokenCache,
  parseUpstreamOAuth,
  TOKEN_RENEW_MARGIN_MS,
} from './adapters/upstream-oauth.js';
export type { UpstreamOAuthSpec, UpstreamTokenCache } from './adapters/upstream-oauth.js';
export { parseCaPem, parseUpstreamTls } from './adapters/upstream-tls.js';
export type { UpstreamTlsSpec } from './adapters/upstream-tls.js';
export type { CommandAdapterOptions } from './adapters/command.js';
export { createBwrapSandbox, buildSandboxArgv, checkNetworkGrant } from './sandbox/bwrap.js';
export type {
  Sandbox,
  SandboxRequest,
  SandboxExit,
  BwrapSandboxOptions,
  SandboxEgress,
} from './sandbox/bwrap.js';
export { DEFAULT_EGRESS_LIMITS, EGRESS_PORT, startEgressProxy } from './sandbox/egress.js';
export type { EgressLimits, EgressProxy, EgressProxyOptions } from './sandbox/egress.js';
export type {
  EnvelopeLedgerContext,
  ExecutionLedger,
  ExecutionEntry,
  ExecutionEntryType,
  LedgerRecord,
  LedgerRef,
} from './ledger.js';
export { createExecutor } from './executor.js';
export type {
  Executor,
  ExecutorDeps,
  ExecutionInput,
  ExecutionOutcome,
  Executed,
  VoidInput,
  VoidOutcome,
} from './executor.js';
export { createHttpAdapter, parseHttpUrlTemplate } from './adapters/http.js';
export type { HttpUrlTemplate } from './adapters/http.js';
