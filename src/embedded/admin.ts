/**
 * Operator actions of the embedded deployment, served by the Gate under `POST /v1/admin/{action}`
 * behind an operator's token (OE-INV-025, SPEC §5, §6). Every change is ledgered first, with the
 * person who made it as actor, and applied only once the ledger confirmed it; a ledger failure
 * changes nothing. An operator of some tenants acts on those tenants only: another tenant's
 * action, or a global one (kill switch, issuer keys, policy, operators, ledger export), is refused
 * `ERR_FORBIDDEN` and the refusal ledgered as `admin.refused`.
 */
import { randomBytes } from 'node:crypto';
import {
  canonicalize,
  deny,
  inventoryJson,
  inventorySha256,
  isDeny,
  isLedgerRef,
  keyRingFromJwks,
  parsePublicJwk,
  sha256Hex,
  statusOf,
  withDeadline,
} from '../kernel/index.js';
import type { Clock, Deny, InventoryDocument, JsonObject, JsonValue } from '../kernel/index.js';
import { generateSigningKey } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import { exportBundleStream, type LedgerReader } from '../ledger/index.js';
import type { BundleExecutor, Ledger } from '../ledger/index.js';
import { GLOBAL_TENANT } from '../control-plane/index.js';
import type {
  ApprovalService,
  ApproverRecord,
  BreakGlassGrant,
  BreakerResetScope,
  BundleStore,
  ControlPlaneService,
} from '../control-plane/index.js';
import {
  BOOTSTRAP_OPERATOR,
  OAUTH_IDENTITY_PREFIX,
  OIDC_SUBJECT,
  OPERATOR_NAME,
  OPERATOR_TENANT,
  operatorCovers,
  parseClientRoles,
} from '../gate/index.js';
import type {
  GateStateStore,
  OperatorActions,
  OperatorAnswer,
  OperatorIdentity,
  OperatorRecord,
  OperatorStore,
  OperatorTenants,
} from '../gate/index.js';

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
  /** The inventory of execution-capable interfaces in force (docs/inventory.md); absent: the action is unknown. */
  readonly inventory?: () => InventoryDocument;
  /** The operator registry (OE-INV-025); absent: no operator management actions. */
  readonly operators?: OperatorStore;
  /**
   * The console's OIDC issuer (`console.oidc.issuer`): operators are bound to subjects of this
   * issuer; absent, binding is refused.
   */
  readonly oidcIssuer?: string;
}

/** Files that hold the issuer's keys across restarts (OE-INV-025 key rotation). */
export interface IssuerKeyFiles {
  stage(key: SigningKey): void;
  commit(rotated: boolean, jwks: JsonValue): void;
  discard(): void;
}

/** The bootstrap operator as actor of admin entries (the data directory's `operator.token`). */
export const OPERATOR_ACTOR = Object.freeze({ id: BOOTSTRAP_OPERATOR, role: 'operator' });

/** The bootstrap operator's identity: every tenant. */
export const BOOTSTRAP_IDENTITY: OperatorIdentity = Object.freeze({ name: BOOTSTRAP_OPERATOR, tenants: '*' });

/** The actor an operator's entries are ledgered with. */
export function operatorActor(who: OperatorIdentity): { readonly id: string; readonly role: string } {
  return Object.freeze({ id: who.name, role: 'operator' });
}

/** A new operator bearer token: 256 random bits, base64url (stored only as its SHA-256). */
export function newOperatorToken(): string {
  return randomBytes(32).toString('base64url');
}

/** An operator as listed (never its token or token hash). */
function operatorView(r: OperatorRecord): JsonObject {
  return {
    name: r.name,
    tenants: r.tenants === '*' ? '*' : [...r.tenants],
    status: r.status,
    created_at: new Date(r.created_at).toISOString(),
    rotated_at: r.rotated_at === null ? null : new Date(r.rotated_at).toISOString(),
    removed_at: r.removed_at === null ? null : new Date(r.removed_at).toISOString(),
    oidc:
      r.oidc === null
        ? null
        : {
            issuer: r.oidc.issuer,
            subject: r.oidc.subject,
            bound_at: new Date(r.oidc.bound_at).toISOString(),
          },
  };
}

/** What the scope check needs: what the action touches, `'*'` for every tenant (a global action). */
export type ScopeTarget = OperatorTenants;

