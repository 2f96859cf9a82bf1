/**
 * The configuration files the deployment artefacts ship for the separate Execution Layer
 * (`failclosed serve executor`) and for the gates that call it, parsed with the real parsers
 * (`parseExecutorConfig`, and the data directory's `parseConfig` over a fresh `failclosed.json`
 * with the shipped settings merged in), and checked against the artefacts that use them: the
 * names and ports dialled are those the services, aliases and listeners define, the certificate
 * paths are those mounted, the executors share the gates' nonce table (FC-INV-6: the Gate's
 * recovery voids what an executor has not consumed) on a database role of their own, the one the
 * shipped role step grants (FC-INV-6 least privilege), and the queue settings agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/embedded/data-dir.js';
import { parseExecutorConfig } from '../../src/embedded/executor-node.js';
import type { EmbeddedConfig } from '../../src/embedded/data-dir.js';
import type { ExecutorNodeConfig } from '../../src/embedded/executor-node.js';
import { DEPLOY_DIR, at, parseUnit, readYaml, unitValue } from './support.js';
import type { YamlObject } from './support.js';

const read = (...p: string[]) => readFileSync(join(DEPLOY_DIR, ...p));
const json = (...p: string[]) => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

/** A fresh `failclosed.json` (as `init` writes it) with `fragments` merged in, parsed strictly. */
function gateConfig(...fragments: Record<string, unknown>[]): EmbeddedConfig {
  const merged = Object.assign({}, defaultConfig(), ...fragments) as Record<string, unknown>;
  return parseConfig(Buffer.from(JSON.stringify(merged)));
}

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

