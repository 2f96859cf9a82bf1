/**
 * The Execution Layer as its own process: `failclosed serve executor --config FILE`
 * (docs/deployment.md "Separate Execution Layer"; SPEC §1 "can be deployed independently",
 * FC-INV-6, L7 mutual TLS between roles, GEI public keys only).
 *
 * It holds public keys only: no issuer key, no ledger checkpoint key, no operator token. Its
 * configuration names its own mutual-TLS certificate (role `executor`), its listen address, the
 * Control Plane process's internal listener (`internal_port` there), its nonce store (its own
 * SQLite file, or a `postgres://` URL several replicas share) and where its tools' secrets are. It
 * reaches that process over mutual TLS, accepting its server only by the `control-plane` role
 * (and a host its certificate names: a `gate` certificate naming the right host is refused), for
 * three things:
 * - the issuer's JWKS, refreshed whenever the copy held is older than `keys_max_age_ms`; when no
 *   copy that fresh can be had, every call is denied `ERR_TRUST_UNAVAILABLE` (never the old keys);
 * - a policy bundle by its hash, fetched once, hashed again here (bytes whose SHA-256 is not the
 *   hash asked for are refused, `ERR_POLICY_BUNDLE_INVALID`) and compiled here;
 * - the ledger (`ExecutionLedger`): the one writer stays in the Gate process; answers are parsed
 *   as untrusted input under deadlines, and any failure is `ERR_LEDGER_UNAVAILABLE` in the
 *   executor: nothing runs without its records.
 * Its listener is `createExecutionServer` with mutual TLS admitting the `gate` role only, so a
 * direct call, a client certificate or another role's certificate is refused before a byte is
 * read, and recorded (`transport.refused`, through the Gate's ledger writer).
 */
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { request } from 'node:https';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import {
  createInFlight,
  decodeBase64url,
  deny,
  guardObserver,
  hexDigestEquals,
  isLedgerRef,
  observedToolName,
  keyRingFromJwks,
  parseJson,
  sha256Hex,
  systemClock,
  withDeadline,
} from '../kernel/index.js';
import type {
  Clock,
  Deny,
  DurableWrites,
  JsonObject,
  JsonValue,
  KeyLookup,
  KeyRing,
} from '../kernel/index.js';
import { MAX_BUNDLE_BYTES } from '../policy/index.js';
import { createBundleCompiler } from '../control-plane/index.js';
import type { PolicyRuntime } from '../control-plane/index.js';
import {
  createBwrapSandbox,
  createDefaultBuiltins,
  createEnvSecretResolver,
  createExecutor,
  createRedactor,
  createUpstreamTokenCache,
  createSqliteNonceStore,
  sqliteNonceStoreIdentity,
} from '../execution/index.js';
import type {
  CallRelay,
  EnvelopeLedgerContext,
  ExecutionEntry,
  ExecutionInput,
  ExecutionLedger,
  Executor,
  LedgerRecord,
  LedgerRef,
  NonceStore,
  VoidInput,
} from '../execution/index.js';
import {
  assertSchemaCurrent,
  createPostgresNonceStore,
  postgresNonceStoreIdentity,
  migrate,
  openPostgresPool,
} from '../storage/index.js';
import { createMtlsAgent, createRefusalRecorder, readCapped } from '../transport/index.js';
import type { MtlsAgent, RefusalEntry, TlsFiles } from '../transport/index.js';
import { createExecutionServer } from './execution-server.js';
import { natsOptionsOf, parseJobsConfig } from './jobs-config.js';
import type { JobsConfig } from './jobs-config.js';
import { startNatsWorkers } from './nats-queue.js';
import type { ExecutionServer } from './execution-server.js';
import { executionAdapters } from './execution-adapters.js';
import {
  configListen,
  configObservability,
  configOrigin,
  configPositive,
  configText,
  configTls,
  standbyUrls,
} from './node-config.js';
import type { ToolRunObserver } from './ports.js';
import { createTelemetry, resolveTelemetrySettings, serveMetrics } from './telemetry/index.js';
import type {
  LogConfig,
  LogDestination,
  LogLevel,
  Logger,
  MetricsConfig,
  MetricsServer,
} from './telemetry/index.js';

