/**
 * The inventory of execution-capable interfaces (FC-INV-6 evidence, docs/inventory.md): the
 * document format, defined once and parsed strictly, shared by the Gate that records it in the
 * ledger (`inventory.recorded`, the document as evidence by its SHA-256) and by the offline
 * verifier that checks every execution receipt came through a listed interface. No I/O.
 *
 * A new kind of interface (a queue consumer, a scheduler) is a new member of
 * {@link INTERFACE_KINDS}; kinds that run tools join {@link TOOL_INTERFACE_KINDS} or
 * {@link EXECUTOR_INTERFACE_KINDS} when receipts name them.
 */
import { canonicalize } from './canonical.js';
import { sha256Hex } from './hash.js';
import type { JsonObject, JsonValue } from './json.js';

/** The `format` member of every inventory document. */
export const INVENTORY_FORMAT = 'failclosed.inventory/v1';

/** The media type of the inventory stored as ledger evidence. */
export const INVENTORY_MEDIA_TYPE = 'application/vnd.failclosed.inventory+json';

/** Every kind of execution-capable interface the inventory lists. */
export const INTERFACE_KINDS = [
  // Listeners that accept envelopes or the Execution Layer's ledger writes.
  'execution-listener',
  'internal-listener',
  'executor-node',
  // The queue that carries background calls to workers of the Execution Layer (docs/jobs.md).
  'job-queue',
  // The scheduler that submits the runs of approved schedules (docs/schedules.md).
  'scheduler',
  // Tools of the active policy bundle, by adapter and transport.
  'builtin',
  'command',
  'mcp-stdio',
  'mcp-http',
  'http',
] as const;

/** A kind of execution-capable interface. */
export type InterfaceKind = (typeof INTERFACE_KINDS)[number];

/** Kinds that are tools: a receipt's `tool` and `adapter` must name one of these. */
export const TOOL_INTERFACE_KINDS: readonly InterfaceKind[] = Object.freeze([
  'builtin',
  'command',
  'mcp-stdio',
  'mcp-http',
  'http',
]);

/** Kinds that run envelopes: a receipt's actor (the executor's audience) must name one of these. */
export const EXECUTOR_INTERFACE_KINDS: readonly InterfaceKind[] = Object.freeze([
  'execution-listener',
  'executor-node',
]);

/**
 * Could any rule of the bundle permit the interface's action: `possible` (allowed outright, or a
 * permit may hold for some principal, tenant or parameters), `never` (no rule can), `unknown`
 * (evaluation failed: treated as never by the engine, which denies), `not-applicable` (a
 * listener: it runs only what an envelope names).
 */
export type PermitReach = 'possible' | 'never' | 'unknown' | 'not-applicable';

/** Where an interface's owner comes from: the tool's `owner` in the bundle, or the bundle's activator. */
export type OwnerSource = 'bundle' | 'activator' | 'none';

/** A detail value: flat, so the document stays small and easy to read. */
export type DetailValue = string | number | boolean | null;

/** One execution-capable interface. */
export interface InventoryEntry {
  readonly kind: InterfaceKind;
  /** Unique within the document: `tool:NAME`, `listener:execution`, `listener:internal`, `executor:URL`. */
  readonly id: string;
  readonly owner: string;
  readonly owner_source: OwnerSource;
  /** The policy that covers it: the bundle, its Cedar actions, and whether a rule could permit them. */
  readonly policy: {
    readonly bundle: string | null;
    readonly actions: readonly string[];
    readonly permit: PermitReach;
  };
  /** The verification path that guards it, e.g. `executor.execute: envelope verify + nonce consume`. */
  readonly guard: string;
  /** Tools: the name receipts carry. */
  readonly tool?: string;
  /** Tools: the adapter type receipts carry (`builtin`, `command`, `mcp`, `http`). */
  readonly adapter?: string;
  /** Executors: the envelopes' `aud`, which is the actor id of their receipts. */
  readonly audience?: string;
  readonly detail: Readonly<Record<string, DetailValue>>;
}

/** An inventory document. */
export interface InventoryDocument {
  readonly format: typeof INVENTORY_FORMAT;
  /** The policy bundle the tools come from; null when none is active. */
  readonly policy_bundle: string | null;
  readonly interfaces: readonly InventoryEntry[];
}

const MAX_INTERFACES = 10_000;
const MAX_TEXT = 2048;
const MAX_DETAIL = 32;
const HEX64 = /^[0-9a-f]{64}$/;
const OWNER_SOURCES: readonly string[] = ['bundle', 'activator', 'none'];
const PERMITS: readonly string[] = ['possible', 'never', 'unknown', 'not-applicable'];
const ENTRY_KEYS: readonly string[] = [
  'kind',
  'id',
  'owner',
  'owner_source',
  'policy',
  'guard',
  'tool',
  'adapter',
  'audience',
  'detail',
];

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT;
const isBundle = (v: unknown): v is string | null => v === null || (typeof v === 'string' && HEX64.test(v));

