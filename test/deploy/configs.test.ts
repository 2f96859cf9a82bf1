/**
 * The configuration files the deployment artefacts ship for the separated shape (FC-INV-6, SPEC
 * §1 separation of powers, L7 mutual TLS between roles): the keyless Gates (`failclosed serve
 * gate`), the Control Plane process (`failclosed serve control-plane`), the ledger process
 * (`failclosed serve ledger`, the checkpoint key) and the Execution Layer (`failclosed serve
 * executor`), parsed with the real parsers (`parseGateConfig`, `parseLedgerConfig`,
 * `parseExecutorConfig`, and the data directory's `parseConfig` over a fresh `failclosed.json`
 * with the shipped settings merged in), and checked against the artefacts that use them: the
 * names and ports dialled are those the services and listeners define, the certificate paths are
 * those mounted, the gates, the executors and the ledger process reach the Control Plane's schema
 * each on a database role of their own, the one the shipped role step grants, never the owner's
 * (FC-INV-6 least privilege), the executors share the Control Plane's nonce table (its recovery
 * voids what an executor has not consumed), the Control Plane's `checkpoints` name the ledger
 * process's listener and, once the operator has put in the values `failclosed ledger move-key`
 * printed, the key the ledger process signs with, and the queue settings agree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/embedded/data-dir.js';
import { parseExecutorConfig } from '../../src/embedded/executor-node.js';
import { parseGateConfig } from '../../src/embedded/gate-node.js';
import { parseLedgerConfig } from '../../src/embedded/ledger-node.js';
import { parseListen } from '../../src/embedded/telemetry/config.js';
import type { EmbeddedConfig } from '../../src/embedded/data-dir.js';
import type { ExecutorNodeConfig } from '../../src/embedded/executor-node.js';
import type { GateNodeConfig } from '../../src/embedded/gate-node.js';
import type { LedgerNodeConfig } from '../../src/embedded/ledger-node.js';
import { vkeyFor } from '../../src/kernel/index.js';
import { generateSigningKey, noteSignerFor } from '../../src/kernel/signing/index.js';
import { DEPLOY_DIR, at, parseUnit, readYaml, unitValue } from './support.js';
import type { YamlObject } from './support.js';

const read = (...p: string[]) => readFileSync(join(DEPLOY_DIR, ...p));
const json = (...p: string[]) => JSON.parse(read(...p).toString('utf8')) as Record<string, unknown>;

/**
 * The deployment-specific values the shipped files leave to the operator, as `failclosed ledger
 * move-key` prints them: the data directory's origin and the vkey of its checkpoint key. The files
 * hold these placeholders instead; neither is a valid key name or vkey, so a process given one
 * unreplaced refuses to start.
 */
const ORIGIN_PLACEHOLDER = '<the origin failclosed ledger move-key printed>';
const VKEY_PLACEHOLDER = '<the vkey failclosed ledger move-key printed>';
const FIRST_ENTRY_PLACEHOLDER = '<the first_entry_hash failclosed ledger move-key printed>';
const FIRST_ENTRY = 'c0'.repeat(32);
const CHECKPOINT_KEY = generateSigningKey();
const ORIGIN = defaultConfig().origin;
const VKEY = vkeyFor(ORIGIN, CHECKPOINT_KEY.publicKey);

/** A fresh `failclosed.json` (as `init` writes it) with `fragments` merged in, parsed strictly. */
function cpConfig(...fragments: Record<string, unknown>[]): EmbeddedConfig {
  const merged = Object.assign({}, defaultConfig(), { origin: ORIGIN }, ...fragments) as Record<
    string,
    unknown
  >;
  return parseConfig(Buffer.from(JSON.stringify(merged)));
}

/** A shipped Control Plane fragment, its `checkpoints.vkey` placeholder replaced as the operator does. */
function pinned(fragment: Record<string, unknown>): Record<string, unknown> {
  const checkpoints = fragment.checkpoints as Record<string, unknown> | undefined;
  if (checkpoints === undefined) return fragment;
  expect(checkpoints.vkey).toBe(VKEY_PLACEHOLDER);
  return { ...fragment, checkpoints: { ...checkpoints, vkey: VKEY } };
}

