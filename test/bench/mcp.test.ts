/**
 * The MCP gateway benchmark (`npm run bench:mcp`, bench/mcp/index.ts; SPEC §8) run once with
 * the fewest calls: the built benchmark (the test command builds first) prints every phase, the
 * ratios of governed to direct calls, and only governed calls that executed (a receipt and the
 * upstream's text relayed): a denied or failed call is printed with its code and fails the run.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';

const BENCH = join(REPO_ROOT, 'dist', 'bench', 'mcp', 'index.js');

describe('bench:mcp', () => {
  it('prints direct and governed calls of one upstream and their ratios, every governed call executed', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        BENCH_RUNS: '1',
        BENCH_PHASE_MS: '200',
        BENCH_WARMUP_MS: '0',
        BENCH_MIN_CALLS: '1',
        BENCH_CLIENTS: '2',
      },
      timeout: 110_000,
    });
    for (const phase of [
      'direct, one long-lived stdio session, 1 client',
      'direct, a fresh upstream per call, 1 client',
      'the same in the sandbox (MCP adapter alone)',
      'governed (HTTP gateway, SQLite), 1 client',
      'governed, 2 clients',
    ])
      expect(stdout).toMatch(
        new RegExp(`^\\s*${phase.replace(/[().]/g, '\\$&')}\\s+\\d+(\\.\\d)? /s\\s+p50 `, 'm'),
      );
    for (const ratio of [
      'governed / direct per call, throughput',
      'governed / direct per call, p50 latency',
      'governed / direct long-lived, throughput',
      'governed / direct long-lived, p50 latency',
    ])
      expect(stdout).toMatch(new RegExp(`^  ${ratio}\\s+\\d+(\\.\\d+)?×?$`, 'm'));
    const governed =
      /governed calls measured: (\d+) \((\d+) not ok\); tool runs by the Execution Layer during the governed phases, warm-up included: (\d+)/.exec(
        stdout,
      );
    expect(governed).not.toBeNull();
    const [, measured, notOk, runs] = (governed ?? []).map(Number);
    expect(notOk).toBe(0);
    expect(measured).toBeGreaterThanOrEqual(2);
    // Every measured governed call ran the upstream through the Execution Layer.
    expect(runs).toBeGreaterThanOrEqual(measured ?? Infinity);
    expect(stdout).toContain('every call succeeded');
    expect(stdout).not.toContain('NOT OK');
  }, 120_000);
});
