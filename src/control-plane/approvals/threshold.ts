/**
 * The approval rules as pure functions (OE-INV-019/020, OE-INV-002, SPEC §7 scenario 11): which
 * single approval counts, and when a set of them meets the threshold. An approval counts only
 * when its statement is bound to this decision, intent and preview, its approver is a human
 * (never a client identity), authenticated (Ed25519 signature of a registered approver key, or a
 * verified OIDC identity), not the requester's owner, holds a required role, and signed within
 * the approval window. Multi-party means distinct humans; one counted rejection denies.
 */
import {
  approvalSigningInput,
  decodeBase64url,
  deny,
  parseApprovalStatement,
  parseStatementTimestamp,
  verifyEd25519,
} from '../../kernel/index.js';
import type { ApprovalStatement, Deny } from '../../kernel/index.js';
import type { KeyObject } from 'node:crypto';
import { approverCovers, type ApproverTenants } from './store.js';

/** A registered approver as the rules see it. */
export interface ApproverKey {
  readonly roles: readonly string[];
  /** The tenants it may decide for (`'*'`: every tenant, the only scope that covers a policy activation). */
  readonly tenants: ApproverTenants;
  readonly publicKey: KeyObject;
  readonly status: 'active' | 'revoked';
}

/** Everything the rules need about one pending decision. */
export interface ApprovalRules {
  readonly decision_id: string;
  readonly intent_sha256: string;
  readonly preview_sha256: string | null;
  /** The tenant of the call (`*` for a policy activation, which only an every-tenant approver covers). */
  readonly tenant: string;
  /** Distinct approvals needed. */
  readonly required: number;
  /** Roles of which an approver must hold one; empty: any human approver. */
  readonly roles: readonly string[];
  /** The requesting client identity. */
  readonly requester: string;
  /** The requesting client's human owner; null when unknown (nobody may then approve). */
  readonly owner: string | null;
  readonly created_at: number;
  readonly expires_at: number;
  readonly now: number;
  /** How far a statement timestamp may lie in the future, or before the decision (ms). */
  readonly skewMs: number;
  /** How long a signed statement stays usable after its timestamp (ms): the approval TTL. */
  readonly maxAgeMs: number;
  /** The registered approver named `name`. */
  approver(name: string): ApproverKey | undefined;
  /** True when `name` is a client (agent) identity: such a name can never approve (OE-INV-002). */
  isClient(name: string): boolean;
}

/** An approval as submitted: a statement and either an Ed25519 signature or a verified OIDC identity. */
export interface ApprovalCandidate {
  readonly statement: unknown;
  /** base64url Ed25519 signature over `approvalSigningInput(statement)` (registered approver keys). */
  readonly signature?: string;
  /**
   * Set only after an OIDC token bound to this statement verified: its subject, roles and tenant
   * scope (a vote stored before tenant scopes were recorded has none, and counts for no tenant).
   */
  readonly oidc?: {
    readonly subject: string;
    readonly roles: readonly string[];
    readonly tenants?: ApproverTenants;
  };
}

/** An approval that counts. */
export interface CountedApproval {
  readonly statement: ApprovalStatement;
  readonly approver: string;
  readonly verdict: 'approve' | 'reject';
  /** The role it counts under (the first required role held, else the approver's first role, else `approver`). */
  readonly role: string;
  readonly method: 'key' | 'oidc';
}

/**
 * Checks one approval. Denies with `ERR_APPROVAL_INVALID` (malformed, or bound to another
 * decision, intent or preview), `ERR_APPROVER_AGENT` (a client identity or the requester itself),
 * `ERR_APPROVER_UNKNOWN` (not registered or revoked), `ERR_APPROVAL_SIGNATURE` (signature or
 * identity does not verify), `ERR_APPROVAL_SELF` (the requester's owner, or the owner unknown),
 * `ERR_APPROVAL_EXPIRED` (outside the approval window or older than its TTL), `ERR_APPROVER_ROLE`,
 * `ERR_APPROVER_TENANT` (a registered key whose tenant scope does not cover the call's tenant).
 */
/**
 * The human behind an approver name: an OIDC approver `oidc:<sub>` and a registered key named
 * `<sub>` are the same person for self-approval, agent and distinctness checks (L7 identity).
 */
export function humanOf(approver: string): string {
  return approver.startsWith('oidc:') ? approver.slice('oidc:'.length) : approver;
}

