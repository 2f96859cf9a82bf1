/**
 * The embedded data directory: configuration, keys and SQLite files of a one-process deployment
 * (SPEC §1 "Embedded"). Private keys and the operator token are written with mode 0600 in a 0700
 * directory; configuration is parsed strictly like any other untrusted input (STYLE.md).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseJson, sha256Hex } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey, importSigningKeyJwk } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';
import { parseBackendSpec } from './backend-spec.js';
import { parseMcpConfig } from './mcp-config.js';
import { parseWebhookConfig, type WebhookConfig } from '../control-plane/lean.js';
import type { McpConfig } from './mcp-config.js';
import { parseConsoleConfig } from './console-config.js';
import { parseLogConfig, parseMetricsConfig } from './telemetry/config.js';
import type { LogConfig, MetricsConfig } from './telemetry/config.js';
import type { ConsoleConfig } from './console-config.js';
import { isIP } from 'node:net';
import { parseExecutorUrl, parseTlsConfig } from './tls-config.js';
import type { TlsConfig } from './tls-config.js';
import { parseJobsConfig } from './jobs-config.js';
import type { JobsConfig } from './jobs-config.js';
import { parseCheckpointsConfig, type CheckpointsConfig } from './checkpoints-config.js';

/** `failclosed.json`: the deployment's settings. */
export interface EmbeddedConfig {
  readonly version: 1;
  /** Listen address of the Gate; loopback by default. */
  readonly host: string;
  /** Gate port (0 = any free port). */
  readonly port: number;
  /** Port of the Execution Layer's own listener (0 = any free port). */
  readonly execution_port: number;
  /** The envelopes' `aud`: this Execution Layer. */
  readonly audience: string;
  /** The envelopes' `iss`. */
  readonly issuer: string;
  /** The ledger's checkpoint origin line. */
  readonly origin: string;
  readonly envelope_ttl_sec: number;
  /** Accepted skew of signed request timestamps (FC-INV-3, scenario 18). */
  readonly timestamp_tolerance_ms: number;
  /** Accepted skew for envelope `iat`/`exp` at the Execution Layer. */
  readonly clock_tolerance_sec: number;
  readonly max_envelope_lifetime_sec: number;
  /** Most calls the Gate works on at once; beyond it calls are shed `503 ERR_OVERLOADED`. Optional (default 64). */
  readonly max_inflight?: number;
  /** `/readyz` fails its `disk` check below this much free space under the data directory (MiB). Optional (default 64). */
  readonly min_free_disk_mb?: number;
  /**
   * With a backend shared by several gates (PostgreSQL): how often (ms) this gate reads the
   * policy activations and issuer key changes made through the others; past twice this without a
   * successful read it refuses every call (`replica-follow.ts`). Optional (default 1000).
   */
  readonly follow_ms?: number;
  /**
   * Storage backend: `sqlite` (default: files in this directory) or a `postgres://` URL (see
   * `backend-spec.ts`); `FAILCLOSED_BACKEND` overrides it. Optional.
   */
  readonly backend?: string;
  /** The MCP endpoint: resource, Host/Origin allowlists, OAuth issuer (docs/mcp.md). Optional. */
  readonly mcp?: McpConfig;
  /** Signed webhooks: receivers, link base, attempts (docs/notifications.md). Optional. */
  readonly webhooks?: WebhookConfig;
  /** The browser console: its OIDC issuer (docs/console.md "OIDC sign-in"). Optional. */
  readonly console?: ConsoleConfig;
  /** Logs: `level` (`FAILCLOSED_LOG_LEVEL` over it; docs/deployment.md "Observability"). Optional. */
  readonly log?: LogConfig;
  /** Metrics: `listen`, the `host:port` of `GET /metrics` (`FAILCLOSED_METRICS_LISTEN` over it). Optional. */
  readonly metrics?: MetricsConfig;
  /** Mutual TLS between the Gate and the Execution Layer (docs/deployment.md "Mutual TLS"). Optional. */
  readonly tls?: TlsConfig;
  /** The Gate calls the Execution Layer at this `https://` URL over mTLS (needs `tls.gate`). Optional. */
  readonly executor_url?: string;
  /**
   * Listen address (IP literal) of the Execution Layer's listener; default `127.0.0.1`. Only with
   * `tls.executor`: a plain-HTTP execution listener stays on loopback. Optional.
   */
  readonly execution_host?: string;
  /**
   * Port of the Control Plane process's internal listener for a separate Execution Layer
   * (`failclosed serve executor`): mutual TLS serving `tls.control_plane` (a certificate naming
   * the `control-plane` role, FC-INV-6), admitting the `executor` role only; it serves the
   * issuer's public keys, policy bundles by hash and the ledger writer (`internal-server.ts`).
   * Absent: no such listener. Optional; needs `tls.control_plane`.
   */
  readonly internal_port?: number;
  /** Listen address (IP literal) of that listener; default `127.0.0.1`. Optional. */
  readonly internal_host?: string;
  /**
   * True: the internal listener also admits separate Gate processes (`failclosed serve gate`,
   * role `gate`) to this process's Control Plane and ledger writer (`gate-routes.ts`). Default
   * false: the `executor` role only. Needs `internal_port`.
   */
  readonly internal_gates?: boolean;
  /** The queue of background calls: `local` (default) or NATS JetStream (docs/jobs.md). Optional. */
  readonly jobs?: JobsConfig;
  /**
   * The ledger process that signs the checkpoints (`failclosed serve ledger`): its URL and the
   * public checkpoint key. With it this data directory must hold no `keys/ledger.jwk`, the backend
   * must be PostgreSQL and `tls.control_plane` is the certificate presented to it. Optional.
   */
  readonly checkpoints?: CheckpointsConfig;
}

