/**
 * `initDataDir` and `startEmbedded`: the one-command deployment (SPEC §1 "Embedded"). All four
 * roles in one process, listening on loopback: the Gate for clients and operators, and the
 * Execution Layer's own endpoint (reachable only to show that a direct call is denied).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundleFromDir } from '../policy/index.js';
import type { CedarThread } from '../policy/index.js';
import { guardObserver, isDeny } from '../kernel/index.js';
import type { Clock } from '../kernel/index.js';
import { importSigningKeyJwk } from '../kernel/signing/index.js';
import { createGateServer, createMcpAuthenticator, createMcpEndpoint } from '../gate/index.js';
import type { McpAuthenticator, RequestReplayStore } from '../gate/index.js';
import type { McpEndpoint } from '../gate/index.js';
import { resolveMcpSettings } from './mcp-config.js';
import { gateLedgerOver, openCore, runsToolsLocally } from './core.js';
import { consoleEndpointFor, operatorConsoleFor } from './console.js';
import type { Core, CoreOptions } from './core.js';
import {
  DEMO_CLIENT,
  demoPolicyDir,
  readClientFile,
  readOperatorToken,
  writeFreshDataDir,
  dataPaths,
  readConfig,
} from './data-dir.js';
import type { EmbeddedConfig } from './data-dir.js';
import { createExecutionServer } from './execution-server.js';
import { createTelemetry, resolveTelemetrySettings, serveMetrics } from './telemetry/index.js';
import type { LogLevel, MetricsServer, Telemetry } from './telemetry/index.js';
import type { ExecutionTls } from './execution-server.js';
import { createRefusalRecorder } from '../transport/index.js';
import type { MtlsServer } from '../transport/index.js';
import { createInternalServer } from './internal-server.js';
import { tlsFilesFor } from './tls-config.js';
import { bindLedger } from './ledger-binding.js';

/** What {@link initDataDir} did. */
export interface InitResult {
  readonly dir: string;
  /** False when the directory was already initialised (nothing was changed). */
  readonly created: boolean;
}

/**
 * Initialises a data directory once: keys (issuer, ledger checkpoint, derivation), operator
 * token, `failclosed.json`, the demo policy bundle built from `examples/demo-policy/` and
 * activated (ledgered `admin.policy_activated`), and the demo client `demo-agent` in tenant
 * `acme` (ledgered `admin.client_registered`, private key saved 0600). Idempotent.
 */
export async function initDataDir(
  dir: string,
  options: {
    clock?: Clock;
    policyDir?: string;
    /** Storage backend recorded in `failclosed.json` (`sqlite` or a `postgres://` URL). */
    backend?: string;
  } = {},
): Promise<InitResult> {
  const root = dataPaths(dir).root;
  const existed = existsSync(root) ? new Set(readdirSync(root)) : null;
  if (!writeFreshDataDir(dir, options.backend === undefined ? {} : { backend: options.backend }))
    return { dir: root, created: false };
  // Everything this init made, so that a refused init leaves the directory as it found it.
  const undo = (): void => {
    if (existed === null) rmSync(root, { recursive: true, force: true });
    else
      for (const name of readdirSync(root))
        if (!existed.has(name)) rmSync(join(root, name), { recursive: true, force: true });
  };
  let core: Core;
  try {
    // The store it records, whatever FAILCLOSED_BACKEND says: the demo policy and client go where
    // the data directory says its ledger is.
    core = await openCore(dir, {
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      initialising: true,
    });
  } catch (err) {
    undo();
    throw err;
  }
  // Fresh keys over a ledger someone else writes would fork its evidence (another checkpoint key)
  // and activate the demo policy over theirs: a second gate starts from a copy of the first's
  // data directory instead (docs/storage.md).
  if (core.ledger.size() > 0) {
    await core.close();
    undo();
    throw new Error(
      `the storage (${core.backend.name}) already holds a ledger: start another gate from a copy of its data directory instead of init`,
    );
  }
  try {
    const auth = `Bearer ${readOperatorToken(dir)}`;
    const built = await buildBundleFromDir(options.policyDir ?? demoPolicyDir());
    if (isDeny(built)) throw new Error(`demo policy bundle: ${built.code}`);
    const activated = await core.gate.admin(
      'policy-activate',
      { bundle: built.text, reason: 'init: demo policy' },
      auth,
    );
    if (activated.status !== 200)
      throw new Error(`policy activation failed: ${JSON.stringify(activated.body)}`);
    const demo = importSigningKeyJwk(readClientFile(dir, DEMO_CLIENT.identity).key);
    const added = await core.gate.admin(
      'clients-add',
      { name: DEMO_CLIENT.identity, tenant: DEMO_CLIENT.tenant, public_jwk: { ...demo.publicJwk } },
      auth,
    );
    if (added.status !== 201)
      throw new Error(`demo client registration failed: ${JSON.stringify(added.body)}`);
    // Its entries are durable: from now on this directory's keys sign this ledger only.
    await bindLedger(root, core.backend.ledger, core.storage);
  } finally {
    await core.close();
  }
  return { dir: root, created: true };
}

