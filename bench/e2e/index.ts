/**
 * End-to-end benchmark (SPEC §8 "durable writes", "HTTP"): governed calls/s and latency over
 * HTTP in embedded mode with durable ledger writes (every write acknowledged after the log's
 * `fsync`, `src/kernel/sqlite-commit.ts`), `BENCH_CLIENTS` (32) concurrent clients calling
 * `echo`, against two baselines measured in the same run:
 *   (a) bare HTTP: the same Gate server answering `GET /healthz`, same client count;
 *   (b) the sum of the primitives one governed call needs: request sign + verify, policy
 *       evaluation, envelope sign + verify, and its storage work as the embedded deployment does
 *       it: five ledger entries, one evidence blob, the request and envelope nonces and the
 *       breaker admission on one SQLite connection in three durable rounds, commits shared
 *       under the same concurrency (`src/kernel/sqlite-commit.ts`).
 * The same governed load is then run against the gate on the PostgreSQL backend
 * (`BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`: a database is created
 * for the run and dropped after it; `BENCH_PHASES` without `postgres` skips it).
 * Then the distributed shape (`BENCH_PHASES` without `distributed` skips it): the gate with a
 * separate Execution Layer (`failclosed serve executor`'s entry point in a process of its own),
 * reached over mutual TLS, its ledger writes and keys over the gate's internal listener.
 * Each phase also prints the server process's CPU time (user + system) per call: on a shared,
 * noisy machine it moves less than the rate does, and it is what a faster call must cut. Beside
 * it, the load generator's own CPU per call (signing, the client library's HTTP): both share the
 * machine's cores, so the ratios end with the rate the machine allows at the two together.
 * The load generator runs in its own process (a child of this one) so that the server keeps its
 * own core; each load phase runs `BENCH_RUNS` times (default 3) and the median is reported, the
 * machine being shared and noisy. Loopback only; every phase is bounded (`BENCH_PHASE_MS`,
 * default 10 s) and the process stops by itself. Run: `npm run bench:e2e` (profile:
 * `node --cpu-prof dist/bench/e2e/index.js`).
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildSignedRequest, createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  readSigningKey,
  startEmbedded,
  startExecutorNode,
  startGateNode,
} from '../../src/embedded/index.js';
import { createDevCa, issueCert, pkiPaths } from '../../src/transport/index.js';
import type { IssueOptions } from '../../src/transport/index.js';
import { compilePolicyBundle } from '../../src/control-plane/index.js';
import { createSqliteNonceStore } from '../../src/execution/index.js';
import { createSqliteBreakerStore } from '../../src/storage/index.js';
import { createSqliteGateState, parseSignedRequest, requestSigningInput } from '../../src/gate/index.js';
import {
  createDurableWrites,
  createSqliteCommitUnit,
  isDeny,
  keyRingFromJwks,
  verifyEd25519,
  verifyEnvelope,
} from '../../src/kernel/index.js';
import type { EnvelopeClaims, JsonObject } from '../../src/kernel/index.js';
import {
  importSigningKeyJwk,
  noteSignerFor,
  signEnvelope,
  signingKeyFromSeed,
} from '../../src/kernel/signing/index.js';
import { createLedger, createSqliteLedgerStore } from '../../src/ledger/index.js';
import type { EntryInput } from '../../src/ledger/index.js';
import {
  BENCH_BREAKERS,
  CHILD_ROLE,
  inChild as inChildOf,
  measure as measureRuns,
  runLoad,
} from '../load.js';
import type { LoadResult, LoadShape, Summary } from '../load.js';

const PHASE_MS = Number(process.env['BENCH_PHASE_MS'] ?? 10_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 32);
const WARMUP_MS = Math.min(2_000, PHASE_MS / 4);
/** Phases to run (profiling one phase): `bare,governed,primitives,postgres` by default. */
const PHASES = new Set(
  (process.env['BENCH_PHASES'] ?? 'bare,governed,primitives,postgres,distributed,keyless').split(','),
);
/** Repetitions of each load phase; the median is reported. */
const RUNS = Math.max(1, Number(process.env['BENCH_RUNS'] ?? 3));
const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface LoadJob extends LoadShape {
  readonly kind: 'bare' | 'governed';
  readonly url: string;
  /** Gates to spread the clients over (client i calls `urls[i % n]`); default `[url]`. */
  readonly urls?: readonly string[];
  readonly client?: { identity: string; tenant: string; key: JsonObject };
}