/** A shipped ledger configuration, its `origin` and `first_entry_hash` placeholders replaced as the operator does, parsed strictly. */
function ledgerConfig(bytes: Uint8Array, base: string): LedgerNodeConfig {
  const shipped = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  expect(shipped.origin).toBe(ORIGIN_PLACEHOLDER);
  expect(shipped.first_entry_hash).toBe(FIRST_ENTRY_PLACEHOLDER);
  // Left in place, the placeholder hash is refused.
  expect(() => parseLedgerConfig(Buffer.from(JSON.stringify({ ...shipped, origin: ORIGIN })), base)).toThrow(
    /first_entry_hash must be/,
  );
  return parseLedgerConfig(
    Buffer.from(JSON.stringify({ ...shipped, origin: ORIGIN, first_entry_hash: FIRST_ENTRY })),
    base,
  );
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
/** A keyless gate's or the ledger process's shared state: its schema, database address and role (no password). */
function gateState(c: Pick<GateNodeConfig, 'state'>) {
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
    const fragment = pinned(json('compose/config/control-plane.json'));
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
    const ledger = { ...json('compose/config/ledger.json'), origin: ORIGIN };
    expect(() =>
      parseLedgerConfig(
        Buffer.from(JSON.stringify({ ...ledger, state: '/var/lib/failclosed/ledger.db' })),
        '/x',
      ),
    ).toThrow(/postgres:\/\//);
    expect(() =>
      parseLedgerConfig(
        Buffer.from(JSON.stringify({ ...ledger, issuer_key: '/etc/failclosed/issuer.jwk' })),
        '/x',
      ),
    ).toThrow(/unknown field issuer_key/);
    // The Control Plane's checkpoints need the certificate it presents to the ledger process.
    const { internal_port: _p, internal_host: _h, internal_gates: _g, ...noInternal } = fragment;
    expect(() => cpConfig({ ...noInternal, tls: gateOnly })).toThrow(/checkpoints needs tls\.control_plane/);
  });

  it('every shipped ledger configuration serves its metrics on a listener of its own, kept private: loopback under systemd, a port compose publishes nowhere, one only the monitoring namespace reaches in Kubernetes', () => {
    const metricsOf = (bytes: Uint8Array) => parseListen(ledgerConfig(bytes, '/').metrics?.listen ?? '');
    const systemd = metricsOf(read('systemd/ledger.json'));
    expect(systemd?.host).toBe('127.0.0.1');
    const compose = metricsOf(read('compose/config/ledger.json'));
    expect(compose?.port).toBeGreaterThan(0);
    const [composeFile] = readYaml(join(DEPLOY_DIR, 'compose/compose.yaml')) as [YamlObject];
    expect(at(composeFile, 'services', 'ledger', 'ports')).toBeUndefined();
    expect(at(composeFile, 'services', 'ledger', 'expose')).toBeUndefined();
    const k8s = readYaml(join(DEPLOY_DIR, 'kubernetes/29-ledger.yaml')) as YamlObject[];
    const configMap = k8s.find((d) => d.kind === 'ConfigMap')!;
    const kube = metricsOf(Buffer.from(at(configMap, 'data', 'ledger.json') as string));
    const policies = readYaml(join(DEPLOY_DIR, 'kubernetes/40-network-policies.yaml')) as YamlObject[];
    const metricsPolicy = policies.find((p) => at(p, 'metadata', 'name') === 'ledger-ingress-metrics')!;
    expect(at(metricsPolicy, 'spec', 'ingress', 0, 'ports')).toEqual([{ protocol: 'TCP', port: kube?.port }]);
    // The listeners never share the checkpoint listener's port.
    for (const [f, m] of [
      ['systemd/ledger.json', systemd],
      ['compose/config/ledger.json', compose],
    ] as const)
      expect(m?.port, f).not.toBe((json(f).listen as { port: number }).port);
  });

  it('the shipped placeholders are refused as they are: the Control Plane does not open on them, the ledger process does not sign under them', () => {
    for (const f of ['compose/config/control-plane.json', 'kubernetes/fragments/control-plane.json']) {
      expect(at(json(f) as YamlObject, 'checkpoints', 'vkey'), f).toBe(VKEY_PLACEHOLDER);
      expect(() => cpConfig(json(f)), f).toThrow(/checkpoints\.vkey is not a valid/);
    }
    expect(at(json('systemd/control-plane.ledger.json') as YamlObject, 'checkpoints', 'vkey')).toBe(
      VKEY_PLACEHOLDER,
    );
    // `serve ledger` signs under its origin (noteSignerFor, before it connects to anything).
    expect(json('compose/config/ledger.json').origin).toBe(ORIGIN_PLACEHOLDER);
    expect(json('systemd/ledger.json').origin).toBe(ORIGIN_PLACEHOLDER);
    expect(() => noteSignerFor(ORIGIN_PLACEHOLDER, CHECKPOINT_KEY.privateKey)).toThrow(
      /invalid note key name/,
    );
    // The values move-key prints are accepted, and the vkey must be named after the origin.
    expect(noteSignerFor(ORIGIN, CHECKPOINT_KEY.privateKey).name).toBe(ORIGIN);
    const other = vkeyFor('failclosed.local/another', CHECKPOINT_KEY.publicKey);
    const fragment = json('compose/config/control-plane.json');
    expect(() =>
      cpConfig({ ...fragment, checkpoints: { ...(fragment.checkpoints as object), vkey: other } }),
    ).toThrow(/named after this ledger's origin/);
  });
});

