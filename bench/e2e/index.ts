/**
 * End-to-end benchmark (SPEC §8 "durable writes", "HTTP"): governed calls/s and latency over
 * HTTP in embedded mode with durable (synchronous=FULL) ledger writes, `BENCH_CLIENTS` (32)
 * concurrent clients calling `echo`, against two baselines measured in the same run:
 *   (a) bare HTTP: the same Gate server answering `GET /healthz`, same client count;
 *   (b) the sum of the primitives one governed call needs: request sign + verify, policy
 *       evaluation, envelope sign + verify, five ledger appends and one evidence blob (group
 *       commit under the same concurrency).
 * The clients run in a worker thread so that the server keeps its own core. Loopback only;
 * every phase is bounded (`BENCH_PHASE_MS`, default 10 s) and the process stops by itself.
 * Target on a 2-core machine: ≥ 1,000 governed calls/s, p50 ≤ 3 ms. Run: `npm run bench:e2e`
 * (profile: `node --cpu-prof dist/bench/e2e/index.js`).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { buildSignedRequest, createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  readSigningKey,
  startEmbedded,
} from '../../src/embedded/index.js';
import { compilePolicyBundle } from '../../src/control-plane/index.js';
import { createSqliteNonceStore } from '../../src/execution/index.js';
import { createSqliteGateState, parseSignedRequest, requestSigningInput } from '../../src/gate/index.js';
import { isDeny, keyRingFromJwks, verifyEd25519, verifyEnvelope } from '../../src/kernel/index.js';
import type { EnvelopeClaims, JsonObject } from '../../src/kernel/index.js';
import {
  importSigningKeyJwk,
  noteSignerFor,
  signEnvelope,
  signingKeyFromSeed,
} from '../../src/kernel/signing/index.js';
import { createLedger, createSqliteLedgerStore } from '../../src/ledger/index.js';
import type { EntryInput } from '../../src/ledger/index.js';

const PHASE_MS = Number(process.env['BENCH_PHASE_MS'] ?? 10_000);
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 32);
const WARMUP_MS = Math.min(2_000, PHASE_MS / 4);
/** Phases to run (profiling one phase): `bare,governed,primitives` by default. */
const PHASES = new Set((process.env['BENCH_PHASES'] ?? 'bare,governed,primitives').split(','));

interface LoadJob {
  readonly kind: 'bare' | 'governed';
  readonly url: string;
  readonly clients: number;
  readonly ms: number;
  readonly warmupMs: number;
  readonly client?: { identity: string; tenant: string; key: JsonObject };
}

interface LoadResult {
  readonly count: number;
  readonly failures: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly codes: Record<string, number>;
}

/** Worker side: `clients` concurrent loops for `ms`, after a warm-up that is not measured. */
async function runLoad(job: LoadJob): Promise<LoadResult> {
  const client =
    job.client === undefined
      ? undefined
      : createClient({
          url: job.url,
          identity: job.client.identity,
          tenant: job.client.tenant,
          key: job.client.key,
        });
  const healthz = new URL('/healthz', job.url).toString();
  const once = async (worker: number, n: number): Promise<string> => {
    if (client === undefined) {
      const res = await fetch(healthz);
      await res.arrayBuffer();
      return res.status === 200 ? 'ok' : `HTTP ${res.status}`;
    }
    const r = await client.call('echo', { message: `bench ${worker}-${n}` }, { session: `bench-${worker}` });
    return r.outcome === 'executed' ? 'ok' : r.code;
  };
  const latenciesMs: number[] = [];
  const codes: Record<string, number> = {};
  let count = 0;
  let failures = 0;
  let measuring = false;
  const start = performance.now();
  const warmEnd = start + job.warmupMs;
  const end = warmEnd + job.ms;
  await Promise.all(
    Array.from({ length: job.clients }, async (_, w) => {
      for (let n = 0; performance.now() < end; n++) {
        const t0 = performance.now();
        const code = await once(w, n);
        const t1 = performance.now();
        if (!measuring && t0 >= warmEnd) measuring = true;
        if (t0 < warmEnd || t1 > end) continue;
        count += 1;
        latenciesMs.push(t1 - t0);
        if (code !== 'ok') {
          failures += 1;
          codes[code] = (codes[code] ?? 0) + 1;
        }
      }
    }),
  );
  return { count, failures, seconds: job.ms / 1000, latenciesMs, codes };
}

