/**
 * The configuration files the deployment artefacts ship for the separated shape (FC-INV-6, SPEC
 * §1 separation of powers, L7 mutual TLS between roles): the keyless Gates (`failclosed serve
 * gate`), the Control Plane process (`failclosed up` with `internal_gates`) and the Execution
 * Layer (`failclosed serve executor`), parsed with the real parsers (`parseGateConfig`,
 * `parseExecutorConfig`, and the data directory's `parseConfig` over a fresh `failclosed.json`
 * with the shipped settings merged in), and checked against the artefacts that use them: the
 * names and ports dialled are those the services and listeners define, the certificate paths are
 * those mounted, the gates and the executors reach the Control Plane's schema each on a database
 * role of their own, the one the shipped role step grants, never the owner's (FC-INV-6 least
 * privilege), the executors share the Control Plane's nonce table (its recovery voids what an
 * executor has not consumed), and the queue settings agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/embedded/data-dir.js';
import { parseExecutorConfig } from '../../src/embedded/executor-node.js';
import { parseGateConfig } from '../../src/embedded/gate-node.js';
import type { EmbeddedConfig } from '../../src/embedded/data-dir.js';
import type { ExecutorNodeConfig } from '../../src/embedded/executor-node.js';
import type { GateNodeConfig } from '../../src/embedded/gate-node.js';
import { DEPLOY_DIR, at, parseUnit, readYaml, unitValue } from './support.js';
import type { YamlObject } from './support.js';

const read = (...p: string[]) => readFileSync(join(DEPLOY_DIR, ...p));
const json = (...p: string[]) => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

/** A fresh `failclosed.json` (as `init` writes it) with `fragments` merged in, parsed strictly. */
function cpConfig(...fragments: Record<string, unknown>[]): EmbeddedConfig {
  const merged = Object.assign({}, defaultConfig(), ...fragments) as Record<string, unknown>;
  return parseConfig(Buffer.from(JSON.stringify(merged)));
}

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

/** The schema a `FAILCLOSED_BACKEND` URL names, its database address, and its role. */
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
/** The keyless gate's shared state: its schema, database address and role (no password). */
function gateState(c: GateNodeConfig) {
  const u = new URL(c.state);
  expect(u.password).toBe('');
  return { schema: u.searchParams.get('schema'), where: `${u.host}${u.pathname}`, role: u.username };
}
/**
 * A store (the executors' nonces, a gate's state) is the owner's schema on the same database, on
 * the role the role step grants (`-v role=`, on `-v schema=`), which is not the owner's role.
 */
function expectOwnRole(
  store: { schema: string | null; where: string; role: string },
  ownerBackend: string,
  roleStep: readonly string[],
) {
  const owner = backend(ownerBackend);
  expect({ schema: store.schema, where: store.where }).toEqual({ schema: owner.schema, where: owner.where });
  const vars = psqlVars(roleStep);
  expect(store.role).toBe(vars.role);
  expect(store.schema).toBe(vars.schema);
  expect(store.role).not.toBe(owner.role);
}

