/**
 * deploy/kubernetes/: every manifest validated against the Kubernetes v1.33.0 OpenAPI schema
 * (the pinned `kubernetes-models` validators), and the gates' and PostgreSQL's pod security
 * asserted key by key (the OpenAPI schema does not refuse unknown keys, so a misspelt one would
 * pass it; these checks name each key).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
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
  'v1/Namespace': (d) => new Namespace(d),
  'v1/Service': (d) => new Service(d),
  'v1/ServiceAccount': (d) => new ServiceAccount(d),
  'apps/v1/Deployment': (d) => new Deployment(d),
  'apps/v1/StatefulSet': (d) => new StatefulSet(d),
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
const postgresql = find('StatefulSet', 'postgresql');
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

  it('gates: two replicas, liveness on /healthz, readiness on /readyz, the Gate port the only container port', () => {
    expect(at(gate, 'spec', 'replicas')).toBe(2);
    const c = (podSpec(gate).containers as YamlObject[])[0]!;
    expect(podSpec(gate).containers).toHaveLength(1);
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
  });

  it('gates: the termination grace outlasts the preStop pause plus the drain (--grace)', () => {
    const c = (podSpec(gate).containers as YamlObject[])[0]!;
    const args = c.args as string[];
    const grace = Number(args[args.indexOf('--grace') + 1]);
    const pause = Number((at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[])[1]);
    expect(grace).toBeGreaterThan(0);
    expect(podSpec(gate).terminationGracePeriodSeconds as number).toBeGreaterThan(grace + pause);
  });

  it('every container: non-root, read-only root filesystem, no privilege escalation, every capability dropped, resources set', () => {
    for (const w of [gate, postgresql]) {
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

  it('gates: the relaxations bubblewrap needs come with a pod user namespace, and nowhere else', () => {
    // procMount: Unmasked is accepted only with hostUsers: false; it and the unconfined profiles
    // are the gate container's alone.
    expect(podSpec(gate).hostUsers).toBe(false);
    expect(at(podSpec(gate), 'securityContext', 'seccompProfile', 'type')).toBe('Unconfined');
    const [init, main] = containers(gate);
    expect(at(main, 'securityContext', 'procMount')).toBe('Unmasked');
    expect(at(main, 'securityContext', 'appArmorProfile', 'type')).toBe('Unconfined');
    expect(at(init, 'securityContext', 'procMount')).toBeUndefined();
    expect(at(podSpec(postgresql), 'securityContext', 'seccompProfile', 'type')).toBe('RuntimeDefault');
    for (const c of containers(postgresql)) {
      expect(at(c, 'securityContext', 'procMount')).toBeUndefined();
      expect(at(c, 'securityContext', 'appArmorProfile')).toBeUndefined();
    }
  });

  it('gates: writable paths are volumes (data directory, /tmp); secrets are referenced, never contained', () => {
    const mounts = (at(podSpec(gate), 'containers', 0, 'volumeMounts') as YamlObject[]).map(
      (m) => m.mountPath,
    );
    expect(mounts.sort()).toEqual(['/tmp', '/var/lib/failclosed']);
    const volumes = podSpec(gate).volumes as YamlObject[];
    expect(
      at(
        volumes.find((v) => v.name === 'seed'),
        'secret',
        'secretName',
      ),
    ).toBe('failclosed-data');
    expect(manifests.filter(({ doc }) => doc.kind === 'Secret' || doc.kind === 'ConfigMap')).toEqual([]);
    for (const w of [gate, postgresql])
      for (const c of containers(w))
        for (const e of (c.env ?? []) as YamlObject[])
          if (/PASSWORD|SECRET|TOKEN/.test(JSON.stringify(e.name)))
            expect(at(e, 'valueFrom', 'secretKeyRef', 'name'), JSON.stringify(e.name)).toBeDefined();
    const backend = ((at(podSpec(gate), 'containers', 0, 'env') as YamlObject[]).find(
      (e) => e.name === 'FAILCLOSED_BACKEND',
    )!.value ?? '') as string;
    expect(backend).toMatch(/^postgres:\/\/[^:@/]+@/);
  });
});
