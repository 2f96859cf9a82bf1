/**
 * End-to-end harness (SPEC §7): one real deployment per test file (real SQLite, real bubblewrap,
 * real HTTP on loopback), the real signing client, an adjustable injected clock, a tool-run
 * counter (the only way to observe that a tool ran), a fault-injecting wrapper around the Gate's
 * port to the Execution Layer (it captures envelopes in flight: the ledger never holds an
 * unconsumed one) and helpers to present envelopes to the Execution Layer's listener.
 *
 * Three topologies (FC-INV-6; SPEC §1 "can be deployed independently"):
 * - `embedded` (default): every role in one process (`startEmbedded`), the Execution Layer's
 *   listener on loopback.
 * - `distributed`: the Gate process with `executor_url`, `internal_port` and `tls` (a fresh dev
 *   CA), and a separate Execution Layer (`startExecutorNode`, the `failclosed serve executor`
 *   composition) with its own nonce store, public keys only, reaching the Gate's internal
 *   listener over mutual TLS, on the same test clock and tool-run counter. `execute` then
 *   presents bodies to that node over mutual TLS with a `gate` certificate: the strongest caller
 *   its transport admits, so every verdict comes from the Execution Layer's own checks.
 * - `keyless`: the most separated shape (docs/deployment.md "Separate Gate"). The Control Plane
 *   process (`startEmbedded`, the `failclosed up` composition) on a fresh PostgreSQL database
 *   with `internal_port` and `internal_gates`, the separate Execution Layer as in `distributed`,
 *   and a Gate holding no key (`startGateNode`, the `failclosed serve gate` composition) on the
 *   Gate's own least-privilege database role (deploy/postgres/gate-role.sql), reaching both over
 *   mutual TLS. Clients call that Gate; the fault/capture wrapper sits around its port to the
 *   Execution Layer; `execute` presents to the Execution Layer as in `distributed`. Every role on
 *   the same test clock and tool-run counter; the database is created and dropped with the
 *   deployment (test/support/postgres.ts).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { CallResult, FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readConfig,
  readOperatorToken,
  readSigningKey,
  startEmbedded,
  startExecutorNode,
} from '../../src/embedded/index.js';
import { startGateNode } from '../../src/embedded/index.js';
import type { EmbeddedInstance, EmbeddedOptions, ExecutorNode, GateNode } from '../../src/embedded/index.js';
import type { GateControlPlane, GateExecutor } from '../../src/gate/index.js';
import { parseJson } from '../../src/kernel/index.js';
import type { JsonObject, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { createDevCa, createMtlsAgent, issueCert, pkiPaths } from '../../src/transport/index.js';
import type { MtlsAgent } from '../../src/transport/index.js';
import { faultDecorators, faultyControlPlane, noFaults } from '../support/faults.js';
import type { InjectedFaults } from '../support/faults.js';
import { REPO_ROOT } from '../support/paths.js';
import { createRoleWith, createTestDatabase, nextSchema } from '../support/postgres.js';
import type { TestDatabase, TestRole } from '../support/postgres.js';
import { freePort } from '../support/ports.js';

/** A clock the test moves: real time plus an offset. */
export interface TestClock {
  readonly now: () => number;
  /** Sets the offset from real time (ms). */
  set(offsetMs: number): void;
}

/** Creates a {@link TestClock} at offset 0. */
export function testClock(): TestClock {
  let offset = 0;
  return { now: () => Date.now() + offset, set: (ms) => void (offset = ms) };
}

/** An HTTP answer: status and parsed JSON body. */
export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * Where the roles run: all in one process, the Execution Layer as its own composition, or also
 * the Gate as its own composition holding no key.
 */
export type Topology = 'embedded' | 'distributed' | 'keyless';

/**
 * Every topology, the keyless Gate's too, for `describe.each` over a suite that must hold in each:
 * the SPEC §7 scenario files (scenarios, faults, incident, secrets, sandbox, envelope attacks,
 * policy bundles) run in all three (FC-INV-6).
 */