/** Worker side: `clients` concurrent loops for `ms`, after a warm-up that is not measured. */
async function loadOf(job: LoadJob): Promise<LoadResult> {
  const urls = job.urls ?? [job.url];
  const clients = urls.map((url) =>
    job.client === undefined
      ? undefined
      : createClient({ url, identity: job.client.identity, tenant: job.client.tenant, key: job.client.key }),
  );
  const healthz = new URL('/healthz', job.url).toString();
  return runLoad(job, async (worker, n) => {
    const client = clients[worker % clients.length];
    if (client === undefined) {
      const res = await fetch(healthz);
      await res.arrayBuffer();
      return res.status === 200 ? 'ok' : `HTTP ${res.status}`;
    }
    const r = await client.call('echo', { message: `bench ${worker}-${n}` }, { session: `bench-${worker}` });
    return r.outcome === 'executed' ? 'ok' : r.code;
  });
}

const HERE = fileURLToPath(import.meta.url);
const GATE_ROLE_SQL = fileURLToPath(new URL('../../../deploy/postgres/gate-role.sql', import.meta.url));

/** Runs `job` in a child process of this file (the load generator's own process). */
const inChild = <T>(job: LoadJob | PrimitivesJob): Promise<T> => inChildOf<T>(HERE, job);

/** Runs a load phase {@link RUNS} times and prints the median (and every run's rate). */
const measure = (name: string, run: () => Promise<LoadResult>): Promise<Summary> =>
  measureRuns(name, RUNS, run);

/** Mean µs per call of `fn` over `ms` of wall time. */
function perOp(fn: () => unknown, ms = 1_000): number {
  for (let i = 0; i < 200; i++) fn();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    fn();
    n++;
  }
  return ((performance.now() - start) * 1000) / n;
}

/**
 * Amortised µs of the storage work of one governed call, as the embedded deployment does it
 * (`src/kernel/sqlite-commit.ts`): every store on one connection over one file, `CLIENTS`
 * concurrent call-shaped loops, each making the call's writes in its three durable rounds (the
 * request nonce, the evidence blob, gateway.accepted, the breaker admission, the decision and
 * envelope.issued; the envelope nonce; the receipt and gateway.completed), commits shared
 * between the loops as between calls.
 */
async function storagePerCall(dir: string): Promise<{ perCall: number; commitsPerCall: number }> {
  const db = new Database(join(dir, 'prim.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const unit = createSqliteCommitUnit(db);
  const key = signingKeyFromSeed(Buffer.alloc(32, 7));
  const origin = 'failclosed.local/bench-e2e';
  const ledger = await createLedger({
    store: createSqliteLedgerStore({ path: join(dir, 'prim.db'), unit }),
    clock: () => Date.now(),
    checkpointSigner: noteSignerFor(origin, key.privateKey),
    origin,
  });
  const state = createSqliteGateState({ path: '', unit, replayRetentionMs: 86_400_000 });
  const breakers = createSqliteBreakerStore('', { unit });
  const nonces = createSqliteNonceStore({ path: '', unit, now: () => Date.now() });
  const entry = (i: number, type: EntryInput['type']): EntryInput => ({
    type,
    trace_id: `t${i}`,
    request_id: `r${i}`,
    tenant: 'acme',
    actor: { id: 'control-plane', role: 'control-plane' },
    payload: {
      decision_id: `d${i}`,
      outcome: 'allow',
      policy_bundle: 'ab'.repeat(32),
      rules_fired: ['allow-basic-tools'],
      risk: 'low',
    },
  });
  const exp = Math.floor(Date.now() / 1000) + 60;
  const call = async (i: number, worker: number): Promise<void> => {
    const writes = createDurableWrites();
    await state.claim({ identity: 'bench', nonce: `n${i}`, requestId: `r${i}`, atMs: Date.now() }, writes);
    await ledger.putEvidence(
      Buffer.from(`{"request":${i},"pad":"${'x'.repeat(300)}"}`),
      'application/json',
      writes,
    );
    await ledger.append(entry(i, 'decision'), writes);
    await breakers.admit(
      {
        principal: `bench-${worker}`,
        tenant: 'acme',
        call: `echo\u0000${i}`,
        now: Date.now(),
        windowMs: 60_000,
      },
      writes,
    );
    await ledger.append(entry(i, 'decision'), writes);
    await ledger.append(entry(i, 'decision'), writes);
    await writes.sync();
    await nonces.consume({ jti: `j${i}`, tenant: 'acme', exp, decision_id: `d${i}` }, writes);
    await writes.sync();
    await ledger.append(entry(i, 'decision'), writes);
    await ledger.append(entry(i, 'decision'), writes);
    await writes.sync();
  };
  let next = 0;
  const commits0 = unit.commits;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, worker) => {
      while (performance.now() - start < 1_000) await call(next++, worker);
    }),
  );
  const perCall = ((performance.now() - start) * 1000) / next;
  const commitsPerCall = (unit.commits - commits0) / next;
  await ledger.close();
  await state.close();
  await nonces.close();
  breakers.close();
  unit.close();
  return { perCall, commitsPerCall };
}

