/**
 * One verification in its own process (the benchmark's unit): verifies FILE under the pinned
 * trust roots TRUST_FILE and prints one JSON
 * line with the exit code, entries, wall time and the process's peak RSS (worker thread
 * included).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { verifyBundleFile } from '../../src/verify/index.js';

const file = process.argv[2] ?? '';
const trust = readFileSync(process.argv[3] ?? '');
const t0 = performance.now();
const r = await verifyBundleFile(
  file,
  { trust },
  process.env['BENCH_NO_WORKER'] === '1' ? { worker: false } : {},
);
const ms = performance.now() - t0;
process.stdout.write(
  `${JSON.stringify({
    exitCode: r.exitCode,
    entries: r.coverage?.entries ?? 0,
    ms,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    failing: r.checks.filter((c) => c.status === 'fail').map((c) => c.id),
  })}\n`,
);
