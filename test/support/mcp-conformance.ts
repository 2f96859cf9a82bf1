/**
 * The MCP project's conformance suite (`@modelcontextprotocol/conformance`, its `server` command)
 * for the tests: the reference server of test/fixtures/mcp-conformance/server.mjs started over
 * Streamable HTTP on loopback, the suite run as a child process against a URL, its per-scenario
 * results read back from `checks.json`, and a small authenticating forwarder that puts a
 * registered client's token on every request (the suite connects without credentials; the
 * Gate's own authentication is unchanged). docs/mcp.md "Conformance".
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/** The suite's command-line entry point. */
export const CONFORMANCE_CLI = join(
  REPO_ROOT,
  'node_modules',
  '@modelcontextprotocol',
  'conformance',
  'dist',
  'index.js',
);
/** The reference server (`node server.mjs http [PORT]` or `node server.mjs stdio`). */
export const REFERENCE_SERVER = join(REPO_ROOT, 'test', 'fixtures', 'mcp-conformance', 'server.mjs');
/** The scenarios expected to fail through the gateway, each with its reason. */
export const EXPECTED_FAILURES = join(
  REPO_ROOT,
  'test',
  'fixtures',
  'mcp-conformance',
  'expected-failures.yml',
);

/** A running reference server. */
export interface RunningReference {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the reference server's Streamable HTTP transport on a free loopback port. */
export async function startReferenceServer(): Promise<RunningReference> {
  const child = spawn(process.execPath, [REFERENCE_SERVER, 'http', '0'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error('the reference server did not start')), 30_000);
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`the reference server exited: ${err.slice(0, 500)}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    url,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** One scenario's outcome: its failed and warned checks (the suite's baseline counts both). */
export interface ScenarioResult {
  readonly scenario: string;
  readonly checks: number;
  readonly failures: readonly string[];
  readonly warnings: readonly string[];
}

/** What a run of the suite gave. */
export interface ConformanceRun {
  readonly code: number | null;
  readonly output: string;
  readonly scenarios: readonly ScenarioResult[];
}

interface Check {
  id: string;
  status: string;
  errorMessage?: string;
}

/**
 * Runs `conformance server --url URL (--suite all | --scenario S) -o OUT [--expected-failures
 * FILE]` as a child process (never synchronously: the gate under test may run in this process)
 * and reads every scenario's `checks.json` from OUT.
 */
export async function runConformance(
  url: string,
  out: string,
  expectedFailures?: string,
  scenario?: string,
): Promise<ConformanceRun> {
  const args = [CONFORMANCE_CLI, 'server', '--url', url, '-o', out];
  args.push(...(scenario === undefined ? ['--suite', 'all'] : ['--scenario', scenario]));
  if (expectedFailures !== undefined) args.push('--expected-failures', expectedFailures);
  const child = spawn(process.execPath, args, {
    cwd: out,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  const scenarios: ScenarioResult[] = [];
  for (const d of existsSync(out) ? readdirSync(out).sort() : []) {
    // `server-<scenario>-<ISO time with - for : and .>`
    const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(d);
    const file = join(out, d, 'checks.json');
    if (m === null || !existsSync(file)) continue;
    const checks = JSON.parse(readFileSync(file, 'utf8')) as Check[];
    const said = (status: string) =>
      checks.filter((c) => c.status === status).map((c) => `${c.id}: ${c.errorMessage ?? ''}`);
    scenarios.push({
      scenario: m[1] ?? d,
      checks: checks.length,
      failures: said('FAILURE'),
      warnings: said('WARNING'),
    });
  }
  return { code, output, scenarios };
}

/** A running forwarder. */
export interface Forwarder {
  readonly url: string;
  /** `host:port` the forwarder listens on (what clients send as `Host`). */
  readonly authority: string;
  close(): Promise<void>;
}

/**
 * An HTTP forwarder on loopback for a client that cannot authenticate: each request goes to
 * `target()` (same method, path, headers and body, `Host` and `Origin` included, so the Gate's own
 * Host/Origin checks still apply), with `Authorization: Bearer <bearer()>` set, and the answer
 * streams back as it comes (server-sent events included).
 */
export async function startForwarder(target: () => string, bearer: () => string): Promise<Forwarder> {
  const server: Server = createServer((req, res) => {
    const to = new URL(target());
    const upstream = request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, authorization: `Bearer ${bearer()}` },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const authority = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${authority}`,
    authority,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
