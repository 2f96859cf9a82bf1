/**
 * The load generator the end-to-end benchmarks share (`bench/e2e`, `bench/mcp`): concurrent
 * client loops bounded in time after an unmeasured warm-up, run in a child process of the
 * benchmark (so that the server keeps its own core), each phase repeated and its median printed,
 * the machine being shared and noisy; and the breaker limits of a gate under that load.
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** Set in the load generator's own process: the benchmark file then serves jobs instead of running. */
export const CHILD_ROLE = 'FC_BENCH_CHILD';

const HIGH = 1_000_000_000;
/**
 * Breaker limits for a gate under bench load: one tenant hammering one tool, which the default
 * breakers would (rightly) stop.
 */
export const BENCH_BREAKERS = Object.freeze({
  maxCallsPerSessionWindow: HIGH,
  maxCallsPerTenantWindow: HIGH,
  maxCallsPerSession: HIGH,
  loopThreshold: HIGH,
});

/** How long and how wide a load phase is. */
export interface LoadShape {
  readonly clients: number;
  readonly ms: number;
  readonly warmupMs: number;
  /**
   * Calls to measure at the least: the clients keep calling past `ms` until this many calls
   * ended inside the measured window (slow calls in a short phase). Default 0.
   */
  readonly minCalls?: number;
  /**
   * Which calls are measured: `inside` (default), those that started after the warm-up and ended
   * within the phase; `ended`, those that ended within the phase, wherever they started. With
   * calls long against the phase, `inside` drops those crossing either edge and understates the
   * rate; `ended` counts completions per second, each latency measured whole, after a warm-up
   * that lasts at least `warmupMs` and until every client's first call ended.
   */
  readonly measured?: 'inside' | 'ended';
}

/** What one load phase measured. */
export interface LoadResult {
  readonly count: number;
  /** Every call made, warm-up included (the server's CPU time is divided by it). */
  readonly total: number;
  readonly failures: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly codes: Record<string, number>;
  /**
   * CPU time (user + system, µs) of the process that ran the load, over every call made: the
   * load generator's own cost, which shares the machine's cores with the server.
   */
  readonly loadCpuUs: number;
}

/**
 * `shape.clients` concurrent loops calling `once(worker, n)` for `shape.ms`, after a warm-up
 * that is not measured. `once` answers `'ok'` or the code of what went wrong.
 */
