/**
 * deploy/kubernetes/: every manifest validated against the Kubernetes v1.33.0 OpenAPI schema
 * (the pinned `kubernetes-models` validators), and the pod security of the keyless Gates
 * (`serve gate`), the Control Plane process (`serve control-plane`), the ledger process
 * (`serve ledger`), the separate Execution Layer (`serve executor`), NATS, PostgreSQL and the
 * three Jobs that grant the gates, the executors and the ledger process their own database roles
 * asserted key by key (the OpenAPI schema does not refuse unknown keys, so a misspelt one would
 * pass it; these checks name each key). FC-INV-6, SPEC §1 separation of powers: the gates hold no
 * key and no owner's password; the checkpoint key is the ledger process's alone, never the
 * Control Plane's.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { describe, expect, it } from 'vitest';
import { DEPLOY_DIR, at, readYaml } from './support.js';
import type { Yaml, YamlObject } from './support.js';

const K8S_DIR = join(DEPLOY_DIR, 'kubernetes');
const FILES = readdirSync(K8S_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const manifests = FILES.flatMap((f) =>
  readYaml(join(K8S_DIR, f)).map((doc) => ({ file: f, doc: doc as YamlObject })),
);

/** The models this deployment uses, by `apiVersion/kind`. Anything else is refused. */
const MODELS: Record<string, (data: never) => { validate(): void }> = {
  'v1/ConfigMap': (d) => new ConfigMap(d),
  'v1/Namespace': (d) => new Namespace(d),
  'v1/Service': (d) => new Service(d),
  'v1/ServiceAccount': (d) => new ServiceAccount(d),
  'apps/v1/Deployment': (d) => new Deployment(d),
  'apps/v1/StatefulSet': (d) => new StatefulSet(d),
  'batch/v1/Job': (d) => new Job(d),
  'networking.k8s.io/v1/NetworkPolicy': (d) => new NetworkPolicy(d),
};

const typeOf = (doc: YamlObject) =>
  `${JSON.stringify(doc.apiVersion)}/${JSON.stringify(doc.kind)}`.replaceAll('"', '');
const find = (kind: string, name: string) => {
  const m = manifests.find((x) => x.doc.kind === kind && at(x.doc, 'metadata', 'name') === name);
  if (m === undefined) throw new Error(`no ${kind} ${name}`);
  return m.doc;
};

