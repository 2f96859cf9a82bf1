/**
 * The verifier's vocabulary: findings, checks and the report (SPEC §5 "reports pass/fail per
 * invariant ID"). A check is a small named step tagged with the requirement IDs it serves; the
 * checklist is the array in `checks.ts`, so later work adds a file and a line, never a reshape.
 */
import type { Bundle } from './bundle.js';
import type { VerifyContext } from './context.js';

/** What a finding says went wrong; tests assert these, never message text. */
export type FindingCode =
  | 'ENTRY_MALFORMED'
  | 'ENTRY_HASH_MISMATCH'
  | 'CHAIN_INDEX'
  | 'CHAIN_PREV_HASH'
  | 'CHAIN_ANCHOR_MISSING'
  | 'PAYLOAD_FIELD'
  | 'LEDGER_KEY'
  /** The bundle carries a key or origin its pinned trust roots do not (checks/trust-roots.ts). */
  | 'TRUST_ROOT_MISMATCH'
  | 'CHECKPOINT_MALFORMED'
  | 'CHECKPOINT_SIGNATURE'
  | 'CHECKPOINT_ORIGIN'
  | 'CHECKPOINT_UNVERIFIED'
  | 'MERKLE_ROOT'
  | 'ENTRIES_MISSING'
  | 'INCLUSION_PROOF'
  | 'CONSISTENCY'
  | 'ROLLBACK'
  | 'FORK'
  | 'EVIDENCE_HASH'
  | 'EVIDENCE_MISSING'
  /** Approvals (checks/approvals.ts, OE-INV-019/020). */
  | 'APPROVAL_MISSING'
  | 'APPROVAL_SIGNATURE'
  | 'APPROVAL_BINDING'
  | 'APPROVAL_DISTINCT'
  | 'APPROVAL_ROLE'
  | 'APPROVAL_TENANT'
  | 'APPROVAL_SESSION'
  | 'APPROVAL_REVOKED'
  | 'APPROVAL_AGENT'
  | 'APPROVAL_SELF'
  | 'APPROVAL_EXPIRED'
  | 'APPROVAL_ORDER'
  /** Envelope binding (checks/envelope-binding.ts, SPEC §3, OE-INV-017). */
  | 'EXECUTOR_UNDECLARED'
  | 'ENVELOPE_MALFORMED'
  | 'ENVELOPE_KEY'
  | 'ENVELOPE_SIGNATURE'
  | 'ENVELOPE_BINDING'
  | 'ENVELOPE_LEDGER'
  | 'ENVELOPE_PARAMS'
  | 'ENVELOPE_AUDIENCE'
  | 'ENVELOPE_LIFETIME'
  | 'ENVELOPE_POLICY'
  /** Receipt linkage (checks/receipt-linkage.ts, OE-INV-015, FC-INV-4). */
  | 'RECEIPT_NO_DECISION'
  | 'RECEIPT_DENIED'
  | 'RECEIPT_NO_ENVELOPE'
  | 'RECEIPT_BINDING'
  | 'RECEIPT_OUTSIDE_VALIDITY'
  | 'NONCE_REUSED'
  /** Trace linkage (checks/trace-linkage.ts, FC-INV-6). */
  | 'TRACE_GATE_MISSING'
  | 'TRACE_CONTROL_PLANE_MISSING'
  | 'TRACE_COMPLETION_MISSING'
  | 'TRACE_RESULT_MISMATCH'
  | 'TRACE_QUEUE_MISSING'
  | 'TRACE_ROLE'
  /** Attributable outcomes (checks/attributable-outcome.ts, FC-INV-5, FC-INV-3). */
  | 'OUTCOME_MISSING'
  | 'OUTCOME_MALFORMED'
  | 'OUTCOME_DUPLICATE'
  | 'REQUEST_EVIDENCE'
  | 'REQUEST_SIGNATURE'
  /** The inventory of execution-capable interfaces (checks/interface-inventory.ts, FC-INV-6). */
  | 'INVENTORY_MISSING'
  | 'INVENTORY_MALFORMED'
  | 'INVENTORY_NOT_PRESENT'
  | 'INVENTORY_UNLISTED'
  | 'INVENTORY_EXECUTOR_UNLISTED'
  /** Schedules (checks/schedules.ts, FC-INV-6). */
  | 'SCHEDULE_UNAPPROVED'
  | 'SCHEDULE_UNBOUND'
  /** A check threw: counted as a violation (fail closed). */
  | 'CHECK_ERROR';

/** One violation. `position` is the entry's place in the bundle's `entries` array; `index` its ledger index. */
export interface Finding {
  readonly code: FindingCode;
  readonly message: string;
  readonly index?: number;
  readonly position?: number;
  /**
   * Set when the link lies outside a partial bundle (a range or trace export may cut a request):
   * reported as not decidable from this bundle, never as a violation, and never for a complete export.
   */
  readonly partial?: true;
}

/**
 * What a check sees per call of `run`, so a bundle of any size is verified in bounded memory:
 * - `entries` (default): a run of consecutive entries in bundle order. Runs follow each other;
 *   state that crosses runs lives in `ctx.carry`; the last call has `ctx.segment.final` (its run
 *   may be empty).
 * - `requests`: whole requests (every entry sharing a request id, in bundle order) plus the
 *   ledger's key records (`admin.client_registered`, `admin.key_rotated`, `admin.key_revoked`)
 *   read so far; `ctx.carry` persists across calls (e.g. nonces consumed by earlier requests).
 * - `bundle`: once, after every entry, with no entries in `ctx.views` and the entries summarised
 *   by `ctx.merkle()`.
 * A small bundle given whole (format v1) is one run, one request group, one bundle call.
 */
