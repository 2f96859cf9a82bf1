/**
 * The console's JSON API (docs/console.md "API"), called by the browser modules only. Sign-in
 * (code once, then the device key), enrolment of the device key, the approvals inbox for the
 * signed-in approver's roles and tenants, and approval submissions, which go through the same
 * approval service as every other approval (OE-INV-019/020: separation of duties, tenant scope,
 * replay and thresholds are its checks, not the console's).
 */
import { deny, isDeny } from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { approverCovers, pendingView } from '../control-plane/index.js';
import type { ApprovalApi, ApprovalService, PendingRecord, SessionProof } from '../control-plane/index.js';
import { awaitsOidc, keySignedIn } from './service.js';
import type { ConsoleService, SignedIn } from './service.js';
import type { OperatorConsole } from './operator-api.js';
import { reviewsFor } from './reviews.js';
import type { SignInGuard } from './sign-in-guard.js';

/** What the API needs. */
export interface ApiDeps {
  readonly console: ConsoleService;
  readonly approvals: ApprovalService;
  readonly approvalApi: ApprovalApi;
  /** Why a call escalated: its `decision` entry's payload (rules fired, obligations, taint), if found. */
  readonly decisionOf?: (requestId: string, decisionId: string) => Promise<JsonObject | undefined>;
  /** The evidence view of one request (`buildEvidenceView`), or null; absent: no evidence page. */
  readonly evidenceOf?: (requestId: string) => Promise<JsonValue | null>;
  /** Ledgers that `reader` read the evidence of `requestId` (`audit.read`); false when not confirmed. */
  readonly recordRead?: (reader: string, requestId: string) => Promise<boolean>;
  /** The operator pages (`operator/…` routes, operator-api.ts); absent: none. */
  readonly operator?: OperatorConsole;
  /**
   * What activating the stored bundle `hash` changes against the active one (`diffBundles`, as
   * `policy diff` shows it), for a policy activation in the inbox; null when it cannot be said.
   */
  readonly policyDiff?: (hash: string) => Promise<JsonObject | null>;
  /**
   * Every sign-in attempt goes through it: failures rate limited, attempts ledgered
   * (sign-in-guard.ts). Required: there is no unguarded sign-in.
   */
  readonly signInGuard: SignInGuard;
  readonly now: Clock;
}

/**
 * An API answer; `cookie` sets the session cookie (`''` clears it), `pending` the cookie of a
 * pending OIDC sign-in (`''` clears it).
 */
export interface ApiAnswer {
  readonly status: number;
  readonly body: JsonValue;
  readonly cookie?: string;
  /** A file the browser downloads (an export), streamed as NDJSON lines instead of `body`. */
  readonly download?: { readonly filename: string; readonly lines: AsyncIterable<string> };
  readonly pending?: string;
}

/** The cookies of a request the API reads. */
export interface ApiCookies {
  readonly session: string | undefined;
  readonly pending: string | undefined;
  /** The client address of the request (for the sign-in limits and records). */
  readonly address?: string | undefined;
}

/** The sign-in routes: who signs in, and how. */
const SIGN_INS: Readonly<Record<string, { kind: 'approver' | 'operator'; method: string }>> = {
  'sign-in/code': { kind: 'approver', method: 'code' },
  'sign-in/key': { kind: 'approver', method: 'key' },
  'sign-in/oidc/callback': { kind: 'approver', method: 'oidc' },
  'operator/sign-in': { kind: 'operator', method: 'token' },
  'operator/sign-in/oidc/callback': { kind: 'operator', method: 'oidc' },
};

const VERDICT = /^approvals\/([A-Za-z0-9._:-]{1,128})\/(approve|reject)$/;
const REVIEW = /^reviews\/([A-Za-z0-9._:-]{1,128})\/close$/;
const REQUEST = /^requests\/([A-Za-z0-9._:-]{1,128})$/;