function inWorker<T>(job: LoadJob | PrimitivesJob): Promise<T> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', (r: T) => resolve(r));
    w.once('error', reject);
  });
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

function summarise(name: string, r: LoadResult): { rate: number; p50: number; p99: number } {
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  const rate = r.count / r.seconds;
  const p50 = pct(sorted, 50);
  const p99 = pct(sorted, 99);
  const fails = r.failures === 0 ? '' : `, ${r.failures} not ok ${JSON.stringify(r.codes)}`;
  console.log(
    `${name.padEnd(28)} ${rate.toFixed(0).padStart(7)} /s   p50 ${p50.toFixed(2)} ms   p99 ${p99.toFixed(2)} ms   (${r.count} calls${fails})`,
  );
  return { rate, p50, p99 };
}

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

/** Amortised µs per durable append (and evidence write) with `CLIENTS` concurrent writers, as a governed call makes them. */
async function ledgerPerCall(dir: string): Promise<{ append: number; evidence: number }> {
  const key = signingKeyFromSeed(Buffer.alloc(32, 7));
  const origin = 'failclosed.local/bench-e2e';
  const ledger = await createLedger({
    store: createSqliteLedgerStore({ path: join(dir, 'prim-ledger.db') }),
    clock: () => Date.now(),
    checkpointSigner: noteSignerFor(origin, key.privateKey),
    origin,
  });
  const entry = (i: number): EntryInput => ({
    type: 'decision',
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
  const time = async (fn: (i: number) => Promise<unknown>): Promise<number> => {
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() - start < 1_000) await fn(next++);
      }),
    );
    return ((performance.now() - start) * 1000) / next;
  };
  const append = await time((i) => ledger.append(entry(i)));
  const evidence = await time((i) =>
    ledger.putEvidence(Buffer.from(`{"request":${i},"pad":"${'x'.repeat(300)}"}`), 'application/json'),
  );
  await ledger.close();
  return { append, evidence };
}

/** Amortised µs per single-use check of the request nonce (Gate) and the envelope nonce (Execution Layer), `CLIENTS` concurrent callers, each a durable group commit. */
async function singleUseStores(dir: string): Promise<{ claim: number; consume: number }> {
  const state = createSqliteGateState({ path: join(dir, 'prim-state.db'), replayRetentionMs: 86_400_000 });
  const nonces = createSqliteNonceStore({ path: join(dir, 'prim-nonces.db'), now: () => Date.now() });
  const time = async (fn: (i: number) => Promise<unknown>): Promise<number> => {
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() - start < 1_000) await fn(next++);
      }),
    );
    return ((performance.now() - start) * 1000) / next;
  };
  const claim = await time((i) =>
    state.claim({ identity: 'bench', nonce: `n${i}`, requestId: `r${i}`, atMs: Date.now() }),
  );
  const exp = Math.floor(Date.now() / 1000) + 60;
  const consume = await time((i) => nonces.consume({ jti: `j${i}`, tenant: 'acme', exp, decision_id: 'd' }));
  await state.close();
  await nonces.close();
  return { claim, consume };
}

/** What the primitives worker needs: the running Gate (for one real envelope) and the data directory. */
interface PrimitivesJob {
  readonly kind: 'primitives';
  readonly url: string;
  readonly dir: string;
  readonly token: string;
  readonly work: string;
}

