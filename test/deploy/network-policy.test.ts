/**
 * The NetworkPolicies of deploy/kubernetes/40-network-policies.yaml, evaluated as data
 * (networking.k8s.io/v1 semantics, `reachable` in ./support.ts) over the pods the manifests
 * define and a few others: which endpoint may open which port to which, in the separated shape
 * (FC-INV-6 "only the Gate reaches execution", SPEC §1 separation of powers, L7 mutual TLS
 * between roles): clients reach the keyless Gates only; the Gates reach the Control Plane's
 * internal port and the executors; the executors the Control Plane's internal port and
 * PostgreSQL; the Control Plane PostgreSQL, the executors and the ledger process; only the Control
 * Plane reaches the ledger process (the checkpoint key), which reaches PostgreSQL alone;
 * PostgreSQL admits only the roles that use it. The labels of the Gates (`serve gate`), the
 * Control Plane (`serve control-plane`), the ledger process (`serve ledger`), the executors
 * (`serve executor`), NATS, PostgreSQL and the three role Jobs are read from their workloads, not
 * restated here.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEPLOY_DIR, at, readYaml, reachable } from './support.js';
import type { Connection, Endpoint, Labels, NetworkPolicy, YamlObject } from './support.js';

const K8S = join(DEPLOY_DIR, 'kubernetes');
const docs = [
  '00-namespace.yaml',
  '10-postgresql.yaml',
  '20-control-plane.yaml',
  '25-executor-role.yaml',
  '26-gate-role.yaml',
  '27-ledger-role.yaml',
  '28-gate.yaml',
  '29-ledger.yaml',
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
  ['operators', { 'kubernetes.io/metadata.name': 'operators', 'failclosed.dev/operators': 'true' }],
  ['monitoring', { 'kubernetes.io/metadata.name': 'monitoring', 'failclosed.dev/monitoring': 'true' }],
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
const gateRoleJobLabels = templateLabels('Job', 'failclosed-gate-role');
const ledgerRoleJobLabels = templateLabels('Job', 'failclosed-ledger-role');
const cpLabels = templateLabels('Deployment', 'failclosed-control-plane');
const ledgerLabels = templateLabels('StatefulSet', 'failclosed-ledger');
const OPERATOR = { 'failclosed.dev/access': 'operator' };

const gate = pod('gate', NS, gateLabels);
const otherGate = pod('gate-2', NS, gateLabels);
const postgresql = pod('postgresql', NS, postgresqlLabels);
const executor = pod('executor', NS, executorLabels);
const otherExecutor = pod('executor-2', NS, executorLabels);
const nats = pod('nats', NS, natsLabels);
const roleJob = pod('executor-role', NS, roleJobLabels);
const gateRoleJob = pod('gate-role', NS, gateRoleJobLabels);
const ledgerRoleJob = pod('ledger-role', NS, ledgerRoleJobLabels);
const cp = pod('control-plane', NS, cpLabels);
const ledger = pod('ledger', NS, ledgerLabels);
const otherLedger = pod('ledger-2', NS, ledgerLabels);
const impostorLedger = pod('impostor-ledger', 'clients', ledgerLabels);
const otherCp = pod('control-plane-2', NS, cpLabels);
const impostorCp = pod('impostor-control-plane', 'clients', cpLabels);
const operator = pod('operator', 'operators', OPERATOR);
// Operator labels where clients run, and an unlabelled pod where operators run: neither admitted.
const clientAsOperator = pod('client-as-operator', 'clients', OPERATOR);
const operatorNsStranger = pod('operators-stranger', 'operators', { app: 'debug' });
const impostorRoleJob = pod('impostor-executor-role', 'clients', roleJobLabels);
const impostorExecutor = pod('impostor-executor', 'clients', executorLabels);
const stranger = pod('stranger', NS, { app: 'debug' }); // any other pod in the namespace
const client = pod('client', 'clients', { app: 'agent' });
const impostorGate = pod('impostor-gate', 'clients', gateLabels); // gate labels, other namespace
const impostorDb = pod('impostor-db', 'clients', postgresqlLabels);
const dns = pod('coredns', 'kube-system', { 'k8s-app': 'kube-dns' });
const fakeDns = pod('fake-dns', 'clients', { 'k8s-app': 'kube-dns' });
const internet = { kind: 'external', name: 'internet', ip: '203.0.113.7' } as const;
/** A scraper in a namespace labelled for monitoring. */
const scraper = pod('prometheus', 'monitoring', { app: 'prometheus' });

