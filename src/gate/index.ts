/**
 * The Gate: HTTP ingress, client authentication, routing (SPEC §1, §2 steps 1, 2, 6, 8). Its
 * run-time imports stop at the kernel's verifying face; the Control Plane, the Execution Layer and
 * the ledger reach it only as injected interfaces (FC-INV-6, test/layering.test.ts).
 */
export { createGate } from './gate.js';
export type { CallOptions, Gate, GateAnswer, ToolListing } from './gate.js';
export type { AuthMethod, Principal, PrincipalCall } from './principal.js';
export {
  createMcpAuthenticator,
  CLIENT_TOKEN_TYPE,
  MAX_CLIENT_TOKEN_SEC,
  OAUTH_ALGORITHMS,
  OAUTH_IDENTITY_PREFIX,
  oauthIdentity,
} from './mcp/auth.js';
export type { McpAuthenticator, McpAuthOptions, OAuthIssuerConfig } from './mcp/auth.js';
export { createMcpEndpoint, PROTECTED_RESOURCE_PATH, resourceMetadataUrl } from './mcp/endpoint.js';
export type { McpEndpoint, McpEndpointSettings } from './mcp/endpoint.js';
export { CALL_META_KEY, toolResultOf } from './mcp/tools.js';
export { boundCallOf } from './mcp/bound.js';
export type { BoundCall } from './mcp/bound.js';
export { MAX_CALL_WAIT_MS, OPERATOR_READER, redactedId } from './gate.js';
export { isApprovalPath, routeApprovals } from './approval-routes.js';
export { createGateServer, MAX_HEADER_BYTES } from './server.js';
export type { GateServer, GateServerOptions } from './server.js';
export {
  REQUEST_SIGNING_CONTEXT,
  MAX_REQUEST_BYTES,
  MAX_REQUEST_DEPTH,
  parseSignedRequest,
  parseRequestValue,
  parseRequestTimestamp,
  requestSigningInput,
  traceIdOf,
} from './request.js';
export type { SignedRequest, ParsedRequest } from './request.js';
export { CLIENT_ROLE_RE, clientJwksOf, MAX_CLIENT_ROLES, parseClientRoles } from './state.js';
export type { ClientRecord, ClientRegistration, GateStateStore } from './state.js';
export { createSqliteGateState } from './sqlite-state.js';
export {
  BOOTSTRAP_OPERATOR,
  createSqliteOperatorStore,
  OIDC_SUBJECT,
  OPERATOR_NAME,
  OPERATOR_TENANT,
  operatorCovers,
  parseOperatorRow,
  storedTenants,
} from './operators.js';
export type {
  OperatorIdentity,
  OperatorOidcBinding,
  OperatorRecord,
  OperatorStore,
  OperatorTenants,
} from './operators.js';
export { DEFAULT_MAX_INFLIGHT } from './types.js';
export type { CatalogListing, McpEntryInfo } from './types.js';
export type { SqliteGateStateOptions } from './sqlite-state.js';
export { buildEvidenceView, decodeEnvelopeClaims } from './evidence.js';
export { parseQueuedJob } from './jobs.js';
export { settlesView } from './job-view.js';
export type { GateJobQueue, JobDelivery, QueuedJob } from './jobs.js';
export type {
  CallResponse,
  CheckpointView,
  ClientRegistry,
  ExecutionCall,
  ExecutionResult,
  GateControlPlane,
  GateDeps,
  GateApprovals,
  GateExecutor,
  VoidCall,
  VoidResult,
  GateLedger,
  EvidenceRead,
  GateTimeouts,
  GatewayEvent,
  LedgerEntryView,
  LedgerRef,
  OperatorActions,
  OperatorAnswer,
  ReadinessCheck,
  RegisteredClient,
  RequestReplayStore,
  RouteAnswer,
} from './types.js';
