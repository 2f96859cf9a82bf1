/**
 * The composition root of the embedded deployment (SPEC §1): the four roles in one process,
 * talking only through their interfaces, over one storage backend (today the SQLite files under
 * the data directory: `ledger.db`; `state.db` for clients, request nonces and governance;
 * `nonces.db` for the Execution Layer).
 * The Execution Layer gets the issuer's PUBLIC keys only and verifies every envelope itself.
 */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  canonicalize,
  isDeny,
  parseJson,
  fileSync,
  systemClock,
  uriTemplatePattern,
  withDeadline,
} from '../kernel/index.js';
import { callableTools, cedarThreadAvailable, createCedarThread } from '../policy/index.js';
import type { CedarThread, LoadedBundle, ToolSpec } from '../policy/index.js';
import type { Clock, JsonObject, Observer } from '../kernel/index.js';
import { exportSigningKeyJwk, noteSignerFor } from '../kernel/signing/index.js';
import { createLedger } from '../ledger/index.js';
import type { Ledger, LedgerEntry, StoredCheckpoint } from '../ledger/index.js';
import { createBundleCompiler, createBundleStore, createControlPlane } from '../control-plane/index.js';
import type { DecisionClaimStore } from '../control-plane/index.js';
import type {
  ApprovalNotice,
  BreakerConfig,
  BundleStore,
  ControlPlaneDeadlines,
  ControlPlaneService,
  GovernanceState,
} from '../control-plane/index.js';
import {
  createDefaultBuiltins,
  createBwrapSandbox,
  createExecutor,
  createEnvSecretResolver,
  createRedactor,
  createUpstreamTokenCache,
} from '../execution/index.js';
import type { Executor, NonceStore, Sandbox } from '../execution/index.js';
import { BOOTSTRAP_OPERATOR, createGate, parseSignedRequest } from '../gate/index.js';
import type {
  CatalogListing,
  Gate,
  GateControlPlane,
  GateExecutor,
  GateLedger,
  GateStateStore,
  GateTimeouts,
  LedgerEntryView,
  McpEntryInfo,
  OperatorActions,
} from '../gate/index.js';
import { dataPaths, operatorTokenSha256, readConfig, readSigningKey, writeSecret } from './data-dir.js';
import type { EmbeddedConfig } from './data-dir.js';
import { createOperatorActions, createScopeGuard } from './admin.js';
import type { IssuerKeyFiles } from './admin.js';
import { openApprovals } from './approvals.js';
import { openNotifications, type EmbeddedNotifications } from './notifications.js';
import { buildTrustRoots } from './trust-roots.js';
import type { EmbeddedApprovals } from './approvals.js';
import { openConsole, withConsoleActions } from './console.js';
import type { EmbeddedConsole } from './console.js';
import { followIssuerKeys } from './ports.js';
import { executionAdapters } from './execution-adapters.js';
import type { CoreDecorators, LedgerPort, ToolRunObserver } from './ports.js';
import { openJobs } from './jobs.js';
import { createScheduleStanding, createScheduler, withoutSchedules } from '../schedules/index.js';
import type { Scheduler } from '../schedules/index.js';
import { withScheduleActions } from './schedule-actions.js';
import type { NatsWorkers } from './nats-queue.js';
import type { GateJobQueue } from '../gate/index.js';
import { createDiskSpaceProbe } from './readiness.js';
import { GATE_INSTANCE_PREFIX, openPostgresBackend, openSqliteBackend } from '../storage/index.js';
import {
  LEDGER_BINDING_FILE,
  checkLedgerBinding,
  checkLocalLedgerFile,
  checkSignedCheckpoint,
  createCheckpointMemory,
  proveOpenedLedger,
  writeLedgerBinding,
  type CheckpointMemory,
  type LedgerBinding,
} from './ledger-binding.js';
import type { StorageBackend, WriterLease } from '../storage/index.js';
import { redactedBackend, resolveBackendSpec } from './backend-spec.js';
import { assertIssuerKeysAgree, readLedgerAdminState, withholdStaleBundle } from './policy-guard.js';
import type { LedgerAdminState } from './policy-guard.js';
import { mirroredBundleStore, syncBundlesFromBackend } from './bundle-sync.js';
import { createReplicaFollower, DEFAULT_FOLLOW_MS } from './replica-follow.js';
import type { ReplicaFollower } from './replica-follow.js';
import type { BackendSpec } from './backend-spec.js';
import { createMtlsAgent } from '../transport/index.js';
import type { MtlsAgent } from '../transport/index.js';
import { createRemoteExecutor } from './remote-executor.js';
import { tlsFilesFor } from './tls-config.js';
import { createLedgerWitness } from './ledger-link.js';

/** `/readyz` fails its `disk` check below this much free space (MiB) unless `min_free_disk_mb` says otherwise. */
export const DEFAULT_MIN_FREE_DISK_MB = 64;
import { createFence, fencedExecutor, fencedLedgerPort } from './fence.js';
import { lockDataDir, waitForDataDir } from './instance-lock.js';
import { recordAbandonedRequests, recoveryDeps } from './recovery.js';
import {
  createInventoryRecorder,
  currentInventory,
  recordStartInventory,
  recordingInventory,
} from './inventory-record.js';
import type { InventoryRecorder } from './inventory-record.js';
import type { RecoveryDeps, RecoveryReport } from './recovery.js';