/**
 * The Control Plane's `checkpoints` and the ledger process's configuration agree: the URL is the
 * ledger's listener (`host` the name its certificate carries), the vkey is the key named after the
 * origin the ledger process signs under, and each side presents the certificate of its role.
 */
function expectLedgerLink(cp: EmbeddedConfig, ledger: LedgerNodeConfig) {
  const checkpoints = cp.checkpoints!;
  expect(checkpoints).toBeDefined();
  expect(new URL(checkpoints.url).protocol).toBe('https:');
  expect(hostPort(checkpoints.url).port).toBe(ledger.listen.port);
  expect(checkpoints.standby_urls).toBeUndefined();
  expect(ledger.origin).toBe(cp.origin);
  expect(checkpoints.vkey).toBe(vkeyFor(ledger.origin, CHECKPOINT_KEY.publicKey));
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  expect(base(ledger.tls.cert)).toBe('ledger.pem');
  expect(base(ledger.tls.key)).toBe('ledger.key');
  expect(base(ledger.key)).toBe('ledger.jwk');
  // The Control Plane presents its `control-plane` certificate (the only role the ledger admits).
  expect(base(cp.tls!.control_plane!.cert)).toBe('control-plane.pem');
}

/**
 * The Control Plane process is started as `failclosed serve control-plane` over its data directory,
 * never as the embedded `up`, and its configuration is one that command starts on: keyless Gates
 * on its internal listener (`internal_gates`, `internal_port`, `tls.control_plane`), the Execution
 * Layer in a process of its own (`executor_url`, no `tls.executor`), the checkpoint key in the
 * ledger process (`checkpoints`), and a `postgres://` backend.
 */