const tcp = (port: number): Connection => ({ port, protocol: 'TCP' });
const udp = (port: number): Connection => ({ port, protocol: 'UDP' });
const can = (src: Endpoint, dst: Endpoint, c: Connection) => reachable(src, dst, c, policies, namespaces);

/** Ports a probe tries besides the allowed ones. */
const OTHER_PORTS = [22, 80, 443, 4222, 5432, 7071, 7443, 7444, 7460, 8080, 8222, 9090, 9107, 9464];
const CLIENT_PORT = tcp(7070);
const EXECUTION = tcp(7443);
const INTERNAL = tcp(7444);
/** The ledger process's listener (checkpoints). */
const LEDGER = tcp(7460);
/** The ledger process's metrics listener. */
const LEDGER_METRICS = tcp(9464);
/** Every endpoint the tests know, inside the namespace and out. */
const EVERYONE: readonly Endpoint[] = [
  gate,
  otherGate,
  executor,
  otherExecutor,
  postgresql,
  nats,
  roleJob,
  gateRoleJob,
  ledgerRoleJob,
  cp,
  otherCp,
  impostorCp,
  ledger,
  otherLedger,
  impostorLedger,
  operator,
  clientAsOperator,
  operatorNsStranger,
  impostorRoleJob,
  stranger,
  client,
  impostorGate,
  impostorExecutor,
  impostorDb,
  dns,
  fakeDns,
  internet,
  scraper,
];

