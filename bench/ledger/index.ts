/**
 * Ledger benchmark (SPEC §8 "durable writes"): durable appends/s through the group-commit writer
 * with 1, 8 and 64 concurrent writers, against a raw better-sqlite3 single-row
 * `synchronous=FULL` commit loop measured in the same run; then offline verification speed
 * (entries/s, entry hashes + chain + Merkle root) over a 100k-entry bundle.
 * Targets: ≥ 10× the single-row rate at 64 writers; verify ≥ 100,000 entries/s.
 * Run: `npm run bench:ledger`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { noteSignerFor, signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import {
  createLedger,
  createSqliteLedgerStore,
  exportBundle,
  type EntryInput,
  type Ledger,
} from '../../src/ledger/index.js';
import { verifyBundle } from '../../src/verify/index.js';

const ORIGIN = 'failclosed.local/bench';
const signer = noteSignerFor(ORIGIN, signingKeyFromSeed(Buffer.alloc(32, 1)).privateKey);
const VERIFY_ENTRIES = Number(process.env['BENCH_VERIFY_ENTRIES'] ?? 100_000);

function input(i: number): EntryInput {
  return {
    type: 'decision',
    trace_id: `t-${i}`,
    request_id: `r-${i}`,
    tenant: 'acme',
    actor: { id: 'control-plane', role: 'control-plane' },
    payload: {
      decision_id: `d-${i}`,
      outcome: 'allow',
      policy_bundle: 'ab'.repeat(32),
      rules_fired: ['p1'],
      risk: 'low',
    },
  };
}

function rawSingleRowRate(dir: string, ms: number): number {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (idx INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const ins = db.prepare('INSERT INTO t (idx, body) VALUES (?, ?)');
  const body = JSON.stringify(input(0));
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) ins.run(n++, body);
  const rate = n / ((performance.now() - start) / 1000);
  db.close();
  return rate;
}

async function openBenchLedger(path: string): Promise<Ledger> {
  let t = Date.UTC(2025, 0, 1);
  return createLedger({
    store: createSqliteLedgerStore({ path }),
    clock: () => t++,
    checkpointSigner: signer,
    origin: ORIGIN,
  });
}

async function groupCommitRate(dir: string, writers: number, total: number): Promise<number> {
  const ledger = await openBenchLedger(join(dir, `gc-${writers}.db`));
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < total) await ledger.append(input(next++));
    }),
  );
  const rate = total / ((performance.now() - start) / 1000);
  await ledger.close();
  return rate;
}

async function verifyRate(
  dir: string,
): Promise<{ parseAndVerify: number; verifyOnly: number; chainOnly: number; ok: boolean }> {
  const ledger = await openBenchLedger(join(dir, 'verify.db'));
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < VERIFY_ENTRIES) await ledger.append(input(next++));
    }),
  );
  const { text } = await exportBundle({ ledger, actor: { id: 'bench', role: 'auditor' } });
  // The bench holds the ledger it made: it pins that ledger key, as an auditor would.
  const pin = { trustedKeys: [ledger.ledgerKey.vkey] };
  await ledger.close();
  const n = VERIFY_ENTRIES + 1;
  let start = performance.now();
  const report = verifyBundle(text, pin);
  const parseAndVerify = n / ((performance.now() - start) / 1000);
  const parsed: unknown = JSON.parse(text);
  start = performance.now();
  const again = verifyBundle(parsed, pin);
  const verifyOnly = n / ((performance.now() - start) / 1000);
  // The target's scope: entry hashes, chain and Merkle root (the GEI-audit-chain family).
  start = performance.now();
  const chain = verifyBundle(parsed, { ...pin, invariant: 'GEI-audit-chain' });
  const chainOnly = n / ((performance.now() - start) / 1000);
  return { parseAndVerify, verifyOnly, chainOnly, ok: report.ok && again.ok && chain.ok };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(10);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'failclosed-bench-ledger-'));
  try {
    const raw = rawSingleRowRate(dir, 1500);
    console.log(`raw better-sqlite3 single-row commits (synchronous=FULL): ${fmt(raw)} rows/s  (baseline)`);
    for (const [writers, total] of [
      [1, 1500],
      [8, 8000],
      [64, 40000],
    ] as const) {
      const rate = await groupCommitRate(dir, writers, total);
      const target = writers === 64 ? `  target ≥ 10×: ${rate / raw >= 10 ? 'MET' : 'MISSED'}` : '';
      console.log(
        `group-commit ledger, ${String(writers).padStart(2)} writers:                  ${fmt(rate)} entries/s  ${(rate / raw).toFixed(1)}× baseline${target}`,
      );
    }
    const v = await verifyRate(dir);
    console.log(
      `verify ${VERIFY_ENTRIES.toLocaleString('en-US')} entries (strict parse + checks):      ${fmt(v.parseAndVerify)} entries/s`,
    );
    console.log(
      `verify ${VERIFY_ENTRIES.toLocaleString('en-US')} entries (all checks, parsed bundle): ${fmt(v.verifyOnly)} entries/s`,
    );
    console.log(
      `verify ${VERIFY_ENTRIES.toLocaleString('en-US')} entries (chain + Merkle, parsed):    ${fmt(v.chainOnly)} entries/s  target ≥ 100,000: ${v.chainOnly >= 100_000 ? 'MET' : 'MISSED'}${v.ok ? '' : '  (REPORT NOT OK)'}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