/** Options of {@link startEmbedded}. */
export interface EmbeddedOptions {
  /** Gate port; default from `failclosed.json`; 0 = any free port. */
  readonly port?: number;
  /** Execution Layer port; default from `failclosed.json`. */
  readonly executionPort?: number;
  readonly clock?: Clock;
  /** Sees every tool run just before its adapter starts (tests, demo, benchmarks). */
  readonly onToolRun?: CoreOptions['onToolRun'];
  /** Largest execution answer between the Gate and the Execution Layer (see `CoreOptions`; tests lower it). */
  readonly executionAnswerBytes?: number;
  /** Shorter dependency deadlines (tests: hang faults). */
  readonly deadlines?: CoreOptions['deadlines'];
  /** Circuit breaker limits over the defaults (load tests). */
  readonly breakers?: CoreOptions['breakers'];
  /** Decorators of the roles' ports (tests and the demo inject faults through them). */
  readonly decorate?: CoreOptions['decorate'];
  /** Storage backend over `FAILCLOSED_BACKEND` and `failclosed.json`. */
  readonly backend?: CoreOptions['backend'];
  /** SQLite: wait as a standby while another process holds the data directory's writer lock (default: refuse). */
  readonly standby?: boolean;
  /** Stops a standby's wait. */
  readonly signal?: AbortSignal;
  /** Called once if the writer lease is lost while serving; the roles are fenced by then. */
  readonly onWriterLost?: () => void;
  /** Shared storage: how often gone gates' open requests are swept (see `CoreOptions`). */
  readonly orphanSweepMs?: number;
  /** How often the scheduler looks for due slots (see `CoreOptions`). */
  readonly scheduleTickMs?: number;
  /** HTTP upstream MCP servers at a loopback address: tests and development only (see `CoreOptions`). */
  readonly allowLoopbackMcpUpstreams?: boolean;
  /** Cedar on a thread of its own: the serving commands (see `CoreOptions`). Default false. */
  readonly cedarThread?: boolean | CedarThread;
  /**
   * The deployment's logs, metrics and traces (docs/deployment.md "Observability"). Absent: built
   * from `failclosed.json` (`log`, `metrics`) and the environment (`FAILCLOSED_LOG_LEVEL`,
   * `FAILCLOSED_METRICS_LISTEN`, `OTEL_*`), and closed with the deployment.
   */
  readonly telemetry?: Telemetry;
  /** Log level when neither `FAILCLOSED_LOG_LEVEL` nor `log.level` sets one (default `silent`; `failclosed up`: `info`). */
  readonly defaultLogLevel?: LogLevel;
  /**
   * `control-plane`: the Control Plane process of the separated shape (`failclosed serve
   * control-plane`, docs/deployment.md), holding no key but its own. Refused unless
   * `failclosed.json` has {@link assertControlPlaneConfig}'s settings; its client listener serves
   * operators, approvers, the console and evidence, never a call (`POST /v1/calls` and the MCP
   * endpoint are 404: clients call a Gate); its telemetry names the role `control-plane`.
   */
  readonly role?: 'control-plane';
}

/**
 * What a data directory needs to run as the Control Plane process alone (`serve
 * control-plane`): keyless Gates served on the internal listener (`internal_gates`, so
 * `internal_port` and `tls.control_plane`), the Execution Layer in a process of its own
 * (`executor_url`, no `tls.executor`: no tool runs here), and the checkpoint key in the ledger
 * process (`checkpoints`, which needs PostgreSQL and a data directory without `keys/ledger.jwk`,
 * checked when the ledger opens). Returns what is missing (none: such a data directory).
 */
