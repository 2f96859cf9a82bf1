/**
 * The client library (docs/client.md): the signing client that builds Ed25519-signed requests
 * (docs/request-format.md, FC-INV-3) and sends them to the Gate, client key generation, the
 * approver client and the operator (admin) client. Imports only the kernel and its signing face.
 */
export {
  createClient,
  neverSent,
  parseCallResult,
  parseJobState,
  parseSubmitResult,
  readJob,
} from './client.js';
export type {
  CallOptions,
  CallResult,
  ClientOptions,
  FailclosedClient,
  JobState,
  QueuedCall,
  SubmitResult,
} from './client.js';
export { REQUEST_CONTEXT, buildSignedRequest, newRequestId, requestSigningBytes } from './request.js';
export type { BuildRequestInput, SignedRequestBody } from './request.js';
export { createApproverClient, signApproval, signBreakGlass, signReview } from './approver.js';
export type { ApproverAnswer, ApproverClient, ApproverClientOptions, BreakGlassRequest } from './approver.js';
export { generateClientKey, loadClientKey } from './keys.js';
export { CLIENT_TOKEN_TYPE, signClientToken } from './mcp-token.js';
export type { ClientKey } from './keys.js';
export { createAdminClient } from './admin.js';
export { downloadBundle } from './download.js';
export { nodeExchange, sendJson } from './http.js';
export type { GateHttpAnswer } from './http.js';
export type { DownloadAnswer } from './download.js';
export type {
  AdminAnswer,
  AdminClient,
  AdminClientOptions,
  ApproverRegistration,
  ClientRegistration,
  ExportOptions,
} from './admin.js';
export type { SigningKey, Ed25519PrivateJwk } from '../kernel/signing/index.js';
export type { Ed25519PublicJwk } from '../kernel/index.js';