/** The schema a gate's `FAILCLOSED_BACKEND` URL names, its database address, and its role. */
function backend(url: string) {
  const u = new URL(url);
  return { schema: u.searchParams.get('schema'), where: `${u.host}${u.pathname}`, role: u.username };
}
function nonceStore(c: ExecutorNodeConfig) {
  const u = new URL(c.nonces);
  expect(u.password).toBe('');
  return { schema: c.nonces_schema ?? null, where: `${u.host}${u.pathname}`, role: u.username };
}
/** The `-v NAME=VALUE` psql variables of a command line. */
function psqlVars(argv: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    argv.flatMap((w, i) => (argv[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
  );
}
/**
 * The executors' nonce store is the gates' schema on the same database, on the role the role step
 * grants (`-v role=`, on `-v schema=`), which is not the gates' role.
 */
function expectOwnRole(exec: ExecutorNodeConfig, gateBackend: string, roleStep: readonly string[]) {
  const store = nonceStore(exec);
  const gates = backend(gateBackend);
  expect({ schema: store.schema, where: store.where }).toEqual({ schema: gates.schema, where: gates.where });
  const vars = psqlVars(roleStep);
  expect(store.role).toBe(vars.role);
  expect(store.schema).toBe(vars.schema);
  expect(store.role).not.toBe(gates.role);
}

describe('the parsers are the real ones and refuse what is wrong', () => {
  it('a gate fragment without tls.gate, and an executor config with an unknown field, are refused', () => {
    const fragment = json('compose/config/gate.json');
    const { tls: _tls, ...noTls } = fragment;
    expect(() => gateConfig(noTls)).toThrow(/executor_url needs tls\.gate/);
    const exec = { ...json('compose/config/executor.json'), listen_all: true };
    expect(() => parseExecutorConfig(Buffer.from(JSON.stringify(exec)), '/x')).toThrow(
      /unknown field listen_all/,
    );
  });
});

describe('compose (deploy/compose/config)', () => {
  const [compose] = readYaml(join(DEPLOY_DIR, 'compose/compose.yaml')) as [YamlObject];
  const services = compose.services as YamlObject;
  const executorMounts = (at(services, 'executor', 'volumes') as YamlObject[]).map((v) => v.target as string);
  const gateMounts = (at(services, 'gate-a', 'volumes') as YamlObject[]).map((v) => v.target as string);
  const exec = parseExecutorConfig(read('compose/config/executor.json'), '/etc/failclosed');
  const gate = gateConfig(json('compose/config/gate.json'));

  it('executor.json parses; the gates call the `executor` service on its listen port, over mutual TLS', () => {
    expect(exec.audience).toBe(gate.audience);
    expect(exec.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(hostPort(gate.executor_url!)).toEqual({ host: 'executor', port: exec.listen.port });
    expect(Object.keys(services)).toContain('executor');
    expect(gate.tls?.executor).toBeUndefined(); // no execution listener in the gates
    expect(gate.tls?.gate).toBeDefined();
  });

  it('the executors reach the gates internal listener by the alias both gates carry', () => {
    expect(hostPort(exec.gate_url)).toEqual({ host: 'gate', port: gate.internal_port });
    expect(gate.internal_host).toBe('0.0.0.0');
    for (const g of ['gate-a', 'gate-b'])
      expect(at(services, g, 'networks', 'exec', 'aliases')).toContain('gate');
  });

  it('the certificate step names the hosts dialled', () => {
    const command = at(services, 'certs', 'command') as string[];
    const hosts = command.flatMap((w, i) => (command[i - 1] === '--host' ? [w] : []));
    expect(hosts).toContain(hostPort(gate.executor_url!).host);
    expect(hosts).toContain(hostPort(exec.gate_url).host);
  });

  it('each side names exactly the certificate files mounted into it', () => {
    const { ca, crl, cert, key } = exec.tls;
    for (const f of [ca, crl!, cert, key]) expect(executorMounts, f).toContain(f);
    expect(cert).toMatch(/executor\.pem$/);
    expect(key).toMatch(/executor\.key$/);
    const t = gate.tls!;
    for (const f of [t.ca, t.crl!, t.gate!.cert, t.gate!.key]) expect(gateMounts, f).toContain(f);
    expect(executorMounts).toContain('/etc/failclosed/executor.json');
    expect(at(services, 'executor', 'command')).toContain('/etc/failclosed/executor.json');
  });

  it('the executors nonce store is the gates schema on the same database, on the role executor-role grants, without a password in the file', () => {
    const backendUrl = at(compose, 'x-gate', 'environment', 'FAILCLOSED_BACKEND') as string;
    expectOwnRole(exec, backendUrl, at(services, 'executor-role', 'command') as string[]);
  });

  it('the queue fragments parse, on both sides, and agree: the gates publish, the executors work', () => {
    const gateJobs = gateConfig(
      json('compose/config/gate.json'),
      json('compose/config/gate.jobs.json'),
    ).jobs!;
    const merged = { ...json('compose/config/executor.json'), ...json('compose/config/executor.jobs.json') };
    const execJobs = parseExecutorConfig(Buffer.from(JSON.stringify(merged)), '/etc/failclosed').jobs!;
    expect(gateJobs.queue).toBe('nats');
    expect(execJobs.queue).toBe('nats');
    if (gateJobs.queue !== 'nats') throw new Error('nats');
    expect(gateJobs.workers).toBe(0);
    expect(execJobs.workers).toBeGreaterThan(0);
    expect(execJobs.url).toBe(gateJobs.url);
    expect(execJobs.stream).toBe(gateJobs.stream);
    expect(new URL(gateJobs.url.replace(/^nats:/, 'http:')).hostname).toBe('nats');
    expect(Object.keys(services)).toContain('nats');
  });
});

describe('kubernetes (the executor ConfigMap, fragments/gate.json)', () => {
  const docs = [
    '20-gate.yaml',
    '25-executor-role.yaml',
    '30-executor.yaml',
    '35-nats.yaml',
    '10-postgresql.yaml',
  ].flatMap((f) => readYaml(join(DEPLOY_DIR, 'kubernetes', f))) as YamlObject[];
  const find = (kind: string, name: string) =>
    docs.find((d) => d.kind === kind && at(d, 'metadata', 'name') === name)!;
  const svcHost = (name: string) =>
    `${name}.${at(find('Service', name), 'metadata', 'namespace') as string}.svc`;
  const svcPort = (name: string) => at(find('Service', name), 'spec', 'ports', 0, 'port') as number;
  const executorPod = at(find('Deployment', 'failclosed-executor'), 'spec', 'template', 'spec') as YamlObject;
  const executorContainer = at(executorPod, 'containers', 0) as YamlObject;
  const mountOf = (c: YamlObject, volume: string) =>
    (c.volumeMounts as YamlObject[]).find((m) => m.name === volume)!.mountPath as string;
  const configDir = mountOf(executorContainer, 'config');
  const text = at(find('ConfigMap', 'failclosed-executor'), 'data', 'executor.json') as string;
  const exec = parseExecutorConfig(Buffer.from(text), configDir);
  const gate = gateConfig(json('kubernetes/fragments/gate.json'));
  const gateContainer = at(
    find('Deployment', 'failclosed-gate'),
    'spec',
    'template',
    'spec',
    'containers',
    0,
  ) as YamlObject;

  it('the ConfigMap executor.json parses, and the container is started with it', () => {
    expect(executorContainer.args).toEqual(['serve', 'executor', '--config', `${configDir}/executor.json`]);
    expect(exec.audience).toBe(gate.audience);
  });

  it('the gates call the executor Service on the executor listen port; the executors the gates internal Service', () => {
    const execPort = at(executorContainer, 'ports', 0, 'containerPort') as number;
    expect(exec.listen).toEqual({ host: '0.0.0.0', port: execPort });
    expect(hostPort(gate.executor_url!)).toEqual({
      host: svcHost('failclosed-executor'),
      port: svcPort('failclosed-executor'),
    });
    expect(hostPort(exec.gate_url)).toEqual({
      host: svcHost('failclosed-gate-internal'),
      port: svcPort('failclosed-gate-internal'),
    });
    const internalPort = (gateContainer.ports as YamlObject[]).find((p) => p.name === 'gate-internal')!;
    expect(internalPort.containerPort).toBe(gate.internal_port);
    expect(gate.internal_host).toBe('0.0.0.0');
    expect(gate.tls?.executor).toBeUndefined();
  });

  it('certificate paths lie in each side’s own TLS Secret volume', () => {
    const execTls = mountOf(executorContainer, 'tls');
    for (const f of [exec.tls.ca, exec.tls.crl!, exec.tls.cert, exec.tls.key])
      expect(f.startsWith(`${execTls}/`), f).toBe(true);
    const gateTls = mountOf(gateContainer, 'tls');
    const t = gate.tls!;
    for (const f of [t.ca, t.crl!, t.gate!.cert, t.gate!.key])
      expect(f.startsWith(`${gateTls}/`), f).toBe(true);
  });

  it('the executors nonce store is the gates schema on the same database, on the role the Job grants', () => {
    const backendUrl = (gateContainer.env as YamlObject[]).find((e) => e.name === 'FAILCLOSED_BACKEND')!
      .value as string;
    const job = at(find('Job', 'failclosed-executor-role'), 'spec', 'template', 'spec', 'containers', 0);
    expectOwnRole(exec, backendUrl, at(job, 'command') as string[]);
    expect(new URL(exec.nonces).host).toBe(`${svcHost('postgresql')}:${svcPort('postgresql')}`);
  });

  it('the queue: the gates publish, the executors work, on the NATS Service', () => {
    const g = gate.jobs!;
    const e = exec.jobs!;
    if (g.queue !== 'nats') throw new Error('nats');
    expect(g.workers).toBe(0);
    expect(e.workers).toBeGreaterThan(0);
    expect(e.url).toBe(g.url);
    expect(e.stream).toBe(g.stream);
    expect(g.url).toBe(`nats://${svcHost('failclosed-nats')}:${svcPort('failclosed-nats')}`);
  });
});

describe('systemd (deploy/systemd/executor.json, executor.postgres.json, gate.json)', () => {
  const unit = parseUnit(read('systemd/failclosed-executor.service').toString('utf8'));
  const configPath = /--config (\S+)$/.exec(unitValue(unit, 'Service', 'ExecStart')!)![1]!;
  const configDir = configPath.slice(0, configPath.lastIndexOf('/'));
  const exec = parseExecutorConfig(read('systemd/executor.json'), configDir);
  const gate = gateConfig(json('systemd/gate.json'));

  it('executor.json parses; its files are under the unit’s own directories', () => {
    expect(configPath).toBe('/etc/failclosed-executor/executor.json');
    for (const f of [exec.tls.ca, exec.tls.crl!, exec.tls.cert, exec.tls.key, exec.secrets!])
      expect(f.startsWith('/etc/failclosed-executor/'), f).toBe(true);
    expect(exec.nonces.startsWith(`/var/lib/${unitValue(unit, 'Service', 'StateDirectory')!}/`)).toBe(true);
    expect(exec.audience).toBe(gate.audience);
  });

  it('with executor.postgres.json merged in, the nonce store is the role failclosed-executor-role.service grants, not the gates', () => {
    const merged = { ...json('systemd/executor.json'), ...json('systemd/executor.postgres.json') };
    const pgExec = parseExecutorConfig(Buffer.from(JSON.stringify(merged)), configDir);
    const roleUnit = parseUnit(read('systemd/failclosed-executor-role.service').toString('utf8'));
    const argv = unitValue(roleUnit, 'Service', 'ExecStart')!.split(/\s+/);
    // The role step connects as the owner to the database the executor's URL names.
    const owner = new URL(argv[1]!);
    expectOwnRole(pgExec, `${owner.toString()}?schema=${psqlVars(argv).schema}`, argv);
    expect(nonceStore(pgExec).role).not.toBe(owner.username);
    expect(Object.keys(json('systemd/executor.postgres.json')).sort()).toEqual(['nonces', 'nonces_schema']);
  });

  it('the gate calls the executor’s loopback listener, the executor the gate’s internal port', () => {
    expect(exec.listen.host).toBe('127.0.0.1');
    expect(hostPort(gate.executor_url!)).toEqual({ host: '127.0.0.1', port: exec.listen.port });
    expect(hostPort(exec.gate_url)).toEqual({ host: '127.0.0.1', port: gate.internal_port });
    expect(gate.internal_host).toBeUndefined(); // loopback, the default
    for (const f of [gate.tls!.ca, gate.tls!.gate!.key])
      expect(f.startsWith('/etc/failclosed/'), f).toBe(true);
  });
});