describe('the parsers are the real ones and refuse what is wrong', () => {
  it('a Control Plane fragment without tls.gate or tls.control_plane, an executor config with an unknown field and a gate config naming a key are refused', () => {
    const fragment = json('compose/config/control-plane.json');
    const { tls: _tls, ...noTls } = fragment;
    expect(() => cpConfig(noTls)).toThrow(/executor_url needs tls\.gate/);
    // The internal listener is never served with the gate certificate in its place.
    const { control_plane: _cp, ...gateOnly } = fragment.tls as Record<string, unknown>;
    expect(() => cpConfig({ ...fragment, tls: gateOnly })).toThrow(
      /internal_port needs tls\.control_plane.*failclosed certs issue --role control-plane --host H/,
    );
    const exec = { ...json('compose/config/executor.json'), listen_all: true };
    expect(() => parseExecutorConfig(Buffer.from(JSON.stringify(exec)), '/x')).toThrow(
      /unknown field listen_all/,
    );
    const keyed = { ...json('compose/config/gate.json'), issuer_key: '/etc/failclosed/issuer.jwk' };
    expect(() => parseGateConfig(Buffer.from(JSON.stringify(keyed)), '/x')).toThrow(
      /unknown field issuer_key/,
    );
    const sqlite = { ...json('compose/config/gate.json'), state: '/var/lib/failclosed/state.db' };
    expect(() => parseGateConfig(Buffer.from(JSON.stringify(sqlite)), '/x')).toThrow(/postgres:\/\//);
  });
});

/** What every shipped triple of configurations must agree on, whatever the orchestrator. */
function expectSeparatedShape(cp: EmbeddedConfig, gate: GateNodeConfig, exec: ExecutorNodeConfig) {
  // The Control Plane admits keyless Gates on its internal listener and runs no execution
  // listener of its own; the gates and the executors dial that listener.
  expect(cp.internal_gates).toBe(true);
  expect(cp.tls?.gate).toBeDefined();
  expect(cp.tls?.control_plane).toBeDefined();
  expect(cp.tls?.executor).toBeUndefined();
  expect(new URL(gate.control_plane_url).port).toBe(String(cp.internal_port));
  expect(hostPort(exec.gate_url)).toEqual(hostPort(gate.control_plane_url));
  // The gates and the Control Plane (voids) call the same executors.
  expect(gate.executor_url).toBe(new URL(cp.executor_url!).origin);
  expect(hostPort(gate.executor_url).port).toBe(exec.listen.port);
  expect(exec.audience).toBe(cp.audience);
  // Each has its own certificate (FC-INV-6). The Control Plane's internal listener serves its
  // `control-plane` one (the role its peers accept there); it calls the executors with its `gate`
  // one. The keyless gate's is a `gate` certificate of its own that names no host
  // (docs/deployment.md), never the Control Plane's.
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  expect(base(gate.tls.cert)).toBe('gate-client.pem');
  expect(base(gate.tls.key)).toBe('gate-client.key');
  expect(base(cp.tls!.gate!.cert)).toBe('gate.pem');
  expect(base(cp.tls!.gate!.key)).toBe('gate.key');
  expect(base(cp.tls!.control_plane!.cert)).toBe('control-plane.pem');
  expect(base(cp.tls!.control_plane!.key)).toBe('control-plane.key');
  expect(exec.tls.cert).toMatch(/executor\.pem$/);
}

describe('compose (deploy/compose/config)', () => {
  const [compose] = readYaml(join(DEPLOY_DIR, 'compose/compose.yaml')) as [YamlObject];
  const services = compose.services as YamlObject;
  const mounts = (name: string) =>
    (at(services, name, 'volumes') as YamlObject[]).map((v) => v.target as string);
  const exec = parseExecutorConfig(read('compose/config/executor.json'), '/etc/failclosed');
  const cp = cpConfig(json('compose/config/control-plane.json'));
  const gate = parseGateConfig(read('compose/config/gate.json'), '/etc/failclosed');
  const ownerBackend = at(services, 'control-plane', 'environment', 'FAILCLOSED_BACKEND') as string;

  it('the three configurations parse and agree: gates and executors dial the Control Plane internal listener, gates and Control Plane the executors', () => {
    expectSeparatedShape(cp, gate, exec);
    expect(hostPort(gate.control_plane_url).host).toBe('control-plane');
    expect(hostPort(gate.executor_url).host).toBe('executor');
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['control-plane', 'executor', 'gate-a', 'gate-b']),
    );
    expect(exec.listen).toEqual({ host: '0.0.0.0', port: 7443 });
    expect(cp.internal_host).toBe('0.0.0.0');
  });

  it('the gates listen on the port published and probed, and are started with the configuration mounted', () => {
    expect(gate.listen).toEqual({ host: '0.0.0.0', port: 7070 });
    for (const g of ['gate-a', 'gate-b']) {
      expect(at(services, g, 'ports', 0) as string).toMatch(new RegExp(`:${gate.listen.port}$`));
      expect((at(services, g, 'healthcheck', 'test') as string[]).join(' ')).toContain(
        `:${gate.listen.port}/readyz`,
      );
      expect(at(services, g, 'command')).toEqual(['serve', 'gate', '--config', '/etc/failclosed/gate.json']);
      expect(mounts(g)).toContain('/etc/failclosed/gate.json');
    }
  });

  it('the certificate step names the hosts dialled over mutual TLS', () => {
    const command = at(services, 'certs', 'command') as string[];
    const hosts = command.flatMap((w, i) => (command[i - 1] === '--host' ? [w] : []));
    expect(hosts).toContain(hostPort(gate.executor_url).host);
    expect(hosts).toContain(hostPort(gate.control_plane_url).host);
    expect(hosts).toContain(hostPort(exec.gate_url).host);
  });

  it('each names exactly the certificate files mounted into it', () => {
    const { ca, crl, cert, key } = exec.tls;
    for (const f of [ca, crl!, cert, key]) expect(mounts('executor'), f).toContain(f);
    const t = cp.tls!;
    for (const f of [t.ca, t.crl!, t.gate!.cert, t.gate!.key, t.control_plane!.cert, t.control_plane!.key])
      expect(mounts('control-plane'), f).toContain(f);
    for (const g of ['gate-a', 'gate-b'])
      for (const f of [gate.tls.ca, gate.tls.crl!, gate.tls.cert, gate.tls.key])
        expect(mounts(g), f).toContain(f);
    expect(mounts('executor')).toContain('/etc/failclosed/executor.json');
    expect(at(services, 'executor', 'command')).toContain('/etc/failclosed/executor.json');
  });

  it('the executors nonce store is the Control Plane schema on the same database, on the role executor-role grants, without a password in the file', () => {
    expectOwnRole(nonceStore(exec), ownerBackend, at(services, 'executor-role', 'command') as string[]);
  });

  it('the gates state is the Control Plane schema on the same database, on the role gate-role grants (not the owner), without a password in the file', () => {
    expectOwnRole(gateState(gate), ownerBackend, at(services, 'gate-role', 'command') as string[]);
  });

  it('the queue fragments parse, on both sides, and agree: the Control Plane publishes, the executors work', () => {
    const cpJobs = cpConfig(
      json('compose/config/control-plane.json'),
      json('compose/config/control-plane.jobs.json'),
    ).jobs!;
    const merged = { ...json('compose/config/executor.json'), ...json('compose/config/executor.jobs.json') };
    const execJobs = parseExecutorConfig(Buffer.from(JSON.stringify(merged)), '/etc/failclosed').jobs!;
    expect(cpJobs.queue).toBe('nats');
    expect(execJobs.queue).toBe('nats');
    if (cpJobs.queue !== 'nats') throw new Error('nats');
    expect(cpJobs.workers).toBe(0);
    expect(execJobs.workers).toBeGreaterThan(0);
    expect(execJobs.url).toBe(cpJobs.url);
    expect(execJobs.stream).toBe(cpJobs.stream);
    expect(new URL(cpJobs.url.replace(/^nats:/, 'http:')).hostname).toBe('nats');
    expect(Object.keys(services)).toContain('nats');
  });
});

