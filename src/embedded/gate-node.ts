/**
 * The Gate as its own process: `failclosed serve gate --config FILE` (docs/deployment.md
 * "Separate Gate"; SPEC §1 separation of powers, FC-INV-6, L7 mutual TLS between roles).
 *
 * It holds **no key at all**: no issuer key, no ledger checkpoint key, no derivation key, no
 * operator token. It is the one role clients reach: it authenticates signed calls (the client
 * registry and the request nonces are the shared PostgreSQL state every Gate uses, so a request
 * id or nonce is single-use across all of them, FC-INV-3), then, over mutual TLS with its `gate`
 * certificate:
 * - asks the Control Plane process (`failclosed serve control-plane`, or `failclosed up` with
 *   `internal_port` and `internal_gates`), accepted only by its `control-plane` certificate and
 *   the host it names, for the decision,
 *   which checks the client's signature again against its own registry and signs the envelope
 *   (`gate-routes.ts`), and writes its evidence and records through that process's one ledger
 *   writer (`control-plane-link.ts`);
 * - hands the envelope to an Execution Layer (`failclosed serve executor`), expecting its
 *   `executor` certificate (`remote-executor.ts`).
 * Several such Gates scale horizontally behind one load balancer. With `mcp` it serves the MCP
 * endpoint too: it authenticates the bearer token as an embedded Gate does and forwards it with
 * each call, and the Control Plane process authenticates the call again from it (docs/mcp.md
 * "Through keyless Gates"). With `jobs` it takes background calls over NATS JetStream. What they
 * do not serve: the console, approvals and operator actions (the Control Plane process serves
 * those to operators and approvers), and schedules.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { canonicalize, guardObserver, parseJson, systemClock } from '../kernel/index.js';
import type { Clock } from '../kernel/index.js';
import { createRedactor } from '../execution/index.js';
import { createGate, createGateServer, createMcpAuthenticator, createMcpEndpoint } from '../gate/index.js';
import type { GateServer } from '../gate/index.js';
import {
  GATE_INSTANCE_PREFIX,
  acquireInstanceLease,
  assertSchemaCurrent,
  createPostgresGateState,
  createPostgresOperatorStore,
  createPostgresWriteProbe,
  openPostgresPool,
} from '../storage/index.js';
import type { PostgresPool } from '../storage/index.js';
import { assertNamesNoHost, createMtlsAgent } from '../transport/index.js';
import type { TlsFiles } from '../transport/index.js';
import { parseBackendSpec } from './backend-spec.js';
import { parseMcpConfig, resolveMcpSettings } from './mcp-config.js';
import { natsOptionsOf, parseJobsConfig } from './jobs-config.js';
import type { JobsConfig } from './jobs-config.js';
import { createNatsJobQueue } from './nats-queue.js';
import type { McpConfig } from './mcp-config.js';
import { assertDatabaseRole } from './db-role.js';
import type { CoreDecorators } from './ports.js';
import {
  createRemoteControlPlane,
  createRemoteGateLedger,
  createRemoteSecretValues,
} from './control-plane-link.js';
import { createRemoteExecutor } from './remote-executor.js';
import {
  configListen,
  configObservability,
  configOrigin,
  configPositive,
  configText,
  configTls,
  isConfigObject,
  standbyUrls,
} from './node-config.js';
import { createTelemetry, resolveTelemetrySettings, serveMetrics } from './telemetry/index.js';
import type { LogConfig, LogDestination, LogLevel, MetricsConfig, MetricsServer } from './telemetry/index.js';

/** The separate Gate's configuration file (JSON). */
export interface GateNodeConfig {
  /** Where clients reach it (IP literal, port; 0 = any free port). Plain HTTP, as `failclosed up`. */
  readonly listen: { readonly host: string; readonly port: number };
  /** `https://HOST:PORT` of the Control Plane process's internal listener. */
  readonly control_plane_url: string;
  /**
   * Further Control Plane processes on the same PostgreSQL schema (`failclosed up` with the same
   * keys), tried in order only when the one before cannot be connected to at all.
   */
  readonly control_plane_standby_urls?: readonly string[];
  /** `https://HOST:PORT` of an Execution Layer (`failclosed serve executor`). */
  readonly executor_url: string;
  /** This process's mutual TLS: CA, its `gate` certificate and key, optional CRL and revoked serials. */
  readonly tls: TlsFiles;
  /** The shared state: a `postgres://` URL (`?schema=` names the schema), as the Control Plane's backend. */
  readonly state: string;
  /** Accepted clock skew of request timestamps (ms); default 120000, as `failclosed up`. */
  readonly timestamp_tolerance_ms: number;
  /** Most calls in flight; default 64. */
  readonly max_inflight?: number;
  /** Deadline (ms) of one request to the Control Plane process; default 5000. */
  readonly control_plane_timeout_ms: number;
  /** Deadline (ms) of one tool call at the Execution Layer; default 30000. */
  readonly execution_timeout_ms: number;
  /**
   * The MCP endpoint (docs/mcp.md "Through keyless Gates"), as `failclosed.json` `mcp`, with
   * `resource` required: the resource every Gate serves and the Control Plane process names in
   * its own `mcp.resource`. Absent: no MCP endpoint.
   */
  readonly mcp?: McpConfig & { readonly resource: string };
  /** Accepted clock skew (s) of a bearer token's `exp`, `iat` and `nbf`; default 30, as `failclosed up`. */
  readonly clock_tolerance_sec: number;
  /**
   * Background calls (docs/jobs.md): the NATS JetStream queue the Execution Layers' workers take
   * jobs from (`failclosed.json`'s `jobs` with `queue: "nats"`, no `workers`: no tool runs here).
   * Absent: `Prefer: respond-async` is denied `ERR_QUEUE_UNAVAILABLE`, nothing decided.
   */
  readonly jobs?: Extract<JobsConfig, { queue: 'nats' }>;
  readonly log?: LogConfig;
  readonly metrics?: MetricsConfig;
}

