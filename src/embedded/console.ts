/**
 * The console in the embedded deployment (docs/console.md): its service over the storage
 * backend's console store over the approval service and the ledger, the operator actions that
 * invite and confirm approvers (`approvers-invite`, `approvers-confirm`), and the endpoint the
 * Gate's listener serves under `/console/`.
 */
import { randomUUID } from 'node:crypto';
import {
  canonicalize,
  deny,
  isDeny,
  isLedgerRef,
  sha256Hex,
  statusOf,
  withDeadline,
} from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import type { ApprovalApi, ApprovalService, BundleStore, GovernanceState } from '../control-plane/index.js';
import { diffBundles, formatBundleDiff, parseBundleDocument } from '../policy/index.js';
import type { PolicyBundleDocument } from '../policy/index.js';
import { buildEvidenceView } from '../gate/index.js';
import type { GateLedger, GateStateStore, OperatorActions, OperatorAnswer } from '../gate/index.js';
import {
  consoleOrigins,
  createConsoleEndpoint,
  createConsoleService,
  createOidcRelyingParty,
  createOperatorConsole,
  createSignInGuard,
  operatorRedirectUri,
} from '../console/index.js';
import type {
  ConsoleEndpoint,
  ConsoleService,
  ConsoleStore,
  OidcConfig,
  OidcRelyingParty,
  OperatorAccount,
  OperatorAccounts,
  OperatorConsole,
  OperatorPolicyPages,
  SignInAttempt,
  SignInLimits,
} from '../console/index.js';
import type { OperatorIdentity, OperatorRecord, OperatorStore, OperatorTenants } from '../gate/index.js';
import { grantView, operatorActor, requestedTenants } from './admin.js';
import type { ScopeGuard } from './admin.js';
import type { LedgerPort } from './ports.js';

/** The composed console. */
export interface EmbeddedConsole {
  readonly service: ConsoleService;
  readonly store: ConsoleStore;
  readonly oidc?: OidcConfig;
}

/** The console's service over `store`, the storage backend's (closed with it). */
export function openConsole(deps: {
  readonly store: ConsoleStore;
  readonly approvals: ApprovalService;
  readonly ledgerPort: LedgerPort;
  readonly state: Pick<GateStateStore, 'lookup'>;
  readonly clock: Clock;
  /** `failclosed.json` `console.oidc`: absent, the console signs in locally only. */
  readonly oidc?: OidcConfig;
}): EmbeddedConsole {
  const { store } = deps;
  const oidc = deps.oidc === undefined ? undefined : relyingPartyFor(deps.oidc, store, deps.clock);
  const service = createConsoleService({
    store,
    approvals: deps.approvals,
    append: (entry) => deps.ledgerPort.append(entry),
    isClient: async (name) => (await deps.state.lookup(name)) !== undefined,
    now: deps.clock,
    ...(oidc === undefined ? {} : { oidc }),
  });
  return { service, store, ...(deps.oidc === undefined ? {} : { oidc: deps.oidc }) };
}

/**
 * The console's relying party for `config` (approvers' and, with the operator page as redirect
 * URI, operators'): a sign-in's state is used once, as a sign-in challenge is (the same store,
 * every gate).
 */
export function relyingPartyFor(
  config: OidcConfig,
  store: Pick<ConsoleStore, 'useChallenge'>,
  clock: Clock,
): OidcRelyingParty {
  return createOidcRelyingParty({
    config,
    now: clock,
    useState: (id, expiresAt, atMs) => store.useChallenge(id, expiresAt, atMs),
  });
}

function denied(d: Deny): OperatorAnswer {
  return { status: statusOf(d.code), body: { outcome: 'deny', code: d.code, reason: d.reason } };
}

function obj(body: JsonValue): JsonObject {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as JsonObject) : {};
}

/**
 * The operator actions with `approvers-invite` `{name, roles, tenants, ttl_sec?}` (answers the
 * one-time code) and `approvers-confirm` `{name, kid}` added; every other action is `inner`'s.
 * Both are ledgered with the operator who made them, and held to that operator's tenant scope:
 * the tenants invited, or those of the invitation confirmed (`guard`, OE-INV-025).
 */