/**
 * Checks that `who` may act on `target` (`'*'`: a global action); undefined when it may, else
 * the `ERR_FORBIDDEN` answer, once its `admin.refused` entry is appended (the refusal stands
 * whether or not the ledger took it).
 */
export type ScopeGuard = (
  action: string,
  who: OperatorIdentity,
  target: ScopeTarget,
) => Promise<OperatorAnswer | undefined>;

/** The scope guard of operator actions over `deps`'s ledger. */
export function createScopeGuard(deps: Pick<OperatorDeps, 'clock' | 'ledgerPort'>): ScopeGuard {
  return async (action, who, target) => {
    if (who.tenants === '*') return undefined;
    const scope = who.tenants;
    const outside = target === '*' ? ['*'] : target.filter((t) => !operatorCovers(scope, t));
    if (outside.length === 0) return undefined;
    const tenant = outside[0] ?? GLOBAL_TENANT;
    const payload: JsonObject = {
      action: action.slice(0, 64),
      code: 'ERR_FORBIDDEN',
      tenant,
      reason: `${who.name} acts for ${scope.join(', ')} only`,
    };
    const id = sha256Hex(canonicalize({ type: 'admin.refused', payload, at: deps.clock() })).slice(0, 32);
    await withDeadline(
      () =>
        deps.ledgerPort.append({
          type: 'admin.refused',
          trace_id: id,
          request_id: id,
          tenant: tenant === '*' ? GLOBAL_TENANT : tenant,
          actor: operatorActor(who),
          payload,
        }),
      5_000,
    );
    return denied(
      deny(
        'ERR_FORBIDDEN',
        target === '*'
          ? 'a global action needs an operator of every tenant'
          : `tenant ${tenant} is outside your scope`,
      ),
    );
  };
}

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

/** A break-glass grant as operators see it (times ISO 8601). */
export function grantView(g: BreakGlassGrant): JsonObject {
  return {
    grant_id: g.grant_id,
    approver: g.approver,
    role: g.role,
    tenant: g.tenant,
    tool: g.tool,
    reason_category: g.reason_category,
    reason: g.reason,
    created_at: new Date(g.created_at).toISOString(),
    expires_at: new Date(g.expires_at).toISOString(),
  };
}

/** A break-glass grant id as the service makes them. */
const GRANT_ID = /^bg_[A-Za-z0-9_]{1,64}$/;