function expectControlPlaneProcess(argv: readonly string[], cp: EmbeddedConfig, ownerBackend: string) {
  expect(argv.slice(0, 4)).toEqual(['serve', 'control-plane', '--data', '/var/lib/failclosed']);
  expect(cp.internal_gates).toBe(true);
  expect(cp.internal_port).toBeDefined();
  expect(cp.tls?.control_plane).toBeDefined();
  expect(cp.executor_url).toBeDefined();
  expect(cp.tls?.executor).toBeUndefined();
  expect(cp.checkpoints).toBeDefined();
  expect(new URL(ownerBackend).protocol).toBe('postgres:');
}

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
  const cp = cpConfig(pinned(json('compose/config/control-plane.json')));
  const gate = parseGateConfig(read('compose/config/gate.json'), '/etc/failclosed');
  const ledger = ledgerConfig(read('compose/config/ledger.json'), '/etc/failclosed');
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

  it('the Control Plane is started as serve control-plane, on a configuration and a backend it starts on', () => {
    expectControlPlaneProcess(at(services, 'control-plane', 'command') as string[], cp, ownerBackend);
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
    expect(hosts).toContain(hostPort(cp.checkpoints!.url).host);
  });

  it('the Control Plane’s checkpoints name the ledger service’s listener, and the two agree on the origin and the key', () => {
    expectLedgerLink(cp, ledger);
    expect(hostPort(cp.checkpoints!.url).host).toBe('ledger');
    expect(ledger.listen).toEqual({ host: '0.0.0.0', port: 7460 });
    expect(at(services, 'ledger', 'command')).toEqual([
      'serve',
      'ledger',
      '--config',
      '/etc/failclosed/ledger.json',
    ]);
    expect(mounts('ledger')).toContain('/etc/failclosed/ledger.json');
  });

  it('the ledger process names exactly the certificate and key files mounted into it', () => {
    const { ca, crl, cert, key } = ledger.tls;
    for (const f of [ca, crl!, cert, key, ledger.key]) expect(mounts('ledger'), f).toContain(f);
    // The checkpoint key it names is the one move-key wrote into ./ledger, mounted into it alone.
    const source = (at(services, 'ledger', 'volumes') as YamlObject[]).find((v) => v.target === ledger.key)!
      .source as string;
    expect(source).toBe('./ledger/ledger.jwk');
    for (const name of Object.keys(services))
      if (name !== 'ledger')
        expect(
          ((at(services, name, 'volumes') ?? []) as YamlObject[]).map((v) => v.source),
          name,
        ).not.toContain(source);
  });

  it('the ledger process’s state is the Control Plane schema on the same database, on the role ledger-role grants (not the owner), without a password in the file', () => {
    expectOwnRole(gateState(ledger), ownerBackend, at(services, 'ledger-role', 'command') as string[]);
  });

  it('each names exactly the certificate files mounted into it', () => {
    const { ca, crl, cert, key } = exec.tls;
    for (const f of [ca, crl!, cert, key]) expect(mounts('executor'), f).toContain(f);
    const t = cp.tls!;
    for (const f of [t.ca, t.crl!, t.gate!.cert, t.gate!.key, t.control_plane!.cert, t.control_plane!.key])
      expect(mounts('control-plane'), f).toContain(f);
    expect(mounts('control-plane').filter((m) => /\.jwk$/.test(m))).toEqual([]);
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
      pinned(json('compose/config/control-plane.json')),
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

describe('kubernetes (the gate, ledger and executor ConfigMaps, fragments/control-plane.json)', () => {
  const docs = [
    '20-control-plane.yaml',
    '25-executor-role.yaml',
    '26-gate-role.yaml',
    '27-ledger-role.yaml',
    '28-gate.yaml',
    '29-ledger.yaml',
    '30-executor.yaml',
    '35-nats.yaml',
    '10-postgresql.yaml',
  ].flatMap((f) => readYaml(join(DEPLOY_DIR, 'kubernetes', f))) as YamlObject[];
  const find = (kind: string, name: string) =>
    docs.find((d) => d.kind === kind && at(d, 'metadata', 'name') === name)!;
  const svcHost = (name: string) =>
    `${name}.${at(find('Service', name), 'metadata', 'namespace') as string}.svc`;
  const svcPort = (name: string) => at(find('Service', name), 'spec', 'ports', 0, 'port') as number;
  /** The ledger process is a StatefulSet (a claim of its own per replica), the rest Deployments. */
  const workload = (name: string) => find(name === 'failclosed-ledger' ? 'StatefulSet' : 'Deployment', name);
  const container = (name: string) =>
    at(workload(name), 'spec', 'template', 'spec', 'containers', 0) as YamlObject;
  const mountOf = (c: YamlObject, volume: string) =>
    (c.volumeMounts as YamlObject[]).find((m) => m.name === volume)!.mountPath as string;
  const executorContainer = container('failclosed-executor');
  const gateContainer = container('failclosed-gate');
  const cpContainer = container('failclosed-control-plane');
  const ledgerContainer = container('failclosed-ledger');
  const execDir = mountOf(executorContainer, 'config');
  const gateDir = mountOf(gateContainer, 'config');
  const ledgerDir = mountOf(ledgerContainer, 'config');
  const exec = parseExecutorConfig(
    Buffer.from(at(find('ConfigMap', 'failclosed-executor'), 'data', 'executor.json') as string),
    execDir,
  );
  const gate = parseGateConfig(
    Buffer.from(at(find('ConfigMap', 'failclosed-gate'), 'data', 'gate.json') as string),
    gateDir,
  );
  const ledger = ledgerConfig(
    Buffer.from(at(find('ConfigMap', 'failclosed-ledger'), 'data', 'ledger.json') as string),
    ledgerDir,
  );
  const cp = cpConfig(pinned(json('kubernetes/fragments/control-plane.json')));
  const ownerBackend = (cpContainer.env as YamlObject[]).find((e) => e.name === 'FAILCLOSED_BACKEND')!
    .value as string;

  it('the ConfigMaps parse, and the containers are started with them', () => {
    expect(executorContainer.args).toEqual(['serve', 'executor', '--config', `${execDir}/executor.json`]);
    expect(gateContainer.args).toEqual(['serve', 'gate', '--config', `${gateDir}/gate.json`]);
    expect(ledgerContainer.args).toEqual(['serve', 'ledger', '--config', `${ledgerDir}/ledger.json`]);
    expectSeparatedShape(cp, gate, exec);
    expectControlPlaneProcess(cpContainer.args as string[], cp, ownerBackend);
  });

  it('the Control Plane’s checkpoints dial the ledger Service, whose port is the ledger container’s listener, and the two agree on the origin and the key', () => {
    expectLedgerLink(cp, ledger);
    expect(hostPort(cp.checkpoints!.url)).toEqual({
      host: svcHost('failclosed-ledger'),
      port: svcPort('failclosed-ledger'),
    });
    expect(ledger.listen).toEqual({
      host: '0.0.0.0',
      port: at(ledgerContainer, 'ports', 0, 'containerPort') as number,
    });
  });

  it('the ledger process’s key and certificate paths lie in its own Secret volumes', () => {
    const tls = mountOf(ledgerContainer, 'tls');
    for (const f of [ledger.tls.ca, ledger.tls.crl!, ledger.tls.cert, ledger.tls.key])
      expect(f.startsWith(`${tls}/`), f).toBe(true);
    expect(ledger.key.startsWith(`${mountOf(ledgerContainer, 'key')}/`)).toBe(true);
    const secretOf = (volume: string) =>
      at(
        (at(workload('failclosed-ledger'), 'spec', 'template', 'spec', 'volumes') as YamlObject[]).find(
          (v) => v.name === volume,
        ),
        'secret',
        'secretName',
      );
    expect(secretOf('key')).toBe('failclosed-ledger-key');
    expect(secretOf('tls')).toBe('failclosed-ledger-tls');
    // Its binding file on the replica's own claim.
    expect(ledger.binding).toBe(`${mountOf(ledgerContainer, 'state')}/ledger-binding.json`);
  });

  it('the ledger process’s state is the Control Plane schema on the same database, on the role the ledger Job grants, not the owner', () => {
    const job = at(find('Job', 'failclosed-ledger-role'), 'spec', 'template', 'spec', 'containers', 0);
    expectOwnRole(gateState(ledger), ownerBackend, at(job, 'command') as string[]);
    expect(new URL(ledger.state).host).toBe(`${svcHost('postgresql')}:${svcPort('postgresql')}`);
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

  it('the documented Secret commands give the gates their own host-less certificate, never the Control Plane’s, and the checkpoint key and the ledger certificate to the ledger process alone', () => {
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
    // The ledger certificate names the Service the Control Plane dials; only its Secret holds it.
    expect(init).toContain(`--host ${hostPort(cp.checkpoints!.url).host}`);
    expect(secretFiles('failclosed-ledger-tls')).toEqual(
      ['ca.pem', 'crl.pem', base(ledger.tls.cert), base(ledger.tls.key)].sort(),
    );
    for (const name of ['failclosed-gate-tls', 'failclosed-executor-tls', 'failclosed-control-plane-tls'])
      expect(secretFiles(name), name).not.toContain(base(ledger.tls.key));
    // The checkpoint key: moved out of the seed data directory, into the ledger's Secret only.
    const secretLine = (name: string) =>
      text.split('\n').find((l) => l.includes(`create secret generic ${name} `))!;
    expect(secretLine('failclosed-data')).not.toMatch(/ledger\.jwk/);
    expect(secretLine('failclosed-ledger-key')).toContain(`--from-file=${base(ledger.key)}=`);
    const moveKey = text
      .split('\n')
      .find((l) => l.startsWith('failclosed ledger move-key') && /--data seed\b/.test(l));
    expect(moveKey).toBeDefined();
    const out = /--out (\S+)/.exec(moveKey!)![1]!;
    expect(secretLine('failclosed-ledger-key')).toContain(`--from-file=${base(ledger.key)}=${out}`);
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

describe('systemd (deploy/systemd/executor.json, executor.postgres.json, control-plane.json, control-plane.ledger.json, gate.json, ledger.json)', () => {
  const unit = parseUnit(read('systemd/failclosed-executor.service').toString('utf8'));
  const configPath = /--config (\S+)$/.exec(unitValue(unit, 'Service', 'ExecStart')!)![1]!;
  const configDir = configPath.slice(0, configPath.lastIndexOf('/'));
  const exec = parseExecutorConfig(read('systemd/executor.json'), configDir);
  const cp = cpConfig(json('systemd/control-plane.json'));
  const gateUnit = parseUnit(read('systemd/failclosed-gate.service').toString('utf8'));
  const gatePath = /--config (\S+)$/.exec(unitValue(gateUnit, 'Service', 'ExecStart')!)![1]!;
  const gateDir = gatePath.slice(0, gatePath.lastIndexOf('/'));
  const gate = parseGateConfig(read('systemd/gate.json'), gateDir);
  const ledgerUnit = parseUnit(read('systemd/failclosed-ledger.service').toString('utf8'));
  const ledgerPath = /--config (\S+)$/.exec(unitValue(ledgerUnit, 'Service', 'ExecStart')!)![1]!;
  const ledgerDir = ledgerPath.slice(0, ledgerPath.lastIndexOf('/'));
  const ledger = ledgerConfig(read('systemd/ledger.json'), ledgerDir);
  /** A unit's ExecStart, split into words. */
  const execArgv = (file: string) =>
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
    const argv = execArgv('failclosed-executor-role.service');
    // The role step connects as the owner to the database the executor's URL names.
    const owner = new URL(argv[1]!);
    const ownerBackend = `${owner.toString()}?schema=${psqlVars(argv).schema}`;
    expectOwnRole(nonceStore(pgExec), ownerBackend, argv);
    expect(nonceStore(pgExec).role).not.toBe(owner.username);
    expect(Object.keys(json('systemd/executor.postgres.json')).sort()).toEqual(['nonces', 'nonces_schema']);
    const gateArgv = execArgv('failclosed-gate-role.service');
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

  it('ledger.json parses; its key and certificate are under the ledger unit’s own directory, which the other units cannot see', () => {
    expect(ledgerPath).toBe('/etc/failclosed-ledger/ledger.json');
    for (const f of [ledger.key, ledger.tls.ca, ledger.tls.crl!, ledger.tls.cert, ledger.tls.key])
      expect(f.startsWith('/etc/failclosed-ledger/'), f).toBe(true);
    for (const f of ['failclosed-postgres.service', 'failclosed-gate.service', 'failclosed-executor.service'])
      expect(
        unitValue(parseUnit(read('systemd', f).toString('utf8')), 'Service', 'InaccessiblePaths'),
        f,
      ).toContain('-/etc/failclosed-ledger');
  });

  it('control-plane.json stays usable on SQLite (failclosed.service); control-plane.ledger.json, merged in on PostgreSQL, names the ledger process, and the two agree', () => {
    // `checkpoints` needs the PostgreSQL backend, so it is a fragment of its own, as
    // executor.postgres.json is the executor's: control-plane.json alone holds none.
    expect(cp.checkpoints).toBeUndefined();
    expect(Object.keys(json('systemd/control-plane.ledger.json'))).toEqual(['checkpoints']);
    const withLedger = cpConfig(
      json('systemd/control-plane.json'),
      pinned(json('systemd/control-plane.ledger.json')),
    );
    expectLedgerLink(withLedger, ledger);
    // With both merged in, failclosed-postgres.service starts it as `serve control-plane`, on the
    // owner's database its role units name (FAILCLOSED_BACKEND is in postgres.env, not shipped).
    expectControlPlaneProcess(
      execArgv('failclosed-postgres.service').slice(2),
      withLedger,
      execArgv('failclosed-executor-role.service')[1]!,
    );
    expect(ledger.listen.host).toBe('127.0.0.1');
    expect(hostPort(withLedger.checkpoints!.url)).toEqual({ host: '127.0.0.1', port: ledger.listen.port });
    // On one host each listener has a port of its own.
    expect(
      new Set([
        withLedger.port,
        withLedger.internal_port,
        exec.listen.port,
        gate.listen.port,
        ledger.listen.port,
      ]).size,
    ).toBe(5);
  });

  it('the ledger process’s state is the owner’s schema on the role its role unit grants, not the owner', () => {
    const argv = execArgv('failclosed-ledger-role.service');
    const owner = new URL(argv[1]!);
    const ownerBackend = `${owner.toString()}?schema=${psqlVars(argv).schema}`;
    expectOwnRole(gateState(ledger), ownerBackend, argv);
    expect(argv[1]).toBe(execArgv('failclosed-gate-role.service')[1]);
  });
});
