/**
 * The inventory of this deployment's execution-capable interfaces (FC-INV-6 evidence,
 * docs/inventory.md): the Execution Layer's listeners (this process's execution listener, the
 * internal listener for a separate Execution Layer, a separate `failclosed serve executor`) and
 * every tool of the policy bundle (builtin, command, MCP upstreams over stdio and HTTP with the
 * tool, prompt or resource each pins, declarative HTTP), each with its kind, owner, the policy
 * that covers it and the envelope check that guards it.
 *
 * The list is made by {@link INVENTORY_PROVIDERS}, one small function per family of interfaces:
 * another family (queue consumers, a scheduler) is one more provider and one more member of the
 * kernel's `INTERFACE_KINDS`. The document format lives in the kernel (`src/kernel/inventory.ts`)
 * so the offline verifier reads what the Gate records.
 */
import { INVENTORY_FORMAT } from '../kernel/index.js';
import type { DetailValue, InventoryDocument, InventoryEntry, OwnerSource } from '../kernel/index.js';
import { permitReach } from '../policy/index.js';
import type { LoadedBundle, ToolSpec } from '../policy/index.js';
import type { ExecutorNodeConfig } from './executor-node.js';
import type { EmbeddedConfig } from './data-dir.js';

/** What the providers read. */
export interface InventorySources {
  /** The Gate process's configuration (`failclosed.json`). */
  readonly config: Pick<
    EmbeddedConfig,
    | 'audience'
    | 'execution_port'
    | 'execution_host'
    | 'tls'
    | 'executor_url'
    | 'internal_port'
    | 'internal_host'
    | 'internal_gates'
    | 'jobs'
  >;
  /** The bundle the tools come from (the active one, or the one being activated); absent: none. */
  readonly bundle?: LoadedBundle;
  /** Who activated (or is activating) that bundle: the owner of what names no owner of its own. */
  readonly activator?: string;
}

/** One family of interfaces. */
export type InventoryProvider = (s: InventorySources) => readonly InventoryEntry[];

/** The envelope check every executor runs before any tool (src/execution/executor.ts). */
export const EXECUTE_GUARD =
  'executor.execute: envelope verify (pinned issuer key, aud, iat/exp, tool, tenant, params_sha256, known bundle) + ledger confirmation of decision and issuance + nonce consume';

function ownerOf(s: InventorySources, own?: string): { owner: string; owner_source: OwnerSource } {
  if (own !== undefined) return { owner: own, owner_source: 'bundle' };
  if (s.activator !== undefined) return { owner: s.activator, owner_source: 'activator' };
  return { owner: 'unowned', owner_source: 'none' };
}

const LISTENER_POLICY = (s: InventorySources): InventoryEntry['policy'] => ({
  bundle: s.bundle?.hash ?? null,
  actions: [],
  permit: 'not-applicable',
});

/**
 * The listeners: this process's execution listener (unless a separate Execution Layer runs at
 * `executor_url`), that separate Execution Layer, and the internal listener it reaches.
 */
export const listenerInterfaces: InventoryProvider = (s) => {
  const c = s.config;
  const out: InventoryEntry[] = [];
  const mtls = c.tls?.executor !== undefined;
  const separate = c.executor_url !== undefined && !mtls;
  if (!separate)
    out.push({
      kind: 'execution-listener',
      id: 'listener:execution',
      ...ownerOf(s),
      policy: LISTENER_POLICY(s),
      guard: `POST /v1/execute ${mtls ? 'over mutual TLS (gate role only)' : 'on loopback (plain HTTP)'}; ${EXECUTE_GUARD}`,
      audience: c.audience,
      detail: {
        host: mtls ? (c.execution_host ?? '127.0.0.1') : '127.0.0.1',
        port: c.execution_port,
        tls: mtls,
        admits: mtls ? 'gate' : 'loopback',
        source: 'src/embedded/execution-server.ts',
      },
    });
  if (separate)
    out.push({
      kind: 'executor-node',
      id: `executor:${c.executor_url}`,
      ...ownerOf(s),
      policy: LISTENER_POLICY(s),
      guard: `POST /v1/execute over mutual TLS (gate role only) at a separate Execution Layer; ${EXECUTE_GUARD} (ledger through the internal listener)`,
      audience: c.audience,
      detail: {
        url: c.executor_url,
        tls: true,
        admits: 'gate',
        source: 'src/embedded/executor-node.ts',
      },
    });
  if (c.internal_port !== undefined && c.tls?.control_plane !== undefined)
    out.push({
      kind: 'internal-listener',
      id: 'listener:internal',
      ...ownerOf(s),
      policy: LISTENER_POLICY(s),
      guard:
        c.internal_gates === true
          ? 'mutual TLS (executor and gate roles, each to its own routes): issuer public keys, bundles by hash, and ledger writes of the executor entry types with actor role executor; decisions of signed calls checked against the client registry, and the gate entry types with actor role gate; runs no tool'
          : 'mutual TLS (executor role only): issuer public keys, bundles by hash, and ledger writes of the executor entry types with actor role executor; runs no tool',
      detail: {
        host: c.internal_host ?? '127.0.0.1',
        port: c.internal_port,
        tls: true,
        admits: c.internal_gates === true ? 'executor, gate' : 'executor',
        source: 'src/embedded/internal-server.ts',
      },
    });
  return out;
};

