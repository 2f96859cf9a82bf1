/**
 * The separate Execution Layer as deploy/systemd ships it (FC-INV-6 "only the Gate reaches
 * execution", L7 mutual TLS): `deploy/systemd/control-plane.json` merged into a fresh data
 * directory as `failclosed up` runs it on SQLite (failclosed.service; on PostgreSQL,
 * failclosed-postgres.service runs it as `serve control-plane`, whose port takes no call) and
 * `deploy/systemd/executor.json`, with only their directory prefixes and ports rewritten to the
 * test's own, run as the real components (`startEmbedded`, `startExecutorNode`, no in-process
 * execution listener in the Gate).
 *
 * - A governed call runs in the executor; its nonce is consumed in the executor's own store.
 * - A TCP connection to the execution port without the Gate's certificate (what a TCP or HTTP
 *   probe would be) is a refused handshake that the Gate's ledger records as `transport.refused`:
 *   why the artefacts put no probe on that port.
 * - With the executor stopped, a call is denied `ERR_EXECUTION_UNAVAILABLE` and no tool runs.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  startEmbedded,
  startExecutorNode,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode } from '../../src/embedded/index.js';
import { createDevCa, issueCert, writeCrl } from '../../src/transport/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { freePort } from '../support/ports.js';

const SYSTEMD = join(REPO_ROOT, 'deploy/systemd');

function consumed(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM envelope_nonces WHERE voided = 0').get()!
      .n;
  } finally {
    db.close();
  }
}

/** `text` with every `from` replaced by `to`; refuses when `from` is absent (the file changed). */
function rewrite(text: string, from: string, to: string): string {
  expect(text, from).toContain(from);
  return text.replaceAll(from, to);
}

describe('the separate Execution Layer from the shipped systemd configuration', () => {
  let work: string;
  let gateDir: string;
  let nonces: string;
  let executorConfig: string;
  let gate: EmbeddedInstance;
  let executor: ExecutorNode | undefined;
  let client: FailclosedClient;
  const runs: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-deploy-exec-'));
    const pki = join(work, 'certs');
    await createDevCa(pki);
    await issueCert(pki, { role: 'gate' });
    await issueCert(pki, { role: 'control-plane' });
    await issueCert(pki, { role: 'executor' });
    await writeCrl(pki);
    const [execPort, internalPort] = [await freePort(), await freePort()];

    // The Gate (`up`): a fresh data directory with deploy/systemd/control-plane.json merged in.
    gateDir = join(work, 'gate');
    await initDataDir(gateDir);
    const etcGate = join(work, 'etc-failclosed');
    mkdirSync(join(etcGate, 'tls'), { recursive: true });
    // What the Control Plane's unit is given: the CA, the CRL and its own two certificates.
    for (const f of ['ca.pem', 'crl.pem', 'gate.pem', 'gate.key', 'control-plane.pem', 'control-plane.key'])
      copyFileSync(join(pki, f), join(etcGate, 'tls', f));
    let gateText = readFileSync(join(SYSTEMD, 'control-plane.json'), 'utf8');
    gateText = rewrite(gateText, '/etc/failclosed/', `${etcGate}/`);
    gateText = rewrite(gateText, '127.0.0.1:7443', `127.0.0.1:${execPort}`);
    gateText = rewrite(gateText, '"internal_port": 7444', `"internal_port": ${internalPort}`);
    const config = JSON.parse(readFileSync(dataPaths(gateDir).config, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      dataPaths(gateDir).config,
      JSON.stringify({ ...config, ...(JSON.parse(gateText) as Record<string, unknown>) }),
    );

    // The executor: deploy/systemd/executor.json in its own directory, its certificate beside it.
    const etcExec = join(work, 'etc-failclosed-executor');
    mkdirSync(join(etcExec, 'tls'), { recursive: true });
    for (const f of ['ca.pem', 'crl.pem', 'executor.pem', 'executor.key'])
      copyFileSync(join(pki, f), join(etcExec, 'tls', f));
    const state = join(work, 'var-lib-failclosed-executor');
    mkdirSync(state);
    nonces = join(state, 'nonces.db');
    let execText = readFileSync(join(SYSTEMD, 'executor.json'), 'utf8');
    execText = rewrite(execText, '/var/lib/failclosed-executor/', `${state}/`);
    execText = rewrite(execText, '"port": 7443', `"port": ${execPort}`);
    execText = rewrite(execText, '127.0.0.1:7444', `127.0.0.1:${internalPort}`);
    executorConfig = join(etcExec, 'executor.json');
    writeFileSync(executorConfig, execText);

    gate = await startEmbedded(gateDir, { port: 0 });
    executor = await startExecutorNode(executorConfig, { onToolRun: (r) => runs.push(r.tool) });
    const f = readClientFile(gateDir, DEMO_CLIENT.identity);
    client = createClient({ url: gate.url, identity: f.identity, tenant: f.tenant, key: f.key });
  }, 60_000);

  afterAll(async () => {
    await executor?.close();
    await gate?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('the Gate runs no execution listener: its calls go to the executor, which runs them and consumes the nonce', async () => {
    expect(gate.executionUrl).toBe(gate.core.config.executor_url);
    expect(gate.internalUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await client.call('echo', { message: 'as deployed' }, { session: 'deploy-systemd' });
    expect(r).toMatchObject({ outcome: 'executed', result: { message: 'as deployed' } });
    expect(runs).toEqual(['echo']);
    expect(consumed(nonces)).toBe(1);
  }, 30_000);

  it('a connection without the Gate’s certificate (a probe) is refused and recorded in the Gate’s ledger', async () => {
    const port = Number(new URL(executor!.url).port);
    await new Promise<void>((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => s.end());
      s.once('error', reject);
      s.once('close', () => resolve());
    });
    await vi.waitFor(
      async () => {
        const size = gate.core.ledger.size();
        const tail = await gate.core.ledger.store.readRange(Math.max(0, size - 20), size);
        expect(
          tail.some(
            (e) =>
              e.type === 'transport.refused' &&
              e.actor.role === 'executor' &&
              e.payload['listener'] === 'execution' &&
              e.payload['reason'] === 'handshake',
          ),
        ).toBe(true);
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(runs).toEqual(['echo']);
  }, 30_000);

  it('with the executor stopped, a call is denied ERR_EXECUTION_UNAVAILABLE and no tool runs', async () => {
    await executor!.close();
    executor = undefined;
    const r = await client.call('echo', { message: 'nobody there' }, { session: 'deploy-systemd' });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    expect(runs).toEqual(['echo']);
    expect(consumed(nonces)).toBe(1);
  }, 30_000);
});