const ok = (body: JsonObject, cookie?: string): ApiAnswer =>
  cookie === undefined ? { status: 200, body } : { status: 200, body, cookie };

function stageOf(who: SignedIn): 'invited' | 'enrolled' | 'confirmed' {
  if (who.person.public_jwk === null) return 'invited';
  return who.approver === undefined ? 'enrolled' : 'confirmed';
}

/**
 * The proof of this live `key+oidc` session the approval service requires of an approver bound to
 * an identity provider (and records in the vote, grant or review); undefined for other sessions.
 */
function proofOf(who: SignedIn): SessionProof | undefined {
  const { person, session } = who;
  if (session.method !== 'key+oidc' || person.oidc_issuer === null || person.oidc_subject === null)
    return undefined;
  return {
    method: 'key+oidc',
    issuer: person.oidc_issuer,
    subject: person.oidc_subject,
    session_started_at: new Date(session.created_at).toISOString(),
  };
}

/** The signed statement's signer, when it names one in `field`. */
function signerOf(body: JsonObject, field: 'approver' | 'reviewer'): unknown {
  const statement = body['statement'];
  return typeof statement === 'object' && statement !== null && !Array.isArray(statement)
    ? (statement as JsonObject)[field]
    : undefined;
}

/** True when the pending approval waits for someone with the approver's roles and tenants. */
function mine(who: SignedIn, p: PendingRecord): boolean {
  const a = who.approver;
  if (a === undefined || p.status !== 'pending') return false;
  if (p.tenant === '*' ? a.tenants !== '*' : !approverCovers(a.tenants, p.tenant)) return false;
  return p.roles.length === 0 || p.roles.some((r) => a.roles.includes(r));
}

/** The votes so far with their justifications (approvers see why the others decided). */
async function votesOf(deps: ApiDeps, decisionId: string): Promise<JsonValue[]> {
  return (await deps.approvals.votes(decisionId)).map((v) => {
    const statement = v.candidate['statement'];
    const j =
      typeof statement === 'object' && statement !== null && !Array.isArray(statement)
        ? (statement as JsonObject)['justification']
        : undefined;
    return {
      approver: v.approver,
      verdict: v.verdict,
      role: v.role,
      justification: typeof j === 'string' ? j : null,
    };
  });
}

async function inbox(deps: ApiDeps, who: SignedIn): Promise<ApiAnswer | Deny> {
  if (who.approver === undefined || !keySignedIn(who))
    return deny('ERR_APPROVER_UNKNOWN', 'the device key is not confirmed by an operator yet');
  const items: JsonValue[] = [];
  for (const listed of await deps.approvals.list()) {
    if (listed.status !== 'pending') continue;
    // Reading through `get` applies expiry: a closed window is never shown as waiting.
    const p = await deps.approvals.get(listed.decision_id);
    if (p === undefined || !mine(who, p)) continue;
    // The inbox shows the preview: the approver has opened it (approvals watched, docs/approvals.md).
    await deps.approvals.recordView(p.decision_id, who.approver.name, deps.now()).catch(() => false);
    const view = await pendingView(deps.approvals, p, false);
    const why = (await deps.decisionOf?.(p.request_id, p.decision_id)) ?? null;
    // A policy activation shows what it changes, not only two hashes.
    const change =
      p.kind === 'policy_activation' && p.policy_bundle !== null
        ? { policy_diff: (await deps.policyDiff?.(p.policy_bundle)) ?? null }
        : {};
    items.push({ ...view, votes: await votesOf(deps, p.decision_id), escalation: why, ...change });
  }
  return ok({ now: new Date(deps.now()).toISOString(), approvals: items });
}

/**
 * The evidence of one request for a confirmed approver whose tenants cover every record's tenant
 * (FC-INV-5): the read is ledgered with the reader first (no record, no read), then answered.
 */