/** What the primitives worker needs: the running Gate (for one real envelope) and the data directory. */
/** A second gate replica over `dir`, in a process of its own; answers its URL, stops on 'stop'. */
interface ReplicaJob {
  readonly kind: 'replica';
  readonly dir: string;
}

/** A separate Execution Layer in a process of its own, from its configuration file. */
interface ExecutorJob {
  readonly kind: 'executor';
  readonly config: string;
}

/** A keyless Gate in a process of its own, from its configuration file. */
interface GateJob {
  readonly kind: 'gate';
  readonly config: string;
}

/** Starts a {@link ReplicaJob} or {@link ExecutorJob} and resolves once it listens. */
async function startReplica(
  dir: string | ExecutorJob | GateJob,
): Promise<{ url: string; stop(): Promise<void> }> {
  const child = fork(HERE, [], {
    env: { ...process.env, [CHILD_ROLE]: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = new Promise<string>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { url: string }).url));
    void exited.then(() => reject(new Error('the replica exited before it listened')));
  });
  child.send(typeof dir === 'string' ? ({ kind: 'replica', dir } satisfies ReplicaJob) : dir);
  const url = await listening;
  return {
    url,
    async stop() {
      child.send('stop');
      await exited;
    },
  };
}

interface PrimitivesJob {
  readonly kind: 'primitives';
  readonly url: string;
  readonly dir: string;
  readonly token: string;
  readonly work: string;
}

/** Runs in the child process, apart from the server's event loop. */
async function primitives(job: PrimitivesJob): Promise<Record<string, number>> {
  const { url, dir, token, work } = job;
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const key = importSigningKeyJwk(file.key);
  const params = { message: 'bench primitives' };
  const body = buildSignedRequest({
    key,
    identity: file.identity,
    tenant: file.tenant,
    action: 'echo',
    parameters: params,
    timestampMs: Date.now(),
  });
  const bytes = Buffer.from(JSON.stringify(body));
  const call = await createClient({
    url,
    identity: file.identity,
    tenant: file.tenant,
    key,
  }).call('echo', params);
  if (call.outcome !== 'executed') throw new Error(`setup call denied: ${call.code}`);
  const view = (await (
    await fetch(`${url}/v1/requests/${call.request_id}`, {
      headers: { authorization: `Bearer ${token}` },
    })
  ).json()) as {
    records: { entry: { type: string; payload: { envelope?: string } } }[];
  };
  // The consumed envelope, from its receipt: the ledger never holds an unconsumed one.
  const envelope =
    view.records.find((r) => r.entry.type === 'execution.receipt')?.entry.payload.envelope ?? '';
  const claims = JSON.parse(
    Buffer.from(envelope.split('.')[1] ?? '', 'base64url').toString('utf8'),
  ) as EnvelopeClaims;
  const active = readFileSync(join(dataPaths(dir).bundles, 'ACTIVE'), 'utf8').trim();
  const runtime = compilePolicyBundle(readFileSync(join(dataPaths(dir).bundles, `${active}.json`)), active);
  const issuer = readSigningKey(dataPaths(dir).issuerKey);
  const ring = keyRingFromJwks(await (await fetch(`${url}/v1/jwks`)).text());
  const verifyCtx = {
    keys: ring,
    audience: claims.aud,
    now: () => claims.iat * 1000,
    clockToleranceSec: 30,
    maxLifetimeSec: 3600,
    call: { tool: 'echo', tenant: 'acme', params },
    isKnownPolicyBundle: () => true,
  };
  if (isDeny(verifyEnvelope(envelope, verifyCtx))) throw new Error('the envelope does not verify');
  const evalInput = {
    principal: { id: file.identity, tenant: file.tenant },
    tenant: file.tenant,
    tool: 'echo',
    params,
    tainted: false,
  };
  const storage = await storagePerCall(work);
  return {
    'request sign': perOp(() =>
      buildSignedRequest({
        key,
        identity: file.identity,
        tenant: file.tenant,
        action: 'echo',
        parameters: params,
        timestampMs: Date.now(),
      }),
    ),
    'request parse + verify': perOp(() => {
      const p = parseSignedRequest(bytes);
      if (isDeny(p)) throw new Error(p.code);
      return verifyEd25519(key.publicKey, requestSigningInput(p.request), p.signatureBytes);
    }),
    'policy validate + evaluate': perOp(() => {
      runtime.validateParams('echo', params);
      return runtime.evaluate(evalInput);
    }),
    'envelope sign': perOp(() => signEnvelope(claims, issuer)),
    'envelope verify': perOp(() => verifyEnvelope(envelope, verifyCtx)),
    [`storage: 5 entries, evidence, 2 nonces, admission (${storage.commitsPerCall.toFixed(2)} commits/call)`]:
      storage.perCall,
  };
}

