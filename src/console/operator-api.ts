/**
 * The operator's side of the console (docs/console.md "Operator pages"): sign-in with the
 * operator token, or through the configured OpenID Connect issuer for an operator bound to an
 * identity there (the relying party of oidc.ts: code flow, PKCE, state, nonce), into a
 * server-side operator session whose credential is checked again against the registry on every
 * request (a rotated token, a changed binding or a removed operator ends it); the
 * incident controls (kill switch, tenant lockdown, session quarantine, breaker reset), each
 * confirmed by typing its target, carried out through one injected function that runs the
 * operator actions (`POST /v1/admin/{action}`: ledgered first, OE-INV-025); and the latest
 * signed checkpoint of the ledger (FC-INV-5). Operator sessions are never approver sessions and
 * the other way round: each kind is looked up in its own table only. Tenant scope is checked
 * here, server side. Every refusal is a deny with its code; nothing here allows on error.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { deny, encodeBase64url, isDeny, sha256Hex } from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { approverCovers } from '../control-plane/index.js';
import type { ApproverTenants } from '../control-plane/index.js';
import type { ApiAnswer } from './api.js';
import type { OidcRelyingParty } from './oidc.js';
import type { ConsoleTimes } from './service.js';
import type { ConsoleStore } from './store.js';
import { DEFAULT_CONSOLE_TIMES, SESSION_CLOCK_SKEW_MS } from './service.js';

/** An operator as the injected authenticator resolves a token: a name and the tenants it acts for. */
export interface OperatorIdentity {
  readonly name: string;
  readonly tenants: ApproverTenants;
}

/** An active operator as the registry holds it, for the console's sign-ins and per-request checks. */
export interface OperatorAccount extends OperatorIdentity {
  /** SHA-256 (hex) of the operator's bearer token. */
  readonly token_sha256: string;
  /** The OIDC identity the operator is bound to; null when none (the token signs in). */
  readonly oidc: { readonly issuer: string; readonly subject: string; readonly bound_at: number } | null;
}

/** The operator registry as the console reads it (src/gate/operators.ts); each read may reject. */
export interface OperatorAccounts {
  /** The ACTIVE operator whose token hashes to `tokenSha256`. */
  byToken(tokenSha256: string): Promise<OperatorAccount | undefined>;
  /** The ACTIVE operator bound to this identity. */
  bySubject(issuer: string, subject: string): Promise<OperatorAccount | undefined>;
  /** The ACTIVE operator named `name`. */
  named(name: string): Promise<OperatorAccount | undefined>;
}

/** What an operator's pending OIDC sign-in is bound to (the relying party's `binding`). */
export const OPERATOR_OIDC_BINDING = 'operator-console';

/** An operator action's answer (`OperatorActions.run`). */
export interface OperatorActionAnswer {
  readonly status: number;
  readonly body: JsonValue;
  /** The lines of an export (`ledger-export`). */
  readonly stream?: AsyncIterable<string>;
}

/** The incident state shown to operators (the governance snapshot). */
export interface IncidentState {
  readonly kill_switch: boolean;
  readonly locked_tenants: readonly string[];
  readonly quarantined_sessions: readonly string[];
}

/** The policy page's reads (wired over the bundle store and the approval service). */
export interface OperatorPolicyPages {
  /** The active bundle `{hash, name, tools, policies}`, or null. */
  active(): JsonObject | null;
  /** What activating the stored bundle `hash` changes (`diffBundles` + text); null when unknown. */
  diffStored(hash: string): Promise<JsonObject | null>;
  /** What activating the bundle document `text` changes; a deny when it is no valid bundle. */
  diffText(text: string): JsonObject | Deny;
  /** Policy activations waiting for approvals. */
  pending(): Promise<JsonObject[]>;
}