/** Optional settings: absent in data directories made before they existed. */
const OPTIONAL_FIELDS: readonly string[] = [
  'max_inflight',
  'min_free_disk_mb',
  'follow_ms',
  'backend',
  'mcp',
  'webhooks',
  'console',
  'log',
  'metrics',
  'tls',
  'executor_url',
  'execution_host',
  'internal_port',
  'internal_host',
  'internal_gates',
  'jobs',
  'checkpoints',
];
/** Optional settings that are positive integers. */
const OPTIONAL_INTEGERS: readonly string[] = ['max_inflight', 'min_free_disk_mb', 'follow_ms'];

/** A client key file under `clients/NAME.json`. */
export interface ClientFile {
  readonly identity: string;
  readonly tenant: string;
  /** Private JWK: a secret. */
  readonly key: JsonObject;
}

/** Paths inside a data directory. */
export function dataPaths(dir: string) {
  const root = resolve(dir);
  return {
    root,
    config: join(root, 'failclosed.json'),
    issuerKey: join(root, 'keys', 'issuer.jwk'),
    issuerJwks: join(root, 'keys', 'issuer-jwks.json'),
    ledgerKey: join(root, 'keys', 'ledger.jwk'),
    derivationKey: join(root, 'keys', 'derivation.key'),
    operatorToken: join(root, 'operator.token'),
    clients: join(root, 'clients'),
    bundles: join(root, 'bundles'),
    ledgerDb: join(root, 'ledger.db'),
    stateDb: join(root, 'state.db'),
    noncesDb: join(root, 'nonces.db'),
    server: join(root, 'server.json'),
  } as const;
}

/** The demo client registered by `init`. */
export const DEMO_CLIENT = Object.freeze({ identity: 'demo-agent', tenant: 'acme' });

/** The default settings of a fresh data directory. */
export function defaultConfig(): EmbeddedConfig {
  return {
    version: 1,
    host: '127.0.0.1',
    port: 7070,
    execution_port: 0,
    audience: 'failclosed-executor',
    issuer: 'failclosed-control-plane',
    origin: `failclosed.local/${randomBytes(8).toString('hex')}`,
    envelope_ttl_sec: 60,
    timestamp_tolerance_ms: 120_000,
    clock_tolerance_sec: 30,
    max_envelope_lifetime_sec: 300,
    max_inflight: 64,
    min_free_disk_mb: 64,
  };
}

/** Every field `failclosed.json` may hold: the defaults' and the optional ones. */
const CONFIG_FIELDS: readonly string[] = [...new Set([...Object.keys(defaultConfig()), ...OPTIONAL_FIELDS])];

function bad(message: string): TypeError {
  return new TypeError(`failclosed.json: ${message}`);
}

