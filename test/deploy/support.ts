/**
 * Parsers shared by the deployment artefact tests (`deploy/`): YAML documents (strict, and the
 * same under YAML 1.1, which kubectl reads, as under 1.2), Dockerfile instructions, systemd unit
 * files, and a NetworkPolicy evaluator (networking.k8s.io/v1 semantics) that answers whether one
 * endpoint may open a connection to another.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../support/paths.js';

export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');

// ---- YAML -------------------------------------------------------------------------------------

export type Yaml = null | boolean | number | string | Yaml[] | { [key: string]: Yaml };
export type YamlObject = { [key: string]: Yaml };

function parseWith(text: string, version: '1.1' | '1.2', file: string): Yaml[] {
  const docs = parseAllDocuments(text, { version, merge: true, uniqueKeys: true, prettyErrors: false });
  if (!Array.isArray(docs)) return [];
  return docs.map((d, i) => {
    const problems = [...d.errors, ...d.warnings].map((e) => e.message);
    if (problems.length > 0) throw new Error(`${file} document ${i}: ${problems.join('; ')}`);
    return d.toJS({ maxAliasCount: 100 }) as Yaml;
  });
}

/**
 * Every document of a YAML file, refused when it has an error, a warning or a duplicate key,
 * or when YAML 1.1 (kubectl, `0440` is octal, `yes` is true) reads it differently from YAML 1.2.
 */
export function readYaml(path: string): Yaml[] {
  const text = readFileSync(path, 'utf8');
  const v12 = parseWith(text, '1.2', path);
  const v11 = parseWith(text, '1.1', path);
  if (JSON.stringify(v11) !== JSON.stringify(v12))
    throw new Error(`${path} reads differently under YAML 1.1 and 1.2 (an octal, a yes/no, a sexagesimal?)`);
  return v12.filter((d) => d !== null);
}

export function isObject(v: Yaml | undefined): v is YamlObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `obj.a.b.c`, or undefined when a step is missing or not an object. */
export function at(v: Yaml | undefined, ...path: (string | number)[]): Yaml | undefined {
  let cur: Yaml | undefined = v;
  for (const k of path) {
    if (typeof k === 'number') cur = Array.isArray(cur) ? cur[k] : undefined;
    else cur = isObject(cur) ? cur[k] : undefined;
  }
  return cur;
}

// ---- Dockerfile -------------------------------------------------------------------------------

