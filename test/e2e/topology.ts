/**
 * Pieces of the distributed topology shared by the end-to-end tests: a free loopback port, a
 * real `failclosed serve executor` child of the built CLI (`dist/`, `npm run build`), and the
 * operator's export of a gate's ledger verified offline under the trust roots it publishes.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../src/cli/run.js';
import { saveTrustRoots } from '../../src/cli/trust-file.js';
import { dataPaths } from '../../src/embedded/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { createDevCa, issueCert, pkiPaths } from '../../src/transport/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { freePort } from '../support/ports.js';

export { freePort };

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** A running `failclosed serve executor` (or `serve gate`). */
export interface ExecutorProcess {
  readonly child: ChildProcess;
  /** Its URL, as it printed it (an executor's `POST /v1/execute`, a gate's client URL). */
  readonly url: string;
  /** Everything it printed so far. */
  out(): string;
}

/** Spawns `failclosed serve executor --config FILE` and resolves once it listens. */
export function spawnExecutor(
  config: string,
  env: Readonly<Record<string, string>> = {},
): Promise<ExecutorProcess> {
  return spawnServe('executor', config, env);
}

/** Spawns `failclosed serve ROLE --config FILE` and resolves once it listens. */
export async function spawnServe(
  role: 'executor' | 'gate' | 'ledger',
  config: string,
  env: Readonly<Record<string, string>> = {},
): Promise<ExecutorProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', role, '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FAILCLOSED_HOME: '/nonexistent', ...env },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const look = (): void => {
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    };
    child.stdout.on('data', look);
    child.once('exit', (c) => reject(new Error(`serve ${role} exited (${String(c)}): ${out}`)));
  });
  return { child, url, out: () => out };
}

/** Stops a child with `signal` and waits for its exit (nothing when it has exited). */
export async function stopProcess(
  p: { readonly child: ChildProcess } | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (p === undefined || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  await gone;
}

/**
 * The operator's export of the gate at `url` (`POST /v1/admin/ledger-export`) written under
 * `work`, verified with `failclosed verify --trust` under the trust roots the gate publishes.
 */
export async function exportAndVerify(
  url: string,
  operatorToken: string,
  work: string,
  extraArgs: readonly string[] = [],
): Promise<{ readonly code: number; readonly report: string; readonly status: number }> {
  const res = await fetch(`${url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
    body: '{}',
  });
  const bundle = join(work, `export-${Date.now()}.jsonl`);
  writeFileSync(bundle, await res.text());
  const trust = join(work, `trust-${Date.now()}.json`);
  if (!(await saveTrustRoots(url, trust))) return { code: -1, report: 'no trust roots', status: res.status };
  let report = '';
  const code = await runCli(['verify', bundle, '--trust', trust, ...extraArgs], {
    out: (t) => void (report += t),
    err: (t) => void (report += t),
    env: {},
  });
  return { code, report, status: res.status };
}

/** A data directory prepared for a separate Execution Layer, and what its executors need. */
export interface SeparateExecutorLayout {
  readonly pki: string;
  readonly execPort: number;
  readonly internalPort: number;
  /**
   * Writes `executor.json` under `at` for an executor reaching this Gate's internal listener
   * (its `listen` port `execPort` by default, 0 to take any), with `extra` fields; returns its path.
   */
  executorConfig(at: string, extra?: JsonObject): string;
}

/** The name of a keyless Gate's client-only `gate` certificate under the layout's `pki`. */
export const KEYLESS_GATE_CERT = 'gate-1';

/**
 * Makes a development CA with `gate`, `control-plane` and `executor` certificates (and a keyless Gate's
 * client-only one, {@link KEYLESS_GATE_CERT}) under `work/certs`, and sets
 * `executor_url`, `internal_port` and `tls` (plus `extra`) in the initialised data directory
 * `dir`, so the Gate there runs no Execution Layer of its own.
 */
export async function separateExecutorLayout(
  work: string,
  dir: string,
  extra: JsonObject = {},
): Promise<SeparateExecutorLayout> {
  const pki = join(work, 'certs');
  await createDevCa(pki);
  await Promise.all([
    issueCert(pki, { role: 'gate' }),
    issueCert(pki, { role: 'control-plane' }),
    issueCert(pki, { role: 'executor' }),
    // A keyless Gate's own certificate: only to connect out with, so it cannot serve under any
    // name (FC-INV-6, docs/deployment.md).
    issueCert(pki, { role: 'gate', name: KEYLESS_GATE_CERT, clientOnly: true }),
  ]);
  const [internalPort, execPort] = [await freePort(), await freePort()];
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
      ...extra,
    }),
  );
  return {
    pki,
    execPort,
    internalPort,
    executorConfig(at, fields = {}) {
      mkdirSync(at, { recursive: true });
      const path = join(at, 'executor.json');
      writeFileSync(
        path,
        JSON.stringify({
          audience: 'failclosed-executor',
          listen: { host: '127.0.0.1', port: execPort },
          gate_url: `https://127.0.0.1:${internalPort}`,
          tls: {
            ca: pkiPaths(pki).caCert,
            cert: pkiPaths(pki).cert('executor'),
            key: pkiPaths(pki).key('executor'),
          },
          nonces: 'nonces.db',
          ...fields,
        }),
      );
      return path;
    },
  };
}