/** Parses `failclosed.json` strictly: every field present with its type, nothing else. */
export function parseConfig(bytes: Uint8Array): EmbeddedConfig {
  const v = parseJson(bytes, { maxBytes: 64 * 1024, maxDepth: 6 });
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as JsonObject;
  for (const k of Object.keys(o)) if (!CONFIG_FIELDS.includes(k)) throw bad(`unknown field ${k}`);
  for (const k of CONFIG_FIELDS)
    if (!(k in o) && !OPTIONAL_FIELDS.includes(k)) throw bad(`missing field ${k}`);
  if (o.version !== 1) throw bad('version must be 1');
  for (const k of ['host', 'audience', 'issuer', 'origin'] as const)
    if (typeof o[k] !== 'string' || o[k].length === 0) throw bad(`${k} must be a non-empty string`);
  for (const k of ['port', 'execution_port'] as const) {
    const n = o[k];
    if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > 65535)
      throw bad(`${k} must be a port number`);
  }
  for (const k of [
    'envelope_ttl_sec',
    'timestamp_tolerance_ms',
    'clock_tolerance_sec',
    'max_envelope_lifetime_sec',
  ] as const) {
    const n = o[k];
    if (!Number.isSafeInteger(n) || (n as number) <= 0) throw bad(`${k} must be a positive integer`);
  }
  if (o.backend !== undefined) {
    if (typeof o.backend !== 'string') throw bad('backend must be a string');
    try {
      parseBackendSpec(o.backend);
    } catch {
      throw bad('backend must be "sqlite" or a postgres:// URL');
    }
  }
  for (const k of OPTIONAL_INTEGERS) {
    const n = o[k];
    if (n !== undefined && (!Number.isSafeInteger(n) || (n as number) <= 0))
      throw bad(`${k} must be a positive integer`);
  }
  const mcp = o.mcp === undefined ? {} : { mcp: parseMcpConfig(o.mcp) };
  let webhooks = {};
  try {
    webhooks = o.webhooks === undefined ? {} : { webhooks: parseWebhookConfig(o.webhooks) };
  } catch (err) {
    throw bad(err instanceof Error ? err.message : 'webhooks is malformed');
  }
  const consoleConfig = o.console === undefined ? {} : { console: parseConsoleConfig(o.console) };
  let observability = {};
  try {
    observability = {
      ...(o.log === undefined ? {} : { log: parseLogConfig(o.log) }),
      ...(o.metrics === undefined ? {} : { metrics: parseMetricsConfig(o.metrics) }),
    };
  } catch (err) {
    throw bad(err instanceof Error ? err.message : 'log or metrics is malformed');
  }
  const tls = o.tls === undefined ? {} : { tls: parseTlsConfig(o.tls) };
  let jobs = {};
  try {
    jobs = o.jobs === undefined ? {} : { jobs: parseJobsConfig(o.jobs) };
  } catch (err) {
    throw bad(err instanceof Error ? err.message : 'jobs is malformed');
  }
  const executorUrl = o.executor_url === undefined ? {} : { executor_url: parseExecutorUrl(o.executor_url) };
  if (o.executor_url !== undefined && (o.tls === undefined || tls.tls?.gate === undefined))
    throw bad('executor_url needs tls.gate (the Gate reaches a remote Execution Layer over mutual TLS only)');
  const j = (jobs as { jobs?: JobsConfig }).jobs;
  if (j?.queue === 'nats' && (j.workers ?? 0) > 0 && o.executor_url !== undefined)
    throw bad("jobs.workers runs workers over this process's own Execution Layer: not with executor_url");
  if (o.execution_host !== undefined) {
    if (typeof o.execution_host !== 'string' || isIP(o.execution_host) === 0)
      throw bad('execution_host must be an IP address');
    if (tls.tls?.executor === undefined)
      throw bad('execution_host needs tls.executor (a plain-HTTP execution listener stays on loopback)');
  }
  if (o.internal_port !== undefined) {
    const n = o.internal_port;
    if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > 65535)
      throw bad('internal_port must be a port number');
    // Never `tls.gate` in its place: peers accept the internal listener by the `control-plane`
    // role only, and the Gate's certificate names another role (FC-INV-6).
    if (tls.tls?.control_plane === undefined)
      throw bad(
        "internal_port needs tls.control_plane: the Control Plane's own certificate, naming the control-plane role and the host its peers dial, which the internal listener serves over mutual TLS (issue one with: failclosed certs issue --role control-plane --host H)",
      );
  }
  if (o.internal_host !== undefined) {
    if (typeof o.internal_host !== 'string' || isIP(o.internal_host) === 0)
      throw bad('internal_host must be an IP address');
    if (o.internal_port === undefined) throw bad('internal_host needs internal_port');
  }
  if (o.internal_gates !== undefined) {
    if (typeof o.internal_gates !== 'boolean') throw bad('internal_gates must be true or false');
    if (o.internal_port === undefined) throw bad('internal_gates needs internal_port');
  }
  let checkpoints = {};
  if (o.checkpoints !== undefined) {
    checkpoints = { checkpoints: parseCheckpointsConfig(o.checkpoints, o.origin as string, bad) };
    if (tls.tls?.control_plane === undefined)
      throw bad(
        'checkpoints needs tls.control_plane: the certificate, naming the control-plane role, this process presents to the ledger process',
      );
  }
  return Object.freeze({
    ...(o as unknown as EmbeddedConfig),
    ...checkpoints,
    ...mcp,
    ...webhooks,
    ...consoleConfig,
    ...observability,
    ...tls,
    ...executorUrl,
    ...jobs,
  });
}