export function withConsoleActions(
  inner: OperatorActions,
  console: ConsoleService,
  scope: {
    readonly guard: ScopeGuard;
    /** The tenants of `name`'s invitation, undefined when none. */
    readonly invitedTenants: (name: string) => Promise<OperatorTenants | undefined>;
  },
): OperatorActions {
  return Object.freeze({
    async run(action: string, body: JsonValue, who: OperatorIdentity): Promise<OperatorAnswer> {
      const o = obj(body);
      // A name already invited is held to the tenants of that invitation as well: an invitation
      // replaces an unconfirmed one of its name, and an approver or client of the name would take
      // it over, so an operator of some tenants may do neither to another tenant's (OE-INV-025).
      const held = async (): Promise<OperatorAnswer | undefined> => {
        const name = o['name'];
        const invited = typeof name === 'string' ? await scope.invitedTenants(name) : undefined;
        return invited === undefined ? undefined : scope.guard(action, who, invited);
      };
      if (action === 'approvers-add' || action === 'clients-add') {
        const refused = await held();
        if (refused !== undefined) return refused;
        return inner.run(action, body, who);
      }
      if (action === 'approvers-invite') {
        const refused = (await scope.guard(action, who, requestedTenants(o['tenants']))) ?? (await held());
        if (refused !== undefined) return refused;
        const r = await console.invite(
          {
            name: o['name'],
            roles: o['roles'],
            tenants: o['tenants'],
            ttl_sec: o['ttl_sec'],
            ...(o['oidc_subject'] === undefined ? {} : { oidc_subject: o['oidc_subject'] }),
          },
          operatorActor(who),
        );
        if (isDeny(r)) return denied(r);
        return {
          status: 201,
          body: {
            outcome: 'ok',
            name: o['name'] ?? null,
            code: r.code,
            expires_at: new Date(r.expires_at).toISOString(),
            console_path: '/console/',
            ...(o['oidc_subject'] === undefined ? {} : { oidc_subject: o['oidc_subject'] }),
          },
        };
      }
      if (action === 'approvers-confirm') {
        const name = o['name'];
        const invited = typeof name === 'string' ? await scope.invitedTenants(name) : undefined;
        const refused = await scope.guard(action, who, invited ?? '*');
        if (refused !== undefined) return refused;
        const r = await console.confirm({ name: o['name'], kid: o['kid'] }, operatorActor(who));
        if (isDeny(r)) return denied(r);
        return {
          status: 200,
          body: {
            outcome: 'ok',
            name: r.name,
            kid: r.kid,
            roles: [...r.roles],
            tenants: r.tenants === '*' ? '*' : [...r.tenants],
            status: r.status,
          },
        };
      }
      return inner.run(action, body, who);
    },
  });
}

/** Why a call escalated: the payload of its `decision` entry (rules fired, obligations, taint, risk). */
export function decisionReader(
  ledger: Pick<GateLedger, 'entriesForRequest'>,
): (requestId: string, decisionId: string) => Promise<JsonObject | undefined> {
  return async (requestId, decisionId) => {
    for (const e of await ledger.entriesForRequest(requestId)) {
      const payload = obj(e['payload'] ?? null);
      if (e.type !== 'decision' || payload['decision_id'] !== decisionId) continue;
      const pick = (k: string): JsonObject => (payload[k] === undefined ? {} : { [k]: payload[k] });
      return {
        ...pick('outcome'),
        ...pick('code'),
        ...pick('rules_fired'),
        ...pick('obligations'),
        ...pick('rationale'),
        ...pick('risk'),
        ...pick('taint'),
        ...pick('approvals_required'),
        ...pick('session'),
        ledger_index: e.index,
      };
    }
    return undefined;
  };
}

/**
 * The one place the console reads the operator registry: an operator's token (`byToken` of its
 * SHA-256, as the Gate authenticates `POST /v1/admin/…`), OIDC identity, or name; active ones only.
 */
export function registryOperators(
  operators: Pick<OperatorStore, 'byToken' | 'bySubject' | 'get'>,
): OperatorAccounts {
  const account = (r: OperatorRecord | undefined): OperatorAccount | undefined =>
    r === undefined || r.status !== 'active'
      ? undefined
      : { name: r.name, tenants: r.tenants, token_sha256: r.token_sha256, oidc: r.oidc };
  return {
    byToken: async (sha) => account(await operators.byToken(sha)),
    bySubject: async (issuer, subject) => account(await operators.bySubject(issuer, subject)),
    named: async (name) => account(await operators.get(name)),
  };
}

