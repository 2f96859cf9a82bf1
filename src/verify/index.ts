/**
 * The offline audit-bundle verifier (SPEC §5): depends on the kernel only, holds no key, opens
 * no database. `verifyBundle` runs the named checks of `VERIFY_CHECKS`; `runVerifyCli` is the
 * `verify` command.
 */
export { verifyBundle } from './verify-bundle.js';
export { verifyBundleFile } from './verify-file.js';
export type { VerifyFileOptions } from './verify-file.js';
export { createV2Reader, readV2Lines, MAX_LINE_BYTES } from './bundle-v2.js';
export type { StreamLimits, V2Reader } from './bundle-v2.js';
export { runVerifyCli } from './run-cli.js';
export { parseEvidenceRequest, parseMintedEvidence } from './request-evidence.js';
export type { EvidenceRequest, MintedEvidence } from './request-evidence.js';
export type { VerifyCliIo } from './run-cli.js';
export { formatReport } from './report.js';
export { VERIFY_CHECKS } from './checks.js';
export { BUNDLE_FORMAT, BUNDLE_FORMAT_V2, BUNDLE_MAX_BYTES, parseBundle } from './bundle.js';
export type { Bundle, BundleScope } from './bundle.js';
export { createContext, parseBundleEntry } from './context.js';
export type { VerifyContext, EntryView } from './context.js';
export {
  ENTRY_TYPES,
  PAYLOAD_ALLOWLIST,
  GENESIS_PREV_HASH,
  computeEntryHash,
  entryLeaf,
} from './entry-format.js';
export type { BundleEntry, EntryType } from './entry-format.js';
export { MAX_FINDINGS_PER_CHECK, NO_TRUST_ROOTS } from './types.js';
export { TRUST_ROOTS_FORMAT, TRUST_ROOTS_MAX_BYTES, parseTrustRoots } from './trust-roots.js';
export type { TrustRoots } from './trust-roots.js';
export type {
  VerifyCheck,
  VerifyOptions,
  VerifyReport,
  CheckResult,
  Finding,
  FindingCode,
  VerifyExitCode,
  TrustSource,
} from './types.js';
