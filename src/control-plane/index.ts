/**
 * The Control Plane: governance state, circuit breakers, hash-addressed policy bundles, the
 * decision pipeline and the envelope issuer, the only code holding the signing key. Imports the
 * kernel (and its signing face), the ledger and the policy layer. See docs/control-plane.md.
 * (SPEC §1, §2 steps 3–5, §3, §6; GEI; OE-INV-004/005/014/021/025)
 */
export type {
  ControlPlane,
  ControlPlaneAllow,
  ControlPlaneResult,
  DecideOptions,
  GovernedRequest,
  ScheduledRun,
} from './types.js';
export { createControlPlane, DEFAULT_DEADLINES } from './control-plane.js';
export type { ControlPlaneDeadlines, ControlPlaneDeps, ControlPlaneService } from './control-plane.js';
export { assertGovernanceChange, createMemoryGovernanceState } from './governance-state.js';
export type {
  GovernanceChange,
  GovernanceCheck,
  GovernanceSnapshot,
  GovernanceState,
} from './governance-state.js';
export { createSqliteDecisionClaims, decisionClaimRetention } from './decision-claims.js';
export type { DecisionClaimKey, DecisionClaimRetention, DecisionClaimStore } from './decision-claims.js';
export { createSqliteGovernanceState } from './governance-state-sqlite.js';
export type { SqliteGovernanceState } from './governance-state-sqlite.js';
export { createGovernanceAdmin } from './governance-admin.js';
export { CLIENT_PRINCIPAL_PREFIX, resetBreaker } from './breaker-admin.js';
export type { BreakerResetResult, BreakerResetScope } from './breaker-admin.js';
export type {
  AdminResult,
  GovernanceAdmin,
  GovernanceAdminDeps,
  QuarantineContext,
} from './governance-admin.js';
export { createCircuitBreakers, DEFAULT_BREAKERS, declaredCostCents, usdToCents } from './breakers.js';
export { backgroundPrune, breakerPruneBounds, createMemoryBreakerStore } from './breaker-store.js';
export type {
  AdmitCounts,
  AdmitInput,
  BreakerPruneBounds,
  BreakerPruneInput,
  BreakerStore,
} from './breaker-store.js';
export type {
  BreakerCall,
  BreakerConfig,
  BreakerName,
  BreakerResetTarget,
  BreakerVerdict,
  CircuitBreakers,
  SpendVerdict,
} from './breakers.js';
export {
  createBundleStore,
  ACTIVE_POINTER,
  bundleMatchesHash,
  readActivePointer,
  readBundleFile,
  writeActivePointer,
  writeBundleFile,
} from './bundle-store.js';
export type { ActivationApproval, ActivationResult, BundleStore, BundleStoreDeps } from './bundle-store.js';
export { compilePolicyBundle, createBundleCompiler } from './policy-runtime.js';
export type { CompileRunOptions } from './policy-runtime.js';
export { evaluateCall, evaluatedFields } from './evaluate-call.js';
export { evaluateGoverned } from './schedule-step.js';
export type { CallEvaluation, CallToEvaluate, EvaluatedFields, PolicyFacts } from './evaluate-call.js';
export type { CompileBundle, PolicyBundleLike, PolicyRuntime } from './ports.js';
export { createIssuer, MAX_ENVELOPE_TTL_SEC } from './issuer.js';
export type {
  EnvelopeRequestClaims,
  IssuedEnvelope,
  Issuer,
  IssuerConfig,
  IssuerDeps,
  KeyChangeResult,
} from './issuer.js';
export {
  approvalsRequired,
  constraintsFor,
  decisionPayload,
  DEFAULT_CONSTRAINTS,
  issuedConstraints,
} from './decision-record.js';
export type { DecisionFacts, RecordedOutcome } from './decision-record.js';
export { deriveDecisionId, deriveId, deriveJti, MIN_DERIVATION_KEY_BYTES } from './derive.js';
export type { DerivationDomain } from './derive.js';
export { CONTROL_PLANE_ACTOR, GLOBAL_TENANT } from './ledger-port.js';
export type { Actor, ControlPlaneEntryType, LedgerAppend, LedgerAppender, LedgerRef } from './ledger-port.js';
export {
  createApprovalService,
  parseApproverScope,
  createApprovalApi,
  pendingView,
  createSqliteApprovalStore,
  approverJwksOf,
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
  approverCovers,
  utcHour,
  DEFAULT_WATCH_SETTINGS,
  checkApproval,
  tallyApprovals,
  humanOf,
  describePreview,
  previewDigest,
  redactedParams,
  createOidcVerifier,
  parseApprovalConfig,
  DEFAULT_APPROVAL_SETTINGS,
} from './approvals/index.js';
export type {
  ApiAnswer,
  ApprovalApi,
  ApprovalCandidate,
  ApprovalConfig,
  ApprovalRules,
  ApprovalService,
  ApproverScope,
  ApprovalServiceDeps,
  ApprovalSettings,
  ApprovalStore,
  ApproverColumns,
  ApproverKey,
  ApproverRecord,
  ApproverTenants,
  BreakGlassGrant,
  CountedApproval,
  OidcConfig,
  OidcIdentity,
  OidcVerifier,
  OpenInput,
  PendingColumns,
  ActivityColumns,
  ActivityRecord,
  ApproverActivity,
  FlagPolicy,
  FlagReason,
  WatchSettings,
  PendingKind,
  PendingRecord,
  PendingStatus,
  Preview,
  PreviewProvider,
  ReviewRecord,
  SignedStatement,
  SessionProof,
  BindingOf,
  OidcBinding,
  Submission,
  SubmitAccepted,
  Tally,
  VoteColumns,
  VoteRecord,
} from './approvals/index.js';
export {
  NOTICE_EVENTS,
  backoffMs,
  consoleLink,
  createNotifier,
  createSqliteOutbox,
  fetchPost,
  generateWebhookSecret,
  noticeBody,
  parseReceiver,
  parseReceiverUrl,
  parseWebhookConfig,
  signWebhook,
  verifyWebhook,
  webhookKey,
} from './notify/index.js';
export type {
  ApprovalNotice,
  NoticeEvent,
  NoticePreview,
  NotificationOutbox,
  Notifier,
  NotifierDeps,
  OutboxItem,
  ReceiverFormat,
  WebhookConfig,
  WebhookPost,
  WebhookReceiver,
} from './notify/index.js';
