/**
 * What the approval service's parts share: settings, dependencies, the serial queue and the
 * per-decision critical section (across replicas) that keep ledger order equal to state order,
 * waiters for long-polling, and the ledger helpers. Every
 * state change is appended to the ledger and confirmed first, and applied only then (GEI, L7
 * "Break-glass does not mean bypassing the ledger").
 */
import { canonicalize, deny, parseApprovalStatement, sha256Hex } from '../../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../../kernel/index.js';
import {
  appendConfirmed,
  type Actor,
  type ControlPlaneEntryType,
  type LedgerAppender,
  type LedgerRef,
} from '../ledger-port.js';
import type { OidcVerifier } from './oidc.js';
import type { BindingOf } from './session.js';
import type { ApprovalNotice } from '../notify/notice.js';
import type { ApprovalStore, PendingRecord } from './store.js';
import { humanOf } from './threshold.js';
import { DEFAULT_WATCH_SETTINGS, type WatchSettings } from './watch.js';
import type { ApprovalCandidate, ApprovalRules } from './threshold.js';

/** Approval settings (docs/approvals.md). */
export interface ApprovalSettings {
  /** Approval window when the bundle sets no `approval_ttl_seconds`. */
  readonly defaultTtlSec: number;
  /** How long a signed statement stays usable after its timestamp (the approval TTL). */
  readonly statementMaxAgeSec: number;
  /** Accepted clock skew of statement timestamps (ms). */
  readonly statementSkewMs: number;
  /** Longest a call may wait for approvals (`Prefer: wait=N`, long-poll), ms. */
  readonly maxWaitMs: number;
  /**
   * Most calls one principal (client identity and tenant) may have waiting for approvals at once
   * in this process; a call beyond it does not wait and is answered pending at once, so one
   * principal cannot hold every in-flight slot of the Gate (issue: waiting calls as a denial of service).
   */
  readonly maxWaitingPerPrincipal: number;
  /** Roles that may use break-glass (L7: L4 security, L5 executive). */
  readonly breakGlassRoles: readonly string[];
  /** Longest break-glass grant, seconds ("short TTL"). */
  readonly breakGlassMaxTtlSec: number;
  /** When a review item opened by break-glass is due, seconds after the use. */
  readonly reviewDueSec: number;
  /** Multi-party approval of policy activation (OE-INV-020); 0 approvals: not required. */
  readonly policyActivation: { readonly approvals: number; readonly roles: readonly string[] };
  /** Per-approver rate limits and anomaly flags (L7 hardening; docs/approvals.md "Approvals watched"). */
  readonly watch: WatchSettings;
}

/** Defaults. */
export const DEFAULT_APPROVAL_SETTINGS: ApprovalSettings = Object.freeze({
  defaultTtlSec: 3600,
  statementMaxAgeSec: 900,
  statementSkewMs: 120_000,
  maxWaitMs: 25_000,
  maxWaitingPerPrincipal: 8,
  breakGlassRoles: Object.freeze(['L4', 'L5']),
  breakGlassMaxTtlSec: 3600,
  reviewDueSec: 7 * 86_400,
  policyActivation: Object.freeze({ approvals: 0, roles: Object.freeze([]) }),
  watch: DEFAULT_WATCH_SETTINGS,
});

/** Dependencies of the approval service. */
export interface ApprovalServiceDeps {
  readonly store: ApprovalStore;
  readonly ledger: LedgerAppender;
  /** Stores evidence bytes durably; resolves to their lower-hex SHA-256. */
  putEvidence(bytes: Uint8Array, mediaType: string): Promise<string>;
  readonly now: Clock;
  /**
   * True when `name` is a registered client (agent) identity (OE-INV-002). May answer
   * asynchronously (a shared registry); a rejection fails the approval operation.
   */
  isClient(name: string): boolean | Promise<boolean>;
  readonly oidc?: OidcVerifier;
  /**
   * The identity-provider binding of an approver (the console's invitation), undefined when not
   * bound; absent: no approver is bound. A bound key approver is heard only with the console's
   * proof of a live key+oidc session (session.ts); a rejection fails the operation.
   */
  readonly bindingOf?: BindingOf;
  /**
   * The approver bound to an identity provider's issuer and subject (the console's invitation),
   * undefined when none is; absent: no approver is bound. An OIDC token of a bound person is not
   * a second approver name for them: its votes are refused, the person approves in the console
   * under their own name (one human, one name); a rejection fails the operation.
   */
  readonly boundPerson?: (issuer: string, subject: string) => Promise<string | undefined>;
  readonly settings?: Partial<ApprovalSettings>;
  readonly ledgerTimeoutMs?: number;
  /**
   * Hands a notice (an approval waits, break-glass is used) to the notifications, once its
   * ledger entry is confirmed. Never on the enforcement path: called without waiting, and
   * anything it throws is ignored (docs/notifications.md).
   */
  readonly notify?: (n: ApprovalNotice) => void;
}

