/**
 * Approvals (OE-INV-019/020, L7 Identity & Signing, L7 Break-glass; docs/approvals.md
 * "Verification"): proves offline who approved what before it ran. For every recorded approval
 * or rejection, the signed statement in the bundle evidence verifies under the approver's key
 * from the bundle's `jwks.approvers`, is bound to the decision's intent and preview and signed
 * within the approval window, by the approver the entry names, under a required role held, and
 * never by a client identity. Every envelope issued for an escalated decision follows a
 * finalisation by enough distinct approvers (or a break-glass use with its review item), its
 * `approvals` claim names exactly those approvals, and its execution receipt comes after it.
 */
import {
  approvalSigningInput,
  breakGlassSigningInput,
  decodeBase64url,
  intentSha256,
  parseApprovalStatement,
  parseBreakGlassStatement,
  parseJson,
  parsePublicJwk,
  parseReviewStatement,
  parseStatementTimestamp,
  reviewSigningInput,
  verifyEd25519,
} from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import type { KeyObject } from 'node:crypto';
import type { BundleEntry } from '../entry-format.js';
import type { EntryView } from '../context.js';
import type { Finding, FindingCode, VerifyCheck } from '../types.js';
import { entryFinding, parsedViews } from './util.js';
import { linkageOf } from '../linkage.js';
import { standingCreation } from '../schedule-links.js';

type View = EntryView & { readonly entry: BundleEntry };

/** Accepted skew between a statement timestamp and the approval window (ms), as at run time. */
const SKEW_MS = 120_000;

const isObj = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: JsonValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
const strList = (v: JsonValue | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

function approverKeys(jwks: JsonValue | undefined): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  // Attacker-controlled: the bundle's approver JWKS; each key passes the kernel's point checks.
  // Stryker disable next-line ArrayDeclaration: equivalent, a placeholder element is no JWK and is skipped like any unusable key
  const keys = isObj(jwks) && Array.isArray(jwks['keys']) ? jwks['keys'] : [];
  for (const k of keys) {
    try {
      const key = parsePublicJwk(k);
      out.set(key.kid, key.keyObject);
    } catch {
      // An unusable key verifies nothing.
    }
  }
  return out;
}