describe('kubernetes (the gate and executor ConfigMaps, fragments/control-plane.json)', () => {
  const docs = [
    '20-control-plane.yaml',
    '25-executor-role.yaml',
    '26-gate-role.yaml',
    '28-gate.yaml',
    '30-executor.yaml',
    '35-nats.yaml',
    '10-postgresql.yaml',
  ].flatMap((f) => readYaml(join(DEPLOY_DIR, 'kubernetes', f))) as YamlObject[];
  const find = (kind: string, name: string) =>
    docs.find((d) => d.kind === kind && at(d, 'metadata', 'name') === name)!;
  const svcHost = (name: string) =>
    `${name}.${at(find('Service', name), 'metadata', 'namespace') as string}.svc`;
  const svcPort = (name: string) => at(find('Service', name), 'spec', 'ports', 0, 'port') as number;
  const container = (name: string) =>
    at(find('Deployment', name), 'spec', 'template', 'spec', 'containers', 0) as YamlObject;
  const mountOf = (c: YamlObject, volume: string) =>
    (c.volumeMounts as YamlObject[]).find((m) => m.name === volume)!.mountPath as string;
  const executorContainer = container('failclosed-executor');
  const gateContainer = container('failclosed-gate');
  const cpContainer = container('failclosed-control-plane');
  const execDir = mountOf(executorContainer, 'config');
  const gateDir = mountOf(gateContainer, 'config');
  const exec = parseExecutorConfig(
    Buffer.from(at(find('ConfigMap', 'failclosed-executor'), 'data', 'executor.json') as string),
    execDir,
  );
  const gate = parseGateConfig(
    Buffer.from(at(find('ConfigMap', 'failclosed-gate'), 'data', 'gate.json') as string),
    gateDir,
  );
  const cp = cpConfig(json('kubernetes/fragments/control-plane.json'));
  const ownerBackend = (cpContainer.env as YamlObject[]).find((e) => e.name === 'FAILCLOSED_BACKEND')!
    .value as string;

  it('the ConfigMaps parse, and the containers are started with them', () => {
    expect(executorContainer.args).toEqual(['serve', 'executor', '--config', `${execDir}/executor.json`]);
    expect(gateContainer.args).toEqual(['serve', 'gate', '--config', `${gateDir}/gate.json`]);
    expectSeparatedShape(cp, gate, exec);
  });

  it('gates and executors dial the Control Plane internal Service; gates and Control Plane the executor Service; ports are the containers', () => {
    const execPort = at(executorContainer, 'ports', 0, 'containerPort') as number;
    expect(exec.listen).toEqual({ host: '0.0.0.0', port: execPort });
    const executorSvc = { host: svcHost('failclosed-executor'), port: svcPort('failclosed-executor') };
    expect(hostPort(gate.executor_url)).toEqual(executorSvc);
    expect(hostPort(cp.executor_url!)).toEqual(executorSvc);
    const internalSvc = {
      host: svcHost('failclosed-control-plane-internal'),
      port: svcPort('failclosed-control-plane-internal'),
    };
    expect(hostPort(exec.gate_url)).toEqual(internalSvc);
    expect(hostPort(gate.control_plane_url)).toEqual(internalSvc);
    const internalPort = (cpContainer.ports as YamlObject[]).find((p) => p.name === 'cp-internal')!;
    expect(internalPort.containerPort).toBe(cp.internal_port);
    expect(cp.internal_host).toBe('0.0.0.0');
    expect(gate.listen.port).toBe(at(gateContainer, 'ports', 0, 'containerPort'));
    expect(gate.listen.port).toBe(svcPort('failclosed-gate'));
  });

  it('the documented Secret commands give the gates their own host-less certificate, never the Control Plane’s', () => {
    // docs/deployment.md "Deployment artefacts": the `certs init` and `create secret` lines.
    const text = readFileSync(join(DEPLOY_DIR, '../docs/deployment.md'), 'utf8').replace(/\\\n\s*/g, ' ');
    const secretFiles = (name: string) => {
      const line = text.split('\n').find((l) => l.includes(`create secret generic ${name} `));
      expect(line, name).toBeDefined();
      return [...line!.matchAll(/--from-file=certs\/(\S+)/g)].map((m) => m[1]!).sort();
    };
    const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
    expect(secretFiles('failclosed-gate-tls')).toEqual(
      ['ca.pem', 'crl.pem', base(gate.tls.cert), base(gate.tls.key)].sort(),
    );
    const t = cp.tls!;
    expect(secretFiles('failclosed-control-plane-tls')).toEqual(
      [
        'ca.pem',
        'crl.pem',
        base(t.gate!.cert),
        base(t.gate!.key),
        base(t.control_plane!.cert),
        base(t.control_plane!.key),
      ].sort(),
    );
    // The Control Plane's keys are in its Secret only.
    for (const name of ['failclosed-gate-tls', 'failclosed-executor-tls'])
      expect(secretFiles(name), name).not.toEqual(
        expect.arrayContaining([expect.stringMatching(/^(control-plane|gate)\.key$/)]),
      );
    const init = text
      .split('\n')
      .find((l) => l.startsWith('failclosed certs init --dir certs') && l.includes('.svc'));
    expect(init).toContain(`--keyless-gate ${base(gate.tls.cert).replace(/\.pem$/, '')}`);
  });

  it('certificate paths lie in each side’s own TLS Secret volume', () => {
    const execTls = mountOf(executorContainer, 'tls');
    for (const f of [exec.tls.ca, exec.tls.crl!, exec.tls.cert, exec.tls.key])
      expect(f.startsWith(`${execTls}/`), f).toBe(true);
    const cpTls = mountOf(cpContainer, 'tls');
    const t = cp.tls!;
    for (const f of [t.ca, t.crl!, t.gate!.cert, t.gate!.key, t.control_plane!.cert, t.control_plane!.key])
      expect(f.startsWith(`${cpTls}/`), f).toBe(true);
    const gateTls = mountOf(gateContainer, 'tls');
    for (const f of [gate.tls.ca, gate.tls.crl!, gate.tls.cert, gate.tls.key])
      expect(f.startsWith(`${gateTls}/`), f).toBe(true);
  });

  it('the executors nonce store is the Control Plane schema on the same database, on the role the executor Job grants', () => {
    const job = at(find('Job', 'failclosed-executor-role'), 'spec', 'template', 'spec', 'containers', 0);
    expectOwnRole(nonceStore(exec), ownerBackend, at(job, 'command') as string[]);
    expect(new URL(exec.nonces).host).toBe(`${svcHost('postgresql')}:${svcPort('postgresql')}`);
  });

  it('the gates state is the Control Plane schema on the same database, on the role the gate Job grants, not the owner', () => {
    const job = at(find('Job', 'failclosed-gate-role'), 'spec', 'template', 'spec', 'containers', 0);
    expectOwnRole(gateState(gate), ownerBackend, at(job, 'command') as string[]);
    expect(new URL(gate.state).host).toBe(`${svcHost('postgresql')}:${svcPort('postgresql')}`);
  });

  it('the queue: the Control Plane publishes, the executors work, on the NATS Service', () => {
    const g = cp.jobs!;
    const e = exec.jobs!;
    if (g.queue !== 'nats') throw new Error('nats');
    expect(g.workers).toBe(0);
    expect(e.workers).toBeGreaterThan(0);
    expect(e.url).toBe(g.url);
    expect(e.stream).toBe(g.stream);
    expect(g.url).toBe(`nats://${svcHost('failclosed-nats')}:${svcPort('failclosed-nats')}`);
  });
});

