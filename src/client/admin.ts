/**
 * The operator (admin) client (OE-INV-025, SPEC §5, §6, docs/client.md): the Gate's operator
 * endpoints behind the operator token, `POST /v1/admin/{action}` and the operator's read views.
 * Every change is ledgered by the Gate before it applies. Never rejects: a transport failure is
 * status 0 with `ERR_INTERNAL`, an answer that is not JSON keeps its status with `ERR_INTERNAL`.
 */
import { downloadBundle } from './download.js';
import { exchangeOf, neverSent, sendJson } from './http.js';
import type { Ed25519PublicJwk, JsonObject, JsonValue } from '../kernel/index.js';

/** Options of {@link createAdminClient}. */
export interface AdminClientOptions {
  /** Gate base URL, e.g. `http://127.0.0.1:7070`. */
  readonly url: string;
  /** An operator token: the bootstrap `<data>/operator.token`, or a person's own. A secret. */
  readonly token: string;
  /**
   * A `fetch` to send with (a custom dispatcher or TLS setup); default `node:http` / `node:https`
   * over their global keep-alive agents (`http.ts`).
   */
  readonly fetch?: typeof fetch;
}

/** An HTTP answer from the Gate: its status (0: unreachable) and JSON body. */
export interface AdminAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/** A client to register. */
export interface ClientRegistration {
  readonly name: string;
  readonly tenant: string;
  /** The client's Ed25519 public JWK (see `generateClientKey`). */
  readonly publicJwk: Ed25519PublicJwk;
  /** Who answers for the client; may not approve its calls (OE-INV-002). Default `operator`. */
  readonly owner?: string;
}

/** An approver to register. */
export interface ApproverRegistration {
  readonly name: string;
  readonly roles: readonly string[];
  /** The tenants whose calls it may decide, or `'*'` for every tenant (OE-INV-020). */
  readonly tenants: readonly string[] | '*';
  /** The public key the approver made on their own device (never the private key). */
  readonly publicJwk: Ed25519PublicJwk;
}

/** Where a ledger export goes, and its range or trace. */
export interface ExportOptions {
  /**
   * The file the audit bundle is written to (through `out.partial`, renamed once the bundle's end
   * record arrived). The bundle is streamed, never held in memory: it may be larger than memory.
   */
  readonly out: string;
  readonly traceId?: string;
  readonly from?: number;
  readonly to?: number;
}