/** What the operator pages need; wired in src/embedded/console.ts. */
export interface OperatorConsoleDeps {
  /** The operator registry: sign-ins, and every request's check of its session's credential. */
  readonly operators: OperatorAccounts;
  /** The relying party of `console.oidc` sending the browser back to the operator page; absent: token sign-in only. */
  readonly oidc?: OidcRelyingParty;
  /** Runs an operator action as `person` (`OperatorActions.run`). */
  readonly runAdmin: (
    person: OperatorIdentity,
    action: string,
    body: JsonObject,
  ) => Promise<OperatorActionAnswer>;
  /** The kill switch, locked tenants and quarantined sessions. */
  readonly incidentState: () => Promise<IncidentState>;
  /** The latest signed checkpoint `{size, root_hash, note}`, or null before the first. */
  readonly latestCheckpoint?: () => Promise<JsonObject | null>;
  /** Break-glass reviews (open and closed); absent: no break-glass page. */
  readonly reviews?: () => Promise<JsonObject[]>;
  /** Break-glass grants unexpired now; absent: the page lists reviews only. */
  readonly grants?: () => Promise<JsonObject[]>;
  /** The policy page; absent: none. */
  readonly policy?: OperatorPolicyPages;
  /** Where the sessions are kept (the console store). */
  readonly sessions: Pick<
    ConsoleStore,
    'createOperatorSession' | 'operatorSession' | 'touchOperatorSession' | 'deleteOperatorSession'
  >;
  readonly now: Clock;
  readonly times?: Partial<ConsoleTimes>;
}

/**
 * What a session of `method` proved for `a`: its token's hash (only while unbound: a bound
 * operator's token is refused here), or its binding, including when it was made (an unbind and a
 * rebind to the same subject end the sessions of the first binding). Undefined: `method` cannot
 * sign `a` in.
 */
function credentialOf(a: OperatorAccount, method: 'token' | 'oidc'): string | undefined {
  if (method === 'token') return a.oidc === null ? `token:${a.token_sha256}` : undefined;
  return a.oidc === null
    ? undefined
    : `oidc:${JSON.stringify([a.oidc.issuer, a.oidc.subject, a.oidc.bound_at])}`;
}

/** The operator pages' API under `/console/api/operator/`. */
export interface OperatorConsole {
  route(
    method: string,
    route: string,
    body: JsonObject,
    cookie: string | undefined,
    /** The cookie of a pending OIDC sign-in. */
    pending?: string,
  ): Promise<ApiAnswer | Deny>;
  /** Ends the operator session of this cookie value, if it is one. */
  signOut(cookie: string): Promise<void>;
}

const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
const TENANT = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_SESSIONS = 1_000;

const ok = (body: JsonObject, cookie?: string): ApiAnswer =>
  cookie === undefined ? { status: 200, body } : { status: 200, body, cookie };

const scope = (reason: string): Deny => deny('ERR_FORBIDDEN', reason);

/** True when `typed` is exactly `expected` (the confirmation step), compared in constant time. */
function confirmed(typed: JsonValue | undefined, expected: string): boolean {
  if (typeof typed !== 'string') return false;
  const d = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(d(typed), d(expected));
}

/**
 * An incident control as the page asks for it: the operator action, its body, the text the
 * operator must type to confirm, and whether it needs an operator of every tenant.
 */
function incidentAction(
  control: string,
  body: JsonObject,
): { action: string; args: JsonObject; target: string; tenant: string } | Deny {
  const reason = typeof body['reason'] === 'string' ? body['reason'].slice(0, 500) : 'console';
  const on = body['on'];
  if (control === 'kill-switch') {
    if (typeof on !== 'boolean') return deny('ERR_REQUEST_MALFORMED', 'on must be a boolean');
    return {
      action: 'kill-switch',
      args: { on, reason },
      target: on ? 'engage' : 'release',
      tenant: '*',
    };
  }
  if (control === 'lockdown') {
    const tenant = body['tenant'];
    if (typeof tenant !== 'string' || !TENANT.test(tenant) || typeof on !== 'boolean')
      return deny('ERR_REQUEST_MALFORMED', 'tenant and on are required');
    return { action: 'lockdown', args: { tenant, on, reason }, target: tenant, tenant };
  }
  if (control === 'quarantine') {
    const session = body['session'];
    if (typeof session !== 'string' || typeof on !== 'boolean')
      return deny('ERR_REQUEST_MALFORMED', 'session and on are required');
    // A session's tenant is not known here: quarantine is for operators of every tenant.
    return { action: 'quarantine', args: { session, on, reason }, target: session, tenant: '*' };
  }
  if (control === 'breaker-reset') {
    const tenant = body['tenant'];
    const session = body['session'];
    const client = body['client'];
    if (typeof tenant === 'string' && session === undefined && client === undefined) {
      if (!TENANT.test(tenant)) return deny('ERR_REQUEST_MALFORMED', 'tenant is malformed');
      return { action: 'breaker-reset', args: { tenant, reason }, target: tenant, tenant };
    }
    if (typeof session === 'string' && tenant === undefined && client === undefined)
      return { action: 'breaker-reset', args: { session, reason }, target: session, tenant: '*' };
    if (typeof client === 'string' && tenant === undefined && session === undefined)
      return { action: 'breaker-reset', args: { client, reason }, target: client, tenant: '*' };
    return deny('ERR_REQUEST_MALFORMED', 'exactly one of session, client or tenant is required');
  }
  return deny('ERR_REQUEST_MALFORMED', 'unknown incident control');
}