/**
 * What activating the stored bundle `hash` changes against the active bundle: the structured
 * diff of `policy diff` (src/policy/diff.ts) and its text; null when either cannot be loaded.
 */
export function policyDiffer(bundles: BundleStore): (hash: string) => Promise<JsonObject | null> {
  return (hash) => {
    const to = bundles.get(hash);
    return Promise.resolve(isDeny(to) ? null : diffAgainstActive(bundles, to.bundle.document, to.hash));
  };
}

/** `diffBundles` of the active bundle and `to`, with `formatBundleDiff`'s text; null without an active bundle. */
function diffAgainstActive(
  bundles: BundleStore,
  to: PolicyBundleDocument,
  toHash: string,
): JsonObject | null {
  const from = bundles.active();
  if (isDeny(from)) return null;
  const d = diffBundles(from.bundle.document, from.hash, to, toHash);
  return { ...(JSON.parse(JSON.stringify(d)) as JsonObject), text: formatBundleDiff(d) };
}

/** The policy page's reads: the active bundle, diffs against it, and the activations waiting for approval. */
export function policyPagesFor(bundles: BundleStore, approvals: ApprovalService): OperatorPolicyPages {
  return {
    active: () => {
      const a = bundles.active();
      if (isDeny(a)) return null;
      const d = a.bundle.document;
      return {
        hash: a.hash,
        name: d.name,
        tools: d.tools.map((t) => t.name),
        policies: Object.keys(d.policies),
      };
    },
    diffStored: policyDiffer(bundles),
    diffText: (text) => {
      const doc = parseBundleDocument(text);
      if (isDeny(doc)) return doc;
      return (
        diffAgainstActive(bundles, doc.document, doc.hash) ??
        deny('ERR_POLICY_UNAVAILABLE', 'no active bundle')
      );
    },
    pending: async () =>
      (await approvals.list())
        .filter((p) => p.kind === 'policy_activation' && p.status === 'pending')
        .map((p) => ({
          decision_id: p.decision_id,
          bundle: p.policy_bundle,
          requested_by: p.identity,
          approvals: p.approvals.length,
          expires_at: new Date(p.expires_at).toISOString(),
        })),
  };
}

/** The operator pages over the operator actions, the incident state and the ledger. */
export function operatorConsoleFor(deps: {
  readonly operator: OperatorActions;
  readonly operators: Pick<OperatorStore, 'byToken' | 'bySubject' | 'get'>;
  /** `console.oidc`: operators bound to an identity there sign in through it. */
  readonly oidc?: OidcConfig;
  /** Where a sign-in's state is used once and the sessions are kept (the console store). */
  readonly store: Pick<
    ConsoleStore,
    | 'useChallenge'
    | 'createOperatorSession'
    | 'operatorSession'
    | 'touchOperatorSession'
    | 'deleteOperatorSession'
  >;
  readonly governance: Pick<GovernanceState, 'snapshot'>;
  readonly ledger: Pick<GateLedger, 'latestCheckpoint'>;
  readonly bundles: BundleStore;
  readonly approvals: ApprovalService;
  readonly clock: Clock;
}): OperatorConsole {
  return createOperatorConsole({
    operators: registryOperators(deps.operators),
    sessions: deps.store,
    ...(deps.oidc === undefined
      ? {}
      : {
          oidc: relyingPartyFor(
            { ...deps.oidc, redirect_uri: operatorRedirectUri(deps.oidc) },
            deps.store,
            deps.clock,
          ),
        }),
    // Every action is ledgered with the signed-in operator and held to its tenant scope by the actions.
    runAdmin: async (person, action, body) => {
      const r = await withDeadline(() => deps.operator.run(action, body, person), 30_000);
      return r.status === 'ok'
        ? {
            status: r.value.status,
            body: r.value.body,
            ...(r.value.stream === undefined ? {} : { stream: r.value.stream }),
          }
        : { status: 500, body: { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'internal failure' } };
    },
    incidentState: () => deps.governance.snapshot(),
    policy: policyPagesFor(deps.bundles, deps.approvals),
    reviews: async () =>
      (await deps.approvals.listReviews()).map((r) => ({
        review_id: r.review_id,
        grant_id: r.grant_id,
        decision_id: r.decision_id,
        opened_for: r.opened_for,
        opened_at: new Date(r.opened_at).toISOString(),
        status: r.status,
        closed_by: r.closed_by,
        closed_at: r.closed_at === null ? null : new Date(r.closed_at).toISOString(),
        notes: r.notes,
      })),
    grants: async () => (await deps.approvals.activeGrants()).map(grantView),
    latestCheckpoint: async () => {
      const c = await deps.ledger.latestCheckpoint();
      return c === null ? null : { size: c.size, root_hash: c.root_hash, note: c.note };
    },
    now: deps.clock,
  });
}