export const ALL_TOPOLOGIES: readonly Topology[] = ['embedded', 'distributed', 'keyless'];

/** One running deployment and its observation points. */
export interface E2e {
  readonly topology: Topology;
  readonly dir: string;
  /**
   * The Gate process (with every role in `embedded`; without the Execution Layer in
   * `distributed`); in `keyless`, the Control Plane process, which clients do not call.
   */
  readonly instance: EmbeddedInstance;
  /** Where clients call: the instance's listener, or the keyless Gate's (`keyless`). */
  readonly url: string;
  /** The keyless Gate (`keyless` only). */
  readonly gate: GateNode | undefined;
  /** The separate Execution Layer (`distributed` and `keyless`). */
  readonly node: ExecutorNode | undefined;
  /** Its directory: configuration and nonce store (`distributed` and `keyless`). */
  readonly nodeDir: string | undefined;
  /**
   * How long the Execution Layer may check envelopes against issuer keys it already holds: 0
   * embedded (it reads the Control Plane's key ring), the node's `keys_max_age_ms` distributed
   * (a rotation or revocation reaches it within that bound, docs/deployment.md).
   */
  readonly keysMaxAgeMs: number;
  /** Fault switches of the instance's dependencies, read on every call. */
  readonly faults: InjectedFaults;
  readonly clock: TestClock;
  /**
   * Moves the test clock (`clock.set`) and, where the Control Plane follows a PostgreSQL backend
   * (`keyless`), has it confirm the deployment's policy and issuer keys on the new time before
   * returning: its follower reads a step of the clock beyond its staleness bound, either way, as
   * not knowing and denies every decision `ERR_POLICY_UNAVAILABLE` until a follow round succeeds
   * (replica-follow.ts), which a Control Plane whose clock really stood there would have run long
   * before. Without a follower it only sets the clock.
   */
  setClock(offsetMs: number): Promise<void>;
  /** Tool runs seen so far, by tool name. */
  readonly runs: Map<string, number>;
  /** Total tool runs so far. */
  totalRuns(): number;
  /** The demo client (`demo-agent`, tenant `acme`) on the test clock, or another registered one. */
  client(options?: { name?: string; now?: () => number }): FailclosedClient;
  /** Registers a new client in `tenant` through the operator endpoint; returns its key. */
  addClient(name: string, tenant: string): Promise<SigningKey>;
  /** The evidence view of a request (operator token). */
  evidence(requestId: string): Promise<Answer>;
  /** The consumed envelope of an executed request, read from its `execution.receipt` record. */
  envelopeOf(requestId: string): Promise<string>;
  /**
   * The wrapper around the client-facing Gate's port to the Execution Layer (test fault
   * injection): the instance's, or the keyless Gate's.
   */
  readonly port: CapturingPort;
  /**
   * `POST /v1/execute` on the Execution Layer's own listener, bypassing the Gate (distributed and
   * keyless: over mutual TLS with a `gate` certificate).
   */
  execute(body: JsonValue | string): Promise<Answer>;
  /**
   * A real envelope for `tool`/`params` whose issuance was ledgered but that was never used: the
   * wrapper captures it on its way to the Execution Layer, answers the Gate "unavailable" and
   * drops the Gate's void (as a partition would), so the envelope stays live until its TTL.
   */
  unusedEnvelope(tool: string, params: JsonObject): Promise<{ envelope: string; requestId: string }>;
  /** The issuer's signing key, read from the data directory (to forge well-signed attacks). */
  issuerKey(): SigningKey;
  close(): Promise<void>;
}

let sessionCounter = 0;

/** A fresh session id: keeps the per-session circuit breakers out of unrelated tests. */
export function session(): string {
  sessionCounter += 1;
  return `e2e-${process.pid}-${sessionCounter}-${Date.now()}`;
}

