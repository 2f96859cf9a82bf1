/**
 * Mutual TLS between roles (FC-INV-6 authenticated Gate identity, L7 hardening): role identity
 * in certificates, the development PKI, an mTLS listener that authorizes peers by role and
 * revocation, a reloadable client Agent that checks the server's role, and the ledger record of
 * refusals. Depends on the kernel only; never on a role.
 */
export {
  ROLES,
  ROLE_URI_PREFIX,
  isRole,
  roleUri,
  normalizeSerial,
  identityOf,
  serverNamesOf,
  assertNamesNoHost,
  assertNamesRole,
} from './identity.js';
export type { Role, PeerIdentity } from './identity.js';
export { loadTlsMaterial, revocationOf } from './material.js';
export type { TlsFiles, TlsMaterial, RevocationVerdict, ChainLink, LoadedCrl } from './material.js';
export { authorizePeer, authorizeParsed, parsePeer, REFUSAL_REASONS } from './peer.js';
export type { Refusal, RefusalReason, PeerVerdict, ParsedPeer } from './peer.js';
export { createMtlsServer, MTLS_HANDSHAKE_TIMEOUT_MS } from './server.js';
export type { MtlsServer, MtlsServerOptions, MtlsHandler } from './server.js';
export { createMtlsAgent } from './client.js';
export { readCapped } from './read-capped.js';
export type { MtlsAgent, MtlsAgentOptions } from './client.js';
export { createDevCa, issueCert, revokeCert, writeCrl, pkiPaths } from './dev-pki.js';
export type { DevCaOptions, DevCaResult, IssueOptions, IssueResult, CrlOptions } from './dev-pki.js';
export { createRefusalRecorder } from './refusal-record.js';
export type { RefusalEntry, RefusalRecorderOptions } from './refusal-record.js';