/**
 * The queue of background calls (docs/jobs.md): in the Gate's process (`local`), or NATS
 * JetStream with its jobs subject and the workers' durable consumer. A queue runs nothing by
 * itself: every job goes through an executor's envelope check.
 */
export const queueInterfaces: InventoryProvider = (s) => {
  const j = s.config.jobs ?? { queue: 'local' as const };
  if (j.queue === 'local')
    return [
      {
        kind: 'job-queue',
        id: 'queue:local',
        ...ownerOf(s),
        policy: LISTENER_POLICY(s),
        guard: `background calls of this Gate, run through its Execution Layer port; ${EXECUTE_GUARD}`,
        detail: {
          queue: 'local',
          concurrency: j.concurrency ?? 2,
          source: 'src/embedded/local-queue.ts',
        },
      },
    ];
  const stream = j.stream ?? 'FAILCLOSED';
  return [
    {
      kind: 'job-queue',
      id: `queue:nats:${stream}`,
      ...ownerOf(s),
      policy: LISTENER_POLICY(s),
      guard: `NATS JetStream subject failclosed.${stream.toLowerCase()}.jobs, durable consumer "workers": every message, whoever published it, goes to executor.execute; ${EXECUTE_GUARD}`,
      detail: {
        queue: 'nats',
        url: j.url,
        stream,
        subject: `failclosed.${stream.toLowerCase()}.jobs`,
        consumer: 'workers',
        workers_in_gate: j.workers ?? 0,
        source: 'src/embedded/nats-queue.ts',
      },
    },
  ];
};

/**
 * The scheduler (docs/schedules.md): it runs nothing itself; each run of an approved schedule is
 * a governed call of its creator, decided again in its slot, carried by the job queue.
 */
export const schedulerInterfaces: InventoryProvider = (s) => [
  {
    kind: 'scheduler',
    id: 'scheduler',
    ...ownerOf(s),
    policy: LISTENER_POLICY(s),
    guard: `each run is its own governed call through Gate.callAs: the Control Plane checks the approved schedule.create and the slot (ERR_SCHEDULE_NOT_APPROVED, ERR_SCHEDULE_SLOT_MISSED), the envelope expires by the slot's end, then the job queue; ${EXECUTE_GUARD}`,
    detail: { source: 'src/schedules/scheduler.ts' },
  },
];

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** The kind and details of one tool, by its adapter spec (docs/adapters.md). */
function toolShape(t: ToolSpec): { kind: InventoryEntry['kind']; detail: Record<string, DetailValue> } {
  const a = t.adapter;
  const detail: Record<string, DetailValue> = { risk: t.risk };
  switch (a.type) {
    case 'builtin':
      detail['function'] = str(a['function']) ?? t.name;
      return { kind: 'builtin', detail };
    case 'command': {
      const argv = Array.isArray(a['argv']) ? a['argv'] : [];
      detail['program'] = str(argv[0]) ?? null;
      return { kind: 'command', detail };
    }
    case 'http':
      detail['method'] = str(a['method']) ?? null;
      detail['url'] = str(a['url']) ?? null;
      return { kind: 'http', detail };
    case 'mcp': {
      const url = str(a['url']);
      detail['server'] = str(a['server']) ?? null;
      const field =
        a['prompt'] !== undefined
          ? 'prompt'
          : a['resource'] !== undefined
            ? 'resource'
            : a['resource_template'] !== undefined
              ? 'resource_template'
              : 'tool';
      detail['pinned'] = field === 'resource_template' ? 'template' : field;
      detail['upstream_name'] = str(a[field]) ?? null;
      detail['definition_sha256'] = str(a['definition_sha256']) ?? null;
      if (url !== undefined) {
        detail['url'] = url;
        return { kind: 'mcp-http', detail };
      }
      const command = Array.isArray(a['command']) ? a['command'] : [];
      detail['program'] = str(command[0]) ?? null;
      return { kind: 'mcp-stdio', detail };
    }
    default:
      // The bundle loader admits only the types above; an unknown one is listed as a command
      // would never be: refuse to describe it rather than guess.
      throw new TypeError(`tool ${t.name} has an adapter type the inventory does not know`);
  }
}