describe('NetworkPolicies of the failclosed namespace', () => {
  const gates = [gate, otherGate];
  const executors = [executor, otherExecutor];
  const cps = [cp, otherCp];
  const ledgers = [ledger, otherLedger];
  /** Exactly `allowed` of every endpoint known may open `c` to each of `dsts`. */
  const exactly = (dsts: readonly Endpoint[], c: Connection, allowed: readonly Endpoint[]) => {
    for (const dst of dsts)
      for (const src of EVERYONE)
        expect(can(src, dst, c), `${src.name} -> ${dst.name}:${c.port}/${c.protocol}`).toBe(
          allowed.includes(src),
        );
  };

  it('default deny: one policy selects every pod for both ingress and egress, with no rule', () => {
    const deny = policies.filter((p) => JSON.stringify(p.spec.podSelector) === '{}');
    expect(deny).toHaveLength(1);
    expect([...deny[0]!.spec.policyTypes!].sort()).toEqual(['Egress', 'Ingress']);
    expect(deny[0]!.spec.ingress).toBeUndefined();
    expect(deny[0]!.spec.egress).toBeUndefined();
    expect(policies.every((p) => p.metadata.namespace === NS)).toBe(true);
  });

  it('the roles are told apart by their labels: gate, control-plane, ledger, executor, the three role Jobs', () => {
    const component = (l: Labels) => l['app.kubernetes.io/component'];
    expect(
      [
        gateLabels,
        cpLabels,
        ledgerLabels,
        executorLabels,
        roleJobLabels,
        gateRoleJobLabels,
        ledgerRoleJobLabels,
      ].map(component),
    ).toEqual(['gate', 'control-plane', 'ledger', 'executor', 'executor-role', 'gate-role', 'ledger-role']);
  });

  it('clients reach the keyless gates on TCP 7070, from any namespace or outside the cluster', () => {
    for (const src of [client, internet, impostorGate, operator])
      for (const dst of gates) expect(can(src, dst, CLIENT_PORT), `${src.name} -> ${dst.name}`).toBe(true);
  });

  it('clients reach nothing but the gates client port: not the Control Plane, not the ledger process, not an executor, not PostgreSQL, on any port', () => {
    for (const src of [
      client,
      internet,
      impostorGate,
      impostorExecutor,
      impostorCp,
      impostorLedger,
      clientAsOperator,
    ]) {
      for (const port of [...OTHER_PORTS, 7070]) {
        for (const dst of [
          ...cps,
          ...ledgers,
          ...executors,
          postgresql,
          nats,
          roleJob,
          gateRoleJob,
          ledgerRoleJob,
        ])
          expect(can(src, dst, tcp(port)), `${src.name} -> ${dst.name}:${port}`).toBe(false);
        if (port !== 7070) expect(can(src, gate, tcp(port)), `${src.name} -> gate:${port}`).toBe(false);
      }
      expect(can(src, gate, udp(7070)), src.name).toBe(false);
    }
  });

  it("the Control Plane's client port: operator-labelled pods of operator namespaces only, never a client", () => {
    exactly(cps, CLIENT_PORT, [operator]);
    expect(can(operator, cp, INTERNAL)).toBe(false);
    expect(can(operator, executor, EXECUTION)).toBe(false);
  });

  it("the Control Plane's internal listener: of every endpoint known, exactly the gate and executor pods", () => {
    exactly(cps, INTERNAL, [...gates, ...executors]);
  });

  it('the execution listener (FC-INV-6): of every endpoint known, exactly the gate pods and the Control Plane (voids)', () => {
    exactly(executors, EXECUTION, [...gates, ...cps]);
  });

  it('the ledger process listener (only roles reach the ledger): of every endpoint known, exactly the Control Plane pods', () => {
    exactly(ledgers, LEDGER, cps);
    // On no other port, not even for the Control Plane; never a gate, an executor or another
    // ledger process, on any port.
    for (const port of [...OTHER_PORTS, 7070].filter((p) => p !== 7460 && p !== 9464))
      for (const src of EVERYONE)
        expect(can(src, ledger, tcp(port)), `${src.name} -> ledger:${port}`).toBe(false);
    expect(can(cp, ledger, udp(7460))).toBe(false);
  });

  it('the ledger process metrics: of every endpoint known, exactly the pods of a namespace labelled for monitoring, which reach nothing else of the namespace but what any client reaches', () => {
    exactly(ledgers, LEDGER_METRICS, [scraper]);
    expect(can(scraper, ledger, LEDGER)).toBe(false);
    const ledgerMetrics = (dst: Endpoint, port: number) => ledgers.includes(dst) && port === 9464;
    const gateClientPort = (dst: Endpoint, port: number) => gates.includes(dst) && port === 7070;
    for (const dst of EVERYONE.filter((e) => e.kind === 'pod' && e.namespace === NS))
      for (const port of [...OTHER_PORTS, 7070])
        expect(can(scraper, dst, tcp(port)), `prometheus -> ${dst.name}:${port}`).toBe(
          ledgerMetrics(dst, port) || gateClientPort(dst, port),
        );
  });

  it('PostgreSQL: of every endpoint known, exactly the Control Plane, the gates, the executors, the ledger process and the three role Jobs', () => {
    exactly([postgresql], tcp(5432), [
      ...cps,
      ...gates,
      ...executors,
      ...ledgers,
      roleJob,
      gateRoleJob,
      ledgerRoleJob,
    ]);
    expect(can(gate, postgresql, udp(5432))).toBe(false);
    for (const port of OTHER_PORTS.filter((p) => p !== 5432))
      for (const src of [cp, gate, executor])
        expect(can(src, postgresql, tcp(port)), `${src.name} ${port}`).toBe(false);
  });

  it('gates reach the Control Plane internal port, the executors, PostgreSQL and DNS, and nothing else', () => {
    expect(can(gate, cp, INTERNAL)).toBe(true);
    expect(can(gate, executor, EXECUTION)).toBe(true);
    expect(can(gate, postgresql, tcp(5432))).toBe(true);
    expect(can(gate, dns, udp(53))).toBe(true);
    expect(can(gate, dns, tcp(53))).toBe(true);
    // Not the Control Plane's client port (a gate is no operator), not NATS (no queue at a gate).
    expect(can(gate, cp, CLIENT_PORT)).toBe(false);
    expect(can(gate, nats, tcp(4222))).toBe(false);
    for (const port of [...OTHER_PORTS, 53, 7070]) {
      for (const dst of [
        internet,
        client,
        otherGate,
        ...ledgers,
        stranger,
        impostorDb,
        impostorCp,
        impostorExecutor,
        impostorLedger,
        fakeDns,
      ])
        expect(can(gate, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
    }
    for (const port of OTHER_PORTS.filter((p) => p !== 7444))
      expect(can(gate, cp, tcp(port)), `cp ${port}`).toBe(false);
    for (const port of OTHER_PORTS.filter((p) => p !== 7443))
      expect(can(gate, executor, tcp(port)), `executor ${port}`).toBe(false);
  });

  it('executors reach the Control Plane internal port, PostgreSQL, NATS and DNS, and nothing else', () => {
    expect(can(executor, cp, INTERNAL)).toBe(true);
    expect(can(executor, postgresql, tcp(5432))).toBe(true);
    expect(can(executor, nats, tcp(4222))).toBe(true);
    expect(can(executor, dns, udp(53))).toBe(true);
    expect(can(executor, dns, tcp(53))).toBe(true);
    // Not a gate at all, not the Control Plane's client port, not another executor.
    for (const port of [...OTHER_PORTS, 7070])
      expect(can(executor, gate, tcp(port)), `gate ${port}`).toBe(false);
    expect(can(executor, cp, CLIENT_PORT)).toBe(false);
    expect(can(executor, otherExecutor, EXECUTION)).toBe(false);
    for (const dst of [
      internet,
      client,
      ...ledgers,
      stranger,
      impostorDb,
      fakeDns,
      impostorGate,
      impostorCp,
      impostorLedger,
    ])
      for (const port of [...OTHER_PORTS, 53, 7070])
        expect(can(executor, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
  });

  it('the Control Plane reaches PostgreSQL, the executors (voids), the ledger process (checkpoints), NATS and DNS, and nothing else', () => {
    expect(can(cp, postgresql, tcp(5432))).toBe(true);
    expect(can(cp, executor, EXECUTION)).toBe(true);
    for (const l of ledgers) expect(can(cp, l, LEDGER), l.name).toBe(true);
    expect(can(cp, nats, tcp(4222))).toBe(true);
    expect(can(cp, dns, udp(53))).toBe(true);
    // Not the gates (it answers them, it does not call them), not another Control Plane's listener.
    for (const port of [...OTHER_PORTS, 7070]) expect(can(cp, gate, tcp(port)), `gate ${port}`).toBe(false);
    expect(can(cp, otherCp, INTERNAL)).toBe(false);
    for (const dst of [internet, client, stranger, impostorDb, impostorExecutor, impostorLedger, fakeDns])
      for (const port of [...OTHER_PORTS, 53, 7070])
        expect(can(cp, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
  });

  it('the ledger process reaches PostgreSQL and DNS, and nothing else: no other role, no address', () => {
    expect(can(ledger, postgresql, tcp(5432))).toBe(true);
    expect(can(ledger, dns, udp(53))).toBe(true);
    expect(can(ledger, dns, tcp(53))).toBe(true);
    expect(can(ledger, postgresql, udp(5432))).toBe(false);
    for (const dst of [
      ...gates,
      ...cps,
      ...executors,
      otherLedger,
      nats,
      roleJob,
      gateRoleJob,
      ledgerRoleJob,
      internet,
      client,
      stranger,
      impostorDb,
      impostorCp,
      fakeDns,
    ])
      for (const port of [...OTHER_PORTS, 53, 7070])
        expect(can(ledger, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
    for (const port of OTHER_PORTS.filter((p) => p !== 5432))
      expect(can(ledger, postgresql, tcp(port)), `postgresql ${port}`).toBe(false);
  });

  it('the role Jobs reach PostgreSQL and DNS only, and nothing reaches them', () => {
    for (const job of [roleJob, gateRoleJob, ledgerRoleJob]) {
      expect(can(job, postgresql, tcp(5432)), job.name).toBe(true);
      expect(can(job, dns, udp(53)), job.name).toBe(true);
      expect(can(job, dns, tcp(53)), job.name).toBe(true);
      expect(can(job, postgresql, udp(5432)), job.name).toBe(false);
      for (const dst of [gate, cp, ledger, executor, nats, internet, client, stranger, impostorDb, fakeDns])
        for (const port of [...OTHER_PORTS, 53, 7070])
          expect(can(job, dst, tcp(port)), `${job.name} -> ${dst.name} ${port}`).toBe(false);
      for (const src of EVERYONE)
        for (const port of [...OTHER_PORTS, 7070])
          expect(can(src, job, tcp(port)), `${src.name} -> ${job.name} ${port}`).toBe(false);
    }
  });

  it('NATS accepts the Control Plane and the executors on 4222 only, and reaches nothing', () => {
    exactly([nats], tcp(4222), [...cps, ...executors]);
    expect(can(cp, nats, tcp(8222))).toBe(false);
    for (const dst of [internet, dns, gate, cp, ledger, executor, postgresql]) {
      expect(can(nats, dst, tcp(443)), dst.name).toBe(false);
      expect(can(nats, dst, udp(53)), dst.name).toBe(false);
      expect(can(nats, dst, INTERNAL), dst.name).toBe(false);
    }
  });

  it('PostgreSQL reaches nothing, not even DNS', () => {
    for (const dst of [internet, dns, gate, cp, ledger, client]) {
      expect(can(postgresql, dst, tcp(443)), dst.name).toBe(false);
      expect(can(postgresql, dst, udp(53)), dst.name).toBe(false);
      expect(can(postgresql, dst, tcp(7070)), dst.name).toBe(false);
    }
    expect(can(postgresql, ledger, LEDGER)).toBe(false);
  });

  it('any other pod in the namespace is isolated both ways', () => {
    for (const dst of [gate, cp, ledger, executor, nats, postgresql, internet, dns]) {
      for (const port of [7070, 7443, 7444, 7460, 5432])
        expect(can(stranger, dst, tcp(port)), `${dst.name} ${port}`).toBe(false);
      expect(can(stranger, dst, udp(53)), dst.name).toBe(false);
    }
    expect(can(client, stranger, tcp(8080))).toBe(false);
  });

  it('the evaluator can say yes and no: without the policies everything is reachable, and a dropped policy opens or closes its path', () => {
    const none = (s: Endpoint, d: Endpoint, c: Connection) => reachable(s, d, c, [], namespaces);
    const without = (name: string) => policies.filter((p) => p.metadata.name !== name);
    expect(none(client, postgresql, tcp(5432))).toBe(true);
    expect(none(client, cp, CLIENT_PORT)).toBe(true);
    expect(none(client, executor, EXECUTION)).toBe(true);
    expect(reachable(gate, postgresql, tcp(5432), without('postgresql-ingress'), namespaces)).toBe(false);
    expect(reachable(postgresql, internet, tcp(443), without('default-deny'), namespaces)).toBe(true);
    // Without the default deny, a pod no other policy selects is open to everyone.
    expect(reachable(client, stranger, tcp(8080), without('default-deny'), namespaces)).toBe(true);
    expect(reachable(gate, executor, EXECUTION, without('executor-ingress'), namespaces)).toBe(false);
    expect(reachable(gate, cp, INTERNAL, without('control-plane-ingress-internal'), namespaces)).toBe(false);
    expect(reachable(operator, cp, CLIENT_PORT, without('control-plane-ingress-operators'), namespaces)).toBe(
      false,
    );
    expect(reachable(gate, cp, INTERNAL, without('gate-egress'), namespaces)).toBe(false);
    expect(reachable(cp, executor, EXECUTION, without('control-plane-egress'), namespaces)).toBe(false);
    expect(none(gate, ledger, LEDGER)).toBe(true);
    expect(reachable(cp, ledger, LEDGER, without('ledger-ingress'), namespaces)).toBe(false);
    expect(reachable(cp, ledger, LEDGER, without('control-plane-egress'), namespaces)).toBe(false);
    expect(reachable(ledger, postgresql, tcp(5432), without('ledger-egress'), namespaces)).toBe(false);
    expect(reachable(ledger, postgresql, tcp(5432), without('postgresql-ingress'), namespaces)).toBe(false);
    expect(reachable(gateRoleJob, postgresql, tcp(5432), without('role-jobs-egress'), namespaces)).toBe(
      false,
    );
  });
});
