/**
 * Forensic replay (GEI Determinism "forensic replay", OE-INV-014): re-derives recorded decisions
 * and the records that follow from them with the real policy engine, outside the kernel-only
 * verifier. See docs/replay.md.
 */
export { replayBundleFile } from './replay.js';
export type { ReplayOptions } from './replay.js';
export { formatReplayReport } from './format.js';
export { diffJson } from './diff.js';
export type { FieldDifference } from './diff.js';
export type {
  DecisionReplay,
  ReplayExitCode,
  ReplayFinding,
  ReplayFindingCode,
  ReplayReport,
  ReplayStatus,
} from './types.js';
