/**
 * The Execution Layer as its own process (`failclosed serve executor`; FC-INV-6 authenticated
 * Gate identity, L7 mutual TLS between roles, GEI public keys only): a Gate with `executor_url`
 * and `internal_port` and no in-process execution listener, and real `serve executor` child
 * processes of the built CLI (`npm run build`) holding only their own certificate, nonce store and
 * the issuer's public keys fetched from the Gate process.
 *
 * - A governed call runs in the executor process; its receipt is in the Gate's ledger (written by
 *   the one ledger writer, actor role `executor`); the export verifies.
 * - The executor process refuses a peer of another role, a client certificate and a call without
 *   a certificate (not from the Gate); the Gate's internal listener refuses all but `executor`.
 * - The Gate's internal listener unreachable from the executor (a cut link): denied, the tool did
 *   not run; reachable again: calls run again.
 * - A bundle served with content that does not hash to the hash asked for: refused
 *   (`ERR_POLICY_BUNDLE_INVALID`), the tool did not run.
 * - Issuer keys that cannot be had fresh enough (injected clock): `ERR_TRUST_UNAVAILABLE`, and
 *   the key ring answers no kid.
 * - Two replicas on one PostgreSQL nonce store: an envelope run by one is `ERR_NONCE_REPLAYED`
 *   at the other (OE-INV-017).
 * - The Gate process's readiness does not probe the sandbox (no tool runs there); an embedded
 *   process's does.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  createGateTrust,
  KID_REFETCH_MS,
  createRemoteExecutor,
  dataPaths,
  startExecutorNode,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode } from '../../src/embedded/index.js';
import type { GateExecutor } from '../../src/gate/index.js';
import { canonicalBytes, parseJson, sha256Hex } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { createBundleCompiler } from '../../src/control-plane/index.js';
import { createDefaultBuiltins } from '../../src/execution/index.js';
import {
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
} from '../../src/transport/index.js';
import type { MtlsAgent, MtlsServer } from '../../src/transport/index.js';
import { runCli } from '../../src/cli/run.js';
import { saveTrustRoots } from '../../src/cli/trust-file.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { freePort, spawnExecutor } from './topology.js';
import type { ExecutorProcess } from './topology.js';

/** A TCP relay to `target` that the test can cut (every connection closed, new ones refused). */
async function relay(
  target: number,
): Promise<{ port: number; cut(): void; mend(): void; close(): Promise<void> }> {
  let open = true;
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((inbound) => {
    if (!open) return inbound.destroy();
    const outbound = createConnection(target, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.once('close', () => outbound.destroy());
    outbound.once('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cutAll = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      open = false;
      cutAll();
    },
    mend() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}

/** Consumptions (not voids) in an executor's SQLite nonce store: a tool ran only after one. */
function consumed(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM envelope_nonces WHERE voided = 0').get()!
      .n;
  } finally {
    db.close();
  }
}

/** `POST /v1/execute` with the given credentials; `error` when the connection is refused or cut. */
function postExecute(
  url: string,
  creds: { cert?: Buffer; key?: Buffer; ca: Buffer },
): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/v1/execute`,
      { method: 'POST', ...creds, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
    req.end(JSON.stringify({ envelope: 'x.y.z', tool: 'echo', tenant: 'acme', params: {} }));
  });
}

describe('the Execution Layer as a separate process', () => {
  const pgdb = useTestDatabase('fc_exec_proc');
  let work: string;
  let dir: string;
  let pki: string;
  let instance: EmbeddedInstance;
  let link: Awaited<ReturnType<typeof relay>>;
  let a: ExecutorProcess;
  let c: ExecutorProcess;
  let fakeGate: MtlsServer;
  let gateAgent: MtlsAgent;
  /** When set, the Gate's calls go to this executor port instead of `executor_url`. */
  let route: GateExecutor | undefined;
  const noncesA = (): string => join(work, 'executor-a', 'nonces.db');
  const noncesC = (): string => join(work, 'executor-c', 'nonces.db');
  const creds = (name: string) => ({
    cert: readFileSync(pkiPaths(pki).cert(name)),
    key: readFileSync(pkiPaths(pki).key(name)),
    ca: readFileSync(pkiPaths(pki).caCert),
  });
  let client: FailclosedClient;
  const echo = (message: string) => client.call('echo', { message }, { session: 'separate-executor' });

  const executorConfig = (name: string, gatePort: number, extra: JsonObject = {}): string => {
    const at = join(work, name);
    mkdirSync(at, { recursive: true });
    const path = join(at, 'executor.json');
    writeFileSync(
      path,
      JSON.stringify({
        audience: 'failclosed-executor',
        listen: { host: '127.0.0.1', port: 0 },
        gate_url: `https://127.0.0.1:${gatePort}`,
        tls: {
          ca: pkiPaths(pki).caCert,
          cert: pkiPaths(pki).cert('executor'),
          key: pkiPaths(pki).key('executor'),
        },
        nonces: 'nonces.db',
        keys_max_age_ms: 600_000,
        // Generous on a loaded test machine: a cut link is refused at once, not timed out.
        gate_timeout_ms: 10_000,
        ...extra,
      }),
    );
    return path;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-exec-proc-'));
    dir = join(work, 'gate');
    await initDataDir(dir);
    pki = join(work, 'certs');
    await createDevCa(pki);
    await Promise.all([
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'executor' }),
      issueCert(pki, { role: 'control-plane' }),
      issueCert(pki, { role: 'client', name: 'agent-1' }),
    ]);
    const internalPort = await freePort();
    const execPort = await freePort();
    const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as JsonObject;
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
      }),
    );
    instance = await startEmbedded(dir, {
      port: 0,
      decorate: {
        gateExecutor: (inner: GateExecutor): GateExecutor => ({
          execute: (call, writes, signal) => (route ?? inner).execute(call, writes, signal),
          void: (call, signal) => (route ?? inner).void(call, signal),
        }),
      },
    });
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    client = createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
    link = await relay(internalPort);
    // Executor A: the real one, at `executor_url`, reaching the Gate process through the relay.
    const configA = JSON.parse(readFileSync(executorConfig('executor-a', link.port), 'utf8')) as JsonObject;
    writeFileSync(
      join(work, 'executor-a', 'executor.json'),
      JSON.stringify({ ...configA, listen: { host: '127.0.0.1', port: execPort } }),
    );
    a = await spawnExecutor(join(work, 'executor-a', 'executor.json'));
    // A stand-in for the Control Plane process holding a `control-plane` certificate that serves
    // the real issuer keys but a policy bundle whose content differs from the hash asked for.
    fakeGate = await createMtlsServer(
      (req, res) => {
        req.resume();
        const url = req.url ?? '';
        if (url === '/v1/internal/issuer-jwks') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jwks: instance.core.controlPlane.issuerJwks() }));
          return;
        }
        const hash = url.slice('/v1/internal/bundles/'.length);
        if (url.startsWith('/v1/internal/bundles/')) {
          const doc = parseJson(readFileSync(join(dataPaths(dir).bundles, `${hash}.json`))) as JsonObject;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(Buffer.from(canonicalBytes({ ...doc, description: 'swapped' })));
          return;
        }
        if (url === '/v1/internal/ledger/append') {
          // Garbage where a confirmation belongs: a string index.
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`{"index":"7","entry_hash":"${'a'.repeat(64)}"}`);
          return;
        }
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"outcome":"deny","code":"ERR_LEDGER_UNAVAILABLE","reason":"stand-in"}');
      },
      {
        files: {
          ca: pkiPaths(pki).caCert,
          cert: pkiPaths(pki).cert('control-plane'),
          key: pkiPaths(pki).key('control-plane'),
        },
        allow: ['executor'],
        host: '127.0.0.1',
        port: 0,
      },
    );
    c = await spawnExecutor(executorConfig('executor-c', Number(new URL(fakeGate.url).port)));
    gateAgent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['executor'],
    });
  }, 60_000);

  afterAll(async () => {
    for (const p of [a, c]) p?.child.kill('SIGTERM');
    for (const p of [a, c])
      if (p !== undefined && p.child.exitCode === null && p.child.signalCode === null)
        await new Promise((r) => p.child.once('exit', r));
    gateAgent?.close();
    await fakeGate?.close();
    await link?.close();
    await instance?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('runs a governed call in the executor process; its receipt is in the Gate’s ledger; the export verifies', async () => {
    // No execution listener in the Gate process: calls go to `executor_url` only.
    expect(instance.executionUrl).toBe(instance.core.config.executor_url);
    expect(instance.internalUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await echo('across processes');
    expect(r).toMatchObject({ outcome: 'executed', result: { message: 'across processes' } });
    if (r.outcome !== 'executed') return;
    const entries = await instance.core.ledger.store.readByRequest(r.request_id);
    const receipt = entries.find((e) => e.type === 'execution.receipt');
    expect(receipt).toMatchObject({ index: r.receipt.index, entry_hash: r.receipt.entry_hash });
    expect(receipt?.actor).toEqual({ id: 'failclosed-executor', role: 'executor' });
    // The nonce was consumed in the executor process's own store.
    expect(consumed(noncesA())).toBe(1);

    const res = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    const bundle = join(work, 'export.jsonl');
    writeFileSync(bundle, await res.text());
    const trust = join(work, 'trust.json');
    expect(await saveTrustRoots(instance.url, trust)).toBe(true);
    let report = '';
    const code = await runCli(['verify', bundle, '--trust', trust], {
      out: (t) => void (report += t),
      err: (t) => void (report += t),
      env: {},
    });
    expect(report).not.toMatch(/FAIL/);
    expect(code).toBe(0);
  }, 30_000);

  it('probes the sandbox for readiness only where a tool can run: not in the process with a separate Execution Layer', async () => {
    const checksOf = async (url: string) =>
      Object.keys(
        ((await (await fetch(`${url}/readyz`)).json()) as { checks: Record<string, boolean> }).checks,
      );
    // `executor_url` and no `tls.executor`: every call goes to the Execution Layer process.
    const separated = await checksOf(instance.url);
    expect(separated).toContain('policy');
    expect(separated).not.toContain('sandbox');
    // An embedded process runs its tools itself: its readiness includes the sandbox.
    const own = join(work, 'embedded');
    await initDataDir(own);
    const embedded = await startEmbedded(own, { port: 0 });
    try {
      expect(await checksOf(embedded.url)).toContain('sandbox');
    } finally {
      await embedded.close();
    }
  });

  it('refuses a peer of another role, a client certificate and a call without one (not from the Gate)', async () => {
    const before = consumed(noncesA());
    for (const name of ['control-plane', 'agent-1', 'executor']) {
      const r = await postExecute(a.url, creds(name));
      expect(r.status, name).toBeUndefined();
      expect(r.error, name).toBeDefined();
    }
    const none = await postExecute(a.url, { ca: creds('gate').ca });
    expect(none.status).toBeUndefined();
    expect(none.error).toBeDefined();
    // The Gate's internal listener admits the `executor` role only.
    for (const name of ['gate', 'agent-1', 'control-plane']) {
      const r = await postExecute(instance.internalUrl!, creds(name));
      expect(r.status, name).toBeUndefined();
    }
    expect(consumed(noncesA())).toBe(before);
    // The refusals are recorded by the Gate's ledger writer, for the executor's listener.
    const size = instance.core.ledger.size();
    const tail = await instance.core.ledger.store.readRange(Math.max(0, size - 50), size);
    expect(
      tail.some(
        (e) =>
          e.type === 'transport.refused' &&
          e.actor.role === 'executor' &&
          e.payload['listener'] === 'execution',
      ),
    ).toBe(true);
    // And the internal listener's, by the role it serves as.
    expect(
      tail.some(
        (e) =>
          e.type === 'transport.refused' &&
          e.actor.role === 'control-plane' &&
          e.payload['listener'] === 'internal',
      ),
    ).toBe(true);
  }, 30_000);

  it('denies when the Gate’s internal listener cannot be reached, and the tool does not run', async () => {
    await echo('warm'); // keys and bundle held
    const before = consumed(noncesA());
    link.cut();
    try {
      const r = await echo('cut off');
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
      expect(consumed(noncesA())).toBe(before);
    } finally {
      link.mend();
    }
    expect(await echo('mended')).toMatchObject({ outcome: 'executed' });
  }, 30_000);

  it('refuses a policy bundle served with content that does not hash to the hash asked for', async () => {
    route = createRemoteExecutor({ url: c.url, agent: gateAgent });
    try {
      const r = await echo('swapped bundle');
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_BUNDLE_INVALID' });
    } finally {
      route = undefined;
    }
    expect(consumed(noncesC())).toBe(0);
  }, 30_000);

  it('denies ERR_TRUST_UNAVAILABLE when the issuer keys cannot be had fresh enough', async () => {
    let t = 1_000_000;
    const trust = createGateTrust({
      link: {
        url: `https://127.0.0.1:${link.port}`,
        agent: await agentOf('executor', 'control-plane'),
        timeoutMs: 2000,
      },
      now: () => t,
      maxAgeMs: 5000,
      compile: createBundleCompiler({ builtins: Object.keys(createDefaultBuiltins()) }),
    });
    const kid = (instance.core.controlPlane.issuerJwks() as { keys: { kid: string }[] }).keys[0]!.kid;
    expect(await trust.freshKeys()).toBeUndefined();
    expect(trust.keys.lookup(kid).status).toBe('active');
    // A bundle by hash: fetched, hashed again and compiled here.
    const hash = instance.core.controlPlane.activeBundle()!.hash;
    expect(await trust.bundle(hash)).toBeUndefined();
    expect(trust.held(hash)?.hash).toBe(
      sha256Hex(readFileSync(join(dataPaths(dir).bundles, `${hash}.json`))),
    );
    link.cut();
    try {
      t += 4999;
      expect(await trust.freshKeys()).toBeUndefined(); // still within the bound
      t += 2;
      expect(await trust.freshKeys()).toMatchObject({ outcome: 'deny', code: 'ERR_TRUST_UNAVAILABLE' });
      // Past the bound the held keys are not used: no kid is known.
      expect(trust.keys.lookup(kid).status).toBe('unknown');
      expect(await trust.bundle('0'.repeat(64))).toMatchObject({ code: 'ERR_TRUST_UNAVAILABLE' });
    } finally {
      link.mend();
    }
    expect(await trust.freshKeys()).toBeUndefined();

    // A kid the fresh copy does not know (a rotation just made) is fetched again, at most once
    // per KID_REFETCH_MS: unknown kids cannot make it ask the Gate on every call.
    expect(await trust.freshKeys('no-such-kid')).toBeUndefined();
    const rotated = await instance.core.controlPlane.rotateIssuerKey(
      { id: 'operator', role: 'operator' },
      'e2e: a kid the executor does not hold yet',
    );
    expect(rotated).toMatchObject({ outcome: 'ok' });
    const next = (instance.core.controlPlane.issuerJwks() as { keys: { kid: string }[] }).keys.find(
      (k) => k.kid !== kid && trust.keys.lookup(k.kid).status === 'unknown',
    )!.kid;
    expect(await trust.freshKeys(next)).toBeUndefined();
    expect(trust.keys.lookup(next).status).toBe('unknown'); // asked for a kid just now: not again yet
    t += KID_REFETCH_MS;
    expect(await trust.freshKeys(next)).toBeUndefined();
    expect(trust.keys.lookup(next).status).toBe('active');

    // Near its bound the copy is renewed before it is used: a call checked now still finds its
    // key a moment later, when it verifies, instead of a copy that aged out in between.
    t += 4500;
    expect(await trust.freshKeys(next)).toBeUndefined();
    t += 900;
    expect(trust.keys.lookup(next).status).toBe('active');
  }, 30_000);

  it('the Gate’s ledger writer takes only the Execution Layer’s entry types, as role executor; its answers are parsed as untrusted', async () => {
    const agent = await agentOf('executor', 'control-plane');
    try {
      const post = (path: string, body: object) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(
            `${instance.internalUrl!}${path}`,
            { method: 'POST', agent: agent.current(), headers: { 'content-type': 'application/json' } },
            (res) => {
              let text = '';
              res.on('data', (d: Buffer) => (text += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            },
          );
          req.on('error', reject);
          req.end(JSON.stringify(body));
        });
      const entry = {
        type: 'decision',
        trace_id: 't',
        request_id: 'r',
        tenant: 'acme',
        actor: { id: 'x', role: 'control-plane' },
        payload: {},
      };
      const forged = await post('/v1/internal/ledger/append', entry);
      expect(forged.status).toBe(400);
      expect(forged.body).toContain('ERR_REQUEST_MALFORMED');
      const denial = await post('/v1/internal/ledger/append', {
        ...entry,
        type: 'denial',
        payload: { code: 'ERR_INTERNAL', stage: 'execution', reason: 'probe', tool: 'echo' },
      });
      expect(denial.status).toBe(200);
      const ref = JSON.parse(denial.body) as { index: number };
      const [written] = await instance.core.ledger.store.readRange(ref.index, ref.index + 1);
      expect(written?.actor).toEqual({ id: 'x', role: 'executor' });
      // An answer that is not a confirmation is a rejection, whatever status it came with.
      const { createGateLedger } = await import('../../src/embedded/index.js');
      const stand = createGateLedger({ url: fakeGate.url, agent, timeoutMs: 2000 });
      await expect(
        stand.append({ ...entry, type: 'denial', actor: { id: 'x', role: 'executor' } }),
      ).rejects.toThrow('the ledger writer answered garbage');
      await expect(stand.readEnvelopeContext({ index: 0, jti: 'j', decision_id: 'd' })).rejects.toThrow(
        'the ledger writer answered 503',
      );
    } finally {
      agent.close();
    }
  }, 30_000);

  it('replicas sharing one PostgreSQL nonce store run an envelope once across them', async () => {
    const schema = nextSchema();
    const replicas: ExecutorNode[] = [];
    try {
      for (const name of ['replica-1', 'replica-2'])
        replicas.push(
          await startExecutorNode(
            executorConfig(name, Number(new URL(instance.internalUrl!).port), {
              nonces: pgdb.url,
              nonces_schema: schema,
            }),
          ),
        );
      const [one, two] = replicas.map((n) => createRemoteExecutor({ url: n.url, agent: gateAgent }));
      let kept: Parameters<GateExecutor['execute']>[0] | undefined;
      route = {
        execute: (call, writes, signal) => {
          kept = call;
          return one!.execute(call, writes, signal);
        },
        void: (call, signal) => one!.void(call, signal),
      };
      try {
        expect(await echo('replica one')).toMatchObject({ outcome: 'executed' });
      } finally {
        route = undefined;
      }
      // The same envelope, presented by the Gate to the other replica: consumed already.
      expect(kept).toBeDefined();
      expect(await two!.execute(kept!)).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_REPLAYED' });
    } finally {
      for (const n of replicas) await n.close();
    }
  }, 60_000);

  async function agentOf(name: string, expect: 'control-plane' | 'executor'): Promise<MtlsAgent> {
    return createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert(name), key: pkiPaths(pki).key(name) },
      expect: [expect],
    });
  }
});