function validate(doc: YamlObject): string | undefined {
  const make = MODELS[typeOf(doc)];
  if (make === undefined) return `no schema for ${typeOf(doc)}`;
  try {
    make(structuredClone(doc) as never).validate();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const gate = find('Deployment', 'failclosed-gate');
const cp = find('Deployment', 'failclosed-control-plane');
const executor = find('Deployment', 'failclosed-executor');
const nats = find('Deployment', 'failclosed-nats');
const postgresql = find('StatefulSet', 'postgresql');
const ledger = find('StatefulSet', 'failclosed-ledger');
const roleJob = find('Job', 'failclosed-executor-role');
const gateRoleJob = find('Job', 'failclosed-gate-role');
const ledgerRoleJob = find('Job', 'failclosed-ledger-role');
const WORKLOADS = [gate, cp, ledger, executor, nats, postgresql, roleJob, gateRoleJob, ledgerRoleJob];
const podSpec = (w: YamlObject) => at(w, 'spec', 'template', 'spec') as YamlObject;
const containers = (w: YamlObject) => [
  ...((podSpec(w).initContainers ?? []) as YamlObject[]),
  ...(podSpec(w).containers as YamlObject[]),
];

describe('deploy/kubernetes manifests', () => {
  it('are all in the failclosed namespace, one kind each of what the deployment uses', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(4);
    for (const { file, doc } of manifests) {
      expect(Object.keys(MODELS), `${file}: ${typeOf(doc)}`).toContain(typeOf(doc));
      if (doc.kind !== 'Namespace') expect(at(doc, 'metadata', 'namespace'), file).toBe('failclosed');
    }
  });

  it('each validates against the Kubernetes v1.33.0 OpenAPI schema', () => {
    const errors = manifests.map(({ file, doc }) => [file, at(doc, 'metadata', 'name'), validate(doc)]);
    expect(errors.filter(([, , e]) => e !== undefined)).toEqual([]);
  });

  it('the validation can fail: a mistyped field and a wrong enum are refused', () => {
    const bad = structuredClone(gate);
    (at(bad, 'spec') as YamlObject).replicas = 'two';
    expect(validate(bad)).toMatch(/replicas/);
    const bad2 = structuredClone(gate);
    ((at(bad2, 'spec', 'template', 'spec', 'containers', 0, 'securityContext') as YamlObject)
      .procMount as Yaml) = 'Open';
    expect(validate(bad2)).toMatch(/procMount/);
    const bad3 = structuredClone(gate);
    (at(bad3, 'spec', 'template', 'spec', 'securityContext') as YamlObject).runAsNonRoot = 'true';
    expect(validate(bad3)).toMatch(/runAsNonRoot/);
  });

  it('keyless gates: serve gate, two replicas, liveness on /healthz, readiness on /readyz, the client port alone and its Service', () => {
    expect(at(gate, 'spec', 'replicas')).toBe(2);
    const c = (podSpec(gate).containers as YamlObject[])[0]!;
    expect(podSpec(gate).containers).toHaveLength(1);
    expect(c.args).toEqual(['serve', 'gate', '--config', '/etc/failclosed/gate/gate.json']);
    expect(c.ports).toEqual([{ name: 'gate-http', containerPort: 7070, protocol: 'TCP' }]);
    expect(at(c, 'livenessProbe', 'httpGet', 'path')).toBe('/healthz');
    expect(at(c, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
    expect(at(c, 'startupProbe', 'httpGet', 'path')).toBe('/healthz');
    const service = find('Service', 'failclosed-gate');
    expect(at(service, 'spec', 'ports')).toEqual([
      { name: 'gate-http', port: 7070, targetPort: 'gate-http', protocol: 'TCP' },
    ]);
    expect(at(service, 'spec', 'type')).toBe('ClusterIP');
    expect(at(service, 'spec', 'selector')).toEqual(at(gate, 'spec', 'template', 'metadata', 'labels'));
    const pause = Number((at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[])[1]);
    expect(podSpec(gate).terminationGracePeriodSeconds as number).toBeGreaterThan(pause);
  });

  it('keyless gates hold no key: no data directory, no owner password, their own certificate Secret and database role Secret', () => {
    const pod = podSpec(gate);
    expect(pod.serviceAccountName).toBe('failclosed-gate');
    const c = (pod.containers as YamlObject[])[0]!;
    const mounts = Object.fromEntries(
      (c.volumeMounts as YamlObject[]).map((m) => [m.mountPath as string, m.name as string]),
    );
    expect(mounts).toEqual({ '/etc/failclosed/gate': 'config', '/etc/failclosed/tls': 'tls', '/tmp': 'tmp' });
    const volumes = Object.fromEntries((pod.volumes as YamlObject[]).map((v) => [v.name as string, v]));
    expect(at(volumes, 'config', 'configMap', 'name')).toBe('failclosed-gate');
    expect(at(volumes, 'tls', 'secret', 'secretName')).toBe('failclosed-gate-tls');
    // Not the Control Plane's data Secret (issuer and ledger keys, operator token), not its
    // certificate, not the owner's database password, not the executor's certificate.
    expect(JSON.stringify(gate)).not.toMatch(
      /failclosed-data|failclosed-control-plane-tls|failclosed-executor-tls|failclosed-postgresql"|\.jwk|operator\.token|FAILCLOSED_BACKEND/,
    );
    const env = (c.env ?? []) as YamlObject[];
    expect(env.map((e) => e.name)).toEqual(['PGPASSWORD']);
    expect(at(env[0], 'valueFrom', 'secretKeyRef', 'name')).toBe('failclosed-gate-postgresql');
    const data = at(find('ConfigMap', 'failclosed-gate'), 'data') as Record<string, string>;
    expect(Object.keys(data)).toEqual(['gate.json']);
    expect(data['gate.json']).not.toMatch(/PRIVATE KEY|:\/\/[^@/]*:[^@/]*@|password/i);
  });

  it('the Control Plane: serve control-plane, two replicas, probes, its operators port and its internal port (each its own Service)', () => {
    expect(at(cp, 'spec', 'replicas')).toBe(2);
    const c = (podSpec(cp).containers as YamlObject[])[0]!;
    expect(podSpec(cp).containers).toHaveLength(1);
    // `args` replace the image's default command (`up`); its entrypoint, the CLI, stays.
    expect(c.command).toBeUndefined();
    expect((c.args as string[]).slice(0, 4)).toEqual([
      'serve',
      'control-plane',
      '--data',
      '/var/lib/failclosed',
    ]);
    expect(c.ports).toEqual([
      { name: 'cp-http', containerPort: 7070, protocol: 'TCP' },
      { name: 'cp-internal', containerPort: 7444, protocol: 'TCP' },
    ]);
    const internal = find('Service', 'failclosed-control-plane-internal');
    expect(at(internal, 'spec', 'ports')).toEqual([
      { name: 'cp-internal', port: 7444, targetPort: 'cp-internal', protocol: 'TCP' },
    ]);
    expect(at(internal, 'spec', 'type')).toBe('ClusterIP');
    expect(at(internal, 'spec', 'selector')).toEqual(at(cp, 'spec', 'template', 'metadata', 'labels'));
    expect(at(c, 'livenessProbe', 'httpGet', 'path')).toBe('/healthz');
    expect(at(c, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
    expect(at(c, 'startupProbe', 'httpGet', 'path')).toBe('/healthz');
    const service = find('Service', 'failclosed-control-plane');
    expect(at(service, 'spec', 'ports')).toEqual([
      { name: 'cp-http', port: 7070, targetPort: 'cp-http', protocol: 'TCP' },
    ]);
    expect(at(service, 'spec', 'type')).toBe('ClusterIP');
  });

  it('the Control Plane: the termination grace outlasts the preStop pause plus the drain (--grace)', () => {
    const c = (podSpec(cp).containers as YamlObject[])[0]!;
    const args = c.args as string[];
    const grace = Number(args[args.indexOf('--grace') + 1]);
    const pause = Number((at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[])[1]);
    expect(grace).toBeGreaterThan(0);
    expect(podSpec(cp).terminationGracePeriodSeconds as number).toBeGreaterThan(grace + pause);
  });

  it('every container: non-root, read-only root filesystem, no privilege escalation, every capability dropped, resources set', () => {
    for (const w of WORKLOADS) {
      const pod = podSpec(w);
      expect(at(pod, 'securityContext', 'runAsNonRoot')).toBe(true);
      expect(at(pod, 'securityContext', 'runAsUser') as number).toBeGreaterThan(0);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
      for (const c of containers(w)) {
        const name = JSON.stringify(c.name);
        expect(at(c, 'securityContext', 'readOnlyRootFilesystem'), name).toBe(true);
        expect(at(c, 'securityContext', 'allowPrivilegeEscalation'), name).toBe(false);
        expect(at(c, 'securityContext', 'capabilities', 'drop'), name).toEqual(['ALL']);
        expect(at(c, 'securityContext', 'capabilities', 'add'), name).toBeUndefined();
        expect(at(c, 'securityContext', 'privileged') ?? false, name).toBe(false);
        expect(at(c, 'resources', 'requests', 'memory'), name).toBeDefined();
        expect(at(c, 'resources', 'limits', 'memory'), name).toBeDefined();
      }
    }
  });

  it('the relaxations bubblewrap needs come with a pod user namespace, on the executor container alone', () => {
    // procMount: Unmasked is accepted only with hostUsers: false; it and the unconfined profiles
    // are the executor container's (the tools run there) alone.
    expect(podSpec(executor).hostUsers).toBe(false);
    expect(at(podSpec(executor), 'securityContext', 'seccompProfile', 'type')).toBe('Unconfined');
    const main = (podSpec(executor).containers as YamlObject[])[0]!;
    expect(at(main, 'securityContext', 'procMount')).toBe('Unmasked');
    expect(at(main, 'securityContext', 'appArmorProfile', 'type')).toBe('Unconfined');
    // The executors' wait for their role runs no tool: the runtime's default profile, /proc masked.
    for (const c of (podSpec(executor).initContainers ?? []) as YamlObject[]) {
      expect(at(c, 'securityContext', 'seccompProfile', 'type'), JSON.stringify(c.name)).toBe(
        'RuntimeDefault',
      );
      expect(at(c, 'securityContext', 'procMount')).toBeUndefined();
      expect(at(c, 'securityContext', 'appArmorProfile')).toBeUndefined();
    }
    // The keyless gates and the Control Plane (`executor_url`, no `tls.executor`: its /readyz does
    // not probe the sandbox) run no tool: the runtime's defaults, no pod user namespace needed.
    for (const w of [gate, cp, ledger, nats, postgresql, roleJob, gateRoleJob, ledgerRoleJob]) {
      expect(podSpec(w).hostUsers ?? true).toBe(true);
      expect(at(podSpec(w), 'securityContext', 'seccompProfile', 'type')).toBe('RuntimeDefault');
      for (const c of containers(w)) {
        expect(at(c, 'securityContext', 'procMount')).toBeUndefined();
        expect(at(c, 'securityContext', 'appArmorProfile')).toBeUndefined();
      }
    }
  });

  it('the Control Plane: writable paths are volumes (data directory, /tmp); secrets are referenced, never contained', () => {
    const mounts = (at(podSpec(cp), 'containers', 0, 'volumeMounts') as YamlObject[]).map((m) => m.mountPath);
    expect(mounts.sort()).toEqual(['/etc/failclosed/tls', '/tmp', '/var/lib/failclosed']);
    const volumes = podSpec(cp).volumes as YamlObject[];
    expect(
      at(
        volumes.find((v) => v.name === 'seed'),
        'secret',
        'secretName',
      ),
    ).toBe('failclosed-data');
    expect(
      at(
        volumes.find((v) => v.name === 'tls'),
        'secret',
        'secretName',
      ),
    ).toBe('failclosed-control-plane-tls');
    expect(manifests.filter(({ doc }) => doc.kind === 'Secret')).toEqual([]);
    for (const w of WORKLOADS)
      for (const c of containers(w))
        for (const e of (c.env ?? []) as YamlObject[])
          if (/PASSWORD|SECRET|TOKEN/.test(JSON.stringify(e.name)))
            expect(at(e, 'valueFrom', 'secretKeyRef', 'name'), JSON.stringify(e.name)).toBeDefined();
    const backend = ((at(podSpec(cp), 'containers', 0, 'env') as YamlObject[]).find(
      (e) => e.name === 'FAILCLOSED_BACKEND',
    )!.value ?? '') as string;
    expect(backend).toMatch(/^postgres:\/\/[^:@/]+@/);
  });

  it('the Control Plane holds no checkpoint key: its data directory is made without ledger.jwk, and it references no ledger Secret', () => {
    // `serve control-plane` refuses to start while keys/ledger.jwk is in its data directory.
    const [dataDir] = podSpec(cp).initContainers as YamlObject[];
    const script = (dataDir!.command as string[]).join(' ');
    expect(script).toContain('issuer.jwk');
    // ledger.jwk is named only by the refusal below, never copied.
    expect(script).not.toMatch(/install[^\n]*ledger\.jwk/);
    const withoutScript = structuredClone(cp);
    delete (at(withoutScript, 'spec', 'template', 'spec', 'initContainers', 0) as YamlObject).command;
    expect(JSON.stringify(withoutScript)).not.toMatch(
      /ledger\.jwk|failclosed-ledger-key|failclosed-ledger-tls/,
    );
    // Only the ledger Deployment references the checkpoint key's Secret.
    for (const w of WORKLOADS)
      expect(JSON.stringify(w).includes('failclosed-ledger-key'), at(w, 'metadata', 'name') as string).toBe(
        w === ledger,
      );
  });

  describe('the data directory init container, run on a seed like the Secret failclosed-data', () => {
    const [dataDir] = podSpec(cp).initContainers as YamlObject[];
    const [shell, flag, script] = dataDir!.command as [string, string, string];
    /** Runs the script with the seed and data paths moved under a temporary directory. */
    const run = (seedFiles: readonly string[]) => {
      const root = mkdtempSync(join(tmpdir(), 'fc-k8s-seed-'));
      try {
        const [seed, data] = [join(root, 'seed'), join(root, 'data')];
        mkdirSync(seed);
        mkdirSync(data);
        for (const f of seedFiles) writeFileSync(join(seed, f), f);
        const moved = script.replaceAll('/etc/failclosed/seed', seed).replaceAll('/var/lib/failclosed', data);
        const r = spawnSync(shell, [flag, moved], { encoding: 'utf8' });
        const files = readdirSync(data, { recursive: true, encoding: 'utf8' }).sort();
        return { status: r.status, stderr: r.stderr, files };
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    };
    const SEED = ['failclosed.json', 'operator.token', 'issuer.jwk', 'derivation.key'];

    it('copies the seed into the layout serve control-plane reads', () => {
      const r = run(SEED);
      expect(r.status, r.stderr).toBe(0);
      expect(r.files).toEqual(
        ['failclosed.json', 'keys', 'keys/derivation.key', 'keys/issuer.jwk', 'operator.token'].sort(),
      );
    });

    it('copies the ledger binding with the seed (docs/storage.md "One ledger per data directory")', () => {
      const r = run([...SEED, 'ledger-binding.json']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.files).toContain('ledger-binding.json');
    });

    it('refuses a Secret that still holds ledger.jwk, copying nothing and saying how to make it again', () => {
      const r = run([...SEED, 'ledger.jwk']);
      expect(r.status).not.toBe(0);
      expect(r.files).toEqual([]);
      expect(r.stderr).toContain('ledger.jwk');
      expect(r.stderr).toContain('kubectl -n failclosed delete secret failclosed-data');
    });
  });

  it('the ledger process: serve ledger, two replicas, two container ports (its mutual-TLS listener, its metrics) and a Service for the first alone, no probe, grace outlasts the preStop pause', () => {
    expect(at(ledger, 'spec', 'replicas')).toBe(2);
    expect(podSpec(ledger).containers).toHaveLength(1);
    expect((podSpec(ledger).initContainers as YamlObject[]).map((c) => c.name)).toEqual(['wait-for-role']);
    const c = (podSpec(ledger).containers as YamlObject[])[0]!;
    expect(c.args).toEqual(['serve', 'ledger', '--config', '/etc/failclosed/ledger/ledger.json']);
    expect(c.ports).toEqual([
      { name: 'ledger', containerPort: 7460, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
    ]);
    // The metrics port is the one its configuration serves them on.
    const config = JSON.parse(
      at(find('ConfigMap', 'failclosed-ledger'), 'data', 'ledger.json') as string,
    ) as { metrics?: { listen?: string } };
    expect(config.metrics?.listen).toBe('0.0.0.0:9464');
    const service = find('Service', 'failclosed-ledger');
    expect(at(service, 'spec', 'type')).toBe('ClusterIP');
    expect(at(service, 'spec', 'ports')).toEqual([
      { name: 'ledger', port: 7460, targetPort: 'ledger', protocol: 'TCP' },
    ]);
    expect(at(service, 'spec', 'selector')).toEqual(at(ledger, 'spec', 'template', 'metadata', 'labels'));
    expect(at(ledger, 'spec', 'template', 'metadata', 'labels', 'app.kubernetes.io/component')).toBe(
      'ledger',
    );
    // Mutual TLS for the control-plane role only and no HTTP health endpoint: a kubelet probe
    // would be a refused peer.
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'])
      expect(c[probe], probe).toBeUndefined();
    const pause = Number((at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[])[1]);
    expect(podSpec(ledger).terminationGracePeriodSeconds as number).toBeGreaterThan(pause);
  });

  it('the ledger process mounts only its own key and certificate: its config a ConfigMap, the checkpoint key and its TLS files each a Secret of its own, its binding file on a claim of its own, no data directory, its own database role', () => {
    const pod = podSpec(ledger);
    expect(pod.serviceAccountName).toBe('failclosed-ledger');
    expect(at(find('ServiceAccount', 'failclosed-ledger'), 'automountServiceAccountToken')).toBe(false);
    const c = (pod.containers as YamlObject[])[0]!;
    const mounts = Object.fromEntries(
      (c.volumeMounts as YamlObject[]).map((m) => [m.mountPath as string, m.name as string]),
    );
    expect(mounts).toEqual({
      '/etc/failclosed/ledger': 'config',
      '/etc/failclosed/key': 'key',
      '/etc/failclosed/tls': 'tls',
      '/tmp': 'tmp',
      '/var/lib/failclosed-ledger': 'state',
    });
    for (const m of c.volumeMounts as YamlObject[])
      if (m.name !== 'tmp' && m.name !== 'state') expect(m.readOnly, m.name as string).toBe(true);
    // Each replica's own claim, kept across restarts: the binding file ledger.json names, where it
    // remembers the largest checkpoint it signed (a database restored behind it is refused).
    const claims = at(ledger, 'spec', 'volumeClaimTemplates') as YamlObject[];
    expect(claims.map((t) => at(t, 'metadata', 'name'))).toEqual(['state']);
    expect(at(claims[0], 'spec', 'accessModes')).toEqual(['ReadWriteOnce']);
    expect(
      (
        JSON.parse(at(find('ConfigMap', 'failclosed-ledger'), 'data', 'ledger.json') as string) as {
          binding?: string;
        }
      ).binding,
    ).toBe('/var/lib/failclosed-ledger/ledger-binding.json');
    expect(at(ledger, 'spec', 'podManagementPolicy')).toBe('Parallel');
    const volumes = Object.fromEntries((pod.volumes as YamlObject[]).map((v) => [v.name as string, v]));
    expect(Object.keys(volumes).sort()).toEqual(['config', 'key', 'tls', 'tmp']);
    expect(at(volumes, 'config', 'configMap', 'name')).toBe('failclosed-ledger');
    expect(at(volumes, 'key', 'secret', 'secretName')).toBe('failclosed-ledger-key');
    expect(at(volumes, 'tls', 'secret', 'secretName')).toBe('failclosed-ledger-tls');
    expect(at(volumes, 'tmp', 'emptyDir')).toBeDefined();
    // Not the Control Plane's data Secret (issuer key, operator token) nor its certificate, not
    // the owner's database password, not another role's certificate.
    expect(JSON.stringify(ledger)).not.toMatch(
      /failclosed-data|failclosed-control-plane-tls|failclosed-gate-tls|failclosed-executor-tls|failclosed-postgresql"|issuer\.jwk|operator\.token|FAILCLOSED_BACKEND/,
    );
    const env = (c.env ?? []) as YamlObject[];
    expect(env.map((e) => e.name)).toEqual(['PGPASSWORD']);
    expect(at(env[0], 'valueFrom', 'secretKeyRef', 'name')).toBe('failclosed-ledger-postgresql');
    const data = at(find('ConfigMap', 'failclosed-ledger'), 'data') as Record<string, string>;
    expect(Object.keys(data)).toEqual(['ledger.json']);
    expect(data['ledger.json']).not.toMatch(/PRIVATE KEY|"d"\s*:|:\/\/[^@/]*:[^@/]*@|password/i);
    // The key file it names lies in the checkpoint key's Secret volume; its TLS files in its own.
    const config = JSON.parse(data['ledger.json']!) as { key: string; tls: Record<string, string> };
    expect(config.key).toBe('/etc/failclosed/key/ledger.jwk');
    for (const f of Object.values(config.tls)) expect(f.startsWith('/etc/failclosed/tls/'), f).toBe(true);
    // No other workload mounts the ledger process's key or certificate; its database password is
    // known to its role Job alone besides it (which sets it).
    for (const w of WORKLOADS) {
      if (w === ledger) continue;
      const name = at(w, 'metadata', 'name') as string;
      expect(JSON.stringify(w), name).not.toMatch(/failclosed-ledger-(key|tls)/);
      expect(JSON.stringify(w).includes('failclosed-ledger-postgresql'), name).toBe(w === ledgerRoleJob);
    }
  });

  it('executors: serve executor, two replicas, one container port (the execution listener), its own Service', () => {
    expect(at(executor, 'spec', 'replicas')).toBe(2);
    expect(podSpec(executor).containers).toHaveLength(1);
    expect((podSpec(executor).initContainers as YamlObject[]).map((c) => c.name)).toEqual(['wait-for-role']);
    const c = (podSpec(executor).containers as YamlObject[])[0]!;
    expect(c.args).toEqual(['serve', 'executor', '--config', '/etc/failclosed/executor/executor.json']);
    expect(c.ports).toEqual([{ name: 'execution', containerPort: 7443, protocol: 'TCP' }]);
    const service = find('Service', 'failclosed-executor');
    expect(at(service, 'spec', 'type')).toBe('ClusterIP');
    expect(at(service, 'spec', 'ports')).toEqual([
      { name: 'execution', port: 7443, targetPort: 'execution', protocol: 'TCP' },
    ]);
    expect(at(service, 'spec', 'selector')).toEqual(at(executor, 'spec', 'template', 'metadata', 'labels'));
    expect(at(executor, 'spec', 'template', 'metadata', 'labels', 'app.kubernetes.io/component')).toBe(
      'executor',
    );
  });

  it('each Service selects the pods of exactly one workload: the clients Service the keyless gates alone, never the Control Plane or an executor', () => {
    const labelsOf = (w: YamlObject) =>
      at(w, 'spec', 'template', 'metadata', 'labels') as Record<string, string>;
    const selectsPod = (svc: YamlObject, labels: Record<string, string>) =>
      Object.entries(at(svc, 'spec', 'selector') as Record<string, string>).every(
        ([k, v]) => labels[k] === v,
      );
    const expected: Record<string, YamlObject> = {
      'failclosed-gate': gate,
      'failclosed-control-plane': cp,
      'failclosed-control-plane-internal': cp,
      'failclosed-ledger': ledger,
      'failclosed-executor': executor,
      'failclosed-nats': nats,
      postgresql,
    };
    const services = manifests.filter(({ doc }) => doc.kind === 'Service').map(({ doc }) => doc);
    expect(services.map((d) => at(d, 'metadata', 'name')).sort()).toEqual(Object.keys(expected).sort());
    for (const svc of services) {
      const name = at(svc, 'metadata', 'name') as string;
      for (const w of WORKLOADS)
        expect(selectsPod(svc, labelsOf(w)), `${name} selects ${at(w, 'metadata', 'name') as string}`).toBe(
          w === expected[name],
        );
    }
  });

  it('executors: no probe on the mutual-TLS port (a probe is a refused, recorded handshake), grace outlasts the preStop pause', () => {
    const c = (podSpec(executor).containers as YamlObject[])[0]!;
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'])
      expect(c[probe], probe).toBeUndefined();
    const pause = Number((at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[])[1]);
    expect(podSpec(executor).terminationGracePeriodSeconds as number).toBeGreaterThan(pause);
  });

  it('executors: public keys only: no data directory, its own certificate Secret, its config a ConfigMap with no secret in it', () => {
    const pod = podSpec(executor);
    expect(pod.serviceAccountName).toBe('failclosed-executor');
    expect(at(find('ServiceAccount', 'failclosed-executor'), 'automountServiceAccountToken')).toBe(false);
    const c = (pod.containers as YamlObject[])[0]!;
    const mounts = Object.fromEntries(
      (c.volumeMounts as YamlObject[]).map((m) => [m.mountPath as string, m.name as string]),
    );
    expect(mounts).toEqual({
      '/etc/failclosed/executor': 'config',
      '/etc/failclosed/tls': 'tls',
      '/tmp': 'tmp',
    });
    const volumes = Object.fromEntries((pod.volumes as YamlObject[]).map((v) => [v.name as string, v]));
    expect(at(volumes, 'config', 'configMap', 'name')).toBe('failclosed-executor');
    expect(at(volumes, 'tls', 'secret', 'secretName')).toBe('failclosed-executor-tls');
    // Neither the Control Plane's data Secret (issuer key, operator token), the checkpoint key, nor
    // another role's certificate.
    const text = JSON.stringify(executor);
    // Nor the gates' database password (the Secret failclosed-postgresql): a role of its own.
    expect(text).not.toMatch(
      /failclosed-data|failclosed-gate-tls|failclosed-control-plane-tls|failclosed-ledger-tls|failclosed-ledger-key|failclosed-postgresql|failclosed-gate-postgresql|failclosed-ledger-postgresql|gate\.key|\.jwk|operator\.token/,
    );
    const configMaps = manifests.filter(({ doc }) => doc.kind === 'ConfigMap');
    expect(configMaps.map(({ doc }) => at(doc, 'metadata', 'name')).sort()).toEqual([
      'failclosed-executor',
      'failclosed-executor-role',
      'failclosed-gate',
      'failclosed-gate-role',
      'failclosed-ledger',
      'failclosed-ledger-role',
    ]);
    const data = at(find('ConfigMap', 'failclosed-executor'), 'data') as Record<string, string>;
    expect(Object.keys(data)).toEqual(['executor.json']);
    expect(data['executor.json']).not.toMatch(/PRIVATE KEY|:\/\/[^@/]*:[^@/]*@|password/i);
    const env = (c.env ?? []) as YamlObject[];
    expect(env.map((e) => e.name)).toEqual(['PGPASSWORD']);
    expect(at(env[0], 'valueFrom', 'secretKeyRef', 'name')).toBe('failclosed-executor-postgresql');
  });

  /** The three role Jobs, and the workload that connects as the role each grants. */
  const ROLE_JOBS = [
    {
      file: '25-executor-role.yaml',
      name: 'failclosed-executor-role',
      sql: 'executor-role.sql',
      env: 'FAILCLOSED_EXECUTOR_DB_PASSWORD',
      secret: 'failclosed-executor-postgresql',
      user: executor,
      /** The user's database URL and schema, from its configuration. */
      store: () => {
        const c = JSON.parse(
          at(find('ConfigMap', 'failclosed-executor'), 'data', 'executor.json') as string,
        ) as {
          nonces: string;
          nonces_schema: string;
        };
        return { url: new URL(c.nonces), schema: c.nonces_schema };
      },
    },
    {
      file: '26-gate-role.yaml',
      name: 'failclosed-gate-role',
      sql: 'gate-role.sql',
      env: 'FAILCLOSED_GATE_DB_PASSWORD',
      secret: 'failclosed-gate-postgresql',
      user: gate,
      store: () => {
        const c = JSON.parse(at(find('ConfigMap', 'failclosed-gate'), 'data', 'gate.json') as string) as {
          state: string;
        };
        const url = new URL(c.state);
        return { url, schema: url.searchParams.get('schema') ?? '' };
      },
    },
    {
      file: '27-ledger-role.yaml',
      name: 'failclosed-ledger-role',
      sql: 'ledger-role.sql',
      env: 'FAILCLOSED_LEDGER_DB_PASSWORD',
      secret: 'failclosed-ledger-postgresql',
      user: ledger,
      store: () => {
        const c = JSON.parse(at(find('ConfigMap', 'failclosed-ledger'), 'data', 'ledger.json') as string) as {
          state: string;
        };
        const url = new URL(c.state);
        return { url, schema: url.searchParams.get('schema') ?? '' };
      },
    },
  ];
  for (const r of ROLE_JOBS)
    describe(`the database role of ${at(r.user, 'metadata', 'name') as string} (FC-INV-6 least privilege): ${r.file}`, () => {
      const job = find('Job', r.name);
      const pod = podSpec(job);
      const main = (pod.containers as YamlObject[])[0]!;
      const command = main.command as string[];
      const vars = Object.fromEntries(
        command.flatMap((w, i) => (command[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
      );
      const secretOf = (c: YamlObject, name: string) =>
        at(
          ((c.env ?? []) as YamlObject[]).find((e) => e.name === name),
          'valueFrom',
          'secretKeyRef',
          'name',
        );
      const ownerBackend = new URL(
        (at(podSpec(cp), 'containers', 0, 'env') as YamlObject[]).find(
          (e) => e.name === 'FAILCLOSED_BACKEND',
        )!.value ?? '',
      );
      const script = (c: YamlObject) => (c.command as string[]).join(' ');

      it('its ConfigMap holds the shipped SQL file byte for byte, and the Job runs it with psql', () => {
        const shipped = readFileSync(join(DEPLOY_DIR, 'postgres', r.sql), 'utf8');
        const data = at(find('ConfigMap', r.name), 'data') as Record<string, string>;
        expect(Object.keys(data)).toEqual([r.sql]);
        expect(data[r.sql]).toBe(shipped);
        expect(pod.containers).toHaveLength(1);
        expect(command[0]).toBe('psql');
        expect(main.image).toBe(at(podSpec(postgresql), 'containers', 0, 'image'));
        const mount = (main.volumeMounts as YamlObject[]).find((m) => m.name === 'sql')!;
        expect(mount.readOnly).toBe(true);
        expect(command[command.indexOf('-f') + 1]).toBe(`${mount.mountPath as string}/${r.sql}`);
        expect(
          at(
            (pod.volumes as YamlObject[]).find((v) => v.name === 'sql'),
            'configMap',
            'name',
          ),
        ).toBe(r.name);
        expect(vars.ON_ERROR_STOP).toBe('1');
        expect(pod.restartPolicy).toBe('OnFailure');
        expect(pod.serviceAccountName).toBeUndefined();
      });

      it('connects as the Control Plane role (the schema owner), after the Control Plane migrated the schema', () => {
        const url = new URL(command[1]!);
        expect(url.password).toBe('');
        expect(`${url.username}@${url.host}${url.pathname}`).toBe(
          `${ownerBackend.username}@${ownerBackend.host}${ownerBackend.pathname}`,
        );
        expect(vars.schema).toBe(ownerBackend.searchParams.get('schema'));
        expect(secretOf(main, 'PGPASSWORD')).toBe('failclosed-postgresql');
        // Its init container waits, as the same role, until a table the grants name exists.
        const [wait] = pod.initContainers as YamlObject[];
        expect(script(wait!)).toContain(command[1]);
        expect(script(wait!)).toMatch(new RegExp(`${vars.schema}\\.[a-z_]+ LIMIT 0`));
        expect(secretOf(wait!, 'PGPASSWORD')).toBe('failclosed-postgresql');
      });

      it('grants the role its users connect as, not the owner, its password from its own Secret through the environment', () => {
        const store = r.store();
        expect(store.url.username).toBe(vars.role);
        expect(store.url.password).toBe('');
        expect(store.schema).toBe(vars.schema);
        expect(vars.role).not.toBe(ownerBackend.username);
        expect(vars.password_env).toBe(r.env);
        expect(secretOf(main, r.env)).toBe(r.secret);
        expect(r.secret).not.toBe('failclosed-postgresql');
        expect(secretOf((podSpec(r.user).containers as YamlObject[])[0]!, 'PGPASSWORD')).toBe(r.secret);
        expect(command.join(' ')).not.toMatch(/PASSWORD=|\$\(|\$\{/);
      });

      it('its users start after it: their init container waits until their role reads a granted table', () => {
        const [wait] = podSpec(r.user).initContainers as YamlObject[];
        const { url, schema } = r.store();
        expect(wait!.name).toBe('wait-for-role');
        expect(script(wait!)).toContain(`postgres://${url.username}@${url.host}${url.pathname}`);
        expect(script(wait!)).toMatch(new RegExp(`${schema}\\.[a-z_]+ LIMIT 0`));
        expect(secretOf(wait!, 'PGPASSWORD')).toBe(r.secret);
        expect(wait!.image).toBe(main.image);
      });
    });

  it('the three role Jobs grant three different roles, from three different Secrets', () => {
    const vars = (name: string) => {
      const c = at(podSpec(find('Job', name)), 'containers', 0, 'command') as string[];
      return Object.fromEntries(
        c.flatMap((w, i) => (c[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
      );
    };
    const jobs = manifests
      .filter(({ doc }) => doc.kind === 'Job')
      .map(({ doc }) => at(doc, 'metadata', 'name'));
    expect(jobs.sort()).toEqual(ROLE_JOBS.map((r) => r.name).sort());
    expect(new Set(ROLE_JOBS.map((r) => vars(r.name).role)).size).toBe(ROLE_JOBS.length);
    expect(new Set(ROLE_JOBS.map((r) => vars(r.name).password_env)).size).toBe(ROLE_JOBS.length);
    expect(new Set(ROLE_JOBS.map((r) => r.secret)).size).toBe(ROLE_JOBS.length);
  });

  it('NATS: JetStream on, only its client and monitoring ports, the stream in a volume', () => {
    const c = (podSpec(nats).containers as YamlObject[])[0]!;
    expect(c.args as string[]).toContain('--jetstream');
    expect((c.ports as YamlObject[]).map((p) => p.containerPort)).toEqual([4222, 8222]);
    expect(at(find('Service', 'failclosed-nats'), 'spec', 'ports', 0, 'port')).toBe(4222);
    expect((at(find('Service', 'failclosed-nats'), 'spec', 'ports') as YamlObject[]).length).toBe(1);
    expect(c.image).toMatch(/^nats:\d+\.\d+\.\d+/);
  });
});