export interface Instruction {
  readonly keyword: string;
  /** The arguments, continuation lines joined. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** Instructions grouped by stage (`FROM image [AS name]`); comments and parser directives dropped. */
export function parseDockerfile(text: string): Stage[] {
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const start = i;
    let logical = lines[i]!;
    if (/^\s*#/.test(logical) || logical.trim() === '') continue;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      i += 1;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      logical = `${logical.slice(0, -1)} ${next.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(logical);
    if (m === null) throw new Error(`Dockerfile line ${start + 1}: not an instruction`);
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (keyword === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (f === null) throw new Error(`Dockerfile line ${start + 1}: malformed FROM`);
      stages.push({ image: f[1]!, name: f[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (keyword === 'ARG') continue;
      throw new Error(`Dockerfile line ${start + 1}: ${keyword} before FROM`);
    }
    stage.instructions.push({ keyword, args, line: start + 1 });
  }
  return stages;
}

// ---- systemd units ----------------------------------------------------------------------------

/** A unit file: section -> key -> every value assigned, in order (an empty value resets a list). */
export type Unit = Map<string, Map<string, string[]>>;

export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i += 1;
      line = `${line.slice(0, -1)} ${lines[i]!.trim()}`;
    }
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s !== null) {
      section = unit.get(s[1]!) ?? new Map<string, string[]>();
      unit.set(s[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (kv === null || section === undefined)
      throw new Error(`unit line ${i + 1}: not KEY=VALUE in a section`);
    const values = section.get(kv[1]!) ?? [];
    values.push(kv[2]!.trim());
    section.set(kv[1]!, values);
  }
  return unit;
}

/** The one value of `key` (the last assignment), or undefined. */
export function unitValue(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

// ---- NetworkPolicy ----------------------------------------------------------------------------

export type Labels = Readonly<Record<string, string>>;

/** A pod (namespace and labels) or an address outside the cluster. */
export type Endpoint =
  | { readonly kind: 'pod'; readonly namespace: string; readonly labels: Labels; readonly name: string }
  | { readonly kind: 'external'; readonly ip: string; readonly name: string };

export interface Connection {
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
}

interface Selector {
  readonly matchLabels?: Labels;
  readonly matchExpressions?: readonly { key: string; operator: string; values?: readonly string[] }[];
}

/** A label selector; `{}` selects everything. */
export function selects(selector: Selector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

interface Peer {
  readonly podSelector?: Selector;
  readonly namespaceSelector?: Selector;
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}

interface PolicyPort {
  readonly protocol?: string;
  readonly port?: number | string;
  readonly endPort?: number;
}

interface Rule {
  readonly from?: readonly Peer[];
  readonly to?: readonly Peer[];
  readonly ports?: readonly PolicyPort[];
}

export interface NetworkPolicy {
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly podSelector: Selector;
    readonly policyTypes?: readonly string[];
    readonly ingress?: readonly Rule[];
    readonly egress?: readonly Rule[];
  };
}

function ipv4(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((a, p) => a * 256 + p, 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const n = Number(bits);
  const size = 2 ** (32 - n);
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base!) / size);
}

/** The labels a namespace carries, `kubernetes.io/metadata.name` included (the API server sets it). */
export type Namespaces = ReadonlyMap<string, Labels>;

function peerMatches(peer: Peer, policyNamespace: string, other: Endpoint, namespaces: Namespaces): boolean {
  if (peer.ipBlock !== undefined) {
    // Pod addresses are left to the implementation by the API; these policies name none.
    if (other.kind !== 'external') return false;
    return (
      inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inCidr(other.ip, c))
    );
  }
  if (other.kind !== 'pod') return false;
  const nsLabels = namespaces.get(other.namespace);
  if (nsLabels === undefined) throw new Error(`unknown namespace ${other.namespace}`);
  const nsOk =
    peer.namespaceSelector === undefined
      ? other.namespace === policyNamespace
      : selects(peer.namespaceSelector, nsLabels);
  const podOk = peer.podSelector === undefined ? true : selects(peer.podSelector, other.labels);
  return nsOk && podOk;
}

function portMatches(ports: readonly PolicyPort[] | undefined, c: Connection): boolean {
  if (ports === undefined || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== c.protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') throw new Error('named ports are not evaluated; use numbers');
    return p.endPort === undefined ? c.port === p.port : c.port >= p.port && c.port <= p.endPort;
  });
}

function policyTypes(p: NetworkPolicy): string[] {
  if (p.spec.policyTypes !== undefined) return [...p.spec.policyTypes];
  return p.spec.egress === undefined ? ['Ingress'] : ['Ingress', 'Egress'];
}

/** Whether `direction` traffic of `pod` at `peer` on `c` is allowed by the policies of its namespace. */
function allowedAt(
  direction: 'Ingress' | 'Egress',
  pod: Endpoint & { kind: 'pod' },
  peer: Endpoint,
  c: Connection,
  policies: readonly NetworkPolicy[],
  namespaces: Namespaces,
): boolean {
  const selecting = policies.filter(
    (p) =>
      p.metadata.namespace === pod.namespace &&
      policyTypes(p).includes(direction) &&
      selects(p.spec.podSelector, pod.labels),
  );
  if (selecting.length === 0) return true; // not isolated in this direction
  return selecting.some((p) =>
    (direction === 'Ingress' ? (p.spec.ingress ?? []) : (p.spec.egress ?? [])).some((rule) => {
      const peers = direction === 'Ingress' ? rule.from : rule.to;
      const peerOk =
        peers === undefined ||
        peers.length === 0 ||
        peers.some((x) => peerMatches(x, p.metadata.namespace, peer, namespaces));
      return peerOk && portMatches(rule.ports, c);
    }),
  );
}

/**
 * Whether `src` may open `c` to `dst`: the source's egress policies must allow it and the
 * destination's ingress policies must allow it (an address outside the cluster has neither).
 */
export function reachable(
  src: Endpoint,
  dst: Endpoint,
  c: Connection,
  policies: readonly NetworkPolicy[],
  namespaces: Namespaces,
): boolean {
  const egress = src.kind === 'pod' ? allowedAt('Egress', src, dst, c, policies, namespaces) : true;
  const ingress = dst.kind === 'pod' ? allowedAt('Ingress', dst, src, c, policies, namespaces) : true;
  return egress && ingress;
}
