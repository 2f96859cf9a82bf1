/**
 * Structural parsing of a bundle document: exact member sets at every level (unknown fields are
 * rejected, as for anything hashed), types and bounds. Cedar and JSON Schema contents are checked
 * by the loader afterwards. (SPEC §6 "Policy as code", OE-INV-005, STYLE "Untrusted input")
 */
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { BUNDLE_FORMAT, RISK_CLASSES } from './types.js';
import type {
  AdapterConfig,
  BundleSettings,
  PolicyBundleDocument,
  RiskClass,
  ToolPreviewSpec,
  ToolSpec,
} from './types.js';

/** Tool names: also Cedar action ids. */
export const TOOL_NAME_RE = /^[a-z][a-z0-9_.-]{0,63}$/;
const ADAPTER_TYPE_RE = /^[a-z][a-z0-9_-]{0,31}$/;
const MAX_TOOLS = 1000;
const MAX_POLICIES = 10000;
const MAX_APPROVAL_TTL_SECONDS = 30 * 24 * 3600;

function fail(reason: string): never {
  throw new Error(reason);
}

function object(v: JsonValue | undefined, what: string): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`${what} must be an object`);
  return v as JsonObject;
}

function members(
  o: JsonObject,
  what: string,
  required: readonly string[],
  optional: readonly string[],
): void {
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) fail(`${what}: unknown field "${k}"`);
  }
  for (const k of required) if (!(k in o)) fail(`${what}: missing field "${k}"`);
}

function text(v: JsonValue | undefined, what: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    fail(`${what} must be a string of 1..${max} characters`);
  return v;
}

function adapter(v: JsonValue | undefined, what: string): AdapterConfig {
  const o = object(v, what);
  const type = o['type'];
  if (typeof type !== 'string' || !ADAPTER_TYPE_RE.test(type))
    fail(`${what}.type must be an adapter type name`);
  return o as AdapterConfig;
}

function preview(v: JsonValue | undefined, what: string): ToolPreviewSpec {
  const o = object(v, what);
  members(o, what, ['irreversible'], ['summary', 'dry_run']);
  if (typeof o['irreversible'] !== 'boolean') fail(`${what}.irreversible must be a boolean`);
  const out: { irreversible: boolean; summary?: string; dry_run?: AdapterConfig } = {
    irreversible: o['irreversible'],
  };
  if (o['summary'] !== undefined) out.summary = text(o['summary'], `${what}.summary`, 1000);
  if (o['dry_run'] !== undefined) out.dry_run = adapter(o['dry_run'], `${what}.dry_run`);
  return out;
}

function tool(v: JsonValue, i: number): ToolSpec {
  const what = `tools[${i}]`;
  const o = object(v, what);
  members(
    o,
    what,
    ['name', 'description', 'parameters', 'risk', 'adapter'],
    ['preview', 'untrusted_output', 'owner'],
  );
  const untrusted = o['untrusted_output'];
  if (untrusted !== undefined && typeof untrusted !== 'boolean')
    fail(`${what}.untrusted_output must be a boolean`);
  const name = o['name'];
  if (typeof name !== 'string' || !TOOL_NAME_RE.test(name))
    fail(`${what}.name must match ${TOOL_NAME_RE.source}`);
  const risk = RISK_CLASSES.find((r): r is RiskClass => r === o['risk']);
  if (risk === undefined) fail(`${what}.risk must be low, medium, high or critical`);
  const spec: ToolSpec = {
    name,
    description: text(o['description'], `${what}.description`, 2000),
    parameters: object(o['parameters'], `${what}.parameters`),
    risk,
    adapter: adapter(o['adapter'], `${what}.adapter`),
    ...(o['preview'] === undefined ? {} : { preview: preview(o['preview'], `${what}.preview`) }),
    ...(typeof untrusted === 'boolean' ? { untrusted_output: untrusted } : {}),
    ...(o['owner'] === undefined ? {} : { owner: text(o['owner'], `${what}.owner`, 200) }),
  };
  return spec;
}

function settings(v: JsonValue | undefined): BundleSettings {
  const o = object(v, 'settings');
  members(o, 'settings', [], ['description', 'approval_ttl_seconds']);
  const out: { description?: string; approval_ttl_seconds?: number } = {};
  if (o['description'] !== undefined) out.description = text(o['description'], 'settings.description', 2000);
  const ttl = o['approval_ttl_seconds'];
  if (ttl !== undefined) {
    if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_APPROVAL_TTL_SECONDS)
      fail(`settings.approval_ttl_seconds must be an integer 1..${MAX_APPROVAL_TTL_SECONDS}`);
    out.approval_ttl_seconds = ttl;
  }
  return out;
}

/** Policy ids: also file stems in a bundle source directory. */
export const POLICY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Parses the members of a bundle document. Throws a plain `Error` with a reason on an unknown or
 * missing field, a wrong type, a duplicate tool name or an out-of-range value; the loader maps
 * it to `ERR_POLICY_BUNDLE_INVALID`. The returned value shares the (frozen) input's leaves.
 */
export function parseBundleShape(value: JsonValue): PolicyBundleDocument {
  const o = object(value, 'bundle');
  members(o, 'bundle', ['format', 'name', 'policies', 'schema', 'tools'], ['settings']);
  if (o['format'] !== BUNDLE_FORMAT) fail(`bundle.format must be "${BUNDLE_FORMAT}"`);
  const name = text(o['name'], 'bundle.name', 200);
  const policiesIn = object(o['policies'], 'bundle.policies');
  const entries = Object.entries(policiesIn);
  if (entries.length === 0 || entries.length > MAX_POLICIES)
    fail(`bundle.policies must hold 1..${MAX_POLICIES} policies`);
  const policies: Record<string, string> = {};
  for (const [id, p] of entries) {
    // Checked before it is a member: `policies["__proto__"] = …` would set the object's prototype
    // and drop the policy, which the bundle's hash still covers (a forbid never enforced).
    if (!POLICY_ID_RE.test(id)) fail(`policy id "${id}" is not allowed`);
    policies[id] = text(p, `policies.${id}`, 100_000);
  }
  const schema = text(o['schema'], 'bundle.schema', 1_000_000);
  const toolsIn = o['tools'];
  if (!Array.isArray(toolsIn) || toolsIn.length > MAX_TOOLS)
    fail(`bundle.tools must be an array of at most ${MAX_TOOLS}`);
  const tools = (toolsIn as readonly JsonValue[]).map(tool);
  const seen = new Set<string>();
  for (const t of tools) {
    if (seen.has(t.name)) fail(`tool "${t.name}" is declared twice`);
    seen.add(t.name);
  }
  return {
    format: BUNDLE_FORMAT,
    name,
    policies,
    schema,
    tools,
    ...(o['settings'] === undefined ? {} : { settings: settings(o['settings']) }),
  };
}
