/**
 * The policy layer: hash-addressed policy bundles, the tool catalog (JSON Schema via ajv) and
 * the Cedar policy engine. Imports the kernel only. See docs/policy.md.
 * (SPEC §2 step 3, §6 "Policy as code", OE-INV-004/005/014)
 */
export { BUNDLE_FORMAT, RISK_CLASSES } from './types.js';
export type {
  AdapterConfig,
  BundleSettings,
  EvaluationInput,
  LoadedBundle,
  Obligations,
  PolicyBundleDocument,
  PolicyDecision,
  PolicyDecisionFields,
  PolicyDenial,
  PolicyPermit,
  PrincipalInput,
  RiskClass,
  ToolPreviewSpec,
  ToolSpec,
} from './types.js';
export { loadBundle, hashBundle, MAX_BUNDLE_BYTES, parseBundleDocument } from './bundle.js';
export type { LoadBundleOptions } from './bundle.js';
export {
  ADAPTER_TYPES,
  checkAdapterSpecs,
  DRY_RUN_TYPES,
  MAX_BACKGROUND_TIMEOUT_MS,
  MAX_TOOL_TIMEOUT_MS,
} from './adapter-spec.js';
export type { AdapterCheckOptions } from './adapter-spec.js';
export { buildBundleFromDir } from './build-from-dir.js';
export type { BuiltBundle } from './build-from-dir.js';
export { createToolCatalog } from './catalog.js';
export { callableTools, permitReach } from './reachable.js';
export type { ToolCatalog } from './catalog.js';
export { createPolicyEngine, isPermit } from './engine.js';
export {
  CEDAR_WORKER_URL,
  CedarCallExpired,
  CedarThreadUnavailable,
  cedarThreadAvailable,
  createCedarThread,
  sharedNow,
} from './cedar-thread.js';
export type { CedarThread, CedarThreadOptions } from './cedar-thread.js';
export type { PolicyEngine } from './engine.js';
export { ANNOTATION_KEYS, MAX_APPROVALS } from './annotations.js';
export { toCedarDecimal } from './cedar-values.js';
export { diffBundles, diffLines, formatBundleDiff } from './diff.js';
export type { BundleDiff, DiffLine, FieldChange } from './diff.js';
export {
  closeSchema,
  cedarTypeOf,
  pinMcpCompletions,
  pinMcpPrompts,
  pinMcpResources,
  pinMcpResourceTemplates,
  pinMcpTools,
  SERVER_NAME_RE,
  UPSTREAM_NAME_RE,
} from './mcp-pin.js';
export type { McpNaming, McpServerDeclaration, PinnedTool, SkippedTool } from './mcp-pin.js';
