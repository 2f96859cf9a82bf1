/**
 * failclosed's public API (docs/client.md): the signing client for agents (FC-INV-3), client key
 * generation, the approver and operator clients, and the embedded composition (all four roles
 * in one process, SPEC §1).
 */
export {
  createClient,
  buildSignedRequest,
  parseCallResult,
  REQUEST_CONTEXT,
  generateClientKey,
  loadClientKey,
  createAdminClient,
  createApproverClient,
} from './client/index.js';
export type {
  CallOptions,
  CallResult,
  ClientOptions,
  FailclosedClient,
  SignedRequestBody,
  BuildRequestInput,
  ClientKey,
  SigningKey,
  Ed25519PrivateJwk,
  Ed25519PublicJwk,
  AdminAnswer,
  AdminClient,
  AdminClientOptions,
  ApproverRegistration,
  ClientRegistration,
  ExportOptions,
  ApproverAnswer,
  ApproverClient,
  ApproverClientOptions,
  BreakGlassRequest,
} from './client/index.js';
export { initDataDir, startEmbedded } from './embedded/index.js';
export type { EmbeddedInstance, EmbeddedOptions, CoreDecorators } from './embedded/index.js';
export { DENIAL_CODES } from './kernel/index.js';
export type { DenialCode, Deny } from './kernel/index.js';
