/**
 * Operator actions of the embedded deployment, served by the Gate under `POST /v1/admin/{action}`
 * behind the operator token (OE-INV-025, SPEC §5, §6). Every change is ledgered first and applied
 * only once the ledger confirmed it; a ledger failure changes nothing.
 */
import {
  canonicalize,
  deny,
  isDeny,
  isLedgerRef,
  keyRingFromJwks,
  parsePublicJwk,
  sha256Hex,
  statusOf,
  withDeadline,
} from '../kernel/index.js';
import type { Clock, Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { generateSigningKey } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import { exportBundleStream, type LedgerReader } from '../ledger/index.js';
import type { BundleExecutor, Ledger } from '../ledger/index.js';
import { GLOBAL_TENANT } from '../control-plane/index.js';
import type {
  ApprovalService,
  ApproverRecord,
  BreakerResetScope,
  BundleStore,
  ControlPlaneService,
} from '../control-plane/index.js';
import { OAUTH_IDENTITY_PREFIX, parseClientRoles } from '../gate/index.js';
import type { GateStateStore, OperatorActions, OperatorAnswer } from '../gate/index.js';

/** What the operator actions need. */
export interface OperatorDeps {
  readonly clock: Clock;
  readonly ledger: Ledger;
  readonly ledgerPort: Pick<Ledger, 'append'>;
  readonly state: GateStateStore;
  readonly controlPlane: ControlPlaneService;
  readonly bundles: BundleStore;
  /** Approver registry and client owners (OE-INV-002, OE-INV-019); absent: no approver actions. */
  readonly approvals?: ApprovalService;
  /** What the Execution Layer enforces, declared in audit bundles for the envelope checks (SPEC §3, §5). */
  readonly executor?: BundleExecutor;
  /**
   * Makes an issuer key change survive a restart: `stage` writes the new private key aside before
   * the change, `commit` installs it and the published JWKS after the ledger confirmed it.
   */
  readonly issuerKeys?: IssuerKeyFiles;
  /** Opens a read-only connection to the ledger for one export; absent: the export reads through the writer's store. */
  readonly openReader?: () => ExportReader;
}

/** Files that hold the issuer's keys across restarts (OE-INV-025 key rotation). */
export interface IssuerKeyFiles {
  stage(key: SigningKey): void;
  commit(rotated: boolean, jwks: JsonValue): void;
  discard(): void;
}

/** The operator recorded as actor of admin entries. */
export const OPERATOR_ACTOR = Object.freeze({ id: 'operator', role: 'operator' });

type Answer = OperatorAnswer;

/** The read-only ledger connection an export reads through. */
export type ExportReader = LedgerReader & { close(): Promise<void> };

/** The lines of `lines`, closing `reader` once they are read or abandoned. */
async function* closing(
  lines: AsyncIterable<string>,
  reader: ExportReader | undefined,
): AsyncGenerator<string> {
  try {
    yield* lines;
  } finally {
    await reader?.close();
  }
}

const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;
const TENANT = /^[A-Za-z0-9._-]{1,128}$/;
/** A session id as the Gate accepts it (src/gate/request.ts). */
const SESSION = /^[A-Za-z0-9._:-]{1,128}$/;
/**
 * Every principal form the breakers, quarantine and taint use: a session id, or `client:NAME`
 * for a client's calls without a session (OE-INV-021, OE-INV-025).
 */
const PRINCIPAL = /^(?:client:[A-Za-z0-9._:@-]{1,128}|[A-Za-z0-9._:-]{1,128})$/;

function denied(d: Deny & { readonly decision_id?: string }): Answer {
  const id = d.decision_id === undefined ? {} : { decision_id: d.decision_id };
  return {
    status: statusOf(d.code),
    body: {
      outcome: d.code === 'ERR_APPROVAL_PENDING' ? 'pending' : 'deny',
      code: d.code,
      reason: d.reason,
      ...id,
    },
  };
}

/** An approver as the operator sees it (its tenants `"*"` when registered for every tenant). */
function approverView(a: ApproverRecord): JsonObject {
  return {
    name: a.name,
    roles: [...a.roles],
    tenants: a.tenants === '*' ? '*' : [...a.tenants],
    kid: a.kid,
    status: a.status,
    registered_at: a.registered_at,
  };
}

function usage(reason: string): Answer {
  return denied(deny('ERR_REQUEST_MALFORMED', reason));
}

function obj(body: JsonValue): JsonObject {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as JsonObject) : {};
}

function reasonOf(o: JsonObject): string {
  return typeof o['reason'] === 'string' ? o['reason'].slice(0, 500) : 'operator action';
}

