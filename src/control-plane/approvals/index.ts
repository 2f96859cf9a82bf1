/**
 * Human approvals, multi-party approval, preview and break-glass (OE-INV-018/019/020, OE-INV-002,
 * L7 Identity & Signing, L7 Break-glass). See docs/approvals.md.
 */
export { createApprovalService, parseApproverScope } from './service.js';
export { createApprovalApi, pendingView } from './api.js';
export type { ApiAnswer, ApprovalApi } from './api.js';
export type { ApprovalService, ApproverScope } from './service.js';
export { DEFAULT_APPROVAL_SETTINGS } from './context.js';
export type { ApprovalServiceDeps, ApprovalSettings } from './context.js';
export type { OpenInput, Submission, SubmitAccepted } from './pending.js';
export type { SignedStatement } from './break-glass.js';
export type { BindingOf, OidcBinding, SessionProof } from './session.js';
export { createSqliteApprovalStore, jwksOf as approverJwksOf } from './sqlite-store.js';
export {
  parseApproverRow,
  parseApproverWithKey,
  parseGrantBody,
  parsePendingRow,
  parseReviewBody,
  parseVoteRow,
  parseActivity,
  parseActivityRow,
  pendingBody,
  tenantsText,
} from './records.js';
export type { ActivityColumns, ApproverColumns, PendingColumns, VoteColumns } from './records.js';
export { DEFAULT_WATCH_SETTINGS, anomaliesOf, requiredWithFlags, utcHour } from './watch.js';
export type { ActivityRecord, ApproverActivity, FlagPolicy, FlagReason, WatchSettings } from './watch.js';
export type {
  ApprovalStore,
  ApproverRecord,
  ApproverTenants,
  BreakGlassGrant,
  PendingKind,
  PendingRecord,
  PendingStatus,
  ReviewRecord,
  VoteRecord,
} from './store.js';
export { approverCovers } from './store.js';
export { checkApproval, humanOf, tallyApprovals } from './threshold.js';
export type { ApprovalCandidate, ApprovalRules, ApproverKey, CountedApproval, Tally } from './threshold.js';
export { describePreview, previewDigest, redactedParams } from './preview.js';
export type { Preview, PreviewProvider } from './preview.js';
export { createOidcVerifier } from './oidc.js';
export type { OidcConfig, OidcIdentity, OidcVerifier } from './oidc.js';
export { parseApprovalConfig } from './config.js';
export type { ApprovalConfig } from './config.js';