async function evidence(deps: ApiDeps, who: SignedIn, requestId: string): Promise<ApiAnswer | Deny> {
  const a = who.approver;
  if (a === undefined || !keySignedIn(who))
    return deny('ERR_APPROVER_UNKNOWN', 'the device key is not confirmed by an operator yet');
  if (deps.evidenceOf === undefined || deps.recordRead === undefined)
    return { status: 404, body: { error: 'not_found' } };
  const view = await deps.evidenceOf(requestId);
  const records =
    view !== null && typeof view === 'object' && !Array.isArray(view)
      ? (view as JsonObject)['records']
      : undefined;
  if (view === null || !Array.isArray(records)) return { status: 404, body: { error: 'not_found' } };
  const tenants = records.map((r) => {
    const entry = (r as JsonObject)['entry'];
    return typeof entry === 'object' && entry !== null && !Array.isArray(entry)
      ? (entry as JsonObject)['tenant']
      : undefined;
  });
  // Another tenant's records are not this approver's to read; a record of every tenant (`*`) or of
  // none is read by an approver of every tenant only, as the inbox shows `*` approvals.
  if (
    tenants.some((t) =>
      typeof t === 'string' && t !== '*' ? !approverCovers(a.tenants, t) : a.tenants !== '*',
    )
  )
    return deny('ERR_APPROVER_TENANT', 'the request is of a tenant outside your scope');
  if (!(await deps.recordRead(a.name, requestId)))
    return deny('ERR_LEDGER_UNAVAILABLE', 'the read was not recorded');
  return ok({ ...(view as JsonObject) });
}

/**
 * Routes one API request (`route` is the path after `/console/api/`). Never rejects on refusal:
 * denies. A sign-in goes through the sign-in guard (limits, `console.sign_in` records).
 */
export async function routeApi(
  deps: ApiDeps,
  method: string,
  route: string,
  body: JsonObject,
  cookies: ApiCookies,
): Promise<ApiAnswer | Deny> {
  const signIn = method === 'POST' ? SIGN_INS[route] : undefined;
  if (signIn === undefined) return routeOne(deps, method, route, body, cookies);
  // The identity provider's step comes after a sign-in: the session names the person, so the
  // record of a refused return names them too (the body names nobody).
  const name =
    route === 'sign-in/oidc/callback'
      ? await sessionName(deps, cookies.session)
      : typeof body['name'] === 'string'
        ? body['name']
        : undefined;
  return deps.signInGuard(
    {
      ...signIn,
      ...(signIn.kind === 'approver' && name !== undefined ? { name } : {}),
      ...(cookies.address === undefined ? {} : { address: cookies.address }),
    },
    () => routeOne(deps, method, route, body, cookies),
  );
}

/** The person the approver session `cookie` belongs to, or undefined. */
async function sessionName(deps: ApiDeps, cookie: string | undefined): Promise<string | undefined> {
  const who = await deps.console.authenticate(cookie).catch(() => undefined);
  return who === undefined || isDeny(who) ? undefined : who.person.name;
}