describe('systemd (deploy/systemd/executor.json, executor.postgres.json, control-plane.json, gate.json)', () => {
  const unit = parseUnit(read('systemd/failclosed-executor.service').toString('utf8'));
  const configPath = /--config (\S+)$/.exec(unitValue(unit, 'Service', 'ExecStart')!)![1]!;
  const configDir = configPath.slice(0, configPath.lastIndexOf('/'));
  const exec = parseExecutorConfig(read('systemd/executor.json'), configDir);
  const cp = cpConfig(json('systemd/control-plane.json'));
  const gateUnit = parseUnit(read('systemd/failclosed-gate.service').toString('utf8'));
  const gatePath = /--config (\S+)$/.exec(unitValue(gateUnit, 'Service', 'ExecStart')!)![1]!;
  const gateDir = gatePath.slice(0, gatePath.lastIndexOf('/'));
  const gate = parseGateConfig(read('systemd/gate.json'), gateDir);
  const roleArgv = (file: string) =>
    unitValue(parseUnit(read('systemd', file).toString('utf8')), 'Service', 'ExecStart')!.split(/\s+/);

  it('executor.json parses; its files are under the unit’s own directories', () => {
    expect(configPath).toBe('/etc/failclosed-executor/executor.json');
    for (const f of [exec.tls.ca, exec.tls.crl!, exec.tls.cert, exec.tls.key, exec.secrets!])
      expect(f.startsWith('/etc/failclosed-executor/'), f).toBe(true);
    expect(exec.nonces.startsWith(`/var/lib/${unitValue(unit, 'Service', 'StateDirectory')!}/`)).toBe(true);
    expect(exec.audience).toBe(cp.audience);
  });

  it('gate.json parses; its files are under the gate unit’s own directory, which the other units cannot see', () => {
    expect(gatePath).toBe('/etc/failclosed-gate/gate.json');
    for (const f of [gate.tls.ca, gate.tls.crl!, gate.tls.cert, gate.tls.key])
      expect(f.startsWith('/etc/failclosed-gate/'), f).toBe(true);
    for (const f of ['failclosed-postgres.service', 'failclosed-executor.service'])
      expect(
        unitValue(parseUnit(read('systemd', f).toString('utf8')), 'Service', 'InaccessiblePaths'),
        f,
      ).toContain('-/etc/failclosed-gate');
  });

  it('with executor.postgres.json merged in, the three agree; the executors and the gate each on the role its role unit grants, not the owner', () => {
    const merged = { ...json('systemd/executor.json'), ...json('systemd/executor.postgres.json') };
    const pgExec = parseExecutorConfig(Buffer.from(JSON.stringify(merged)), configDir);
    expectSeparatedShape(cp, gate, pgExec);
    const argv = roleArgv('failclosed-executor-role.service');
    // The role step connects as the owner to the database the executor's URL names.
    const owner = new URL(argv[1]!);
    const ownerBackend = `${owner.toString()}?schema=${psqlVars(argv).schema}`;
    expectOwnRole(nonceStore(pgExec), ownerBackend, argv);
    expect(nonceStore(pgExec).role).not.toBe(owner.username);
    expect(Object.keys(json('systemd/executor.postgres.json')).sort()).toEqual(['nonces', 'nonces_schema']);
    const gateArgv = roleArgv('failclosed-gate-role.service');
    expect(gateArgv[1]).toBe(argv[1]);
    expectOwnRole(gateState(gate), ownerBackend, gateArgv);
  });

  it('the gate and the Control Plane call the executor’s loopback listener, the gate and the executor the Control Plane internal port', () => {
    expect(exec.listen.host).toBe('127.0.0.1');
    expect(hostPort(cp.executor_url!)).toEqual({ host: '127.0.0.1', port: exec.listen.port });
    expect(hostPort(exec.gate_url)).toEqual({ host: '127.0.0.1', port: cp.internal_port });
    expect(hostPort(gate.control_plane_url)).toEqual({ host: '127.0.0.1', port: cp.internal_port });
    expect(cp.internal_host).toBeUndefined(); // loopback, the default
    // The gate's client port is not the Control Plane's (both on one host).
    expect(gate.listen.port).not.toBe(cp.port);
    for (const f of [cp.tls!.ca, cp.tls!.gate!.key]) expect(f.startsWith('/etc/failclosed/'), f).toBe(true);
  });
});