/** Writes `text` with mode 0600 (secrets). */
export function writeSecret(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Reads the config of an initialised data directory; `TypeError` when there is none. */
export function readConfig(dir: string): EmbeddedConfig {
  const p = dataPaths(dir);
  if (!existsSync(p.config))
    throw new TypeError(`${p.root} is not an initialised failclosed data directory (run: failclosed init)`);
  return parseConfig(readFileSync(p.config));
}

/** Reads a private signing key file. */
export function readSigningKey(path: string): SigningKey {
  return importSigningKeyJwk(parseJson(readFileSync(path), { maxBytes: 4096 }));
}

/** Writes a private signing key file (0600). */
export function writeSigningKey(path: string, key: SigningKey): void {
  writeSecret(path, `${JSON.stringify(exportSigningKeyJwk(key), null, 2)}\n`);
}

/** Reads the client file `clients/NAME.json`. */
export function readClientFile(dir: string, name: string): ClientFile {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name) || name.startsWith('.'))
    throw new TypeError('client name is malformed');
  const v = parseJson(readFileSync(join(dataPaths(dir).clients, `${name}.json`)), { maxBytes: 8192 });
  const o = v as Record<string, unknown>;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.identity !== 'string' ||
    typeof o.tenant !== 'string' ||
    typeof o.key !== 'object'
  )
    throw new TypeError(`client file ${name} is malformed`);
  return o as unknown as ClientFile;
}

/** Writes `clients/NAME.json` (0600): identity, tenant and the private key. */
export function writeClientFile(dir: string, name: string, file: ClientFile): string {
  const path = join(dataPaths(dir).clients, `${name}.json`);
  writeSecret(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}

/** Lower-case hex SHA-256 of the operator token. */
export function operatorTokenSha256(dir: string): string {
  return sha256Hex(readFileSync(dataPaths(dir).operatorToken, 'utf8').trim());
}

/** The operator bearer token (a secret). */
export function readOperatorToken(dir: string): string {
  return readFileSync(dataPaths(dir).operatorToken, 'utf8').trim();
}

/**
 * Writes configuration and fresh key material into `dir` when it holds none: issuer key, ledger
 * checkpoint key, derivation key, operator token, and the demo client's key. Returns false when
 * the directory was already initialised (nothing is overwritten).
 */
export function writeFreshDataDir(dir: string, settings: { readonly backend?: string } = {}): boolean {
  const p = dataPaths(dir);
  if (existsSync(p.config)) return false;
  if (settings.backend !== undefined) parseBackendSpec(settings.backend);
  mkdirSync(p.root, { recursive: true, mode: 0o700 });
  writeSigningKey(p.issuerKey, generateSigningKey());
  writeSigningKey(p.ledgerKey, generateSigningKey());
  writeSecret(p.derivationKey, `${randomBytes(32).toString('hex')}\n`);
  writeSecret(p.operatorToken, `${randomBytes(32).toString('base64url')}\n`);
  const demo = generateSigningKey();
  writeClientFile(dir, DEMO_CLIENT.identity, {
    ...DEMO_CLIENT,
    key: exportSigningKeyJwk(demo) as unknown as JsonObject,
  });
  // The config is written last: its presence marks a complete directory.
  const config = {
    ...defaultConfig(),
    ...(settings.backend === undefined ? {} : { backend: settings.backend }),
  };
  writeFileSync(p.config, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return true;
}

/** Finds `examples/demo-policy` by walking up from this module (works from `src/` and `dist/src/`). */
export function demoPolicyDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    const candidate = join(d, 'examples', 'demo-policy');
    if (existsSync(join(candidate, 'bundle.json'))) return candidate;
    d = dirname(d);
  }
  throw new TypeError('examples/demo-policy not found');
}

/** Path of the webhook outbox (`notifications.ts`). */
export function notificationsPath(dir: string): string {
  return join(dataPaths(dir).root, 'notifications.db');
}