/** Creates the operator actions. Unknown action → 404. */
export function createOperatorActions(deps: OperatorDeps): OperatorActions {
  const adminId = (type: string, payload: JsonObject): string =>
    sha256Hex(canonicalize({ type, payload, at: deps.clock() })).slice(0, 32);

  /** Appends an admin entry; true once the ledger confirmed it with a well-formed reference, in time. */
  const ledgerAdmin = async (
    type: 'admin.key_rotated' | 'admin.key_revoked',
    tenant: string,
    payload: JsonObject,
  ): Promise<boolean> => {
    const id = adminId(type, payload);
    const recorded = await withDeadline(
      () =>
        deps.ledgerPort.append({
          type,
          trace_id: id,
          request_id: id,
          tenant,
          actor: OPERATOR_ACTOR,
          payload,
        }),
      5_000,
    );
    return recorded.status === 'ok' && isLedgerRef(recorded.value);
  };

  const actions: Record<string, (o: JsonObject) => Promise<Answer>> = {
    'clients-add': async (o) => {
      const name = o['name'];
      const tenant = o['tenant'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      // Reserved for OAuth principals (mcp/auth.ts `oauthIdentity`): no client may take their names.
      if (name.startsWith(OAUTH_IDENTITY_PREFIX))
        return usage(`names beginning ${OAUTH_IDENTITY_PREFIX} are reserved`);
      if (typeof tenant !== 'string' || !TENANT.test(tenant)) return usage('tenant is malformed');
      let key;
      try {
        key = parsePublicJwk(o['public_jwk']);
      } catch {
        return denied(deny('ERR_KEY_INVALID', 'public_jwk is not a valid Ed25519 public key'));
      }
      if ((await deps.state.lookup(name)) !== undefined)
        return { status: 409, body: { error: 'exists', client: name } };
      // Approvers and clients are separate namespaces: an approver name can never become an agent (OE-INV-002).
      if ((await deps.approvals?.isApprover(name)) === true)
        return denied(deny('ERR_APPROVER_AGENT', 'the name is a registered approver'));
      const owner = o['owner'] ?? 'operator';
      if (typeof owner !== 'string' || !NAME.test(owner) || owner === name)
        return usage('owner is malformed');
      let roles: readonly string[];
      try {
        roles = parseClientRoles(o['roles'] ?? []);
      } catch {
        return usage('roles must be a list of role names');
      }
      // The owner is ledgered so an auditor can re-check "no self-approval" offline (OE-INV-002).
      const payload: JsonObject = {
        client: name,
        kid: key.kid,
        key_use: 'request',
        // Cedar sees them as principal.roles: ledgered so an auditor can tell who could do what.
        roles: [...roles],
        public_jwk: { ...key.jwk },
        auth_method: 'signature',
        owner,
      };
      const id = adminId('admin.client_registered', payload);
      // Registered only once the ledger confirmed the record with a well-formed reference, in time.
      const recorded = await withDeadline(
        () =>
          deps.ledgerPort.append({
            type: 'admin.client_registered',
            trace_id: id,
            request_id: id,
            tenant,
            actor: OPERATOR_ACTOR,
            payload,
          }),
        5_000,
      );
      if (recorded.status !== 'ok' || !isLedgerRef(recorded.value))
        return denied(deny('ERR_LEDGER_UNAVAILABLE', 'client registration not recorded'));
      const rec = await deps.state.registerClient({
        identity: name,
        tenant,
        jwk: key.jwk,
        atMs: deps.clock(),
        roles,
      });
      await deps.approvals?.setOwner(name, owner);
      return { status: 201, body: { ...rec, roles: [...rec.roles], owner } };
    },
    'approvers-add': async (o) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'approvers-add' } };
      const roles = o['roles'];
      const r = await deps.approvals.registerApprover(
        {
          name: typeof o['name'] === 'string' ? o['name'] : '',
          roles: Array.isArray(roles) ? roles.filter((x): x is string => typeof x === 'string') : [],
          // A list of tenants, or "*" asked for explicitly (`--all-tenants`); anything else is refused.
          tenants: o['tenants'],
          public_jwk: o['public_jwk'],
        },
        OPERATOR_ACTOR,
      );
      return isDeny(r) ? denied(r) : { status: 201, body: approverView(r) };
    },
    'approvers-remove': async (o) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'approvers-remove' } };
      const name = o['name'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      const r = await deps.approvals.removeApprover(name, reasonOf(o), OPERATOR_ACTOR);
      return isDeny(r) ? denied(r) : { status: 200, body: { outcome: 'ok', ...approverView(r) } };
    },
    'clients-rotate': async (o) => {
      const name = o['name'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      let key;
      try {
        key = parsePublicJwk(o['public_jwk']);
      } catch {
        return denied(deny('ERR_KEY_INVALID', 'public_jwk is not a valid Ed25519 public key'));
      }
      const c = await deps.state.lookup(name);
      if (c === undefined) return denied(deny('ERR_CLIENT_UNKNOWN', 'no client has this name'));
      if (c.status !== 'active') return denied(deny('ERR_CLIENT_REVOKED', 'a revoked client stays revoked'));
      if (c.kid === key.kid) return usage('the new key is the current key');
      // Ledgered with the new public key: an auditor binds requests signed after it to the client.
      const payload: JsonObject = {
        client: name,
        kid: key.kid,
        previous_kid: c.kid,
        key_use: 'request',
        public_jwk: { ...key.jwk },
        reason: reasonOf(o),
      };
      if (!(await ledgerAdmin('admin.key_rotated', c.tenant, payload)))
        return denied(deny('ERR_LEDGER_UNAVAILABLE', 'client key rotation not recorded'));
      let rec;
      try {
        rec = await deps.state.rotateClientKey(name, key.jwk, c.kid);
      } catch {
        return denied(deny('ERR_CLIENT_REGISTRY_UNAVAILABLE', 'the client registry did not rotate the key'));
      }
      if (rec === undefined)
        return denied(deny('ERR_CLIENT_REVOKED', 'the client was revoked or its key rotated meanwhile'));
      return {
        status: 200,
        body: { outcome: 'ok', ...rec, roles: [...rec.roles], previous_kid: c.kid },
      };
    },
    'clients-revoke': async (o) => {
      const name = o['name'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      const c = await deps.state.lookup(name);
      if (c === undefined) return denied(deny('ERR_CLIENT_UNKNOWN', 'no client has this name'));
      if (c.status !== 'active') return denied(deny('ERR_CLIENT_REVOKED', 'the client is already revoked'));
      const payload: JsonObject = {
        client: name,
        kid: c.kid,
        key_use: 'request',
        reason: reasonOf(o),
        revoked_at: new Date(deps.clock()).toISOString(),
      };
      if (!(await ledgerAdmin('admin.key_revoked', c.tenant, payload)))
        return denied(deny('ERR_LEDGER_UNAVAILABLE', 'client revocation not recorded'));
      await deps.state.revokeClient(name);
      return { status: 200, body: { outcome: 'ok', client: name, kid: c.kid, status: 'revoked' } };
    },
    'approvers-list': async () => ({
      status: 200,
      body: {
        approvers: ((await deps.approvals?.listApprovers()) ?? []).map(approverView),
      },
    }),
    'clients-list': async () => ({
      status: 200,
      body: { clients: (await deps.state.listClients()).map((c) => ({ ...c, roles: [...c.roles] })) },
    }),
    'policy-activate': async (o) => {
      if (typeof o['bundle'] !== 'string') return usage('bundle must be the bundle document text');
      const put = deps.bundles.put(o['bundle']);
      if (isDeny(put)) return denied(put);
      const r = await deps.controlPlane.activateBundle(put.hash, OPERATOR_ACTOR, reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : {
            status: 200,
            body: { outcome: 'ok', hash: r.hash, previous: r.previous, ledger: { ...r.ledger } },
          };
    },
    'kill-switch': async (o) => {
      if (typeof o['on'] !== 'boolean') return usage('on must be a boolean');
      const r = await deps.controlPlane.admin.setKillSwitch(o['on'], OPERATOR_ACTOR, reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', engaged: o['on'], ledger: { ...r.ledger } } };
    },
    lockdown: async (o) => {
      const tenant = o['tenant'];
      if (typeof tenant !== 'string' || !TENANT.test(tenant) || typeof o['on'] !== 'boolean')
        return usage('tenant and on are required');
      const r = await deps.controlPlane.admin.setTenantLockdown(tenant, o['on'], OPERATOR_ACTOR, reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', tenant, engaged: o['on'], ledger: { ...r.ledger } } };
    },
    quarantine: async (o) => {
      const session = o['session'];
      if (typeof session !== 'string' || !PRINCIPAL.test(session) || typeof o['on'] !== 'boolean')
        return usage('session (a session id or client:NAME) and on are required');
      const r = await deps.controlPlane.admin.setSessionQuarantine(
        session,
        o['on'],
        OPERATOR_ACTOR,
        reasonOf(o),
      );
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', session, engaged: o['on'], ledger: { ...r.ledger } } };
    },
    'breaker-reset': async (o) => {
      const { session, client, tenant } = o;
      const given = [session, client, tenant].filter((v) => v !== undefined).length;
      let target: BreakerResetScope;
      if (given !== 1) return usage('exactly one of session, client or tenant is required');
      if (typeof session === 'string' && SESSION.test(session) && !session.startsWith('client:'))
        target = { scope: 'session', session };
      else if (typeof client === 'string' && NAME.test(client)) target = { scope: 'client', client };
      else if (typeof tenant === 'string' && TENANT.test(tenant)) target = { scope: 'tenant', tenant };
      else return usage('session, client or tenant is malformed');
      const r = await deps.controlPlane.resetBreaker(target, OPERATOR_ACTOR, reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', ...target, breaker: r.breaker, ledger: { ...r.ledger } } };
    },
    'issuer-rotate': async (o) => {
      const files = deps.issuerKeys;
      const next = generateSigningKey();
      files?.stage(next);
      const r = await deps.controlPlane.rotateIssuerKey(OPERATOR_ACTOR, reasonOf(o), next);
      if (isDeny(r)) {
        files?.discard();
        return denied(r);
      }
      files?.commit(true, deps.controlPlane.issuerJwks());
      return {
        status: 200,
        body: { outcome: 'ok', kid: r.kid, previous_kid: r.previous_kid ?? null, ledger: { ...r.ledger } },
      };
    },
    'issuer-revoke': async (o) => {
      const kid = o['kid'];
      if (typeof kid !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(kid)) return usage('kid is required');
      let r;
      try {
        r = await deps.controlPlane.revokeIssuerKey(kid, OPERATOR_ACTOR, reasonOf(o));
      } catch {
        return usage('the current issuer key cannot be revoked: rotate first');
      }
      if (isDeny(r)) return denied(r);
      deps.issuerKeys?.commit(false, deps.controlPlane.issuerJwks());
      return { status: 200, body: { outcome: 'ok', kid: r.kid, ledger: { ...r.ledger } } };
    },
    'ledger-export': async (o) => {
      const traceId = o['trace_id'];
      const from = o['from'];
      const to = o['to'];
      if (traceId !== undefined && typeof traceId !== 'string') return usage('trace_id must be a string');
      if (
        (from !== undefined && !Number.isSafeInteger(from)) ||
        (to !== undefined && !Number.isSafeInteger(to))
      )
        return usage('from/to must be integers');
      // A separate read-only connection: the export reads while the writer keeps appending (WAL).
      let reader: ExportReader | undefined;
      try {
        reader = deps.openReader?.();
        const exported = await exportBundleStream({
          ledger: deps.ledger,
          ...(reader === undefined ? {} : { reader }),
          actor: OPERATOR_ACTOR,
          tenant: GLOBAL_TENANT,
          publicKeys: {
            issuer: keyRingFromJwks(deps.controlPlane.issuerJwks()).toJwks(),
            clients: await deps.state.clientJwks(),
            clientIdentities: (await deps.state.listClients()).map((c) => ({
              kid: c.kid,
              identity: c.identity,
              tenant: c.tenant,
            })),
            ...(deps.approvals === undefined ? {} : { approvers: await deps.approvals.approverJwks() }),
          },
          ...(deps.executor === undefined ? {} : { executor: deps.executor }),
          policyBundle: (hash) => {
            const runtime = deps.bundles.get(hash);
            // The document is strict JSON as loaded; it hashes to `hash` (checked offline by the verifier).
            return isDeny(runtime) ? undefined : (runtime.bundle.document as unknown as JsonValue);
          },
          ...(typeof traceId === 'string' ? { traceId } : {}),
          ...(typeof from === 'number' ? { from } : {}),
          ...(typeof to === 'number' ? { to } : {}),
        });
        const r = reader;
        reader = undefined;
        return {
          status: 200,
          body: { export: { ...exported.exportEntry }, checkpoint_size: exported.checkpoint.size },
          stream: closing(exported.lines, r),
        };
      } catch (err) {
        void reader?.close();
        if (err instanceof TypeError) return usage('invalid export range');
        return denied(deny('ERR_LEDGER_UNAVAILABLE', 'export failed'));
      }
    },
  };

  return {
    async run(action, body) {
      const fn = actions[action];
      if (fn === undefined) return { status: 404, body: { error: 'unknown_action', action } };
      return fn(obj(body));
    },
  };
}