async function routeOne(
  deps: ApiDeps,
  method: string,
  route: string,
  body: JsonObject,
  cookies: ApiCookies,
): Promise<ApiAnswer | Deny> {
  const c = deps.console;
  const cookie = cookies.session;
  if (method === 'POST' && route === 'sign-in/code') {
    const r = await c.signInWithCode(body['name'], body['code']);
    return isDeny(r) ? r : ok({ outcome: 'ok', method: 'code' }, r.id);
  }
  if (method === 'POST' && route === 'sign-in/challenge') {
    const r = await c.challenge(body['name']);
    return isDeny(r) ? r : ok({ ...r });
  }
  if (method === 'POST' && route === 'sign-in/key') {
    const r = await c.signInWithKey(body['name'], body['challenge'], body['signature']);
    return isDeny(r) ? r : ok({ outcome: 'ok', method: 'key' }, r.id);
  }
  if (method === 'POST' && route === 'sign-out') {
    await deps.operator?.signOut(cookie ?? '');
    if (cookie !== undefined) await c.signOut(cookie);
    return ok({ outcome: 'ok' }, '');
  }
  // Operator sessions and approver sessions never stand in for each other (operator-api.ts).
  if (route.startsWith('operator/')) {
    if (deps.operator === undefined) return { status: 404, body: { error: 'not_found' } };
    return deps.operator.route(method, route.slice('operator/'.length), body, cookie, cookies.pending);
  }
  const who = await c.authenticate(cookie);
  if (isDeny(who)) return who;
  if (method === 'POST' && route === 'sign-in/oidc/start') {
    const r = await c.oidcBegin(who);
    if (isDeny(r)) return r;
    return { status: 200, body: { outcome: 'ok', authorization_url: r.url }, pending: r.pending };
  }
  if (method === 'POST' && route === 'sign-in/oidc/callback') {
    const r = await c.oidcFinish(who, cookies.pending, {
      code: body['code'],
      state: body['state'],
      ...(body['iss'] === undefined ? {} : { iss: body['iss'] }),
    });
    // Refused: no session changes; its state was used once already, a retry starts at the issuer.
    if (isDeny(r)) return r;
    return {
      status: 200,
      body: { outcome: 'ok', method: 'oidc', name: who.person.name },
      cookie: r.id,
      pending: '',
    };
  }
  if (method === 'GET' && route === 'me') {
    const a = who.approver;
    return ok({
      name: who.person.name,
      stage: stageOf(who),
      method: who.session.method,
      oidc_required: awaitsOidc(who),
      oidc_subject: who.person.oidc_subject,
      kid: who.person.kid,
      roles: [...(a?.roles ?? who.person.roles)],
      tenants:
        (a?.tenants ?? who.person.tenants) === '*'
          ? '*'
          : [...((a?.tenants ?? who.person.tenants) as string[])],
      now: new Date(deps.now()).toISOString(),
    });
  }
  if (method === 'POST' && route === 'enrol') {
    const r = await c.enrol(who, body['public_jwk']);
    return isDeny(r) ? r : ok({ outcome: 'ok', kid: r.kid });
  }
  if (method === 'GET' && route === 'inbox') return inbox(deps, who);
  if (method === 'GET' && route === 'reviews') return reviewsFor(deps, who);
  const r = method === 'GET' ? REQUEST.exec(route) : null;
  if (r?.[1] !== undefined) return evidence(deps, who, r[1]);
  const v = method === 'POST' ? VERDICT.exec(route) : null;
  const rv = method === 'POST' ? REVIEW.exec(route) : null;
  const glass = method === 'POST' && route === 'break-glass';
  if ((v?.[1] !== undefined && (v[2] === 'approve' || v[2] === 'reject')) || rv?.[1] !== undefined || glass) {
    if (!keySignedIn(who))
      return deny(
        'ERR_APPROVER_UNKNOWN',
        'sign in with the device key (and your identity provider) to approve',
      );
    // The signed-in person speaks for themselves only.
    if (signerOf(body, rv?.[1] === undefined ? 'approver' : 'reviewer') !== who.person.name)
      return deny('ERR_APPROVAL_INVALID', 'the statement names another approver than the signed-in one');
    const signed = { statement: body['statement'] ?? null, signature: body['signature'] ?? null };
    const proof = proofOf(who);
    const a =
      v?.[1] !== undefined && (v[2] === 'approve' || v[2] === 'reject')
        ? await deps.approvalApi.submit(v[1], v[2], signed, undefined, proof)
        : rv?.[1] !== undefined
          ? await deps.approvalApi.closeReview(rv[1], signed, proof)
          : await deps.approvalApi.breakGlass(signed, proof);
    return { status: a.status, body: a.body };
  }
  return { status: 404, body: { error: 'not_found' } };
}
