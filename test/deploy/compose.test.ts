/**
 * deploy/compose/compose.yaml: validated against the pinned Compose Specification schema
 * (test/fixtures/schemas, checked byte for byte) and checked for the separated shape (FC-INV-6,
 * SPEC §1 separation of powers) and its hardening: two keyless Gates (`serve gate`) the only
 * services on the clients' network, holding no data directory and no key; the Control Plane
 * process (`serve control-plane`) publishing its port for operators only, on a network of
 * its own; PostgreSQL only on internal networks; the separate Execution Layer (`serve executor`)
 * publishing nothing and sharing its listener's network with the gates and the Control Plane
 * alone (FC-INV-6 "only the Gate reaches execution"); the ledger process (`serve ledger`), the
 * only holder of the checkpoint key, publishing nothing and sharing its listener's network with
 * the Control Plane alone (SPEC §1 separation of powers, L7 ledger protection), the Control Plane
 * holding no checkpoint key; each service mounting only its own key, read-only root filesystems,
 * every capability dropped; the gates, the executors and the ledger process each on a database
 * role of their own, which the one-shots `gate-role`, `executor-role` and `ledger-role` apply from
 * the shipped SQL before they start, with a password of their own, never the owner's.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { DEPLOY_DIR, at, isObject, readYaml } from './support.js';
import type { Yaml, YamlObject } from './support.js';

const SCHEMAS_DIR = join(REPO_ROOT, 'test/fixtures/schemas');
const [compose] = readYaml(join(DEPLOY_DIR, 'compose/compose.yaml')) as [YamlObject];
const services = compose.services as YamlObject;
const service = (name: string) => services[name] as YamlObject;
/** The keyless Gates (`serve gate`), the only services clients reach. */
const GATES = ['gate-a', 'gate-b'];
/** The Control Plane process (`serve control-plane`): keys, decisions, the ledger writer. */
const CP = 'control-plane';
/** The ledger process (`serve ledger`): the checkpoint key, nothing else. */
const LEDGER = 'ledger';
/** Services `docker compose up` starts (no profile); `certs` and `nats` run only when asked for. */
const RUNTIME = [...GATES, CP, LEDGER, 'executor', 'executor-role', 'gate-role', 'ledger-role', 'postgresql'];
/** The one-shot services: they exit, so they have no healthcheck and do not restart. */
const ONE_SHOT = ['certs', 'executor-role', 'gate-role', 'ledger-role'];
const networks = compose.networks as YamlObject;

/** The Compose schema compiled strictly, its draft-07 meta-schema registered under the `$schema` it names. */
function composeValidator() {
  const schema = JSON.parse(readFileSync(join(SCHEMAS_DIR, 'compose-spec.json'), 'utf8')) as {
    $schema: string;
  };
  // Upstream's schema uses union types and `additionalProperties` without `type`; every other
  // strict check (unknown keywords, formats) stays on.
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
  const draft07 = ajv.getSchema('http://json-schema.org/draft-07/schema')!.schema as object;
  expect(schema.$schema).toBe('https://json-schema.org/draft-07/schema');
  ajv.addMetaSchema({ ...draft07, $id: schema.$schema });
  return ajv.compile(schema);
}

/**
 * A service's volumes, each in the long syntax (an object with a `type`). A short-syntax string
 * (`./ledger:/x:ro`) would escape every check made on `source`, so it is refused.
 */
function longVolumes(s: YamlObject, name: string): YamlObject[] {
  return ((s.volumes ?? []) as Yaml[]).map((v) => {
    if (!isObject(v) || typeof v.type !== 'string')
      throw new Error(
        `${name}: volume ${JSON.stringify(v)} in the short syntax; write it in the long syntax`,
      );
    return v;
  });
}

function networksOf(s: YamlObject): string[] {
  const n = s.networks;
  if (Array.isArray(n)) return n as string[];
  if (isObject(n)) return Object.keys(n);
  return [];
}

