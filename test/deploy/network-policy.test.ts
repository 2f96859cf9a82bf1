/**
 * The NetworkPolicies of deploy/kubernetes/40-network-policies.yaml, evaluated as data
 * (networking.k8s.io/v1 semantics, `reachable` in ./support.ts) over the pods the manifests
 * define and a few others: which endpoint may open which port to which (FC-INV-6 "only the Gate
 * reaches execution", L7 hardening). The labels of the gates, the executors (`serve executor`),
 * NATS, PostgreSQL and the Job granting the executors' database role are read from their
 * workloads, not restated here.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEPLOY_DIR, at, readYaml, reachable } from './support.js';
import type { Connection, Endpoint, Labels, NetworkPolicy, YamlObject } from './support.js';

const K8S = join(DEPLOY_DIR, 'kubernetes');
const docs = [
  '00-namespace.yaml',
  '10-postgresql.yaml',
  '20-gate.yaml',
  '25-executor-role.yaml',
  '30-executor.yaml',
  '35-nats.yaml',
  '40-network-policies.yaml',
].flatMap((f) => readYaml(join(K8S, f))) as YamlObject[];
const policies = docs.filter((d) => d.kind === 'NetworkPolicy') as unknown as NetworkPolicy[];
const templateLabels = (kind: string, name: string) =>
  at(
    docs.find((d) => d.kind === kind && at(d, 'metadata', 'name') === name),
    'spec',
    'template',
    'metadata',
    'labels',
  ) as Labels;

const NS = 'failclosed';
const namespaceDoc = docs.find((d) => d.kind === 'Namespace')!;
const namespaces = new Map<string, Labels>([
  [NS, { ...(at(namespaceDoc, 'metadata', 'labels') as Labels), 'kubernetes.io/metadata.name': NS }],
  ['kube-system', { 'kubernetes.io/metadata.name': 'kube-system' }],
  ['clients', { 'kubernetes.io/metadata.name': 'clients' }],
]);

const pod = (name: string, namespace: string, labels: Labels): Endpoint => ({
  kind: 'pod',
  name,
  namespace,
  labels,
});
const gateLabels = templateLabels('Deployment', 'failclosed-gate');
const postgresqlLabels = templateLabels('StatefulSet', 'postgresql');
const executorLabels = templateLabels('Deployment', 'failclosed-executor');
const natsLabels = templateLabels('Deployment', 'failclosed-nats');
const roleJobLabels = templateLabels('Job', 'failclosed-executor-role');

const gate = pod('gate', NS, gateLabels);
const otherGate = pod('gate-2', NS, gateLabels);
const postgresql = pod('postgresql', NS, postgresqlLabels);
const executor = pod('executor', NS, executorLabels);
const otherExecutor = pod('executor-2', NS, executorLabels);
const nats = pod('nats', NS, natsLabels);
const roleJob = pod('executor-role', NS, roleJobLabels);
const impostorRoleJob = pod('impostor-executor-role', 'clients', roleJobLabels);
const impostorExecutor = pod('impostor-executor', 'clients', executorLabels);
const stranger = pod('stranger', NS, { app: 'debug' }); // any other pod in the namespace
const client = pod('client', 'clients', { app: 'agent' });
const impostorGate = pod('impostor-gate', 'clients', gateLabels); // gate labels, other namespace
const impostorDb = pod('impostor-db', 'clients', postgresqlLabels);
const dns = pod('coredns', 'kube-system', { 'k8s-app': 'kube-dns' });
const fakeDns = pod('fake-dns', 'clients', { 'k8s-app': 'kube-dns' });
const internet = { kind: 'external', name: 'internet', ip: '203.0.113.7' } as const;

const tcp = (port: number): Connection => ({ port, protocol: 'TCP' });
const udp = (port: number): Connection => ({ port, protocol: 'UDP' });
const can = (src: Endpoint, dst: Endpoint, c: Connection) => reachable(src, dst, c, policies, namespaces);

/** Ports a probe tries besides the allowed ones. */
const OTHER_PORTS = [22, 80, 443, 4222, 5432, 7071, 7443, 7444, 8080, 8222, 9090, 9464];
const EXECUTION = tcp(7443);
const INTERNAL = tcp(7444);
/** Every endpoint the tests know, inside the namespace and out. */
const EVERYONE: readonly Endpoint[] = [
  gate,
  otherGate,
  executor,
  otherExecutor,
  postgresql,
  nats,
  roleJob,
  impostorRoleJob,
  stranger,
  client,
  impostorGate,
  impostorExecutor,
  impostorDb,
  dns,
  fakeDns,
  internet,
];

