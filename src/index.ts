/**
 * failclosed's public API: the signing client for agents (FC-INV-3) and the embedded
 * composition (all four roles in one process, SPEC §1).
 */
export { createClient, buildSignedRequest, parseCallResult, REQUEST_CONTEXT } from './client/index.js';
export type {
  CallOptions,
  CallResult,
  ClientOptions,
  FailclosedClient,
  SignedRequestBody,
  BuildRequestInput,
} from './client/index.js';
export { initDataDir, startEmbedded } from './embedded/index.js';
export type { EmbeddedInstance, EmbeddedOptions, EmbeddedFaults } from './embedded/index.js';
export { DENIAL_CODES } from './kernel/index.js';
export type { DenialCode, Deny } from './kernel/index.js';