/** The separate Execution Layer's configuration file (JSON). */
export interface ExecutorNodeConfig {
  /** The envelopes' `aud` this Execution Layer accepts (the Gate's `audience`). */
  readonly audience: string;
  /** Where `POST /v1/execute` listens (IP literal, port; 0 = any free port). */
  readonly listen: { readonly host: string; readonly port: number };
  /** `https://HOST:PORT` of the Gate process's internal listener. */
  readonly gate_url: string;
  /** Further such processes on the same PostgreSQL schema, tried when `gate_url` cannot be connected to. */
  readonly gate_standby_urls?: readonly string[];
  /** This process's mutual TLS: CA, its `executor` certificate and key, optional CRL and revoked serials. */
  readonly tls: TlsFiles;
  /** Nonce store: a SQLite file path, or a `postgres://` URL (with `nonces_schema`). */
  readonly nonces: string;
  readonly nonces_schema?: string;
  /** A `secrets.json` (name → value) beside the FC_SECRET_ variables; optional. */
  readonly secrets?: string;
  readonly clock_tolerance_sec: number;
  readonly max_envelope_lifetime_sec: number;
  /** Largest age (ms) of the issuer keys a call is checked against; default 5000. */
  readonly keys_max_age_ms: number;
  /** Deadline (ms) of one request to the Gate process; default 2000. */
  readonly gate_timeout_ms: number;
  /**
   * Queue workers (docs/jobs.md): `{"queue": "nats", "url": "nats://…", "stream", "workers",
   * "ack_wait_ms"}` takes background calls from NATS JetStream and runs each through this
   * Execution Layer (default 2 workers). Optional.
   */
  readonly jobs?: Extract<JobsConfig, { queue: 'nats' }>;
  /** Logs: `level` (`FAILCLOSED_LOG_LEVEL` over it; default `info`). Optional. */
  readonly log?: LogConfig;
  /** Metrics: `listen`, the `host:port` of `GET /metrics` (`FAILCLOSED_METRICS_LISTEN` over it). Optional. */
  readonly metrics?: MetricsConfig;
}

const FIELDS = [
  'audience',
  'listen',
  'gate_url',
  'gate_standby_urls',
  'tls',
  'nonces',
  'nonces_schema',
  'secrets',
  'clock_tolerance_sec',
  'max_envelope_lifetime_sec',
  'keys_max_age_ms',
  'gate_timeout_ms',
  'jobs',
  'log',
  'metrics',
];
const HASH_RE = /^[0-9a-f]{64}$/;

const bad = (m: string): TypeError => new TypeError(`executor config: ${m}`);
const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const positive = (o: JsonObject, k: string, fallback: number): number => configPositive(o, k, fallback, bad);

const text = (o: JsonObject, k: string, max = 4096): string => configText(o, k, bad, max);

/** Parses the configuration strictly; relative paths are resolved against `base` (its directory). */
export function parseExecutorConfig(bytes: Uint8Array, base: string): ExecutorNodeConfig {
  const v = parseJson(bytes, { maxBytes: 64 * 1024, maxDepth: 6 });
  if (!isObject(v)) throw bad('not an object');
  for (const k of Object.keys(v)) if (!FIELDS.includes(k)) throw bad(`unknown field ${k}`);
  const at = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const listen = configListen(v['listen'], bad);
  const gateUrl = configOrigin(v, 'gate_url', bad);
  const tls = configTls(v['tls'], base, bad);
  let jobs: JobsConfig | undefined;
  try {
    jobs = v['jobs'] === undefined ? undefined : parseJobsConfig(v['jobs']);
  } catch (err) {
    throw bad(err instanceof Error ? err.message : 'jobs is malformed');
  }
  const observability = configObservability(v, bad);
  if (jobs !== undefined && jobs.queue !== 'nats')
    throw bad('jobs.queue must be "nats" (workers take jobs from a broker)');
  const nonces = text(v, 'nonces');
  const schema = v['nonces_schema'];
  if (schema !== undefined && (typeof schema !== 'string' || !nonces.startsWith('postgres')))
    throw bad('nonces_schema must be a string, with a postgres:// nonces URL');
  return Object.freeze({
    audience: text(v, 'audience', 256),
    listen,
    gate_url: gateUrl,
    ...(v['gate_standby_urls'] === undefined
      ? {}
      : { gate_standby_urls: standbyUrls(v['gate_standby_urls'], 'gate_standby_urls', bad) }),
    tls,
    nonces: /^postgres(ql)?:\/\//.test(nonces) ? nonces : at(nonces),
    ...(typeof schema === 'string' ? { nonces_schema: schema } : {}),
    ...(v['secrets'] === undefined ? {} : { secrets: at(text(v, 'secrets')) }),
    clock_tolerance_sec: positive(v, 'clock_tolerance_sec', 30),
    max_envelope_lifetime_sec: positive(v, 'max_envelope_lifetime_sec', 300),
    keys_max_age_ms: positive(v, 'keys_max_age_ms', 5000),
    gate_timeout_ms: positive(v, 'gate_timeout_ms', 2000),
    ...(jobs === undefined ? {} : { jobs }),
    ...observability,
  });
}