function tenantsView(t: ApproverTenants): JsonValue {
  return t === '*' ? '*' : [...t];
}

const HASH = /^[0-9a-f]{64}$/;

/**
 * The policy page: the active bundle and pending activations, the diff of a stored bundle (by
 * hash) or of a pasted document against the active one, and an activation request through the
 * operator action (which opens a multi-party approval when `approvals.json` asks for one,
 * OE-INV-020). Bundles govern every tenant: for operators of every tenant.
 */
async function policyRoute(
  pages: OperatorPolicyPages,
  who: OperatorIdentity,
  method: string,
  route: string,
  body: JsonObject,
  run: OperatorConsoleDeps['runAdmin'],
): Promise<ApiAnswer | Deny | undefined> {
  if (who.tenants !== '*') return scope('policy bundles are for operators of every tenant');
  if (method === 'GET' && route === 'policy')
    return ok({ active: pages.active(), pending: await pages.pending() });
  if (method === 'POST' && route === 'policy/diff') {
    const { hash, bundle } = body;
    if (typeof hash === 'string' && HASH.test(hash)) {
      const d = await pages.diffStored(hash);
      return d === null
        ? deny('ERR_POLICY_BUNDLE_INVALID', 'no stored bundle has this hash')
        : ok({ diff: d });
    }
    if (typeof bundle === 'string') {
      const d = pages.diffText(bundle);
      return isDeny(d) ? d : ok({ diff: d });
    }
    return deny('ERR_REQUEST_MALFORMED', 'a hash or a bundle document is required');
  }
  if (method === 'POST' && route === 'policy/activate') {
    const bundle = body['bundle'];
    if (typeof bundle !== 'string') return deny('ERR_REQUEST_MALFORMED', 'the bundle document is required');
    if (!confirmed(body['confirm'], 'activate'))
      return deny('ERR_REQUEST_MALFORMED', 'type "activate" to confirm');
    const reason = typeof body['reason'] === 'string' ? body['reason'].slice(0, 500) : 'console';
    const r = await run(who, 'policy-activate', { bundle, reason });
    return { status: r.status, body: r.body };
  }
  return undefined;
}

/** True when every tenant of `tenants` (a list or `*`) is in the operator's scope. */
function coversAll(who: OperatorIdentity, tenants: JsonValue | undefined): boolean {
  if (who.tenants === '*') return true;
  return (
    Array.isArray(tenants) && tenants.every((t) => typeof t === 'string' && approverCovers(who.tenants, t))
  );
}

function listOf(body: JsonValue, key: string): JsonObject[] {
  const o = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as JsonObject) : {};
  const v = o[key];
  return Array.isArray(v)
    ? v.filter((x): x is JsonObject => typeof x === 'object' && x !== null && !Array.isArray(x))
    : [];
}

/**
 * Clients and approvers: the lists (each operator sees its tenants' only), client registration
 * with an uploaded public key, rotation and revocation, and approver invitation, confirmation and
 * removal, each through the operator action of the same name (ledgered there).
 */