function parseEntry(v: unknown, i: number): InventoryEntry | string {
  const what = `interfaces[${i}]`;
  if (!isObject(v)) return `${what} is not an object`;
  for (const k of Object.keys(v)) if (!ENTRY_KEYS.includes(k)) return `${what} has an unknown member ${k}`;
  const { kind, id, owner, owner_source, policy, guard, tool, adapter, audience, detail } = v;
  if (!(INTERFACE_KINDS as readonly unknown[]).includes(kind)) return `${what}.kind is not a known kind`;
  if (!isText(id) || !isText(owner) || !isText(guard)) return `${what} lacks an id, owner or guard`;
  if (typeof owner_source !== 'string' || !OWNER_SOURCES.includes(owner_source))
    return `${what}.owner_source is unknown`;
  if (!isObject(policy) || Object.keys(policy).length !== 3) return `${what}.policy is malformed`;
  const { bundle, actions, permit } = policy;
  if (!isBundle(bundle) || !Array.isArray(actions) || !actions.every(isText))
    return `${what}.policy is malformed`;
  if (typeof permit !== 'string' || !PERMITS.includes(permit)) return `${what}.policy.permit is unknown`;
  for (const [k, x] of [
    ['tool', tool],
    ['adapter', adapter],
    ['audience', audience],
  ] as const)
    if (x !== undefined && !isText(x)) return `${what}.${k} is not a short string`;
  if (!isObject(detail) || Object.keys(detail).length > MAX_DETAIL) return `${what}.detail is malformed`;
  for (const x of Object.values(detail))
    if (
      x !== null &&
      typeof x !== 'number' &&
      typeof x !== 'boolean' &&
      !(typeof x === 'string' && x.length <= MAX_TEXT)
    )
      return `${what}.detail holds a value that is not a short scalar`;
  return {
    kind: kind as InterfaceKind,
    id,
    owner,
    owner_source: owner_source as OwnerSource,
    policy: { bundle, actions, permit: permit as PermitReach },
    guard,
    ...(tool === undefined ? {} : { tool: tool as string }),
    ...(adapter === undefined ? {} : { adapter: adapter as string }),
    ...(audience === undefined ? {} : { audience: audience as string }),
    detail: detail as Record<string, DetailValue>,
  };
}

/**
 * Parses an inventory document (attacker-controlled in a bundle under verification): closed
 * members at every level, known kinds, unique ids. Returns the document or why it is malformed.
 */
export function parseInventory(v: JsonValue | undefined): InventoryDocument | string {
  if (!isObject(v)) return 'the inventory is not an object';
  const keys = Object.keys(v);
  if (keys.length !== 3 || v['format'] !== INVENTORY_FORMAT)
    return `the inventory is not ${INVENTORY_FORMAT}`;
  const bundle = v['policy_bundle'];
  const list = v['interfaces'];
  if (!isBundle(bundle)) return 'the inventory policy_bundle is not a bundle hash or null';
  if (!Array.isArray(list) || list.length > MAX_INTERFACES) return 'the inventory interfaces are not a list';
  const interfaces: InventoryEntry[] = [];
  const ids = new Set<string>();
  for (const [i, x] of list.entries()) {
    const e = parseEntry(x, i);
    if (typeof e === 'string') return e;
    if (ids.has(e.id)) return `interfaces[${i}].id ${e.id} is listed twice`;
    ids.add(e.id);
    interfaces.push(e);
  }
  return Object.freeze({
    format: INVENTORY_FORMAT,
    policy_bundle: bundle,
    interfaces: Object.freeze(interfaces),
  });
}

/** The document as JSON (the shape {@link parseInventory} reads back). */
export function inventoryJson(doc: InventoryDocument): JsonObject {
  return JSON.parse(JSON.stringify(doc)) as JsonObject;
}

/** The canonical bytes recorded as evidence (RFC 8785). */
export function inventoryBytes(doc: InventoryDocument): Buffer {
  return Buffer.from(canonicalize(inventoryJson(doc)), 'utf8');
}

/** Lower-hex SHA-256 of the canonical bytes: the `inventory_sha256` of `inventory.recorded`. */
export function inventorySha256(doc: InventoryDocument): string {
  return sha256Hex(inventoryBytes(doc));
}

/** What a receipt names of the interface that ran it. */
export interface ReceiptInterface {
  readonly tool: unknown;
  readonly adapter: unknown;
  /** The receipt's actor id: the executor's audience. */
  readonly executor: string;
}

/**
 * Whether `doc` lists the interfaces a receipt came through: `listed`, `tool-unlisted` (no tool
 * interface of this name and adapter), or `executor-unlisted` (no executor of this audience).
 */
export function inventoryLists(
  doc: InventoryDocument,
  r: ReceiptInterface,
): 'listed' | 'tool-unlisted' | 'executor-unlisted' {
  const tool = doc.interfaces.some(
    (e) => TOOL_INTERFACE_KINDS.includes(e.kind) && e.tool === r.tool && e.adapter === r.adapter,
  );
  if (!tool) return 'tool-unlisted';
  const executor = doc.interfaces.some(
    (e) => EXECUTOR_INTERFACE_KINDS.includes(e.kind) && e.audience === r.executor,
  );
  return executor ? 'listed' : 'executor-unlisted';
}