/** The shared internals. */
export interface ApprovalCtx {
  readonly deps: ApprovalServiceDeps;
  readonly settings: ApprovalSettings;
  serial<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs one approval step of `decisionId`: in this service's serial queue and in the decision's
   * critical section across every replica sharing the store (`ApprovalStore.withDecisionLock`).
   * `fn` re-reads the state it depends on. Rejects, without running `fn`, when the section
   * cannot be entered (the callers deny). Never called from inside another step or `serial`.
   */
  step<T>(decisionId: string, fn: () => Promise<T>): Promise<T>;
  notify(decisionId: string): void;
  /**
   * Resolves when the decision is finalised, after `ms`, or when `signal` aborts (the caller went
   * away): true. Resolves false at once, without waiting, when `principal` already has
   * `maxWaitingPerPrincipal` calls waiting.
   */
  waitFor(decisionId: string, ms: number, signal?: AbortSignal, principal?: string): Promise<boolean>;
  append(
    type: ControlPlaneEntryType,
    on: { trace_id: string; request_id: string; tenant: string },
    actor: Actor,
    payload: JsonObject,
  ): Promise<LedgerRef | Deny>;
  /** Stores `doc` as canonical JSON evidence; resolves to its hash or a deny. */
  evidence(doc: JsonValue): Promise<string | Deny>;
  /**
   * The pure rules for `p`, with the client check and the approver record read beforehand for
   * every approver (and the human behind it) that `candidates` name; any other name counts as a
   * client and as unregistered (fail closed). Rejects when the store or registry fails.
   */
  rules(p: PendingRecord, candidates: readonly ApprovalCandidate[]): Promise<ApprovalRules>;
  /**
   * True while fewer than {@link REFUSAL_RECORDS_PER_SECOND} refused submissions were recorded in
   * the current second: anyone can post a forged approval, so a flood is counted, not recorded.
   */
  recordRefusal(): boolean;
  /** Passes `n` to `deps.notify`, if any, once the running step (if any) left its decision lock; never throws. */
  notice(n: ApprovalNotice): void;
}

/** How often a long-polling wait reads the store for a decision finalised through another gate (ms). */
const WAIT_POLL_MS = 250;

/** Refused approval submissions recorded per second at most (the rest are only answered). */
export const REFUSAL_RECORDS_PER_SECOND = 20;