/** Every tool of the bundle: its adapter, owner, Cedar action and whether a rule could permit it. */
export const toolInterfaces: InventoryProvider = (s) => {
  const bundle = s.bundle;
  if (bundle === undefined) return [];
  return bundle.document.tools.map((t): InventoryEntry => {
    const { kind, detail } = toolShape(t);
    return {
      kind,
      id: `tool:${t.name}`,
      ...ownerOf(s, t.owner),
      policy: { bundle: bundle.hash, actions: [`Action::"${t.name}"`], permit: permitReach(bundle, t) },
      guard: `${EXECUTE_GUARD}, then the ${t.adapter.type} adapter`,
      tool: t.name,
      adapter: t.adapter.type,
      detail,
    };
  });
};

/** The providers, in the order their interfaces are listed. */
export const INVENTORY_PROVIDERS: readonly InventoryProvider[] = Object.freeze([
  listenerInterfaces,
  queueInterfaces,
  schedulerInterfaces,
  toolInterfaces,
]);

/** Builds the inventory document from `sources` with `providers` (default {@link INVENTORY_PROVIDERS}). */
export function buildInventory(
  sources: InventorySources,
  providers: readonly InventoryProvider[] = INVENTORY_PROVIDERS,
): InventoryDocument {
  return Object.freeze({
    format: INVENTORY_FORMAT,
    policy_bundle: sources.bundle?.hash ?? null,
    interfaces: Object.freeze(providers.flatMap((p) => p(sources))),
  });
}

/**
 * The inventory of a separate Execution Layer from its own configuration (`failclosed inventory
 * --config FILE`): its listener. The tools it runs are those of the bundles the Gate serves it;
 * `failclosed inventory` on the Gate lists them.
 */
export function buildExecutorNodeInventory(config: ExecutorNodeConfig): InventoryDocument {
  return Object.freeze({
    format: INVENTORY_FORMAT,
    policy_bundle: null,
    interfaces: Object.freeze([
      {
        kind: 'executor-node',
        id: `executor:https://${config.listen.host}:${config.listen.port}`,
        owner: 'unowned',
        owner_source: 'none',
        policy: { bundle: null, actions: [], permit: 'not-applicable' },
        guard: `POST /v1/execute over mutual TLS (gate role only); ${EXECUTE_GUARD} (ledger through the Gate's internal listener)`,
        audience: config.audience,
        detail: {
          host: config.listen.host,
          port: config.listen.port,
          tls: true,
          admits: 'gate',
          gate_url: config.gate_url,
          source: 'src/embedded/executor-node.ts',
        },
      } satisfies InventoryEntry,
      // Its queue workers, when it has them: the same executor behind a broker's consumer.
      ...(config.jobs === undefined
        ? []
        : [
            {
              kind: 'job-queue' as const,
              id: `queue:nats:${config.jobs.stream ?? 'FAILCLOSED'}`,
              owner: 'unowned',
              owner_source: 'none' as const,
              policy: { bundle: null, actions: [], permit: 'not-applicable' as const },
              guard: `NATS JetStream consumer "workers": every message goes to executor.execute; ${EXECUTE_GUARD}`,
              audience: config.audience,
              detail: {
                queue: 'nats',
                url: config.jobs.url,
                stream: config.jobs.stream ?? 'FAILCLOSED',
                consumer: 'workers',
                workers: config.jobs.workers ?? 2,
                source: 'src/embedded/nats-queue.ts',
              },
            } satisfies InventoryEntry,
          ]),
    ]),
  });
}