async function peopleRoute(
  run: OperatorConsoleDeps['runAdmin'],
  who: OperatorIdentity,
  method: string,
  route: string,
  body: JsonObject,
): Promise<ApiAnswer | Deny | undefined> {
  const clients = async (): Promise<JsonObject[]> =>
    listOf((await run(who, 'clients-list', {})).body, 'clients').filter(
      (c) => typeof c['tenant'] === 'string' && approverCovers(who.tenants, c['tenant']),
    );
  const approvers = async (): Promise<JsonObject[]> =>
    listOf((await run(who, 'approvers-list', {})).body, 'approvers').filter((a) =>
      a['tenants'] === '*' ? who.tenants === '*' : coversAll(who, a['tenants']),
    );
  const answer = (r: OperatorActionAnswer): ApiAnswer => ({ status: r.status, body: r.body });
  const reason = typeof body['reason'] === 'string' ? body['reason'].slice(0, 500) : 'console';
  const name = body['name'];
  if (method === 'GET' && route === 'people')
    return ok({ clients: await clients(), approvers: await approvers() });
  if (method !== 'POST') return undefined;
  if (route === 'clients/register') {
    const tenant = body['tenant'];
    if (typeof tenant !== 'string' || !approverCovers(who.tenants, tenant))
      return scope('the tenant is outside your scope');
    const args: JsonObject = {
      name: name ?? null,
      tenant,
      public_jwk: body['public_jwk'] ?? null,
      ...(body['owner'] === undefined ? {} : { owner: body['owner'] }),
      ...(body['roles'] === undefined ? {} : { roles: body['roles'] }),
    };
    return answer(await run(who, 'clients-add', args));
  }
  if (route === 'clients/rotate' || route === 'clients/revoke') {
    const c = (await clients()).find((x) => x['identity'] === name);
    // Another tenant's client is reported as unknown: its existence is not this operator's to learn.
    if (c === undefined || typeof name !== 'string')
      return deny('ERR_CLIENT_UNKNOWN', 'no client has this name');
    if (route === 'clients/rotate')
      return answer(
        await run(who, 'clients-rotate', { name, public_jwk: body['public_jwk'] ?? null, reason }),
      );
    if (!confirmed(body['confirm'], name)) return deny('ERR_REQUEST_MALFORMED', `type "${name}" to confirm`);
    return answer(await run(who, 'clients-revoke', { name, reason }));
  }
  if (route === 'approvers/invite') {
    const tenants = body['tenants'];
    if (tenants === '*' ? who.tenants !== '*' : !coversAll(who, tenants))
      return scope('the tenants are outside your scope');
    const args: JsonObject = {
      name: name ?? null,
      roles: body['roles'] ?? null,
      tenants: tenants ?? null,
      ...(body['ttl_sec'] === undefined ? {} : { ttl_sec: body['ttl_sec'] }),
    };
    return answer(await run(who, 'approvers-invite', args));
  }
  if (route === 'approvers/confirm') {
    // The invitation's tenants were checked when it was made; confirming needs every tenant or the person listed.
    if (who.tenants !== '*') return scope('confirmation is for operators of every tenant');
    return answer(await run(who, 'approvers-confirm', { name: name ?? null, kid: body['kid'] ?? null }));
  }
  if (route === 'approvers/remove') {
    const a = (await approvers()).find((x) => x['name'] === name);
    if (a === undefined || typeof name !== 'string')
      return deny('ERR_APPROVER_UNKNOWN', 'no approver has this name');
    if (!confirmed(body['confirm'], name)) return deny('ERR_REQUEST_MALFORMED', `type "${name}" to confirm`);
    return answer(await run(who, 'approvers-remove', { name, reason }));
  }
  return undefined;
}

/**
 * Creates the operator pages' API. Sessions are kept in the console store (`deps.sessions`), shared
 * by every gate on the same storage: signed in through one replica, signed in through all.
 */