/** Governed load at {@link CLIENTS} clients and alone, against the gate at `url`. */
async function governedPhases(
  label: string,
  url: string,
  client: NonNullable<LoadJob['client']>,
): Promise<{ gov: Summary; solo: Summary }> {
  // Measured as `ended`: the warm-up lasts until every client's first call ended. A cold Gate's
  // first wave (32 new mutual-TLS connections and database sessions per link) can outlast a fixed
  // warm-up, and `inside` then dropped those calls and reported almost no throughput.
  const job = { url, clients: CLIENTS, ms: PHASE_MS, warmupMs: WARMUP_MS, measured: 'ended' } as const;
  const gov = await measure(`governed call (echo), ${label}`, () =>
    inChild<LoadResult>({ ...job, kind: 'governed', client }),
  );
  // With N clients each waiting for its answer, p50 ≈ N / throughput: latency is measured alone too.
  const solo = await measure(`  the same, 1 client`, () =>
    inChild<LoadResult>({ ...job, clients: 1, kind: 'governed', client }),
  );
  return { gov, solo };
}

interface PostgresResult {
  readonly one: { gov: Summary; solo: Summary };
  readonly two: Summary;
}

/**
 * The PostgreSQL phases: a database made for the run, a gate over it (in this process) with the
 * governed load; then a second replica (a copy of its data directory, in a process of its own)
 * serving at the same time, the clients spread over both.
 */