/** Reads and parses the configuration file at `path`. */
export function readExecutorConfig(path: string): ExecutorNodeConfig {
  const file = resolve(path);
  return parseExecutorConfig(readFileSync(file), dirname(file));
}

/** One answer of the Gate process: its status and body bytes. */
interface GateAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/** How the separate Execution Layer reaches the Gate process's internal listener. */
export interface GateLink {
  readonly url: string;
  /**
   * Processes on the same PostgreSQL schema tried in order when `url` cannot be connected to at
   * all (refused, unreachable): never after a byte of the request may have reached one.
   */
  readonly standby?: readonly string[];
  readonly agent: MtlsAgent;
  readonly timeoutMs: number;
}

/** Errors raised before a connection exists: the request reached no process, another may take it. */
const NOT_CONNECTED: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

/**
 * One request to the Gate process over mutual TLS, bounded in size (`maxBytes`) and time (the
 * whole exchange, `link.timeoutMs`, one deadline for every attempt). Rejects on anything but a
 * complete answer. When `url` cannot be connected to, the `standby` URLs are tried in turn; any
 * other failure (a handshake refused, a reset, a deadline) rejects at once, since the request may
 * have been received.
 */
export async function gateRequest(
  link: GateLink,
  method: 'GET' | 'POST',
  path: string,
  body: JsonValue | undefined,
  maxBytes: number,
): Promise<GateAnswer> {
  const urls = [link.url, ...(link.standby ?? [])];
  // One deadline for every attempt: a standby's answer never arrives after the caller gave up.
  const end = performance.now() + link.timeoutMs;
  for (let i = 0; ; i++) {
    try {
      return await requestOnce(urls[i]!, link, end - performance.now(), method, path, body, maxBytes);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      if (i + 1 >= urls.length || code === undefined || !NOT_CONNECTED.has(code)) throw err;
      if (end - performance.now() <= 0) throw err;
    }
  }
}

function requestOnce(
  url: string,
  link: GateLink,
  timeoutMs: number,
  method: 'GET' | 'POST',
  path: string,
  body: JsonValue | undefined,
  maxBytes: number,
): Promise<GateAnswer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method,
        agent: link.agent.current(),
        timeout: timeoutMs,
        headers:
          data === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        readCapped(res, maxBytes).then(
          (b) =>
            b === null
              ? reject(new Error('answer too large'))
              : resolvePromise({ status: res.statusCode ?? 0, body: b }),
          reject,
        );
      },
    );
    // The whole exchange is bounded, not only socket idleness.
    const timer = setTimeout(() => req.destroy(new Error('deadline passed')), Math.max(1, timeoutMs));
    req.once('close', () => clearTimeout(timer));
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end(data);
  });
}

const STRING_FIELDS = ['entry_hash', 'type', 'trace_id', 'request_id', 'tenant'] as const;

/** A ledger record from the wire, or undefined. */
function recordOf(v: JsonValue): LedgerRecord | undefined {
  if (!isObject(v) || !isLedgerRef(v)) return undefined;
  const o: JsonObject = v;
  for (const k of STRING_FIELDS) if (typeof o[k] !== 'string') return undefined;
  if (!isObject(o['payload'])) return undefined;
  return v as unknown as LedgerRecord;
}

function recordsOf(v: JsonValue | undefined): LedgerRecord[] | undefined {
  if (!Array.isArray(v) || v.length > 1000) return undefined;
  const out: LedgerRecord[] = [];
  for (const x of v as readonly JsonValue[]) {
    const r = recordOf(x);
    if (r === undefined) return undefined;
    out.push(r);
  }
  return out;
}

/** The Execution Layer's ledger as a client of the ledger writer in the Gate process. */
export interface GateLedger extends ExecutionLedger {
  /** Appends a `transport.refused` entry of this process's listener. */
  appendRefusal(entry: RefusalEntry): Promise<LedgerRef>;
}

/**
 * {@link ExecutionLedger} over the Gate process's internal listener. Rejects on anything but a
 * well-formed confirmation (no answer, a deny, garbage, a deadline): the executor then denies
 * `ERR_LEDGER_UNAVAILABLE` and runs nothing.
 */