export function controlPlaneConfigGaps(config: EmbeddedConfig): string[] {
  const missing: string[] = [];
  if (config.internal_gates !== true) missing.push('`internal_gates: true` (with `internal_port`)');
  if (config.executor_url === undefined || config.tls?.executor !== undefined)
    missing.push('`executor_url` naming a separate Execution Layer, without `tls.executor`');
  if (config.checkpoints === undefined)
    missing.push(
      '`checkpoints` naming the ledger process (the checkpoint key moved there: `failclosed ledger move-key`)',
    );
  return missing;
}

/** Throws a usage error naming what {@link controlPlaneConfigGaps} finds missing. */
export function assertControlPlaneConfig(config: EmbeddedConfig): void {
  const missing = controlPlaneConfigGaps(config);
  if (missing.length > 0)
    throw new TypeError(
      `serve control-plane: failclosed.json needs ${missing.join('; ')}; \`failclosed up\` runs every role in one process`,
    );
}

/** A running embedded deployment. */
export interface EmbeddedInstance {
  /** The Gate's base URL. */
  readonly url: string;
  /**
   * The Execution Layer's base URL (`POST /v1/execute`): this process's own listener, or, when
   * `executor_url` names a separate Execution Layer and `tls.executor` is absent, that URL (no
   * execution listener is started here then).
   */
  readonly executionUrl: string;
  /** The internal listener for a separate Execution Layer (`internal_port`), when configured. */
  readonly internalUrl?: string;
  /** The composed roles, for tests and tools. */
  readonly core: Core;
  /** Its logs, metrics and traces. */
  readonly telemetry: Telemetry;
  /** Where `GET /metrics` is served (`http://host:port`), when `metrics.listen` says so. */
  readonly metricsUrl?: string;
  /**
   * Graceful stop (SPEC §5, FC-INV-5): closes both listeners, lets calls in flight finish for up
   * to `graceMs` (default {@link DEFAULT_GRACE_MS}), records `request.abandoned` for any still
   * running then (their clients get `503 ERR_SHUTTING_DOWN`), and closes the stores.
   */
  stop(options?: { readonly graceMs?: number }): Promise<StopReport>;
  /** Immediate stop: connections are cut; calls in flight are recorded as abandoned on the next start. */
  close(): Promise<void>;
  /**
   * Re-reads the mutual-TLS files (certificates, keys, CA, revocations) of the Execution Layer's
   * listener and of the Gate's Agent to a remote Execution Layer, without closing a listener
   * (`failclosed up` does it on SIGHUP). Rejects when one fails; that side then refuses every
   * peer until a reload succeeds.
   */
  reloadTls(): Promise<void>;
}

/** What a graceful stop did. */
export interface StopReport {
  /** True when every call in flight finished within the grace period. */
  readonly drained: boolean;
  /** Calls recorded as abandoned at the end of the grace period. */
  readonly abandoned: number;
  /** Of those, calls whose envelope had been consumed: the tool may have run. */
  readonly mayHaveRun: number;
}

/** Default grace period of a stop: longer than the longest tool run (25 s) plus its ledger writes. */
export const DEFAULT_GRACE_MS = 30_000;

/** The MCP endpoint of the Gate listening at `url` (docs/mcp.md): settings from `failclosed.json` `mcp`. */
function mcpEndpointFor(core: Core, url: string): McpEndpoint {
  const { settings, oauth } = resolveMcpSettings(core.config.mcp, url);
  const claimNonce = core.state.claimNonce?.bind(core.state);
  const spent = tokenClaims(core);
  const authenticate = createMcpAuthenticator({
    resource: settings.resource,
    ...(oauth === undefined ? {} : { oauth }),
    clients: core.state,
    // Serving keyless Gates, a token is also spent where only this process writes (see
    // `tokenClaims`): one a Gate decided a call with is refused here, whatever it did to its own
    // replay memory.
    replay:
      core.config.internal_gates === true && claimNonce !== undefined
        ? {
            claimNonce: async (c) => {
              const own = await claimNonce(c);
              return own === 'fresh' ? await spent.claimNonce(c) : own;
            },
          }
        : core.state,
    clock: core.clock,
    clockToleranceSec: core.config.clock_tolerance_sec,
  });
  return createMcpEndpoint(core.gate, settings, authenticate, (d, sha) => core.gate.refuse(d, sha));
}

/**
 * The authenticator of the bearer tokens keyless Gates forward with MCP calls (docs/mcp.md
 * "Through keyless Gates"): the MCP endpoint's, for `resource` (`mcp.resource`, the one the Gates
 * serve) and the configured issuer, over this process's registry. A client-key token's `jti` is
 * claimed again among the decision claims (`tokenClaims`): the Gate claimed it in its own replay
 * memory as it authenticated the request, and a token may have one call decided here, whichever
 * Gate forwards it.
 */
