/**
 * What a process loads before it needs it: the CLI (every command, `up` and each `serve`
 * included) imports the whole composition, and every start paid for libraries most runs never
 * use (measured: about 1.5 s of CPU for `failclosed --help`, 0.3 s of it the OpenTelemetry SDK
 * and exporter, 0.25 s `@peculiar/x509` with its Reflect polyfill). Both now load on first use:
 * tracing only when the `OTEL_*` variables ask for export, X.509 at the first certificate read,
 * the PostgreSQL driver with the first pool, the NATS client with the first connection.
 * `failclosed verify`, the auditor's offline command, loads the verifier alone (it loaded the whole
 * composition, over 1 s of CPU, to check a bundle offline). A command that reaches a running server
 * (`call`, `requests show`) loads neither a store, the policy engine, the logger nor the metrics
 * (measured: `failclosed call` against a running gate took about 1.1 s of CPU, 0.4 s after).
 * Runs the built CLI (`dist/`, which the test command builds first) in a process of its own: this
 * worker has loaded everything already.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { announceServer, initDataDir, startEmbedded } from '../../src/embedded/index.js';
import { REPO_ROOT } from '../support/paths.js';

const RUN = pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'cli', 'run.js')).href;
const MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const EMBEDDED = pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'embedded', 'embedded.js')).href;

/** The CommonJS modules loaded once `code` ran after importing the CLI (ES imports of CommonJS included). */
function loadedAfter(code: string): string[] {
  const script = `
    import { createRequire } from 'node:module';
    const { runCli } = await import(${JSON.stringify(RUN)});
    ${code}
    const require = createRequire(import.meta.url);
    process.stdout.write(JSON.stringify(Object.keys(require.cache)));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: CHILD_ENV,
  });
  return JSON.parse(out) as string[];
}

const TRACING = /@opentelemetry[\\/](sdk-trace-node|sdk-trace-base|exporter-trace-otlp-http|resources)[\\/]/;
const X509 = /@peculiar[\\/]x509[\\/]|reflect-metadata[\\/]/;
/** The worker's environment without the variables that would turn tracing on. */
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
const NATS = /@nats-io[\\/]/;
const PG = /node_modules[\\/](pg|pg-pool|pg-protocol)[\\/]/;

describe('libraries loaded on first use', () => {
  it('importing the CLI and the composition loads neither the tracing SDK, X.509, the PostgreSQL driver nor the NATS client', () => {
    // The composition as `up` and `serve` import it; the CLI alone loads it only where a command starts it.
    const loaded = loadedAfter(`void runCli; await import(${JSON.stringify(EMBEDDED)});`);
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.filter((p) => TRACING.test(p))).toEqual([]);
    expect(loaded.filter((p) => X509.test(p))).toEqual([]);
    expect(loaded.filter((p) => PG.test(p))).toEqual([]);
    expect(loaded.filter((p) => NATS.test(p))).toEqual([]);
  });

  it('a certificate read loads X.509 (the development CA is made with it)', () => {
    const loaded = loadedAfter(`
      const { mkdtempSync, rmSync } = await import('node:fs');
      const dir = mkdtempSync((await import('node:os')).tmpdir() + '/fc-load-');
      const io = { out: () => {}, err: (t) => process.stderr.write(t), env: {} };
      const code = await runCli(['certs', 'init', '--dir', dir], io);
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error('certs init exited ' + code);
    `);
    expect(loaded.some((p) => /@peculiar[\\/]x509[\\/]/.test(p))).toBe(true);
  });

  it('verify loads the verifier, not the composition (no SQLite, no Cedar, no logger)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-load-'));
    // The CommonJS modules the process holds as it exits, on stderr after a marker.
    const report = join(dir, 'report.cjs');
    writeFileSync(
      report,
      `process.on('exit', () => process.stderr.write('\\nLOADED' + JSON.stringify(Object.keys(require.cache))));`,
    );
    const r = spawnSync(
      process.execPath,
      ['--require', report, MAIN, 'verify', join(dir, 'none.jsonl'), '--trust', join(dir, 'none.json')],
      { encoding: 'utf8', env: CHILD_ENV },
    );
    rmSync(dir, { recursive: true, force: true });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('cannot read the bundle');
    const loaded = JSON.parse(r.stderr.slice(r.stderr.indexOf('LOADED') + 'LOADED'.length)) as string[];
    expect(loaded.filter((p) => /better-sqlite3|@cedar-policy|[\\/]pino[\\/]|prom-client/.test(p))).toEqual(
      [],
    );
  });

  it('call and requests show against a running gate load no store, policy engine, logger or metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-load-'));
    await initDataDir(dir);
    const gate = await startEmbedded(dir, { port: 0, executionPort: 0 });
    try {
      announceServer(dir, gate.url);
      const report = join(dir, 'report.cjs');
      writeFileSync(
        report,
        `process.on('exit', () => process.stderr.write('\\nLOADED' + JSON.stringify(Object.keys(require.cache))));`,
      );
      // Asynchronous: the gate answering it runs in this process.
      const cli = async (...args: string[]): Promise<{ out: string; loaded: string[] }> => {
        const r = await promisify(execFile)(
          process.execPath,
          ['--require', report, MAIN, ...args, '--data', dir],
          {
            encoding: 'utf8',
            env: CHILD_ENV,
          },
        ).catch((e: { stdout: string; stderr: string }) => e);
        return {
          out: r.stdout,
          loaded: JSON.parse(r.stderr.slice(r.stderr.indexOf('LOADED') + 'LOADED'.length)) as string[],
        };
      };
      const heavy = (loaded: string[]): string[] =>
        loaded.filter((p) => /better-sqlite3|@cedar-policy|[\\/]pino[\\/]|prom-client|[\\/]ajv[\\/]/.test(p));
      const call = await cli('call', 'echo', '--params', '{"message":"light"}');
      expect(JSON.parse(call.out)).toMatchObject({ outcome: 'executed' });
      expect(heavy(call.loaded)).toEqual([]);
      const show = await cli('requests', 'show', (JSON.parse(call.out) as { request_id: string }).request_id);
      expect(JSON.parse(show.out)).toMatchObject({ outcome: 'executed' });
      expect(heavy(show.loaded)).toEqual([]);
    } finally {
      await gate.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