/** The operator client. Each change takes an optional `reason`, ledgered with it. */
export interface AdminClient {
  /** Any operator action by name: `POST /v1/admin/{action}` with `body`. */
  action(name: string, body?: JsonObject): Promise<AdminAnswer>;
  /** Engages (`true`) or releases the global kill switch. */
  killSwitch(on: boolean, reason?: string): Promise<AdminAnswer>;
  /** Locks a tenant down, or lifts the lockdown. */
  lockdown(tenant: string, on: boolean, reason?: string): Promise<AdminAnswer>;
  /** Quarantines an agent session, or releases it. */
  quarantine(session: string, on: boolean, reason?: string): Promise<AdminAnswer>;
  /** Registers an agent client (201 with its record). */
  addClient(client: ClientRegistration): Promise<AdminAnswer>;
  listClients(): Promise<AdminAnswer>;
  /** Registers a human approver's public key with roles and a tenant scope (201). */
  addApprover(approver: ApproverRegistration): Promise<AdminAnswer>;
  /** Removes an approver: its later votes are refused, its votes on open decisions stop counting. */
  removeApprover(name: string, reason?: string): Promise<AdminAnswer>;
  listApprovers(): Promise<AdminAnswer>;
  /** The break-glass grants in force, of the operator's tenants. */
  listBreakGlass(): Promise<AdminAnswer>;
  /** Ends a break-glass grant before its TTL: no call finds it from then on (ledgered first). */
  revokeBreakGlass(grantId: string, reason?: string): Promise<AdminAnswer>;
  /** Replaces a client's key; the old one stops at once. */
  rotateClient(name: string, publicJwk: Ed25519PublicJwk, reason?: string): Promise<AdminAnswer>;
  /** Revokes a client: its calls are denied `ERR_CLIENT_REVOKED`. */
  revokeClient(name: string, reason?: string): Promise<AdminAnswer>;
  /** Stores and activates a policy bundle document (JSON text). */
  activatePolicy(bundle: string, reason?: string): Promise<AdminAnswer>;
  /** Rotates the envelope issuer key. */
  rotateIssuerKey(reason?: string): Promise<AdminAnswer>;
  /** Revokes a retired issuer key by `kid` (the current key cannot be revoked). */
  revokeIssuerKey(kid: string, reason?: string): Promise<AdminAnswer>;
  /**
   * Adds an operator (a person) for `tenants`, or `'*'` every tenant (OE-INV-025); 201 with the
   * new token in `body.token`, answered once: hand it to the person, never store it with the gate.
   */
  addOperator(name: string, tenants: readonly string[] | '*', reason?: string): Promise<AdminAnswer>;
  /** A new token for operator `name` (`body.token`); the old one is refused at once. */
  rotateOperator(name: string, reason?: string): Promise<AdminAnswer>;
  /** Removes operator `name`: its token is refused from now on. */
  removeOperator(name: string, reason?: string): Promise<AdminAnswer>;
  /**
   * Binds operator `name` to `oidcSubject` at the console's OIDC issuer: the console then signs
   * them in through the identity provider only and refuses their token (docs/console.md).
   */
  bindOperator(name: string, oidcSubject: string, reason?: string): Promise<AdminAnswer>;
  /** Unbinds operator `name` from its OIDC identity; its console sessions end at their next request. */
  unbindOperator(name: string, reason?: string): Promise<AdminAnswer>;
  /** Every operator with its tenants and status (no tokens). */
  listOperators(): Promise<AdminAnswer>;
  /**
   * Exports an audit bundle for offline `failclosed verify` into `options.out` (ledgered
   * `audit.export` first): 200 with `{path, bytes}` once the whole bundle is written; a refusal
   * with its status and denial; a transfer that fails or ends early leaves no file at `out` and
   * answers status 0 (unreachable) or 200 with `ERR_INTERNAL`.
   */
  exportLedger(options: ExportOptions): Promise<AdminAnswer>;
  /** The evidence view of one request: its records with inclusion proofs. */
  evidence(requestId: string): Promise<AdminAnswer>;
  /** Pending and finalised approvals. */
  approvals(): Promise<AdminAnswer>;
  /** One approval by decision id. */
  approval(decisionId: string): Promise<AdminAnswer>;
  /** Break-glass reviews. */
  reviews(): Promise<AdminAnswer>;
  /** The issuer's public keys (no token needed). */
  jwks(): Promise<AdminAnswer>;
  /** Readiness: 200 only when every dependency answers. */
  ready(): Promise<AdminAnswer>;
}

const reasonOf = (reason: string | undefined): JsonObject => (reason === undefined ? {} : { reason });

