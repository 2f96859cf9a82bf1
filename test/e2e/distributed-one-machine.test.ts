/**
 * The distributed shape on one machine, exactly as docs/deployment.md "Distributed on one
 * machine" tells a new user to bring it up (issue "the four roles as separate processes", Done
 * when; FC-INV-6, SPEC §1): a development CA from `failclosed certs init`, one `failclosed init`
 * on PostgreSQL copied into two gate data directories, two `failclosed up` gates and two
 * `failclosed serve executor` replicas (each gate calling its own executor over mutual TLS, the
 * executors sharing the gates' nonce schema), every process with its own metrics listener. A call
 * through each gate executes in a separate Execution Layer process; each process serves its own
 * metrics; one export of the one ledger verifies under the pinned trust roots, with both calls'
 * receipts written by the Execution Layer.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { runCli, startUp, type UpProcess } from './processes.js';
import { freePort, spawnExecutor, stopProcess, type ExecutorProcess } from './topology.js';

const pgdb = useTestDatabase('fc_e2e_one_machine');

describe('the distributed shape on one machine, as documented', () => {
  let work: string;
  const gates: UpProcess[] = [];
  const executors: ExecutorProcess[] = [];
  const metrics: string[] = [];
  const at = (...p: string[]): string => join(work, ...p);
  const ok = (r: { code: number | null; out: string; err: string }): string => {
    expect(r.code, r.err + r.out).toBe(0);
    return r.out;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-one-machine-'));
    const backend = `${pgdb.url}?schema=${nextSchema()}`;
    // 1. Certificates: a development CA and a certificate per role, served under 127.0.0.1.
    ok(runCli('certs', 'init', '--dir', at('certs'), '--host', '127.0.0.1'));
    // 2. One data directory on PostgreSQL, copied for each gate (same keys, same database).
    ok(runCli('init', at('seed'), '--backend', backend));
    // Relative paths, as the documentation writes them: from the data directory for a gate,
    // from the file's directory for an executor.
    const tls = {
      ca: '../certs/ca.pem',
      crl: '../certs/crl.pem',
      gate: { cert: '../certs/gate.pem', key: '../certs/gate.key' },
    };
    const ports = { exec: [0, 0], internal: [0, 0], metrics: [0, 0, 0, 0] };
    for (const k of ['exec', 'internal', 'metrics'] as const)
      for (let i = 0; i < ports[k].length; i++) ports[k][i] = await freePort();
    const u = new URL(backend);
    for (const [i, name] of ['gate-a', 'gate-b'].entries()) {
      cpSync(at('seed'), at(name), { recursive: true });
      const configPath = at(name, 'failclosed.json');
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      // 3. Each gate calls its own executor and serves an internal listener for it.
      writeFileSync(
        configPath,
        JSON.stringify({
          ...config,
          executor_url: `https://127.0.0.1:${ports.exec[i]}`,
          internal_port: ports.internal[i],
          tls,
          metrics: { listen: `127.0.0.1:${ports.metrics[i]}` },
        }),
      );
      // 4. Its executor: public keys and bundles from that gate, nonces in the gates' schema.
      writeFileSync(
        at(`executor-${i}.json`),
        JSON.stringify({
          audience: 'failclosed-executor',
          listen: { host: '127.0.0.1', port: ports.exec[i] },
          gate_url: `https://127.0.0.1:${ports.internal[i]}`,
          tls: {
            ca: 'certs/ca.pem',
            crl: 'certs/crl.pem',
            cert: 'certs/executor.pem',
            key: 'certs/executor.key',
          },
          nonces: `${u.protocol}//${u.username}@${u.host}${u.pathname}`,
          nonces_schema: u.searchParams.get('schema'),
          metrics: { listen: `127.0.0.1:${ports.metrics[i + 2]}` },
        }),
      );
    }
    // 5. Start them: the gates first (the executors fetch keys from them), then the executors.
    for (const name of ['gate-a', 'gate-b']) gates.push(await startUp(at(name), 30));
    for (const i of [0, 1])
      executors.push(await spawnExecutor(at(`executor-${i}.json`), { FAILCLOSED_LOG_LEVEL: 'silent' }));
    for (const p of ports.metrics) metrics.push(`http://127.0.0.1:${p}/metrics`);
  }, 120_000);

  afterAll(async () => {
    for (const p of executors) await stopProcess(p);
    for (const g of gates) await stopProcess(g);
    rmSync(work, { recursive: true, force: true });
  });

  it('runs a call through each gate in a separate executor, serves metrics per process, and one export verifies', async () => {
    // 6. A call through each gate.
    for (const name of ['gate-a', 'gate-b']) {
      const out = ok(
        runCli('call', 'echo', '--params', JSON.stringify({ message: `via ${name}` }), '--data', at(name)),
      );
      expect(out).toContain(`via ${name}`);
    }
    // 7. Metrics of every process: each gate answered one executed call, each executor ran one.
    const texts = await Promise.all(metrics.map(async (m) => (await fetch(m)).text()));
    for (const t of texts.slice(0, 2))
      expect(t).toMatch(/failclosed_calls_total\{[^}]*outcome="executed"[^}]*\} 1/);
    // Each executor ran one call: its stages were timed once each.
    for (const t of texts.slice(2)) expect(t).toMatch(/failclosed_stage_duration_seconds_count\{[^}]*\} 1/);
    // 8. One ledger: export it through either gate, pin the trust roots, verify.
    ok(runCli('ledger', 'export', '--out', at('ledger.jsonl'), '--data', at('gate-b')));
    ok(runCli('trust-roots', '--out', at('trust.json'), '--data', at('gate-a')));
    const verified = runCli('verify', at('ledger.jsonl'), '--trust', at('trust.json'));
    expect(verified.code, verified.out + verified.err).toBe(0);
    // Both calls ran in an Execution Layer process: receipts by the executor role, one per call.
    type Entry = {
      type: string;
      request_id: string;
      actor: { role: string };
      payload: Record<string, unknown>;
    };
    const entries = readFileSync(at('ledger.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { record: string; entry?: Entry })
      .filter((r) => r.record === 'entry')
      .map((r) => r.entry!);
    const echoes = entries.filter((e) => e.type === 'gateway.completed' && e.payload['tool'] === 'echo');
    expect(echoes).toHaveLength(2);
    for (const done of echoes) {
      const receipt = entries.find((e) => e.type === 'execution.receipt' && e.request_id === done.request_id);
      expect(receipt?.actor.role).toBe('executor');
      expect(receipt?.payload['status']).toBe('succeeded');
    }
  }, 120_000);
});
