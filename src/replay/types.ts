/**
 * The forensic replay's report (GEI Determinism "forensic replay", OE-INV-014): per decision,
 * whether re-deriving it from its recorded inputs and the pinned policy bundle gives the recorded
 * bytes, and every member that differs.
 */
import type { JsonValue } from '../kernel/index.js';

/**
 * `match`: the decision record and every record that follows from it (approval thresholds,
 * envelope claims) re-derive byte for byte. `partial`: the policy's part re-derives and matches,
 * but the recorded outcome depended on state the ledger does not record as an input (spend,
 * breakers, preview). `not-rederivable`: the outcome was decided by such state, or an input is
 * outside the bundle; the reason says which. `mismatch`: at least one finding.
 */
export type ReplayStatus = 'match' | 'partial' | 'not-rederivable' | 'mismatch';

/** Finding codes. */
export type ReplayFindingCode =
  /** A recorded member differs from the re-derived one. */
  | 'REPLAY_MISMATCH'
  /** An input the decision names (its request, its policy bundle, the client's registration) is missing or unusable. */
  | 'REPLAY_INPUT_MISSING'
  /** A record the re-derived decision cannot have (an envelope for a deny, approvals for an allow). */
  | 'REPLAY_UNEXPECTED_RECORD';

/** One difference, naming the entry and the member. */
export interface ReplayFinding {
  readonly code: ReplayFindingCode;
  /** The ledger index of the entry that differs. */
  readonly index: number;
  readonly type: string;
  readonly trace_id: string;
  readonly decision_id: string;
  /** The member (dotted path) that differs; `entry.tenant` for an entry field. */
  readonly field?: string;
  readonly recorded?: JsonValue;
  readonly rederived?: JsonValue;
  readonly message: string;
}

/** The replay of one decision. */
export interface DecisionReplay {
  readonly index: number;
  readonly trace_id: string;
  readonly request_id: string;
  readonly decision_id: string;
  readonly outcome: JsonValue;
  readonly code: JsonValue;
  readonly status: ReplayStatus;
  /** Why a decision is `partial` or `not-rederivable`. */
  readonly reason?: string;
  /** Indices of the entries compared (the decision and the records that follow from it). */
  readonly compared: readonly number[];
}

/** Exit codes, as `failclosed verify`'s. */
export type ReplayExitCode = 0 | 1 | 2 | 3;

/** The report of `failclosed replay`. */
export interface ReplayReport {
  readonly format: 'failclosed.replay-report/v1';
  readonly ok: boolean;
  readonly exitCode: ReplayExitCode;
  /** The offline verifier's verdict on the same bundle (integrity before replay). */
  readonly verify: {
    readonly exitCode: number;
    readonly trust: string;
    readonly firstViolation?: JsonValue;
  };
  /** The trace replayed, or null for every decision in the bundle. */
  readonly trace_id: string | null;
  readonly complete: boolean;
  readonly decisions: readonly DecisionReplay[];
  readonly findings: readonly ReplayFinding[];
  readonly summary: {
    readonly decisions: number;
    readonly match: number;
    readonly partial: number;
    readonly notRederivable: number;
    readonly mismatch: number;
  };
  /** Set when the bundle could not be replayed at all (exit 2). */
  readonly error?: string;
}