async function answer(res: Response): Promise<Answer> {
  const body = parseJson(new Uint8Array(await res.arrayBuffer())) as Record<string, unknown>;
  return { status: res.status, body };
}

/**
 * Fault injection around the Gate's port to the Execution Layer. `pass`: calls go through;
 * `capture`: `execute` keeps the envelope and answers `ERR_EXECUTION_UNAVAILABLE`, `void` is
 * dropped (answered unconfirmed) — the envelope stays live; `hang`: `execute` keeps the envelope
 * and never answers, `void` goes through. `around` wraps each real `execute` (e.g. to switch a
 * fault on for its duration).
 */
export interface CapturingPort {
  mode: 'pass' | 'capture' | 'hang';
  around: (<T>(run: () => Promise<T>) => Promise<T>) | undefined;
  /** Envelopes seen by `execute`, in order. */
  readonly captured: string[];
  /** Answers to the Gate's void requests that went through, in order. */
  readonly voids: unknown[];
}

function capturingPort(): { port: CapturingPort; wrap: (inner: GateExecutor) => GateExecutor } {
  const port: CapturingPort = { mode: 'pass', around: undefined, captured: [], voids: [] };
  const wrap = (inner: GateExecutor): GateExecutor => ({
    // Everything the Gate hands on goes on: its shared commit, its deadline, the caller's relay.
    execute: (call, writes, signal, relay) => {
      port.captured.push(call.envelope);
      if (port.mode === 'capture')
        return Promise.resolve({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'captured' });
      if (port.mode === 'hang') return new Promise(() => undefined);
      const around = port.around;
      const run = () => inner.execute(call, writes, signal, relay);
      return around === undefined ? run() : around(run);
    },
    void: async (call, signal) => {
      if (port.mode === 'capture')
        return { outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'void dropped' };
      const r = await inner.void(call, signal);
      port.voids.push(r);
      return r;
    },
  });
  return { port, wrap };
}

/** The issuer keys' age bound of the distributed topology's Execution Layer (its default). */
const KEYS_MAX_AGE_MS = 5000;

/**
 * Distributed topology, first half: a dev CA with `gate`, `control-plane` and `executor` certificates under
 * `work`, and the Gate's `failclosed.json` naming the Execution Layer at `executor_url` and its
 * own `internal_port`. Returns what the node's configuration needs.
 */