function evidenceDoc(evidence: JsonObject, sha: JsonValue | undefined): JsonObject | undefined {
  const blob = typeof sha === 'string' ? evidence[sha] : undefined;
  const b64 = isObj(blob) ? blob['body_b64'] : undefined;
  if (typeof b64 !== 'string') return undefined;
  try {
    const doc = parseJson(Buffer.from(b64, 'base64'), { maxBytes: 64 * 1024 });
    return isObj(doc) ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** The signed document stored as evidence under `sha` and its statement, when both are well formed. */
function signedStatement<T>(
  evidence: JsonObject,
  sha: JsonValue | undefined,
  parse: (v: JsonValue | undefined) => T | undefined,
): { doc: JsonObject; s: T } | undefined {
  const doc = evidenceDoc(evidence, sha);
  if (doc === undefined) return undefined;
  const s = parse(doc['statement']);
  return s === undefined ? undefined : { doc, s };
}

function signatureOk(keys: Map<string, KeyObject>, doc: JsonObject, input: Buffer): boolean {
  // Stryker disable next-line ConditionalExpression: equivalent, every key of the map is a string kid, so any other value finds none
  const key = typeof doc['kid'] === 'string' ? keys.get(doc['kid']) : undefined;
  const sig = typeof doc['signature'] === 'string' ? decodeBase64url(doc['signature']) : undefined;
  if (doc['method'] !== 'key') return false;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, verifyEd25519 itself returns false for a missing key or signature (and for any length but 64); the guard only narrows the types
  if (key === undefined || sig === undefined) return false;
  return verifyEd25519(key, input, sig);
}

/**
 * Why a statement by `approver`, recorded at ledger `index` with evidence `doc`, lacks the console
 * session proof its identity-provider binding requires (L7 identity & signing, OE-INV-020, as
 * `sessionCheck` at run time), or undefined.
 */
function sessionMissing(
  ix: ReturnType<typeof indexEntries>,
  approver: string,
  index: number,
  s: JsonValue | undefined,
): string | undefined {
  const b = ix.bindings.get(approver);
  if (b === undefined || b.index > index) return undefined;
  if (isObj(s) && s['method'] === 'key+oidc' && s['issuer'] === b.issuer && s['subject'] === b.subject)
    return undefined;
  return `${approver} is bound to ${b.issuer} and signed without a console session proving it`;
}

/** Indexes the entries the check needs, by decision id. */
function indexEntries(views: readonly View[]) {
  const first = new Map<string, View>();
  const many = new Map<string, View[]>();
  const approverRoles = new Map<
    string,
    { roles: string[]; kid: string | undefined; tenants: readonly string[] | '*' }
  >();
  /** Ledger index of each approver's removal (`admin.key_revoked`, key_use approval). */
  const approverRemovedAt = new Map<string, number>();
  /**
   * The identity provider each approver was enrolled bound to (`admin.approver_enrolled` with
   * `oidc`), and where: its statements after that count only with a console session proof of it.
   */
  const bindings = new Map<string, { issuer: string; subject: string; index: number }>();
  const clients = new Set<string>();
  const owners = new Map<string, string>();
  /** The owner an OAuth principal's token named, by request id (its `gateway.accepted`). */
  /**
   * Every owner the requests' `gateway.accepted` entries named (a retry's too), null for an OAuth
   * call that named none: nobody may approve it (as at run time).
   */
  const requestOwners = new Map<string, Set<string | null>>();
  for (const v of views) {
    const p = v.entry.payload;
    const id = str(p['decision_id']);
    if (v.entry.type === 'gateway.accepted') {
      const owner = str(p['owner']) ?? (p['auth_method'] === 'oauth' ? null : undefined);
      if (owner !== undefined) {
        const seen = requestOwners.get(v.entry.request_id) ?? new Set<string | null>();
        requestOwners.set(v.entry.request_id, seen.add(owner === null ? null : humanName(owner)));
      }
    }
    if (v.entry.type === 'admin.client_registered') {
      const name = str(p['client']);
      if (name !== undefined && p['key_use'] === 'approval')
        approverRoles.set(name, {
          roles: strList(p['roles']),
          kid: str(p['kid']),
          // Registrations before tenant scopes carried none: those approvers were global.
          tenants: p['tenants'] === undefined || p['tenants'] === '*' ? '*' : strList(p['tenants']),
        });
      else if (name !== undefined) {
        clients.add(name);
        const owner = str(p['owner']);
        // Stryker disable next-line ConditionalExpression: equivalent, an owner recorded as undefined reads as no owner
        if (owner !== undefined) owners.set(name, owner);
      }
    }
    if (v.entry.type === 'admin.approver_enrolled' && isObj(p['oidc'])) {
      const name = str(p['client']);
      const issuer = str(p['oidc']['issuer']);
      const subject = str(p['oidc']['subject']);
      if (name !== undefined && issuer !== undefined && subject !== undefined)
        bindings.set(name, { issuer, subject, index: v.entry.index });
    }
    if (v.entry.type === 'admin.key_revoked' && p['key_use'] === 'approval') {
      const name = str(p['client']);
      if (name !== undefined && !approverRemovedAt.has(name)) approverRemovedAt.set(name, v.entry.index);
    }
    if (id === undefined) continue;
    const key = `${v.entry.type}:${id}`;
    if (!first.has(key)) first.set(key, v);
    const list = many.get(key) ?? [];
    list.push(v);
    many.set(key, list);
  }
  return {
    first,
    many,
    approverRoles,
    approverRemovedAt,
    bindings,
    clients,
    owners,
    requestOwners,
    get: (type: string, id: string) => first.get(`${type}:${id}`),
    all: (type: string, id: string) => many.get(`${type}:${id}`) ?? [],
  };
}

/** Approvals check. */
/** An OIDC approver `oidc:x` and a key named `x` are the same human (as at run time). */
const humanName = (name: string): string => (name.startsWith('oidc:') ? name.slice('oidc:'.length) : name);

export const approvalsCheck: VerifyCheck = {
  id: 'approvals',
  title: 'approvals are signed, bound, distinct, role-qualified, within their window and precede execution',
  requirements: ['OE-INV-019', 'OE-INV-020', 'OE-INV-002', 'L7-identity-signing', 'L7-break-glass'],
  unit: 'requests',
  run: (ctx) => {
    const out: Finding[] = [];
    const views = parsedViews(ctx.views);
    const ix = indexEntries(views);
    // Pinned: approvals verify only under the trust file's approver keys, never the bundle's.
    const keys =
      ctx.roots === undefined
        ? approverKeys(ctx.bundle.jwks['approvers'])
        : new Map([...ctx.roots.approverKeys].map(([kid, k]) => [kid, k.keyObject]));
    const bad = (v: View, code: FindingCode, message: string): void =>
      void out.push(entryFinding(v, code, message));
    const valid = new Map<string, View>(); // approval_sha256 → its counted approval.added entry

    for (const v of views) {
      if (v.entry.type !== 'approval.added' && v.entry.type !== 'approval.rejected') continue;
      const p = v.entry.payload;
      const id = str(p['decision_id']) ?? '';
      const signed = signedStatement(ctx.bundle.evidence, p['approval_sha256'], parseApprovalStatement);
      if (signed === undefined) {
        bad(v, 'APPROVAL_MISSING', 'the signed approval is not in the bundle evidence');
        continue;
      }
      const { doc, s } = signed;
      if (!signatureOk(keys, doc, approvalSigningInput(s)))
        bad(
          v,
          'APPROVAL_SIGNATURE',
          `the approval by ${s.approver} does not verify under ${ctx.roots === undefined ? 'an exported' : 'a pinned'} approver key`,
        );
      const verdict = v.entry.type === 'approval.added' ? 'approve' : 'reject';
      if (
        s.decision_id !== id ||
        s.approver !== p['approver'] ||
        s.approver !== v.entry.actor.id ||
        s.verdict !== verdict ||
        s.justification !== p['justification']
      ) {
        bad(v, 'APPROVAL_BINDING', 'the entry does not match its signed statement');
      }
      const requested = ix.get('approval.requested', id);
      const decision = ix.get('decision', id);
      if (requested === undefined || requested.entry.index > v.entry.index)
        bad(v, 'APPROVAL_ORDER', 'no earlier approval.requested for this decision');
      const rp = requested?.entry.payload ?? {};
      if (s.intent_sha256 !== rp['intent_sha256'] || s.preview_sha256 !== (rp['preview_sha256'] ?? null))
        bad(v, 'APPROVAL_BINDING', 'the approval is bound to another intent or preview');
      if (decision !== undefined) {
        const dp = decision.entry.payload;
        const intent = intentSha256({
          tool: str(dp['tool']) ?? '',
          tenant: decision.entry.tenant,
          params_sha256: str(dp['params_sha256']) ?? '',
        });
        if (intent !== s.intent_sha256)
          bad(v, 'APPROVAL_BINDING', 'the approval intent is not the decision’s tool, tenant and parameters');
        if (s.approver === dp['client'])
          bad(v, 'APPROVAL_AGENT', 'the requesting agent approved its own call');
        // An OIDC approver `oidc:x` and a key named `x` are the same human (as at run time).
        const registered = ix.owners.get(str(dp['client']) ?? '');
        const owners =
          registered !== undefined
            ? new Set<string | null>([humanName(registered)])
            : (ix.requestOwners.get(decision.entry.request_id) ?? new Set<string | null>());
        const human = humanName(s.approver);
        if (owners.has(human))
          bad(v, 'APPROVAL_SELF', `${s.approver} owns the requesting agent and cannot approve its call`);
        else if (owners.has(null))
          bad(
            v,
            'APPROVAL_SELF',
            `the requesting agent has no known owner: ${s.approver} cannot approve its call`,
          );
      }
      if (ix.clients.has(s.approver)) bad(v, 'APPROVAL_AGENT', `${s.approver} is a client (agent) identity`);
      const at = parseStatementTimestamp(s.timestamp) ?? Number.NaN;
      // Stryker disable next-line StringLiteral: equivalent, any placeholder text parses to NaN as '' does
      const expires = Date.parse(str(rp['expires_at']) ?? '');
      const opened = requested === undefined ? Number.NaN : Date.parse(requested.entry.at);
      if (!(at >= opened - SKEW_MS && at <= expires && Date.parse(v.entry.at) < expires))
        bad(v, 'APPROVAL_EXPIRED', 'the approval lies outside its approval window');
      const roles = strList(rp['roles']);
      const held = ix.approverRoles.get(s.approver);
      if (
        p['role'] !== v.entry.actor.role ||
        (roles.length > 0 && !roles.includes(String(p['role']))) ||
        (held !== undefined && (!held.roles.includes(String(p['role'])) || held.kid !== doc['kid']))
      ) {
        bad(v, 'APPROVAL_ROLE', `the approver ${s.approver} does not hold a required role with this key`);
      }
      // Scoped approvers (OE-INV-020): the call's tenant must be one the registration names.
      if (held !== undefined && held.tenants !== '*' && !held.tenants.includes(v.entry.tenant))
        bad(
          v,
          'APPROVAL_TENANT',
          `the approver ${s.approver} is not registered for tenant ${v.entry.tenant}`,
        );
      const unproven = sessionMissing(ix, s.approver, v.entry.index, doc['session']);
      if (unproven !== undefined) bad(v, 'APPROVAL_SESSION', unproven);
      const removed = ix.approverRemovedAt.get(s.approver);
      if (removed !== undefined && removed < v.entry.index)
        bad(v, 'APPROVAL_REVOKED', `the approver ${s.approver} was removed at entry ${removed}`);
      if (
        verdict === 'approve' &&
        // Stryker disable next-line ConditionalExpression: equivalent, an approval without a string approval_sha256 found no evidence and never gets here
        typeof p['approval_sha256'] === 'string'
      )
        valid.set(p['approval_sha256'], v);
    }

    // A review closed by an approver bound to an identity provider: only the console closes it,
    // with the session that proved the binding (`oidc_session`, as at run time).
    /** Each review item's `review.opened`, by review id (the first one). */
    const openedReviews = new Map<string, View>();
    /** Where each review item was first closed: it closes once (as at run time). */
    const firstClosed = new Map<string, number>();
    for (const v of views) {
      const id = str(v.entry.payload['review_id']);
      if (id === undefined) continue;
      if (v.entry.type === 'review.opened' && !openedReviews.has(id)) openedReviews.set(id, v);
      if (v.entry.type === 'review.closed')
        firstClosed.set(id, Math.min(firstClosed.get(id) ?? Infinity, v.entry.index));
    }
    for (const v of views) {
      if (v.entry.type !== 'review.closed') continue;
      const p = v.entry.payload;
      // The item closed was opened earlier, for this entry's decision (the statement names only the review id).
      const opened = openedReviews.get(str(p['review_id']) ?? '');
      if (opened === undefined || opened.entry.index > v.entry.index)
        bad(v, 'APPROVAL_ORDER', 'no earlier review.opened for this review');
      else if (opened.entry.payload['decision_id'] !== p['decision_id'])
        bad(v, 'APPROVAL_BINDING', 'the closed review names another decision than the review opened');
      if ((firstClosed.get(str(p['review_id']) ?? '') ?? v.entry.index) < v.entry.index)
        bad(v, 'APPROVAL_BINDING', 'the review was already closed by an earlier entry');
      // The reviewer's signed statement, under the pinned approver keys, bound to this entry.
      const signed = signedStatement(ctx.bundle.evidence, p['review_sha256'], parseReviewStatement);
      if (signed === undefined)
        bad(v, 'APPROVAL_MISSING', 'the signed review statement is not in the bundle evidence');
      else {
        if (!signatureOk(keys, signed.doc, reviewSigningInput(signed.s)))
          bad(
            v,
            'APPROVAL_SIGNATURE',
            `the review closed by ${signed.s.reviewer} does not verify under ${ctx.roots === undefined ? 'an exported' : 'a pinned'} approver key`,
          );
        if (
          signed.s.review_id !== p['review_id'] ||
          signed.s.reviewer !== p['reviewer'] ||
          signed.s.reviewer !== v.entry.actor.id ||
          signed.s.notes !== p['justification']
        )
          bad(v, 'APPROVAL_BINDING', 'the review entry does not match its signed statement');
        // As at run time (`authenticate`, `reviewerRefusal`): the key is the reviewer's own, and
        // the break-glass user never closes its own review.
        const held = ix.approverRoles.get(signed.s.reviewer);
        if (held !== undefined && held.kid !== signed.doc['kid'])
          bad(v, 'APPROVAL_ROLE', `the review was not signed with ${signed.s.reviewer}'s registered key`);
        const grant = ix
          .all('approval.finalized', str(p['decision_id']) ?? '')
          .find((f) => f.entry.payload['verdict'] === 'break_glass');
        const glass = strList(grant?.entry.payload['approvers'])[0];
        if (glass !== undefined && humanOf(glass) === humanOf(signed.s.reviewer))
          bad(v, 'APPROVAL_SELF', `${signed.s.reviewer} broke glass and cannot close its own review`);
        if (held !== undefined && held.tenants !== '*' && !held.tenants.includes(v.entry.tenant))
          bad(
            v,
            'APPROVAL_TENANT',
            `the reviewer ${signed.s.reviewer} is not registered for tenant ${v.entry.tenant}`,
          );
        const removed = ix.approverRemovedAt.get(signed.s.reviewer);
        if (removed !== undefined && removed < v.entry.index)
          bad(v, 'APPROVAL_REVOKED', `the reviewer ${signed.s.reviewer} was removed at entry ${removed}`);
        // Signed while the item was open and no later than it was recorded (with the clock skew).
        const at = parseStatementTimestamp(signed.s.timestamp) ?? Number.NaN;
        const since = Date.parse(opened?.entry.at ?? '');
        if (opened !== undefined && !(at >= since - SKEW_MS && at <= Date.parse(v.entry.at) + SKEW_MS))
          bad(v, 'APPROVAL_EXPIRED', 'the review statement was not signed while the review was open');
      }
      const reviewer = str(p['reviewer']);
      const unproven =
        reviewer === undefined
          ? undefined
          : sessionMissing(ix, reviewer, v.entry.index, v.entry.payload['oidc_session']);
      if (unproven !== undefined) bad(v, 'APPROVAL_SESSION', unproven);
    }

    for (const v of views) {
      if (v.entry.type !== 'envelope.issued') continue;
      const id = str(v.entry.payload['decision_id']) ?? '';
      const decision = ix.get('decision', id);
      // The record states the envelope's claims, `approvals` among them (never the JWS).
      const refs = strList(v.entry.payload['approvals']);
      if (decision === undefined || (decision.entry.payload['outcome'] !== 'escalate' && refs.length === 0))
        continue;
      // A scheduled run stands on its schedule's creation, whose approvals its own request
      // proves: the run's envelope may carry only those (docs/schedules.md).
      if (typeof decision.entry.payload['schedule_decision_id'] === 'string') {
        const creation = standingCreation(linkageOf(ctx), decision, v.entry.index);
        const given = new Set(strList(creation?.entry.payload['approvals']));
        if (creation === undefined || refs.some((r) => !given.has(r)))
          bad(
            v,
            'APPROVAL_MISSING',
            'an envelope was issued for a scheduled run whose schedule creation does not carry its approvals',
          );
        continue;
      }
      const fin = ix
        .all('approval.finalized', id)
        .find(
          (f) => f.entry.payload['verdict'] === 'approve' || f.entry.payload['verdict'] === 'break_glass',
        );
      if (fin === undefined || fin.entry.index > v.entry.index) {
        bad(
          v,
          'APPROVAL_MISSING',
          'an envelope was issued for an escalated decision without a prior finalised approval',
        );
        continue;
      }
      const fp = fin.entry.payload;
      const required = typeof fp['required'] === 'number' ? fp['required'] : Number.POSITIVE_INFINITY;
      if (fp['verdict'] === 'break_glass') {
        checkBreakGlass(ctx.bundle.evidence, keys, ix, { fin, envelope: v, decision, refs }, bad);
      } else {
        const approvers = refs.map((r) => valid.get(r));
        const names = approvers.map((a) => a?.entry.payload['approver']);
        if (
          approvers.some(
            (a) =>
              a === undefined ||
              a.entry.index > fin.entry.index ||
              str(a.entry.payload['decision_id']) !== id,
          )
        ) {
          bad(
            v,
            'APPROVAL_MISSING',
            'the envelope names an approval that is not a valid earlier approval of this decision',
          );
        }
        const needed = Math.max(required, raisedThreshold(ix, id, fin, names));
        if (new Set(names).size !== names.length || names.length < needed)
          bad(
            v,
            'APPROVAL_DISTINCT',
            `the envelope carries ${new Set(names).size} distinct approvals, ${needed} required`,
          );
        if (ix.all('approval.rejected', id).some((r) => r.entry.index < v.entry.index))
          bad(v, 'APPROVAL_BINDING', 'an envelope was issued after a rejection');
      }
      const jti = str(v.entry.payload['jti']);
      for (const r of views) {
        if (
          r.entry.type === 'execution.receipt' &&
          jti !== undefined &&
          r.entry.payload['jti'] === jti &&
          r.entry.index < v.entry.index
        ) {
          bad(r, 'APPROVAL_ORDER', 'the execution receipt precedes its envelope');
        }
      }
    }
    return out;
  },
};

/** The human behind an approver name (`oidc:x` and `x` are one person), as at run time. */
const humanOf = (name: string): string => (name.startsWith('oidc:') ? name.slice('oidc:'.length) : name);

/**
 * The threshold a decision was raised to by its flags (L7 hardening, docs/approvals.md
 * "Approvals watched"): the requested threshold plus one when an approval flagged under
 * `require_extra` before the finalisation is among those the envelope names; 0 otherwise.
 */
function raisedThreshold(
  ix: ReturnType<typeof indexEntries>,
  id: string,
  fin: View,
  names: readonly (JsonValue | undefined)[],
): number {
  const humans = new Set(names.filter((n): n is string => typeof n === 'string').map(humanOf));
  const raised = ix
    .all('approval.flagged', id)
    .some(
      (f) =>
        f.entry.index < fin.entry.index &&
        f.entry.payload['policy'] === 'require_extra' &&
        humans.has(humanOf(str(f.entry.payload['approver']) ?? '')),
    );
  if (!raised) return 0;
  const base = ix.get('approval.requested', id)?.entry.payload['required'];
  return (typeof base === 'number' ? Math.max(1, base) : Number.POSITIVE_INFINITY) + 1;
}

function checkBreakGlass(
  evidence: JsonObject,
  keys: Map<string, KeyObject>,
  ix: ReturnType<typeof indexEntries>,
  links: { fin: View; envelope: View; decision: View; refs: readonly string[] },
  bad: (v: View, code: FindingCode, message: string) => void,
): void {
  const { fin, envelope, decision, refs } = links;
  const id = str(fin.entry.payload['decision_id']) ?? '';
  const sha = fin.entry.payload['approval_sha256'];
  const signed = signedStatement(evidence, sha, parseBreakGlassStatement);
  const used = ix.get('break_glass.used', id);
  const review = ix.get('review.opened', id);
  if (
    signed === undefined ||
    used === undefined ||
    review === undefined ||
    used.entry.index > fin.entry.index
  ) {
    bad(
      envelope,
      'APPROVAL_MISSING',
      'break-glass stood in without its signed grant, use record or review item',
    );
    return;
  }
  const { doc, s } = signed;
  if (!signatureOk(keys, doc, breakGlassSigningInput(s)))
    bad(fin, 'APPROVAL_SIGNATURE', 'the break-glass grant does not verify under an exported approver key');
  if (s.tenant !== envelope.entry.tenant || s.tool !== decision.entry.payload['tool'])
    bad(fin, 'APPROVAL_BINDING', 'the break-glass grant is for another target or action class');
  if (refs.length !== 1 || refs[0] !== sha || strList(fin.entry.payload['approvers'])[0] !== s.approver)
    bad(envelope, 'APPROVAL_BINDING', 'the envelope does not name the break-glass grant');
  const held = ix.approverRoles.get(s.approver);
  if (held !== undefined && !held.roles.includes(used.entry.actor.role))
    bad(used, 'APPROVAL_ROLE', 'break-glass was used without an L4/L5 role');
  if (held !== undefined && held.tenants !== '*' && !held.tenants.includes(s.tenant))
    bad(used, 'APPROVAL_TENANT', `the approver ${s.approver} is not registered for tenant ${s.tenant}`);
  const unproven = sessionMissing(ix, s.approver, fin.entry.index, doc['session']);
  if (unproven !== undefined) bad(fin, 'APPROVAL_SESSION', unproven);
}