/** Runs in its own worker thread: a fresh isolate, apart from the server's event loop. */
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
  const ledger = await ledgerPerCall(work);
  const stores = await singleUseStores(work);
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
    'ledger 5 appends (group commit)': ledger.append * 5,
    'ledger 1 evidence blob': ledger.evidence,
    'request nonce claim (state.db)': stores.claim,
    'envelope nonce consume (nonces.db)': stores.consume,
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'fc-bench-e2e-'));
  const dir = join(work, 'data');
  await initDataDir(dir);
  const high = 1_000_000_000;
  const instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    // The load is one tenant hammering one tool: raise the breakers that would (rightly) stop it.
    breakers: {
      maxCallsPerSessionWindow: high,
      maxCallsPerTenantWindow: high,
      maxCallsPerSession: high,
      loopThreshold: high,
    },
  });
  try {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    console.log(
      `failclosed e2e bench: ${CLIENTS} clients, ${PHASE_MS / 1000} s per phase (+${WARMUP_MS / 1000} s warm-up), gate ${instance.url}\n`,
    );
    const job = { url: instance.url, clients: CLIENTS, ms: PHASE_MS, warmupMs: WARMUP_MS };
    const client = { identity: file.identity, tenant: file.tenant, key: file.key };
    const bare = PHASES.has('bare')
      ? summarise('bare HTTP (GET /healthz)', await inWorker<LoadResult>({ ...job, kind: 'bare' }))
      : undefined;
    const gov = PHASES.has('governed')
      ? summarise('governed call (echo)', await inWorker<LoadResult>({ ...job, kind: 'governed', client }))
      : undefined;
    // With N clients each waiting for its answer, p50 ≈ N / throughput: latency is measured alone too.
    const solo = PHASES.has('governed')
      ? // One client is sequential anyway: run it on the server's thread (a further worker trips a V8 fault of Node 20.20).
        summarise(
          'governed call (echo), 1 client',
          await runLoad({ ...job, clients: 1, kind: 'governed', client }),
        )
      : undefined;
    if (!PHASES.has('primitives')) return;
    console.log(
      '\nprimitives per governed call (µs, in a worker thread; stores amortised over the same concurrency):',
    );
    const prim = await inWorker<Record<string, number>>({
      kind: 'primitives',
      url: instance.url,
      dir,
      token: readOperatorToken(dir),
      work,
    });
    let sum = 0;
    for (const [name, us] of Object.entries(prim)) {
      sum += us;
      console.log(`  ${name.padEnd(40)} ${us.toFixed(1).padStart(8)}`);
    }
    console.log(
      `  ${'sum'.padEnd(40)} ${sum.toFixed(1).padStart(8)}   (≈ ${(1e6 / sum).toFixed(0)} calls/s on one core)`,
    );
    if (bare === undefined || gov === undefined) return;
    console.log('\nratios:');
    console.log(`  governed / bare HTTP throughput          ${(gov.rate / bare.rate).toFixed(3)}`);
    console.log(`  governed p50 / bare HTTP p50             ${(gov.p50 / bare.p50).toFixed(1)}×`);
    console.log(
      `  wall µs per governed call / primitives   ${(1e6 / gov.rate / sum).toFixed(2)}×  (${(1e6 / gov.rate).toFixed(0)} µs per call)`,
    );
    const p50 = solo?.p50 ?? gov.p50;
    const ok = gov.rate >= 1000 && p50 <= 3;
    console.log(
      `\ntarget ≥ 1000 calls/s (${CLIENTS} clients) and p50 ≤ 3 ms (1 client): ${ok ? 'met' : 'MISSED'} (${gov.rate.toFixed(0)} /s, p50 ${p50.toFixed(2)} ms)`,
    );
  } finally {
    await instance.close();
    rmSync(work, { recursive: true, force: true });
  }
}

if (isMainThread) {
  await main();
} else {
  const job = workerData as LoadJob | PrimitivesJob;
  parentPort?.postMessage(job.kind === 'primitives' ? await primitives(job) : await runLoad(job));
}