async function separateExecutionLayer(
  work: string,
  dir: string,
  extra: JsonObject = {},
): Promise<{ pki: string; execPort: number; internalPort: number }> {
  const pki = join(work, 'certs');
  await createDevCa(pki);
  await Promise.all([
    issueCert(pki, { role: 'gate' }),
    issueCert(pki, { role: 'control-plane' }),
    issueCert(pki, { role: 'executor' }),
    // The keyless topology's Gate: a certificate only to connect out with (FC-INV-6).
    issueCert(pki, { role: 'gate', name: 'gate-1', clientOnly: true }),
  ]);
  const [internalPort, execPort] = [await freePort(), await freePort()];
  const config = parseJson(readFileSync(dataPaths(dir).config)) as JsonObject;
  writeFileSync(
    dataPaths(dir).config,
    JSON.stringify({
      ...config,
      executor_url: `https://127.0.0.1:${execPort}`,
      internal_port: internalPort,
      tls: {
        ca: pkiPaths(pki).caCert,
        gate: { cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
        control_plane: {
          cert: pkiPaths(pki).cert('control-plane'),
          key: pkiPaths(pki).key('control-plane'),
        },
      },
      ...extra,
    }),
  );
  return { pki, execPort, internalPort };
}

/** Distributed topology, second half: the node's configuration file, the Gate's limits copied. */
function executorConfig(
  work: string,
  dir: string,
  at: { pki: string; execPort: number; internalPort: number },
  extra: JsonObject,
): string {
  const gate = readConfig(dir);
  mkdirSync(join(work, 'executor'));
  const path = join(work, 'executor', 'executor.json');
  writeFileSync(
    path,
    JSON.stringify({
      audience: gate.audience,
      listen: { host: '127.0.0.1', port: at.execPort },
      gate_url: `https://127.0.0.1:${at.internalPort}`,
      tls: {
        ca: pkiPaths(at.pki).caCert,
        cert: pkiPaths(at.pki).cert('executor'),
        key: pkiPaths(at.pki).key('executor'),
      },
      nonces: 'nonces.db',
      clock_tolerance_sec: gate.clock_tolerance_sec,
      max_envelope_lifetime_sec: gate.max_envelope_lifetime_sec,
      keys_max_age_ms: KEYS_MAX_AGE_MS,
      // Generous on a loaded test machine; a refused connection is still answered at once.
      gate_timeout_ms: 10_000,
      log: { level: 'silent' },
      ...extra,
    }),
  );
  return path;
}

const GATE_ROLE_SQL = join(REPO_ROOT, 'deploy/postgres/gate-role.sql');

/**
 * Keyless topology: the Gate's configuration file (`failclosed serve gate`), reaching the
 * Control Plane process's internal listener and the Execution Layer with its `gate` certificate,
 * its shared state on `state` (the Gate's own role), the Control Plane's request timestamp
 * tolerance copied (scenario 18 reads it there).
 */
function keylessGateConfig(
  work: string,
  dir: string,
  at: { pki: string; execPort: number; internalPort: number },
  state: string,
  extra: JsonObject = {},
): string {
  const path = join(work, 'gate.json');
  writeFileSync(
    path,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      control_plane_url: `https://127.0.0.1:${at.internalPort}`,
      executor_url: `https://127.0.0.1:${at.execPort}`,
      tls: {
        ca: pkiPaths(at.pki).caCert,
        cert: pkiPaths(at.pki).cert('gate-1'),
        key: pkiPaths(at.pki).key('gate-1'),
      },
      state,
      timestamp_tolerance_ms: readConfig(dir).timestamp_tolerance_ms,
      // Generous on a loaded test machine; a refused connection is still answered at once.
      control_plane_timeout_ms: 10_000,
      log: { level: 'silent' },
      ...extra,
    }),
  );
  return path;
}