export type CheckUnit = 'entries' | 'requests' | 'bundle';

/** A named verification step (sigstore style). `run` returns its findings: empty means it holds. */
export interface VerifyCheck {
  /** What `run` sees per call; default `entries`. */
  readonly unit?: CheckUnit;
  /** Stable kebab-case id, e.g. `entry-hash`. */
  readonly id: string;
  /** One line: what the check proves. */
  readonly title: string;
  /** Requirement IDs (SPEC.md) this check serves; `--invariant ID` runs the checks tagged with ID. */
  readonly requirements: readonly string[];
  /** When false for a bundle the check is reported as skipped (e.g. no `--since`). Default: applies. */
  readonly applies?: (ctx: VerifyContext) => boolean;
  readonly run: (ctx: VerifyContext) => readonly Finding[];
  /**
   * Notes for the report, asked once after the check's last segment (`ctx.segment.final`), e.g.
   * what an older bundle lacks that the check looks for. A note is never a violation.
   */
  readonly notes?: (ctx: VerifyContext) => readonly string[];
}

/** Options of {@link VerifyCheck}s and `verifyBundle`. */
export interface VerifyOptions {
  /** Run only the checks tagged with this requirement ID (e.g. `L7-ledger-protection`). */
  readonly invariant?: string;
  /** A checkpoint note the auditor trusts from before: the bundle must be consistent with it (rollback, fork). */
  readonly since?: string;
  /**
   * Ledger verifier keys (C2SP vkeys) pinned out of band (`--trusted-key`, repeatable): the
   * checkpoint must verify under one of them, and the bundle's `ledger_key` must be one of them.
   */
  readonly trustedKeys?: readonly string[];
  /** One pinned vkey; the same as `trustedKeys: [trustedKey]` (both may be given). */
  readonly trustedKey?: string;
  /**
   * The trust file (`--trust FILE`, docs/ledger.md "Trust roots"), as text, bytes or parsed JSON:
   * pins the origin and ledger key, the issuer keys (revocations included) and the approver keys.
   * Unusable → exit 2.
   */
  readonly trust?: unknown;
  /**
   * Trust the keys the bundle carries (`--trust-bundle-keys`). Only this lets a verification
   * without pinned roots exit 0, and the report says loudly that nothing was pinned. Refused
   * (exit 2) together with pinned roots.
   */
  readonly trustBundleKeys?: boolean;
  /**
   * Demand an inventory of execution-capable interfaces (`--require-inventory`): a receipt with
   * no inventory recorded before it is a violation (`INVENTORY_NOT_PRESENT`) instead of a note.
   */
  readonly requireInventory?: boolean;
  /** Largest single-document (v1) bundle accepted, in bytes. Default 512 MiB. Streamed (v2) bundles have no size limit. */
  readonly maxBytes?: number;
}

/** Outcome of one check. */
export interface CheckResult {
  readonly id: string;
  readonly title: string;
  readonly requirements: readonly string[];
  readonly status: 'pass' | 'fail' | 'skip';
  /** At most {@link MAX_FINDINGS_PER_CHECK}; `more` counts the rest. */
  readonly findings: readonly Finding[];
  readonly more: number;
  /** Links this partial bundle cannot decide (findings marked `partial`), at most {@link MAX_FINDINGS_PER_CHECK}; absent when none. */
  readonly undecided?: readonly Finding[];
}

/** Findings listed per check; the rest are counted. */
export const MAX_FINDINGS_PER_CHECK = 20;

/**
 * Exit codes: 0 every check holds under pinned roots (or `trustBundleKeys`), 1 a violation,
 * 2 unusable input, 3 no violation found but no trust roots pinned: nothing was verified against
 * a key the auditor trusts ({@link NO_TRUST_ROOTS}).
 */
export type VerifyExitCode = 0 | 1 | 2 | 3;

/** The exit code when no trust root was pinned and `trustBundleKeys` was not given. */
export const NO_TRUST_ROOTS = 3;

/**
 * Where the keys a verification trusted came from: `trust-file` (`--trust`, with or without
 * `--trusted-key`), `ledger-key` (`--trusted-key` only: issuer and approver keys from the
 * bundle, anchored only by the ledgered records of them), `bundle-keys` (`--trust-bundle-keys`),
 * `none` (exit 3 unless a violation was found).
 */
export type TrustSource = 'trust-file' | 'ledger-key' | 'bundle-keys' | 'none';

/** The verifier's report (SPEC §5). */
export interface VerifyReport {
  readonly ok: boolean;
  readonly exitCode: VerifyExitCode;
  /** Set when the input could not be used at all (exit 2). */
  readonly unusable?: string;
  readonly origin?: string;
  /** Entries in the bundle and the ledger indices they cover. */
  readonly coverage?: {
    readonly entries: number;
    readonly first?: number;
    readonly last?: number;
    readonly checkpointSize?: number;
    readonly complete: boolean;
  };
  /** True when the checkpoint key was pinned (`--trusted-key` or `--trust`). */
  readonly keyPinned: boolean;
  /** Where the trusted keys came from. */
  readonly trust: TrustSource;
  readonly notes: readonly string[];
  readonly checks: readonly CheckResult[];
  /** Requirement ID → pass/fail over the checks that ran. */
  readonly requirements: Readonly<Record<string, 'pass' | 'fail'>>;
  /** The first violation, naming the entry where there is one. */
  readonly firstViolation?: Finding & { readonly check: string };
}

export type { Bundle };