const FIELDS = [
  'listen',
  'control_plane_url',
  'control_plane_standby_urls',
  'executor_url',
  'tls',
  'state',
  'timestamp_tolerance_ms',
  'max_inflight',
  'control_plane_timeout_ms',
  'execution_timeout_ms',
  'mcp',
  'clock_tolerance_sec',
  'jobs',
  'log',
  'metrics',
];
const bad = (m: string): TypeError => new TypeError(`gate config: ${m}`);

/** Parses the configuration strictly; relative paths are resolved against `base` (its directory). */
export function parseGateConfig(bytes: Uint8Array, base: string): GateNodeConfig {
  const v = parseJson(bytes, { maxBytes: 64 * 1024, maxDepth: 6 });
  if (!isConfigObject(v)) throw bad('not an object');
  // A key of any kind is refused by name: this process must never hold one.
  for (const k of Object.keys(v)) if (!FIELDS.includes(k)) throw bad(`unknown field ${k}`);
  const state = configText(v, 'state', bad);
  let spec;
  try {
    spec = parseBackendSpec(state);
  } catch {
    throw bad('state must be a postgres:// URL');
  }
  if (spec.kind !== 'postgres') throw bad('state must be a postgres:// URL (Gates share it)');
  return Object.freeze({
    listen: configListen(v['listen'], bad),
    control_plane_url: configOrigin(v, 'control_plane_url', bad),
    ...(v['control_plane_standby_urls'] === undefined
      ? {}
      : {
          control_plane_standby_urls: standbyUrls(
            v['control_plane_standby_urls'],
            'control_plane_standby_urls',
            bad,
          ),
        }),
    executor_url: configOrigin(v, 'executor_url', bad),
    tls: configTls(v['tls'], base, bad),
    state,
    timestamp_tolerance_ms: configPositive(v, 'timestamp_tolerance_ms', 120_000, bad),
    ...(v['max_inflight'] === undefined ? {} : { max_inflight: configPositive(v, 'max_inflight', 64, bad) }),
    control_plane_timeout_ms: configPositive(v, 'control_plane_timeout_ms', 5000, bad),
    execution_timeout_ms: configPositive(v, 'execution_timeout_ms', 30_000, bad),
    ...(v['mcp'] === undefined ? {} : { mcp: gateMcpConfig(v['mcp']) }),
    clock_tolerance_sec: configPositive(v, 'clock_tolerance_sec', 30, bad),
    ...(v['jobs'] === undefined ? {} : { jobs: gateJobsConfig(v['jobs']) }),
    ...configObservability(v, bad),
  });
}

