/**
 * Real `failclosed` processes for the stop and crash tests (SPEC §5): `up` as a child process of
 * the built CLI (`dist/`, `npm run build`), one-shot CLI commands, and a look into the Execution
 * Layer's nonce store file to know when a tool is running (no sleeps to wait for things).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { REPO_ROOT } from '../support/paths.js';
import { dataPaths, demoPolicyDir } from '../../src/embedded/index.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** A running `failclosed up`. */
export interface UpProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it printed on stdout so far. */
  out(): string;
  /** Its exit: the code, or the signal that ended it. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

/** A `failclosed up` started, which may not listen yet (a standby listens once it takes over). */
export interface SpawnedUp {
  readonly child: ChildProcess;
  /** Everything it printed on stdout and stderr so far. */
  out(): string;
  /** Its exit: the code, or the signal that ended it. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Its Gate's URL once it listens; rejects if it exits first. */
  readonly listening: Promise<string>;
}

/**
 * Spawns `failclosed up --port 0 --grace SEC` over `dir` (or `command` in place of `up`, e.g.
 * `serve control-plane`), with `extraArgs` after (e.g. `--standby`) and `env` over this process's
 * environment, without waiting for it to listen.
 */
export function spawnUp(
  dir: string,
  graceSec: number,
  extraArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  command: readonly string[] = ['up'],
): SpawnedUp {
  const child = spawn(
    process.execPath,
    [CLI, ...command, '--data', dir, '--port', '0', '--grace', String(graceSec), ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'SIGKILL')),
  );
  const listening = new Promise<string>((resolve, reject) => {
    const look = (): void => {
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    };
    child.stdout.on('data', look);
    void exited.then((c) => reject(new Error(`up exited (${String(c)}): ${out}${err}`)));
  });
  // Awaited later, or never (a process expected to exit): its rejection is not unhandled.
  listening.catch(() => undefined);
  return { child, out: () => out + err, exited, listening };
}

/** Starts `failclosed up --port 0 --grace SEC` over `dir` and resolves once it listens. */
export async function startUp(
  dir: string,
  graceSec: number,
  extraArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  command: readonly string[] = ['up'],
): Promise<UpProcess> {
  const up = spawnUp(dir, graceSec, extraArgs, env, command);
  return { url: await up.listening, child: up.child, out: () => up.out(), exited: up.exited };
}

/**
 * Writes under `work` the demo policy plus `nap`: a sandboxed `/usr/bin/sleep SECONDS`, allowed (a
 * call that is surely in flight while its `sleep` runs, see {@link isRunningUnder}). Returns its directory.
 */
export function napPolicyDir(work: string): string {
  const policy = join(work, 'policy');
  cpSync(demoPolicyDir(), policy, { recursive: true });
  writeFileSync(
    join(policy, 'tools', 'nap.json'),
    JSON.stringify({
      name: 'nap',
      description: 'Sleeps a few seconds in the sandbox (stop and crash tests).',
      risk: 'low',
      adapter: {
        type: 'command',
        argv: ['/usr/bin/sleep', '{seconds}'],
        limits: { timeout_ms: 15000, max_output_bytes: 1024, network: false },
      },
      parameters: {
        type: 'object',
        properties: { seconds: { type: 'string', pattern: '^[0-9]$' } },
        required: ['seconds'],
        additionalProperties: false,
      },
    }),
  );
  appendFileSync(
    join(policy, 'schema.cedarschema'),
    '\naction "nap" appliesTo { principal: Agent, resource: Tenant, context: { params: { seconds: String }, risk: String, tainted: Bool } };\n',
  );
  writeFileSync(
    join(policy, 'policies', 'allow-nap.cedar'),
    '@reason("stop and crash tests")\npermit (principal, action == Action::"nap", resource);\n',
  );
  return policy;
}

/** Resolves once `predicate` holds, checking every 20 ms; rejects after `limitMs`. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 15_000,
): Promise<void> {
  const start = Date.now();
  while (!(await predicate())) {
    if (Date.now() - start > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function parentOf(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * True while a process running exactly `argv` descends from `ancestor` (e.g. the sandboxed tool
 * of a `failclosed up`): how the tests know a tool is running, without waiting a fixed time.
 */
export function isRunningUnder(ancestor: number, argv: readonly string[]): boolean {
  const wanted = `${argv.join('\0')}\0`;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline !== wanted) continue;
    for (
      let pid: number | undefined = Number(name), hops = 0;
      pid !== undefined && pid > 1 && hops < 16;
      hops++
    ) {
      if (pid === ancestor) return true;
      pid = parentOf(pid);
    }
  }
  return false;
}

/** Runs one CLI command to completion. */
export function runCli(...argv: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...argv], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A ledger entry as exported. */
export interface ExportedEntry {
  readonly index: number;
  readonly type: string;
  readonly request_id: string;
  readonly trace_id: string;
  readonly payload: Record<string, unknown>;
}

/** Every ledger entry, read from the data directory's ledger file (the source of truth). */
export function ledgerEntries(dir: string): ExportedEntry[] {
  const db = new Database(dataPaths(dir).ledgerDb, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare<[], { body: string }>('SELECT body FROM entries ORDER BY idx')
      .all()
      .map((r) => JSON.parse(r.body) as ExportedEntry);
  } finally {
    db.close();
  }
}

/** Accepted requests without an outcome record after them (FC-INV-5), by request id. */
export function requestsWithoutOutcome(entries: readonly ExportedEntry[]): string[] {
  const outcomes = new Set(['gateway.completed', 'gateway.failed', 'request.abandoned']);
  return entries
    .filter((a) => a.type === 'gateway.accepted')
    .filter(
      (a) =>
        !entries.some(
          (o) =>
            o.index > a.index &&
            outcomes.has(o.type) &&
            o.request_id === a.request_id &&
            o.trace_id === a.trace_id,
        ),
    )
    .map((a) => a.request_id);
}
