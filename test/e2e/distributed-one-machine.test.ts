/**
 * The separated shape on one machine, exactly as docs/deployment.md "Distributed on one machine"
 * tells a new user to bring it up (issue "the four roles as separate processes", Done when;
 * FC-INV-6, SPEC §1): a development CA from `failclosed certs init` with a client-only certificate
 * per Gate, the Control Plane process and its standby (`failclosed serve control-plane`, one
 * data directory on PostgreSQL copied), the Gates' and the Execution Layers' database roles made by
 * the shipped role scripts with `password_env`, the ledger process and its standby (`failclosed
 * serve ledger`, the only holders of the checkpoint key, moved out of the Control Plane's data
 * directory by `failclosed ledger move-key`), two `failclosed serve executor` and two keyless
 * `failclosed serve gate` replicas, every process with its own metrics listener.
 *
 * A call through each Gate executes in its own Execution Layer process; every process serves its
 * metrics; an MCP client over `failclosed mcp --gate` lists and calls a tool through a Gate; with the Control Plane process killed, a call through a Gate is decided by the standby
 * and runs; with the ledger process killed, its standby signs the checkpoint of the export; one
 * export of the one ledger verifies under the pinned trust roots, with every call's decision
 * written by the Control Plane and its receipt by the Execution Layer. The ledger process admits
 * the Control Plane's certificate only (a Gate's is refused). With `OTEL_EXPORTER_OTLP_ENDPOINT`
 * set for every process, a call is one trace (its id the ledger's `trace_id`) with spans from all
 * four roles: the Gate's root span, the Control Plane's decision, the Execution Layer's stages
 * and the ledger processes' verification of its entries. Then the SPEC §7
 * walkthrough runs through a keyless Gate (`failclosed demo --gate`, docs/demo.md "Through a
 * deployed topology"; FC-INV-6: the Execution Layer refuses a client without a certificate at TLS).
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { applyRoleSql, nextSchema, PG_ADMIN_URL, useTestDatabase } from '../support/postgres.js';
import { REPO_ROOT } from '../support/paths.js';
import { runDemoThrough } from '../../src/cli/demo.js';
import { misreportingStep } from '../support/demo-steps.js';
import { rootSpanIdOf } from '../../src/embedded/telemetry/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { runCli, startUp, until, type UpProcess } from './processes.js';
import { freePort, spawnExecutor, spawnServe, stopProcess, type ExecutorProcess } from './topology.js';

const pgdb = useTestDatabase('fc_e2e_one_machine');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

describe('the separated shape on one machine, as documented', () => {
  let work: string;
  let backend: string;
  let cp: UpProcess;
  let standby: UpProcess;
  let receiver: OtlpReceiver;
  /** Every process exports its spans here, within 100 ms of their end. */
  const otel = (): Record<string, string> => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  const executors: ExecutorProcess[] = [];
  const gates: ExecutorProcess[] = [];
  const ledgers: ExecutorProcess[] = [];
  const metrics: Record<string, string> = {};
  const roles: string[] = [];
  const at = (...p: string[]): string => join(work, ...p);
  const ok = (r: { code: number | null; out: string; err: string }): string => {
    expect(r.code, r.err + r.out).toBe(0);
    return r.out;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-one-machine-'));
    receiver = await startOtlpReceiver();
    const schema = nextSchema();
    backend = `${pgdb.url}?schema=${schema}`;
    // 1. A development CA, a certificate per role served under 127.0.0.1, one per Gate naming no host.
    ok(
      runCli(
        'certs',
        'init',
        '--dir',
        at('certs'),
        '--host',
        '127.0.0.1',
        '--keyless-gate',
        'gate-1',
        '--keyless-gate',
        'gate-2',
      ),
    );
    // 2. The Control Plane's data directory on PostgreSQL; its checkpoint key moved out, for the
    // ledger process; then copied for its standby.
    ok(runCli('init', at('cp'), '--backend', backend));
    const moved = JSON.parse(
      ok(runCli('ledger', 'move-key', '--out', at('ledger', 'ledger.jwk'), '--data', at('cp'))),
    ) as { origin: string; vkey: string; first_entry_hash: string };
    cpSync(at('cp'), at('cp-standby'), { recursive: true });
    const internal = { cp: await freePort(), standby: await freePort() };
    const ledgerPorts = [await freePort(), await freePort()];
    const exec = [await freePort(), await freePort()];
    const listen = [await freePort(), await freePort()];
    // The MCP resource every Gate serves and the Control Plane names (the first Gate's address
    // stands for the load balancer's).
    const mcp = { resource: `http://127.0.0.1:${listen[0]}/mcp` };
    /** Each process's own metrics listener. */
    const metricsAt = async (name: string): Promise<{ listen: string }> => {
      const host = `127.0.0.1:${await freePort()}`;
      metrics[name] = `http://${host}/metrics`;
      return { listen: host };
    };
    // 3. The Control Plane process and its standby: the internal listener for the Gates and the
    // Execution Layers, the Gates admitted there, their own calls (operators) to executor-a.
    for (const [name, internalPort] of [
      ['cp', internal.cp],
      ['cp-standby', internal.standby],
    ] as const) {
      const configPath = at(name, 'failclosed.json');
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(
        configPath,
        JSON.stringify({
          ...config,
          executor_url: `https://127.0.0.1:${exec[0]}`,
          internal_port: internalPort,
          internal_gates: true,
          mcp,
          checkpoints: {
            url: `https://127.0.0.1:${ledgerPorts[0]}`,
            standby_urls: [`https://127.0.0.1:${ledgerPorts[1]}`],
            vkey: moved.vkey,
          },
          tls: {
            ca: '../certs/ca.pem',
            crl: '../certs/crl.pem',
            gate: { cert: '../certs/gate.pem', key: '../certs/gate.key' },
            control_plane: { cert: '../certs/control-plane.pem', key: '../certs/control-plane.key' },
          },
          metrics: await metricsAt(name),
        }),
      );
    }
    const u = new URL(backend);
    const database = `${u.protocol}//${u.username}@${u.host}${u.pathname}`;
    const roleName = (r: string): string => `${r}_${process.pid}`;
    const asRole = (r: string): string => {
      const v = new URL(database);
      v.username = roleName(r);
      return v.toString();
    };
    for (const [i, name] of ['executor-a', 'executor-b'].entries()) {
      // 4. Each Execution Layer: public keys and bundles from the Control Plane (or its standby),
      // envelope nonces in its schema as its own database role.
      writeFileSync(
        at(`${name}.json`),
        JSON.stringify({
          audience: 'failclosed-executor',
          listen: { host: '127.0.0.1', port: exec[i] },
          gate_url: `https://127.0.0.1:${internal.cp}`,
          gate_standby_urls: [`https://127.0.0.1:${internal.standby}`],
          tls: {
            ca: 'certs/ca.pem',
            crl: 'certs/crl.pem',
            cert: 'certs/executor.pem',
            key: 'certs/executor.key',
          },
          nonces: asRole('failclosed_executor'),
          nonces_schema: schema,
          metrics: await metricsAt(name),
        }),
      );
    }
    for (const [i, name] of ['gate-1', 'gate-2'].entries()) {
      // 5. Each keyless Gate: the client port, the Control Plane and its standby, its Execution
      // Layer, its own certificate, the shared state as the Gates' database role.
      writeFileSync(
        at(`${name}.json`),
        JSON.stringify({
          listen: { host: '127.0.0.1', port: listen[i] },
          control_plane_url: `https://127.0.0.1:${internal.cp}`,
          control_plane_standby_urls: [`https://127.0.0.1:${internal.standby}`],
          executor_url: `https://127.0.0.1:${exec[i]}`,
          tls: {
            ca: 'certs/ca.pem',
            crl: 'certs/crl.pem',
            cert: `certs/${name}.pem`,
            key: `certs/${name}.key`,
          },
          state: `${asRole('failclosed_gate')}?schema=${schema}`,
          mcp,
          metrics: await metricsAt(name),
        }),
      );
    }
    for (const [i, name] of ['ledger-a', 'ledger-b'].entries()) {
      // 5b. The ledger process and its standby: the checkpoint key, the shared ledger as the
      // ledger's database role (entries read-only), the ledger certificate, a binding file each.
      mkdirSync(at(`state-${name.slice(-1)}`), { mode: 0o700 });
      writeFileSync(
        at(`${name}.json`),
        JSON.stringify({
          listen: { host: '127.0.0.1', port: ledgerPorts[i] },
          origin: moved.origin,
          first_entry_hash: moved.first_entry_hash,
          key: 'ledger/ledger.jwk',
          binding: `state-${name.slice(-1)}/ledger-binding.json`,
          state: `${asRole('failclosed_ledger')}?schema=${schema}`,
          tls: {
            ca: 'certs/ca.pem',
            crl: 'certs/crl.pem',
            cert: 'certs/ledger.pem',
            key: 'certs/ledger.key',
          },
          metrics: await metricsAt(name),
        }),
      );
    }
    // 6. The Control Plane processes first (the first start migrates the schema).
    const controlPlane = ['serve', 'control-plane'];
    cp = await startUp(at('cp'), 30, [], otel(), controlPlane);
    standby = await startUp(at('cp-standby'), 30, [], otel(), controlPlane);
    // 7. The Gates' and the Execution Layers' database roles, made by the shipped scripts as the
    // schema's owner, each with a password of its own from the environment.
    for (const [role, script] of [
      ['failclosed_gate', 'gate-role.sql'],
      ['failclosed_executor', 'executor-role.sql'],
      ['failclosed_ledger', 'ledger-role.sql'],
    ] as const) {
      const r = applyRoleSql(join(REPO_ROOT, 'deploy/postgres', script), database, {
        schema,
        role: roleName(role),
        passwordEnv: 'FAILCLOSED_ROLE_DB_PASSWORD',
        password: `pw-${role}-${process.pid}`,
      });
      expect(r.status, r.stderr).toBe(0);
      roles.push(roleName(role));
    }
    // 8. The ledger processes, the Execution Layers, then the Gates.
    const started = async (into: ExecutorProcess[], starts: Promise<ExecutorProcess>[]): Promise<void> => {
      // Every process that started is stopped in afterAll, also when another one did not start.
      const all = await Promise.allSettled(starts);
      for (const r of all) if (r.status === 'fulfilled') into.push(r.value);
      for (const r of all) if (r.status === 'rejected') throw r.reason;
    };
    const env = (role: string) => ({
      ...otel(),
      FAILCLOSED_LOG_LEVEL: 'silent',
      PGPASSWORD: `pw-${role}-${process.pid}`,
    });
    await started(
      ledgers,
      ['ledger-a', 'ledger-b'].map((n) => spawnServe('ledger', at(`${n}.json`), env('failclosed_ledger'))),
    );
    await started(
      executors,
      ['executor-a', 'executor-b'].map((n) => spawnExecutor(at(`${n}.json`), env('failclosed_executor'))),
    );
    await started(
      gates,
      ['gate-1', 'gate-2'].map((n) => spawnServe('gate', at(`${n}.json`), env('failclosed_gate'))),
    );
  }, 180_000);

  afterAll(async () => {
    for (const p of [...gates, ...executors, ...ledgers]) await stopProcess(p);
    await stopProcess(standby);
    await stopProcess(cp);
    await receiver?.close();
    // The roles are the cluster's: dropped once the database holding their grants is gone.
    await pgdb.db.drop();
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      for (const name of roles) await admin.query(`DROP ROLE IF EXISTS ${name}`);
    } finally {
      await admin.end();
    }
    rmSync(work, { recursive: true, force: true });
  });

  const call = (gate: ExecutorProcess, message: string): string =>
    ok(
      runCli('call', 'echo', '--params', JSON.stringify({ message }), '--gate', gate.url, '--data', at('cp')),
    );

  it('runs a call through each Gate in its own Execution Layer, serves metrics per process, runs on with the standby, and one export verifies', async () => {
    // 9. A call through each Gate, signed with the Control Plane's demo client.
    const first = call(gates[0]!, 'via gate-1');
    expect(first).toContain('via gate-1');
    expect(call(gates[1]!, 'via gate-2')).toContain('via gate-2');
    // The Control Plane process takes no call (`serve control-plane`): a signed call sent to its
    // client port, or to where an MCP endpoint would be, is not found; nothing is accepted or run.
    expect(cp.out()).toContain('failclosed control plane listening on');
    const atCp = runCli(
      'call',
      'echo',
      '--params',
      JSON.stringify({ message: 'to the control plane' }),
      '--gate',
      cp.url,
      '--data',
      at('cp'),
    );
    expect(atCp.code, atCp.out).not.toBe(0);
    expect(atCp.out + atCp.err).toMatch(/404/);
    expect(atCp.err).toContain(
      'takes no calls (a Control Plane process?): send the call to a Gate with --gate URL',
    );
    const mcpAtCp = await fetch(`${cp.url}/mcp`, { method: 'POST', body: '{}' });
    expect(mcpAtCp.status).toBe(404);
    // One trace per call, its id the ledger's trace_id, with spans from all four roles: the
    // Gate's root span (GenAI conventions), the Control Plane's decision, the Execution Layer's
    // stages, and the ledger processes' verification of its entries (they follow every second).
    const traceId = /"trace_id":\s*"([0-9a-f]{32})"/.exec(first)?.[1];
    expect(traceId, first).toBeDefined();
    const spans = () => receiver.spans.filter((x) => x.traceId === traceId);
    const FOUR = ['gate', 'control-plane', 'executor', 'ledger'];
    // Each process exports its spans in batches as they end: wait for every one named below,
    // not for the first of each role (the executor's envelope check ends before its tool).
    const WANTED = [
      'execute_tool echo',
      'failclosed.policy',
      'failclosed.ledger_decision',
      'failclosed.envelope_verify',
      'failclosed.tool',
      'failclosed.ledger_verify',
    ];
    await until(
      () =>
        FOUR.every((r) => spans().some((x) => x.role === r)) &&
        WANTED.every((n) => spans().some((x) => x.name === n)),
      'spans of the four roles',
      20_000,
    );
    const named = (role: string): string[] =>
      spans()
        .filter((x) => x.role === role)
        .map((x) => x.name);
    expect(named('gate')).toContain('execute_tool echo');
    expect(named('control-plane')).toEqual(
      expect.arrayContaining(['failclosed.policy', 'failclosed.ledger_decision']),
    );
    expect(named('executor')).toEqual(
      expect.arrayContaining(['failclosed.envelope_verify', 'failclosed.tool']),
    );
    expect(named('ledger')).toContain('failclosed.ledger_verify');
    for (const x of spans().filter((y) => y.name !== 'execute_tool echo'))
      expect(x.parentSpanId).toBe(rootSpanIdOf(traceId!));
    // 10. Metrics of every process: each Gate answered one executed call, each Execution Layer
    // ran one (its stages timed once each), each Control Plane process serves its own.
    const text = async (name: string): Promise<string> => (await fetch(metrics[name]!)).text();
    for (const g of ['gate-1', 'gate-2'])
      expect(await text(g)).toMatch(/failclosed_calls_total\{[^}]*outcome="executed"[^}]*\} 1/);
    for (const e of ['executor-a', 'executor-b'])
      expect(await text(e)).toMatch(/failclosed_stage_duration_seconds_count\{[^}]*\} 1/);
    for (const c of ['cp', 'cp-standby', 'ledger-a', 'ledger-b'])
      expect(await text(c)).toMatch(/^failclosed_/m);
    // 10b. (After the metrics, which count one call per Gate.) MCP through the second Gate, over `failclosed mcp --gate` with the demo client's key:
    // listed and decided by the Control Plane process, run in that Gate's Execution Layer.
    const agent = new Client({ name: 'fc-one-machine', version: '1.0.0' });
    await agent.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, 'mcp', '--gate', gates[1]!.url, '--data', at('cp')],
        stderr: 'pipe',
      }),
    );
    try {
      expect((await agent.listTools()).tools.map((t) => t.name)).toContain('echo');
      const viaMcp = await agent.callTool({ name: 'echo', arguments: { message: 'mcp via gate-2' } });
      expect(viaMcp.isError, JSON.stringify(viaMcp)).toBeFalsy();
      expect(JSON.stringify(viaMcp.content)).toContain('mcp via gate-2');
    } finally {
      await agent.close();
    }
    // The checkpoint key is in the ledger processes only.
    expect(existsSync(at('cp', 'keys', 'ledger.jwk'))).toBe(false);
    expect(existsSync(at('cp-standby', 'keys', 'ledger.jwk'))).toBe(false);
    // The ledger process admits the Control Plane's certificate only: a Gate's is refused.
    const asGate = await new Promise<string>((done) => {
      const req = request(`${ledgers[0]!.url}/v1/ledger/checkpoint`, {
        method: 'POST',
        ca: readFileSync(at('certs', 'ca.pem')),
        cert: readFileSync(at('certs', 'gate-1.pem')),
        key: readFileSync(at('certs', 'gate-1.key')),
        headers: { 'content-type': 'application/json' },
      });
      req.once('response', (res) => {
        res.resume();
        done(`HTTP ${res.statusCode ?? 0}`);
      });
      req.once('error', (err: NodeJS.ErrnoException) => done(`refused: ${err.code ?? err.message}`));
      req.end('{"size":1}');
    });
    expect(asGate).toMatch(/^refused/);
    // Counted by the ledger process, which has verified every entry so far.
    const ledgerMetrics = await text('ledger-a');
    expect(ledgerMetrics).toMatch(/failclosed_transport_refusals_total\{reason="wrong_role"\} 1/);
    expect(ledgerMetrics).toMatch(/failclosed_ledger_follow_failures_total 0/);
    expect(Number(/failclosed_ledger_verified_entries (\d+)/.exec(ledgerMetrics)?.[1])).toBeGreaterThan(0);
    // The ledger process goes (kill -9): its standby signs the export's checkpoint.
    await stopProcess(ledgers[0], 'SIGKILL');
    // The Control Plane process goes (kill -9): the Gates and the Execution Layers turn to the
    // standby, which decides, records and serves the issuer keys; a call runs.
    await stopProcess(cp, 'SIGKILL');
    expect(call(gates[1]!, 'via the standby')).toContain('via the standby');
    // With its process gone, an operator command on the Control Plane's data directory starts the
    // composition in-process as the Control Plane too: a call sent there is not taken either.
    const inProcess = runCli(
      'call',
      'echo',
      '--params',
      JSON.stringify({ message: 'in process' }),
      '--data',
      at('cp'),
    );
    expect(inProcess.code, inProcess.out + inProcess.err).not.toBe(0);
    expect(inProcess.err).toContain('takes no calls (a Control Plane process?)');
    // 11. One ledger: export it through the standby, pin the trust roots, verify.
    ok(runCli('ledger', 'export', '--out', at('ledger.jsonl'), '--data', at('cp-standby')));
    ok(runCli('trust-roots', '--out', at('trust.json'), '--data', at('cp-standby')));
    const verified = runCli('verify', at('ledger.jsonl'), '--trust', at('trust.json'));
    expect(verified.code, verified.out + verified.err).toBe(0);
    // Every call was decided by the Control Plane and ran in an Execution Layer process.
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
    expect(echoes).toHaveLength(4);
    // Only the four calls through Gates (three signed, one MCP) were accepted: the one sent to
    // the Control Plane never was.
    expect(entries.filter((e) => e.type === 'gateway.accepted')).toHaveLength(4);
    expect(
      entries.filter((e) => e.type === 'gateway.accepted' && e.payload['auth_method'] === 'client_key'),
    ).toHaveLength(1);
    for (const done of echoes) {
      const of = (type: string): Entry | undefined =>
        entries.find((e) => e.type === type && e.request_id === done.request_id);
      expect(of('gateway.accepted')?.actor.role).toBe('gate');
      expect(of('envelope.issued')?.actor.role).toBe('control-plane');
      expect(of('execution.receipt')?.actor.role).toBe('executor');
      expect(of('execution.receipt')?.payload['status']).toBe('succeeded');
    }
    // No ledger process at all: calls go on (nothing waits for a checkpoint), an export cannot be
    // had. The killed one restarted hashes every entry again, and signs the next export.
    await stopProcess(ledgers[1], 'SIGKILL');
    expect(call(gates[0]!, 'no ledger process')).toContain('no ledger process');
    const without = runCli('ledger', 'export', '--out', at('none.jsonl'), '--data', at('cp-standby'));
    expect(without.code, without.out).not.toBe(0);
    expect(without.out + without.err).toMatch(/ERR_LEDGER_UNAVAILABLE/);
    ledgers[0] = await spawnServe('ledger', at('ledger-a.json'), {
      FAILCLOSED_LOG_LEVEL: 'silent',
      PGPASSWORD: `pw-failclosed_ledger-${process.pid}`,
    });
    ok(runCli('ledger', 'export', '--out', at('again.jsonl'), '--data', at('cp-standby')));
    const again = runCli('verify', at('again.jsonl'), '--trust', at('trust.json'));
    expect(again.code, again.out + again.err).toBe(0);
    // Each ledger process keeps its own binding file: the same ledger, and for the restarted one
    // the checkpoint its start verified (the export's, at least one).
    const bindings = ['a', 'b'].map(
      (n) =>
        JSON.parse(readFileSync(at(`state-${n}`, 'ledger-binding.json'), 'utf8')) as {
          first_entry_hash: string;
          checkpoint?: { size: number };
        },
    );
    expect(bindings[0]!.first_entry_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(bindings[1]!.first_entry_hash).toBe(bindings[0]!.first_entry_hash);
    expect(bindings[0]!.checkpoint!.size).toBeGreaterThan(0);
  }, 120_000);

  it('runs the SPEC §7 walkthrough through a keyless Gate (failclosed demo --gate): every step it can run there passes', () => {
    // After the kill above: the standby serves the data directory, the Gates turned to it.
    const r = runCli('demo', '--gate', gates[0]!.url, '--data', at('cp-standby'));
    const lines = r.out.split('\n');
    // The steps that did not behave come last in the message: a long output is cut in the middle.
    const failed = lines.filter((l) => l.startsWith('FAIL')).join('\n');
    expect(r.code, `${r.out}${r.err}\n${failed}`).toBe(0);
    expect(lines.some((l) => l.startsWith('FAIL'))).toBe(false);
    // The client cannot reach the Execution Layer at all; holding the Gate's certificate, it is
    // refused by the envelope check; the approvals, break-glass and evidence run through the Gate.
    for (const seen of [
      '→ refused at TLS',
      '→ ERR_POLICY_DENY',
      '→ ERR_ENVELOPE_PARAMS_MISMATCH',
      '→ ERR_NONCE_REPLAYED',
      '→ ERR_ENVELOPE_MISSING',
      '→ intact: exit 0; tampered: exit 1 naming the edited entry',
      '[§7.11] approval',
      '[§7.14] break-glass',
      '→ verified',
    ])
      expect(
        lines.some((l) => l.startsWith('PASS') && l.includes(seen)),
        seen,
      ).toBe(true);
    // Only the steps that need the demo's own clock or outage switches are skipped.
    expect(lines.filter((l) => l.startsWith('SKIP'))).toHaveLength(4);
    expect(r.out).toMatch(/^10\/10 steps behaved as SPEC §7 says \(4 skipped\)$/m);
  }, 180_000);

  it('the walkthrough through a Gate counts tool runs from the ledger: a step that runs a tool it should not fails', async () => {
    const wrong = misreportingStep('counted from its receipt');
    const out: string[] = [];
    const code = await runDemoThrough((t) => out.push(t), {
      gateUrl: gates[1]!.url,
      dataDir: at('cp-standby'),
      steps: [wrong],
    });
    expect(code, out.join('')).toBe(1);
    expect(out.join('')).toMatch(/^FAIL +1\. .*tool ran 1×; expected ERR_POLICY_DENY$/m);
  }, 60_000);
});