/** The Gate's `mcp`: as `failclosed.json`'s, with `resource` required. */
function gateMcpConfig(v: unknown): McpConfig & { readonly resource: string } {
  let c: McpConfig;
  try {
    c = parseMcpConfig(v);
  } catch (err) {
    throw bad((err as Error).message.replace(/^failclosed\.json: /, ''));
  }
  if (c.resource === undefined)
    throw bad(
      'mcp.resource is required: the URL clients reach the Gates at, as the Control Plane names it in its own mcp.resource',
    );
  return c as McpConfig & { readonly resource: string };
}

/** The Gate's `jobs`: a NATS queue only (a local one would die with it), and no workers here. */
function gateJobsConfig(v: unknown): Extract<JobsConfig, { queue: 'nats' }> {
  let c: JobsConfig;
  try {
    c = parseJobsConfig(v);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (c.queue !== 'nats') throw bad('jobs.queue must be "nats": a Gate holds no queue of its own');
  if (c.workers !== undefined && c.workers !== 0)
    throw bad("jobs.workers: a Gate runs no tool (the Execution Layers' workers take the jobs)");
  return c;
}

/** Reads and parses the configuration file at `path`. */
export function readGateConfig(path: string): GateNodeConfig {
  const file = resolve(path);
  return parseGateConfig(readFileSync(file), dirname(file));
}

/**
 * What a Gate's role may hold in the schema, exactly (`deploy/postgres/gate-role.sql`): the
 * schema version and the registries read-only, its request nonces, its readiness row.
 */
const GATE_GRANTS: Readonly<Record<string, readonly string[]>> = {
  failclosed_schema: ['SELECT'],
  gate_clients: ['SELECT'],
  operators: ['SELECT'],
  gate_request_nonces: ['SELECT', 'INSERT', 'DELETE'],
  readiness_probe: ['SELECT', 'INSERT', 'UPDATE'],
};
/**
 * Refuses a database role that can do more than a Gate needs (`deploy/postgres/gate-role.sql`;
 * `assertDatabaseRole`): on any other role a compromised Gate could register a client of its own,
 * change a registered key or lift a lockdown, and have the Control Plane sign for it (FC-INV-6,
 * SPEC §1).
 */
export function assertGateRole(db: PostgresPool): Promise<void> {
  return assertDatabaseRole(db, GATE_GRANTS, { role: 'gate', what: 'a Gate', script: 'gate-role.sql' });
}

/** Options of {@link startGateNode}. */
export interface GateNodeOptions {
  readonly clock?: Clock;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logDestination?: LogDestination;
  readonly defaultLogLevel?: LogLevel;
  /**
   * Decorators of this Gate's ports to the Control Plane and the Execution Layer, as
   * `startEmbedded`'s (`ports.ts`): the end-to-end suite wraps them to inject faults and to take
   * envelopes in flight. Only code that starts the Gate in its own process can pass them: no
   * configuration field, flag or route reaches them.
   */
  readonly decorate?: Pick<CoreDecorators, 'controlPlane' | 'gateExecutor'>;
  /** Time between two checks of the instance lease's session (default 1000 ms). */
  readonly heartbeatMs?: number;
}

/** A running separate Gate. */
export interface GateNode {
  /** `http://HOST:PORT` where clients call it. */
  readonly url: string;
  readonly config: GateNodeConfig;
  readonly metricsUrl?: string;
  /** Its instance id (`gate/HOST:PID:…`), the owner its `gateway.accepted` entries name. */
  readonly instance: string;
  /** Settles with why, once it stopped on its own (it lost its instance lease). */
  readonly stopped: Promise<string>;
  /** Re-reads its mutual-TLS files (both links), as on SIGHUP. */
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Refuses a Gate certificate that names a host or an IP address (FC-INV-6, L7 mutual TLS). A
 * keyless Gate only ever connects out over mutual TLS (clients reach it over plain HTTP with
 * signed calls). Its peers accept the Control Plane by role `control-plane` (and host name), so
 * a stolen Gate certificate naming the Control Plane's host no longer passes for it; naming no
 * host keeps whoever stole one from serving under any name as well, should a peer ever accept a
 * `gate` server. A certificate whose names cannot be read is refused as well.
 */
export function assertGateCertificate(certPath: string): void {
  try {
    assertNamesNoHost(readFileSync(certPath, 'latin1'), certPath);
  } catch (err) {
    throw bad(
      `tls.cert must be a client-only gate certificate that names no host (whoever stole a Gate certificate that names one could serve under those names): ${(err as Error).message}`,
    );
  }
}

/** Starts a separate Gate from its configuration file. */
export async function startGateNode(configPath: string, options: GateNodeOptions = {}): Promise<GateNode> {
  const config = readGateConfig(configPath);
  assertGateCertificate(config.tls.cert);
  const clock = options.clock ?? systemClock;
  const env = options.env ?? process.env;
  const settings = resolveTelemetrySettings(config, env, options.defaultLogLevel ?? 'info');
  const spec = parseBackendSpec(config.state);
  if (spec.kind !== 'postgres') throw bad('state must be a postgres:// URL');
  const db = openPostgresPool({
    url: spec.url,
    ...(spec.schema === undefined ? {} : { schema: spec.schema }),
    max: 8,
    applicationName: 'failclosed-gate',
  });
  const closers: (() => Promise<void> | void)[] = [() => db.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    // The Control Plane process migrates the schema; a Gate uses it only at its own version,
    // and only on a role that can do no more than a Gate needs.
    await assertSchemaCurrent(db);
    await assertGateRole(db);
    // This Gate's instance lease (a session lock, as each `up` holds one): the requests it accepts
    // are its own while it lives, and any Control Plane process records them abandoned once it is
    // gone, killed or cut off (FC-INV-5). Released at close, after the listener and the
    // background outcome retries stopped; an outcome still in flight then lands only while its
    // request is open (a sweep may have closed it first).
    const lease = await acquireInstanceLease(db, {
      name: `${GATE_INSTANCE_PREFIX}${hostname()}:${process.pid}`,
      ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    });
    closers.push(() => lease.release());
    const telemetry = await createTelemetry({
      logLevel: settings.logLevel,
      role: 'gate',
      env,
      ...(options.logDestination === undefined ? {} : { logDestination: options.logDestination }),
    });
    closers.push(() => telemetry.close());
    // Client-only: a reload that brings a certificate naming a host is refused like a bad file.
    // The Control Plane by its role, not by the host it is dialled at (FC-INV-6).
    const cpAgent = await createMtlsAgent({
      files: config.tls,
      expect: ['control-plane'],
      now: clock,
      clientOnly: true,
    });
    closers.push(() => cpAgent.close());
    const elAgent = await createMtlsAgent({
      files: config.tls,
      expect: ['executor'],
      now: clock,
      clientOnly: true,
    });
    closers.push(() => elAgent.close());
    const link = {
      url: config.control_plane_url,
      ...(config.control_plane_standby_urls === undefined
        ? {}
        : { standby: config.control_plane_standby_urls }),
      agent: cpAgent,
      // Below the Gate's own deadline for the Control Plane, so that an answer (an allow) never
      // arrives after the Gate gave up: the link's end closes the connection first, and the
      // Control Plane voids an allow it could not deliver.
      timeoutMs: Math.max(1, Math.floor((config.control_plane_timeout_ms * 5) / 6)),
    };
    const state = createPostgresGateState(db, {
      replayRetentionMs: Math.max(7 * 86_400_000, 2 * config.timestamp_tolerance_ms),
    });
    const operators = createPostgresOperatorStore(db);
    // No secret values here: only the secret patterns are caught at this Gate (docs/deployment.md).
    const redactor = createRedactor({ secrets: () => [] });
    const decorate = options.decorate ?? {};
    const controlPlane = createRemoteControlPlane({ link, background: config.jobs !== undefined });
    const executor = createRemoteExecutor({
      url: config.executor_url,
      agent: elAgent,
      timeoutMs: Math.max(1, Math.floor((config.execution_timeout_ms * 5) / 6)),
    });
    const ledger = createRemoteGateLedger(link, config.control_plane_timeout_ms, {
      owner: () => (lease.isHeld() ? lease.instance : undefined),
    });
    // Stopped before the lease is released: what it still holds is then swept.
    closers.push(() => ledger.close());
    // Background calls over the broker the Execution Layers' workers take jobs from; their
    // answers come back to any Gate (or Control Plane process) on the stream. Closed after the
    // listener and before the ledger port: an answer not recorded waits in the stream.
    const jobs = config.jobs === undefined ? undefined : createNatsJobQueue(natsOptionsOf(config.jobs));
    if (jobs !== undefined) closers.push(() => jobs.close());
    const gate = createGate({
      observer: guardObserver(telemetry.observer),
      clock,
      clients: state,
      replay: state,
      ledger,
      controlPlane: decorate.controlPlane?.(controlPlane) ?? controlPlane,
      executor: decorate.gateExecutor?.(executor) ?? executor,
      secretScanner: (params) => {
        const t = canonicalize(params);
        return redactor.redactText(t) !== t;
      },
      // The secret values are the Control Plane process's: asked before anything is stored.
      secretValues: createRemoteSecretValues(link),
      timestampToleranceMs: config.timestamp_tolerance_ms,
      ...(config.max_inflight === undefined ? {} : { maxInflight: config.max_inflight }),
      timeouts: {
        controlPlaneMs: config.control_plane_timeout_ms,
        ledgerMs: config.control_plane_timeout_ms,
        executionMs: config.execution_timeout_ms,
      },
      // Unused: the registry alone authenticates operators (the evidence view).
      operatorTokenSha256: '0'.repeat(64),
      operators,
      readiness: [createPostgresWriteProbe('database', db)],
      ...(jobs === undefined ? {} : { jobs }),
    });
    await jobs?.start((d) => gate.finishJob(d));
    const mcp = config.mcp;
    const server: GateServer = await createGateServer(gate, {
      host: config.listen.host,
      port: config.listen.port,
      ...(mcp === undefined
        ? {}
        : {
            mcp: (url: string) => {
              const { settings, oauth } = resolveMcpSettings(mcp, url);
              // The token goes on with the principal to the Control Plane process, which
              // authenticates each call again from it (gate-routes.ts); nothing here keeps it.
              const authenticate = createMcpAuthenticator({
                resource: settings.resource,
                ...(oauth === undefined ? {} : { oauth }),
                clients: state,
                replay: state,
                clock,
                clockToleranceSec: config.clock_tolerance_sec,
                forwardCredential: true,
              });
              return createMcpEndpoint(gate, settings, authenticate, (d, sha) => gate.refuse(d, sha));
            },
          }),
    });
    closers.push(() => server.close());
    let metricsServer: MetricsServer | undefined;
    if (settings.metricsListen !== undefined) {
      metricsServer = await serveMetrics(
        telemetry.metrics,
        settings.metricsListen.host,
        settings.metricsListen.port,
      );
      const m = metricsServer;
      closers.push(() => m.close());
    }
    telemetry.logger.info(
      { url: server.url, metrics: metricsServer?.url ?? null, control_plane: config.control_plane_url },
      'gate listening',
    );
    let closed: Promise<void> | undefined;
    const close = (): Promise<void> => (closed ??= closeAll());
    // Without its lease this Gate accepts nothing (its ledger port refuses) and its requests are
    // another's to close: it stops, and its supervisor starts it again with a new lease.
    const stopped = lease.lost.then(async () => {
      telemetry.logger.error({}, 'gate lost its instance lease: stopping');
      await close();
      return 'the instance lease was lost' as const;
    });
    return {
      url: server.url,
      config,
      instance: lease.instance,
      stopped,
      ...(metricsServer === undefined ? {} : { metricsUrl: metricsServer.url }),
      async reloadTls() {
        const results = await Promise.allSettled([cpAgent.reload(), elAgent.reload()]);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed !== undefined) throw failed.reason;
      },
      close,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