export function createGateLedger(link: GateLink): GateLedger {
  const post = async (path: string, body: JsonValue): Promise<JsonValue> => {
    const a = await gateRequest(link, 'POST', path, body, 4 * 1024 * 1024);
    if (a.status !== 200) throw new Error(`the ledger writer answered ${a.status}`);
    // Untrusted bytes from the wire: the strict parser.
    return parseJson(a.body, { maxBytes: 4 * 1024 * 1024, maxDepth: 64 });
  };
  const append = async (entry: ExecutionEntry | RefusalEntry): Promise<LedgerRef> => {
    const v = await post('/v1/internal/ledger/append', entry as unknown as JsonValue);
    if (!isLedgerRef(v)) throw new Error('the ledger writer answered garbage');
    return Object.freeze({ index: v.index, entry_hash: v.entry_hash });
  };
  return {
    async readEnvelopeContext(query): Promise<EnvelopeLedgerContext> {
      const v = await post('/v1/internal/ledger/envelope-context', { ...query });
      if (!isObject(v)) throw new Error('the ledger writer answered garbage');
      const decision = v['decision'] === null ? undefined : recordOf(v['decision'] ?? null);
      const issued = recordsOf(v['issued']);
      const finalized = recordsOf(v['finalized']);
      if (
        (v['decision'] !== null && decision === undefined) ||
        issued === undefined ||
        finalized === undefined
      )
        throw new Error('the ledger writer answered garbage');
      return { decision, issued, finalized };
    },
    append: (entry) => append(entry),
    appendRefusal: (entry) => append(entry),
  };
}

/** The issuer keys and policy bundles as the separate Execution Layer gets them from the Gate process. */
export interface GateTrust {
  /** A key ring over the copy held (unknown kids when none is held). */
  readonly keys: KeyRing;
  /**
   * Undefined when the keys held are fresh enough (fetching them if not); else the deny. With
   * `kid`, a fresh copy that does not know it is fetched again (a rotation just made), at most
   * once per {@link KID_REFETCH_MS}, so unknown kids cannot make it ask the Gate on every call.
   */
  freshKeys(kid?: string): Promise<Deny | undefined>;
  /**
   * Undefined when the bundle `hash` is held (fetching, hashing and compiling it if not), or when
   * the Gate holds no such bundle: the envelope then names an unknown bundle, which the
   * executor's own check denies (`ERR_ENVELOPE_POLICY_UNKNOWN`) in its place in the verification
   * order, after the signature (SPEC §3). Else the deny.
   */
  bundle(hash: string): Promise<Deny | undefined>;
  /** The compiled bundle `hash`, if held. */
  held(hash: string): PolicyRuntime | undefined;
}

/** Options of {@link createGateTrust}. */
export interface GateTrustOptions {
  readonly link: GateLink;
  readonly now: Clock;
  readonly maxAgeMs: number;
  readonly compile: (bytes: Uint8Array, hash: string) => PolicyRuntime;
}

const UNKNOWN: KeyLookup = Object.freeze({ status: 'unknown' });

/** Least time between fetches of the issuer keys for a kid the copy held does not know (ms). */
export const KID_REFETCH_MS = 250;