/** Creates an operator client for the Gate at `options.url`. */
export function createAdminClient(options: AdminClientOptions): AdminClient {
  const exchange = exchangeOf(options.fetch);
  const authorization = `Bearer ${options.token}`;

  const send = (method: 'GET' | 'POST', path: string, body?: JsonObject): Promise<AdminAnswer> =>
    sendJson(exchange, options.url, method, path, authorization, body);

  const enc = encodeURIComponent;
  const action = (name: string, body: JsonObject = {}): Promise<AdminAnswer> =>
    send('POST', `/v1/admin/${enc(name)}`, body);
  const exportTo = async (o: ExportOptions): Promise<AdminAnswer> => {
    const body = {
      ...(o.traceId === undefined ? {} : { trace_id: o.traceId }),
      ...(o.from === undefined ? {} : { from: o.from }),
      ...(o.to === undefined ? {} : { to: o.to }),
    };
    const url = new URL('/v1/admin/ledger-export', options.url);
    // The status of the answer, once there is one (0: the Gate was not reached).
    let status = 0;
    const doFetch: typeof fetch = async (...args) => {
      const res = await (options.fetch ?? fetch)(...args);
      status = res.status;
      return res;
    };
    try {
      const a = await downloadBundle(doFetch, url, authorization, body, o.out);
      return { status: a.status, body: a.body };
    } catch (err) {
      const why = err instanceof Error ? err.message : 'failed';
      return {
        status,
        body: {
          outcome: 'deny',
          code: 'ERR_INTERNAL',
          reason:
            status === 0
              ? neverSent(err)
                ? 'the Gate could not be reached: nothing was sent'
                : 'no answer came back'
              : status === 200
                ? `the export could not be written: ${why}`
                : 'the Gate answer could not be interpreted',
        },
      };
    }
  };
  return Object.freeze({
    action,
    killSwitch: (on: boolean, reason?: string) => action('kill-switch', { on, ...reasonOf(reason) }),
    lockdown: (tenant: string, on: boolean, reason?: string) =>
      action('lockdown', { tenant, on, ...reasonOf(reason) }),
    quarantine: (session: string, on: boolean, reason?: string) =>
      action('quarantine', { session, on, ...reasonOf(reason) }),
    addClient: (c: ClientRegistration) =>
      action('clients-add', {
        name: c.name,
        tenant: c.tenant,
        public_jwk: { ...c.publicJwk },
        ...(c.owner === undefined ? {} : { owner: c.owner }),
      }),
    listClients: () => action('clients-list'),
    addApprover: (a: ApproverRegistration) =>
      action('approvers-add', {
        name: a.name,
        roles: [...a.roles],
        tenants: a.tenants === '*' ? '*' : [...a.tenants],
        public_jwk: { ...a.publicJwk },
      }),
    listBreakGlass: () => action('break-glass-list'),
    revokeBreakGlass: (grantId: string, reason?: string) =>
      action('break-glass-revoke', { grant_id: grantId, ...reasonOf(reason) }),
    removeApprover: (name: string, reason?: string) =>
      action('approvers-remove', { name, ...reasonOf(reason) }),
    listApprovers: () => action('approvers-list'),
    rotateClient: (name: string, publicJwk: Ed25519PublicJwk, reason?: string) =>
      action('clients-rotate', { name, public_jwk: { ...publicJwk }, ...reasonOf(reason) }),
    revokeClient: (name: string, reason?: string) => action('clients-revoke', { name, ...reasonOf(reason) }),
    activatePolicy: (bundle: string, reason?: string) =>
      action('policy-activate', { bundle, ...reasonOf(reason) }),
    rotateIssuerKey: (reason?: string) => action('issuer-rotate', reasonOf(reason)),
    revokeIssuerKey: (kid: string, reason?: string) => action('issuer-revoke', { kid, ...reasonOf(reason) }),
    addOperator: (name: string, tenants: readonly string[] | '*', reason?: string) =>
      action('operators-add', { name, tenants: tenants === '*' ? '*' : [...tenants], ...reasonOf(reason) }),
    rotateOperator: (name: string, reason?: string) =>
      action('operators-rotate', { name, ...reasonOf(reason) }),
    removeOperator: (name: string, reason?: string) =>
      action('operators-remove', { name, ...reasonOf(reason) }),
    bindOperator: (name: string, oidcSubject: string, reason?: string) =>
      action('operators-bind', { name, oidc_subject: oidcSubject, ...reasonOf(reason) }),
    unbindOperator: (name: string, reason?: string) =>
      action('operators-unbind', { name, ...reasonOf(reason) }),
    listOperators: () => action('operators-list'),
    exportLedger: (o: ExportOptions) => exportTo(o),
    evidence: (requestId: string) => send('GET', `/v1/requests/${enc(requestId)}`),
    approvals: () => send('GET', '/v1/approvals'),
    approval: (decisionId: string) => send('GET', `/v1/approvals/${enc(decisionId)}`),
    reviews: () => send('GET', '/v1/reviews'),
    jwks: () => send('GET', '/v1/jwks'),
    ready: () => send('GET', '/readyz'),
  });
}