/**
 * Ledgers a console sign-in attempt (`console.sign_in`, every tenant's: a person signing in has
 * no tenant yet), with the person as actor when known; true once confirmed, in time.
 */
async function recordSignIn(
  ledgerPort: Pick<LedgerPort, 'append'>,
  clock: Clock,
  a: SignInAttempt,
): Promise<boolean> {
  const payload: JsonObject = {
    kind: a.kind,
    method: a.method,
    outcome: a.outcome,
    ...(a.code === undefined ? {} : { code: a.code }),
    ...(a.name === undefined ? {} : { name: a.name }),
    ...(a.address === undefined ? {} : { address: a.address }),
  };
  const id = sha256Hex(
    canonicalize({ type: 'console.sign_in', payload, at: clock(), n: randomUUID() }),
  ).slice(0, 32);
  const r = await withDeadline(
    () =>
      ledgerPort.append({
        type: 'console.sign_in',
        trace_id: id,
        request_id: id,
        tenant: '*',
        actor: { id: a.name ?? 'unknown', role: a.kind },
        payload,
      }),
    5_000,
  );
  return r.status === 'ok' && isLedgerRef(r.value);
}

/** The console endpoint of a listener at `url`. */
export function consoleEndpointFor(
  deps: {
    readonly console: ConsoleService;
    readonly approvals: ApprovalService;
    readonly approvalApi: ApprovalApi;
    readonly ledger: GateLedger;
    readonly clock: Clock;
    /** The operator pages; absent: approvers only. */
    readonly operator?: OperatorConsole;
    /** Stored bundles: a policy activation in the inbox shows its diff. */
    readonly bundles?: BundleStore;
    readonly oidc?: OidcConfig;
    /** Where sign-in attempts are ledgered (`console.sign_in`). */
    readonly ledgerPort: Pick<LedgerPort, 'append'>;
    /** `console.sign_in_limit`; default {@link DEFAULT_SIGN_IN_LIMITS}. */
    readonly signInLimits?: SignInLimits;
    /** Where failed sign-ins are counted (the console store, shared by the gates on it). */
    readonly signInCounters: Pick<ConsoleStore, 'admitSignIn' | 'forgiveSignIn'>;
  },
  url: string,
): ConsoleEndpoint {
  // The issuer sends the browser back to the redirect URI: it must be this console, or the
  // sign-in would complete elsewhere. Checked when the listener is up; the gate does not start.
  const redirect = deps.oidc?.redirect_uri;
  if (redirect !== undefined && !consoleOrigins(url).some((o) => redirect === `${o}/console/`))
    throw new TypeError(
      `failclosed.json: console.oidc.redirect_uri must be this console’s URL (${new URL(url).origin}/console/)`,
    );
  const operator = deps.operator;
  return createConsoleEndpoint({
    url,
    ...(operator === undefined ? {} : { operator }),
    signInGuard: createSignInGuard({
      record: (a) => recordSignIn(deps.ledgerPort, deps.clock, a),
      endSession: async (cookie) => {
        await operator?.signOut(cookie);
        await deps.console.signOut(cookie);
      },
      counters: deps.signInCounters,
      now: deps.clock,
      ...(deps.signInLimits === undefined ? {} : { limits: deps.signInLimits }),
    }),
    ...(deps.bundles === undefined ? {} : { policyDiff: policyDiffer(deps.bundles) }),
    console: deps.console,
    approvals: deps.approvals,
    approvalApi: deps.approvalApi,
    decisionOf: decisionReader(deps.ledger),
    evidenceOf: (requestId) => buildEvidenceView(deps.ledger, requestId),
    // Recorded as every evidence read is (`GateLedger.recordRead`), with the person as reader.
    recordRead: async (reader, requestId) => {
      const r = await withDeadline(
        () =>
          deps.ledger.recordRead({
            reader: { id: reader, role: 'approver' },
            scope: 'request',
            request_id: requestId,
          }),
        5_000,
      );
      return r.status === 'ok' && isLedgerRef(r.value);
    },
    now: deps.clock,
  });
}
