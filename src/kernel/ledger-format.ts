/**
 * The ledger entry format, defined once: entry types, the per-type payload field allowlist, the
 * genesis `prev_hash`, the entry hash and the Merkle leaf (SPEC §4, OE-INV-016, docs/ledger.md).
 * The allowlist is the single table that decides which keys may enter the ledger (L7 Secret
 * Handling "Field allowlist: only approved keys can enter the ledger", OE-INV-009). It lives in
 * the kernel so the ledger writer and the offline verifier (which may import the kernel only,
 * SPEC §5) share it. Extend a type by adding a field name to its row; add a type by adding a row
 * (the `satisfies` clause makes a missing row a compile error). No I/O.
 */
import { canonicalize } from './canonical.js';
import { sha256Hex } from './hash.js';
import type { JsonObject } from './json.js';
import { leafHash } from './merkle.js';

/** Every entry type, covering the whole life of a request (SPEC §4, FC-INV-5, L7 event types). */
export const ENTRY_TYPES = [
  'gateway.accepted',
  'gateway.completed',
  'gateway.failed',
  'gateway.queued',
  'decision',
  'denial',
  'envelope.issued',
  'envelope.voided',
  'execution.receipt',
  'request.abandoned',
  'approval.requested',
  'approval.added',
  'approval.rejected',
  'approval.finalized',
  'approval.flagged',
  'break_glass.used',
  'review.opened',
  'review.closed',
  'admin.policy_activated',
  'admin.key_rotated',
  'admin.key_revoked',
  'admin.kill_switch',
  'admin.lockdown',
  'admin.quarantine',
  'admin.client_registered',
  'admin.approver_invited',
  'admin.approver_enrolled',
  'admin.breaker_reset',
  'admin.operator',
  'admin.refused',
  'session.tainted',
  'audit.export',
  'audit.read',
  'console.sign_in',
  'transport.refused',
  'inventory.recorded',
  'schedule.created',
  'schedule.paused',
  'schedule.resumed',
  'schedule.removed',
] as const;

/** A ledger entry type. */
export type EntryType = (typeof ENTRY_TYPES)[number];

const GATEWAY = [
  'request_sha256',
  'tool',
  'client',
  'session',
  'code',
  'status',
  'outcome',
  'decision_id',
  'result_sha256',
  'duration_ms',
  'auth_method',
  // The token issuer of an MCP principal (`oauth`), or the client (`client_key`); docs/mcp.md.
  'issuer',
  // The human owner an OAuth principal's token named (docs/mcp.md "Approvals", OE-INV-002).
  'owner',
  // gateway.failed after an envelope was issued: voided (never usable) or consumed (the tool may have run).
  'envelope_voided',
  'envelope_consumed',
  // gateway.queued (a background call, docs/jobs.md): the digest of the job's bearer token, and
  // the queue that carries it (`local`, `nats:<stream>`).
  'job_token_sha256',
  'queue',
  // gateway.accepted of a call asked in the background (`true`, absent otherwise): the envelope
  // is granted the tool's background time limit (docs/jobs.md "Time limits").
  'background',
  // gateway.accepted by a keyless Gate (`serve gate`): the Gate instance that owns the request
  // until its outcome, whose requests are recorded abandoned once it is gone (docs/ledger.md).
  'gate_instance',
] as const;

const APPROVAL = [
  'decision_id',
  'approver',
  'role',
  'verdict',
  'justification',
  'justification_sha256',
  'approval_sha256',
  'signature',
  'intent_sha256',
  'expires_at',
  'count',
  'required',
  'roles',
  'approvers',
  'preview_sha256',
  'code',
] as const;

const SCHEDULE = [
  'schedule_id',
  'tool',
  'client',
  'params_sha256',
  'spec_sha256',
  'cron',
  'at',
  'until',
  'window_seconds',
  'decision_id',
  'approvals',
  'next_slot',
  'status',
  'reason',
] as const;

