/**
 * `verifyBundleFile`: verifies a bundle file from disk (SPEC §5). A v2 bundle is streamed line
 * by line through the engine, in bounded memory whatever its size, with the request checks
 * (the Ed25519 signatures of requests, envelopes and approvals) in a worker thread so both cores
 * work; a v1 bundle is read whole (within `maxBytes`) as before. Never rejects on hostile input.
 */
import { createReadStream, existsSync, openSync, readSync, closeSync, readFileSync, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BUNDLE_MAX_BYTES, BUNDLE_V2_MAGIC, type Bundle } from './bundle.js';
import { createV2Reader, MAX_LINE_BYTES } from './bundle-v2.js';
import type { SharedFacts } from './context.js';
import type { CheckTally, RequestRunner } from './engine.js';
import type { TallyData, WorkerAnswer, WorkerRequest } from './request-worker.js';
import { unusable } from './select.js';
import type { VerifyOptions, VerifyReport } from './types.js';
import { verifyBundle } from './verify-bundle.js';

/** How {@link verifyBundleFile} runs. */
export interface VerifyFileOptions {
  /** Run the request checks in a worker thread (default: when the compiled worker is present). */
  readonly worker?: boolean;
}

/** Batches sent to the worker and not yet checked, before the reader waits for it. */
const MAX_IN_FLIGHT = 4;
const WORKER_URL = new URL('./request-worker.js', import.meta.url);
const READER_URL = new URL('./reader-worker.js', import.meta.url);
/**
 * Heap cap of each verification thread (reader, request checks), MB. The streamed live set is
 * far smaller; the cap keeps V8 from growing the heap with allocation churn (RSS bound).
 */
export const VERIFY_HEAP_MB = 128;
/** Young-generation cap of each verification thread, MB (short-lived records churn there). */
const VERIFY_YOUNG_MB = 16;