describe('NetworkPolicies of the failclosed namespace', () => {
  it('default deny: one policy selects every pod for both ingress and egress, with no rule', () => {
    const deny = policies.filter((p) => JSON.stringify(p.spec.podSelector) === '{}');
    expect(deny).toHaveLength(1);
    expect([...deny[0]!.spec.policyTypes!].sort()).toEqual(['Egress', 'Ingress']);
    expect(deny[0]!.spec.ingress).toBeUndefined();
    expect(deny[0]!.spec.egress).toBeUndefined();
    expect(policies.every((p) => p.metadata.namespace === NS)).toBe(true);
  });

  it('clients reach the gates on TCP 7070, from any namespace or outside the cluster', () => {
    for (const src of [client, internet, impostorGate]) {
      expect(can(src, gate, tcp(7070)), src.name).toBe(true);
      expect(can(src, otherGate, tcp(7070)), src.name).toBe(true);
    }
  });

  it('clients reach nothing else on the gates: no other port, not UDP', () => {
    for (const src of [client, internet]) {
      for (const port of OTHER_PORTS) expect(can(src, gate, tcp(port)), `${src.name} ${port}`).toBe(false);
      expect(can(src, gate, udp(7070)), src.name).toBe(false);
    }
  });

  it('gates reach PostgreSQL on TCP 5432 only', () => {
    expect(can(gate, postgresql, tcp(5432))).toBe(true);
    expect(can(otherGate, postgresql, tcp(5432))).toBe(true);
    expect(can(gate, postgresql, udp(5432))).toBe(false);
    for (const port of OTHER_PORTS.filter((p) => p !== 5432))
      expect(can(gate, postgresql, tcp(port)), `${port}`).toBe(false);
  });

  it('gates reach the cluster DNS on UDP and TCP 53, and no impostor of it', () => {
    expect(can(gate, dns, udp(53))).toBe(true);
    expect(can(gate, dns, tcp(53))).toBe(true);
    expect(can(gate, dns, tcp(443))).toBe(false);
    expect(can(gate, fakeDns, udp(53))).toBe(false);
  });

  it('gates reach nothing else: not the internet, not clients, not each other, not a PostgreSQL-labelled pod elsewhere', () => {
    for (const port of [...OTHER_PORTS, 53]) expect(can(gate, internet, tcp(port)), `${port}`).toBe(false);
    expect(can(gate, otherGate, INTERNAL)).toBe(false);
    expect(can(gate, impostorExecutor, EXECUTION)).toBe(false);
    expect(can(gate, client, tcp(7070))).toBe(false);
    expect(can(gate, otherGate, tcp(7070))).toBe(false);
    expect(can(gate, stranger, tcp(8080))).toBe(false);
    expect(can(gate, impostorDb, tcp(5432))).toBe(false);
  });

  it('PostgreSQL accepts only the gates and the executors (their nonce table): not clients, not other pods of the namespace, not gate-labelled pods elsewhere', () => {
    for (const src of [client, internet, stranger, impostorGate, impostorExecutor, dns, nats])
      expect(can(src, postgresql, tcp(5432)), src.name).toBe(false);
  });

  it('PostgreSQL: of every endpoint known, exactly the gates, the executors and the executor-role Job reach it', () => {
    for (const src of EVERYONE)
      expect(can(src, postgresql, tcp(5432)), src.name).toBe(
        [gate, otherGate, executor, otherExecutor, roleJob].includes(src),
      );
  });

  it('the executor-role Job reaches PostgreSQL and DNS only, and nothing reaches it', () => {
    expect(can(roleJob, postgresql, tcp(5432))).toBe(true);
    expect(can(roleJob, dns, udp(53))).toBe(true);
    expect(can(roleJob, dns, tcp(53))).toBe(true);
    expect(can(roleJob, postgresql, udp(5432))).toBe(false);
    for (const dst of [gate, otherGate, executor, nats, internet, client, stranger, impostorDb, fakeDns])
      for (const port of [...OTHER_PORTS, 53, 7070])
        expect(can(roleJob, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
    for (const src of EVERYONE)
      for (const port of [...OTHER_PORTS, 7070])
        expect(can(src, roleJob, tcp(port)), `${src.name} ${port}`).toBe(false);
  });

  it('PostgreSQL reaches nothing, not even DNS', () => {
    for (const dst of [internet, dns, gate, client]) {
      expect(can(postgresql, dst, tcp(443)), dst.name).toBe(false);
      expect(can(postgresql, dst, udp(53)), dst.name).toBe(false);
      expect(can(postgresql, dst, tcp(7070)), dst.name).toBe(false);
    }
  });

  it('any other pod in the namespace is isolated both ways', () => {
    for (const dst of [gate, executor, nats, postgresql, internet, dns]) {
      expect(can(stranger, dst, tcp(7070)), dst.name).toBe(false);
      expect(can(stranger, dst, tcp(5432)), dst.name).toBe(false);
      expect(can(stranger, dst, udp(53)), dst.name).toBe(false);
    }
    expect(can(client, stranger, tcp(8080))).toBe(false);
  });

  it('the evaluator can say yes and no: without the policies everything is reachable, and a dropped policy opens or closes its path', () => {
    const none = (s: Endpoint, d: Endpoint, c: Connection) => reachable(s, d, c, [], namespaces);
    expect(none(client, postgresql, tcp(5432))).toBe(true);
    expect(none(gate, internet, tcp(443))).toBe(true);
    const withoutPg = policies.filter((p) => p.metadata.name !== 'postgresql-ingress-gates');
    expect(reachable(gate, postgresql, tcp(5432), withoutPg, namespaces)).toBe(false);
    const withoutDefault = policies.filter((p) => p.metadata.name !== 'default-deny');
    expect(reachable(postgresql, internet, tcp(443), withoutDefault, namespaces)).toBe(true);
    // Without the executors' ingress policy the default deny still closes their port to everyone,
    // the gates included; without the default deny, a stranger reaches it.
    const withoutExecIngress = policies.filter((p) => p.metadata.name !== 'executor-ingress-gates');
    expect(reachable(gate, executor, EXECUTION, withoutExecIngress, namespaces)).toBe(false);
    expect(none(client, executor, EXECUTION)).toBe(true);
    // The executor-role Job reaches PostgreSQL through its own egress policy, not by accident.
    const withoutRoleEgress = policies.filter((p) => p.metadata.name !== 'executor-role-egress');
    expect(reachable(roleJob, postgresql, tcp(5432), withoutRoleEgress, namespaces)).toBe(false);
  });

  it('only the gates reach the execution listener (FC-INV-6): of every endpoint known, exactly the gate pods', () => {
    for (const dst of [executor, otherExecutor])
      for (const src of EVERYONE)
        expect(can(src, dst, EXECUTION), `${src.name} -> ${dst.name}:7443`).toBe(
          src === gate || src === otherGate,
        );
  });

  it('the executors accept nothing else: no other port, not UDP, not from a gate-labelled pod of another namespace', () => {
    for (const src of [gate, client, internet, stranger])
      for (const port of OTHER_PORTS.filter((p) => p !== 7443))
        expect(can(src, executor, tcp(port)), `${src.name} ${port}`).toBe(false);
    expect(can(gate, executor, udp(7443))).toBe(false);
    expect(can(impostorGate, executor, EXECUTION)).toBe(false);
  });

  it('only the executors reach the gates internal listener: of every endpoint known, exactly the executor pods', () => {
    for (const dst of [gate, otherGate])
      for (const src of EVERYONE)
        expect(can(src, dst, INTERNAL), `${src.name} -> ${dst.name}:7444`).toBe(
          src === executor || src === otherExecutor,
        );
  });

  it('executors reach the gates internal port, PostgreSQL, NATS and DNS, and nothing else', () => {
    expect(can(executor, gate, INTERNAL)).toBe(true);
    expect(can(executor, postgresql, tcp(5432))).toBe(true);
    expect(can(executor, nats, tcp(4222))).toBe(true);
    expect(can(executor, dns, udp(53))).toBe(true);
    expect(can(executor, dns, tcp(53))).toBe(true);
    // Not the gates' client port: the Execution Layer does not call the Gate as a client.
    expect(can(executor, gate, tcp(7070))).toBe(false);
    expect(can(executor, otherExecutor, EXECUTION)).toBe(false);
    for (const dst of [internet, client, stranger, impostorDb, fakeDns, impostorGate])
      for (const port of [...OTHER_PORTS, 53, 7070])
        expect(can(executor, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
    for (const port of OTHER_PORTS.filter((p) => p !== 7444))
      expect(can(executor, gate, tcp(port)), `gate ${port}`).toBe(false);
  });

  it('NATS accepts the gates and the executors on 4222 only, and reaches nothing', () => {
    for (const src of EVERYONE)
      expect(can(src, nats, tcp(4222)), src.name).toBe(
        [gate, otherGate, executor, otherExecutor].includes(src),
      );
    expect(can(gate, nats, tcp(8222))).toBe(false);
    expect(can(gate, nats, tcp(4222))).toBe(true);
    for (const dst of [internet, dns, gate, executor, postgresql]) {
      expect(can(nats, dst, tcp(443)), dst.name).toBe(false);
      expect(can(nats, dst, udp(53)), dst.name).toBe(false);
      expect(can(nats, dst, INTERNAL), dst.name).toBe(false);
    }
  });
});