/**
 * Payload field allowlist per entry type. Values are hashes, identifiers, codes and references;
 * raw requests and other large or sensitive artefacts go to the evidence table and are named
 * here by SHA-256 (L7 Secret Handling, OE-INV-009). `justification` and `rationale` are
 * human-written text that policy authors and approvers know is ledgered.
 */
export const PAYLOAD_ALLOWLIST = {
  'gateway.accepted': GATEWAY,
  'gateway.completed': GATEWAY,
  'gateway.failed': GATEWAY,
  // Not an outcome: the call's envelope was handed to a queue; its outcome record follows.
  'gateway.queued': GATEWAY,
  decision: [
    'decision_id',
    'outcome',
    'code',
    'policy_bundle',
    'constitution_version',
    'rules_fired',
    'rationale',
    'risk',
    'obligations',
    'params_sha256',
    'tool',
    'client',
    'session',
    'taint',
    'approvals_required',
    'request_sha256',
    // A scheduled run (docs/schedules.md): its schedule, and the creation decision whose approvals stand behind it.
    'schedule_id',
    'schedule_decision_id',
  ],
  denial: [
    'code',
    'stage',
    'reason',
    'tool',
    'client',
    'session',
    'params_sha256',
    'decision_id',
    'request_sha256',
  ],
  // Claims and a digest only: an unconsumed envelope is never at rest in full (SPEC §3). The
  // consumed JWS enters the ledger with its receipt.
  'envelope.issued': [
    'decision_id',
    'jti',
    'envelope_sha256',
    'kid',
    'iat',
    'exp',
    'aud',
    'sub',
    'ledger_ref',
    'params_sha256',
    'policy_bundle',
    'tool',
    'iss',
    'approvals',
    'constraints',
  ],
  'envelope.voided': ['decision_id', 'jti', 'envelope_sha256', 'code', 'stage', 'reason', 'nonce_voided'],
  'execution.receipt': [
    'decision_id',
    'jti',
    'params_sha256',
    'result_sha256',
    'status',
    'code',
    'duration_ms',
    'adapter',
    'decision_ref',
    'tool',
    'redactions',
    'envelope',
    'envelope_sha256',
    // Only on a call the egress proxy ended (which destination or limit, OE-INV-011), an upstream's
    // TLS or token check failed (which check), or a cancelled call (whether the tool had started).
    'reason',
    // Only on a call whose caller took its upstream's notices: how many were relayed and dropped.
    'notices',
  ],
  // Written on start for a request left without an outcome by a crash or a stop (SPEC §5):
  // `envelope_consumed` true means the tool may have run; false that it never can.
  'request.abandoned': [
    'code',
    'status',
    'outcome',
    'decision_id',
    'jti',
    'envelope_consumed',
    'tool',
    'client',
    'reason',
  ],
  'approval.requested': APPROVAL,
  'approval.added': APPROVAL,
  'approval.rejected': APPROVAL,
  'approval.finalized': APPROVAL,
  // An approval that looked unusual (L7 hardening): `flags` name why, `policy` what it did
  // (`flag`, or `require_extra`: `required` is the decision's raised threshold).
  'approval.flagged': [
    'decision_id',
    'approver',
    'verdict',
    'approval_sha256',
    'flags',
    'policy',
    'required',
  ],
  'break_glass.used': [
    'decision_id',
    'role',
    'reason',
    'ttl_ms',
    'expires_at',
    'scope',
    'target',
    'action_class',
    'review_id',
  ],
  'review.opened': ['review_id', 'decision_id', 'reason', 'due_at', 'break_glass_ref'],
  'review.closed': [
    'review_id',
    'decision_id',
    'outcome',
    'reviewer',
    'justification',
    'justification_sha256',
    // A reviewer bound to an identity provider: the console's key+oidc session that carried it.
    'oidc_session',
    // The signed review statement, stored as evidence (`failclosed.review/v1`).
    'review_sha256',
  ],
  'admin.policy_activated': [
    'policy_bundle',
    'previous_bundle',
    'constitution_version',
    'decision_id',
    'approvals',
    'reason',
  ],
  // `client`: the client or approver whose key it is (key_use request / approval); absent for the issuer key.
  'admin.key_rotated': ['kid', 'previous_kid', 'key_use', 'public_jwk', 'reason', 'client'],
  'admin.key_revoked': ['kid', 'key_use', 'reason', 'revoked_at', 'client'],
  'admin.kill_switch': ['engaged', 'scope', 'reason'],
  'admin.lockdown': ['engaged', 'reason'],
  'admin.quarantine': ['engaged', 'session', 'client', 'breaker', 'reason'],
  'session.tainted': ['session', 'client', 'tool', 'decision_id', 'reason'],
  // `tenants`: an approver's tenant scope, a list or `"*"` (every tenant, registered explicitly).
  'admin.client_registered': [
    'client',
    'kid',
    'key_use',
    'roles',
    'public_jwk',
    'auth_method',
    'owner',
    'tenants',
  ],
  // Console enrolment (docs/console.md): an invitation (never its code) and a device key awaiting
  // the operator's confirmation, which is the `admin.client_registered` of that key. `oidc`: the
  // `{issuer, subject}` an invitation is bound to, proven before the enrolment.
  'admin.approver_invited': ['client', 'roles', 'tenants', 'expires_at', 'oidc'],
  'admin.approver_enrolled': ['client', 'kid', 'public_jwk', 'key_use', 'oidc'],
  'admin.breaker_reset': ['breaker', 'scope', 'client', 'session', 'reason'],
  // The operator registry (OE-INV-025): `change` added | rotated | removed | bound | unbound |
  // not_applied, never a token or its hash; `oidc`: the `{issuer, subject}` bound or unbound.
  'admin.operator': ['operator', 'change', 'tenants', 'reason', 'oidc'],
  // An operator action refused for the person's tenant scope (`code` ERR_FORBIDDEN).
  'admin.refused': ['action', 'code', 'tenant', 'reason'],
  'audit.export': ['scope', 'from', 'to', 'trace_id', 'checkpoint_size', 'reason', 'format'],
  'audit.read': ['target_index', 'trace_id', 'request_id', 'evidence_sha256', 'scope', 'reason'],
  // A console sign-in attempt (docs/console.md "Sign-in attempts"): never a code, token or key.
  'console.sign_in': ['kind', 'method', 'outcome', 'code', 'name', 'address'],
  // A peer refused by a mutual-TLS listener (docs/deployment.md "Mutual TLS"), rate-limited per
  // reason: `suppressed` counts the refusals of that reason not recorded since the last entry.
  'transport.refused': [
    'listener',
    'reason',
    'detail',
    'peer_role',
    'serial',
    'fingerprint',
    'address',
    'suppressed',
  ],
  // The inventory of execution-capable interfaces in force (docs/inventory.md, FC-INV-6): the
  // document itself is evidence named by `inventory_sha256`; `interfaces` counts its entries.
  'inventory.recorded': ['inventory_sha256', 'policy_bundle', 'interfaces', 'reason'],
  // Schedules (docs/schedules.md, FC-INV-6): created by an approved `schedule.create` call (in its
  // request, naming its decision); paused, resumed and removed by an operator (request id: the
  // schedule's id). Each run is a request of its own (`gateway.accepted` with auth_method `schedule`).
  'schedule.created': SCHEDULE,
  'schedule.paused': SCHEDULE,
  'schedule.resumed': SCHEDULE,
  'schedule.removed': SCHEDULE,
} as const satisfies Record<EntryType, readonly string[]>;