/** `POST /v1/execute` at `url` through `agent` (mutual TLS). */
function postOverMtls(url: string, agent: MtlsAgent, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/execute`,
      {
        method: 'POST',
        agent: agent.current(),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const parsed = parseJson(new Uint8Array(Buffer.concat(chunks))) as Record<string, unknown>;
            resolve({ status: res.statusCode ?? 0, body: parsed });
          } catch (err) {
            reject(err instanceof Error ? err : new Error('unparseable answer'));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Starts a deployment over a fresh data directory (built from `policyDir` when given).
 *
 * The separate topologies' listeners name each other in their configuration files, so their
 * ports are picked before anything binds (`freePort`); another test file running in parallel can
 * take one in between. That start, and only that, is tried again on fresh ports (at most three
 * tries): every try has its own directory, and a failed try is stopped and removed.
 */
export async function startE2e(options: E2eOptions = {}): Promise<E2e> {
  for (let tries = 1; ; tries += 1) {
    try {
      return await startE2eOnce(options);
    } catch (err) {
      if (tries >= 3 || !addressInUse(err)) throw err;
    }
  }
}

function addressInUse(err: unknown): boolean {
  return (
    err instanceof Error &&
    ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' || err.message.includes('EADDRINUSE'))
  );
}

/** What `startE2e` is started with. */
export interface E2eOptions {
  policyDir?: string;
  /**
   * Default `embedded`. In `distributed`, `embedded` options configure the Gate process only
   * (its `deadlines.executor` do not reach the separate Execution Layer: see `executor`); in
   * `keyless`, the Control Plane process only.
   */
  topology?: Topology;
  embedded?: Omit<EmbeddedOptions, 'clock' | 'onToolRun' | 'port' | 'executionPort' | 'decorate'>;
  /**
   * Fields of the separate Execution Layer's configuration file (`distributed`, `keyless`), over
   * the harness's.
   */
  executor?: JsonObject;
  /** Fields of the keyless Gate's configuration file (`keyless`), over the harness's. */
  gate?: JsonObject;
  /** Fields of `failclosed.json` of the data directory (the Control Plane's in `keyless`), over `init`'s. */
  config?: JsonObject;
  /**
   * Wraps the keyless Gate's port to the Control Plane process inside the fault wrapper
   * (`keyless` only): a test that plays a compromised Gate alters what it asks.
   */
  gateControlPlane?: (port: GateControlPlane) => GateControlPlane;
}

async function startE2eOnce(options: E2eOptions): Promise<E2e> {
  const topology = options.topology ?? 'embedded';
  const work = mkdtempSync(join(tmpdir(), 'fc-e2e-'));
  const dir = topology === 'embedded' ? work : join(work, 'gate');
  const clock = testClock();
  const capture = capturingPort();
  const runs = new Map<string, number>();
  const onToolRun = ({ tool }: { tool: string }): void => void runs.set(tool, (runs.get(tool) ?? 0) + 1);
  const faults = noFaults();
  let database: TestDatabase | undefined;
  let gateRole: TestRole | undefined;
  let instance: EmbeddedInstance | undefined;
  let node: ExecutorNode | undefined;
  let gate: GateNode | undefined;
  let gateAgent: MtlsAgent | undefined;
  const stop = async (): Promise<void> => {
    await gate?.close();
    gateAgent?.close();
    await node?.close();
    await instance?.close();
    if (database !== undefined) await gateRole?.drop(database.url);
    await database?.drop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    let backend: { url: string; schema: string } | undefined;
    if (topology === 'keyless') {
      database = await createTestDatabase('fc_e2e_keyless');
      const schema = nextSchema();
      backend = { url: `${database.url}?schema=${schema}`, schema };
    }
    await initDataDir(dir, {
      ...(options.policyDir === undefined ? {} : { policyDir: options.policyDir }),
      ...(backend === undefined ? {} : { backend: backend.url }),
    });
    if (options.config !== undefined) {
      const file = dataPaths(dir).config;
      const current = parseJson(readFileSync(file)) as JsonObject;
      writeFileSync(file, JSON.stringify({ ...current, ...options.config }, null, 2));
    }
    const separate =
      topology === 'embedded'
        ? undefined
        : await separateExecutionLayer(work, dir, topology === 'keyless' ? { internal_gates: true } : {});
    instance = await startEmbedded(dir, {
      ...options.embedded,
      port: 0,
      executionPort: 0,
      clock: clock.now,
      onToolRun,
      // In `keyless` clients call the keyless Gate: the capture wrapper goes around its port.
      decorate: faultDecorators(faults, topology === 'keyless' ? undefined : capture.wrap),
    });
    if (separate !== undefined) {
      node = await startExecutorNode(executorConfig(work, dir, separate, options.executor ?? {}), {
        clock: clock.now,
        onToolRun,
      });
      gateAgent = await createMtlsAgent({
        files: {
          ca: pkiPaths(separate.pki).caCert,
          cert: pkiPaths(separate.pki).cert('gate'),
          key: pkiPaths(separate.pki).key('gate'),
        },
        expect: ['executor'],
      });
      // The Gate has no execution listener of its own: its calls go to the node only.
      expect(instance.executionUrl).toBe(node.url);
    }
    if (separate !== undefined && database !== undefined && backend !== undefined) {
      // Once the Control Plane process migrated the schema: the Gate's own role, as documented.
      gateRole = await createRoleWith('fc_gate', GATE_ROLE_SQL, database.url, backend.schema);
      gate = await startGateNode(
        keylessGateConfig(work, dir, separate, gateRole.url(backend.url), options.gate),
        {
          clock: clock.now,
          env: {},
          defaultLogLevel: 'silent',
          decorate: {
            controlPlane: (port) => faultyControlPlane(options.gateControlPlane?.(port) ?? port, faults),
            gateExecutor: capture.wrap,
          },
        },
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const url = gate?.url ?? instance.url;
  const token = readOperatorToken(dir);
  const keys = new Map<string, { key: SigningKey; tenant: string }>();
  const e2e: E2e = {
    topology,
    dir,
    instance,
    url,
    gate,
    node,
    nodeDir: node === undefined ? undefined : join(work, 'executor'),
    keysMaxAgeMs: node === undefined ? 0 : KEYS_MAX_AGE_MS,
    faults,
    clock,
    async setClock(offsetMs) {
      clock.set(offsetMs);
      const follower = instance.core.follower;
      if (follower !== undefined) expect(await follower.round()).toBe(true);
    },
    runs,
    port: capture.port,
    totalRuns: () => [...runs.values()].reduce((a, b) => a + b, 0),
    client(o = {}) {
      const now = o.now ?? clock.now;
      const extra = o.name === undefined ? undefined : keys.get(o.name);
      if (o.name !== undefined && extra === undefined) throw new TypeError(`unknown test client ${o.name}`);
      if (extra !== undefined && o.name !== undefined) {
        return createClient({
          url,
          identity: o.name,
          tenant: extra.tenant,
          key: extra.key,
          now,
        });
      }
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      return createClient({
        url,
        identity: file.identity,
        tenant: file.tenant,
        key: file.key,
        now,
      });
    },
    async addClient(name, tenant) {
      const key = generateSigningKey();
      const res = await fetch(`${instance.url}/v1/admin/clients-add`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, tenant, public_jwk: { ...key.publicJwk } }),
      });
      expect(res.status).toBe(201);
      keys.set(name, { key, tenant });
      return key;
    },
    async evidence(requestId) {
      return answer(
        await fetch(`${instance.url}/v1/requests/${encodeURIComponent(requestId)}`, {
          headers: { authorization: `Bearer ${token}` },
        }),
      );
    },
    async envelopeOf(requestId) {
      const view = await e2e.evidence(requestId);
      expect(view.status).toBe(200);
      const records = view.body['records'] as { entry: { type: string; payload: { envelope?: unknown } } }[];
      const receipt = records.find((r) => r.entry.type === 'execution.receipt');
      const envelope = receipt?.entry.payload.envelope;
      if (typeof envelope !== 'string') throw new Error(`no consumed envelope recorded for ${requestId}`);
      return envelope;
    },
    async execute(body) {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      if (node !== undefined && gateAgent !== undefined) return postOverMtls(node.url, gateAgent, text);
      return answer(
        await fetch(`${instance.executionUrl}/v1/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: text,
        }),
      );
    },
    async unusedEnvelope(tool, params) {
      const before = e2e.totalRuns();
      const seen = capture.port.captured.length;
      capture.port.mode = 'capture';
      let r: CallResult;
      try {
        r = await e2e.client().call(tool, params, { session: session() });
      } finally {
        capture.port.mode = 'pass';
      }
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', envelope_voided: false });
      expect(e2e.totalRuns()).toBe(before);
      const envelope = capture.port.captured[seen];
      if (envelope === undefined) throw new Error('no envelope captured');
      return { envelope, requestId: r.request_id ?? '' };
    },
    issuerKey: () => readSigningKey(dataPaths(dir).issuerKey),
    close: stop,
  };
  return e2e;
}

/** Asserts a deny with `code`, and that no tool ran while `act` ran. */
export async function expectDenied<T extends { outcome?: unknown; code?: unknown } | Answer>(
  e2e: E2e,
  code: string,
  act: () => Promise<T>,
): Promise<T> {
  const before = e2e.totalRuns();
  const r = await act();
  const body = 'body' in r && typeof r.body === 'object' ? r.body : r;
  expect(body).toMatchObject({ outcome: 'deny', code });
  expect(e2e.totalRuns()).toBe(before);
  return r;
}