export function createOperatorConsole(deps: OperatorConsoleDeps): OperatorConsole {
  const times: ConsoleTimes = Object.freeze({ ...DEFAULT_CONSOLE_TIMES, ...deps.times });
  const sessions = deps.sessions;

  /**
   * The session of this cookie, its credential checked against the registry now (a rotated token,
   * a binding made, changed or undone, a removed operator: the session ends), and who acts.
   * A failing store or registry read rejects: the console answers ERR_INTERNAL, never the old scope.
   */
  const authenticate = async (
    cookie: string | undefined,
  ): Promise<(OperatorIdentity & { readonly method: 'token' | 'oidc' }) | Deny> => {
    if (cookie === undefined || !TOKEN.test(cookie)) return deny('ERR_UNAUTHENTICATED', 'sign in first');
    const key = sha256Hex(cookie);
    const s = await sessions.operatorSession(key);
    if (s === undefined) return deny('ERR_UNAUTHENTICATED', 'not an operator session');
    const at = deps.now();
    if (
      at - s.last_seen >= times.idleMs ||
      at - s.created_at >= times.absoluteMs ||
      at < s.created_at - SESSION_CLOCK_SKEW_MS
    ) {
      await sessions.deleteOperatorSession(key);
      return deny('ERR_UNAUTHENTICATED', 'the session expired: sign in again');
    }
    const a = await deps.operators.named(s.name);
    if (a === undefined || credentialOf(a, s.method) !== s.credential) {
      await sessions.deleteOperatorSession(key);
      return deny('ERR_UNAUTHENTICATED', 'the operator’s sign-in changed or was removed: sign in again');
    }
    await sessions.touchOperatorSession(key, at);
    return { name: a.name, tenants: a.tenants, method: s.method };
  };

  /** A new session of `a` proven by `method`. */
  const open = async (a: OperatorAccount, method: 'token' | 'oidc'): Promise<ApiAnswer | Deny> => {
    const credential = credentialOf(a, method);
    if (credential === undefined) return deny('ERR_UNAUTHENTICATED', 'this operator cannot sign in so');
    const at = deps.now();
    const id = encodeBase64url(randomBytes(32));
    // Only the hash of the session id is kept: the store names no live cookie.
    const made = await sessions.createOperatorSession(
      { id_sha256: sha256Hex(id), name: a.name, method, credential, created_at: at, last_seen: at },
      { idleBefore: at - times.idleMs, createdBefore: at - times.absoluteMs },
      MAX_SESSIONS,
    );
    if (!made) return deny('ERR_OVERLOADED', 'too many operator sessions');
    return ok({ outcome: 'ok', kind: 'operator', name: a.name, method }, id);
  };

  const signIn = async (token: JsonValue | undefined): Promise<ApiAnswer | Deny> => {
    if (typeof token !== 'string' || token.length === 0 || token.length > 512)
      return deny('ERR_UNAUTHENTICATED', 'the operator token is required');
    const a = await deps.operators.byToken(sha256Hex(token));
    if (a === undefined) return deny('ERR_UNAUTHENTICATED', 'the operator token is not valid');
    // Bound to an identity provider: the console hears this person only through it (the CLI
    // still takes the token).
    if (a.oidc !== null)
      return deny('ERR_UNAUTHENTICATED', 'this operator signs in with the identity provider');
    return open(a, 'token');
  };

  /** Back from the issuer: the code exchanged and the ID token validated by the relying party. */
  const oidcFinish = async (body: JsonObject, pending: string | undefined): Promise<ApiAnswer | Deny> => {
    if (deps.oidc === undefined) return { status: 404, body: { error: 'not_found' } };
    const id = await deps.oidc.finish(pending, OPERATOR_OIDC_BINDING, {
      code: body['code'],
      state: body['state'],
      ...(body['iss'] === undefined ? {} : { iss: body['iss'] }),
    });
    if (isDeny(id)) return id;
    const a = await deps.operators.bySubject(id.issuer, id.subject);
    if (a === undefined) return deny('ERR_UNAUTHENTICATED', 'no operator is bound to this identity');
    const r = await open(a, 'oidc');
    return isDeny(r) ? r : { ...r, pending: '' };
  };

  const incident = async (who: OperatorIdentity): Promise<ApiAnswer> => {
    const s = await deps.incidentState();
    const all = who.tenants === '*';
    return ok({
      kill_switch: s.kill_switch,
      locked_tenants: s.locked_tenants.filter((t) => approverCovers(who.tenants, t)),
      // Sessions carry no tenant here: only an operator of every tenant sees them.
      quarantined_sessions: all ? [...s.quarantined_sessions] : [],
      now: new Date(deps.now()).toISOString(),
    });
  };

  const control = async (
    who: OperatorIdentity,
    name: string,
    body: JsonObject,
  ): Promise<ApiAnswer | Deny> => {
    const a = incidentAction(name, body);
    if ('code' in a) return a;
    if (a.tenant === '*' ? who.tenants !== '*' : !approverCovers(who.tenants, a.tenant))
      return scope(
        a.tenant === '*'
          ? 'this control is for operators of every tenant'
          : 'the tenant is outside your scope',
      );
    if (!confirmed(body['confirm'], a.target))
      return deny('ERR_REQUEST_MALFORMED', `type "${a.target}" to confirm`);
    const r = await deps.runAdmin(who, a.action, a.args);
    return { status: r.status, body: r.body };
  };

  const api: OperatorConsole = {
    async route(method, route, body, cookie, pending) {
      if (method === 'POST' && route === 'sign-in') return signIn(body['token']);
      // What the sign-in page offers: the issuer when one is configured.
      if (method === 'GET' && route === 'sign-in')
        return ok({ oidc: deps.oidc === undefined ? null : { issuer: deps.oidc.config.issuer } });
      if (method === 'POST' && route === 'sign-in/oidc/start') {
        if (deps.oidc === undefined) return { status: 404, body: { error: 'not_found' } };
        const r = await deps.oidc.begin(OPERATOR_OIDC_BINDING);
        if (isDeny(r)) return r;
        return { status: 200, body: { outcome: 'ok', authorization_url: r.url }, pending: r.pending };
      }
      if (method === 'POST' && route === 'sign-in/oidc/callback') return oidcFinish(body, pending);
      const who = await authenticate(cookie);
      if (isDeny(who)) return who;
      if (method === 'GET' && route === 'me') {
        return ok({
          kind: 'operator',
          name: who.name,
          tenants: tenantsView(who.tenants),
          method: who.method,
          now: new Date(deps.now()).toISOString(),
        });
      }
      if (method === 'GET' && route === 'incident') return incident(who);
      const m = method === 'POST' ? /^incident\/([a-z-]{1,32})$/.exec(route) : null;
      if (m?.[1] !== undefined) return control(who, m[1], body);
      if (route.startsWith('policy') && deps.policy !== undefined) {
        const a = await policyRoute(deps.policy, who, method, route, body, deps.runAdmin);
        if (a !== undefined) return a;
      }
      if (route === 'people' || route.startsWith('clients/') || route.startsWith('approvers/')) {
        const a = await peopleRoute(deps.runAdmin, who, method, route, body);
        if (a !== undefined) return a;
      }
      if (method === 'GET' && route === 'break-glass') {
        if (deps.reviews === undefined) return { status: 404, body: { error: 'not_found' } };
        // A review names no tenant: for operators of every tenant.
        if (who.tenants !== '*') return scope('break-glass reviews are for operators of every tenant');
        return ok({
          reviews: await deps.reviews(),
          ...(deps.grants === undefined ? {} : { grants: await deps.grants() }),
        });
      }
      if (method === 'POST' && route === 'break-glass/revoke') {
        // As the page that lists them: for operators of every tenant.
        if (who.tenants !== '*') return scope('break-glass grants are for operators of every tenant');
        const id = body['grant_id'];
        if (typeof id !== 'string') return deny('ERR_REQUEST_MALFORMED', 'grant_id is required');
        if (!confirmed(body['confirm'], id)) return deny('ERR_REQUEST_MALFORMED', `type "${id}" to confirm`);
        const reason = typeof body['reason'] === 'string' ? body['reason'].slice(0, 500) : 'console';
        const r = await deps.runAdmin(who, 'break-glass-revoke', { grant_id: id, reason });
        return { status: r.status, body: r.body };
      }
      if (method === 'POST' && route === 'ledger/export') {
        // An export holds every tenant's records: for operators of every tenant. The admin
        // action ledgers the export (`audit.export`) before a line is read.
        if (who.tenants !== '*') return scope('an export is for operators of every tenant');
        const r = await deps.runAdmin(who, 'ledger-export', {});
        if (r.status !== 200 || r.stream === undefined) return { status: r.status, body: r.body };
        const size = (r.body as JsonObject)['checkpoint_size'];
        return {
          status: 200,
          body: r.body,
          download: {
            filename: `failclosed-ledger-${typeof size === 'number' ? size : 'export'}.ndjson`,
            lines: r.stream,
          },
        };
      }
      if (method === 'GET' && route === 'ledger') {
        if (deps.latestCheckpoint === undefined) return { status: 404, body: { error: 'not_found' } };
        return ok({ checkpoint: await deps.latestCheckpoint(), now: new Date(deps.now()).toISOString() });
      }
      return { status: 404, body: { error: 'not_found' } };
    },
    async signOut(cookie) {
      if (TOKEN.test(cookie)) await sessions.deleteOperatorSession(sha256Hex(cookie));
    },
  };
  return Object.freeze(api);
}