/** See {@link GateTrust}. */
export function createGateTrust(options: GateTrustOptions): GateTrust {
  const { link, now, maxAgeMs } = options;
  let ring: KeyRing | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let refreshing: Promise<void> | undefined;
  // Requests are ordered by when they were asked, not by the clock: a clock set back must not
  // keep an older answer in place of a newer one.
  let asks = 0;
  let held = 0;
  const bundles = new Map<string, PolicyRuntime>();
  // A copy whose age is negative (the clock went back since it was fetched) has no known age:
  // not fresh, so the keys are fetched again and a revocation still arrives within the bound.
  const fresh = (margin = 0): boolean => {
    if (ring === undefined) return false;
    const age = now() - fetchedAt;
    return age >= 0 && age < maxAgeMs - margin;
  };
  // A call checked now verifies its envelope a moment later: the copy is renewed this long before
  // its bound, so that no call is denied for a copy that aged past it in between.
  const renewMs = Math.min(1000, Math.floor(maxAgeMs / 4));
  const refresh = async (): Promise<void> => {
    // The age counts from before the request: a slow answer is no fresher than when it was asked.
    const asked = now();
    const ask = (asks += 1);
    const a = await gateRequest(link, 'GET', '/v1/internal/issuer-jwks', undefined, 1 << 20);
    if (a.status !== 200) throw new Error(`issuer keys: ${a.status}`);
    const v = parseJson(a.body, { maxBytes: 1 << 20, maxDepth: 8 });
    if (!isObject(v)) throw new Error('issuer keys: garbage');
    const next = keyRingFromJwks(v['jwks']);
    if (ask > held) {
      ring = next;
      fetchedAt = asked;
      held = ask;
    }
  };
  const keys: KeyRing = Object.freeze({
    add: () => {
      throw new TypeError('the executor key ring follows the Gate process and is read-only');
    },
    revoke: () => {
      throw new TypeError('the executor key ring follows the Gate process and is read-only');
    },
    // Only a copy fresh enough is used: past its age, every kid is unknown.
    lookup: (kid: unknown) => (fresh() ? ring!.lookup(kid) : UNKNOWN),
    toJwks: () => {
      if (ring === undefined) throw new TypeError('no issuer keys held');
      return ring.toJwks();
    },
  });
  let kidAskedAt = Number.NEGATIVE_INFINITY;
  return {
    keys,
    async freshKeys(kid?: string) {
      const known = kid === undefined || (ring !== undefined && ring.lookup(kid).status !== 'unknown');
      const since = now() - kidAskedAt;
      const mayAsk = !known && (since < 0 || since >= Math.min(KID_REFETCH_MS, maxAgeMs));
      if (fresh(renewMs) && !mayAsk) return undefined;
      if (mayAsk) kidAskedAt = now();
      try {
        await (refreshing ??= refresh().finally(() => (refreshing = undefined)));
      } catch {
        // Judged below: only a copy fresh enough counts.
      }
      return fresh()
        ? undefined
        : deny('ERR_TRUST_UNAVAILABLE', 'the issuer keys could not be had from the Gate fresh enough');
    },
    async bundle(hash) {
      if (bundles.has(hash)) return undefined;
      let a: GateAnswer;
      try {
        a = await gateRequest(link, 'GET', `/v1/internal/bundles/${hash}`, undefined, MAX_BUNDLE_BYTES + 1);
      } catch {
        return deny('ERR_TRUST_UNAVAILABLE', 'the policy bundle could not be had from the Gate');
      }
      // Not held here either: `held(hash)` stays undefined, so the executor denies the envelope.
      if (a.status === 403) return undefined;
      if (a.status !== 200)
        return deny('ERR_TRUST_UNAVAILABLE', 'the policy bundle could not be had from the Gate');
      // Hashed again here: bytes that are not the bundle asked for are refused, whoever sent them.
      if (!hexDigestEquals(sha256Hex(a.body), hash))
        return deny('ERR_POLICY_BUNDLE_INVALID', 'the bundle served does not hash to the hash asked for');
      try {
        const runtime = options.compile(a.body, hash);
        if (!hexDigestEquals(runtime.hash, hash))
          return deny('ERR_POLICY_BUNDLE_INVALID', 'the compiled bundle hash differs');
        bundles.set(hash, runtime);
        return undefined;
      } catch {
        return deny('ERR_POLICY_BUNDLE_INVALID', 'the bundle served does not compile');
      }
    },
    held: (hash) => bundles.get(hash),
  };
}

/** The `kid` of an envelope's protected header, unverified (only to know which key to have). */
export function kidNamed(envelope: unknown): string | undefined {
  if (typeof envelope !== 'string' || envelope.length > 64 * 1024) return undefined;
  const head = envelope.split('.')[0];
  try {
    const bytes = head === undefined ? undefined : decodeBase64url(head);
    if (bytes === undefined) return undefined;
    const header = parseJson(bytes, { maxBytes: 4 * 1024, maxDepth: 4 });
    const kid = isObject(header) ? header['kid'] : undefined;
    return typeof kid === 'string' && kid.length <= 256 ? kid : undefined;
  } catch {
    return undefined;
  }
}

/** The `policy_bundle` claim an envelope names, read without verifying it (the executor verifies). */
export function policyBundleNamed(envelope: unknown): string | undefined {
  if (typeof envelope !== 'string' || envelope.length > 64 * 1024) return undefined;
  const parts = envelope.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const bytes = decodeBase64url(parts[1]!);
    if (bytes === undefined) return undefined;
    const claims = parseJson(bytes, { maxBytes: 32 * 1024, maxDepth: 8 });
    const hash = isObject(claims) ? claims['policy_bundle'] : undefined;
    return typeof hash === 'string' && HASH_RE.test(hash) ? hash : undefined;
  } catch {
    return undefined;
  }
}

