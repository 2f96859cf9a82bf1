/**
 * The signing client: builds Ed25519-signed requests (docs/request-format.md, FC-INV-3) and
 * sends them to the Gate. Imports only the kernel and its signing face.
 */
export { createClient, parseCallResult } from './client.js';
export type { CallOptions, CallResult, ClientOptions, FailclosedClient } from './client.js';
export { REQUEST_CONTEXT, buildSignedRequest, newRequestId, requestSigningBytes } from './request.js';
export type { BuildRequestInput, SignedRequestBody } from './request.js';
export { createApproverClient, signApproval, signBreakGlass, signReview } from './approver.js';
export type { ApproverAnswer, ApproverClient, ApproverClientOptions, BreakGlassRequest } from './approver.js';
