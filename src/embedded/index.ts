/**
 * The embedded deployment: all four roles in one process over SQLite files in a data directory
 * (SPEC §1). The composition root: it may import every role.
 */
export {
  assertControlPlaneConfig,
  controlPlaneConfigGaps,
  initDataDir,
  startEmbedded,
  DEFAULT_GRACE_MS,
} from './embedded.js';
export type { EmbeddedInstance, EmbeddedOptions, InitResult, StopReport } from './embedded.js';
export { parseBackendSpec, redactedBackend, resolveBackendSpec } from './backend-spec.js';
export { gateLedgerOver, openCore } from './core.js';
export { buildTrustRoots } from './trust-roots.js';
export type { TrustRootSources } from './trust-roots.js';
export type { Core, CoreOptions, EmbeddedDeadlines } from './core.js';
export { followIssuerKeys } from './ports.js';
export { createReplicaFollower, DEFAULT_FOLLOW_MS } from './replica-follow.js';
export type { ReplicaFollower, ReplicaFollowerDeps } from './replica-follow.js';
export type { CoreDecorators, LedgerPort, ToolRunObserver } from './ports.js';
export { createExecutionServer } from './execution-server.js';
export type { ExecutionServer, ExecutionServerOptions, ExecutionTls } from './execution-server.js';
export { createRemoteExecutor, traceparentOf } from './remote-executor.js';
export type { RemoteExecutorOptions } from './remote-executor.js';
export { parseTlsConfig, parseExecutorUrl, tlsFilesFor } from './tls-config.js';
export { startGateNode, parseGateConfig, readGateConfig } from './gate-node.js';
export type { GateNode, GateNodeConfig, GateNodeOptions } from './gate-node.js';
export { startLedgerNode, parseLedgerConfig, readLedgerConfig } from './ledger-node.js';
export type { LedgerNode, LedgerNodeConfig, LedgerNodeOptions } from './ledger-node.js';
export { LEDGER_BINDING_FILE, LedgerBindingError, readLedgerBinding } from './ledger-binding.js';
export type { LedgerBinding } from './ledger-binding.js';
export { createRemoteControlPlane, createRemoteGateLedger, decisionOf } from './control-plane-link.js';
export {
  startExecutorNode,
  parseExecutorConfig,
  readExecutorConfig,
  createGateLedger,
  createGateTrust,
  KID_REFETCH_MS,
  policyBundleNamed,
  openExecutorNonceStore,
} from './executor-node.js';
export type {
  ExecutorNode,
  ExecutorNodeConfig,
  ExecutorNodeOptions,
  GateLedger,
  GateTrust,
} from './executor-node.js';
export { createInternalServer, EXECUTOR_ENTRY_TYPES } from './internal-server.js';
export type { InternalServerOptions } from './internal-server.js';
export type { TlsConfig, TlsIdentityConfig } from './tls-config.js';
export { createOperatorActions, OPERATOR_ACTOR } from './admin.js';
export {
  buildExecutorNodeInventory,
  buildInventory,
  EXECUTE_GUARD,
  INVENTORY_PROVIDERS,
  listenerInterfaces,
  toolInterfaces,
} from './inventory.js';
export type { InventoryProvider, InventorySources } from './inventory.js';
export {
  createInventoryRecorder,
  currentInventory,
  recordStartInventory,
  recordingInventory,
} from './inventory-record.js';
export type { InventoryReason, InventoryRecorder } from './inventory-record.js';
export type { OperatorDeps } from './admin.js';
export {
  DEMO_CLIENT,
  dataPaths,
  defaultConfig,
  parseConfig,
  readConfig,
  readClientFile,
  writeClientFile,
  readOperatorToken,
  readSigningKey,
  demoPolicyDir,
} from './data-dir.js';
export type { ClientFile, EmbeddedConfig } from './data-dir.js';
export { lockDataDir } from './instance-lock.js';
export {
  announceServer,
  withdrawServer,
  runningServer,
  connect,
  getJson,
  operatorAction,
  operatorDownload,
} from './connect.js';
export type { ConnectOptions, Connection, HttpAnswer } from './connect.js';
export { approvalConfigPath, openApprovals } from './approvals.js';
export { notificationsPath, openNotifications } from './notifications.js';
export type { EmbeddedNotifications } from './notifications.js';
export type { EmbeddedApprovals } from './approvals.js';
export {
  registryOperators,
  relyingPartyFor,
  consoleEndpointFor,
  decisionReader,
  openConsole,
  operatorConsoleFor,
  policyPagesFor,
  withConsoleActions,
} from './console.js';
export type { EmbeddedConsole } from './console.js';
export {
  createTelemetry,
  createMetrics,
  createTracing,
  parseTraceparent,
  resolveTelemetrySettings,
  serveMetrics,
} from './telemetry/index.js';
export type {
  LogLevel,
  Metrics,
  MetricsServer,
  Telemetry,
  TelemetryOptions,
  Tracing,
} from './telemetry/index.js';