function gateBearerFor(core: Core, resource: string): McpAuthenticator {
  const { oauth } = resolveMcpSettings(core.config.mcp, resource);
  return createMcpAuthenticator({
    resource,
    ...(oauth === undefined ? {} : { oauth }),
    clients: core.state,
    replay: tokenClaims(core),
    clock: core.clock,
    clockToleranceSec: core.config.clock_tolerance_sec,
    // Within the decision route's own deadline (2 s), so that a registry or an issuer's keys that
    // cannot be had in time give their own code rather than the route's.
    lookupMs: 1500,
    jwksTimeoutMs: 1500,
  });
}

/**
 * The tenant under which client-key tokens' ids are claimed among the decision claims: no tenant
 * can be named so (tenants are `[A-Za-z0-9._:-]`), so no request's claim is ever one of them.
 */
const TOKEN_CLAIMS_TENANT = '#mcp-token';

/**
 * Client-key token ids claimed where only the Control Plane process writes: its decision claims,
 * which no Gate's or Execution Layer's database role can touch (`deploy/postgres/gate-role.sql`),
 * unlike the Gates' replay memory, which a Gate can insert into and delete from. So a token is
 * spent once for every Control Plane process on the store, whichever way it came (forwarded by a
 * Gate, or to this process's own MCP endpoint), whatever a Gate does to its own table.
 */
function tokenClaims(core: Core): { readonly claimNonce: NonNullable<RequestReplayStore['claimNonce']> } {
  const claims = core.backend.decisionClaims;
  return {
    claimNonce: async ({ identity, nonce, atMs }) =>
      (await claims.claim({ tenant: TOKEN_CLAIMS_TENANT, identity, request_id: nonce }, randomUUID(), atMs))
        ? 'fresh'
        : 'replayed',
  };
}

/** Starts all four roles over an initialised data directory, on 127.0.0.1 (or the configured host). */
export async function startEmbedded(dir: string, options: EmbeddedOptions = {}): Promise<EmbeddedInstance> {
  const config = readConfig(dir);
  if (options.role === 'control-plane') assertControlPlaneConfig(config);
  const settings = resolveTelemetrySettings(config, process.env, options.defaultLogLevel ?? 'silent');
  // Built here, closed here; a telemetry passed in belongs to the caller. Serving keyless Gates
  // (`internal_gates`), this process is their Control Plane: its logs and spans say so.
  const role = options.role ?? (config.internal_gates === true ? 'control-plane' : 'embedded');
  const telemetry = options.telemetry ?? (await createTelemetry({ logLevel: settings.logLevel, role }));
  const ownTelemetry = options.telemetry === undefined;
  let core: Core;
  try {
    core = await openCoreWith(dir, options, telemetry);
  } catch (err) {
    if (ownTelemetry) await telemetry.close();
    throw err;
  }
  let metricsServer: MetricsServer | undefined;
  try {
    if (settings.metricsListen !== undefined)
      metricsServer = await serveMetrics(
        telemetry.metrics,
        settings.metricsListen.host,
        settings.metricsListen.port,
      );
  } catch (err) {
    await core.close();
    if (ownTelemetry) await telemetry.close();
    throw err;
  }
  const closeTelemetry = async (): Promise<void> => {
    await metricsServer?.close();
    if (ownTelemetry) await telemetry.close();
  };
  let instance: Omit<EmbeddedInstance, 'telemetry' | 'metricsUrl'>;
  try {
    instance = await listen(core, options);
  } catch (err) {
    await closeTelemetry();
    throw err;
  }
  telemetry.logger.info(
    {
      url: instance.url,
      metrics: metricsServer?.url ?? null,
      storage: core.storage,
      tracing: telemetry.tracing !== undefined,
    },
    options.role === 'control-plane' ? 'control plane listening' : 'gate listening',
  );
  return {
    ...instance,
    telemetry,
    ...(metricsServer === undefined ? {} : { metricsUrl: metricsServer.url }),
    async stop(stopOptions) {
      try {
        return await instance.stop(stopOptions);
      } finally {
        await closeTelemetry();
      }
    },
    async close() {
      try {
        await instance.close();
      } finally {
        await closeTelemetry();
      }
    },
  };
}