/** `prev_hash` of entry 0: 64 zeros (OE-INV-016). */
export const GENESIS_PREV_HASH = '0'.repeat(64);

/**
 * The `status` of a `gateway.failed` written before any attempt was accepted (an ingress refusal
 * such as an identical replay, which shares the original's request id and trace; an exception
 * caught at the Gate's edge). It settles no attempt.
 */
export const BEFORE_ACCEPTANCE_STATUSES: ReadonlySet<unknown> = new Set(['ingress', 'internal']);

/**
 * Whether `e` settles the attempts of its request and trace accepted before it (FC-INV-5): an
 * outcome record (`gateway.completed`, `gateway.failed`, `request.abandoned`) of a request id, but
 * not a refusal before acceptance. One rule for the ledger's open-request index, the writer's
 * conditional appends and the verifier's one-outcome-per-attempt check.
 */
export function settlesAttempt(e: {
  readonly type: string;
  readonly request_id: string;
  readonly payload: Readonly<Record<string, unknown>>;
}): boolean {
  if (e.request_id === '') return false;
  if (e.type === 'gateway.failed') return !BEFORE_ACCEPTANCE_STATUSES.has(e.payload['status']);
  return e.type === 'gateway.completed' || e.type === 'request.abandoned';
}

const TYPE_SET: ReadonlySet<string> = new Set(ENTRY_TYPES);
const ALLOWED: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  Object.entries(PAYLOAD_ALLOWLIST).map(([type, fields]) => [type, new Set<string>(fields)]),
);