export function checkApproval(rules: ApprovalRules, c: ApprovalCandidate): CountedApproval | Deny {
  const s = parseApprovalStatement(c.statement);
  if (s === undefined) return deny('ERR_APPROVAL_INVALID', 'the approval statement is malformed');
  if (
    s.decision_id !== rules.decision_id ||
    s.intent_sha256 !== rules.intent_sha256 ||
    s.preview_sha256 !== rules.preview_sha256
  ) {
    return deny('ERR_APPROVAL_INVALID', 'the approval is bound to another decision, intent or preview');
  }
  const human = humanOf(s.approver);
  if (
    s.approver === rules.requester ||
    human === rules.requester ||
    rules.isClient(s.approver) ||
    rules.isClient(human)
  ) {
    return deny('ERR_APPROVER_AGENT', 'an agent identity can never approve');
  }
  let roles: readonly string[];
  let method: 'key' | 'oidc';
  if (c.oidc !== undefined && c.signature === undefined) {
    if (s.approver !== `oidc:${c.oidc.subject}`)
      return deny('ERR_APPROVAL_SIGNATURE', 'the statement names another approver than the token');
    // Scoped approvers (OE-INV-020), as for keys: the token's tenant claim must cover the call.
    if (!approverCovers(c.oidc.tenants ?? [], rules.tenant))
      return deny('ERR_APPROVER_TENANT', 'the approver token is not scoped to the tenant of the call');
    roles = c.oidc.roles;
    method = 'oidc';
  } else if (c.signature !== undefined && c.oidc === undefined) {
    const key = rules.approver(s.approver);
    if (key === undefined || key.status !== 'active')
      return deny('ERR_APPROVER_UNKNOWN', 'the approver is not registered or is revoked');
    const sig = decodeBase64url(c.signature);
    if (
      sig === undefined ||
      sig.length !== 64 ||
      !verifyEd25519(key.publicKey, approvalSigningInput(s), sig)
    ) {
      return deny('ERR_APPROVAL_SIGNATURE', 'the approval signature does not verify');
    }
    // Scoped approvers (OE-INV-020): a vote on another tenant's call never counts.
    if (!approverCovers(key.tenants, rules.tenant))
      return deny('ERR_APPROVER_TENANT', 'the approver is not scoped to the tenant of the call');
    roles = key.roles;
    method = 'key';
  } else {
    return deny('ERR_APPROVAL_INVALID', 'an approval needs exactly one of a signature or a verified token');
  }
  if (rules.owner === null)
    return deny(
      'ERR_APPROVAL_SELF',
      'the requester has no known owner (for an OAuth principal: its token names none), so nobody may approve its call',
    );
  if (s.approver === rules.owner || human === humanOf(rules.owner))
    return deny('ERR_APPROVAL_SELF', 'the requester’s owner cannot approve its own call');
  const at = parseStatementTimestamp(s.timestamp) ?? Number.NaN;
  if (!(
    at >= rules.created_at - rules.skewMs &&
    at <= rules.now + rules.skewMs &&
    rules.now - at <= rules.maxAgeMs &&
    rules.now < rules.expires_at
  )) {
    return deny('ERR_APPROVAL_EXPIRED', 'the approval lies outside the approval window or its TTL');
  }
  const required = [...rules.roles].sort();
  const role =
    required.length === 0 ? ([...roles].sort()[0] ?? 'approver') : required.find((r) => roles.includes(r));
  if (role === undefined) return deny('ERR_APPROVER_ROLE', 'the approver holds none of the required roles');
  return Object.freeze({ statement: s, approver: s.approver, verdict: s.verdict, role, method });
}

/** The outcome of counting a set of approvals. */
export interface Tally {
  /** Enough distinct approvals and no counted rejection. */
  readonly met: boolean;
  /** A counted rejection: the decision is denied (`ERR_APPROVAL_REJECTED`). */
  readonly rejected: boolean;
  /** The counted approvals, one per approver, in input order. */
  readonly counted: readonly CountedApproval[];
  /** Distinct approvers that approved. */
  readonly approvers: readonly string[];
}

/**
 * Counts `candidates` under `rules`: each is checked by {@link checkApproval} and dropped when it
 * does not count; only the first approval of each approver counts (distinct humans). Any set
 * with fewer than `required` distinct valid approvals never meets the threshold, whatever
 * duplicates, self-approvals, agents, wrong roles or expired approvals it adds. A rejection
 * counts whenever it is valid, whoever decided first under another of the same human's names,
 * and however old it is (only approvals must be fresh): a refusal is never outvoted or outlived.
 * A required number below 1 is a caller error (`TypeError`): an escalation always needs a human.
 */
export function tallyApprovals(rules: ApprovalRules, candidates: readonly ApprovalCandidate[]): Tally {
  if (!Number.isSafeInteger(rules.required) || rules.required < 1)
    throw new TypeError('required must be a positive integer');
  const seen = new Set<string>();
  const counted: CountedApproval[] = [];
  const ageless = { ...rules, maxAgeMs: Number.POSITIVE_INFINITY };
  let rejected = false;
  for (const c of candidates) {
    const r = checkApproval(rules, c);
    if ('outcome' in r) {
      // A rejection past the statements' age still refuses (its other checks all hold).
      const old = r.code === 'ERR_APPROVAL_EXPIRED' ? checkApproval(ageless, c) : r;
      if (!('outcome' in old) && old.verdict === 'reject') rejected = true;
      continue;
    }
    if (r.verdict === 'reject') rejected = true;
    // Distinct humans: a key and an OIDC identity of the same person count once.
    const human = humanOf(r.approver);
    if (seen.has(human)) continue;
    seen.add(human);
    counted.push(r);
  }
  const approvers = counted.filter((c) => c.verdict === 'approve').map((c) => c.approver);
  return Object.freeze({
    met: !rejected && approvers.length >= rules.required,
    rejected,
    counted: Object.freeze(counted),
    approvers: Object.freeze(approvers),
  });
}