async function postgresPhase(work: string): Promise<PostgresResult | undefined> {
  const name = `fc_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch (err) {
    console.log(`postgres phase skipped: ${PG_URL} unreachable (${(err as Error).message})`);
    return undefined;
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(PG_URL);
    url.pathname = `/${name}`;
    const dir = join(work, 'pg-data');
    await initDataDir(dir, { backend: url.toString() });
    const dirB = join(work, 'pg-data-b');
    cpSync(dir, dirB, { recursive: true });
    const instance = await startEmbedded(dir, {
      port: 0,
      executionPort: 0,
      breakers: BENCH_BREAKERS,
      cedarThread: true,
    });
    try {
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      const client = { identity: file.identity, tenant: file.tenant, key: file.key };
      const one = await governedPhases('PostgreSQL', instance.url, client);
      const b = await startReplica(dirB);
      try {
        const urls = [instance.url, b.url];
        const two = await measure('governed call (echo), PostgreSQL ×2', () =>
          inChild<LoadResult>({
            kind: 'governed',
            url: instance.url,
            urls,
            clients: CLIENTS,
            ms: PHASE_MS,
            warmupMs: WARMUP_MS,
            measured: 'ended',
            client,
          }),
        );
        return { one, two };
      } finally {
        await b.stop();
      }
    } finally {
      await instance.close();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A dev CA with the `gate`, `control-plane` and `executor` certificates (and `extra` ones), the `up` data
 * directory `dir` set to call a separate Execution Layer over mutual TLS (its internal listener
 * and `up` fields of the phase's own), and that Execution Layer's configuration (`nonces`: its
 * nonce store), written under `work/<tag>-*`. Shared by the distributed and keyless phases.
 */
async function separateExecutionLayer(
  work: string,
  tag: string,
  dir: string,
  o: { readonly nonces: JsonObject; readonly up?: JsonObject; readonly extra?: readonly IssueOptions[] },
): Promise<{ pki: string; internalPort: number; execPort: number; execConfig: string }> {
  const pki = join(work, `${tag}-certs`);
  await createDevCa(pki);
  await Promise.all(
    [
      { role: 'gate' } as const,
      { role: 'control-plane' } as const,
      { role: 'executor' } as const,
      ...(o.extra ?? []),
    ].map((c) => issueCert(pki, c)),
  );
  const [internalPort, execPort] = [await freePort(), await freePort()];
  const ca = pkiPaths(pki).caCert;
  const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as JsonObject;
  writeFileSync(
    dataPaths(dir).config,
    JSON.stringify({
      ...config,
      ...o.up,
      executor_url: `https://127.0.0.1:${execPort}`,
      internal_port: internalPort,
      tls: {
        ca,
        gate: { cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
        control_plane: {
          cert: pkiPaths(pki).cert('control-plane'),
          key: pkiPaths(pki).key('control-plane'),
        },
      },
    }),
  );
  const execDir = join(work, `${tag}-executor`);
  mkdirSync(execDir);
  const execConfig = join(execDir, 'executor.json');
  writeFileSync(
    execConfig,
    JSON.stringify({
      audience: 'failclosed-executor',
      listen: { host: '127.0.0.1', port: execPort },
      gate_url: `https://127.0.0.1:${internalPort}`,
      tls: { ca, cert: pkiPaths(pki).cert('executor'), key: pkiPaths(pki).key('executor') },
      ...o.nonces,
      log: { level: 'silent' },
    }),
  );
  return { pki, internalPort, execPort, execConfig };
}

/**
 * The distributed shape: a gate (SQLite) whose Execution Layer is a separate process over mutual
 * TLS (`executor_url`), which reaches the gate's internal listener for keys, bundles and the
 * ledger writer. The governed load and its single-client latency.
 */
async function distributedPhase(work: string): Promise<{ gov: Summary; solo: Summary }> {
  const dir = join(work, 'dist-data');
  await initDataDir(dir);
  const { execConfig } = await separateExecutionLayer(work, 'dist', dir, { nonces: { nonces: 'nonces.db' } });
  const instance = await startEmbedded(dir, { port: 0, breakers: BENCH_BREAKERS, cedarThread: true });
  try {
    const executor = await startReplica({ kind: 'executor', config: execConfig });
    try {
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      return await governedPhases('distributed (separate Execution Layer, mTLS)', instance.url, {
        identity: file.identity,
        tenant: file.tenant,
        key: file.key,
      });
    } finally {
      await executor.stop();
    }
  } finally {
    await instance.close();
  }
}

/**
 * The keyless Gate (`failclosed serve gate`'s entry point in a process of its own) in front of the
 * Control Plane process (this one: `up` on PostgreSQL with `internal_gates`, which checks each
 * client signature again before it signs) and a separate Execution Layer process, every link
 * mutual TLS; the Gate on its own database role (`deploy/postgres/gate-role.sql`, applied with
 * `psql`). The governed load and its single-client latency.
 */