/** The roles over `dir`, reporting to `telemetry`. */
function openCoreWith(dir: string, options: EmbeddedOptions, telemetry: Telemetry): Promise<Core> {
  return openCore(dir, {
    // Guarded: telemetry never decides a call's outcome (kernel/observe.ts).
    observer: guardObserver(telemetry.observer),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.onToolRun === undefined ? {} : { onToolRun: options.onToolRun }),
    ...(options.deadlines === undefined ? {} : { deadlines: options.deadlines }),
    ...(options.executionAnswerBytes === undefined
      ? {}
      : { executionAnswerBytes: options.executionAnswerBytes }),
    ...(options.breakers === undefined ? {} : { breakers: options.breakers }),
    ...(options.decorate === undefined ? {} : { decorate: options.decorate }),
    ...(options.backend === undefined ? {} : { backend: options.backend }),
    ...(options.standby === undefined ? {} : { standby: options.standby }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onWriterLost === undefined ? {} : { onWriterLost: options.onWriterLost }),
    ...(options.orphanSweepMs === undefined ? {} : { orphanSweepMs: options.orphanSweepMs }),
    ...(options.scheduleTickMs === undefined ? {} : { scheduleTickMs: options.scheduleTickMs }),
    ...(options.allowLoopbackMcpUpstreams === undefined
      ? {}
      : { allowLoopbackMcpUpstreams: options.allowLoopbackMcpUpstreams }),
    ...(options.cedarThread === undefined ? {} : { cedarThread: options.cedarThread }),
  });
}

