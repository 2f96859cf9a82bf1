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
import { createConsoleEndpoint, createConsoleService } from '../console/index.js';
import type { ConsoleEndpoint, ConsoleService, ConsoleStore } from '../console/index.js';
import type { OperatorIdentity, OperatorTenants } from '../gate/index.js';
import { operatorActor, requestedTenants } from './admin.js';
import type { ScopeGuard } from './admin.js';
import type { LedgerPort } from './ports.js';

/** The composed console. */
export interface EmbeddedConsole {
  readonly service: ConsoleService;
  readonly store: ConsoleStore;
}

/** The console's service over `store`, the storage backend's (closed with it). */
export function openConsole(deps: {
  readonly store: ConsoleStore;
  readonly approvals: ApprovalService;
  readonly ledgerPort: LedgerPort;
  readonly state: Pick<GateStateStore, 'lookup'>;
  readonly clock: Clock;
}): EmbeddedConsole {
  const { store } = deps;
  const service = createConsoleService({
    store,
    approvals: deps.approvals,
    append: (entry) => deps.ledgerPort.append(entry),
    isClient: async (name) => (await deps.state.lookup(name)) !== undefined,
    now: deps.clock,
  });
  return { service, store };
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
          { name: o['name'], roles: o['roles'], tenants: o['tenants'], ttl_sec: o['ttl_sec'] },
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
  },
  url: string,
): ConsoleEndpoint {
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