export async function runLoad(
  shape: LoadShape,
  once: (worker: number, n: number) => Promise<string>,
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const codes: Record<string, number> = {};
  const minCalls = shape.minCalls ?? 0;
  let count = 0;
  let total = 0;
  let failures = 0;
  const start = performance.now();
  const ended = shape.measured === 'ended';
  // Measured as `ended`, the warm-up lasts until every client's first call (its cold start) ended.
  let warmEnd = ended ? Infinity : start + shape.warmupMs;
  let end = warmEnd + shape.ms;
  let firstCalls = 0;
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: shape.clients }, async (_, w) => {
      for (let n = 0; performance.now() < end || count < minCalls; n++) {
        const t0 = performance.now();
        const code = await once(w, n);
        const t1 = performance.now();
        total += 1;
        if (ended && n === 0 && ++firstCalls === shape.clients) {
          warmEnd = Math.max(start + shape.warmupMs, t1);
          end = warmEnd + shape.ms;
        }
        if (ended ? !(t1 > warmEnd) : t0 < warmEnd) continue;
        if (t1 > end) {
          if (count >= minCalls) continue;
          // Still short of `minCalls`: the window grows to take this call in.
          end = t1;
        }
        count += 1;
        latenciesMs.push(t1 - t0);
        if (code !== 'ok') {
          failures += 1;
          codes[code] = (codes[code] ?? 0) + 1;
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return {
    count,
    total,
    failures,
    seconds: (end - warmEnd) / 1000,
    latenciesMs,
    codes,
    loadCpuUs: cpu.user + cpu.system,
  };
}

/**
 * Runs `job` in a child process of `file` (the benchmark's own module, started with
 * {@link CHILD_ROLE} set) and resolves with the first message it sends back.
 */
export function inChild<T>(file: string, job: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(file, [], {
      env: { ...process.env, [CHILD_ROLE]: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let answered = false;
    child.once('message', (r) => {
      answered = true;
      resolve(r as T);
      child.disconnect();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!answered) reject(new Error(`bench child exited with ${code ?? 'a signal'} before answering`));
    });
    child.send(job as object);
  });
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

/** The median of `xs` (the upper one of an even count). */
export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

/** A phase's figures (each the median over its runs). */
export interface Summary {
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  /**
   * CPU time (user + system) of this process per call: what the server in it spends on a call,
   * whatever else the shared machine runs meanwhile (not its child processes').
   */
  readonly cpuUs: number;
  /** CPU time of the load generator's process per call (its signing, HTTP client and parsing). */
  readonly loadCpuUs: number;
  /** Calls that did not answer `'ok'`, summed over the runs, by code. */
  readonly failures: number;
  readonly codes: Record<string, number>;
  /** Calls measured, summed over the runs. */
  readonly calls: number;
}

type RunSummary = Omit<Summary, 'calls' | 'codes'> & {
  readonly count: number;
  readonly codes: Record<string, number>;
  readonly note: string;
};

function summaryOf(r: LoadResult, cpuUs: number): RunSummary {
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  const fails = r.failures === 0 ? '' : `, ${r.failures} not ok ${JSON.stringify(r.codes)}`;
  return {
    rate: r.count / r.seconds,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    cpuUs: cpuUs / Math.max(1, r.total),
    loadCpuUs: r.loadCpuUs / Math.max(1, r.total),
    failures: r.failures,
    count: r.count,
    codes: r.codes,
    note: `${r.count} calls${fails}`,
  };
}

/** How {@link measure} prints. */
export interface MeasureOptions {
  /** Width of the name column. Default 34. */
  readonly nameWidth?: number;
  /** Label of this process's CPU time per call; `false`: not printed. Default `server CPU`. */
  readonly cpuLabel?: string | false;
  /** Decimals of the rates. Default 0. */
  readonly rateDigits?: number;
}

/** Runs a load phase `runs` times and prints one line: the medians (and every run's rate). */
export async function measure(
  name: string,
  runs: number,
  run: () => Promise<LoadResult>,
  options: MeasureOptions = {},
): Promise<Summary> {
  const done: RunSummary[] = [];
  for (let i = 0; i < runs; i++) {
    const before = process.cpuUsage();
    const r = await run();
    const used = process.cpuUsage(before);
    done.push(summaryOf(r, used.user + used.system));
  }
  const codes: Record<string, number> = {};
  for (const r of done) for (const [c, n] of Object.entries(r.codes)) codes[c] = (codes[c] ?? 0) + n;
  const m: Summary = {
    rate: median(done.map((r) => r.rate)),
    p50: median(done.map((r) => r.p50)),
    p99: median(done.map((r) => r.p99)),
    cpuUs: median(done.map((r) => r.cpuUs)),
    loadCpuUs: median(done.map((r) => r.loadCpuUs)),
    failures: done.reduce((a, r) => a + r.failures, 0),
    codes,
    calls: done.reduce((a, r) => a + r.count, 0),
  };
  const label = options.cpuLabel ?? 'server CPU';
  const cpu =
    label === false
      ? ''
      : `   ${label} ${m.cpuUs.toFixed(0)} µs/call, load generator ${m.loadCpuUs.toFixed(0)} µs/call`;
  const digits = options.rateDigits ?? 0;
  console.log(
    `${name.padEnd(options.nameWidth ?? 34)} ${m.rate.toFixed(digits).padStart(7)} /s   p50 ${m.p50.toFixed(2)} ms   p99 ${m.p99.toFixed(2)} ms${cpu}   (median of ${runs}: ${done.map((r) => r.rate.toFixed(digits)).join(', ')} /s; last ${done[done.length - 1]?.note ?? ''})`,
  );
  return m;
}