async function keylessPhase(work: string): Promise<{ gov: Summary; solo: Summary } | undefined> {
  const name = `fc_bench_${randomBytes(6).toString('hex')}`;
  const role = `fc_bench_gate_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch (err) {
    console.log(`keyless phase skipped: ${PG_URL} unreachable (${(err as Error).message})`);
    return undefined;
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    const url = new URL(PG_URL);
    url.pathname = `/${name}`;
    const schema = 'failclosed';
    const dir = join(work, 'keyless-cp');
    await initDataDir(dir, { backend: `${url.toString()}?schema=${schema}` });
    const { pki, internalPort, execPort, execConfig } = await separateExecutionLayer(work, 'keyless', dir, {
      nonces: { nonces: url.toString(), nonces_schema: schema },
      up: { internal_gates: true },
      // The keyless Gate's own, only to connect out with: `serve gate` refuses one naming a host.
      extra: [{ role: 'gate', name: 'gate-1', clientOnly: true }],
    });
    const gatePort = await freePort();
    const instance = await startEmbedded(dir, { port: 0, breakers: BENCH_BREAKERS, cedarThread: true });
    try {
      execFileSync(
        'psql',
        [
          url.toString(),
          '-v',
          `schema=${schema}`,
          '-v',
          `role=${role}`,
          '-v',
          'ON_ERROR_STOP=1',
          '-q',
          '-f',
          GATE_ROLE_SQL,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      const gateUrl = new URL(url.toString());
      gateUrl.username = role;
      const gateConfig = join(work, 'keyless-gate.json');
      writeFileSync(
        gateConfig,
        JSON.stringify({
          listen: { host: '127.0.0.1', port: gatePort },
          control_plane_url: `https://127.0.0.1:${internalPort}`,
          executor_url: `https://127.0.0.1:${execPort}`,
          tls: {
            ca: pkiPaths(pki).caCert,
            cert: pkiPaths(pki).cert('gate-1'),
            key: pkiPaths(pki).key('gate-1'),
          },
          state: `${gateUrl.toString()}?schema=${schema}`,
        }),
      );
      const executor = await startReplica({ kind: 'executor', config: execConfig });
      try {
        const gate = await startReplica({ kind: 'gate', config: gateConfig });
        try {
          const file = readClientFile(dir, DEMO_CLIENT.identity);
          return await governedPhases('keyless Gate → Control Plane → Execution Layer, mTLS', gate.url, {
            identity: file.identity,
            tenant: file.tenant,
            key: file.key,
          });
        } finally {
          await gate.stop();
        }
      } finally {
        await executor.stop();
      }
    } finally {
      await instance.close();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'fc-bench-e2e-'));
  const dir = join(work, 'data');
  await initDataDir(dir);
  const instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    breakers: BENCH_BREAKERS,
    cedarThread: true,
  });
  let closed = false;
  try {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    console.log(
      `failclosed e2e bench: ${CLIENTS} clients, ${PHASE_MS / 1000} s per phase (governed: after a warm-up of ≥ ${WARMUP_MS / 1000} s and each client's first call), median of ${RUNS} runs, load generator in its own process\n`,
    );
    const job = { url: instance.url, clients: CLIENTS, ms: PHASE_MS, warmupMs: WARMUP_MS };
    const client = { identity: file.identity, tenant: file.tenant, key: file.key };
    const bare = PHASES.has('bare')
      ? await measure('bare HTTP (GET /healthz)', () => inChild<LoadResult>({ ...job, kind: 'bare' }))
      : undefined;
    const sqlite = PHASES.has('governed') ? await governedPhases('SQLite', instance.url, client) : undefined;
    let sum: number | undefined;
    if (PHASES.has('primitives')) {
      console.log(
        '\nprimitives per governed call (µs, in the child process; stores amortised over the same concurrency):',
      );
      const prim = await inChild<Record<string, number>>({
        kind: 'primitives',
        url: instance.url,
        dir,
        token: readOperatorToken(dir),
        work,
      });
      sum = 0;
      for (const [name, us] of Object.entries(prim)) {
        sum += us;
        console.log(`  ${name.padEnd(40)} ${us.toFixed(1).padStart(8)}`);
      }
      console.log(
        `  ${'sum'.padEnd(40)} ${sum.toFixed(1).padStart(8)}   (≈ ${(1e6 / sum).toFixed(0)} calls/s on one core)\n`,
      );
    }
    await instance.close();
    closed = true;
    const postgres = PHASES.has('postgres') ? await postgresPhase(work) : undefined;
    const distributed = PHASES.has('distributed') ? await distributedPhase(work) : undefined;
    const keyless = PHASES.has('keyless') ? await keylessPhase(work) : undefined;
    console.log('\nratios (medians):');
    if (bare !== undefined && sqlite !== undefined) {
      console.log(`  SQLite governed / bare HTTP throughput   ${(sqlite.gov.rate / bare.rate).toFixed(3)}`);
      console.log(`  SQLite governed p50 / bare HTTP p50      ${(sqlite.gov.p50 / bare.p50).toFixed(1)}×`);
    }
    if (sqlite !== undefined && sum !== undefined)
      console.log(
        `  wall µs per governed call / primitives   ${(1e6 / sqlite.gov.rate / sum).toFixed(2)}×  (${(1e6 / sqlite.gov.rate).toFixed(0)} µs per call)`,
      );
    if (sqlite !== undefined && sum !== undefined)
      console.log(
        `  server CPU per governed call / primitives ${(sqlite.gov.cpuUs / sum).toFixed(2)}×  (${sqlite.gov.cpuUs.toFixed(0)} µs per call)`,
      );
    if (sqlite !== undefined && postgres !== undefined)
      console.log(
        `  PostgreSQL / SQLite throughput           ${(postgres.one.gov.rate / sqlite.gov.rate).toFixed(3)}`,
      );
    if (postgres !== undefined)
      console.log(
        `  PostgreSQL two replicas / one            ${(postgres.two.rate / postgres.one.gov.rate).toFixed(3)}`,
      );
    if (sqlite !== undefined && distributed !== undefined) {
      console.log(
        `  distributed / embedded throughput        ${(distributed.gov.rate / sqlite.gov.rate).toFixed(3)}  (${distributed.gov.rate.toFixed(0)} /s)`,
      );
      console.log(
        `  distributed / embedded p50 (1 client)    ${(distributed.solo.p50 / sqlite.solo.p50).toFixed(2)}×  (${distributed.solo.p50.toFixed(2)} ms)`,
      );
    }
    if (sqlite !== undefined && keyless !== undefined) {
      console.log(
        `  keyless Gate / embedded throughput       ${(keyless.gov.rate / sqlite.gov.rate).toFixed(3)}  (${keyless.gov.rate.toFixed(0)} /s)`,
      );
      console.log(
        `  keyless Gate / embedded p50 (1 client)   ${(keyless.solo.p50 / sqlite.solo.p50).toFixed(2)}×  (${keyless.solo.p50.toFixed(2)} ms)`,
      );
    }
    if (sqlite !== undefined) {
      // Every core of the machine busy with nothing but the gate and its load generator, at the
      // CPU each spends per call: the rate this machine allows that shape, however the cores are
      // shared between the two processes.
      const cores = availableParallelism();
      const both = sqlite.gov.cpuUs + sqlite.gov.loadCpuUs;
      console.log(
        `  machine ceiling at this CPU per call     ${((cores * 1e6) / both).toFixed(0)} calls/s  (${cores} cores / ${both.toFixed(0)} µs: server ${sqlite.gov.cpuUs.toFixed(0)} + load generator ${sqlite.gov.loadCpuUs.toFixed(0)})`,
      );
    }
    if (sqlite !== undefined) {
      const ok = sqlite.gov.rate >= 1200 && sqlite.solo.p50 <= 2;
      console.log(
        `\ntarget embedded ≥ 1200 calls/s (${CLIENTS} clients) and p50 ≤ 2 ms (1 client): ${ok ? 'met' : 'MISSED'} (${sqlite.gov.rate.toFixed(0)} /s, p50 ${sqlite.solo.p50.toFixed(2)} ms)`,
      );
    }
    if (postgres !== undefined)
      console.log(
        `target PostgreSQL two replicas ≥ 1000 calls/s: ${postgres.two.rate >= 1000 ? 'met' : 'MISSED'} (${postgres.two.rate.toFixed(0)} /s; one gate ${postgres.one.gov.rate.toFixed(0)} /s)`,
      );
  } finally {
    if (!closed) await instance.close();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.env[CHILD_ROLE] === '1') {
  process.once('message', (job: LoadJob | PrimitivesJob | ReplicaJob | ExecutorJob | GateJob) => {
    void (async () => {
      if (job.kind === 'executor' || job.kind === 'gate') {
        const node =
          job.kind === 'executor'
            ? await startExecutorNode(job.config)
            : await startGateNode(job.config, { defaultLogLevel: 'silent' });
        process.once('message', () => {
          void node.close().then(() => process.exit(0));
        });
        process.send?.({ url: node.url });
        return;
      }
      if (job.kind === 'replica') {
        const replica = await startEmbedded(job.dir, {
          port: 0,
          executionPort: 0,
          breakers: BENCH_BREAKERS,
          cedarThread: true,
        });
        process.once('message', () => {
          void replica.close().then(() => process.exit(0));
        });
        process.send?.({ url: replica.url });
        return;
      }
      const result = job.kind === 'primitives' ? await primitives(job) : await loadOf(job);
      process.send?.(result);
    })();
  });
} else {
  await main();
}
