/**
 * Approvals in the embedded deployment (OE-INV-019/020, L7): the approval state held by the
 * storage backend (`ledger.db` with SQLite, the shared database with PostgreSQL) and the optional
 * `approvals.json` configuration (settings, OIDC issuer). Approvers' private keys are never here:
 * each approver keeps its own (`approvers keygen`, docs/approvals.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../kernel/index.js';
import {
  createApprovalApi,
  createApprovalService,
  createOidcVerifier,
  parseApprovalConfig,
} from '../control-plane/index.js';
import type {
  ApprovalApi,
  ApprovalNotice,
  ApprovalService,
  ApprovalStore,
  BindingOf,
} from '../control-plane/index.js';
import type { Ledger } from '../ledger/index.js';
import type { GateStateStore } from '../gate/index.js';
import { dataPaths } from './data-dir.js';

/** The composed approval service, its HTTP API and its store (the backend's, closed with it). */
export interface EmbeddedApprovals {
  readonly service: ApprovalService;
  readonly api: ApprovalApi;
  readonly store: ApprovalStore;
}

/** Path of the optional approval configuration. */
export function approvalConfigPath(dir: string): string {
  return join(dataPaths(dir).root, 'approvals.json');
}

/**
 * Composes the approval service over the backend's approval store and reads `approvals.json`
 * when present (strict; `TypeError` when malformed).
 */
export function openApprovals(
  dir: string,
  deps: {
    readonly ledgerPort: Pick<Ledger, 'append' | 'putEvidence'>;
    readonly clock: Clock;
    readonly state: Pick<GateStateStore, 'lookup'>;
    readonly store: ApprovalStore;
    /** Notices for the signed webhooks (docs/notifications.md); absent: none are sent. */
    readonly notify?: (n: ApprovalNotice) => void;
    /** The identity-provider binding of an approver (the console's invitations; session.ts). */
    readonly bindingOf?: BindingOf;
    /** The console approver bound to an issuer and subject (`ApprovalServiceDeps.boundPerson`). */
    readonly boundPerson?: (issuer: string, subject: string) => Promise<string | undefined>;
  },
): EmbeddedApprovals {
  const configPath = approvalConfigPath(dir);
  const config = existsSync(configPath) ? parseApprovalConfig(readFileSync(configPath)) : { settings: {} };
  const { store } = deps;
  const service = createApprovalService({
    store,
    ledger: deps.ledgerPort,
    putEvidence: (bytes, mediaType) => deps.ledgerPort.putEvidence(bytes, mediaType),
    now: deps.clock,
    isClient: async (name) => (await deps.state.lookup(name)) !== undefined,
    settings: config.settings,
    ...(deps.notify === undefined ? {} : { notify: deps.notify }),
    ...(deps.bindingOf === undefined ? {} : { bindingOf: deps.bindingOf }),
    ...(deps.boundPerson === undefined ? {} : { boundPerson: deps.boundPerson }),
    ...(config.oidc === undefined ? {} : { oidc: createOidcVerifier(config.oidc) }),
  });
  return { service, api: createApprovalApi(service, deps.clock), store };
}