function headOf(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A request runner over one worker thread; a worker failure fails the request checks (fail closed). */
function workerRunner(
  header: Bundle,
  opts: VerifyOptions,
  proofs: boolean,
): {
  factory: (ts: readonly CheckTally[], shared: SharedFacts) => RequestRunner;
  backpressure: () => Promise<void>;
} {
  let worker: Worker | undefined;
  let inFlight = 0;
  let failed = false;
  let waiters: (() => void)[] = [];
  let tallies: readonly TallyData[] | undefined;
  let mine: readonly CheckTally[] = [];
  let sentPolicies = -1;
  const wake = (): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const post = (m: WorkerRequest): void => {
    if (failed || worker === undefined) return;
    inFlight++;
    worker.postMessage(m);
  };
  const factory = (ts: readonly CheckTally[]): RequestRunner => {
    mine = ts;
    worker = new Worker(WORKER_URL, {
      resourceLimits: { maxOldGenerationSizeMb: VERIFY_HEAP_MB, maxYoungGenerationSizeMb: VERIFY_YOUNG_MB },
    });
    // An unusable bundle ends the reading early: the worker must not keep the process alive.
    worker.unref();
    worker.on('message', (a: WorkerAnswer) => {
      inFlight--;
      if (a.kind === 'tallies') tallies = a.tallies;
      wake();
    });
    worker.on('error', () => {
      failed = true;
      inFlight = 0;
      wake();
    });
    post({ kind: 'init', header, options: opts, checks: ts.map((t) => t.check.id), proofs });
    return {
      run(bundle, _views, positions, owned) {
        const policies = Object.keys(bundle.policyBundles).length;
        post({
          kind: 'batch',
          entries: bundle.entries,
          positions,
          owned,
          evidence: bundle.evidence,
          ...(policies !== sentPolicies ? { policyBundles: bundle.policyBundles } : {}),
          entriesSeen: 0,
        });
        sentPolicies = policies;
      },
      async drain() {
        post({ kind: 'done' });
        while (!failed && tallies === undefined) await new Promise<void>((r) => waiters.push(r));
        await worker?.terminate();
        for (const t of mine) {
          const d = tallies?.find((x) => x.id === t.check.id);
          if (d === undefined) {
            t.calls++;
            t.findings.push({ code: 'CHECK_ERROR', message: `check ${t.check.id} could not complete` });
            continue;
          }
          t.calls += d.calls;
          t.skipped += d.skipped;
          t.findings.push(...d.findings);
          t.undecided.push(...d.undecided);
          t.moreFindings += d.moreFindings;
          t.moreUndecided += d.moreUndecided;
          for (const s of d.seen) t.seen.add(s);
        }
      },
    };
  };
  const backpressure = async (): Promise<void> => {
    while (!failed && inFlight > MAX_IN_FLIGHT) await new Promise<void>((r) => waiters.push(r));
  };
  return { factory, backpressure };
}

/**
 * Verifies the bundle file at `path` (v1 or v2). Exit code 0 when every check holds, 1 on a
 * violation, 2 when the file is unusable (unreadable, malformed structure, truncated v2).
 */
export async function verifyBundleFile(
  path: string,
  opts: VerifyOptions = {},
  run: VerifyFileOptions = {},
): Promise<VerifyReport> {
  let head: string;
  try {
    head = headOf(path);
  } catch {
    return unusable('cannot read the bundle file', opts);
  }
  if (!head.startsWith(BUNDLE_V2_MAGIC)) {
    try {
      // v1: one JSON document, read whole within the size limit.
      if (statSync(path).size > Math.min(opts.maxBytes ?? BUNDLE_MAX_BYTES, BUNDLE_MAX_BYTES))
        return unusable('bundle unusable: larger than the size limit', opts);
      return verifyBundle(readFileSync(path), opts);
    } catch {
      return unusable('cannot read the bundle file', opts);
    }
  }
  const useWorker = run.worker ?? existsSync(fileURLToPath(WORKER_URL));
  if (!useWorker) return verifyV2File(path, opts, false);
  return inReaderWorker(path, opts);
}

/** Runs the v2 reading in a heap-capped worker; a worker that dies is an unusable verification, never a pass. */
function inReaderWorker(path: string, opts: VerifyOptions): Promise<VerifyReport> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: VerifyReport): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    const w = new Worker(READER_URL, {
      workerData: { path, options: opts },
      resourceLimits: { maxOldGenerationSizeMb: VERIFY_HEAP_MB, maxYoungGenerationSizeMb: VERIFY_YOUNG_MB },
    });
    w.once('message', (r: VerifyReport) => {
      done(r);
      void w.terminate();
    });
    w.once('error', () => done(unusable('verification could not complete (out of memory or a fault)', opts)));
    w.once('exit', () => done(unusable('verification could not complete', opts)));
  });
}

/** Streams a v2 file through the reader; `worker` moves the request checks to a worker thread. */
export async function verifyV2File(
  path: string,
  opts: VerifyOptions,
  worker: boolean,
): Promise<VerifyReport> {
  const useWorker = worker;
  let pressure: (() => Promise<void>) | undefined;
  let runnerFor: ((h: Bundle, proofs: boolean) => ReturnType<typeof workerRunner>['factory']) | undefined;
  if (useWorker)
    runnerFor = (h, proofs) => {
      const w = workerRunner(h, opts, proofs);
      pressure = w.backpressure;
      return w.factory;
    };
  const reader = createV2Reader(opts, runnerFor === undefined ? {} : { requestRunnerFor: runnerFor });
  if (!('line' in reader)) return reader;
  const decoder = new StringDecoder('utf8');
  let carry = '';
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      const text = carry + decoder.write(chunk as Buffer);
      const lines = text.split('\n');
      carry = lines.pop() ?? '';
      if (carry.length > MAX_LINE_BYTES)
        return unusable('bundle unusable: a line is longer than 16 MiB', opts);
      for (const l of lines) if (reader.line(l) !== undefined) return await reader.finish();
      if (pressure !== undefined) await pressure();
    }
  } catch {
    return unusable('cannot read the bundle file', opts);
  }
  reader.line(carry + decoder.end());
  return reader.finish();
}