/** Builds the shared internals. */
export function createApprovalCtx(deps: ApprovalServiceDeps): ApprovalCtx {
  const settings: ApprovalSettings = { ...DEFAULT_APPROVAL_SETTINGS, ...deps.settings };
  const ledgerMs = deps.ledgerTimeoutMs ?? 2000;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  const waiters = new Map<string, Set<() => void>>();
  // Calls waiting, by principal (maxWaitingPerPrincipal).
  const waiting = new Map<string, number>();
  let stepHeld: (() => boolean) | undefined;
  // Notices raised by the running step: handed on once its decision lock is released.
  let stepNotices: ApprovalNotice[] | undefined;
  const send = (n: ApprovalNotice): void => {
    try {
      deps.notify?.(n);
    } catch {
      // Notifications never change a decision.
    }
  };
  let second = -1;
  let recorded = 0;
  return {
    notice(n) {
      if (stepNotices !== undefined) stepNotices.push(n);
      else send(n);
    },
    recordRefusal() {
      const s = Math.floor(deps.now() / 1000);
      if (s !== second) {
        second = s;
        recorded = 0;
      }
      recorded += 1;
      return recorded <= REFUSAL_RECORDS_PER_SECOND;
    },
    deps,
    settings,
    serial,
    // Steps run one at a time here (serial), so the one running is the only one whose lock counts.
    step: <T>(decisionId: string, fn: () => Promise<T>): Promise<T> =>
      serial(async () => {
        const notices: ApprovalNotice[] = [];
        try {
          return await deps.store.withDecisionLock(decisionId, async (held) => {
            stepHeld = held;
            stepNotices = notices;
            try {
              return await fn();
            } finally {
              stepHeld = undefined;
              stepNotices = undefined;
            }
          });
        } finally {
          // Off the decision's critical section: a notice never holds its lock.
          for (const n of notices) send(n);
        }
      }),
    notify(decisionId) {
      const set = waiters.get(decisionId);
      waiters.delete(decisionId);
      for (const w of set ?? []) w();
    },
    waitFor(decisionId, ms, signal, principal) {
      if (!(ms > 0) || signal?.aborted === true) return Promise.resolve(true);
      const held = principal === undefined ? 0 : (waiting.get(principal) ?? 0);
      if (principal !== undefined) {
        if (held >= settings.maxWaitingPerPrincipal) return Promise.resolve(false);
        waiting.set(principal, held + 1);
      }
      return new Promise<boolean>((resolve) => {
        const set = waiters.get(decisionId) ?? new Set<() => void>();
        waiters.set(decisionId, set);
        const done = (): void => {
          clearTimeout(timer);
          clearInterval(poll);
          signal?.removeEventListener('abort', done);
          if (set.delete(done) && principal !== undefined) {
            const left = (waiting.get(principal) ?? 1) - 1;
            if (left > 0) waiting.set(principal, left);
            else waiting.delete(principal);
          }
          resolve(true);
        };
        signal?.addEventListener('abort', done, { once: true });
        const timer = setTimeout(done, Math.min(ms, settings.maxWaitMs));
        // A decision finalised through another gate sharing the store notifies no one here: the
        // store is read every WAIT_POLL_MS too. A failed read only waits on (the caller re-reads
        // the decision when the wait ends, and decides from that).
        const poll = setInterval(() => {
          deps.store.pending(decisionId).then(
            (p) => {
              if (p !== undefined && p.status !== 'pending') done();
            },
            () => undefined,
          );
        }, WAIT_POLL_MS);
        set.add(done);
      });
    },
    append: (type, on, actor, payload) =>
      // A step whose decision lock was lost records nothing more: another replica may be in it.
      stepHeld !== undefined && !stepHeld()
        ? Promise.resolve(deny('ERR_CONTROL_PLANE_UNAVAILABLE', 'the decision lock was lost during the step'))
        : appendConfirmed(
            deps.ledger,
            { type, trace_id: on.trace_id, request_id: on.request_id, tenant: on.tenant, actor, payload },
            ledgerMs,
          ),
    async evidence(doc) {
      const bytes = Buffer.from(canonicalize(doc), 'utf8');
      const sha = sha256Hex(bytes);
      try {
        const stored = await deps.putEvidence(bytes, 'application/json');
        if (stored === sha) return sha;
      } catch {
        // Falls through to the deny.
      }
      return deny('ERR_LEDGER_UNAVAILABLE', 'approval evidence not confirmed');
    },
    async rules(p, candidates) {
      const names = new Set<string>();
      for (const c of candidates) {
        const approver = parseApprovalStatement(c.statement)?.approver;
        if (approver !== undefined) names.add(approver).add(humanOf(approver));
      }
      const clients = new Map(
        await Promise.all([...names].map(async (n) => [n, await deps.isClient(n)] as const)),
      );
      // The rules are pure: every approver the candidates name is read beforehand.
      const approvers = new Map(
        await Promise.all([...names].map(async (n) => [n, await deps.store.approver(n)] as const)),
      );
      return {
        decision_id: p.decision_id,
        intent_sha256: p.intent_sha256,
        preview_sha256: p.preview_sha256,
        tenant: p.tenant,
        required: Math.max(1, p.required),
        roles: p.roles,
        requester: p.identity,
        owner: p.owner,
        created_at: p.created_at,
        expires_at: p.expires_at,
        now: deps.now(),
        skewMs: settings.statementSkewMs,
        maxAgeMs: settings.statementMaxAgeSec * 1000,
        approver: (name) => approvers.get(name),
        isClient: (name) => clients.get(name) ?? true,
      };
    },
  };
}