const bounded = (v: unknown): string => (typeof v === 'string' ? v.slice(0, 256) : '');

/** How long a stop gives the tools it ends to stop, before their receipts' ledger deadline (ms). */
const STOP_TOOLS_END_MS = 5000;

/**
 * Logs each execution's outcome: identifiers, the tool's name and the code only, never
 * parameters, results or envelopes (OE-INV-009).
 */
function loggedExecutor(inner: Executor, logger: Logger): Executor {
  if (!logger.isLevelEnabled('info')) return inner;
  return Object.freeze({
    ...inner,
    async execute(input: ExecutionInput, writes?: DurableWrites, relay?: CallRelay, signal?: AbortSignal) {
      const t = performance.now();
      const r = await inner.execute(input, writes, relay, signal);
      // A log line never changes the outcome: a logger that throws is ignored.
      try {
        logger.info(
          {
            request_id: typeof input.request_id === 'string' ? input.request_id : null,
            trace_id: typeof input.trace_id === 'string' ? input.trace_id : null,
            tool: observedToolName(input.tool),
            outcome: r.outcome,
            code: r.outcome === 'deny' ? r.code : null,
            duration_ms: Math.round((performance.now() - t) * 1000) / 1000,
          },
          'execute',
        );
      } catch {
        // Ignored (see above).
      }
      return r;
    },
  });
}

/**
 * `inner` with the trust it needs fetched first: fresh issuer keys and the envelope's policy
 * bundle. When either cannot be had, the call is denied (recorded as a `denial`, best effort)
 * and `inner` is never called: nothing runs.
 */
export function trustedExecutor(
  inner: Executor,
  trust: GateTrust,
  ledger: ExecutionLedger,
  audience: string,
  ledgerMs: number,
): Executor {
  const prepare = async (input: ExecutionInput): Promise<Deny | undefined> => {
    const keys = await trust.freshKeys(kidNamed(input.envelope));
    if (keys !== undefined) return keys;
    const hash = policyBundleNamed(input.envelope);
    // No hash to fetch: the envelope is malformed, and the executor denies it with its own code.
    return hash === undefined ? undefined : await trust.bundle(hash);
  };
  const record = async (input: ExecutionInput, d: Deny): Promise<void> => {
    await withDeadline(
      () =>
        ledger.append({
          type: 'denial',
          trace_id: bounded(input.trace_id),
          request_id: bounded(input.request_id),
          tenant: bounded(input.tenant),
          actor: { id: audience, role: 'executor' },
          payload: { code: d.code, stage: 'execution', reason: d.reason, tool: bounded(input.tool) },
        }),
      ledgerMs,
    );
  };
  return {
    async execute(input, writes, relay, signal) {
      const d = await prepare(input);
      // The relay (a Gate's, over the wire) reaches the executor's guard as in-process, and so
      // does the Gate's giving up (its connection closed).
      if (d === undefined) return inner.execute(input, writes, relay, signal);
      await record(input, d);
      return d;
    },
    async void(input: VoidInput) {
      const d = await prepare(input);
      if (d === undefined) return inner.void(input);
      await record(input, d);
      return d;
    },
  };
}

/**
 * Opens the nonce store `config.nonces` names: a SQLite file, or a shared PostgreSQL schema.
 *
 * On PostgreSQL the Execution Layer needs no more of the database than its nonce tables
 * (FC-INV-6 least privilege; `deploy/postgres/executor-role.sql` grants exactly that): a schema
 * already at this build's version is used as it is, without a DDL statement; only a schema that
 * is behind (a fresh one, say) is migrated, which needs the rights the gates' role has. A role
 * that can do neither is refused at start, naming both reasons.
 */