/** Starts the Gate's and the Execution Layer's listeners over `core`; closes `core` when they cannot start. */
async function listen(
  core: Core,
  options: EmbeddedOptions,
): Promise<Omit<EmbeddedInstance, 'telemetry' | 'metricsUrl'>> {
  let gateServer;
  let execServer;
  let internalServer;
  try {
    const execTls = executionTls(core);
    const controlPlane = options.role === 'control-plane';
    gateServer = await createGateServer(core.gate, {
      host: core.config.host,
      port: options.port ?? core.config.port,
      // The Control Plane process takes no call: its clients are operators and approvers.
      ...(controlPlane ? { calls: false } : { mcp: (url: string) => mcpEndpointFor(core, url) }),
      console: (url) =>
        consoleEndpointFor(
          {
            console: core.console.service,
            approvals: core.approvals.service,
            approvalApi: core.approvals.api,
            ledger: gateLedgerOver(core.ledger, core.ledgerPort),
            clock: core.clock,
            bundles: core.bundles,
            operator: operatorConsoleFor({
              operator: core.operator,
              operators: core.backend.operators,
              store: core.console.store,
              ...(core.console.oidc === undefined ? {} : { oidc: core.console.oidc }),
              governance: core.governance,
              ledger: gateLedgerOver(core.ledger, core.ledgerPort),
              bundles: core.bundles,
              approvals: core.approvals.service,
              clock: core.clock,
            }),
            ...(core.console.oidc === undefined ? {} : { oidc: core.console.oidc }),
            ledgerPort: core.ledgerPort,
            signInCounters: core.console.store,
            ...(core.config.console?.sign_in_limit === undefined
              ? {}
              : { signInLimits: core.config.console.sign_in_limit }),
          },
          url,
        ),
    });
    internalServer = await startInternal(core);
    // With a separate Execution Layer (`failclosed serve executor`) at `executor_url` and no
    // `tls.executor`: none here. The same test decides whether /readyz probes the sandbox.
    if (runsToolsLocally(core.config))
      execServer = await createExecutionServer(core.executor, {
        ledger: core.ledgerPort,
        audience: core.config.audience,
        // Loopback unless `execution_host` says otherwise, which config parsing allows only with mTLS.
        host: execTls === undefined ? '127.0.0.1' : (core.config.execution_host ?? '127.0.0.1'),
        port: options.executionPort ?? core.config.execution_port,
        ...(execTls === undefined ? {} : { tls: execTls }),
        ...(options.executionAnswerBytes === undefined
          ? {}
          : { maxAnswerBytes: options.executionAnswerBytes }),
      });
  } catch (err) {
    await gateServer?.close();
    await internalServer?.close();
    await core.close();
    throw err;
  }
  const gs = gateServer;
  const es = execServer;
  const is = internalServer;
  const closeListeners = () =>
    Promise.allSettled([gs.close(), es?.close(), is?.close()]).then(() => undefined);
  // Notices link to this Gate's console unless `webhooks.public_url` says otherwise.
  core.notifications?.start(gs.url);
  let closed = false;
  return {
    url: gs.url,
    executionUrl: es?.url ?? core.config.executor_url ?? '',
    ...(is === undefined ? {} : { internalUrl: is.url }),
    core,
    async stop(stopOptions = {}) {
      if (closed) return { drained: true, abandoned: 0, mayHaveRun: 0 };
      closed = true;
      gs.stopAccepting();
      es?.server.close();
      // Queue workers take no new job from now on either: the jobs they have not taken stay in the
      // broker's stream for other workers, instead of being taken here and refused past the fence.
      const workersDone = core.stopWorkers().catch(() => undefined);
      const graceMs = stopOptions.graceMs ?? DEFAULT_GRACE_MS;
      const started = Date.now();
      const drained = await gs.drain(graceMs);
      // Background jobs running in this process finish within what is left of the grace period;
      // the rest, with the jobs not started, are recorded abandoned below (envelopes voided first).
      const left = Math.max(0, graceMs - (Date.now() - started));
      const jobsDone = await settledWithin(
        Promise.all([core.jobs.close({ waitMs: left }), workersDone]),
        left + 1000,
      );
      let report = { abandoned: 0, mayHaveRun: 0 };
      try {
        report = await core.abandonInFlight();
      } finally {
        // The internal listener stays up while calls drain: their receipts go through it.
        await closeListeners();
        await core.close();
      }
      return { drained: drained && jobsDone && report.abandoned === 0, ...report };
    },
    async close() {
      if (closed) return;
      closed = true;
      await closeListeners();
      await core.close();
    },
    async reloadTls() {
      const results = await Promise.allSettled([es?.reload(), is?.reload(), core.executorAgent?.reload()]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    },
  };
}

/**
 * The internal listener for a separate Execution Layer when `internal_port` is configured: the
 * Control Plane's certificate (`tls.control_plane`, never `tls.gate`: config parsing requires it,
 * and the listener refuses to start on one that does not name the `control-plane` role), the
 * `executor` role (and with `internal_gates` the `gate` role) only, refusals recorded as
 * `transport.refused` (FC-INV-6).
 */
async function startInternal(core: Core): Promise<MtlsServer | undefined> {
  const tls = core.config.tls;
  if (core.config.internal_port === undefined) return undefined;
  if (tls?.control_plane === undefined) throw new TypeError('internal_port needs tls.control_plane');
  return createInternalServer({
    host: core.config.internal_host ?? '127.0.0.1',
    port: core.config.internal_port,
    files: tlsFilesFor(core.dir, tls, tls.control_plane),
    now: core.clock,
    onRefused: createRefusalRecorder({
      append: (e) => core.ledgerPort.append(e),
      listener: 'internal',
      actor: { id: core.config.issuer, role: 'control-plane' },
      now: core.clock,
    }),
    issuerJwks: () => core.controlPlane.issuerJwks(),
    bundles: core.bundles,
    bundleDir: dataPaths(core.dir).bundles,
    ledger: core.ledgerPort,
    ...(core.config.internal_gates === true
      ? {
          gates: {
            controlPlane: core.controlPlanePort,
            ledger: gateLedgerOver(core.ledger, core.ledgerPort),
            ledgerPort: core.ledgerPort,
            clients: core.state,
            claims: core.backend.decisionClaims,
            secretValueIn: core.secretValueIn,
            executor: core.executorPort,
            now: core.clock,
            timestampToleranceMs: core.config.timestamp_tolerance_ms,
            // Keyless Gates own their requests where the ledger keeps owners (PostgreSQL).
            gateOwners: core.backend.shared,
            ...(core.config.mcp?.resource === undefined
              ? {}
              : { bearer: gateBearerFor(core, core.config.mcp.resource) }),
          },
        }
      : {}),
  });
}

/**
 * The Execution Layer listener's mutual TLS when `tls.executor` is configured: the `gate` role
 * only, every refusal recorded as `transport.refused` (rate-limited per reason, see
 * `src/transport/refusal-record.ts`).
 */
function executionTls(core: Core): ExecutionTls | undefined {
  const tls = core.config.tls;
  if (tls?.executor === undefined) return undefined;
  return {
    files: tlsFilesFor(core.dir, tls, tls.executor),
    now: core.clock,
    onRefused: createRefusalRecorder({
      append: (e) => core.ledgerPort.append(e),
      listener: 'execution',
      actor: { id: core.config.audience, role: 'executor' },
      now: core.clock,
    }),
  };
}

/** True when `p` settled within `ms`. */
function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    late,
  ]).finally(() => clearTimeout(timer));
}