describe('the pinned schemas', () => {
  it('match SHA256SUMS byte for byte, and every file present is listed', () => {
    const sums = new Map(
      readFileSync(join(SCHEMAS_DIR, 'SHA256SUMS'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const m = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(l);
          if (m === null) throw new Error(`malformed SHA256SUMS line: ${l}`);
          return [m[2]!, m[1]!] as const;
        }),
    );
    const present = readdirSync(SCHEMAS_DIR).filter((p) => p !== 'README.md' && p !== 'SHA256SUMS');
    expect(present.sort()).toEqual([...sums.keys()].sort());
    for (const p of present)
      expect(
        createHash('sha256')
          .update(readFileSync(join(SCHEMAS_DIR, p)))
          .digest('hex'),
        p,
      ).toBe(sums.get(p));
  });
});

describe('deploy/compose/compose.yaml', () => {
  const validate = composeValidator();

  it('is valid under the Compose Specification schema', () => {
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the validation can fail: an unknown key and a mistyped one are refused', () => {
    const bad = structuredClone(compose) as { services: Record<string, Record<string, Yaml>> };
    bad.services['gate-a']!.read_onyl = true;
    expect(validate(bad)).toBe(false);
    const bad2 = structuredClone(compose) as { services: Record<string, Record<string, Yaml>> };
    bad2.services['postgresql']!.cap_drop = 'ALL';
    expect(validate(bad2)).toBe(false);
  });

  it('runs two keyless gates, the Control Plane, the ledger process, the Execution Layer, the three role steps and PostgreSQL; the certificate step and NATS only by profile', () => {
    expect(Object.keys(services).sort()).toEqual([...RUNTIME, 'certs', 'nats'].sort());
    expect(Object.keys(services).filter((n) => service(n).profiles === undefined)).toEqual(
      expect.arrayContaining(RUNTIME),
    );
    expect(Object.keys(services).filter((n) => service(n).profiles === undefined)).toHaveLength(
      RUNTIME.length,
    );
    expect(service('certs').profiles).toEqual(['setup']);
    expect(service('nats').profiles).toEqual(['queue']);
  });

  /** The services on network `name`. */
  const on = (name: string) =>
    Object.keys(services)
      .filter((n) => networksOf(service(n)).includes(name))
      .sort();

  it('every network but the clients and the operators one is internal, and each is shared by exactly the services that talk on it', () => {
    expect(Object.keys(networks).sort()).toEqual([
      'db',
      'exec',
      'front',
      'ledger',
      'ledger-db',
      'nonces',
      'ops',
      'queue',
    ]);
    for (const n of ['db', 'exec', 'ledger', 'ledger-db', 'nonces', 'queue'])
      expect(at(networks, n, 'internal'), n).toBe(true);
    expect(at(networks, 'front', 'internal')).toBeUndefined();
    expect(at(networks, 'ops', 'internal')).toBeUndefined();
    // Clients share a network with the keyless gates alone: not the Control Plane, not an executor.
    expect(on('front')).toEqual([...GATES].sort());
    expect(on('ops')).toEqual([CP]);
    expect(on('db')).toEqual(
      [...GATES, CP, 'executor-role', 'gate-role', 'ledger-role', 'postgresql'].sort(),
    );
    expect(on('exec')).toEqual([...GATES, CP, 'executor'].sort());
    expect(on('ledger')).toEqual([CP, LEDGER].sort());
    expect(on('ledger-db')).toEqual([LEDGER, 'postgresql']);
    expect(on('nonces')).toEqual(['executor', 'postgresql']);
    expect(on('queue')).toEqual([CP, 'executor', 'nats'].sort());
  });

  it('the keyless gates: serve gate with their own configuration, no data directory, no tool relaxation, on the clients network', () => {
    for (const name of GATES) {
      const g = service(name);
      expect(g.command, name).toEqual(['serve', 'gate', '--config', '/etc/failclosed/gate.json']);
      expect(networksOf(g).sort(), name).toEqual(['db', 'exec', 'front']);
      expect(g.build, name).toBeUndefined();
      expect(g.image, name).toBe(service(CP).image);
    }
  });

  it('the Control Plane: serve control-plane on its data directory, never on the clients network', () => {
    const cp = service(CP);
    expect((cp.command as string[]).slice(0, 4)).toEqual([
      'serve',
      'control-plane',
      '--data',
      '/var/lib/failclosed',
    ]);
    expect(networksOf(cp).sort()).toEqual(['db', 'exec', 'ledger', 'ops', 'queue']);
    expect(networksOf(cp)).not.toContain('front');
  });

  it('puts PostgreSQL on internal networks only: the gates (db), the ledger process (ledger-db) and the executors (nonces), publishing nothing', () => {
    expect(networksOf(service('postgresql')).sort()).toEqual(['db', 'ledger-db', 'nonces']);
    expect(service('postgresql').ports).toBeUndefined();
    expect(service('postgresql').expose).toBeUndefined();
  });

  it('the Execution Layer publishes no port and shares its listener network with the gates alone (FC-INV-6)', () => {
    const e = service('executor');
    expect(e.ports).toBeUndefined();
    expect(e.expose).toBeUndefined();
    expect(e.network_mode).toBeUndefined();
    // Never on the clients' network: a client has no route to it at all.
    expect(networksOf(e).sort()).toEqual(['exec', 'nonces', 'queue']);
    for (const n of networksOf(e)) {
      expect(at(networks, n, 'internal'), n).toBe(true);
      // Every service it shares a network with is a gate, the Control Plane or a store it needs,
      // never a client.
      for (const other of on(n)) expect([...GATES, CP, 'executor', 'postgresql', 'nats'], n).toContain(other);
    }
    // Only the gates and the Control Plane (voids) share the network its listener is reached on.
    expect(on('exec').filter((n) => n !== 'executor')).toEqual([...GATES, CP].sort());
    expect(at(e, 'deploy', 'replicas')).toBe(2);
    expect(e.container_name).toBeUndefined();
    expect(e.command).toEqual(['serve', 'executor', '--config', '/etc/failclosed/executor.json']);
  });

  it('the ledger process publishes no port and shares its listener network with the Control Plane alone (only roles reach the ledger)', () => {
    const l = service(LEDGER);
    expect(l.ports).toBeUndefined();
    expect(l.expose).toBeUndefined();
    expect(l.network_mode).toBeUndefined();
    expect(networksOf(l).sort()).toEqual(['ledger', 'ledger-db']);
    for (const n of networksOf(l)) {
      expect(at(networks, n, 'internal'), n).toBe(true);
      // Every service it shares a network with is the Control Plane or PostgreSQL (which dials
      // nothing): never a gate, an executor, a role step or a client.
      for (const other of on(n)) expect([CP, LEDGER, 'postgresql'], n).toContain(other);
    }
    // Of the services that dial out, only the Control Plane shares a network with it.
    expect(
      Object.keys(services).filter(
        (name) =>
          name !== LEDGER &&
          name !== 'postgresql' &&
          networksOf(service(name)).some((n) => networksOf(l).includes(n)),
      ),
    ).toEqual([CP]);
    // One: its binding file is its own (docs/deployment.md "The ledger process").
    expect(at(l, 'deploy', 'replicas')).toBe(1);
    expect(l.container_name).toBeUndefined();
    expect(l.command).toEqual(['serve', 'ledger', '--config', '/etc/failclosed/ledger.json']);
    expect(l.build).toBeUndefined();
    expect(l.image).toBe(service(CP).image);
    // Calls never wait for it: the Control Plane does not depend on it.
    expect(at(service(CP), 'depends_on', LEDGER)).toBeUndefined();
  });

  it('no service answers another name than its own: peers dial the service names the certificates carry', () => {
    for (const name of Object.keys(services)) {
      const n = service(name).networks;
      if (isObject(n)) for (const k of Object.keys(n)) expect(at(n, k, 'aliases'), name).toBeUndefined();
    }
  });

  /** A service's bind mounts: source -> [target, read-only]. Refuses a short-syntax volume. */
  const binds = (name: string) =>
    new Map(
      longVolumes(service(name), name)
        .filter((v) => v.type === 'bind')
        .map((v) => [v.source as string, [v.target as string, v.read_only === true] as const]),
    );

  it('every volume is in the long syntax, so that no mount escapes the checks below; a short one is refused', () => {
    for (const name of Object.keys(services))
      expect(() => longVolumes(service(name), name), name).not.toThrow();
    for (const short of ['./ledger:/x:ro', './certs:/x'])
      expect(() => longVolumes({ volumes: [short] }, 'gate-a')).toThrow(/short syntax/);
    expect(() => longVolumes({ volumes: [{ source: './certs', target: '/x' }] }, 'gate-a')).toThrow(
      /short syntax|type/,
    );
  });

  it('no service but the ledger process mounts ./ledger or anything in it or above it, and no service but the certificate step mounts ./certs itself or above it', () => {
    const compose = join(DEPLOY_DIR, 'compose');
    /** Whether a mount of `source` exposes the host path `dir` (is it, is in it, or holds it). */
    const exposes = (source: string, dir: string) => {
      const [s, d] = [resolve(compose, source), resolve(compose, dir)];
      return s === d || s.startsWith(`${d}/`) || d.startsWith(`${s}/`);
    };
    /** What a mount of `source` exposes of the host path `dir` when `dir` is a directory in it. */
    const holds = (source: string, dir: string) => {
      const [s, d] = [resolve(compose, source), resolve(compose, dir)];
      return s === d || d.startsWith(`${s}/`);
    };
    for (const name of Object.keys(services)) {
      const sources = longVolumes(service(name), name)
        .filter((v) => v.type === 'bind')
        .map((v) => v.source as string);
      if (name !== LEDGER)
        expect(
          sources.filter((s) => exposes(s, './ledger') || exposes(s, './ledger-state')),
          name,
        ).toEqual([]);
      expect(
        sources.filter((s) => holds(s, './certs')),
        name,
      ).toEqual(name === 'certs' ? ['./certs'] : []);
    }
    // The checks see through spellings of the same path.
    expect(exposes('ledger/', './ledger')).toBe(true);
    expect(exposes('./x/../ledger/ledger.jwk', './ledger')).toBe(true);
    expect(exposes('.', './ledger')).toBe(true);
    expect(holds('./certs/', './certs')).toBe(true);
    expect(holds('../compose', './certs')).toBe(true);
    expect(holds('./certs/ca.pem', './certs')).toBe(false);
  });

  it('no service of the failclosed image gets an anonymous volume from the image VOLUMEs: each such path is its bind mount or a tmpfs; the role steps likewise for the PostgreSQL image', () => {
    const dockerfile = readFileSync(join(DEPLOY_DIR, 'container/Dockerfile'), 'utf8');
    const imageVolumes = [...dockerfile.matchAll(/^VOLUME (\[.*\])$/gm)].flatMap(
      (m) => JSON.parse(m[1]!) as string[],
    );
    expect(imageVolumes.sort()).toEqual(['/tmp', '/var/lib/failclosed']);
    /** The paths a service mounts something on: its volumes' targets and its tmpfs paths. */
    const mounted = (name: string) => [
      ...longVolumes(service(name), name).map((v) => v.target as string),
      ...((service(name).tmpfs ?? []) as string[]).map((t) => t.split(':')[0]!),
    ];
    const ours = Object.keys(services).filter((n) => service(n).image === service(CP).image);
    expect(ours.sort()).toEqual([...GATES, CP, LEDGER, 'executor', 'certs'].sort());
    for (const name of ours)
      for (const path of imageVolumes) expect(mounted(name), `${name} ${path}`).toContain(path);
    // Those without a data directory: a small tmpfs they cannot write to, never a volume. The
    // ledger process mounts its state directory there (its binding file), a bind, never a volume.
    for (const name of ours.filter((n) => n !== CP && n !== LEDGER)) {
      const tmpfs = ((service(name).tmpfs ?? []) as string[]).find((t) =>
        t.startsWith('/var/lib/failclosed:'),
      );
      expect(tmpfs, name).toMatch(/^\/var\/lib\/failclosed:size=\d+k,mode=0500$/);
    }
    // postgres:17's VOLUME; psql in the role steps writes nothing there.
    for (const name of ONE_SHOT.filter((n) => n !== 'certs'))
      expect(service(name).tmpfs, name).toEqual([
        expect.stringMatching(/^\/var\/lib\/postgresql\/data:size=\d+k,mode=0500$/),
      ]);
  });

  it('each service mounts only its own certificate key, read-only; the CA key is mounted by no running service', () => {
    // The Control Plane serves its internal listener with the `control-plane` certificate and
    // calls the executors with the `gate` one; only it mounts those keys (FC-INV-6). Each keyless
    // gate has a key of its own, never one of those, and no two gates share one. The ledger
    // process serves its `ledger` one.
    const keyOf = new Map<string, readonly string[]>();
    for (const name of [...GATES, CP, LEDGER]) {
      const b = binds(name);
      const certs = [...b.keys()].filter((s) => s.startsWith('./certs/')).sort();
      const own = name === CP ? ['control-plane', 'gate'] : [name];
      expect(certs, name).toEqual(
        [
          './certs/ca.pem',
          './certs/crl.pem',
          ...own.flatMap((o) => [`./certs/${o}.key`, `./certs/${o}.pem`]),
        ].sort(),
      );
      for (const c of certs) expect(b.get(c)![1], `${name} ${c}`).toBe(true);
      keyOf.set(
        name,
        own.map((o) => `./certs/${o}.key`),
      );
    }
    const keys = [...keyOf.values()].flat();
    expect(new Set(keys).size).toBe(keys.length);
    // What each gate's configuration names is what that gate mounts from its own files.
    const gateTls = (
      JSON.parse(readFileSync(join(DEPLOY_DIR, 'compose/config/gate.json'), 'utf8')) as {
        tls: { cert: string; key: string };
      }
    ).tls;
    for (const name of GATES) {
      const b = binds(name);
      expect(b.get(`./certs/${name}.pem`)![0], name).toBe(gateTls.cert);
      expect(b.get(`./certs/${name}.key`)![0], name).toBe(gateTls.key);
    }
    const e = binds('executor');
    expect([...e.keys()].sort()).toEqual([
      './certs/ca.pem',
      './certs/crl.pem',
      './certs/executor.key',
      './certs/executor.pem',
      './config/executor.json',
    ]);
    for (const [source, [, ro]] of e) expect(ro, source).toBe(true);
    for (const name of [...RUNTIME, 'nats']) {
      const sources = [...binds(name).keys()];
      expect(sources, name).not.toContain('./certs/ca.key');
      expect(sources, name).not.toContain('./certs');
    }
    // The executor holds no data directory (no issuer key, no ledger key, no operator token).
    expect([...e.values()].map(([t]) => t)).not.toContain('/var/lib/failclosed');
    // Nor do the keyless gates: their configuration and their certificate, nothing else, all read-only.
    for (const name of GATES) {
      const g = binds(name);
      expect([...g.keys()].sort(), name).toEqual([
        './certs/ca.pem',
        './certs/crl.pem',
        `./certs/${name}.key`,
        `./certs/${name}.pem`,
        './config/gate.json',
      ]);
      for (const [source, [, ro]] of g) expect(ro, `${name} ${source}`).toBe(true);
      expect(JSON.stringify(service(name).volumes ?? [])).not.toMatch(
        /\/var\/lib\/failclosed|\.jwk|operator\.token/,
      );
    }
    // Only the Control Plane mounts a data directory.
    for (const name of Object.keys(services))
      expect(
        [...binds(name).keys()].some((s) => s.startsWith('./data/')),
        name,
      ).toBe(name === CP);
  });

  it('the checkpoint key: mounted read-only into the ledger process alone, which mounts its configuration, that key and its own certificate, nothing else', () => {
    const l = binds(LEDGER);
    expect([...l.keys()].sort()).toEqual([
      './certs/ca.pem',
      './certs/crl.pem',
      './certs/ledger.key',
      './certs/ledger.pem',
      './config/ledger.json',
      './ledger-state',
      './ledger/ledger.jwk',
    ]);
    // Read-only, all but its state directory: the binding file (config/ledger.json `binding`).
    for (const [source, [, ro]] of l) expect(ro, source).toBe(source !== './ledger-state');
    expect(l.get('./ledger-state')![0]).toBe('/var/lib/failclosed');
    const config = JSON.parse(readFileSync(join(DEPLOY_DIR, 'compose/config/ledger.json'), 'utf8')) as {
      binding?: string;
    };
    expect(config.binding).toBe('/var/lib/failclosed/ledger-binding.json');
    // No data directory, no volume but these binds.
    expect(((service(LEDGER).volumes ?? []) as YamlObject[]).every((v) => v.type === 'bind')).toBe(true);
    // No other service mounts the checkpoint key or anything of ./ledger, nor names a .jwk; the
    // Control Plane's data directory holds none (`serve control-plane` refuses to start while
    // keys/ledger.jwk is there), and nothing mounts the ledger process's TLS key but itself.
    for (const name of Object.keys(services)) {
      if (name === LEDGER) continue;
      const sources = [...binds(name).keys()];
      expect(
        sources.filter((s) => s.startsWith('./ledger') || s === './certs/ledger.key'),
        name,
      ).toEqual([]);
      expect(JSON.stringify(service(name)), name).not.toMatch(/\.jwk/);
    }
  });

  it('the certificate step runs without a network and writes only ./certs, naming the hosts the peers dial, and a host-less certificate per gate', () => {
    const c = service('certs');
    expect(c.network_mode).toBe('none');
    expect(c.networks).toBeUndefined();
    expect([...binds('certs').keys()]).toEqual(['./certs']);
    const command = c.command as string[];
    expect(command.slice(0, 4)).toEqual(['certs', 'init', '--dir', '/certs']);
    const hosts = command.flatMap((w, i) => (command[i - 1] === '--host' ? [w] : []));
    expect(hosts.sort()).toEqual([CP, 'executor', LEDGER].sort());
    // Each keyless gate's certificate, naming no host (`serve gate` refuses one that names any).
    const gates = command.flatMap((w, i) => (command[i - 1] === '--keyless-gate' ? [w] : []));
    expect(gates.sort()).toEqual([...GATES].sort());
  });

  it('publishes only the gates client port and the Control Plane port for operators (7070 in each container), each on its own host port', () => {
    const published = new Set<string>();
    for (const name of Object.keys(services)) {
      const ports = (service(name).ports ?? []) as string[];
      if (![...GATES, CP].includes(name)) {
        expect(ports, name).toEqual([]);
        continue;
      }
      expect(ports).toHaveLength(1);
      const m = /^127\.0\.0\.1:(\d+):7070$/.exec(ports[0]!);
      expect(m, ports[0]).not.toBeNull();
      published.add(m![1]!);
    }
    // The Control Plane's internal listener (7444), the executors' (7443) and the ledger
    // process's (7460) are published nowhere.
    expect(published.size).toBe(GATES.length + 1);
  });

  it('hardens every service: read-only root, every capability dropped and none added, no new privileges, a healthcheck', () => {
    for (const name of Object.keys(services)) {
      const s = service(name);
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.cap_add, name).toBeUndefined();
      expect(s.privileged, name).toBeUndefined();
      expect(s.security_opt, name).toContain('no-new-privileges:true');
      expect(s.user, name).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      // The executor's only port is mutual TLS for the gate role, the ledger process's for the
      // control-plane role: a probe would be a refused handshake, so they have none; the one-shot
      // steps have none either.
      if (name === 'executor' || name === LEDGER || ONE_SHOT.includes(name))
        expect(at(s, 'healthcheck', 'disable'), name).toBe(true);
      else expect(at(s, 'healthcheck', 'test', 0), name).toBe('CMD');
      if (name !== 'certs') expect(s.network_mode, name).toBeUndefined();
      expect(s.pid, name).toBeUndefined();
      expect(s.ipc, name).toBeUndefined();
    }
  });

  it('gates: readiness as health, after the Control Plane is healthy and their role step succeeded', () => {
    for (const name of GATES) {
      const s = service(name);
      expect((at(s, 'healthcheck', 'test') as string[]).join(' ')).toContain('http://127.0.0.1:7070/readyz');
      expect(at(s, 'depends_on', CP, 'condition')).toBe('service_healthy');
      expect(at(s, 'depends_on', 'gate-role', 'condition')).toBe('service_completed_successfully');
      expect(s.tmpfs as string[]).toEqual([
        expect.stringMatching(/^\/tmp:/),
        expect.stringMatching(/^\/var\/lib\/failclosed:/),
      ]);
    }
  });

  it('the Control Plane: data directory mounted, /tmp a tmpfs, readiness as health, stop grace longer than the drain', () => {
    for (const name of [CP]) {
      const s = service(name);
      expect(at(s, 'volumes', 0, 'target')).toBe('/var/lib/failclosed');
      expect(s.tmpfs as string[]).toEqual([expect.stringMatching(/^\/tmp:/)]);
      expect((at(s, 'healthcheck', 'test') as string[]).join(' ')).toContain('http://127.0.0.1:7070/readyz');
      const command = s.command as string[];
      const grace = Number(command[command.indexOf('--grace') + 1]);
      expect(grace).toBeGreaterThan(0);
      expect(Number(/^(\d+)s$/.exec(s.stop_grace_period as string)![1])).toBeGreaterThan(grace);
      expect(at(s, 'depends_on', 'postgresql', 'condition')).toBe('service_healthy');
    }
  });

  it('the only relaxations are the ones bubblewrap needs (seccomp, AppArmor, /proc masking), on the executors alone', () => {
    const needed = ['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined'];
    expect((service('executor').security_opt as string[]).sort()).toEqual(
      ['no-new-privileges:true', ...needed].sort(),
    );
    // The keyless gates, the Control Plane (`executor_url`, no `tls.executor`) and the ledger
    // process run no tool: the runtime's defaults.
    for (const name of ['postgresql', 'nats', CP, LEDGER, ...GATES, ...ONE_SHOT])
      expect(service(name).security_opt, name).toEqual(['no-new-privileges:true']);
  });

  it('NATS runs JetStream, publishes nothing, and is on the Control Plane and executors network only', () => {
    const n = service('nats');
    expect(n.command as string[]).toContain('--jetstream');
    expect(n.ports).toBeUndefined();
    expect(networksOf(n)).toEqual(['queue']);
    expect(n.image).toMatch(/^nats:\d+\.\d+\.\d+/);
  });

  /** The one-shot role steps and the services that connect as the role each one grants. */
  const ROLE_STEPS = [
    {
      job: 'executor-role',
      sql: 'executor-role.sql',
      env: 'FAILCLOSED_EXECUTOR_DB_PASSWORD',
      users: ['executor'],
    },
    { job: 'gate-role', sql: 'gate-role.sql', env: 'FAILCLOSED_GATE_DB_PASSWORD', users: GATES },
    {
      job: 'ledger-role',
      sql: 'ledger-role.sql',
      env: 'FAILCLOSED_LEDGER_DB_PASSWORD',
      users: [LEDGER],
    },
  ];
  for (const step of ROLE_STEPS)
    describe(`${step.job}: the database role of ${step.users.join(', ')} (FC-INV-6 least privilege)`, () => {
      const job = service(step.job);
      const command = job.command as string[];
      /** The `-v NAME=VALUE` psql variables of the job. */
      const vars = Object.fromEntries(
        command.flatMap((w, i) => (command[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
      );
      const env = (name: string) => (service(name).environment ?? {}) as YamlObject;
      const ownerBackend = new URL(at(service(CP), 'environment', 'FAILCLOSED_BACKEND') as string);

      it('runs the shipped SQL file with psql, mounted read-only, from the PostgreSQL image', () => {
        expect(job.image).toBe(service('postgresql').image);
        expect(job.profiles).toBeUndefined(); // `docker compose up` runs it
        expect(job.restart).toBe('no');
        expect(command[0]).toBe('psql');
        const sql = command[command.indexOf('-f') + 1]!;
        expect([...binds(step.job)]).toEqual([[`../postgres/${step.sql}`, [sql, true]]]);
        // Relative to the compose file: the file deploy/postgres/<sql> of this repository.
        expect(resolve(DEPLOY_DIR, 'compose', `../postgres/${step.sql}`)).toBe(
          join(DEPLOY_DIR, 'postgres', step.sql),
        );
        expect(vars.ON_ERROR_STOP).toBe('1');
      });

      it('connects as the Control Plane role (the schema owner) to its database and schema, once the Control Plane is healthy', () => {
        const url = new URL(command[1]!);
        expect(url.password).toBe('');
        expect(`${url.username}@${url.host}${url.pathname}`).toBe(
          `${ownerBackend.username}@${ownerBackend.host}${ownerBackend.pathname}`,
        );
        expect(vars.schema).toBe(ownerBackend.searchParams.get('schema'));
        expect(job.depends_on).toEqual({ [CP]: { condition: 'service_healthy' } });
        // On the database network only: not the executors, not the clients.
        expect(networksOf(job)).toEqual(['db']);
      });

      it('names a role of its own, not the owner, its password read from the environment (on no command line)', () => {
        expect(vars.role).toMatch(/^[a-z_][a-z0-9_]*$/);
        expect(vars.role).not.toBe(ownerBackend.username);
        expect(vars.password_env).toBe(step.env);
        expect(env(step.job)[step.env]).toBe(`\${${step.env}:?set ${step.env}}`);
        expect(env(step.job).PGPASSWORD).toBe(env('postgresql').POSTGRES_PASSWORD);
        expect(command.join(' ')).not.toMatch(/PASSWORD=|\$\{/);
      });

      it('its users start only after it succeeded, and hold their role password, never the owner one', () => {
        for (const user of step.users) {
          expect(at(service(user), 'depends_on', step.job, 'condition'), user).toBe(
            'service_completed_successfully',
          );
          expect(env(user).PGPASSWORD, user).toBe(env(step.job)[step.env]);
          expect(env(user).PGPASSWORD, user).not.toBe(env('postgresql').POSTGRES_PASSWORD);
          expect(JSON.stringify(service(user)), user).not.toContain('FAILCLOSED_DB_PASSWORD');
          expect(env(user).FAILCLOSED_BACKEND, user).toBeUndefined();
        }
      });
    });

  it('the three role steps name three different roles with three different passwords', () => {
    const vars = (job: string) => {
      const c = service(job).command as string[];
      return Object.fromEntries(
        c.flatMap((w, i) => (c[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
      );
    };
    const jobs = ROLE_STEPS.map((r) => r.job);
    expect(jobs.sort()).toEqual(ONE_SHOT.filter((n) => n !== 'certs').sort());
    expect(new Set(jobs.map((j) => vars(j).role)).size).toBe(jobs.length);
    expect(new Set(jobs.map((j) => vars(j).password_env)).size).toBe(jobs.length);
  });

  it('holds no secret: the database password comes from the environment, required', () => {
    const text = readFileSync(join(DEPLOY_DIR, 'compose/compose.yaml'), 'utf8');
    for (const name of Object.keys(services)) {
      const env = (service(name).environment ?? {}) as YamlObject;
      for (const [k, v] of Object.entries(env))
        if (/PASSWORD|SECRET|TOKEN/.test(k)) expect(v, `${name} ${k}`).toMatch(/^\$\{[A-Z_]+:\?[^}]+\}$/);
      expect(JSON.stringify(env.FAILCLOSED_BACKEND ?? '')).not.toMatch(/:\/\/[^@/]*:[^@/]*@/);
    }
    // No key but the checkpoint key is named (as a file the ledger process mounts), no token.
    expect(text).not.toMatch(/issuer\.jwk|operator\.token/);
    expect(new Set(text.match(/[\w./-]*\.jwk/g))).toEqual(
      new Set(['./ledger/ledger.jwk', '/etc/failclosed/ledger.jwk', 'keys/ledger.jwk']),
    );
  });
});