export async function openExecutorNonceStore(
  config: Pick<
    ExecutorNodeConfig,
    'nonces' | 'nonces_schema' | 'clock_tolerance_sec' | 'max_envelope_lifetime_sec'
  >,
  clock: Clock,
): Promise<{ readonly store: NonceStore; readonly identity: () => Promise<string>; close(): Promise<void> }> {
  const retainAfterExpSec = config.clock_tolerance_sec + config.max_envelope_lifetime_sec;
  if (!/^postgres(ql)?:\/\//.test(config.nonces)) {
    const store = createSqliteNonceStore({ path: config.nonces, now: clock, retainAfterExpSec });
    const path = config.nonces;
    return {
      store,
      identity: () => Promise.resolve(sqliteNonceStoreIdentity(path)),
      close: () => store.close(),
    };
  }
  const db = openPostgresPool({
    url: config.nonces,
    ...(config.nonces_schema === undefined ? {} : { schema: config.nonces_schema }),
    max: 8,
  });
  try {
    await assertSchemaCurrent(db).catch(async (notCurrent: unknown) => {
      await migrate(db).catch((err: unknown) => {
        throw new Error(
          `nonce store: ${(notCurrent as Error).message}, and migrating it failed: ${(err as Error).message}`,
        );
      });
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  const store = createPostgresNonceStore(db, { now: clock, retainAfterExpSec });
  return {
    store,
    identity: () => postgresNonceStoreIdentity(db),
    async close() {
      await store.close();
      await db.close();
    },
  };
}

/** Options of {@link startExecutorNode}. */
export interface ExecutorNodeOptions {
  readonly clock?: Clock;
  /** Where FC_SECRET_ variables are read; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Sees every tool run just before its adapter starts (tests). */
  readonly onToolRun?: ToolRunObserver;
  /** Admit Streamable HTTP upstreams at a literal loopback address (tests and development only). */
  readonly allowLoopbackMcpUpstreams?: boolean;
  /** Where logs go (default standard output) and their level when neither file nor variable says (default `info`). */
  readonly logDestination?: LogDestination;
  readonly defaultLogLevel?: LogLevel;
}

/** A running separate Execution Layer. */
export interface ExecutorNode {
  /** `https://HOST:PORT` of its `POST /v1/execute`. */
  readonly url: string;
  readonly config: ExecutorNodeConfig;
  /** `http://HOST:PORT` of the metrics listener (`GET /metrics`) when metrics are served. */
  readonly metricsUrl?: string;
  /** Re-reads its mutual-TLS files (listener and client), as `failclosed up` does on SIGHUP. */
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the separate Execution Layer from its configuration file. */
export async function startExecutorNode(
  configPath: string,
  options: ExecutorNodeOptions = {},
): Promise<ExecutorNode> {
  const config = readExecutorConfig(configPath);
  const clock = options.clock ?? systemClock;
  const env = options.env ?? process.env;
  // Its own logs, metrics and traces (role `executor`): its stage spans join each call's trace,
  // whose root span id every role derives from the ledger's trace id (telemetry/tracing.ts).
  const settings = resolveTelemetrySettings(config, env, options.defaultLogLevel ?? 'info');
  const telemetry = await createTelemetry({
    logLevel: settings.logLevel,
    role: 'executor',
    env,
    ...(options.logDestination === undefined ? {} : { logDestination: options.logDestination }),
  });
  // The Control Plane by its role, not by the host it is dialled at (FC-INV-6).
  const agent = await createMtlsAgent({ files: config.tls, expect: ['control-plane'], now: clock });
  const link: GateLink = {
    url: config.gate_url,
    ...(config.gate_standby_urls === undefined ? {} : { standby: config.gate_standby_urls }),
    agent,
    timeoutMs: config.gate_timeout_ms,
  };
  const ledger = createGateLedger(link);
  // Bundles naming a builtin this Execution Layer lacks never load (OE-INV-005).
  const compile = createBundleCompiler({ builtins: Object.keys(createDefaultBuiltins()) });
  const trust = createGateTrust({ link, now: clock, maxAgeMs: config.keys_max_age_ms, compile });
  let nonces: Awaited<ReturnType<typeof openExecutorNonceStore>>;
  /** The store the queue workers bind their stream to (docs/jobs.md "Shared nonce store"). */
  let nonceStore: string | undefined;
  try {
    nonces = await openExecutorNonceStore(config, clock);
    try {
      if (config.jobs !== undefined) nonceStore = await nonces.identity();
    } catch (err) {
      await nonces.close();
      throw err;
    }
  } catch (err) {
    agent.close();
    throw err;
  }
  const secrets = createEnvSecretResolver({
    env: options.env ?? process.env,
    ...(config.secrets !== undefined && existsSync(config.secrets) ? { file: config.secrets } : {}),
  });
  // Upstream access tokens the Execution Layer obtains are redacted like secrets.
  const tokens = createUpstreamTokenCache();
  const redactor = createRedactor({ secrets: () => [...secrets.knownValues(), ...tokens.knownValues()] });
  const sandbox = createBwrapSandbox();
  const ledgerMs = config.gate_timeout_ms + 500;
  const inner = createExecutor({
    // Guarded: telemetry never decides a call's outcome.
    observer: guardObserver(telemetry.observer),
    audience: config.audience,
    // Public keys only, from the Gate process, no older than `keys_max_age_ms`.
    keys: trust.keys,
    now: clock,
    clockToleranceSec: config.clock_tolerance_sec,
    maxLifetimeSec: config.max_envelope_lifetime_sec,
    isKnownPolicyBundle: (hash) => trust.held(hash) !== undefined,
    ledger,
    nonces: nonces.store,
    resolveTool: (hash, name) => trust.held(hash)?.getTool(name)?.adapter,
    adapters: executionAdapters({
      clock,
      sandbox,
      tokens,
      allowLoopbackMcpUpstreams: options.allowLoopbackMcpUpstreams === true,
      ...(options.onToolRun === undefined ? {} : { onToolRun: options.onToolRun }),
    }),
    redactor,
    secrets,
    timeouts: { ledgerMs, nonceMs: 1000 },
  });
  // What the node still has under way: executions, voids and the listener's own records.
  const drain = createInFlight();
  const logged = loggedExecutor(
    trustedExecutor(inner, trust, ledger, config.audience, ledgerMs),
    telemetry.logger,
  );
  const executor: Executor = Object.freeze({
    execute: (...args: Parameters<Executor['execute']>) => drain.track(logged.execute(...args)),
    void: (input: Parameters<Executor['void']>[0]) => drain.track(logged.void(input)),
  });
  let server: ExecutionServer;
  try {
    server = await createExecutionServer(executor, {
      host: config.listen.host,
      port: config.listen.port,
      // The listener's own records (a result too large for an answer, an internal failure).
      ledger: { append: (e) => drain.track(ledger.append(e)) },
      audience: config.audience,
      ledgerMs,
      tls: {
        files: config.tls,
        now: clock,
        onRefused: createRefusalRecorder({
          append: (e) => drain.track(ledger.appendRefusal(e)),
          listener: 'execution',
          actor: { id: config.audience, role: 'executor' },
          now: clock,
        }),
      },
    });
  } catch (err) {
    agent.close();
    await nonces.close();
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
    await server.close();
    agent.close();
    await nonces.close();
    await telemetry.close();
    throw err;
  }
  telemetry.logger.info(
    { url: server.url, metrics: metricsServer?.url ?? null, tracing: telemetry.tracing !== undefined },
    'executor listening',
  );
  // Queue workers run each job through the same executor as `POST /v1/execute` (FC-INV-6).
  const workers =
    config.jobs === undefined || nonceStore === undefined
      ? undefined
      : startNatsWorkers(
          {
            ...natsOptionsOf(config.jobs),
            concurrency: config.jobs.workers ?? 2,
            // Workers of one stream share one nonce store (docs/jobs.md): bound to this one.
            nonceStore,
            onRefused: (err) => telemetry.logger.error({ err: err.message }, 'queue workers refused'),
            onBindError: (err) =>
              telemetry.logger.warn(
                { err: err.message },
                'queue workers: the nonce store binding could not be read',
              ),
          },
          (input) => executor.execute(input),
        );
  const stop = async (): Promise<void> => {
    // Closing the listener closes the Gates' connections: the calls still running are cut (their
    // tools ended, or never started); at the same time queue workers stop asking for jobs (one
    // already asked for may still arrive) and finish the ones they hold, each within its own time
    // limit. Then their receipts and records are written before the ledger link and the nonce
    // store close, so that no consumed envelope is left without one, unless the writes still
    // pending outlast the ledger deadline and 5 s more (the tools' time to end): then they are
    // given up. Each step runs whatever the one before did.
    const steps: (() => Promise<unknown> | undefined | void)[] = [
      // Together: the workers stop taking jobs while the listener waits on its connections.
      async () => {
        const closed = await Promise.allSettled([server.close(), workers?.close()]);
        const failed = closed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed !== undefined) throw failed.reason;
      },
      () => drain.settled(ledgerMs + STOP_TOOLS_END_MS),
      () => agent.close(),
      () => nonces.close(),
      () => metricsServer?.close(),
      () => telemetry.close(),
    ];
    let failed: { readonly err: unknown } | undefined;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        failed ??= { err };
      }
    }
    if (failed !== undefined) throw failed.err;
  };
  let closing: Promise<void> | undefined;
  return {
    url: server.url,
    config,
    ...(metricsServer === undefined ? {} : { metricsUrl: metricsServer.url }),
    async reloadTls() {
      const results = await Promise.allSettled([server.reload(), agent.reload()]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    },
    /** Stops it; asked again, the same stop. */
    close: () => (closing ??= stop()),
  };
}