/** The opened roles and stores. */
export interface Core {
  readonly dir: string;
  readonly config: EmbeddedConfig;
  readonly clock: Clock;
  readonly ledger: Ledger;
  /** The ledger as every role writes to it (fenced at stop; decorated by `decorate.ledgerPort`). */
  readonly ledgerPort: LedgerPort;
  readonly state: GateStateStore;
  readonly governance: GovernanceState;
  /** The storage backend the stores above came from. */
  readonly backend: StorageBackend;
  /** Where the stores are, for messages: `sqlite`, or the PostgreSQL URL without its password. */
  readonly storage: string;
  readonly bundles: BundleStore;
  /**
   * When the backend holds the bundles (PostgreSQL): what follows the activations and issuer key
   * changes made through other gates on it (replica-follow.ts); undefined on SQLite.
   */
  readonly follower?: ReplicaFollower;
  /**
   * The Control Plane service; with a follower, an issuer key rotation or revocation made through
   * it answers once the follower has read it, so this gate's next call is decided at once.
   */
  readonly controlPlane: ControlPlaneService;
  /** The Control Plane as the Gate calls it (decorated by `decorate.controlPlane`): also separate Gates' (`gate-routes.ts`). */
  readonly controlPlanePort: GateControlPlane;
  /** The Execution Layer as the Gate calls it (decorated by `decorate.gateExecutor`). */
  readonly executorPort: GateExecutor;
  /**
   * True when `text` holds a value of a secret this process knows (`FC_SECRET_*`, `secrets.json`,
   * upstream tokens), in any encoded form the redactor knows; patterns are not matched. A keyless
   * Gate knows no secret value: it asks the internal listener, which also refuses to store its
   * request evidence or entries holding one (scenario 16, `gate-routes.ts`).
   */
  readonly secretValueIn: (text: string) => boolean;
  readonly executor: Executor;
  readonly nonces: NonceStore;
  readonly sandbox: Sandbox;
  readonly gate: Gate;
  /** The operator actions (`POST /v1/admin/{action}`), for the console's operator pages too. */
  readonly operator: OperatorActions;
  /** Human approvals, break-glass and reviews (OE-INV-019/020, L7). */
  readonly approvals: EmbeddedApprovals;
  /** The browser console's people and sessions (docs/console.md). */
  readonly console: EmbeddedConsole;
  /** Signed webhooks (`webhooks` in `failclosed.json`); undefined without receivers. */
  readonly notifications?: EmbeddedNotifications;
  /** What the recovery pass on open recorded (requests a crash or stop left without an outcome). */
  readonly recovered: RecoveryReport;
  /** Records the inventory of execution-capable interfaces (docs/inventory.md, FC-INV-6). */
  readonly inventory: InventoryRecorder;
  /**
   * End of a stop's grace period: raises the fence (no role writes to the ledger, the Execution
   * Layer runs nothing), waits for queued appends, then records `request.abandoned` for every
   * call still in flight (SPEC §5, FC-INV-5).
   */
  abandonInFlight(): Promise<RecoveryReport>;
  /** The queue of background calls (docs/jobs.md). */
  readonly jobs: GateJobQueue;
  /**
   * Stops this process's NATS queue workers taking jobs (`jobs.workers`), as a stop begins: the
   * jobs they run finish (their receipts are written before the fence), the ones not taken stay in
   * the stream for other workers. Resolves once the running ones are done. Idempotent.
   */
  stopWorkers(): Promise<void>;
  /** The scheduler (docs/schedules.md); undefined on a backend without a schedule store. */
  readonly scheduler?: Scheduler;
  /**
   * Records `request.abandoned` for the open requests of gate instances that are gone (shared
   * storage: another replica stopped, crashed or was cut off; SPEC §5, FC-INV-5). Runs on open
   * and then every `orphanSweepMs` by itself; rejects when a step cannot be confirmed (retried at
   * the next sweep).
   */
  sweepOrphans(): Promise<RecoveryReport>;
  /**
   * Records the jobs this instance queued on a broker that no worker answered before their
   * envelope expired (the broker lost them, no worker took them) as never run: each only once
   * its envelope is voided unconsumed in this backend's nonce store, the Execution Layer's
   * (docs/jobs.md "Failures"). Runs every `orphanSweepMs` with a NATS queue; rejects when a step
   * cannot be confirmed (tried again at the next pass).
   */
  sweepLostJobs(): Promise<RecoveryReport>;
  /**
   * With `executor_url`: the Gate's mutual-TLS Agent to the remote Execution Layer (reloaded by
   * `EmbeddedInstance.reloadTls`); undefined when the Gate calls the executor in-process.
   */
  readonly executorAgent?: MtlsAgent;
  close(): Promise<void>;
}

/** Deadlines (ms) of the roles' dependency calls; shorter ones make hang faults quick to observe. */
export interface EmbeddedDeadlines {
  readonly gate?: GateTimeouts;
  readonly controlPlane?: Partial<ControlPlaneDeadlines>;
  readonly executor?: { readonly ledgerMs?: number; readonly nonceMs?: number };
}

/** Options of {@link openCore}. */
export interface CoreOptions {
  readonly clock?: Clock;
  /**
   * Largest execution answer (bytes) between the Gate and an Execution Layer at `executor_url`
   * (default `EXECUTION_ANSWER_LIMITS.maxBytes`); the listener started over this core must use the
   * same. Tests lower it.
   */
  readonly executionAnswerBytes?: number;
  /** Sees every tool run just before its adapter starts (tests, demo: "the tool never ran"). */
  readonly onToolRun?: ToolRunObserver;
  readonly deadlines?: EmbeddedDeadlines;
  /** Circuit breaker limits over the defaults (OE-INV-021), e.g. for load tests. */
  readonly breakers?: Partial<BreakerConfig>;
  /** Decorators of the roles' ports (tests and the demo inject faults through them). */
  readonly decorate?: CoreDecorators;
  /** Storage backend over `FAILCLOSED_BACKEND` and `failclosed.json` (`sqlite` or a `postgres://` URL). */
  readonly backend?: string;
  /**
   * Set by `initDataDir` only, which writes a new ledger's first entries and then binds the data
   * directory to it (`bindLedger`): an unbound directory may open an empty store. Any other open
   * of an unbound directory over an empty store is refused (ledger-binding.ts).
   */
  readonly initialising?: boolean;
  /**
   * SQLite: when another process holds the data directory's writer lock, wait as a standby until
   * it is gone (true), or refuse at once (false, default). PostgreSQL: refused, every gate serves.
   */
  readonly standby?: boolean;
  /** Stops a standby's wait. */
  readonly signal?: AbortSignal;
  /** Called once if the writer lease is lost while serving; the roles are fenced by then. */
  readonly onWriterLost?: () => void;
  /**
   * On shared storage, how often the open requests of gone gate instances are swept (default
   * 5000 ms; 0: only on open and through {@link Core.sweepOrphans}).
   */
  readonly orphanSweepMs?: number;
  /**
   * How often the scheduler looks for due slots (default 1000 ms; 0: never by itself, only
   * through {@link Core.scheduler}'s `tick`, as tests with an injected clock do).
   */
  readonly scheduleTickMs?: number;
  /** Told why this gate starts or stops following the others on its backend (default: stderr). */
  readonly onReplicaNotice?: (message: string) => void;
  /**
   * Admit Streamable HTTP upstream MCP servers at a literal loopback address (`127.0.0.1`,
   * `[::1]`). For tests and development only; default false: an upstream must have a public
   * address (docs/mcp.md "Upstream servers").
   */
  readonly allowLoopbackMcpUpstreams?: boolean;
  /**
   * Sees the roles' stages, outcomes, ledger batches, nonce-store answers and breaker trips
   * (telemetry: logs, metrics, traces; docs/deployment.md "Observability"). Default: none.
   */
  readonly observer?: Observer;
  /**
   * Evaluate Cedar on a thread of its own (docs/policy.md "Where Cedar runs"), where the build
   * ships its worker: the serving commands (`up`, `serve control-plane`) ask for it. The thread
   * is up, with the active bundle pre-parsed, before the open returns. Default false: Cedar
   * evaluates in the calling thread (an in-process CLI command makes one call). A thread given
   * (`createCedarThread`) is used as it is, wherever the worker it runs comes from, and is closed
   * with the deployment.
   */
  readonly cedarThread?: boolean | CedarThread;
}

