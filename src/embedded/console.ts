/**
 * The console in the embedded deployment (docs/console.md): its service over the storage
 * backend's console store over the approval service and the ledger, the operator actions that
 * invite and confirm approvers (`approvers-invite`, `approvers-confirm`), and the endpoint the
 * Gate's listener serves under `/console/`.
 */
import { isDeny, isLedgerRef, statusOf, withDeadline } from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import type { ApprovalApi, ApprovalService } from '../control-plane/index.js';
import { buildEvidenceView } from '../gate/index.js';
import type { GateLedger, GateStateStore, OperatorActions, OperatorAnswer } from '../gate/index.js';
import {
  consoleOrigins,
  createConsoleEndpoint,
  createConsoleService,
  createOidcRelyingParty,
} from '../console/index.js';
import type { ConsoleEndpoint, ConsoleService, ConsoleStore, OidcConfig } from '../console/index.js';
import type { OperatorIdentity, OperatorTenants } from '../gate/index.js';
import { operatorActor, requestedTenants } from './admin.js';
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
  const oidc =
    deps.oidc === undefined
      ? undefined
      : createOidcRelyingParty({
          config: deps.oidc,
          now: deps.clock,
          // A sign-in's state is used once, as a sign-in challenge is (the same store, every gate).
          useState: (id, expiresAt, atMs) => store.useChallenge(id, expiresAt, atMs),
        });
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
      if (action === 'approvers-invite') {
        const refused = await scope.guard(action, who, requestedTenants(o['tenants']));
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

/** The console endpoint of a listener at `url`. */
export function consoleEndpointFor(
  deps: {
    readonly console: ConsoleService;
    readonly approvals: ApprovalService;
    readonly approvalApi: ApprovalApi;
    readonly ledger: GateLedger;
    readonly clock: Clock;
    readonly oidc?: OidcConfig;
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
  return createConsoleEndpoint({
    url,
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
