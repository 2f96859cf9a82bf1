/**
 * Verify benchmark (issue: "≥ 50,000 entries/s end to end, RSS ≤ 300 MB whatever the size, a
 * 1M-entry bundle in ≤ 30 s" on a bundle from real governed calls). Produces (or reuses) the
 * bundle, verifies it RUNS times, each in its own process, and prints the medians of entries/s
 * and peak RSS, against the raw primitives measured in the same run: SHA-256 entry hashing,
 * the Merkle root, Ed25519 verification.
 * Run: `npm run bench:verify` (BENCH_ENTRIES=1000000 for the full size; BENCH_RUNS, default 3).
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { computeEntryHash, entryLeafHash, rootOf, type EntryBody } from '../../src/kernel/index.js';
import { realBundle, trustFileOf } from './generate.js';

const ENTRIES = Number(process.env['BENCH_ENTRIES'] ?? 100_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/verify → the repository's bench/.cache
const CACHE = process.env['BENCH_CACHE'] ?? join(here, '..', '..', '..', 'bench', '.cache');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function sampleEntries(file: string, n: number): Promise<EntryBody[]> {
  const out: EntryBody[] = [];
  const rl = createInterface({ input: createReadStream(file) });
  for await (const line of rl) {
    if (!line.startsWith('{"record":"entry"')) continue;
    const { entry_hash: _h, ...body } = (JSON.parse(line) as { entry: EntryBody & { entry_hash: string } })
      .entry;
    out.push(body);
    if (out.length >= n) break;
  }
  rl.close();
  return out;
}

function perSecond(n: number, f: () => void): number {
  const t0 = performance.now();
  f();
  return n / ((performance.now() - t0) / 1000);
}

async function primitives(file: string): Promise<{ hash: number; merkle: number; ed25519: number }> {
  const sample = await sampleEntries(file, 20_000);
  const hash = perSecond(sample.length, () => {
    for (const e of sample) computeEntryHash(e);
  });
  const leaves = Array.from({ length: 200_000 }, (_, i) => entryLeafHash((i % 16).toString(16).repeat(64)));
  const merkle = perSecond(leaves.length, () => rootOf(leaves));
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.alloc(400, 7);
  const sig = sign(null, msg, privateKey);
  const ed25519 = perSecond(5_000, () => {
    for (let i = 0; i < 5_000; i++) verify(null, msg, publicKey, sig);
  });
  return { hash, merkle, ed25519 };
}

const log = (s: string): void => void process.stdout.write(`${s}\n`);
log(`verify benchmark: ${fmt(ENTRIES)} entries from real governed calls, ${RUNS} runs`);
const file = await realBundle(CACHE, ENTRIES, log);
const runs: { exitCode: number; entries: number; ms: number; maxRssMb: number; failing: string[] }[] = [];
for (let i = 0; i < RUNS; i++) {
  const out = execFileSync(process.execPath, [join(here, 'child.js'), file, trustFileOf(file)], {
    encoding: 'utf8',
  });
  const r = JSON.parse(out) as (typeof runs)[number];
  runs.push(r);
  log(
    `  run ${i + 1}: exit ${r.exitCode}, ${fmt(r.entries)} entries in ${(r.ms / 1000).toFixed(2)} s, peak RSS ${r.maxRssMb.toFixed(0)} MB${r.failing.length > 0 ? `, failing: ${r.failing.join(' ')}` : ''}`,
  );
}
const p = await primitives(file);
const rate = median(runs.map((r) => (r.entries / r.ms) * 1000));
const rss = median(runs.map((r) => r.maxRssMb));
log('');
log(`verify (end to end, own process): ${fmt(rate)} entries/s median; peak RSS ${rss.toFixed(0)} MB median`);
log(
  `  target ≥ 50,000 entries/s: ${rate >= 50_000 ? 'met' : 'NOT met'}; RSS ≤ 300 MB: ${rss <= 300 ? 'met' : 'NOT met'}`,
);
log(`  1M entries at this rate: ${(1_000_000 / rate).toFixed(1)} s (target ≤ 30 s)`);
log('primitives (this process, one core):');
log(
  `  SHA-256 entry hash (RFC 8785 + SHA-256): ${fmt(p.hash)} entries/s   verify/hash = ${(rate / p.hash).toFixed(2)}`,
);
log(
  `  Merkle root (leaf + node hashes):        ${fmt(p.merkle)} leaves/s    verify/merkle = ${(rate / p.merkle).toFixed(2)}`,
);
log(
  `  Ed25519 verify:                          ${fmt(p.ed25519)} sigs/s      verify/ed25519 = ${(rate / p.ed25519).toFixed(2)}`,
);