/** True when `value` names an entry type (FC-INV-5). */
export function isEntryType(value: unknown): value is EntryType {
  return typeof value === 'string' && TYPE_SET.has(value);
}

/**
 * The payload keys of `payload` that are not on `type`'s allowlist (empty when all are allowed).
 * Callers refuse a non-empty result: the writer with `ERR_LEDGER_PAYLOAD_FIELD`, the verifier
 * with a `payload-allowlist` finding (L7 Secret Handling, OE-INV-009).
 */
export function disallowedPayloadFields(type: EntryType, payload: object): string[] {
  const allowed = ALLOWED.get(type);
  return Object.keys(payload).filter((k) => allowed === undefined || !allowed.has(k));
}

/** Every field of a ledger entry except `entry_hash`: what the entry hash covers (SPEC §4). */
export interface EntryBody {
  readonly index: number;
  readonly prev_hash: string;
  readonly type: EntryType;
  readonly at: string;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly actor: { readonly id: string; readonly role: string };
  readonly payload: JsonObject;
}

/**
 * RFC 8785 text of an entry without `entry_hash`. The top level has fixed members, so it is
 * written in JCS member order directly (actor, at, index, payload, prev_hash, request_id,
 * tenant, trace_id, type); the payload goes through `canonicalize` unless the caller passes its
 * already canonical text. Precondition: every string is well-formed (no lone surrogates), which
 * the writer's input check and the verifier's entry-format parse both ensure; then
 * `JSON.stringify` escapes exactly as JCS does. Throws `FailclosedError` (`ERR_JSON_*`) when the
 * payload is not strict JSON (OE-INV-016).
 */
export function canonicalEntryBody(e: EntryBody, canonicalPayload?: string): string {
  const q = JSON.stringify;
  return (
    `{"actor":{"id":${q(e.actor.id)},"role":${q(e.actor.role)}},"at":${q(e.at)},"index":${e.index},` +
    `"payload":${canonicalPayload ?? canonicalize(e.payload)},"prev_hash":${q(e.prev_hash)},` +
    `"request_id":${q(e.request_id)},"tenant":${q(e.tenant)},"trace_id":${q(e.trace_id)},"type":${q(e.type)}}`
  );
}

/**
 * `entry_hash`: lower-hex SHA-256 of the RFC 8785 encoding of the entry without `entry_hash`
 * (OE-INV-016, GEI "tamper-evident audit chain"). Same preconditions as {@link canonicalEntryBody}.
 */
export function computeEntryHash(e: EntryBody): string {
  return sha256Hex(canonicalEntryBody(e));
}

/**
 * The RFC 6962 leaf hash of an entry: `leafHash(bytes of entry_hash)`. The entry hash commits to
 * the canonical encoding of every other field, so the leaf commits to the whole entry; and a
 * proof for an entry a bundle does not carry needs only its hash (L7 ledger protection).
 */
export function entryLeafHash(entryHash: string): Buffer {
  return leafHash(Buffer.from(entryHash, 'hex'));
}
