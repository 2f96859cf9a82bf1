/**
 * The separated shape as deploy/systemd ships it on PostgreSQL (FC-INV-6, SPEC §1 separation of
 * powers, L7 mutual TLS between roles), run rather than read: `control-plane.json` and
 * `control-plane.ledger.json` merged into a data directory initialised on the database, its
 * checkpoint key moved out by `failclosed ledger move-key` (the Control Plane process, which
 * failclosed-postgres.service runs as `failclosed serve control-plane`; here `startEmbedded` opens
 * the same composition over it), `ledger.json` (`failclosed serve ledger`, the checkpoint key
 * alone), `executor.json` with `executor.postgres.json` merged in (`failclosed serve executor` on
 * the shared nonce schema) and `gate.json` (`failclosed serve gate`, holding no key), with only
 * their directory prefixes, ports and PostgreSQL roles and database rewritten to the test's own (a
 * fresh database; the roles' names are cluster-wide, so each gets a name of its own), and the
 * origin and vkey placeholders replaced by what move-key printed. The Gate's, the executor's and the ledger
 * process's database roles are made as failclosed-gate-role.service,
 * failclosed-executor-role.service and failclosed-ledger-role.service make them: their
 * ExecStartPre probe and ExecStart `psql` line, run as written with the owner's and the role's
 * passwords in the environment only. The four roles run as the real components in this process
 * (`startEmbedded`, `startLedgerNode`, `startExecutorNode`, `startGateNode`).
 *
 * - A signed call to the keyless Gate runs once in the Execution Layer: `gateway.*` by the role
 *   `gate`, `decision` and `envelope.issued` by `control-plane`, `execution.receipt` by
 *   `executor`; its envelope's nonce is consumed in the shared schema.
 * - A policy deny issues nothing and runs nothing.
 * - The Control Plane's internal listener refuses a client certificate.
 * - The exported ledger, its checkpoint signed by the ledger process, verifies against the
 *   deployment's trust roots; the Control Plane's data directory holds no checkpoint key.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  announceServer,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
  startExecutorNode,
  startGateNode,
  startLedgerNode,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance, ExecutorNode, GateNode, LedgerNode } from '../../src/embedded/index.js';
import { gateRequest } from '../../src/embedded/executor-node.js';
import type { LedgerEntry } from '../../src/ledger/index.js';
import { createDevCa, createMtlsAgent, issueCert, pkiPaths, writeCrl } from '../../src/transport/index.js';
import { parseUnit, unitValue } from '../deploy/support.js';
import { PG_ADMIN_URL, useTestDatabase } from '../support/postgres.js';
import { REPO_ROOT } from '../support/paths.js';
import { freePort } from '../support/ports.js';

const SYSTEMD = join(REPO_ROOT, 'deploy/systemd');

const pgdb = useTestDatabase('fc_e2e_deploy_keyless');

/** `text` with every `from` replaced by `to`; refuses when `from` is absent (the file changed). */
function rewrite(text: string, from: string, to: string): string {
  expect(text, from).toContain(from);
  return text.replaceAll(from, to);
}

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('the separated shape from the shipped systemd configuration, on PostgreSQL', () => {
  const suffix = randomBytes(4).toString('hex');
  /** The shipped role names, each replaced by one of this file's own (roles are cluster-wide). */
  const roles = {
    owner: `fc_owner_${suffix}`,
    gate: `fc_gate_${suffix}`,
    executor: `fc_executor_${suffix}`,
    ledger: `fc_ledger_${suffix}`,
  };
  let work: string;
  let cpDir: string;
  let pki: string;
  let cp: EmbeddedInstance | undefined;
  let executor: ExecutorNode | undefined;
  let gate: GateNode | undefined;
  let ledger: LedgerNode | undefined;
  /** What `failclosed ledger move-key` printed: the origin and the vkey the shipped files leave to the operator. */
  let moved: { origin: string; vkey: string; first_entry_hash: string; key_file: string };
  let ledgerConfigPath: string;
  /** The ledger process's binding file (ledger.json `binding`). */
  let bindingPath: string;
  const readBinding = (): {
    version: number;
    first_entry_hash: string;
    checkpoint?: { size: number; root_hash: string };
  } => JSON.parse(readFileSync(bindingPath, 'utf8')) as ReturnType<typeof readBinding>;
  let client: FailclosedClient;
  let internalPort: number;
  const runs: string[] = [];

  /**
   * A shipped text naming the shipped database (`failclosed@127.0.0.1:5432/failclosed` and its
   * roles) rewritten to this file's database and roles; the schema stays `failclosed` (the
   * database is fresh).
   */
  const onTestDatabase = (text: string): string => {
    const server = new URL(pgdb.url);
    let t = rewrite(text, '127.0.0.1:5432/failclosed', `${server.host}${server.pathname}`);
    // The roles' names first; what is then left as `failclosed@` is the owner in a URL.
    t = t
      .replaceAll('failclosed_gate', roles.gate)
      .replaceAll('failclosed_executor', roles.executor)
      .replaceAll('failclosed_ledger', roles.ledger);
    return t.replaceAll('failclosed@', `${roles.owner}@`);
  };

  /**
   * A role unit run as systemd would: its ExecStartPre probe (once: the schema is migrated, so it
   * must pass at once) and its ExecStart `psql`, with only the environment its EnvironmentFiles give.
   */
  const runRoleUnit = (file: string, env: Record<string, string>): void => {
    const unit = parseUnit(readFileSync(join(SYSTEMD, file), 'utf8'));
    const pre = unitValue(unit, 'Service', 'ExecStartPre')!;
    const probe = /^\/bin\/sh -c 'until (.*) >\/dev\/null; do sleep \d+; done'$/.exec(pre);
    expect(probe, pre).not.toBeNull();
    const base = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env };
    const waited = spawnSync('/bin/sh', ['-c', onTestDatabase(probe![1]!)], { env: base, encoding: 'utf8' });
    expect(waited.status, waited.stderr).toBe(0);
    const exec = onTestDatabase(unitValue(unit, 'Service', 'ExecStart')!);
    const argv = rewrite(exec, '/opt/failclosed/deploy/', `${REPO_ROOT}/deploy/`).split(/\s+/);
    const r = spawnSync(argv[0]!, argv.slice(1), { env: base, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  };

  /** Every ledger entry of one request, read from the Control Plane's ledger. */
  const entriesOf = async (requestId: string | null): Promise<LedgerEntry[]> => {
    const size = cp!.core.ledger.size();
    return (await cp!.core.ledger.store.readRange(0, size)).filter((e) => e.request_id === requestId);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-deploy-keyless-'));
    pki = join(work, 'certs');
    await createDevCa(pki);
    for (const role of ['gate', 'control-plane', 'executor', 'ledger', 'client'] as const)
      await issueCert(pki, { role });
    // The keyless Gate's own certificate, naming no host (`certs issue --role gate --no-host`).
    await issueCert(pki, { role: 'gate', name: 'gate-client', clientOnly: true });
    await writeCrl(pki);
    const [execPort, gatePort, ledgerPort] = [await freePort(), await freePort(), await freePort()];
    internalPort = await freePort();

    // The Control Plane's role: the schema's owner, not a superuser. It creates the other two
    // roles (the role units' `password_env`), which takes CREATEROLE.
    const ownerPassword = randomBytes(12).toString('hex');
    await admin(PG_ADMIN_URL, async (c) => {
      await c.query(`CREATE ROLE ${roles.owner} LOGIN CREATEROLE PASSWORD '${ownerPassword}'`);
      await c.query(`GRANT CREATE ON DATABASE ${pgdb.db.name} TO ${roles.owner}`);
    });

    // The Control Plane (its unit runs `serve control-plane`): a data directory on the database
    // the role units name (as FAILCLOSED_BACKEND would), with deploy/systemd/control-plane.json
    // merged in.
    const roleUnit = parseUnit(readFileSync(join(SYSTEMD, 'failclosed-gate-role.service'), 'utf8'));
    const ownerUrl = onTestDatabase(unitValue(roleUnit, 'Service', 'ExecStart')!.split(/\s+/)[1]!);
    cpDir = join(work, 'var-lib-failclosed');
    await initDataDir(cpDir, { backend: `${ownerUrl}?schema=failclosed` });
    const etcCp = join(work, 'etc-failclosed');
    mkdirSync(join(etcCp, 'tls'), { recursive: true });
    // What the Control Plane's unit is given: the CA, the CRL and its own two certificates.
    for (const f of ['ca.pem', 'crl.pem', 'gate.pem', 'gate.key', 'control-plane.pem', 'control-plane.key'])
      copyFileSync(join(pki, f), join(etcCp, 'tls', f));
    // The checkpoint key leaves the data directory for the ledger process's own directory.
    const etcLedger = join(work, 'etc-failclosed-ledger');
    mkdirSync(join(etcLedger, 'tls'), { recursive: true });
    const said: string[] = [];
    const io = { out: (t: string) => void said.push(t), err: (t: string) => void said.push(t), env: {} };
    const ledgerKey = join(etcLedger, 'ledger.jwk');
    expect(await runCli(['ledger', 'move-key', '--out', ledgerKey, '--data', cpDir], io), said.join('')).toBe(
      0,
    );
    moved = JSON.parse(said.join('')) as typeof moved;
    let cpText = readFileSync(join(SYSTEMD, 'control-plane.json'), 'utf8');
    cpText = rewrite(cpText, '/etc/failclosed/', `${etcCp}/`);
    cpText = rewrite(cpText, '127.0.0.1:7443', `127.0.0.1:${execPort}`);
    cpText = rewrite(cpText, '"internal_port": 7444', `"internal_port": ${internalPort}`);
    let cpLedgerText = readFileSync(join(SYSTEMD, 'control-plane.ledger.json'), 'utf8');
    cpLedgerText = rewrite(cpLedgerText, '127.0.0.1:7460', `127.0.0.1:${ledgerPort}`);
    cpLedgerText = rewrite(cpLedgerText, '<the vkey failclosed ledger move-key printed>', moved.vkey);
    const config = JSON.parse(readFileSync(dataPaths(cpDir).config, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      dataPaths(cpDir).config,
      JSON.stringify({
        ...config,
        ...(JSON.parse(cpText) as Record<string, unknown>),
        ...(JSON.parse(cpLedgerText) as Record<string, unknown>),
      }),
    );
    cp = await startEmbedded(cpDir, { port: 0, defaultLogLevel: 'silent' });

    // Once the Control Plane migrated the schema: the two role units, as systemd runs them.
    const passwords = {
      gate: randomBytes(12).toString('hex'),
      executor: randomBytes(12).toString('hex'),
      ledger: randomBytes(12).toString('hex'),
    };
    runRoleUnit('failclosed-gate-role.service', {
      PGPASSWORD: ownerPassword,
      FAILCLOSED_GATE_DB_PASSWORD: passwords.gate,
    });
    runRoleUnit('failclosed-executor-role.service', {
      PGPASSWORD: ownerPassword,
      FAILCLOSED_EXECUTOR_DB_PASSWORD: passwords.executor,
    });
    runRoleUnit('failclosed-ledger-role.service', {
      PGPASSWORD: ownerPassword,
      FAILCLOSED_LEDGER_DB_PASSWORD: passwords.ledger,
    });

    // The ledger process: ledger.json in its own directory, the key move-key wrote and its
    // certificate beside it, the origin move-key printed in place of the placeholder.
    for (const f of ['ca.pem', 'crl.pem', 'ledger.pem', 'ledger.key'])
      copyFileSync(join(pki, f), join(etcLedger, 'tls', f));
    let ledgerText = readFileSync(join(SYSTEMD, 'ledger.json'), 'utf8');
    ledgerText = rewrite(ledgerText, '"port": 7460', `"port": ${ledgerPort}`);
    // Its metrics on loopback, on any free port.
    ledgerText = rewrite(ledgerText, '"listen": "127.0.0.1:9464"', '"listen": "127.0.0.1:0"');
    ledgerText = rewrite(ledgerText, '<the origin failclosed ledger move-key printed>', moved.origin);
    ledgerText = rewrite(
      ledgerText,
      '<the first_entry_hash failclosed ledger move-key printed>',
      moved.first_entry_hash,
    );
    // Its state directory (the unit's StateDirectory), where it keeps its binding file.
    const varLedger = join(work, 'var-lib-failclosed-ledger');
    mkdirSync(varLedger, { mode: 0o700 });
    ledgerText = rewrite(ledgerText, '/var/lib/failclosed-ledger/', `${varLedger}/`);
    bindingPath = join(varLedger, 'ledger-binding.json');
    ledgerText = onTestDatabase(ledgerText);
    ledgerConfigPath = join(etcLedger, 'ledger.json');
    writeFileSync(ledgerConfigPath, ledgerText);
    ledger = await startLedgerNode(ledgerConfigPath, { env: {}, defaultLogLevel: 'silent' });

    // The executor: executor.json with executor.postgres.json merged in, its certificate beside it.
    const etcExec = join(work, 'etc-failclosed-executor');
    mkdirSync(join(etcExec, 'tls'), { recursive: true });
    for (const f of ['ca.pem', 'crl.pem', 'executor.pem', 'executor.key'])
      copyFileSync(join(pki, f), join(etcExec, 'tls', f));
    let execText = readFileSync(join(SYSTEMD, 'executor.json'), 'utf8');
    execText = rewrite(
      execText,
      '/var/lib/failclosed-executor/',
      `${join(work, 'var-lib-failclosed-executor')}/`,
    );
    execText = rewrite(execText, '"port": 7443', `"port": ${execPort}`);
    execText = rewrite(execText, '127.0.0.1:7444', `127.0.0.1:${internalPort}`);
    const execPg = onTestDatabase(readFileSync(join(SYSTEMD, 'executor.postgres.json'), 'utf8'));
    const executorConfig = join(etcExec, 'executor.json');
    writeFileSync(
      executorConfig,
      JSON.stringify({
        ...(JSON.parse(execText) as Record<string, unknown>),
        ...(JSON.parse(execPg) as Record<string, unknown>),
      }),
    );
    executor = await startExecutorNode(executorConfig, {
      env: {},
      defaultLogLevel: 'silent',
      onToolRun: (r) => runs.push(r.tool),
    });

    // The keyless Gate: gate.json in its own directory, its certificate beside it.
    const etcGate = join(work, 'etc-failclosed-gate');
    mkdirSync(join(etcGate, 'tls'), { recursive: true });
    for (const f of ['ca.pem', 'crl.pem', 'gate-client.pem', 'gate-client.key'])
      copyFileSync(join(pki, f), join(etcGate, 'tls', f));
    let gateText = readFileSync(join(SYSTEMD, 'gate.json'), 'utf8');
    gateText = rewrite(gateText, '"port": 7080', `"port": ${gatePort}`);
    gateText = rewrite(gateText, '127.0.0.1:7443', `127.0.0.1:${execPort}`);
    gateText = rewrite(gateText, '127.0.0.1:7444', `127.0.0.1:${internalPort}`);
    gateText = onTestDatabase(gateText);
    const gateConfig = join(etcGate, 'gate.json');
    writeFileSync(gateConfig, gateText);
    gate = await startGateNode(gateConfig, { env: {}, defaultLogLevel: 'silent' });

    const f = readClientFile(cpDir, DEMO_CLIENT.identity);
    client = createClient({ url: gate.url, identity: f.identity, tenant: f.tenant, key: f.key });
  }, 120_000);

  afterAll(async () => {
    await gate?.close();
    await executor?.close();
    await ledger?.close();
    await cp?.close();
    // The roles are the cluster's: dropped once the database holding their grants is gone.
    await pgdb.db.drop();
    await admin(PG_ADMIN_URL, async (c) => {
      for (const name of [roles.gate, roles.executor, roles.ledger, roles.owner])
        await c.query(`DROP ROLE IF EXISTS ${name}`);
    });
    rmSync(work, { recursive: true, force: true });
  });

  it('a signed call to the keyless Gate runs once in the Execution Layer, each record by its role', async () => {
    expect(cp!.executionUrl).toBe(cp!.core.config.executor_url);
    const r = await client.call('echo', { message: 'as deployed' }, { session: 'deploy-keyless' });
    expect(r).toMatchObject({ outcome: 'executed', result: { message: 'as deployed' } });
    expect(runs).toEqual(['echo']);
    const mine = await entriesOf(r.request_id);
    const by = (type: string) => mine.filter((e) => e.type === type).map((e) => e.actor.role);
    expect(by('gateway.accepted')).toEqual(['gate']);
    expect(by('decision')).toEqual(['control-plane']);
    expect(by('envelope.issued')).toEqual(['control-plane']);
    expect(by('execution.receipt')).toEqual(['executor']);
    expect(by('gateway.completed')).toEqual(['gate']);
    expect(mine.filter((e) => e.type.startsWith('gateway.')).every((e) => e.actor.role === 'gate')).toBe(
      true,
    );
    // The envelope's nonce is consumed in the shared schema, on the executor's own role.
    const consumed = await admin(pgdb.url, (c) =>
      c.query<{ n: number }>('SELECT count(*)::int AS n FROM failclosed.envelope_nonces WHERE NOT voided'),
    );
    expect(consumed.rows[0]!.n).toBe(1);
  }, 30_000);

  it('a policy deny issues no envelope and runs nothing', async () => {
    const denied = await client.call(
      'transfer_funds',
      { from_account: 'acct_ops', to_account: 'acct_x', amount: 60000, currency: 'USD' },
      { session: 'deploy-keyless' },
    );
    expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    const mine = await entriesOf(denied.request_id);
    expect(mine.find((e) => e.type === 'decision')?.actor.role).toBe('control-plane');
    expect(mine.some((e) => e.type === 'envelope.issued')).toBe(false);
    expect(mine.some((e) => e.type === 'execution.receipt')).toBe(false);
    expect(runs).toEqual(['echo']);
  }, 30_000);

  it('the Control Plane’s internal listener refuses a client certificate', async () => {
    const p = pkiPaths(pki);
    const agent = await createMtlsAgent({
      files: { ca: p.caCert, cert: p.cert('client'), key: p.key('client') },
      expect: ['control-plane'],
    });
    try {
      await expect(
        gateRequest(
          { url: `https://127.0.0.1:${internalPort}`, agent, timeoutMs: 5000 },
          'GET',
          '/v1/internal/cp/ready',
          undefined,
          1 << 16,
        ),
      ).rejects.toThrow(/socket hang up|ECONNRESET|EPIPE|alert|closed/i);
    } finally {
      agent.close();
    }
    expect(runs).toEqual(['echo']);
  }, 30_000);

  it('a ledger process whose first_entry_hash names another ledger refuses to start: its key signs no second ledger (docs/storage.md)', async () => {
    expect(moved.first_entry_hash).toMatch(/^[0-9a-f]{64}$/);
    const other = join(dirname(ledgerConfigPath), 'other-ledger.json');
    const text = readFileSync(ledgerConfigPath, 'utf8');
    writeFileSync(other, rewrite(text, moved.first_entry_hash, 'ab'.repeat(32)));
    await expect(startLedgerNode(other, { env: {}, defaultLogLevel: 'silent' })).rejects.toThrow(
      /holds another ledger \(first entry [0-9a-f]{64}\) than the one this key signs/,
    );
  });

  it('a ledger process whose binding file names another ledger, another root at a size it remembers, or cannot be read or written, refuses to start', async () => {
    const other = join(dirname(ledgerConfigPath), 'other-binding.json');
    const config = JSON.parse(readFileSync(ledgerConfigPath, 'utf8')) as Record<string, unknown>;
    const otherBinding = join(dirname(bindingPath), 'other-ledger-binding.json');
    writeFileSync(other, JSON.stringify({ ...config, binding: otherBinding }));
    const start = () => startLedgerNode(other, { env: {}, defaultLogLevel: 'silent' });
    writeFileSync(otherBinding, JSON.stringify({ version: 1, first_entry_hash: 'cd'.repeat(32) }));
    await expect(start()).rejects.toThrow(
      /names another ledger \(first entry (cd){32}\) than first_entry_hash/,
    );
    // A binding file that cannot be written (its directory missing): no start, nothing made.
    const nowhere = join(dirname(bindingPath), 'missing', 'ledger-binding.json');
    writeFileSync(other, JSON.stringify({ ...config, binding: nowhere }));
    await expect(start()).rejects.toThrow(/^binding: the directory of .* does not exist/);
    expect(existsSync(dirname(nowhere))).toBe(false);
    writeFileSync(other, JSON.stringify({ ...config, binding: otherBinding }));
    // Without first_entry_hash in the configuration, the file alone refuses the other store.
    delete config['first_entry_hash'];
    writeFileSync(other, JSON.stringify({ ...config, binding: otherBinding }));
    await expect(start()).rejects.toThrow(
      /holds another ledger \(first entry [0-9a-f]{64}\) than the one this key signs \(first entry (cd){32}/,
    );
    // The same ledger, but another root at a size it remembers (entries rewritten, or another
    // history after a restore): refused.
    writeFileSync(
      otherBinding,
      JSON.stringify({
        version: 1,
        first_entry_hash: moved.first_entry_hash,
        checkpoint: { size: 2, root_hash: 'ab'.repeat(32) },
      }),
    );
    await expect(start()).rejects.toThrow(
      'the shared ledger (state) holds other entries up to size 2 than the checkpoint this key signed there',
    );
    writeFileSync(otherBinding, '{"version":1,');
    await expect(start()).rejects.toThrow(/cannot be read .* names the ledger this ledger process signs/);
    writeFileSync(
      otherBinding,
      JSON.stringify({ version: 1, first_entry_hash: moved.first_entry_hash, extra: 1 }),
    );
    await expect(start()).rejects.toThrow(/is malformed: it names the ledger this ledger process signs/);
  });

  it('the exported ledger, its checkpoint signed by the ledger process, verifies against the deployment’s trust roots', async () => {
    // The Control Plane holds the vkey alone; the ledger process signs under the key move-key moved.
    expect(existsSync(join(cpDir, 'keys', 'ledger.jwk'))).toBe(false);
    expect(cp!.core.config.checkpoints?.vkey).toBe(moved.vkey);
    expect(ledger!.vkey).toBe(moved.vkey);
    const res = await fetch(`${cp!.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(cpDir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    const bundle = join(work, 'ledger.jsonl');
    writeFileSync(bundle, await res.text());
    // The operator's CLI reaches the running process as it would the unit's: through the server it
    // announced in the data directory.
    announceServer(cpDir, cp!.url);
    const trust = join(work, 'trust-roots.json');
    const said: string[] = [];
    const io = { out: (t: string) => void said.push(t), err: (t: string) => void said.push(t), env: {} };
    expect(await runCli(['--data', cpDir, 'trust-roots', '--out', trust], io), said.join('')).toBe(0);
    expect(await runCli(['verify', bundle, '--trust', trust], io), said.join('')).toBe(0);
  }, 60_000);

  it('the ledger process remembers the ledger its key signs and the largest checkpoint it signed, in its own binding file', async () => {
    const latest = await cp!.core.ledger.store.latestCheckpoint();
    expect(latest).toBeDefined();
    // Recorded before it was stored or handed out: the file is never behind the store.
    const binding = readBinding();
    expect(binding.first_entry_hash).toBe(moved.first_entry_hash);
    expect(binding.checkpoint!.size).toBeGreaterThanOrEqual(latest!.size);
    expect(binding.checkpoint!.root_hash).toBe(cp!.core.ledger.rootHash(binding.checkpoint!.size));
    expect(statSync(bindingPath).mode & 0o777).toBe(0o600);
  });

  it('a standby ledger process with a file of its own raises a stale one at its start, and signs nothing it cannot record there: refused ERR_LEDGER_UNAVAILABLE, nothing stored', async () => {
    // The first ledger process stops, so that no checkpoint is signed but the standby's.
    await ledger?.close();
    ledger = undefined;
    const latest = (await cp!.core.ledger.store.latestCheckpoint())!;
    const dir = join(work, 'var-lib-failclosed-ledger-standby');
    mkdirSync(dir, { mode: 0o700 });
    const file = join(dir, 'ledger-binding.json');
    // Stale: a checkpoint of this ledger at size 1.
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        first_entry_hash: moved.first_entry_hash,
        checkpoint: { size: 1, root_hash: cp!.core.ledger.rootHash(1) },
      }),
    );
    const config = JSON.parse(readFileSync(ledgerConfigPath, 'utf8')) as Record<string, unknown>;
    const standbyConfig = join(dirname(ledgerConfigPath), 'standby-ledger.json');
    writeFileSync(
      standbyConfig,
      JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 }, binding: file }),
    );
    const standby = await startLedgerNode(standbyConfig, { env: {}, defaultLogLevel: 'silent' });
    const p = pkiPaths(pki);
    const agent = await createMtlsAgent({
      files: { ca: p.caCert, cert: p.cert('control-plane'), key: p.key('control-plane') },
      expect: ['ledger'],
    });
    try {
      // Written at its start, before it listened: the store's latest, verified.
      const started = JSON.parse(readFileSync(file, 'utf8')) as { checkpoint: { size: number } };
      expect(started.checkpoint.size).toBeGreaterThanOrEqual(latest.size);
      // New entries, then its directory gone (a volume lost): the checkpoint over them cannot be
      // recorded, so it is neither stored nor handed out.
      const r = await client.call('echo', { message: 'past the standby' }, { session: 'deploy-keyless' });
      expect(r.outcome).toBe('executed');
      const size = await standby.follow();
      expect(size).toBeGreaterThan(started.checkpoint.size);
      rmSync(dir, { recursive: true, force: true });
      const answer = await gateRequest(
        { url: standby.url, agent, timeoutMs: 10_000 },
        'POST',
        '/v1/ledger/checkpoint',
        { size },
        1 << 16,
      );
      expect(answer.status, answer.body.toString()).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(answer.body.toString()) as { code: string }).toMatchObject({
        code: 'ERR_LEDGER_UNAVAILABLE',
      });
      expect((await cp!.core.ledger.store.checkpoints()).map((c) => c.size)).not.toContain(size);
    } finally {
      agent.close();
      await standby.close();
    }
  }, 60_000);

  it('L7: a database restored to an earlier point is refused by the ledger process that signed past it, instead of signed again (a fork)', async () => {
    // Every role stops, as for a restore.
    for (const node of [gate, executor, cp, ledger]) await node?.close();
    [gate, executor, cp, ledger] = [undefined, undefined, undefined, undefined];
    const signed = readBinding().checkpoint!;
    // The database as it was before the last checkpoint: entries and checkpoints past an earlier
    // size gone, as a point-in-time restore (or a failover that lost commits) leaves it.
    const cut = signed.size - 3;
    await admin(pgdb.url, async (c) => {
      await c.query('SET search_path TO failclosed');
      await c.query('BEGIN');
      await c.query('ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update');
      await c.query('DELETE FROM ledger_entries WHERE idx >= $1', [cut]);
      await c.query('ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_no_update');
      await c.query('DELETE FROM ledger_checkpoints WHERE size > $1', [cut]);
      await c.query('DELETE FROM ledger_tree_chunks');
      await c.query("DELETE FROM ledger_meta WHERE key = 'tree_size'");
      await c.query('COMMIT');
    });
    await expect(startLedgerNode(ledgerConfigPath, { env: {}, defaultLogLevel: 'silent' })).rejects.toThrow(
      `the shared ledger (state) holds ${cut} entries, but this key signed a checkpoint of it at size ${signed.size}`,
    );
    // The memory is what refused it: the same process without its binding file signs the
    // restored ledger, and would sign other roots at the sizes it signed before.
    const forgetful = join(dirname(ledgerConfigPath), 'forgetful-ledger.json');
    const config = JSON.parse(readFileSync(ledgerConfigPath, 'utf8')) as Record<string, unknown>;
    delete config['binding'];
    writeFileSync(forgetful, JSON.stringify(config));
    const unchecked = await startLedgerNode(forgetful, { env: {}, defaultLogLevel: 'silent' });
    try {
      expect(unchecked.size()).toBe(cut);
    } finally {
      await unchecked.close();
    }
    expect(readBinding().checkpoint).toEqual(signed);
  }, 60_000);
});
