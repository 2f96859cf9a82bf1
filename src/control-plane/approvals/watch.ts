/**
 * Approvals watched (L7 Deployment Hardening "Rate limits and anomaly detection for approvals",
 * OE-INV-020): the settings, the per-approver history the store keeps, and the pure rules that
 * name what is unusual about one approval. A rate limit refuses (`ERR_APPROVER_RATE_LIMITED`);
 * an anomaly never refuses on its own: it is ledgered (`approval.flagged`) and, under
 * `require_extra`, the decision needs one approver more than its policy threshold. See
 * docs/approvals.md "Approvals watched".
 */

/** What is unusual about an approval. */
export type FlagReason =
  /** Submitted within `quickSec` of the request by an approver who never opened its view. */
  | 'unviewed_quick'
  /** The approver's `burst.count`-th counted approval within `burst.windowSec`. */
  | 'burst'
  /** A tenant the approver never approved for (once it has `minHistory` approvals). */
  | 'new_tenant'
  /** A UTC hour the approver never approved in (once it has `minHistory` approvals). */
  | 'unusual_hour';

/** What a flag does: `flag` records it; `require_extra` also raises the decision's threshold by one. */
export type FlagPolicy = 'flag' | 'require_extra';

/** Approval watch settings (`approvals.json` → `watch`). */
export interface WatchSettings {
  /** Most counted approvals per approver in one fixed window of `windowSec` (every replica together). */
  readonly rateLimit: { readonly max: number; readonly windowSec: number };
  /** An approval this soon after the request, without the approver having opened it, is flagged. */
  readonly quickSec: number;
  /** `count` counted approvals by one approver within `windowSec` are a burst. */
  readonly burst: { readonly count: number; readonly windowSec: number };
  /** Approvals an approver needs on record before unusual tenants and hours are flagged. */
  readonly minHistory: number;
  readonly onFlag: FlagPolicy;
}

/** Defaults (docs/approvals.md "Approvals watched"). */
export const DEFAULT_WATCH_SETTINGS: WatchSettings = Object.freeze({
  rateLimit: Object.freeze({ max: 120, windowSec: 3600 }),
  quickSec: 30,
  burst: Object.freeze({ count: 10, windowSec: 60 }),
  minHistory: 20,
  onFlag: 'flag',
});

/** An approver's counted approvals as the store holds them. */
export interface ApproverActivity {
  /** Counted approvals on record. */
  readonly total: number;
  /** Tenants approved for. */
  readonly tenants: readonly string[];
  /** UTC hours (0-23) approved in. */
  readonly hours: readonly number[];
  /** Counted approvals since the start of the burst window. */
  readonly recent: number;
}

/** One counted approval in an approver's history, with what was unusual about it. */
export interface ActivityRecord {
  readonly decision_id: string;
  readonly approver: string;
  readonly tenant: string;
  readonly at: number;
  readonly flags: readonly FlagReason[];
  /** True when the flags raised the decision's threshold (`require_extra` at the time). */
  readonly extra: boolean;
}

/** The UTC hour of a time (ms). */
export function utcHour(atMs: number): number {
  return new Date(atMs).getUTCHours();
}

/** The start of the fixed rate-limit window holding `atMs`. */
export function rateWindowStart(s: WatchSettings, atMs: number): number {
  const w = s.rateLimit.windowSec * 1000;
  return Math.floor(atMs / w) * w;
}

/**
 * What is unusual about one approval by `approver` at `atMs` for a decision of `tenant` opened at
 * `createdAt`; `viewedAt` is when the approver first opened its view (undefined: never), and
 * `history` its counted approvals before this one. Pure; empty when nothing is.
 */
export function anomaliesOf(
  s: WatchSettings,
  input: {
    readonly atMs: number;
    readonly createdAt: number;
    readonly tenant: string;
    readonly viewedAt: number | undefined;
    readonly history: ApproverActivity;
  },
): FlagReason[] {
  const out: FlagReason[] = [];
  const { atMs, history } = input;
  if (input.viewedAt === undefined && atMs - input.createdAt < s.quickSec * 1000) out.push('unviewed_quick');
  if (history.recent + 1 >= s.burst.count) out.push('burst');
  if (history.total >= s.minHistory) {
    if (!history.tenants.includes(input.tenant)) out.push('new_tenant');
    if (!history.hours.includes(utcHour(atMs))) out.push('unusual_hour');
  }
  return out;
}

/**
 * The approvers a decision needs (OE-INV-020): the policy's threshold, plus one when an approver
 * it counts was flagged under `require_extra`. Never below 1.
 */
export function requiredWithFlags(
  base: number,
  counted: readonly string[],
  extraFlagged: ReadonlySet<string>,
): number {
  return Math.max(1, base) + (counted.some((a) => extraFlagged.has(a)) ? 1 : 0);
}
