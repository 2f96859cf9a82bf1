/**
 * Approvals in the embedded deployment (OE-INV-019/020, L7): the approval state held by the
 * storage backend (`state.db` with SQLite, the shared database with PostgreSQL), the optional
 * `approvals.json` configuration (settings, OIDC issuer), and the approver key files
 * `approvers/NAME.json` (0600) that the CLI signs with. Approver files live apart from client
 * files: approvers and agents are separate identities (OE-INV-002).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJson } from '../kernel/index.js';
import type { Clock, JsonObject } from '../kernel/index.js';
import {
  createApprovalApi,
  createApprovalService,
  createOidcVerifier,
  parseApprovalConfig,
} from '../control-plane/index.js';
import type { ApprovalApi, ApprovalService, ApprovalStore } from '../control-plane/index.js';
import type { Ledger } from '../ledger/index.js';
import type { GateStateStore } from '../gate/index.js';
import { dataPaths, writeSecret } from './data-dir.js';

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
    ...(config.oidc === undefined ? {} : { oidc: createOidcVerifier(config.oidc) }),
  });
  return { service, api: createApprovalApi(service), store };
}

/** An approver key file `approvers/NAME.json`. */
export interface ApproverFile {
  readonly name: string;
  readonly roles: readonly string[];
  /** Private JWK: a secret. */
  readonly key: JsonObject;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Writes `approvers/NAME.json` (0600). */
export function writeApproverFile(dir: string, file: ApproverFile): string {
  if (!FILE_NAME.test(file.name)) throw new TypeError('approver name is malformed');
  const path = join(dataPaths(dir).root, 'approvers', `${file.name}.json`);
  writeSecret(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

/** Reads `approvers/NAME.json`; `TypeError` when missing or malformed. */
export function readApproverFile(dir: string, name: string): ApproverFile {
  if (!FILE_NAME.test(name)) throw new TypeError('approver name is malformed');
  const path = join(dataPaths(dir).root, 'approvers', `${name}.json`);
  if (!existsSync(path))
    throw new TypeError(`no approver key file for ${name} (failclosed approvers add ${name} --role ROLE)`);
  const o = parseJson(readFileSync(path), { maxBytes: 8192 }) as Record<string, unknown>;
  if (
    typeof o !== 'object' ||
    o === null ||
    o.name !== name ||
    !Array.isArray(o.roles) ||
    typeof o.key !== 'object' ||
    o.key === null
  ) {
    throw new TypeError(`approver file ${name} is malformed`);
  }
  return o as unknown as ApproverFile;
}