/** How long the open waits for the Cedar thread to be up (ms). */
const CEDAR_THREAD_START_MS = 30_000;

/** Opens the storage backend `spec` names for the data directory `p`. */
async function openBackend(
  spec: BackendSpec,
  p: ReturnType<typeof dataPaths>,
  config: EmbeddedConfig,
  clock: Clock,
  decorate: CoreDecorators | undefined,
  observer: Observer | undefined,
): Promise<StorageBackend> {
  // Nonces are pruned only past every envelope's possible life: exp + clock tolerance + max lifetime.
  const retainAfterExpSec = config.clock_tolerance_sec + config.max_envelope_lifetime_sec;
  // The Gate's request replay memory and the Control Plane's decision claims (FC-INV-3).
  const replayRetentionMs = Math.max(7 * 86_400_000, 2 * config.timestamp_tolerance_ms);
  if (spec.kind === 'sqlite')
    return await openSqliteBackend({
      ledgerPath: p.ledgerDb,
      statePath: p.stateDb,
      noncesPath: p.noncesDb,
      clock,
      retainAfterExpSec,
      replayRetentionMs,
      ...(decorate?.fileSync === undefined ? {} : { fileSync: decorate.fileSync(fileSync) }),
      ...(observer === undefined ? {} : { observer }),
    });
  return openPostgresBackend({
    url: spec.url,
    ...(spec.schema === undefined ? {} : { schema: spec.schema }),
    clock,
    retainAfterExpSec,
    replayRetentionMs,
  });
}

/** MCP `tools/list` over the active bundle: none without one (deny by default, docs/mcp.md). */
function toolListingsFor(
  bundle: LoadedBundle | undefined,
  principal: { readonly identity: string; readonly tenant: string; readonly roles: readonly string[] },
) {
  if (bundle === undefined) return [];
  return callableTools(bundle, {
    id: principal.identity,
    tenant: principal.tenant,
    roles: principal.roles,
  }).map(listingOf);
}

/** A bundle entry as the MCP ingress lists it: with its pinned prompt or resource, when it is one. */
const listings = new WeakMap<ToolSpec, CatalogListing>();

/** {@link listingOf}, once per tool of a loaded bundle (its specs are frozen): no re-parsing per MCP request. */
function listingOf(t: ToolSpec): CatalogListing {
  let l = listings.get(t);
  if (l === undefined) listings.set(t, (l = buildListing(t)));
  return l;
}

function buildListing(t: ToolSpec): CatalogListing {
  const a = t.adapter;
  const raw = a['definition'];
  const prompt = a['prompt'];
  const resource = a['resource'];
  const template = a['resource_template'];
  const pattern = typeof template === 'string' ? uriTemplatePattern(template) : undefined;
  const definition =
    typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as JsonObject) : undefined;
  const mcp: McpEntryInfo | undefined =
    a.type !== 'mcp' || definition === undefined
      ? undefined
      : a['completion'] !== undefined
        ? // Never listed as a tool, a prompt or a template: reached by completion/complete only.
          {
            kind: 'completion',
            upstream: typeof prompt === 'string' ? prompt : typeof template === 'string' ? template : '',
            definition,
          }
        : typeof prompt === 'string'
          ? { kind: 'prompt', upstream: prompt, definition }
          : typeof resource === 'string'
            ? { kind: 'resource', upstream: resource, definition }
            : typeof template === 'string' && pattern !== undefined
              ? { kind: 'template', upstream: template, pattern: new RegExp(pattern), definition }
              : undefined;
  return {
    name: t.name,
    description: t.description,
    inputSchema: t.parameters,
    ...(mcp === undefined ? {} : { mcp }),
  };
}

/** The active bundle's pinned MCP prompts and resources, unfiltered (docs/mcp.md). */
const entriesOfBundle = new WeakMap<LoadedBundle, readonly CatalogListing[]>();

function mcpEntriesOf(bundle: LoadedBundle | undefined): readonly CatalogListing[] {
  if (bundle === undefined) return [];
  let entries = entriesOfBundle.get(bundle);
  if (entries === undefined)
    entriesOfBundle.set(
      bundle,
      (entries = bundle.document.tools.map(listingOf).filter((l) => l.mcp !== undefined)),
    );
  return entries;
}

/** The Gate's ledger port over the ledger as the roles write to it (the embedded composition's wiring). */
export function gateLedgerOver(ledger: Ledger, port: Core['ledgerPort']): GateLedger {
  return {
    putEvidence: (bytes, mediaType, writes) => port.putEvidence(bytes, mediaType, writes),
    getEvidence: async (sha256) => (await ledger.store.getEvidence(sha256))?.body,
    appendGatewayEvent: (e, writes) =>
      port.append(
        {
          type: e.type,
          trace_id: e.trace_id,
          // Requests that never authenticated have no trustworthy id or tenant: recorded as ''.
          request_id: e.request_id ?? '',
          tenant: e.tenant ?? '',
          actor: { id: e.identity ?? 'anonymous', role: 'gate' },
          payload: e.payload,
        },
        writes,
        e.closes === undefined ? undefined : { ifOpen: e.closes },
      ),
    // Committed entries only. A store that stages (the SQLite connection) also reads entries
    // whose commit is under way: those past the committed size. On a shared store, entries past
    // it were committed by other gates and are shown.
    entriesForRequest: async (id) => {
      const entries = await ledger.store.readByRequest(id);
      const committed = ledger.size();
      const shown =
        ledger.store.stageBatch === undefined ? entries : entries.filter((e) => e.index < committed);
      return shown as unknown as LedgerEntryView[];
    },
    // A fresh checkpoint at the committed size, so every record of the request has a proof.
    latestCheckpoint: async () => (ledger.size() === 0 ? null : await ledger.checkpoint()),
    proveInclusion: (index, size) => Promise.resolve(ledger.proveInclusion(index, size)),
    // Not part of the request's own trace (its request_id is empty, like `audit.export`): the
    // request read is named in the payload.
    recordRead: (r) =>
      port.append({
        type: 'audit.read',
        trace_id: '',
        request_id: '',
        tenant: '',
        actor: { id: r.reader.id, role: r.reader.role },
        payload: { scope: r.scope, request_id: r.request_id },
      }),
  };
}