/** The tenants an approver registration or invitation asks for (`'*'` unless a list of names). */
export function requestedTenants(t: unknown): ScopeTarget {
  return Array.isArray(t) && t.every((x): x is string => typeof x === 'string') ? t : '*';
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

  const guard = createScopeGuard(deps);
  /** The tenants of approver `name` (undefined when unknown: the service answers for it). */
  const approverTenants = async (name: unknown): Promise<OperatorTenants | undefined> => {
    if (typeof name !== 'string') return undefined;
    const a = (await deps.approvals?.listApprovers())?.find((x) => x.name === name);
    return a === undefined ? undefined : a.tenants === '*' ? '*' : [...a.tenants];
  };
  /** The tenant of client `name`, `'*'` (global only) when no client has this name. */
  const clientTenant = async (name: string): Promise<ScopeTarget> => {
    const c = await deps.state.lookup(name);
    return c === undefined ? '*' : [c.tenant];
  };

  /** Appends an admin entry; true once the ledger confirmed it with a well-formed reference, in time. */
  const ledgerAdmin = async (
    type: 'admin.key_rotated' | 'admin.key_revoked' | 'admin.operator',
    tenant: string,
    payload: JsonObject,
    actor: { readonly id: string; readonly role: string },
  ): Promise<boolean> => {
    const id = adminId(type, payload);
    const recorded = await withDeadline(
      () =>
        deps.ledgerPort.append({
          type,
          trace_id: id,
          request_id: id,
          tenant,
          actor,
          payload,
        }),
      5_000,
    );
    return recorded.status === 'ok' && isLedgerRef(recorded.value);
  };

  /**
   * Applies a registry change already ledgered as `recorded` (an `admin.operator` payload): when
   * `apply` answers false or throws, a second `admin.operator` entry `change: "not_applied"`
   * (same operator and tenants, the reason naming the change) says so, so the ledger never shows
   * a change as made that is not (OE-INV-025). Changes run one at a time in this process; across
   * replicas the store's conditional writes decide and the compensating entry records the loser.
   */
  let operatorChanges: Promise<unknown> = Promise.resolve();
  const serialized = <T>(run: () => Promise<T>): Promise<T> => {
    const next = operatorChanges.then(run, run);
    operatorChanges = next.catch(() => undefined);
    return next;
  };
  const applyRecorded = async (
    recorded: JsonObject,
    who: OperatorIdentity,
    apply: () => Promise<boolean>,
  ): Promise<boolean> => {
    let ok = false;
    let failure: Error | undefined;
    try {
      ok = await apply();
    } catch (e) {
      failure = e instanceof Error ? e : new Error('operator registry write failed');
    }
    if (!ok) {
      const change = typeof recorded['change'] === 'string' ? recorded['change'] : 'change';
      await ledgerAdmin(
        'admin.operator',
        GLOBAL_TENANT,
        {
          operator: recorded['operator'] ?? null,
          change: 'not_applied',
          tenants: recorded['tenants'] ?? null,
          reason: `${change} not applied: ${failure === undefined ? 'changed meanwhile' : 'registry write failed'}`,
        },
        operatorActor(who),
      );
      if (failure !== undefined) throw failure;
    }
    return ok;
  };

  /** The OIDC identity `subject` names at the configured issuer, or the refusal. */
  const identityOf = (subject: JsonValue | undefined): { issuer: string; subject: string } | Answer => {
    if (deps.oidcIssuer === undefined)
      return usage('no OIDC issuer is configured (failclosed.json console.oidc)');
    if (typeof subject !== 'string' || !OIDC_SUBJECT.test(subject))
      return usage('oidc_subject must be 1 .. 255 printable ASCII characters');
    return { issuer: deps.oidcIssuer, subject };
  };

  /** The registry, or the 404 of a deployment without one. */
  const registry = (action: string): OperatorStore | Answer =>
    deps.operators ?? { status: 404, body: { error: 'unknown_action', action } };
  const isAnswer = (x: OperatorStore | Answer): x is Answer => 'status' in x;

  const actions: Record<string, (o: JsonObject, who: OperatorIdentity) => Promise<Answer>> = {
    'operators-add': (o, who) =>
      serialized(async () => {
        const store = registry('operators-add');
        if (isAnswer(store)) return store;
        const refused = await guard('operators-add', who, '*');
        if (refused !== undefined) return refused;
        const name = o['name'];
        if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) return usage('name is malformed');
        const t = o['tenants'];
        let tenants: OperatorTenants;
        if (t === '*') tenants = '*';
        else if (
          Array.isArray(t) &&
          t.length > 0 &&
          t.length <= 64 &&
          t.every((x): x is string => typeof x === 'string' && OPERATOR_TENANT.test(x))
        )
          tenants = [...new Set(t)];
        else return usage('tenants must be a list of tenant names, or "*" for every tenant');
        const oidc = o['oidc_subject'] === undefined ? undefined : identityOf(o['oidc_subject']);
        if (oidc !== undefined && 'status' in oidc) return oidc;
        if ((await store.get(name)) !== undefined)
          return { status: 409, body: { error: 'exists', operator: name } };
        if (oidc !== undefined && (await store.bySubject(oidc.issuer, oidc.subject)) !== undefined)
          return { status: 409, body: { error: 'identity_taken', operator: name } };
        const token = newOperatorToken();
        const payload: JsonObject = {
          operator: name,
          change: 'added',
          tenants: tenants === '*' ? '*' : [...tenants],
          reason: reasonOf(o),
          ...(oidc === undefined ? {} : { oidc: { ...oidc } }),
        };
        if (!(await ledgerAdmin('admin.operator', GLOBAL_TENANT, payload, operatorActor(who))))
          return denied(deny('ERR_LEDGER_UNAVAILABLE', 'operator not recorded'));
        const added = await applyRecorded(payload, who, () =>
          store.add({
            name,
            tenants,
            token_sha256: sha256Hex(token),
            created_at: deps.clock(),
            ...(oidc === undefined ? {} : { oidc }),
          }),
        );
        if (!added) return { status: 409, body: { error: 'exists', operator: name } };
        const rec = await store.get(name);
        return {
          status: 201,
          body: { outcome: 'ok', ...(rec === undefined ? { name } : operatorView(rec)), token },
        };
      }),
    'operators-rotate': (o, who) =>
      serialized(async () => {
        const store = registry('operators-rotate');
        if (isAnswer(store)) return store;
        const name = o['name'];
        if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) return usage('name is malformed');
        // Anyone may replace their own token; another's needs an operator of every tenant.
        if (name !== who.name) {
          const refused = await guard('operators-rotate', who, '*');
          if (refused !== undefined) return refused;
        }
        const rec = await store.get(name);
        if (rec === undefined || rec.status !== 'active')
          return { status: 404, body: { error: 'not_found', operator: name } };
        const token = newOperatorToken();
        const payload: JsonObject = {
          operator: name,
          change: 'rotated',
          tenants: rec.tenants === '*' ? '*' : [...rec.tenants],
          reason: reasonOf(o),
        };
        if (!(await ledgerAdmin('admin.operator', GLOBAL_TENANT, payload, operatorActor(who))))
          return denied(deny('ERR_LEDGER_UNAVAILABLE', 'operator token rotation not recorded'));
        const rotated = await applyRecorded(payload, who, () =>
          store.rotate(name, rec.token_sha256, sha256Hex(token), deps.clock()),
        );
        if (!rotated)
          return {
            status: 409,
            body: { error: 'conflict', reason: 'rotated or removed meanwhile', operator: name },
          };
        const now = await store.get(name);
        return {
          status: 200,
          body: { outcome: 'ok', ...(now === undefined ? { name } : operatorView(now)), token },
        };
      }),
    'operators-remove': (o, who) =>
      serialized(async () => {
        const store = registry('operators-remove');
        if (isAnswer(store)) return store;
        const refused = await guard('operators-remove', who, '*');
        if (refused !== undefined) return refused;
        const name = o['name'];
        if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) return usage('name is malformed');
        if (name === BOOTSTRAP_OPERATOR)
          return usage('the bootstrap operator cannot be removed: rotate its token instead');
        const rec = await store.get(name);
        if (rec === undefined || rec.status !== 'active')
          return { status: 404, body: { error: 'not_found', operator: name } };
        const payload: JsonObject = {
          operator: name,
          change: 'removed',
          tenants: rec.tenants === '*' ? '*' : [...rec.tenants],
          reason: reasonOf(o),
        };
        if (!(await ledgerAdmin('admin.operator', GLOBAL_TENANT, payload, operatorActor(who))))
          return denied(deny('ERR_LEDGER_UNAVAILABLE', 'operator removal not recorded'));
        if (!(await applyRecorded(payload, who, () => store.remove(name, deps.clock()))))
          return { status: 404, body: { error: 'not_found', operator: name } };
        const now = await store.get(name);
        return {
          status: 200,
          body: { outcome: 'ok', ...(now === undefined ? { name } : operatorView(now)) },
        };
      }),
    'operators-bind': (o, who) =>
      serialized(async () => {
        const store = registry('operators-bind');
        if (isAnswer(store)) return store;
        const refused = await guard('operators-bind', who, '*');
        if (refused !== undefined) return refused;
        const name = o['name'];
        if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) return usage('name is malformed');
        const oidc = identityOf(o['oidc_subject']);
        if ('status' in oidc) return oidc;
        const rec = await store.get(name);
        if (rec === undefined || rec.status !== 'active')
          return { status: 404, body: { error: 'not_found', operator: name } };
        // One identity at a time: a rebinding is an unbind (ledgered) and then a bind.
        if (rec.oidc !== null)
          return {
            status: 409,
            body: { error: 'bound', reason: 'unbind the operator first', operator: name },
          };
        if ((await store.bySubject(oidc.issuer, oidc.subject)) !== undefined)
          return { status: 409, body: { error: 'identity_taken', operator: name } };
        const payload: JsonObject = {
          operator: name,
          change: 'bound',
          tenants: rec.tenants === '*' ? '*' : [...rec.tenants],
          reason: reasonOf(o),
          oidc: { ...oidc },
        };
        if (!(await ledgerAdmin('admin.operator', GLOBAL_TENANT, payload, operatorActor(who))))
          return denied(deny('ERR_LEDGER_UNAVAILABLE', 'operator binding not recorded'));
        if (
          !(await applyRecorded(payload, who, () =>
            store.bind(name, oidc.issuer, oidc.subject, deps.clock()),
          ))
        )
          return { status: 409, body: { error: 'conflict', reason: 'changed meanwhile', operator: name } };
        const now = await store.get(name);
        return {
          status: 200,
          body: { outcome: 'ok', ...(now === undefined ? { name } : operatorView(now)) },
        };
      }),
    'operators-unbind': (o, who) =>
      serialized(async () => {
        const store = registry('operators-unbind');
        if (isAnswer(store)) return store;
        const refused = await guard('operators-unbind', who, '*');
        if (refused !== undefined) return refused;
        const name = o['name'];
        if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) return usage('name is malformed');
        const rec = await store.get(name);
        if (rec === undefined || rec.status !== 'active')
          return { status: 404, body: { error: 'not_found', operator: name } };
        const bound = rec.oidc;
        if (bound === null) return { status: 409, body: { error: 'not_bound', operator: name } };
        const payload: JsonObject = {
          operator: name,
          change: 'unbound',
          tenants: rec.tenants === '*' ? '*' : [...rec.tenants],
          reason: reasonOf(o),
          oidc: { issuer: bound.issuer, subject: bound.subject },
        };
        if (!(await ledgerAdmin('admin.operator', GLOBAL_TENANT, payload, operatorActor(who))))
          return denied(deny('ERR_LEDGER_UNAVAILABLE', 'operator unbinding not recorded'));
        if (!(await applyRecorded(payload, who, () => store.unbind(name, bound.issuer, bound.subject))))
          return { status: 409, body: { error: 'conflict', reason: 'changed meanwhile', operator: name } };
        const now = await store.get(name);
        return {
          status: 200,
          body: { outcome: 'ok', ...(now === undefined ? { name } : operatorView(now)) },
        };
      }),
    'operators-list': async (_o, who) => {
      const store = registry('operators-list');
      if (isAnswer(store)) return store;
      const refused = await guard('operators-list', who, '*');
      if (refused !== undefined) return refused;
      return { status: 200, body: { operators: (await store.list()).map(operatorView) } };
    },
    'clients-add': async (o, who) => {
      const name = o['name'];
      const tenant = o['tenant'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      // Reserved for OAuth principals (mcp/auth.ts `oauthIdentity`): no client may take their names.
      if (name.startsWith(OAUTH_IDENTITY_PREFIX))
        return usage(`names beginning ${OAUTH_IDENTITY_PREFIX} are reserved`);
      if (typeof tenant !== 'string' || !TENANT.test(tenant)) return usage('tenant is malformed');
      const refused = await guard('clients-add', who, [tenant]);
      if (refused !== undefined) return refused;
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
            actor: operatorActor(who),
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
    'approvers-add': async (o, who) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'approvers-add' } };
      const refused = await guard('approvers-add', who, requestedTenants(o['tenants']));
      if (refused !== undefined) return refused;
      const roles = o['roles'];
      const r = await deps.approvals.registerApprover(
        {
          name: typeof o['name'] === 'string' ? o['name'] : '',
          roles: Array.isArray(roles) ? roles.filter((x): x is string => typeof x === 'string') : [],
          // A list of tenants, or "*" asked for explicitly (`--all-tenants`); anything else is refused.
          tenants: o['tenants'],
          public_jwk: o['public_jwk'],
        },
        operatorActor(who),
      );
      return isDeny(r) ? denied(r) : { status: 201, body: approverView(r) };
    },
    'break-glass-list': async (_o, who) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'break-glass-list' } };
      const grants = (await deps.approvals.activeGrants()).filter((g) =>
        operatorCovers(who.tenants, g.tenant),
      );
      return { status: 200, body: { grants: grants.map(grantView) } };
    },
    'break-glass-revoke': async (o, who) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'break-glass-revoke' } };
      const id = o['grant_id'];
      if (typeof id !== 'string' || !GRANT_ID.test(id)) return usage('grant_id is malformed');
      const g = (await deps.approvals.activeGrants()).find((x) => x.grant_id === id);
      // A grant of another tenant is refused as one of the caller's scope would be: by scope.
      const refused = await guard('break-glass-revoke', who, g === undefined ? '*' : [g.tenant]);
      if (refused !== undefined) return refused;
      const r = await deps.approvals.revokeGrant(id, reasonOf(o), operatorActor(who));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', grant: grantView(r.grant), ledger: { ...r.ledger } } };
    },
    'approvers-remove': async (o, who) => {
      if (deps.approvals === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'approvers-remove' } };
      const name = o['name'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      const refused = await guard('approvers-remove', who, (await approverTenants(name)) ?? '*');
      if (refused !== undefined) return refused;
      const r = await deps.approvals.removeApprover(name, reasonOf(o), operatorActor(who));
      return isDeny(r) ? denied(r) : { status: 200, body: { outcome: 'ok', ...approverView(r) } };
    },
    'clients-rotate': async (o, who) => {
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
      const refused = await guard('clients-rotate', who, [c.tenant]);
      if (refused !== undefined) return refused;
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
      if (!(await ledgerAdmin('admin.key_rotated', c.tenant, payload, operatorActor(who))))
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
    'clients-revoke': async (o, who) => {
      const name = o['name'];
      if (typeof name !== 'string' || !NAME.test(name)) return usage('name is malformed');
      const c = await deps.state.lookup(name);
      if (c === undefined) return denied(deny('ERR_CLIENT_UNKNOWN', 'no client has this name'));
      const refused = await guard('clients-revoke', who, [c.tenant]);
      if (refused !== undefined) return refused;
      if (c.status !== 'active') return denied(deny('ERR_CLIENT_REVOKED', 'the client is already revoked'));
      const payload: JsonObject = {
        client: name,
        kid: c.kid,
        key_use: 'request',
        reason: reasonOf(o),
        revoked_at: new Date(deps.clock()).toISOString(),
      };
      if (!(await ledgerAdmin('admin.key_revoked', c.tenant, payload, operatorActor(who))))
        return denied(deny('ERR_LEDGER_UNAVAILABLE', 'client revocation not recorded'));
      await deps.state.revokeClient(name);
      return { status: 200, body: { outcome: 'ok', client: name, kid: c.kid, status: 'revoked' } };
    },
    // An operator of some tenants sees the approvers and clients of those tenants only.
    'approvers-list': async (_o, who) => ({
      status: 200,
      body: {
        approvers: ((await deps.approvals?.listApprovers()) ?? [])
          .filter(
            (a) =>
              who.tenants === '*' ||
              (a.tenants !== '*' && a.tenants.every((t) => operatorCovers(who.tenants, t))),
          )
          .map(approverView),
      },
    }),
    'clients-list': async (_o, who) => ({
      status: 200,
      body: {
        clients: (await deps.state.listClients())
          .filter((c) => operatorCovers(who.tenants, c.tenant))
          .map((c) => ({ ...c, roles: [...c.roles] })),
      },
    }),
    'policy-activate': async (o, who) => {
      const refused = await guard('policy-activate', who, '*');
      if (refused !== undefined) return refused;
      if (typeof o['bundle'] !== 'string') return usage('bundle must be the bundle document text');
      const put = deps.bundles.put(o['bundle']);
      if (isDeny(put)) return denied(put);
      const r = await deps.controlPlane.activateBundle(put.hash, operatorActor(who), reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : {
            status: 200,
            body: { outcome: 'ok', hash: r.hash, previous: r.previous, ledger: { ...r.ledger } },
          };
    },
    'kill-switch': async (o, who) => {
      const refused = await guard('kill-switch', who, '*');
      if (refused !== undefined) return refused;
      if (typeof o['on'] !== 'boolean') return usage('on must be a boolean');
      const r = await deps.controlPlane.admin.setKillSwitch(o['on'], operatorActor(who), reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', engaged: o['on'], ledger: { ...r.ledger } } };
    },
    lockdown: async (o, who) => {
      const tenant = o['tenant'];
      if (typeof tenant !== 'string' || !TENANT.test(tenant) || typeof o['on'] !== 'boolean')
        return usage('tenant and on are required');
      const refused = await guard('lockdown', who, [tenant]);
      if (refused !== undefined) return refused;
      const r = await deps.controlPlane.admin.setTenantLockdown(
        tenant,
        o['on'],
        operatorActor(who),
        reasonOf(o),
      );
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', tenant, engaged: o['on'], ledger: { ...r.ledger } } };
    },
    quarantine: async (o, who) => {
      const session = o['session'];
      if (typeof session !== 'string' || !PRINCIPAL.test(session) || typeof o['on'] !== 'boolean')
        return usage('session (a session id or client:NAME) and on are required');
      // A session id names no tenant: only `client:NAME` is a tenant's; a session is global.
      const refused = await guard(
        'quarantine',
        who,
        session.startsWith('client:') ? await clientTenant(session.slice('client:'.length)) : '*',
      );
      if (refused !== undefined) return refused;
      const r = await deps.controlPlane.admin.setSessionQuarantine(
        session,
        o['on'],
        operatorActor(who),
        reasonOf(o),
      );
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', session, engaged: o['on'], ledger: { ...r.ledger } } };
    },
    'breaker-reset': async (o, who) => {
      const { session, client, tenant } = o;
      const given = [session, client, tenant].filter((v) => v !== undefined).length;
      let target: BreakerResetScope;
      if (given !== 1) return usage('exactly one of session, client or tenant is required');
      if (typeof session === 'string' && SESSION.test(session) && !session.startsWith('client:'))
        target = { scope: 'session', session };
      else if (typeof client === 'string' && NAME.test(client)) target = { scope: 'client', client };
      else if (typeof tenant === 'string' && TENANT.test(tenant)) target = { scope: 'tenant', tenant };
      else return usage('session, client or tenant is malformed');
      const refused = await guard(
        'breaker-reset',
        who,
        target.scope === 'tenant'
          ? [target.tenant]
          : target.scope === 'client'
            ? await clientTenant(target.client)
            : '*',
      );
      if (refused !== undefined) return refused;
      const r = await deps.controlPlane.resetBreaker(target, operatorActor(who), reasonOf(o));
      return isDeny(r)
        ? denied(r)
        : { status: 200, body: { outcome: 'ok', ...target, breaker: r.breaker, ledger: { ...r.ledger } } };
    },
    'issuer-rotate': async (o, who) => {
      const refused = await guard('issuer-rotate', who, '*');
      if (refused !== undefined) return refused;
      const files = deps.issuerKeys;
      const next = generateSigningKey();
      files?.stage(next);
      const r = await deps.controlPlane.rotateIssuerKey(operatorActor(who), reasonOf(o), next);
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
    'issuer-revoke': async (o, who) => {
      const refused = await guard('issuer-revoke', who, '*');
      if (refused !== undefined) return refused;
      const kid = o['kid'];
      if (typeof kid !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(kid)) return usage('kid is required');
      let r;
      try {
        r = await deps.controlPlane.revokeIssuerKey(kid, operatorActor(who), reasonOf(o));
      } catch {
        return usage('the current issuer key cannot be revoked: rotate first');
      }
      if (isDeny(r)) return denied(r);
      deps.issuerKeys?.commit(false, deps.controlPlane.issuerJwks());
      return { status: 200, body: { outcome: 'ok', kid: r.kid, ledger: { ...r.ledger } } };
    },
    // The deployment's execution-capable interfaces (docs/inventory.md, FC-INV-6): every tenant's.
    inventory: async (_o, who) => {
      const refused = await guard('inventory', who, '*');
      if (refused !== undefined) return refused;
      if (deps.inventory === undefined)
        return { status: 404, body: { error: 'unknown_action', action: 'inventory' } };
      let doc: InventoryDocument;
      try {
        doc = deps.inventory();
      } catch {
        return denied(deny('ERR_POLICY_UNAVAILABLE', 'the inventory could not be built'));
      }
      return { status: 200, body: { inventory_sha256: inventorySha256(doc), inventory: inventoryJson(doc) } };
    },
    'ledger-export': async (o, who) => {
      // The export is of the whole ledger (every tenant's records): an operator of every tenant's.
      const refused = await guard('ledger-export', who, '*');
      if (refused !== undefined) return refused;
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
          actor: operatorActor(who),
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
    async run(action, body, who) {
      const fn = actions[action];
      if (fn === undefined) return { status: 404, body: { error: 'unknown_action', action } };
      return fn(obj(body), who);
    },
  };
}
