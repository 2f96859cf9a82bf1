/**
 * PostgreSQL round trips of one governed call (issue: "the governed call near its floor"): the
 * gate on the PostgreSQL backend (a database made for the run on `BENCH_PG_URL`, default
 * `postgres://postgres@127.0.0.1:5432/postgres`, dropped after it) serves `BENCH_CALLS` (60)
 * sequential `echo` calls after a warm-up, while every statement sent through the `pg` driver is
 * timed. It prints, as medians per call, the statements sent and the sequential rounds among them
 * (a statement sent while another is in flight joins that round), then the statements of the last
 * call in order. Counts, not speed: they do not depend on the machine's load, so a change that
 * removes a round shows here when the noise hides it from `bench:e2e`. It also prints the Parse
 * messages per call (statement texts the server had to parse and plan: none once each connection
 * prepared its statements, `prepared.ts`) and, when the server runs on this machine, its CPU time
 * per call: the `postgres` processes' user and system time over the measured calls (Linux
 * `/proc`; every database of that server counts, so run it on an otherwise idle server). Run:
 * `npm run bench:pg-rounds`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, startEmbedded } from '../../src/embedded/index.js';
import { BENCH_BREAKERS } from '../load.js';

const PG_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CALLS = Math.max(1, Math.trunc(Number(process.env['BENCH_CALLS'] ?? 60)) || 60);

interface Sent {
  readonly start: number;
  end: number;
  readonly text: string;
}

let recording: Sent[] | undefined;
/** Parse messages sent while a call is recorded. */
let parsing: { n: number } | undefined;

/** Counts the Parse messages of `pg` connections while {@link parsing} is set. */
function countParses(): void {
  const conn = pg.Connection.prototype as unknown as { parse: (...args: unknown[]) => unknown };
  const parse = conn.parse;
  conn.parse = function (this: unknown, ...args: unknown[]): unknown {
    if (parsing !== undefined) parsing.n += 1;
    return parse.apply(this, args);
  };
}

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * User + system CPU seconds of the processes named `postgres` on this machine (the server's
 * postmaster and backends), or undefined where none can be read (another host, not Linux).
 */
function serverCpuSeconds(): number | undefined {
  let ticks = 0;
  let seen = false;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    if (!stat.includes(' (postgres) ')) continue;
    // Fields after the command: state is the 3rd field, utime the 14th and stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
    seen = true;
  }
  return seen ? ticks / TICKS_PER_SECOND : undefined;
}

/** Times every statement of `pg.Client` while `recording` is set (promise and callback forms). */
function instrument(): void {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]): unknown {
    const log = recording;
    if (log === undefined) return query.apply(this, args);
    const first = args[0] as string | { readonly text?: unknown } | null | undefined;
    const named = typeof first === 'string' ? first : first?.text;
    const text = typeof named === 'string' ? named : '';
    const sent: Sent = { start: performance.now(), end: Infinity, text: text.replace(/\s+/g, ' ').trim() };
    log.push(sent);
    const done = (): void => void (sent.end = performance.now());
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function')
      args[last] = (...a: unknown[]): unknown => {
        done();
        return (callback as (...x: unknown[]) => unknown)(...a);
      };
    const r = query.apply(this, args);
    if (r instanceof Promise) r.then(done, done);
    return r;
  };
}

/** Sequential rounds: statements sorted by start; one sent before the round's last answer joins it. */
function roundsOf(sent: readonly Sent[]): number {
  let rounds = 0;
  let end = -Infinity;
  for (const s of [...sent].sort((a, b) => a.start - b.start)) {
    if (s.start >= end) {
      rounds += 1;
      end = s.end;
    } else end = Math.max(end, s.end);
  }
  return rounds;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;

async function main(): Promise<void> {
  instrument();
  countParses();
  const name = `fc_rounds_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  await admin.connect();
  const work = mkdtempSync(join(tmpdir(), 'fc-bench-rounds-'));
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(PG_URL);
    url.pathname = `/${name}`;
    const dir = join(work, 'data');
    await initDataDir(dir, { backend: url.toString() });
    const instance = await startEmbedded(dir, { port: 0, executionPort: 0, breakers: BENCH_BREAKERS });
    try {
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      const client = createClient({
        url: instance.url,
        identity: file.identity,
        tenant: file.tenant,
        key: file.key,
      });
      for (let i = 0; i < 20; i += 1) await client.call('echo', { message: 'warm-up' });
      const statements: number[] = [];
      const rounds: number[] = [];
      const parses: number[] = [];
      let last: Sent[] = [];
      const cpuBefore = serverCpuSeconds();
      for (let i = 0; i < CALLS; i += 1) {
        const log: Sent[] = [];
        const parsed = { n: 0 };
        recording = log;
        parsing = parsed;
        const r = await client.call('echo', { message: `call ${i}` });
        // Statements the call started after its answer (none expected) are counted with it.
        await new Promise((resolve) => setTimeout(resolve, 20));
        recording = undefined;
        parsing = undefined;
        parses.push(parsed.n);
        if (r.outcome !== 'executed') throw new Error(`call ${i} was not executed: ${JSON.stringify(r)}`);
        statements.push(log.length);
        rounds.push(roundsOf(log));
        last = log;
      }
      const cpuAfter = serverCpuSeconds();
      console.log(`failclosed PostgreSQL round trips: ${CALLS} sequential governed calls (echo), one gate`);
      console.log(`statements per call (median)        ${median(statements)}`);
      console.log(`sequential rounds per call (median) ${median(rounds)}`);
      console.log(`statements parsed per call (median) ${median(parses)}`);
      console.log(
        cpuBefore === undefined || cpuAfter === undefined
          ? 'server CPU per call                 n/a (no postgres process readable on this machine)'
          : `server CPU per call                 ${(((cpuAfter - cpuBefore) / CALLS) * 1e6).toFixed(0)} µs (postgres processes, user + system)`,
      );
      console.log('the last call, in order (ms from its first statement: sent, answered):');
      const t0 = last[0]?.start ?? 0;
      for (const s of [...last].sort((a, b) => a.start - b.start))
        console.log(
          `  ${(s.start - t0).toFixed(2).padStart(7)} ${(s.end - t0).toFixed(2).padStart(7)}  ${s.text.slice(0, 60)}`,
        );
    } finally {
      await instance.close();
    }
  } finally {
    await admin
      .query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      .catch((err: unknown) => console.error(`database ${name} was not dropped: ${String(err)}`));
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