/**
 * True when a tool can run in this process: no separate Execution Layer (`executor_url`), or an
 * execution listener of its own (`tls.executor`), which `startEmbedded` serves then. Otherwise
 * every call, void and queued job goes to the Execution Layer at `executor_url`.
 */
export function runsToolsLocally(config: Pick<EmbeddedConfig, 'executor_url' | 'tls'>): boolean {
  return config.executor_url === undefined || config.tls?.executor !== undefined;
}

/** Whether this process runs NATS queue workers over its own Execution Layer (`jobs.workers`). */
function runsQueueWorkers(config: Pick<EmbeddedConfig, 'executor_url' | 'jobs'>): boolean {
  return config.executor_url === undefined && config.jobs?.queue === 'nats' && (config.jobs.workers ?? 0) > 0;
}

/** Opens every role over an initialised data directory (see `initDataDir`). */
export async function openCore(dir: string, options: CoreOptions = {}): Promise<Core> {
  const p = dataPaths(dir);
  const config = readConfig(dir);
  const clock = options.clock ?? systemClock;
  const decorate = options.decorate ?? {};
  // The checkpoint key: here, or only in the ledger process that signs for this one (ledger-node.ts).
  const witnessed = config.checkpoints;
  if (witnessed !== undefined && existsSync(p.ledgerKey))
    throw new TypeError(
      `checkpoints names a ledger process, yet ${p.ledgerKey} still holds the checkpoint key: move it to the ledger process (its "key"), so that only that process can sign checkpoints`,
    );
  const spec: BackendSpec = resolveBackendSpec(options.backend, process.env, config.backend);
  if (witnessed !== undefined && spec.kind !== 'postgres')
    throw new TypeError(
      'checkpoints needs the PostgreSQL backend: the ledger process reads the shared ledger',
    );
  const ledgerAgent =
    witnessed === undefined || config.tls?.control_plane === undefined
      ? undefined
      : await createMtlsAgent({
          files: tlsFilesFor(p.root, config.tls, config.tls.control_plane),
          expect: ['ledger'],
          now: clock,
        });
  if (witnessed !== undefined && ledgerAgent === undefined)
    throw new TypeError(
      'checkpoints needs tls.control_plane: the certificate presented to the ledger process',
    );
  const checkpointSigner =
    witnessed === undefined || ledgerAgent === undefined
      ? noteSignerFor(config.origin, readSigningKey(p.ledgerKey).privateKey)
      : createLedgerWitness(
          {
            url: witnessed.url,
            ...(witnessed.standby_urls === undefined ? {} : { standby: witnessed.standby_urls }),
            agent: ledgerAgent,
            timeoutMs: witnessed.timeout_ms,
          },
          witnessed.vkey,
        );
  // A remote Execution Layer is reached over mutual TLS only; its files are checked before anything opens.
  const gateTls = config.executor_url === undefined ? undefined : config.tls?.gate;
  const executorAgent =
    gateTls === undefined || config.tls === undefined
      ? undefined
      : await createMtlsAgent({ files: tlsFilesFor(p.root, config.tls, gateTls), expect: ['executor'] });
  if (options.standby === true && spec.kind === 'postgres')
    throw new TypeError('every gate on PostgreSQL serves at once: a standby applies to SQLite only');
  // A standby waits for the data directory's writer lock: it serves once its holder is gone.
  // A missing ledger.db is refused before the backend creates one (ledger-binding.ts).
  if (spec.kind === 'sqlite' && options.initialising !== true) checkLocalLedgerFile(p.root, p.ledgerDb);
  const unlock =
    options.standby === true
      ? await waitForDataDir(p.root, options.signal === undefined ? {} : { signal: options.signal })
      : lockDataDir(p.root);
  let ledger: Ledger;
  let backend: StorageBackend;
  try {
    backend = await openBackend(spec, p, config, clock, options.decorate, options.observer);
  } catch (err) {
    unlock();
    throw err;
  }
  let lease: WriterLease;
  let checkpointMemory: CheckpointMemory | undefined;
  /** The binding the open checked the store against (`write`: a new one, recorded once the open succeeded). */
  let bindingAtOpen: { readonly binding: LedgerBinding; readonly write: boolean } | undefined;
  let ledgerActive: string | null;
  let ledgerAdmin: LedgerAdminState;
  let ledgerAdminReadAt: number;
  try {
    // The lease first: the writer reads the head it continues only once no one else can append.
    lease = await backend.acquireWriter({
      wait: options.standby ?? false,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    // The ledger these keys sign, before anything is read as its head, signed or appended: the
    // same keys over another store would fork the evidence (ledger-binding.ts).
    const storeName = redactedBackend(spec);
    const found = await checkLedgerBinding(p.root, backend.ledger, storeName, options.initialising === true);
    const binding = 'bound' in found ? found.bound : undefined;
    checkpointMemory = createCheckpointMemory(join(p.root, LEDGER_BINDING_FILE), (err) =>
      process.stderr.write(
        `failclosed: the latest checkpoint could not be recorded in ${LEDGER_BINDING_FILE} (${err instanceof Error ? err.message : 'write failed'}); the next start checks the one before\n`,
      ),
    );
    const memory = checkpointMemory;
    /** The store's latest checkpoint, as createLedger verified it under this key (or vkey) and origin. */
    let verifiedAtOpen: StoredCheckpoint | undefined;
    let opening = true;
    ledger = await createLedger({
      store: backend.ledger,
      clock,
      checkpointSigner,
      origin: config.origin,
      checkpointEvery: { entries: 256, ms: 10_000 },
      ...(options.observer === undefined ? {} : { observer: options.observer }),
      onCheckpoint: (cp) => {
        if (opening) verifiedAtOpen = cp;
        memory.remember(cp);
      },
    });
    opening = false;
    // Not behind (nor beside) a checkpoint this directory signed, before anything is signed or appended.
    checkSignedCheckpoint(p.root, binding, ledger, storeName);
    // A directory without the file, over a store with entries: the store must prove it is this
    // directory's ledger now; the file is written once the whole open succeeded (below). `init`
    // over a store with entries is refused by init itself: its fresh keys are no one's ledger.
    if ('unbound' in found && found.unbound !== undefined && options.initialising !== true) {
      const proof = verifiedAtOpen !== undefined ? 'checkpoint' : spec.kind === 'sqlite' ? 'local' : 'none';
      bindingAtOpen = { binding: proveOpenedLedger(p.root, found.unbound, proof, storeName), write: true };
    } else if (binding !== undefined) bindingAtOpen = { binding, write: false };
    ledgerAdminReadAt = clock();
    ledgerAdmin = await readLedgerAdminState(backend.ledger);
    ledgerActive = ledgerAdmin.activeBundle;
  } catch (err) {
    await backend.close();
    unlock();
    throw err;
  }
  // Bundles held by the backend (PostgreSQL): `bundles/` is its local cache, brought in line
  // under the lease, before the bundle store reads it (see bundle-sync.ts).
  const mirror =
    backend.bundles === undefined ? undefined : (decorate.bundleMirror?.(backend.bundles) ?? backend.bundles);
  if (mirror !== undefined) {
    try {
      await syncBundlesFromBackend(p.bundles, mirror, ledgerActive);
    } catch (err) {
      await ledger.close();
      await backend.close();
      unlock();
      throw err;
    }
  }
  const fence = createFence();
  // A lost lease (another writer took over, or the database stopped vouching for this one):
  // nothing more is written or run here; the ledger store refuses stale appends by itself too.
  void lease.lost.then(() => {
    fence.raise();
    options.onWriterLost?.();
  });
  const ledgerPort: Core['ledgerPort'] = fencedLedgerPort(decorate.ledgerPort?.(ledger) ?? ledger, fence);
  const state = backend.gateState;
  const governance = backend.governance;
  // Bundles naming a builtin this Execution Layer lacks never load (OE-INV-005).
  // Cedar off the event loop, where the build ships its worker (docs/policy.md "Where Cedar runs").
  const cedarThread =
    typeof options.cedarThread === 'object' && options.cedarThread !== null
      ? options.cedarThread
      : options.cedarThread === true && cedarThreadAvailable()
        ? createCedarThread()
        : undefined;
  const compileBundle = createBundleCompiler(
    { builtins: Object.keys(createDefaultBuiltins()) },
    cedarThread === undefined ? {} : { cedarThread },
  );
  const localBundles = createBundleStore({
    dir: p.bundles,
    compile: (bytes, hash) => {
      const runtime = compileBundle(bytes, hash);
      return decorate.policyRuntime?.(runtime) ?? runtime;
    },
    ledger: ledgerPort,
    now: clock,
    ledgerTimeoutMs: 2000,
  });
  // The guard still holds with a backend: a lost backend pointer write, or a crash between the
  // ledgered activation and the pointer, leaves a bundle the ledger replaced; it is withheld.
  // With the backend holding the bundles, the follower keeps that guard current (replica-follow.ts).
  const follower =
    mirror === undefined
      ? undefined
      : createReplicaFollower({
          dir: p.bundles,
          mirror,
          ledger: backend.ledger,
          admin: ledgerAdmin,
          adminReadAt: ledgerAdminReadAt,
          issuerKeys: () => ({
            currentKid: controlPlane.issuerKid(),
            revoked: revokedKids(controlPlane.issuerJwks()),
          }),
          clock,
          followMs: config.follow_ms ?? DEFAULT_FOLLOW_MS,
          notice: options.onReplicaNotice ?? ((m) => void process.stderr.write(`failclosed: ${m}\n`)),
        });
  // Every activation first records the inventory of the bundle it activates (docs/inventory.md).
  const inventory = createInventoryRecorder(ledgerPort, ledger.store);
  const bundles = recordingInventory(
    mirror === undefined || follower === undefined
      ? withholdStaleBundle(localBundles, ledgerActive)
      : follower.guard(mirroredBundleStore(localBundles, mirror, p.bundles)),
    inventory,
    config,
  );
  const notifications = openNotifications(dir, config.webhooks, clock);
  const approvals = openApprovals(dir, {
    ledgerPort,
    clock,
    state,
    store: backend.approvals,
    ...(notifications === undefined
      ? {}
      : { notify: (n: ApprovalNotice) => notifications.notifier.notify(n) }),
    // An approver invited with `--oidc-subject` is heard only through the console's key+oidc
    // session, on every path (docs/console.md "OIDC sign-in"); a failing read fails the step.
    bindingOf: async (name) => {
      const p = await backend.console.person(name);
      return p?.oidc_issuer == null || p.oidc_subject == null
        ? undefined
        : { issuer: p.oidc_issuer, subject: p.oidc_subject };
    },
    boundPerson: async (issuer, subject) => (await backend.console.personBoundTo(issuer, subject))?.name,
  });
  const consoleState = openConsole({
    store: backend.console,
    approvals: approvals.service,
    ledgerPort,
    state,
    clock,
    ...(config.console?.oidc === undefined ? {} : { oidc: config.console.oidc }),
  });
  const issuerKey = readSigningKey(p.issuerKey);
  const schedules =
    backend.schedules === undefined
      ? undefined
      : (decorate.scheduleStore?.(backend.schedules) ?? backend.schedules);
  // A scheduled run's schedule must still stand: its creation confirmed, not paused or removed.
  const scheduleStanding =
    schedules === undefined
      ? undefined
      : createScheduleStanding({
          store: schedules,
          clients: state,
          entriesOf: (id) => ledger.store.readByRequest(id),
          ms: 5_000,
        });
  const controlPlane = createControlPlane({
    ledger: ledgerPort,
    now: clock,
    issuer: {
      key: issuerKey,
      iss: config.issuer,
      audience: config.audience,
      envelopeTtlSec: config.envelope_ttl_sec,
      // Earlier and revoked issuer keys survive restarts: a revoked key is never trusted again.
      ...(existsSync(p.issuerJwks)
        ? { retired: parseJson(readFileSync(p.issuerJwks), { maxBytes: 1 << 20 }) }
        : {}),
    },
    bundles,
    state: governance,
    breakerStore: backend.breakers,
    derivationKey: Buffer.from(readFileSync(p.derivationKey, 'utf8').trim(), 'hex'),
    approvals: approvals.service,
    ...(scheduleStanding === undefined ? {} : { scheduleStanding }),
    ...(options.deadlines?.controlPlane === undefined ? {} : { deadlines: options.deadlines.controlPlane }),
    ...(options.breakers === undefined ? {} : { breakers: options.breakers }),
    ...(options.observer === undefined ? {} : { observer: options.observer }),
  });
  // Secrets by reference only: FC_SECRET_<NAME> variables and <data>/secrets.json, resolved in
  // the Execution Layer; their values and the secret patterns are redacted from every result and
  // refused in parameters at the Gate (OE-INV-009/010, scenario 16).
  const secretsFile = join(p.root, 'secrets.json');
  const secrets = createEnvSecretResolver({
    env: process.env,
    ...(existsSync(secretsFile) ? { file: secretsFile } : {}),
  });
  // Upstream access tokens the Execution Layer obtains are redacted like secrets.
  const tokens = createUpstreamTokenCache();
  const knownValues = (): string[] => [...secrets.knownValues(), ...tokens.knownValues()];
  const redactor = createRedactor({ secrets: knownValues });
  const valuesOnly = createRedactor({ secrets: knownValues, patterns: [] });
  const nonces: NonceStore = decorate.nonceStore?.(backend.nonces) ?? backend.nonces;
  const sandbox = createBwrapSandbox();
  // Past a stop's grace period the Execution Layer runs nothing (see fence.ts).
  const unfencedExecutor = createExecutor({
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    audience: config.audience,
    // Public keys only: the Execution Layer never sees the issuer's private key (SPEC §1, GEI).
    keys: followIssuerKeys(() => controlPlane.issuerJwks()),
    now: clock,
    clockToleranceSec: config.clock_tolerance_sec,
    maxLifetimeSec: config.max_envelope_lifetime_sec,
    isKnownPolicyBundle: (hash) => !isDeny(bundles.get(hash)),
    ledger: ledgerPort,
    nonces,
    resolveTool: (hash, name) => {
      const runtime = bundles.get(hash);
      if (isDeny(runtime)) return undefined;
      return runtime.getTool(name)?.adapter;
    },
    adapters: executionAdapters({
      clock,
      sandbox,
      tokens,
      allowLoopbackMcpUpstreams: options.allowLoopbackMcpUpstreams === true,
      ...(options.onToolRun === undefined ? {} : { onToolRun: options.onToolRun }),
    }),
    redactor,
    secrets,
    timeouts: {
      ledgerMs: options.deadlines?.executor?.ledgerMs ?? 2000,
      nonceMs: options.deadlines?.executor?.nonceMs ?? 1000,
    },
  });
  const executor = fencedExecutor(follower?.guardExecutor(unfencedExecutor) ?? unfencedExecutor, fence);
  const probes = [
    ...backend.probes,
    createDiskSpaceProbe(p.root, (config.min_free_disk_mb ?? DEFAULT_MIN_FREE_DISK_MB) * 1024 * 1024),
  ];
  // In-process, the executor joins the Gate's shared commit; across the network it writes its own.
  const directPort: GateExecutor =
    executorAgent === undefined || config.executor_url === undefined
      ? {
          // The Gate's deadline: past it the call was answered deny, and the tool is not started
          // (or is ended) as it would be by a separate Execution Layer whose connection closed.
          execute: (call, writes, signal, relay) => executor.execute(call, writes, relay, signal),
          void: (input) => executor.void(input),
        }
      : createRemoteExecutor({
          url: config.executor_url,
          agent: executorAgent,
          // Below the Gate's execute deadline, which also cancels the request.
          timeoutMs: Math.max(1, Math.floor(((options.deadlines?.gate?.executionMs ?? 30_000) * 5) / 6)),
          ...(options.executionAnswerBytes === undefined
            ? {}
            : { maxAnswerBytes: options.executionAnswerBytes }),
        });
  const gateExecutorPort = decorate.gateExecutor?.(directPort) ?? directPort;
  const controlPlanePort: GateControlPlane = {
    decide: (req, decideOptions) => controlPlane.decide(req, decideOptions),
    ready: () => controlPlane.ready(),
    issuerJwks: () => controlPlane.issuerJwks(),
    isRetry: (r) => controlPlane.isRetry(r),
    callableTools: (principal) =>
      Promise.resolve(toolListingsFor(controlPlane.activeBundle()?.bundle, principal)),
    mcpEntries: () => Promise.resolve(mcpEntriesOf(controlPlane.activeBundle()?.bundle)),
  };
  // The data directory's `operator.token` is the bootstrap operator, of every tenant (OE-INV-025):
  // recorded in the registry the first time a gate opens this storage (an upgrade in place), and
  // from then on the registry is the truth: a bootstrap token rotated through any replica replaces it.
  await backend.operators.add({
    name: BOOTSTRAP_OPERATOR,
    tenants: '*',
    token_sha256: operatorTokenSha256(dir),
    created_at: clock(),
  });
  // Schedules (docs/schedules.md): an allowed `schedule.create` becomes a schedule in place of a
  // tool run; each due slot is submitted back through the Gate as a background call.
  const scheduler =
    schedules === undefined
      ? undefined
      : createScheduler({
          store: schedules,
          ledger: ledgerPort,
          clients: decorate.scheduleClients?.(state) ?? state,
          clock,
          recorded: (id) => ledger.store.readByRequest(id),
        });
  const scheduledPort = scheduler?.executor(gateExecutorPort) ?? withoutSchedules(gateExecutorPort);
  // Whoever rotates or revokes an issuer key through this process (operator actions, the console,
  // an embedding program) gets its answer once this gate's follower agrees with the ledger.
  const followedControlPlane = keyChangesFollowed(controlPlane, follower);
  // The operator actions: behind operator tokens at the Gate, and the console's operator pages.
  const operatorActions = withConsoleActions(
    createOperatorActions({
      clock,
      ledger,
      ledgerPort,
      state,
      controlPlane: followedControlPlane,
      bundles,
      approvals: approvals.service,
      inventory: () => currentInventory(inventory, bundles, config),
      executor: {
        audience: config.audience,
        clockToleranceSec: config.clock_tolerance_sec,
        maxLifetimeSec: config.max_envelope_lifetime_sec,
      },
      issuerKeys: issuerKeyFiles(p.issuerKey, p.issuerJwks),
      openReader: () => backend.openLedgerReader(),
      operators: backend.operators,
      ...(config.console?.oidc === undefined ? {} : { oidcIssuer: config.console.oidc.issuer }),
    }),
    consoleState.service,
    {
      guard: createScopeGuard({ clock, ledgerPort }),
      invitedTenants: async (name) => {
        const t = (await consoleState.store.person(name))?.tenants;
        return t === undefined || t === '*' ? t : [...t];
      },
    },
  );
  const operator = withScheduleActions(operatorActions, scheduler);
  const gateControlPlane = decorate.controlPlane?.(controlPlanePort) ?? controlPlanePort;
  // Background calls (docs/jobs.md): the queue runs jobs through the same Execution Layer port.
  const jobs = openJobs(config.jobs, gateExecutorPort);
  const gate = createGate({
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    jobs: jobs.queue,
    clock,
    clients: state,
    replay: state,
    ledger: gateLedgerOver(ledger, ledgerPort),
    controlPlane: gateControlPlane,
    executor: scheduledPort,
    secretScanner: (params) => {
      const text = canonicalize(params);
      return redactor.redactText(text) !== text;
    },
    timestampToleranceMs: config.timestamp_tolerance_ms,
    ...(config.max_inflight === undefined ? {} : { maxInflight: config.max_inflight }),
    ...(options.deadlines?.gate === undefined ? {} : { timeouts: options.deadlines.gate }),
    operatorTokenSha256: operatorTokenSha256(dir),
    operators: backend.operators,
    operator,
    approvals: approvals.api,
    trustRoots: () =>
      buildTrustRoots({
        ledger,
        issuerJwks: () => controlPlane.issuerJwks(),
        approverJwks: () => approvals.service.approverJwks(),
      }),
    // Probes of the real dependencies, never fault flags (STYLE "Readiness asks the real dependency").
    readiness: [
      ...probes,
      {
        name: 'policy',
        // With the Cedar thread, it must answer too (a thread that failed is started again).
        check: async () =>
          !isDeny(bundles.active()) &&
          (cedarThread === undefined ||
            (await cedarThread.ready().then(
              () => true,
              () => false,
            ))),
      },
      // Only where a tool can run in this process: with a separate Execution Layer
      // (`executor_url`) and no execution listener of its own (`tls.executor`), calls go to it,
      // no queue worker runs here (see below), and the sandbox is that layer's readiness, not
      // this process's. So the Control Plane process of the separated shape needs none of the
      // sandbox's relaxations of its container or unit to be ready (docs/deployment.md).
      ...(runsToolsLocally(config)
        ? [{ name: 'sandbox', check: async () => (await sandbox.probe()).outcome === 'ok' }]
        : []),
      // Its queue workers take jobs only while bound to this backend's nonce store: refused, or
      // unable to read the binding from a broker that answers, is not ready (a broker that is
      // down is the queue's matter: background calls are then refused, synchronous ones served).
      ...(runsQueueWorkers(config)
        ? [{ name: 'queue_workers', check: () => Promise.resolve(workers?.stalled() !== true) }]
        : []),
    ],
  });
  let sweepTimer: NodeJS.Timeout | undefined;
  let lostTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<RecoveryReport> | undefined;
  let workers: NatsWorkers | undefined;
  let nonceStore: string | undefined;
  const close = async (): Promise<void> => {
    try {
      await closeRoles();
    } finally {
      // Whatever failed before: a thread holding a call must not keep the process alive.
      await cedarThread?.close();
    }
  };
  const closeRoles = async (): Promise<void> => {
    await scheduler?.stop();
    await workers?.close();
    await jobs.queue.close();
    clearInterval(sweepTimer);
    clearInterval(lostTimer);
    await sweeping?.catch(() => undefined);
    await follower?.stop();
    await notifications?.close();
    await ledger.close();
    checkpointMemory?.close();
    await checkpointMemory?.settled();
    await backend.close();
    executorAgent?.close();
    ledgerAgent?.close();
    unlock();
  };
  let recovery: RecoveryDeps;
  let recovered: RecoveryReport;
  /** This instance's open requests (shared storage: its own; an unowned one is a sweep's, under its lock). */
  const ownOpenRequests = async () => {
    const self = backend.instance();
    return (await recovery.openRequests()).filter((r) =>
      backend.shared ? r.owner === self : r.owner === undefined || r.owner === self,
    );
  };
  let losing: Promise<RecoveryReport> | undefined;
  const sweepLostJobs = (): Promise<RecoveryReport> =>
    (losing ??= recordAbandonedRequests({ ...recovery, openRequests: ownOpenRequests }, 'lost').finally(
      () => (losing = undefined),
    ));
  /** Abandons the open requests the backend lets this instance claim (gone instances' requests). */
  const sweepOrphans = (): Promise<RecoveryReport> =>
    (sweeping ??= (async () => {
      try {
        const claim = await backend.claimOrphanedRequests();
        try {
          return await recordAbandonedRequests(
            { ...recovery, openRequests: () => Promise.resolve(claim.requests) },
            'restart',
          );
        } finally {
          await claim.release();
        }
      } finally {
        sweeping = undefined;
      }
    })());
  try {
    // Before anything serves: the issuer keys here are the ones the ledger says are current.
    assertIssuerKeysAgree(ledgerAdmin, {
      currentKid: issuerKey.kid,
      revoked: revokedKids(controlPlane.issuerJwks()),
    });
    recovery = {
      ...recoveryDeps(ledger, backend.nonces, {
        // With a separate Execution Layer its nonce store is elsewhere: a void here cannot say "never ran".
        voidIsAuthoritative: config.executor_url === undefined,
        now: clock,
        toleranceSec: config.clock_tolerance_sec,
      }),
      mayStillIssue: keylessMayStillIssue(
        backend.decisionClaims,
        clock,
        config.timestamp_tolerance_ms,
        async (accepted) => {
          const sha = accepted.payload['request_sha256'];
          const blob = typeof sha === 'string' ? await ledger.store.getEvidence(sha) : undefined;
          const parsed = blob === undefined ? undefined : parseSignedRequest(blob.body);
          return parsed === undefined || isDeny(parsed) ? undefined : parsed.timestampMs;
        },
      ),
    };
    // Before anything serves: every request a crash or stop left open gets its outcome (FC-INV-5).
    recovered = await sweepOrphans();
    // Before anything serves: the interfaces that can execute are in the ledger (FC-INV-6). A
    // fresh storage records it with its first activation (init), which nothing can run before.
    if (ledger.size() > 0)
      await recordStartInventory(inventory, bundles, config, { id: config.issuer, role: 'gate' });
    else await inventory.load();
    // The open succeeded: a directory that had no binding is bound to this ledger now, and the
    // checkpoints seen so far are remembered from here on (ledger-binding.ts).
    if (bindingAtOpen?.write === true) await writeLedgerBinding(p.root, bindingAtOpen.binding);
    if (bindingAtOpen !== undefined) checkpointMemory?.bound(bindingAtOpen.binding);
    // The Cedar thread up, its bundles pre-parsed, before any call's policy deadline runs.
    if (cedarThread !== undefined) {
      const up = await withDeadline(() => cedarThread.ready(), CEDAR_THREAD_START_MS);
      if (up.status !== 'ok')
        throw new Error(
          `the Cedar thread did not start (${up.status === 'timeout' ? 'timed out' : 'failed'})`,
        );
    }
    // The nonce store this process's queue workers bind their stream to (docs/jobs.md).
    if (runsQueueWorkers(config)) nonceStore = await backend.nonceStoreIdentity();
  } catch (err) {
    await close();
    throw err;
  }
  const sweepMs = options.orphanSweepMs ?? 5000;
  if (backend.shared && sweepMs > 0) {
    // Another replica may go at any time: its requests are recorded abandoned by a live one.
    sweepTimer = setInterval(() => {
      if (!fence.raised) sweepOrphans().catch(() => undefined);
    }, sweepMs);
    sweepTimer.unref();
  }
  if (config.jobs?.queue === 'nats' && sweepMs > 0) {
    // A job its broker lost, or no worker took, is recorded never run once its envelope expired.
    lostTimer = setInterval(() => {
      if (!fence.raised) sweepLostJobs().catch(() => undefined);
    }, sweepMs);
    lostTimer.unref();
  }
  follower?.start();
  await jobs.queue.start((d) => gate.finishJob(d));
  // In-process queue workers over this process's own Execution Layer, when `jobs.workers` asks.
  // Bound to this backend's nonce store: workers of one stream must share one (docs/jobs.md).
  if (nonceStore !== undefined)
    workers = jobs.startWorkers((input) => executor.execute(input), {
      nonceStore,
      onRefused: (err) => process.stderr.write(`failclosed: ${err.message}\n`),
      onBindError: (err) =>
        process.stderr.write(
          `failclosed: queue workers: the nonce store binding could not be read (${err.message})\n`,
        ),
    });
  scheduler?.attach(gate);
  const tickMs = options.scheduleTickMs ?? 1000;
  if (tickMs > 0) scheduler?.start(tickMs);
  return {
    dir: p.root,
    config,
    clock,
    ledger,
    ledgerPort,
    state,
    governance,
    backend,
    storage: redactedBackend(spec),
    bundles,
    ...(follower === undefined ? {} : { follower }),
    controlPlane: followedControlPlane,
    controlPlanePort: gateControlPlane,
    executorPort: gateExecutorPort,
    secretValueIn: (text) => valuesOnly.redactText(text) !== text,
    executor,
    nonces,
    sandbox,
    gate,
    operator,
    approvals,
    console: consoleState,
    ...(notifications === undefined ? {} : { notifications }),
    recovered,
    inventory,
    stopWorkers: async () => {
      await workers?.close();
    },
    async abandonInFlight() {
      fence.raise();
      clearInterval(sweepTimer);
      clearInterval(lostTimer);
      await sweeping?.catch(() => undefined);
      await losing?.catch(() => undefined);
      await ledger.settled();
      // Only this instance's requests: on shared storage the others' are still being served.
      return recordAbandonedRequests({ ...recovery, openRequests: ownOpenRequests }, 'stop');
    },
    sweepOrphans,
    sweepLostJobs,
    jobs: jobs.queue,
    ...(scheduler === undefined ? {} : { scheduler }),
    ...(executorAgent === undefined ? {} : { executorAgent }),
    close,
  };
}

/**
 * The issuer's key files: a rotation stages the new private key beside the current one, and only
 * once the ledger confirmed the rotation is it renamed into place (atomic on one file system);
 * the published JWKS (public keys and revocations) is rewritten after every change.
 */
function issuerKeyFiles(keyPath: string, jwksPath: string): IssuerKeyFiles {
  const staged = `${keyPath}.next`;
  return {
    stage: (key) => writeSecret(staged, `${JSON.stringify(exportSigningKeyJwk(key))}\n`),
    commit(rotated, jwks) {
      writeSecret(`${jwksPath}.next`, `${JSON.stringify(jwks)}\n`);
      renameSync(`${jwksPath}.next`, jwksPath);
      if (rotated) renameSync(staged, keyPath);
    },
    discard: () => rmSync(staged, { force: true }),
  };
}

/** The `revoked` kids of a published issuer JWKS (`{keys, revoked}`); none when it has no such list. */
function revokedKids(jwks: unknown): readonly string[] {
  const revoked = (jwks as { readonly revoked?: unknown } | null)?.revoked;
  return Array.isArray(revoked) ? revoked.filter((k): k is string => typeof k === 'string') : [];
}

/**
 * `cp` as operator actions use it: with a follower, an issuer key rotation or revocation made
 * here is read by a follow round before it is answered, so this gate's follower agrees with the
 * ledger at once instead of refusing calls until its next round.
 */
function keyChangesFollowed(
  cp: ControlPlaneService,
  follower: ReplicaFollower | undefined,
): ControlPlaneService {
  if (follower === undefined) return cp;
  return Object.freeze({
    ...cp,
    async rotateIssuerKey(...args: Parameters<ControlPlaneService['rotateIssuerKey']>) {
      const r = await cp.rotateIssuerKey(...args);
      await follower.round();
      return r;
    },
    async revokeIssuerKey(...args: Parameters<ControlPlaneService['revokeIssuerKey']>) {
      const r = await cp.revokeIssuerKey(...args);
      await follower.round();
      return r;
    },
  });
}

/**
 * Whether a Control Plane process may still issue an envelope for a keyless Gate's open request
 * (owner `gate/…`) that has none yet (see `RecoveryDeps.mayStillIssue`). A decision begins only
 * for a claimed request (`decision_claims`, one per request across processes): with no decision
 * recorded, the sweep claims the request itself, and once it holds the claim nothing can be
 * decided for it. A request already claimed, or decided and not denied (an allow whose issuance
 * is under way, an escalation that a long-poll may still approve), is left open until no decide
 * can still be running for it. A Control Plane process starts a decide only while the request's
 * signed timestamp `t` (read by `signedAt` from its evidence) is within its tolerance of its
 * clock, and a decide waits at most 60 s for approvals: so until `t` + the tolerance + 90 s, with
 * 30 s more for clocks apart between processes. Without the timestamp (its evidence not
 * readable now) the bound is taken from the acceptance: `t` is then at most the acceptance time
 * plus a Gate's tolerance, taken as twice the Control Plane's.
 */
export function keylessMayStillIssue(
  claims: Pick<DecisionClaimStore, 'claim'>,
  clock: () => number,
  toleranceMs: number,
  signedAt: (accepted: LedgerEntry) => Promise<number | undefined>,
): NonNullable<RecoveryDeps['mayStillIssue']> {
  return async (open, accepted, decision) => {
    if (open.owner?.startsWith(GATE_INSTANCE_PREFIX) !== true) return false;
    if (decision !== undefined && decision.payload['outcome'] === 'deny') return false;
    if (decision === undefined) {
      const key = { tenant: accepted.tenant, identity: accepted.actor.id, request_id: open.request_id };
      // A claim store that cannot answer leaves the request open for a later pass, as a taken
      // claim does: never "never ran" on a doubt, and no start refused for it.
      const claimed = await claims.claim(key, `sweep:${open.owner}`, clock()).catch(() => false);
      if (claimed) return false;
    }
    const t = await signedAt(accepted).catch(() => undefined);
    const latestStart =
      t !== undefined && Number.isFinite(t) ? t + toleranceMs : Date.parse(accepted.at) + 3 * toleranceMs;
    return clock() <= latestStart + KEYLESS_DECIDE_MS + CLOCKS_APART_MS;
  };
}

/** How far apart the clocks of two processes are allowed for (the sweep's and a decide's). */
const CLOCKS_APART_MS = 30_000;

/** The longest a decide for a keyless Gate can run: its approval wait (60 s) and its deadlines. */
const KEYLESS_DECIDE_MS = 90_000;
