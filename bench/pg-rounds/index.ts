/**
 * PostgreSQL round trips of one governed call (issue: "the governed call near its floor"): the
 * gate on the PostgreSQL backend (a database made for the run on `BENCH_PG_URL`, default
 * `postgres://postgres@127.0.0.1:5432/postgres`, dropped after it) serves `BENCH_CALLS` (60)
 * sequential `echo` calls after a warm-up, while every statement sent through the `pg` driver is
 * timed. It prints, as medians per call, the statements sent and the sequential rounds among them
 * (a statement sent while another is in flight joins that round), then the statements of the last
 * call in order. Counts, not speed: they do not depend on the machine's load, so a change that
 * removes a round shows here when the noise hides it from `bench:e2e`. Run:
 * `npm run bench:pg-rounds`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
      let last: Sent[] = [];
      for (let i = 0; i < CALLS; i += 1) {
        const log: Sent[] = [];
        recording = log;
        const r = await client.call('echo', { message: `call ${i}` });
        // Statements the call started after its answer (none expected) are counted with it.
        await new Promise((resolve) => setTimeout(resolve, 20));
        recording = undefined;
        if (r.outcome !== 'executed') throw new Error(`call ${i} was not executed: ${JSON.stringify(r)}`);
        statements.push(log.length);
        rounds.push(roundsOf(log));
        last = log;
      }
      console.log(`failclosed PostgreSQL round trips: ${CALLS} sequential governed calls (echo), one gate`);
      console.log(`statements per call (median)        ${median(statements)}`);
      console.log(`sequential rounds per call (median) ${median(rounds)}`);
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
